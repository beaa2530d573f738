/*
 * catalog.c - the catalog (catalog.h): snapshots of registrations and
 * policy, loaded from the embedded file registry (DESIGN §3) and the
 * policy file (§4), or from the control plane's API (remote.c); reloaded
 * on SIGHUP, when the files change, or polled.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "catalog.h"
#include "ctl_int.h"

/* Longest wait between two looks at the files, whatever refresh says. */
#define CTL_POLL_MAX_MS	3600000
/* Records confirmed by a probe and not yet in a listing, at most. */
#define CTL_EXTRAS_MAX	1024

struct ctl_snap {
	struct ctl_proj *projs;		/* sorted by name */
	const char **names;		/* projs[i].name, for ctl_snap_projects */
	size_t n_projs;
	size_t count;			/* records over all projects */
	struct ctl_part *extras;	/* pol_registry confirmed by probes, or NULL */
	struct ctl_part *pol_part;	/* NULL: no policy, deny everything */
	uint64_t generation;
	int refs;			/* __atomic */
};

/* A record a probe confirmed, kept until a later listing answers. */
struct ctl_extra {
	struct pol_registration *r;
	long long fetched_ms;		/* monotonic: when it was asked */
};

struct ctl_catalog {
	const struct pol_config *cfg;
	struct audit *audit;
	ctl_problem_fn problem;		/* set before the first load */
	void *problem_arg;

	pthread_mutex_t lock;
	struct ctl_snap *cur;		/* lock; never NULL */
	uint64_t next_gen;		/* lock */

	/*
	 * What the next snapshot is made of. Publishing builds a snapshot
	 * from these under state_lock, so a probe and a poll never undo each
	 * other's work.
	 */
	pthread_mutex_t state_lock;
	struct ctl_proj *projs;		/* state_lock; sorted by name */
	size_t n_projs;			/* state_lock */
	struct ctl_part *pol_part;	/* state_lock */
	struct ctl_extra *extras;	/* state_lock */
	size_t n_extras;		/* state_lock */

	/* Loads one at a time: the reload thread, or the initial load. */
	pthread_mutex_t load_lock;
	struct ctl_remote *remote;	/* NULL: registry from files */
	struct ctl_probes *probes;	/* with remote only */
	bool reachable;			/* load_lock: the last load reached the API */
	bool stopped;			/* load_lock */
	bool synced;			/* load_lock: ctl_catalog_sync ran */
	uint64_t fingerprint;		/* load_lock */
	unsigned problems;		/* load_lock: counted while loading */

	int pipe[2];			/* reload requests: 'h' reload, 'q' quit */
	pthread_t thread;
	bool started;
	ctl_reload_fn on_reload;	/* set before start */
	void *on_reload_arg;

	/* ctl_stats: __atomic, no lock. */
	long long stat_last_success_s;
	int stat_last_failed;
	uint64_t stat_registrations;
	uint64_t stat_loads;
};

/* ---- parts -------------------------------------------------------------- */

struct ctl_part *ctl_part_new(void *obj, void (*free_fn)(void *obj))
{
	struct ctl_part *p = calloc(1, sizeof(*p));

	if (!p) {
		free_fn(obj);
		return NULL;
	}
	p->obj = obj;
	p->free_fn = free_fn;
	p->refs = 1;
	return p;
}

struct ctl_part *ctl_part_get(struct ctl_part *p)
{
	if (p)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

void ctl_part_put(struct ctl_part *p)
{
	if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		p->free_fn(p->obj);
		free(p);
	}
}

static void registry_free_fn(void *obj)
{
	pol_registry_free(obj);
}

static void policy_free_fn(void *obj)
{
	pol_policy_free(obj);
}

struct ctl_part *ctl_part_registry(struct pol_registry *g)
{
	return g ? ctl_part_new(g, registry_free_fn) : NULL;
}

struct ctl_part *ctl_part_policy(struct pol_policy *p)
{
	return p ? ctl_part_new(p, policy_free_fn) : NULL;
}

void ctl_projs_free(struct ctl_proj *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		ctl_part_put(v[i].part);
	}
	free(v);
}

/* A copy of v (names duplicated, references taken). NULL on -ENOMEM. */
static struct ctl_proj *projs_dup(const struct ctl_proj *v, size_t n)
{
	struct ctl_proj *d = calloc(n ? n : 1, sizeof(*d));

	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		d[i].name = strdup(v[i].name);
		if (!d[i].name) {
			ctl_projs_free(d, i);
			return NULL;
		}
		d[i].part = ctl_part_get(v[i].part);
	}
	return d;
}

/* ---- snapshots ---------------------------------------------------------- */

const struct pol_policy *ctl_snap_policy(const struct ctl_snap *s)
{
	return s->pol_part ? s->pol_part->obj : NULL;
}

uint64_t ctl_snap_generation(const struct ctl_snap *s)
{
	return s->generation;
}

size_t ctl_snap_count(const struct ctl_snap *s)
{
	return s->count;
}

const char *const *ctl_snap_projects(const struct ctl_snap *s, size_t *n)
{
	*n = s->n_projs;
	return s->names;
}

static const struct ctl_proj *snap_proj(const struct ctl_snap *s,
					const char *project)
{
	size_t lo = 0, hi = s->n_projs;

	if (!project)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->projs[mid].name, project);

		if (c == 0)
			return &s->projs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const struct pol_registry *ctl_snap_project(const struct ctl_snap *s,
					    const char *project)
{
	const struct ctl_proj *p = snap_proj(s, project);

	return p ? p->part->obj : NULL;
}

const struct pol_registration *ctl_snap_find(const struct ctl_snap *s,
					     const char *project,
					     const char *name,
					     const char *digest)
{
	const struct ctl_proj *p = snap_proj(s, project);
	const struct pol_registration *r = NULL;

	if (p)
		r = pol_registry_find(p->part->obj, project, name, digest);
	if (!r && p && s->extras)
		r = pol_registry_find(s->extras->obj, project, name, digest);
	return r;
}

const struct pol_registration *ctl_snap_channel(const struct ctl_snap *s,
						const char *project,
						const char *name,
						const char *channel, bool *tie)
{
	const struct ctl_proj *p = snap_proj(s, project);

	if (tie)
		*tie = false;
	if (!p)
		return NULL;
	return pol_registry_channel(p->part->obj, ctl_snap_policy(s), project,
				    name, channel, tie);
}

static void snap_free(struct ctl_snap *s)
{
	ctl_projs_free(s->projs, s->n_projs);
	free(s->names);
	ctl_part_put(s->extras);
	ctl_part_put(s->pol_part);
	free(s);
}

void ctl_snap_put(struct ctl_snap *s)
{
	if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		snap_free(s);
}

struct ctl_snap *ctl_catalog_snap(struct ctl_catalog *c)
{
	struct ctl_snap *s;

	pthread_mutex_lock(&c->lock);
	s = c->cur;
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* The extras as one registry part (copies), or NULL when none. */
static int extras_part(struct ctl_catalog *c, struct ctl_part **out)
{
	struct pol_registration **v;
	struct pol_registry *g;
	int rc;

	*out = NULL;
	if (c->n_extras == 0)
		return 0;
	v = calloc(c->n_extras, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_extras; i++) {
		v[i] = pol_registration_dup(c->extras[i].r);
		if (!v[i]) {
			for (size_t k = 0; k < i; k++)
				pol_registration_free(v[k]);
			free(v);
			return -ENOMEM;
		}
	}
	rc = pol_registry_from(v, c->n_extras, NULL, NULL, &g);
	free(v);
	if (rc < 0)
		return rc;
	/* Before anyone reads them, as every new part (DESIGN §12). */
	pol_registry_attest(g, c->pol_part ? c->pol_part->obj : NULL, NULL);
	*out = ctl_part_registry(g);
	return *out ? 0 : -ENOMEM;
}

/*
 * Publishes a snapshot of the current components; state_lock held.
 * Returns 0 or -ENOMEM (the old snapshot stays).
 */
static int publish_locked(struct ctl_catalog *c)
{
	struct ctl_snap *s = calloc(1, sizeof(*s)), *old;

	if (!s)
		return -ENOMEM;
	s->projs = projs_dup(c->projs, c->n_projs);
	s->names = calloc(c->n_projs ? c->n_projs : 1, sizeof(*s->names));
	if (!s->projs || !s->names || extras_part(c, &s->extras) < 0) {
		if (s->projs)
			ctl_projs_free(s->projs, c->n_projs);
		free(s->names);
		free(s);
		return -ENOMEM;
	}
	s->n_projs = c->n_projs;
	for (size_t i = 0; i < s->n_projs; i++) {
		s->names[i] = s->projs[i].name;
		s->count += pol_registry_count(s->projs[i].part->obj);
	}
	s->pol_part = ctl_part_get(c->pol_part);
	s->refs = 1;
	pthread_mutex_lock(&c->lock);
	s->generation = ++c->next_gen;
	old = c->cur;
	c->cur = s;
	pthread_mutex_unlock(&c->lock);
	ctl_snap_put(old);
	return 0;
}

/* ---- life cycle --------------------------------------------------------- */

/*
 * A bad record: reported; a secret in its URI is also a refused
 * credential (DESIGN §5), audited naming the file (the message never
 * quotes the URI).
 */
static void report_log(void *arg, const char *msg)
{
	struct ctl_catalog *c = arg;

	c->problems++;
	if (c->problem)
		c->problem(c->problem_arg, msg);
	else
		af_warn("registry: %s", msg);
	if (pol_problem_is_credential(msg))
		audit_emit(c->audit, &(struct audit_event){
			.event = "credential_refused", .decision = "deny",
			.reason = msg,
		});
}

int ctl_catalog_new(const struct pol_config *cfg, struct audit *audit,
		    struct ctl_catalog **out)
{
	struct ctl_catalog *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;

	if (!c)
		return -ENOMEM;
	c->cfg = cfg;
	c->audit = audit;
	c->pipe[0] = c->pipe[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->state_lock, NULL);
	pthread_mutex_init(&c->load_lock, NULL);
	c->cur = calloc(1, sizeof(*c->cur));
	if (!c->cur)
		goto out_free;
	c->cur->refs = 1;
	c->cur->generation = c->next_gen = 1;
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		goto out_free;
	}
	c->reachable = true;
	if (cfg->registry_url) {
		rc = ctl_remote_new(cfg, report_log, c, &c->remote);
		if (rc < 0)
			goto out_free;
	}
	*out = c;
	return 0;

out_free:
	ctl_catalog_free(c);
	return rc;
}

void ctl_catalog_on_problem(struct ctl_catalog *c, ctl_problem_fn fn,
			    void *arg)
{
	c->problem = fn;
	c->problem_arg = arg;
}

void ctl_catalog_set_store(struct ctl_catalog *c, struct cache *store)
{
	/* Not under load_lock: a poll may hold it for a network timeout. */
	if (c->remote)
		ctl_remote_set_store(c->remote, store);
}

void ctl_catalog_stop(struct ctl_catalog *c)
{
	if (!c)
		return;
	if (c->remote)
		ctl_remote_cancel(c->remote);	/* a poll in flight ends now */
	if (c->started) {
		char q = 'q';

		if (write(c->pipe[1], &q, 1) != 1)
			af_warn("catalog: cannot signal the reload thread to stop");
		pthread_join(c->thread, NULL);
		c->started = false;
	}
	ctl_probes_free(c->probes);
	c->probes = NULL;
	if (c->remote)
		ctl_remote_close_store(c->remote);
	pthread_mutex_lock(&c->load_lock);
	c->stopped = true;
	pthread_mutex_unlock(&c->load_lock);
}

void ctl_catalog_free(struct ctl_catalog *c)
{
	if (!c)
		return;
	ctl_catalog_stop(c);
	ctl_remote_free(c->remote);
	if (c->pipe[0] >= 0)
		close(c->pipe[0]);
	if (c->pipe[1] >= 0)
		close(c->pipe[1]);
	if (c->cur)
		ctl_snap_put(c->cur);
	ctl_projs_free(c->projs, c->n_projs);
	ctl_part_put(c->pol_part);
	for (size_t i = 0; i < c->n_extras; i++)
		pol_registration_free(c->extras[i].r);
	free(c->extras);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->state_lock);
	pthread_mutex_destroy(&c->load_lock);
	free(c);
}

/* ---- change detection -------------------------------------------------- */

static void fingerprint_walk(const char *dir, XXH3_state_t *st, int depth)
{
	struct dirent **ents = NULL;
	int n;

	if (depth > 32)
		return;
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat sb;
		const char *nm = ents[i]->d_name;

		if (nm[0] == '.')
			goto next;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, nm) >=
		    sizeof(path))
			goto next;
		if (stat(path, &sb) < 0)
			goto next;
		XXH3_64bits_update(st, path, strlen(path) + 1);
		XXH3_64bits_update(st, &sb.st_mtim, sizeof(sb.st_mtim));
		XXH3_64bits_update(st, &sb.st_size, sizeof(sb.st_size));
		XXH3_64bits_update(st, &sb.st_ino, sizeof(sb.st_ino));
		if (S_ISDIR(sb.st_mode))
			fingerprint_walk(path, st, depth + 1);
next:
		free(ents[i]);
	}
	free(ents);
}

/*
 * A cheap fingerprint of the registry folder (unless the registry is
 * remote) and the policy file.
 */
static uint64_t files_fingerprint(const struct ctl_catalog *c)
{
	const struct pol_config *cfg = c->cfg;
	XXH3_state_t *st = XXH3_createState();
	uint64_t h;
	struct stat sb;

	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	if (cfg->registry_dir && !c->remote)
		fingerprint_walk(cfg->registry_dir, st, 0);
	if (cfg->policy_file && stat(cfg->policy_file, &sb) == 0) {
		XXH3_64bits_update(st, &sb.st_mtim, sizeof(sb.st_mtim));
		XXH3_64bits_update(st, &sb.st_size, sizeof(sb.st_size));
		XXH3_64bits_update(st, &sb.st_ino, sizeof(sb.st_ino));
	}
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

/* ---- loading ------------------------------------------------------------ */

/*
 * Loads the policy file. Returns 1 and *out (a new part, NULL only on
 * -ENOMEM) when loaded, 0 when it failed (said loudly), or a negative
 * error for an initial load.
 */
static int load_policy_file(struct ctl_catalog *c, bool initial,
			    struct ctl_part **out)
{
	const char *path = c->cfg->policy_file;
	struct pol_policy *pol = NULL;
	char err[512];
	int rc;

	*out = NULL;
	rc = pol_policy_load(path, &pol, err, sizeof(err));
	if (rc < 0) {
		if (rc != AF_EPARSE)
			snprintf(err, sizeof(err), "%s: %s", path,
				 af_strerror(rc));
		af_err("policy: %s%s", err,
		       initial ? "" : " (keeping the policy loaded before)");
		return initial ? rc : 0;
	}
	*out = ctl_part_policy(pol);
	return 1;
}

/*
 * Checks the attestation evidence of a new registry against the policy it
 * will be published with, before anyone can read it (DESIGN §12): paid
 * once per registration version, since an unchanged record of the
 * registry before lends its result when the keys are the same. (A
 * registry kept from before, when its folder could not be read, is
 * shared and not written: with a new policy its answers are computed at
 * each decision instead, never stale.)
 */
static void bind_attestations(struct pol_registry *reg,
			      const struct pol_policy *pol,
			      const struct pol_registry *prev)
{
	long long t0 = af_now_ms();
	size_t n = pol_registry_attest(reg, pol, prev);

	if (n)
		af_info("attestation: %zu envelopes checked in %lld ms", n,
			af_now_ms() - t0);
}


/*
 * The parts of projs that are new (not those of c->projs) get their
 * attestations bound to pol, with the project's previous records lending
 * unchanged results; state_lock held, before publishing.
 */
static void bind_new_parts_locked(struct ctl_catalog *c,
				  const struct ctl_proj *projs, size_t n,
				  const struct pol_policy *pol)
{
	for (size_t i = 0; i < n; i++) {
		const struct pol_registry *prev = NULL;

		for (size_t k = 0; k < c->n_projs; k++)
			if (strcmp(c->projs[k].name, projs[i].name) == 0) {
				prev = c->projs[k].part->obj;
				break;
			}
		if (prev != projs[i].part->obj)
			bind_attestations(projs[i].part->obj, pol, prev);
	}
}

/*
 * Loads registry.dir into per-project parts. Returns 0 with *out and *n, or a
 * negative error when the folder itself cannot be read (reported).
 */
static int load_registry_dir(struct ctl_catalog *c, struct ctl_proj **out,
			     size_t *n)
{
	struct pol_registry *g = NULL, **split = NULL;
	struct ctl_proj *v;
	size_t k = 0;
	int rc;

	*out = NULL;
	*n = 0;
	rc = pol_registry_load_dir(c->cfg->registry_dir, report_log, c, &g);
	if (rc < 0)
		return rc;
	rc = pol_registry_split(g, &split, &k);
	if (rc < 0) {
		pol_registry_free(g);
		return rc;
	}
	v = calloc(k ? k : 1, sizeof(*v));
	if (!v)
		rc = -ENOMEM;
	for (size_t i = 0; i < k; i++) {
		const char *const *names;
		size_t one;

		if (rc < 0) {
			pol_registry_free(split[i]);
			continue;
		}
		names = pol_registry_projects(split[i], &one);
		v[i].name = strdup(names[0]);
		v[i].part = ctl_part_registry(split[i]);
		if (!v[i].name || !v[i].part)
			rc = -ENOMEM;
	}
	free(split);
	if (rc < 0) {
		ctl_projs_free(v, v ? k : 0);
		return rc;
	}
	*out = v;
	*n = k;
	return 0;
}

static size_t projs_count(const struct ctl_proj *v, size_t n)
{
	size_t total = 0;

	for (size_t i = 0; i < n; i++)
		total += pol_registry_count(v[i].part->obj);
	return total;
}

/*
 * Drops the extras a listing answered after they were confirmed (the
 * listing is the authority now) or whose project went; state_lock held.
 */
static void extras_prune_locked(struct ctl_catalog *c)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n_extras; i++) {
		struct ctl_extra *e = &c->extras[i];
		bool keep = false;

		if (c->remote) {
			long long at = ctl_remote_listed_at(c->remote,
							    e->r->project);

			keep = at >= 0 && at < e->fetched_ms;
		}
		if (keep) {
			c->extras[k++] = *e;
			continue;
		}
		pol_registration_free(e->r);
	}
	c->n_extras = k;
}

/*
 * The registry from the control plane: what the store kept (initial), and
 * what a poll brings (network). *have_reg / *have_policy: a new state to
 * publish (the policy too unless policy.file is set).
 */
static int load_remote(struct ctl_catalog *c, bool initial, bool network,
		       struct ctl_proj **projs, size_t *n_projs,
		       struct ctl_part **pol_part, bool *have_reg,
		       bool *have_policy)
{
	bool remote_policy = !c->cfg->policy_file, changed = false, down;
	int rc;

	if (initial && ctl_remote_restore(c->remote) > 0)
		af_info("registry: restored the control plane's last answers from the cache index");
	if (network) {
		rc = ctl_remote_poll(c->remote, &changed);
		if (rc == -ECANCELED)
			return 0;	/* stopping */
		down = rc < 0 && rc != -EPROTO;
		c->reachable = !down;
		__atomic_store_n(&c->stat_last_failed, down, __ATOMIC_RELAXED);
		if (!down)
			__atomic_store_n(&c->stat_last_success_s,
					 af_wall_ms() / 1000, __ATOMIC_RELAXED);
	}
	if (!initial && !changed)
		return 0;
	rc = ctl_remote_projects(c->remote, projs, n_projs);
	if (rc < 0)
		return rc;
	*have_reg = true;
	if (remote_policy) {
		ctl_part_put(*pol_part);
		*pol_part = ctl_remote_policy(c->remote);
		*have_policy = true;
	}
	return 0;
}

/*
 * One load; load_lock held. network: with registry.url, ask the control
 * plane (else only what the store kept, on an initial load). *published:
 * a new snapshot went out.
 */
static int load_locked(struct ctl_catalog *c, bool initial, bool network,
		       bool *published)
{
	const struct pol_config *cfg = c->cfg;
	struct ctl_part *pol_part = NULL;
	struct ctl_proj *projs = NULL;
	size_t n_projs = 0;
	bool have_policy = false, have_reg = false;
	const char *from = c->remote ? cfg->registry_url : cfg->registry_dir;
	char reason[160];
	int rc;

	__atomic_add_fetch(&c->stat_loads, 1, __ATOMIC_RELAXED);
	*published = false;
	c->problems = 0;
	c->fingerprint = files_fingerprint(c);
	if (cfg->policy_file) {
		rc = load_policy_file(c, initial, &pol_part);
		if (rc < 0)
			return rc;
		have_policy = rc > 0;
		if (have_policy && !pol_part)
			goto out_oom;
	} else if (initial && !c->remote) {
		af_warn("policy: no [policy] file configured: every open is denied (fail closed)");
	}

	if (c->remote) {
		rc = load_remote(c, initial, network, &projs, &n_projs,
				 &pol_part, &have_reg, &have_policy);
		if (rc < 0)
			goto out_oom;
		if (!have_reg && !have_policy)
			return 0;	/* nothing changed: no new snapshot */
	} else {
		rc = load_registry_dir(c, &projs, &n_projs);
		if (rc == -ENOMEM)
			goto out_oom;
		if (rc < 0) {
			/*
			 * The folder itself could not be read (replaced,
			 * remounted, a permission hiccup): keep what the node
			 * knew rather than unregister everything at once.
			 */
			pthread_mutex_lock(&c->state_lock);
			af_err("registry: %s: %s (keeping the %zu registrations loaded before)",
			       cfg->registry_dir, af_strerror(rc),
			       projs_count(c->projs, c->n_projs));
			pthread_mutex_unlock(&c->state_lock);
		} else {
			have_reg = true;
		}
		__atomic_store_n(&c->stat_last_failed, !have_reg,
				 __ATOMIC_RELAXED);
		if (have_reg)
			__atomic_store_n(&c->stat_last_success_s,
					 af_wall_ms() / 1000, __ATOMIC_RELAXED);
	}

	pthread_mutex_lock(&c->state_lock);
	if (have_reg) {
		bind_new_parts_locked(c, projs, n_projs,
				      have_policy ?
				      (pol_part ? pol_part->obj : NULL) :
				      c->pol_part ? c->pol_part->obj : NULL);
		ctl_projs_free(c->projs, c->n_projs);
		c->projs = projs;
		c->n_projs = n_projs;
		projs = NULL;
		extras_prune_locked(c);
	}
	if (have_policy) {
		ctl_part_put(c->pol_part);
		c->pol_part = pol_part;
		pol_part = NULL;
	}
	snprintf(reason, sizeof(reason), "%zu registrations, %u problems",
		 projs_count(c->projs, c->n_projs), c->problems);
	__atomic_store_n(&c->stat_registrations,
			 (uint64_t)projs_count(c->projs, c->n_projs),
			 __ATOMIC_RELAXED);
	rc = publish_locked(c);
	pthread_mutex_unlock(&c->state_lock);
	if (rc < 0)
		goto out_oom;
	*published = true;
	if (c->probes && have_reg)
		ctl_probes_clear_negative(c->probes);
	if (have_reg) {
		af_info("registry: loaded %s from %s", reason, from);
		audit_emit(c->audit, &(struct audit_event){
			.event = "registry_loaded", .reason = reason,
		});
	}
	if (have_policy && (cfg->policy_file || c->pol_part))
		audit_emit(c->audit, &(struct audit_event){
			.event = "policy_loaded",
			.reason = cfg->policy_file ? cfg->policy_file :
						     "control plane",
		});
	return 0;

out_oom:
	ctl_projs_free(projs, n_projs);
	ctl_part_put(pol_part);
	af_err("catalog: out of memory: keeping the previous registry and policy");
	return initial ? -ENOMEM : 0;
}

int ctl_catalog_load(struct ctl_catalog *c, bool initial)
{
	bool published;
	int rc;

	pthread_mutex_lock(&c->load_lock);
	rc = load_locked(c, initial, !initial, &published);
	pthread_mutex_unlock(&c->load_lock);
	return rc;
}

int ctl_catalog_sync(struct ctl_catalog *c)
{
	bool published;
	int rc = 0;

	if (!c->remote)
		return 0;
	pthread_mutex_lock(&c->load_lock);
	if (!c->stopped)
		rc = load_locked(c, false, true, &published);
	c->synced = true;
	pthread_mutex_unlock(&c->load_lock);
	return rc;
}

bool ctl_catalog_reachable(struct ctl_catalog *c)
{
	bool r;

	pthread_mutex_lock(&c->load_lock);
	r = c->reachable;
	pthread_mutex_unlock(&c->load_lock);
	return r;
}

void ctl_catalog_stats(struct ctl_catalog *c, struct ctl_stats *out)
{
	out->last_success_s = __atomic_load_n(&c->stat_last_success_s,
					      __ATOMIC_RELAXED);
	out->last_failed = __atomic_load_n(&c->stat_last_failed,
					   __ATOMIC_RELAXED);
	out->registrations = __atomic_load_n(&c->stat_registrations,
					     __ATOMIC_RELAXED);
	out->loads = __atomic_load_n(&c->stat_loads, __ATOMIC_RELAXED);
}

/* ---- probes ------------------------------------------------------------- */

/* A record a probe confirmed: into the extras and a new snapshot. */
static bool probe_found(void *arg, const struct pol_registration *r,
			long long fetched_ms)
{
	struct ctl_catalog *c = arg;
	struct pol_registration *d = pol_registration_dup(r);
	bool ok = false;

	if (!d)
		return false;
	pthread_mutex_lock(&c->state_lock);
	for (size_t i = 0; i < c->n_extras; i++) {
		struct ctl_extra *e = &c->extras[i];

		if (strcmp(e->r->project, r->project) == 0 &&
		    strcmp(e->r->name, r->name) == 0 &&
		    strcmp(e->r->digest.str, r->digest.str) == 0) {
			pol_registration_free(e->r);
			e->r = d;
			e->fetched_ms = fetched_ms;
			d = NULL;
			break;
		}
	}
	if (d && c->n_extras < CTL_EXTRAS_MAX) {
		struct ctl_extra *v = realloc(c->extras,
					      (c->n_extras + 1) * sizeof(*v));

		if (v) {
			c->extras = v;
			v[c->n_extras].r = d;
			v[c->n_extras].fetched_ms = fetched_ms;
			c->n_extras++;
			d = NULL;
		}
	}
	if (!d)
		ok = publish_locked(c) == 0;
	pthread_mutex_unlock(&c->state_lock);
	pol_registration_free(d);
	return ok;
}

int ctl_catalog_probe(struct ctl_catalog *c, const char *project,
		      const char *name, const char *digest, long wait_ms)
{
	if (!c->probes)
		return -ENOENT;
	return ctl_probes_ask(c->probes, project, name, digest, wait_ms);
}

/* ---- the reload thread -------------------------------------------------- */

void ctl_catalog_on_reload(struct ctl_catalog *c, ctl_reload_fn fn, void *arg)
{
	c->on_reload = fn;
	c->on_reload_arg = arg;
}

void ctl_catalog_request_reload(struct ctl_catalog *c)
{
	char h = 'h';

	/* Async-signal-safe: one write; a full pipe already holds a request. */
	if (write(c->pipe[1], &h, 1) < 0) {
		/* Nothing to do here; the next poll looks at the files anyway. */
	}
}

int ctl_catalog_reload_fd(const struct ctl_catalog *c)
{
	return c->pipe[1];
}

/*
 * The wait before the next poll of the control plane: registry.refresh
 * less a random tenth at most, so a fleet started together does not poll
 * in step, and a change still shows within one interval.
 */
static long long next_poll_delay(const struct pol_config *cfg)
{
	uint64_t ms = cfg->registry_refresh_ms, jitter = ms / 10, rnd = 0;

	if (ms == 0 || ms > CTL_POLL_MAX_MS)
		ms = ms ? CTL_POLL_MAX_MS : 30000;
	if (jitter > 0 && getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(rnd))
		ms -= rnd % (jitter + 1);
	return (long long)ms;
}

static void *reload_main(void *arg)
{
	struct ctl_catalog *c = arg;
	uint64_t ms = c->cfg->registry_refresh_ms;
	int file_timeout = (int)(ms > CTL_POLL_MAX_MS ? CTL_POLL_MAX_MS : ms);
	long long next_poll = af_now_ms();

	/* Without a sync before (a live upgrade's new daemon): poll at once. */
	pthread_mutex_lock(&c->load_lock);
	if (c->synced)
		next_poll += next_poll_delay(c->cfg);
	pthread_mutex_unlock(&c->load_lock);

	if (file_timeout <= 0)
		file_timeout = 30000;
	for (;;) {
		struct pollfd p = { .fd = c->pipe[0], .events = POLLIN };
		const char *why = NULL;
		int timeout = file_timeout, n;
		long long now = af_now_ms();
		bool published = false, files = false;

		if (c->remote) {
			long long left = next_poll - now;

			if (left < 0)
				left = 0;
			if (left < timeout)
				timeout = (int)left;
		}
		n = poll(&p, 1, timeout);
		if (n > 0) {
			char buf[16];
			ssize_t got = read(c->pipe[0], buf, sizeof(buf));

			for (ssize_t i = 0; i < got; i++) {
				if (buf[i] == 'q')
					return NULL;
				why = "signal";
			}
		}
		now = af_now_ms();
		pthread_mutex_lock(&c->load_lock);
		files = c->cfg->policy_file || !c->remote;
		if (why) {
			af_info("SIGHUP: reloading registry and policy");
		} else if (c->remote && now >= next_poll) {
			why = "poll";
		} else if (files && files_fingerprint(c) != c->fingerprint) {
			af_info("registry or policy changed: reloading");
			why = "change";
		}
		if (why) {
			/* Polls start every interval, whatever one lasts. */
			if (c->remote && strcmp(why, "change") != 0)
				next_poll = now + next_poll_delay(c->cfg);
			load_locked(c, false, true, &published);
		}
		pthread_mutex_unlock(&c->load_lock);
		if (why && (published || strcmp(why, "signal") == 0) &&
		    c->on_reload)
			c->on_reload(c->on_reload_arg, why);
	}
}

int ctl_catalog_start(struct ctl_catalog *c)
{
	int rc;

	if (c->started)
		return -EALREADY;
	if (c->remote && !c->probes) {
		rc = ctl_probes_new(c->cfg, c->remote, probe_found, c,
				    &c->probes);
		if (rc == 0)
			rc = ctl_probes_start(c->probes);
		if (rc < 0) {
			ctl_probes_free(c->probes);
			c->probes = NULL;
			return rc;
		}
	}
	rc = pthread_create(&c->thread, NULL, reload_main, c);
	if (rc)
		return -rc;
	c->started = true;
	return 0;
}
