/*
 * remote.c - the control plane's API (DESIGN §3): the policy, the projects
 * and each project's registrations, polled with conditional requests, and
 * every answer kept in the cache index (cache_doc_*) so that a node that
 * restarts during an outage still knows what it knew.
 *
 * What may fail keeps what the node had: a request that got no answer (a
 * reset, a timeout), a 5xx, a refused token, a document cut short or not
 * JSON, a listing that is an object, a document over CTL_DOC_MAX. Only an
 * answer that says so changes the state: a listing (a new part), a project
 * no longer listed (gone), a policy document (a new policy, or none when it
 * is well-formed but invalid: fail closed, DESIGN §4).
 *
 * Threads: the poll runs on the catalog's reload thread (the load lock);
 * the lock below guards what other threads read (the projects' listing
 * times, reachability).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "../cache/cache.h"
#include "../policy/af.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ctl_int.h"

/* Overall limit of one document request, whatever its size. */
#define CTL_REQUEST_TIMEOUT_MS	120000
#define CTL_DOC_MAGIC		"afcpdoc1"
#define CTL_DOC_MAGIC_LEN	8

/* The validators and fingerprint of one document last answered. */
struct rdoc {
	char etag[256];
	char last_modified[64];
	uint64_t hash;			/* xxh3 of the body; 0: none */
	bool have;
};

struct rproj {
	char *name;
	struct ctl_part *part;		/* its records; NULL: never listed */
	struct rdoc doc;
	long long listed_at;		/* start of the last answered listing */
};

struct ctl_remote {
	const struct pol_config *cfg;
	ctl_report_fn report;
	void *report_arg;
	struct ctl_token *tok;
	struct ctl_conn *conn;		/* poll thread */
	/*
	 * The store is used under its own lock, held for one index
	 * operation only, never across a request: a hand-over that lets go
	 * of the cache never waits for a poll stuck on the network.
	 */
	pthread_mutex_t store_lock;
	struct cache *store;		/* store_lock */
	bool store_closed;		/* store_lock: never set again */
	bool conn_stale;		/* store_lock: drop conn before the
					   next request (a new process phase) */
	char key_prefix[64];		/* "cp:<xxh3 of registry.url>:" */

	pthread_mutex_t lock;		/* what other threads read */
	struct rproj *projs;		/* lock for writes; sorted by name */
	size_t n_projs;
	struct rdoc projects_doc;	/* poll thread */
	struct ctl_part *pol_part;	/* lock for writes; NULL: deny all */
	struct rdoc policy_doc;		/* poll thread */
	bool reachable;			/* lock */
	bool said_down;			/* poll thread: the outage was logged */
	bool cancel;			/* __atomic: stop asking */
};

static void reportf(struct ctl_remote *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reportf(struct ctl_remote *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	r->report(r->report_arg, msg);
}

int ctl_remote_new(const struct pol_config *cfg, ctl_report_fn report,
		   void *arg, struct ctl_remote **out)
{
	struct ctl_remote *r = calloc(1, sizeof(*r));
	int rc;

	if (!r)
		return -ENOMEM;
	r->cfg = cfg;
	r->report = report;
	r->report_arg = arg;
	r->reachable = true;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->store_lock, NULL);
	snprintf(r->key_prefix, sizeof(r->key_prefix), "cp:%016" PRIx64 ":",
		 (uint64_t)XXH3_64bits(cfg->registry_url,
				       strlen(cfg->registry_url)));
	rc = ctl_token_new(cfg->registry_token_file, &r->tok);
	if (rc < 0) {
		ctl_remote_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

static void projs_release(struct rproj *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].name);
		ctl_part_put(v[i].part);
	}
	free(v);
}

void ctl_remote_free(struct ctl_remote *r)
{
	if (!r)
		return;
	ctl_conn_free(r->conn);
	ctl_token_free(r->tok);
	projs_release(r->projs, r->n_projs);
	ctl_part_put(r->pol_part);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->store_lock);
	free(r);
}

void ctl_remote_set_store(struct ctl_remote *r, struct cache *store)
{
	pthread_mutex_lock(&r->store_lock);
	r->store = r->store_closed ? NULL : store;
	/*
	 * A new store means a new process phase (before or after the fork
	 * of daemonizing, a hand-over): a connection is never carried
	 * across it. The poll thread drops it before its next request.
	 */
	r->conn_stale = true;
	pthread_mutex_unlock(&r->store_lock);
}

void ctl_remote_cancel(struct ctl_remote *r)
{
	__atomic_store_n(&r->cancel, true, __ATOMIC_RELAXED);
}

void ctl_remote_close_store(struct ctl_remote *r)
{
	pthread_mutex_lock(&r->store_lock);
	r->store = NULL;
	r->store_closed = true;
	pthread_mutex_unlock(&r->store_lock);
}

/* Whether a store is set now (it may go right after: a hint). */
static bool have_store(struct ctl_remote *r)
{
	bool v;

	pthread_mutex_lock(&r->store_lock);
	v = r->store != NULL;
	pthread_mutex_unlock(&r->store_lock);
	return v;
}

struct ctl_token *ctl_remote_token(struct ctl_remote *r)
{
	return r->tok;
}

bool ctl_remote_reachable(struct ctl_remote *r)
{
	bool v;

	pthread_mutex_lock(&r->lock);
	v = r->reachable;
	pthread_mutex_unlock(&r->lock);
	return v;
}

long long ctl_remote_listed_at(struct ctl_remote *r, const char *project)
{
	long long at = -1;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n_projs; i++)
		if (strcmp(r->projs[i].name, project) == 0) {
			at = r->projs[i].part ? r->projs[i].listed_at : -1;
			break;
		}
	pthread_mutex_unlock(&r->lock);
	return at;
}

int ctl_remote_projects(struct ctl_remote *r, struct ctl_proj **out,
			size_t *n)
{
	struct ctl_proj *v;
	size_t k = 0;

	*out = NULL;
	*n = 0;
	v = calloc(r->n_projs ? r->n_projs : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_projs; i++) {
		if (!r->projs[i].part)
			continue;	/* never listed: nothing to show */
		v[k].name = strdup(r->projs[i].name);
		if (!v[k].name) {
			ctl_projs_free(v, k);
			return -ENOMEM;
		}
		v[k].part = ctl_part_get(r->projs[i].part);
		k++;
	}
	*out = v;
	*n = k;
	return 0;
}

struct ctl_part *ctl_remote_policy(struct ctl_remote *r)
{
	return ctl_part_get(r->pol_part);
}

/* ---- documents kept in the store --------------------------------------- */

static void doc_key(const struct ctl_remote *r, const char *path, char *key,
		    size_t len)
{
	snprintf(key, len, "%s%s", r->key_prefix, path);
}

/* Keeps an answer (validators and body) in the store; failures logged. */
static void doc_store(struct ctl_remote *r, const char *path,
		      const struct rdoc *d, const char *body, size_t len)
{
	size_t el = strlen(d->etag), ll = strlen(d->last_modified);
	size_t total = CTL_DOC_MAGIC_LEN + 2 + el + 2 + ll + len;
	char key[256], *buf, *p;
	int rc = 0;

	if (!have_store(r))
		return;
	doc_key(r, path, key, sizeof(key));
	buf = malloc(total);
	if (!buf) {
		af_warn("registry: %s: not kept in the cache index: out of memory",
			path);
		return;
	}
	p = buf;
	memcpy(p, CTL_DOC_MAGIC, CTL_DOC_MAGIC_LEN);
	p += CTL_DOC_MAGIC_LEN;
	*p++ = (char)(el >> 8);
	*p++ = (char)(el & 0xff);
	memcpy(p, d->etag, el);
	p += el;
	*p++ = (char)(ll >> 8);
	*p++ = (char)(ll & 0xff);
	memcpy(p, d->last_modified, ll);
	p += ll;
	memcpy(p, body, len);
	pthread_mutex_lock(&r->store_lock);
	if (r->store)
		rc = cache_doc_put(r->store, key, buf, total);
	pthread_mutex_unlock(&r->store_lock);
	if (rc < 0)
		af_warn("registry: %s: not kept in the cache index: %s", path,
			af_strerror(rc));
	free(buf);
}

static void doc_forget(struct ctl_remote *r, const char *path)
{
	char key[256];

	doc_key(r, path, key, sizeof(key));
	pthread_mutex_lock(&r->store_lock);
	if (r->store)
		(void)cache_doc_del(r->store, key);
	pthread_mutex_unlock(&r->store_lock);
}

/*
 * Reads a kept answer: validators into *d, the body into *body (caller
 * frees, NUL-terminated). Returns 0, -ENOENT, or AF_EPARSE (damaged).
 */
static int doc_load(struct ctl_remote *r, const char *path, struct rdoc *d,
		    char **body, size_t *blen)
{
	char key[256], *buf;
	const unsigned char *p, *end;
	size_t len, el, ll;
	int rc;

	*body = NULL;
	*blen = 0;
	doc_key(r, path, key, sizeof(key));
	pthread_mutex_lock(&r->store_lock);
	rc = r->store ? cache_doc_get(r->store, key, &buf, &len) : -ENOENT;
	pthread_mutex_unlock(&r->store_lock);
	if (rc < 0)
		return rc;
	p = (const unsigned char *)buf;
	end = p + len;
	if (len < CTL_DOC_MAGIC_LEN + 4 ||
	    memcmp(p, CTL_DOC_MAGIC, CTL_DOC_MAGIC_LEN) != 0)
		goto out_damaged;
	p += CTL_DOC_MAGIC_LEN;
	el = (size_t)p[0] << 8 | p[1];
	p += 2;
	if (el >= sizeof(d->etag) || (size_t)(end - p) < el + 2)
		goto out_damaged;
	memset(d, 0, sizeof(*d));
	memcpy(d->etag, p, el);
	p += el;
	ll = (size_t)p[0] << 8 | p[1];
	p += 2;
	if (ll >= sizeof(d->last_modified) || (size_t)(end - p) < ll)
		goto out_damaged;
	memcpy(d->last_modified, p, ll);
	p += ll;
	*blen = (size_t)(end - p);
	memmove(buf, p, *blen);
	buf[*blen] = '\0';
	d->hash = XXH3_64bits(buf, *blen);
	d->have = true;
	*body = buf;
	return 0;

out_damaged:
	free(buf);
	af_warn("registry: %s: the copy in the cache index is damaged: ignored",
		path);
	return AF_EPARSE;
}

struct purge {
	struct ctl_remote *r;
	char **names;
	size_t n, cap;
};

static int collect_foreign(void *arg, const char *name)
{
	struct purge *pg = arg;
	size_t pl = strlen(pg->r->key_prefix);

	if (strncmp(name, pg->r->key_prefix, pl) == 0)
		return 0;
	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 16;
		char **v = realloc(pg->names, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		pg->names = v;
		pg->cap = cap;
	}
	pg->names[pg->n] = strdup(name);
	if (!pg->names[pg->n])
		return -ENOMEM;
	pg->n++;
	return 0;
}

/* Drops what the store kept of another control plane (registry.url changed). */
static void purge_foreign(struct ctl_remote *r)
{
	struct purge pg = { .r = r };

	pthread_mutex_lock(&r->store_lock);
	if (r->store)
		(void)cache_doc_names(r->store, "cp:", collect_foreign, &pg);
	for (size_t i = 0; i < pg.n; i++) {
		if (r->store)
			(void)cache_doc_del(r->store, pg.names[i]);
		free(pg.names[i]);
	}
	pthread_mutex_unlock(&r->store_lock);
	if (pg.n)
		af_info("registry: dropped %zu documents of another control plane from the cache index",
			pg.n);
	free(pg.names);
}

/* ---- interpreting documents -------------------------------------------- */

static void listing_path(const char *project, char *path, size_t len)
{
	/* Project names are [a-z0-9-]: nothing to encode. */
	snprintf(path, len, "v1/projects/%s/blobs", project);
}

static void report_fwd(void *arg, const char *msg)
{
	struct ctl_remote *r = arg;

	r->report(r->report_arg, msg);
}

/*
 * A policy document (DESIGN §4) into *part. Not JSON (cut short, garbled):
 * returns AF_EPARSE and leaves *part alone. Well-formed but invalid: *part
 * = NULL (fail closed), said loudly, returns 0.
 */
static int take_policy(const char *body, size_t len, const char *origin,
		       struct ctl_part **part, bool *new_part)
{
	struct pol_policy *pol = NULL;
	char err[512];

	*new_part = false;
	if (!pol_json_wellformed(body, len)) {
		af_err("policy: %s: not JSON (cut short?): keeping the policy known before",
		       origin);
		return AF_EPARSE;
	}
	if (pol_policy_parse(body, len, origin, &pol, err, sizeof(err)) < 0) {
		af_err("policy: %s: every open is denied until a valid policy arrives (fail closed)",
		       err);
		*part = NULL;
		*new_part = true;
		return 0;
	}
	*part = ctl_part_policy(pol);
	*new_part = true;
	return *part ? 0 : -ENOMEM;
}

/* A listing into a new part. AF_EPARSE (reported) when refused as a whole. */
static int take_listing(struct ctl_remote *r, const char *project,
			const char *body, size_t len, const char *origin,
			struct ctl_part **part)
{
	struct pol_registry *g = NULL;
	char err[512];
	int rc;

	*part = NULL;
	rc = pol_registry_parse_listing(body, len, origin, project, report_fwd,
					r, &g, err, sizeof(err));
	if (rc == AF_EPARSE) {
		reportf(r, "%s (keeping the registrations known before)", err);
		return rc;
	}
	if (rc < 0)
		return rc;
	*part = ctl_part_registry(g);
	return *part ? 0 : -ENOMEM;
}

/* Finds project in r->projs, or NULL. */
static struct rproj *proj_find(struct ctl_remote *r, const char *name)
{
	size_t lo = 0, hi = r->n_projs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->projs[mid].name, name);

		if (c == 0)
			return &r->projs[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Makes the project set names (sorted, distinct; taken), keeping the
 * parts of projects still there; the others' kept documents are dropped.
 * Returns 0 or -ENOMEM (names freed).
 */
static int set_projects(struct ctl_remote *r, char **names, size_t n,
			bool *changed)
{
	struct rproj *v = calloc(n ? n : 1, sizeof(*v));
	char path[128];
	size_t i, j = 0;

	if (!v) {
		pol_names_free(names, n);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		struct rproj *old = proj_find(r, names[i]);

		v[i].name = names[i];
		if (old) {
			v[i].part = ctl_part_get(old->part);
			v[i].doc = old->doc;
			v[i].listed_at = old->listed_at;
		} else {
			*changed = true;
		}
	}
	free(names);
	/* Projects that went: their kept listing goes too. */
	for (i = 0; i < r->n_projs; i++) {
		while (j < n && strcmp(v[j].name, r->projs[i].name) < 0)
			j++;
		if (j < n && strcmp(v[j].name, r->projs[i].name) == 0)
			continue;
		listing_path(r->projs[i].name, path, sizeof(path));
		doc_forget(r, path);
		af_info("registry: project %s is no longer listed by the control plane",
			r->projs[i].name);
		*changed = true;
	}
	pthread_mutex_lock(&r->lock);
	projs_release(r->projs, r->n_projs);
	r->projs = v;
	r->n_projs = n;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int ctl_remote_restore(struct ctl_remote *r)
{
	struct rdoc d;
	char *body, **names = NULL, err[512], path[128];
	size_t len, n = 0;
	bool changed = false, new_part;
	int count = 0;

	if (!have_store(r))
		return 0;
	purge_foreign(r);
	if (!r->cfg->policy_file &&
	    doc_load(r, "v1/policy", &d, &body, &len) == 0) {
		struct ctl_part *part = NULL;

		if (take_policy(body, len, "v1/policy (kept)", &part, &new_part) == 0 && new_part) {
			ctl_part_put(r->pol_part);
			r->pol_part = part;
			r->policy_doc = d;
			count++;
		}
		free(body);
	}
	if (doc_load(r, "v1/projects", &d, &body, &len) < 0)
		return count;
	if (pol_projects_parse(body, len, "v1/projects (kept)", report_fwd, r,
			       &names, &n, err, sizeof(err)) < 0) {
		free(body);
		return count;
	}
	free(body);
	if (set_projects(r, names, n, &changed) < 0)
		return count;
	r->projects_doc = d;
	count++;
	for (size_t i = 0; i < r->n_projs; i++) {
		struct rproj *p = &r->projs[i];
		struct ctl_part *part;

		listing_path(p->name, path, sizeof(path));
		if (doc_load(r, path, &d, &body, &len) < 0)
			continue;
		if (take_listing(r, p->name, body, len, path, &part) == 0) {
			pthread_mutex_lock(&r->lock);
			ctl_part_put(p->part);
			p->part = part;
			p->doc = d;
			p->listed_at = 0;
			pthread_mutex_unlock(&r->lock);
			count++;
		}
		free(body);
	}
	return count;
}

/* ---- polling ------------------------------------------------------------ */

/* Why a status is not an answer we take, in words. */
static const char *status_words(int status)
{
	switch (status) {
	case 401:
		return "401 Unauthorized: the control plane refused the token";
	case 403:
		return "403 Forbidden: the control plane refused the token";
	case 404:
		return "404 Not Found";
	case 429:
		return "429 Too Many Requests";
	case 500:
		return "500 Internal Server Error";
	case 502:
		return "502 Bad Gateway";
	case 503:
		return "503 Service Unavailable";
	case 504:
		return "504 Gateway Timeout";
	default:
		return status >= 500 ? "server error" : "unexpected status";
	}
}

/* The token refused (DESIGN §3: still mounts, serves what it kept). */
static bool refused(int status)
{
	return status == 401 || status == 403;
}

/*
 * Conditional GET of path. Returns 1 (200: *resp has the body, and it
 * differs from doc's), 0 (unchanged: 304, or the same body again), or a
 * negative error (said in why): no answer (the round stops), -EACCES for
 * a refused token (the round stops too), or -EPROTO with *status for any
 * other status (that document keeps what it had).
 */
static int get_doc(struct ctl_remote *r, const char *path,
		   const struct rdoc *doc, struct ctl_resp *resp,
		   int *status, char *why, size_t whylen)
{
	int rc;

	*status = 0;
	rc = ctl_conn_get(r->conn, path, doc->have ? doc->etag : NULL,
			  doc->have ? doc->last_modified : NULL,
			  CTL_REQUEST_TIMEOUT_MS, resp, why, whylen);
	if (rc < 0)
		return rc;
	*status = resp->status;
	if (resp->status == 304 && doc->have)
		return 0;
	if (resp->status != 200) {
		snprintf(why, whylen, "%s: %d %s", path, resp->status,
			 status_words(resp->status));
		ctl_resp_release(resp);
		/* A refused token stops the round: every request would be. */
		return refused(*status) ? -EACCES : -EPROTO;
	}
	if (doc->have && doc->hash == XXH3_64bits(resp->body, resp->len))
		return 0;	/* no validators, same bytes */
	return 1;
}

static void fill_doc(struct rdoc *d, const struct ctl_resp *resp)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->etag, resp->etag, sizeof(d->etag));
	memcpy(d->last_modified, resp->last_modified,
	       sizeof(d->last_modified));
	d->hash = XXH3_64bits(resp->body, resp->len);
	d->have = true;
}

static int poll_policy(struct ctl_remote *r, bool *changed, char *why,
		       size_t whylen)
{
	struct ctl_resp resp;
	struct ctl_part *part = NULL;
	struct rdoc d;
	bool new_part;
	int status, rc;

	rc = get_doc(r, "v1/policy", &r->policy_doc, &resp, &status, why,
		     whylen);
	if (rc == -EPROTO && status == 404) {
		/* The control plane has no policy for us: deny everything. */
		if (r->pol_part || !r->policy_doc.have)
			af_err("policy: the control plane has none (404): every open is denied (fail closed)");
		if (r->pol_part)
			*changed = true;
		pthread_mutex_lock(&r->lock);
		ctl_part_put(r->pol_part);
		r->pol_part = NULL;
		pthread_mutex_unlock(&r->lock);
		memset(&r->policy_doc, 0, sizeof(r->policy_doc));
		doc_forget(r, "v1/policy");
		return 0;
	}
	if (rc <= 0)
		return rc;
	rc = take_policy(resp.body, resp.len, "v1/policy", &part, &new_part);
	if (rc == 0 && new_part) {
		fill_doc(&d, &resp);
		doc_store(r, "v1/policy", &d, resp.body, resp.len);
		pthread_mutex_lock(&r->lock);
		ctl_part_put(r->pol_part);
		r->pol_part = part;
		pthread_mutex_unlock(&r->lock);
		r->policy_doc = d;
		*changed = true;
		if (part)
			af_info("policy: loaded from the control plane");
	}
	ctl_resp_release(&resp);
	return rc == AF_EPARSE ? 0 : rc;
}

/* Polls one project's listing into p. Same returns as get_doc's errors. */
static int poll_listing(struct ctl_remote *r, struct rproj *p, bool *changed,
			char *why, size_t whylen)
{
	struct ctl_resp resp;
	struct ctl_part *part;
	long long started = af_now_ms();
	char path[128];
	struct rdoc d;
	int status, rc;

	listing_path(p->name, path, sizeof(path));
	rc = get_doc(r, path, &p->doc, &resp, &status, why, whylen);
	if (rc == -EPROTO && status == 404) {
		/* Listed in /v1/projects, but gone by now: unregistered. */
		if (p->part)
			*changed = true;
		pthread_mutex_lock(&r->lock);
		ctl_part_put(p->part);
		p->part = NULL;
		memset(&p->doc, 0, sizeof(p->doc));
		pthread_mutex_unlock(&r->lock);
		doc_forget(r, path);
		return 0;
	}
	if (rc < 0)
		return rc;
	if (rc == 0) {
		pthread_mutex_lock(&r->lock);
		p->listed_at = started;
		pthread_mutex_unlock(&r->lock);
		return 0;
	}
	rc = take_listing(r, p->name, resp.body, resp.len, path, &part);
	if (rc == 0) {
		fill_doc(&d, &resp);
		doc_store(r, path, &d, resp.body, resp.len);
		pthread_mutex_lock(&r->lock);
		ctl_part_put(p->part);
		p->part = part;
		p->doc = d;
		p->listed_at = started;
		pthread_mutex_unlock(&r->lock);
		*changed = true;
	}
	ctl_resp_release(&resp);
	return rc == AF_EPARSE ? 0 : rc;
}

static int poll_projects(struct ctl_remote *r, bool *changed, char *why,
			 size_t whylen)
{
	struct ctl_resp resp;
	char **names = NULL, err[512];
	size_t n = 0;
	struct rdoc d;
	int status, rc;

	rc = get_doc(r, "v1/projects", &r->projects_doc, &resp, &status, why,
		     whylen);
	if (rc <= 0)
		return rc;
	rc = pol_projects_parse(resp.body, resp.len, "v1/projects", report_fwd,
				r, &names, &n, err, sizeof(err));
	if (rc == AF_EPARSE) {
		reportf(r, "%s (keeping the projects known before)", err);
		ctl_resp_release(&resp);
		return 0;
	}
	if (rc == 0) {
		fill_doc(&d, &resp);
		rc = set_projects(r, names, n, changed);
		if (rc == 0) {
			doc_store(r, "v1/projects", &d, resp.body, resp.len);
			r->projects_doc = d;
		}
	}
	ctl_resp_release(&resp);
	return rc;
}

static size_t records(const struct ctl_remote *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->n_projs; i++)
		if (r->projs[i].part)
			n += pol_registry_count(r->projs[i].part->obj);
	return n;
}

int ctl_remote_poll(struct ctl_remote *r, bool *changed)
{
	char why[512] = "";
	int rc = 0, prc;
	bool down;

	*changed = false;
	pthread_mutex_lock(&r->store_lock);
	if (r->conn_stale) {
		ctl_conn_free(r->conn);
		r->conn = NULL;
		r->conn_stale = false;
	}
	pthread_mutex_unlock(&r->store_lock);
	if (!r->conn) {
		rc = ctl_conn_new(r->cfg, r->tok, &r->conn);
		if (rc < 0) {
			snprintf(why, sizeof(why), "%s", af_strerror(rc));
			goto out;
		}
		ctl_conn_set_cancel(r->conn, &r->cancel);
	}
	if (!r->cfg->policy_file) {
		prc = poll_policy(r, changed, why, sizeof(why));
		if (prc == -EPROTO)
			af_err("registry: %s (keeping the policy known before)",
			       why);
		else if (prc < 0)
			rc = prc;
		if (prc < 0 && prc != -EPROTO)
			goto out;
	}
	prc = poll_projects(r, changed, why, sizeof(why));
	if (prc == -EPROTO) {
		af_err("registry: %s (keeping the projects known before)", why);
		rc = prc;
	} else if (prc < 0) {
		rc = prc;
		goto out;
	}
	for (size_t i = 0; i < r->n_projs; i++) {
		prc = poll_listing(r, &r->projs[i], changed, why, sizeof(why));
		if (prc == 0)
			continue;
		rc = prc;
		if (prc != -EPROTO)
			goto out;
		af_err("registry: %s (keeping the registrations of %s known before)",
		       why, r->projs[i].name);
	}
out:
	if (rc == -ECANCELED)
		return rc;	/* stopping: nothing to say, nothing learnt */
	down = rc < 0 && rc != -EPROTO;
	pthread_mutex_lock(&r->lock);
	r->reachable = !down;
	pthread_mutex_unlock(&r->lock);
	if (down) {
		af_err("registry: control plane %s: %s: serving the %zu registrations kept; retrying every %llus",
		       r->cfg->registry_url, why, records(r),
		       (unsigned long long)(r->cfg->registry_refresh_ms / 1000));
		r->said_down = true;
		/* A broken connection is not reused. */
		ctl_conn_free(r->conn);
		r->conn = NULL;
	} else if (r->said_down) {
		af_info("registry: control plane %s answers again",
			r->cfg->registry_url);
		r->said_down = false;
	}
	return rc;
}
