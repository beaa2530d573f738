/*
 * catalog.c - the catalog (catalog.h): snapshots of registrations and
 * policy, loaded from the embedded file registry (DESIGN §3) and the
 * policy file (§4), reloaded on SIGHUP and when the files change.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "catalog.h"

/* Longest wait between two looks at the files, whatever refresh says. */
#define CTL_POLL_MAX_MS	3600000

/*
 * The parts of a snapshot are shared between consecutive snapshots when a
 * reload keeps one of them (a policy that failed to load, a registry
 * folder that could not be read), so each carries its own count.
 */
struct ctl_part {
	void *obj;
	void (*free_fn)(void *obj);
	int refs;			/* __atomic */
};

struct ctl_snap {
	struct pol_registry *registry;	/* in reg_part; never NULL */
	struct pol_policy *policy;	/* in pol_part; NULL denies everything */
	struct ctl_part *reg_part;
	struct ctl_part *pol_part;	/* NULL when policy is */
	uint64_t generation;
	int refs;			/* __atomic */
};

struct ctl_catalog {
	const struct pol_config *cfg;
	struct audit *audit;

	pthread_mutex_t lock;
	struct ctl_snap *cur;		/* lock; never NULL */
	uint64_t next_gen;		/* lock */

	int pipe[2];			/* reload requests: 'h' reload, 'q' quit */
	pthread_t thread;
	bool started;
	uint64_t fingerprint;		/* reload thread, or before start */
	ctl_reload_fn on_reload;	/* set before start */
	void *on_reload_arg;

	/* ctl_stats: __atomic, no lock. */
	long long stat_last_success_s;
	int stat_last_failed;
	uint64_t stat_registrations;
	uint64_t stat_loads;
};

const struct pol_registry *ctl_snap_registry(const struct ctl_snap *s)
{
	return s->registry;
}

const struct pol_policy *ctl_snap_policy(const struct ctl_snap *s)
{
	return s->policy;
}

uint64_t ctl_snap_generation(const struct ctl_snap *s)
{
	return s->generation;
}

static void part_put(struct ctl_part *p)
{
	if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		p->free_fn(p->obj);
		free(p);
	}
}

static struct ctl_part *part_get(struct ctl_part *p)
{
	if (p)
		__atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
	return p;
}

static void registry_free_fn(void *obj)
{
	pol_registry_free(obj);
}

static void policy_free_fn(void *obj)
{
	pol_policy_free(obj);
}

/* Wraps obj (taken, freed on failure) in a part. NULL on -ENOMEM. */
static struct ctl_part *part_new(void *obj, void (*free_fn)(void *obj))
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

static void snap_free(struct ctl_snap *s)
{
	part_put(s->reg_part);
	part_put(s->pol_part);
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

/*
 * Publishes a snapshot made of the parts reg (not NULL) and pol (may be
 * NULL), both taken. Returns 0 or -ENOMEM (the old snapshot stays).
 */
static int publish(struct ctl_catalog *c, struct ctl_part *reg,
		   struct ctl_part *pol)
{
	struct ctl_snap *s = calloc(1, sizeof(*s)), *old;

	if (!s) {
		part_put(reg);
		part_put(pol);
		return -ENOMEM;
	}
	s->reg_part = reg;
	s->registry = reg->obj;
	s->pol_part = pol;
	s->policy = pol ? pol->obj : NULL;
	s->refs = 1;
	pthread_mutex_lock(&c->lock);
	s->generation = ++c->next_gen;
	old = c->cur;
	c->cur = s;
	pthread_mutex_unlock(&c->lock);
	ctl_snap_put(old);
	return 0;
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
	c->cur = calloc(1, sizeof(*c->cur));
	if (!c->cur)
		goto out_free;
	c->cur->registry = pol_registry_new_empty();
	if (!c->cur->registry)
		goto out_free;
	c->cur->reg_part = part_new(c->cur->registry, registry_free_fn);
	if (!c->cur->reg_part)
		goto out_free;
	c->cur->refs = 1;
	c->cur->generation = c->next_gen = 1;
	if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		goto out_free;
	}
	*out = c;
	return 0;

out_free:
	ctl_catalog_free(c);
	return rc;
}

void ctl_catalog_free(struct ctl_catalog *c)
{
	if (!c)
		return;
	if (c->started) {
		char q = 'q';

		if (write(c->pipe[1], &q, 1) != 1)
			af_warn("catalog: cannot signal the reload thread to stop");
		pthread_join(c->thread, NULL);
	}
	if (c->pipe[0] >= 0)
		close(c->pipe[0]);
	if (c->pipe[1] >= 0)
		close(c->pipe[1]);
	if (c->cur)
		ctl_snap_put(c->cur);
	pthread_mutex_destroy(&c->lock);
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

/* A cheap fingerprint of the registry folder and the policy file. */
static uint64_t files_fingerprint(const struct pol_config *cfg)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t h;
	struct stat sb;

	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	if (cfg->registry_dir)
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

static void report_problem(void *arg, const char *msg)
{
	unsigned *count = arg;

	(*count)++;
	af_warn("registry: %s", msg);
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

int ctl_catalog_load(struct ctl_catalog *c, bool initial)
{
	const struct pol_config *cfg = c->cfg;
	struct ctl_part *reg_part = NULL, *pol_part = NULL;
	struct pol_registry *reg = NULL;
	struct pol_policy *pol = NULL;
	struct ctl_snap *prev;
	bool have_policy = false;
	unsigned problems = 0;
	char err[512], reason[128];
	int rc, reg_rc;

	__atomic_add_fetch(&c->stat_loads, 1, __ATOMIC_RELAXED);
	c->fingerprint = files_fingerprint(cfg);
	if (cfg->policy_file) {
		rc = pol_policy_load(cfg->policy_file, &pol, err, sizeof(err));
		if (rc < 0) {
			if (rc != AF_EPARSE)
				snprintf(err, sizeof(err), "%s: %s",
					 cfg->policy_file, af_strerror(rc));
			af_err("policy: %s%s", err,
			       initial ? "" : " (keeping the policy loaded before)");
			if (initial)
				return rc;
		} else {
			have_policy = true;
		}
	} else if (initial) {
		af_warn("policy: no [policy] file configured: every open is denied (fail closed)");
	}

	reg_rc = pol_registry_load_dir(cfg->registry_dir, report_problem,
				       &problems, &reg);
	prev = ctl_catalog_snap(c);
	if (reg_rc < 0) {
		/*
		 * The folder itself could not be read (replaced, remounted,
		 * a permission hiccup): keep what the node knew rather than
		 * unregister everything at once (issue 10).
		 */
		af_err("registry: %s: %s (keeping the %zu registrations loaded before)",
		       cfg->registry_dir, af_strerror(reg_rc),
		       pol_registry_count(prev->registry));
		reg_part = part_get(prev->reg_part);
	} else {
		bind_attestations(reg, have_policy ? pol : prev->policy,
				  prev->registry);
		reg_part = part_new(reg, registry_free_fn);
	}
	if (have_policy)
		pol_part = pol ? part_new(pol, policy_free_fn) : NULL;
	else
		pol_part = part_get(prev->pol_part);
	ctl_snap_put(prev);
	if (!reg_part || (have_policy && !pol_part)) {
		part_put(reg_part);
		part_put(pol_part);
		goto out_oom;
	}
	snprintf(reason, sizeof(reason), "%zu registrations, %u problems",
		 pol_registry_count(reg_part->obj), problems);
	__atomic_store_n(&c->stat_last_failed, reg_rc < 0, __ATOMIC_RELAXED);
	if (publish(c, reg_part, pol_part) < 0)
		goto out_oom;
	__atomic_store_n(&c->stat_registrations,
			 (uint64_t)pol_registry_count(reg_part->obj),
			 __ATOMIC_RELAXED);
	if (reg_rc == 0) {
		__atomic_store_n(&c->stat_last_success_s, af_wall_ms() / 1000,
				 __ATOMIC_RELAXED);
		af_info("registry: loaded %s from %s", reason, cfg->registry_dir);
		audit_emit(c->audit, &(struct audit_event){
			.event = "registry_loaded", .reason = reason,
		});
	}
	if (have_policy)
		audit_emit(c->audit, &(struct audit_event){
			.event = "policy_loaded", .reason = cfg->policy_file,
		});
	return 0;

out_oom:
	af_err("catalog: out of memory: keeping the previous registry and policy");
	return initial ? -ENOMEM : 0;
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

static void *reload_main(void *arg)
{
	struct ctl_catalog *c = arg;
	uint64_t ms = c->cfg->registry_refresh_ms;
	int timeout = (int)(ms > CTL_POLL_MAX_MS ? CTL_POLL_MAX_MS : ms);

	if (timeout <= 0)
		timeout = 30000;
	for (;;) {
		struct pollfd p = { .fd = c->pipe[0], .events = POLLIN };
		const char *why = NULL;
		int n = poll(&p, 1, timeout);

		if (n > 0) {
			char buf[16];
			ssize_t got = read(c->pipe[0], buf, sizeof(buf));

			for (ssize_t i = 0; i < got; i++) {
				if (buf[i] == 'q')
					return NULL;
				why = "signal";
			}
		}
		if (why) {
			af_info("SIGHUP: reloading registry and policy");
		} else if (files_fingerprint(c->cfg) != c->fingerprint) {
			af_info("registry or policy changed: reloading");
			why = "change";
		} else {
			continue;
		}
		ctl_catalog_load(c, false);
		if (c->on_reload)
			c->on_reload(c->on_reload_arg, why);
	}
}

int ctl_catalog_start(struct ctl_catalog *c)
{
	int rc;

	if (c->started)
		return -EALREADY;
	rc = pthread_create(&c->thread, NULL, reload_main, c);
	if (rc)
		return -rc;
	c->started = true;
	return 0;
}
