/*
 * ctl_int.h - private to control/: the refcounted parts snapshots are made
 * of, the remote control-plane client (remote.c) and its HTTP connection
 * (http.c), and the lookup probes (probe.c).
 *
 *   catalog.c  snapshots, publishing, the reload thread, the file registry
 *   remote.c   polling the control plane's API (DESIGN §3), the documents
 *              kept in the cache index for outages
 *   http.c     one blocking HTTP connection to the control plane: token,
 *              conditional requests, redirects, size and time limits
 *   probe.c    a lookup the last listing missed: one bounded request,
 *              answered within a bounded wait, with a negative cache
 */
#ifndef CTL_CTL_INT_H
#define CTL_CTL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct pol_config;
struct pol_registration;
struct pol_registry;
struct pol_policy;
struct ctl_catalog;

/* ---- parts -------------------------------------------------------------- */

/*
 * An immutable object (a pol_registry, a pol_policy) shared by the
 * snapshots that contain it, with its own count (atomic).
 */
struct ctl_part {
	void *obj;
	void (*free_fn)(void *obj);
	int refs;			/* __atomic */
};

/* Wraps obj (taken; freed on failure). NULL on -ENOMEM. */
struct ctl_part *ctl_part_new(void *obj, void (*free_fn)(void *obj));
struct ctl_part *ctl_part_get(struct ctl_part *p);
/* p == NULL does nothing. */
void ctl_part_put(struct ctl_part *p);
struct ctl_part *ctl_part_registry(struct pol_registry *g);
struct ctl_part *ctl_part_policy(struct pol_policy *p);

/* One project of a snapshot: its name and its records (a pol_registry). */
struct ctl_proj {
	char *name;
	struct ctl_part *part;
};

/* Frees n projects (names, part references) and the array. */
void ctl_projs_free(struct ctl_proj *v, size_t n);

/* Problems found while loading (a bad record, a refused document). */
typedef void (*ctl_report_fn)(void *arg, const char *msg);

/* ---- the HTTP connection (http.c) -------------------------------------- */

/* Largest document accepted from the control plane (one listing). */
#define CTL_DOC_MAX	((size_t)16 << 20)

/* The bearer token from registry.token_file, shared by connections. */
struct ctl_token;

/*
 * path NULL: no token. Returns 0 and *out, or -ENOMEM. The file is read
 * lazily, and again whenever it changed (stat identity: device, inode,
 * size, mtime, ctime), e.g. replaced by rename.
 */
int ctl_token_new(const char *path, struct ctl_token **out);
void ctl_token_free(struct ctl_token *t);

struct ctl_conn;

/*
 * A connection to the control plane at cfg->registry_url (keep-alive
 * reused between requests). Used by one thread at a time. Returns 0 and
 * *out, or -ENOMEM.
 */
int ctl_conn_new(const struct pol_config *cfg, struct ctl_token *tok,
		 struct ctl_conn **out);
void ctl_conn_free(struct ctl_conn *k);
/*
 * A flag (read atomically) that, once true, aborts the request in flight
 * within about a second (-ECANCELED) and every later one: stopping never
 * waits for a network timeout. NULL: none.
 */
void ctl_conn_set_cancel(struct ctl_conn *k, const bool *cancel);

struct ctl_resp {
	int status;			/* HTTP status of the last hop */
	char *body;			/* NUL-terminated; NULL when none */
	size_t len;
	char etag[256];			/* "" when none */
	char last_modified[64];		/* "" when none */
};

void ctl_resp_release(struct ctl_resp *r);

/*
 * GET {registry.url}/{path} (path without a leading slash, already
 * percent-encoded), conditional on etag / last_modified when not NULL or
 * empty (If-None-Match, If-Modified-Since). Redirects: at most 5, never
 * from https to http, the token only to the origin of registry.url.
 * Bounded by [fetch] connect_timeout, low_speed_timeout and timeout_ms
 * overall; a body over CTL_DOC_MAX is refused. Returns 0 with out filled
 * (any status; the body kept only for 200), or a negative error (no
 * answer: AF_ETIMEDOUT, AF_ESOURCE, -E2BIG, -ENOMEM) with why filled (no
 * secret).
 */
int ctl_conn_get(struct ctl_conn *k, const char *path, const char *etag,
		 const char *last_modified, long timeout_ms,
		 struct ctl_resp *out, char *why, size_t whylen);

/*
 * Appends s to buf (at *pos, NUL-terminated) percent-encoded as one path
 * segment: everything but unreserved characters (RFC 3986 §2.3). Returns
 * 0 or -ENAMETOOLONG.
 */
int ctl_path_segment(char *buf, size_t len, size_t *pos, const char *s);

/* ---- the remote client (remote.c) -------------------------------------- */

struct ctl_remote;

int ctl_remote_new(const struct pol_config *cfg, ctl_report_fn report,
		   void *arg, struct ctl_remote **out);
void ctl_remote_free(struct ctl_remote *r);
/*
 * The cache index the answers are kept in (NULL: none). Any thread, any
 * time: the store is used under a lock of its own, one index operation
 * at a time, so this returns at once even while a poll waits on the
 * network; once it returned, the old store is no longer touched. The
 * poll's connection is dropped before its next request (a new process
 * phase never reuses one).
 */
void ctl_remote_set_store(struct ctl_remote *r, struct cache *store);
/* Forgets the store for good: ctl_remote_set_store does nothing after. */
void ctl_remote_close_store(struct ctl_remote *r);
/*
 * Aborts a poll in flight within about a second, and every later one
 * (the catalog is stopping). Any thread.
 */
void ctl_remote_cancel(struct ctl_remote *r);
/*
 * Loads what the store kept of this control plane (registry.url) into
 * the state, as if those answers had just arrived. Returns the number of
 * documents restored (0 when none).
 */
int ctl_remote_restore(struct ctl_remote *r);
/*
 * Polls the control plane once: the policy (unless policy.file is set),
 * the projects, each project's registrations, all conditional. What fails
 * keeps what the node had (a 500, a reset, a truncated or malformed
 * document), said loudly; a project no longer listed goes. *changed: the
 * state changed. Returns 0 when every request was answered, else a
 * negative error (some of the state is from before).
 */
int ctl_remote_poll(struct ctl_remote *r, bool *changed);
/* The current projects, with references taken (ctl_projs_free). */
int ctl_remote_projects(struct ctl_remote *r, struct ctl_proj **out,
			size_t *n);
/*
 * The current policy part (a reference, NULL when none is known or the
 * last one was invalid: fail closed, DESIGN §4). *from_remote: whether
 * the control plane's policy is in use (policy.file unset).
 */
struct ctl_part *ctl_remote_policy(struct ctl_remote *r);
/*
 * Start (monotonic ms) of the last answered listing of project; 0 when
 * none was answered since the start (restored), -1 when the project is
 * not known.
 */
long long ctl_remote_listed_at(struct ctl_remote *r, const char *project);
/* Whether the last poll reached the control plane. */
bool ctl_remote_reachable(struct ctl_remote *r);
/* The token, for the probe's own connection. */
struct ctl_token *ctl_remote_token(struct ctl_remote *r);

/* ---- probes (probe.c) --------------------------------------------------- */

struct ctl_probes;

/*
 * found(arg, r, fetched_ms) adds a record the control plane confirmed to
 * the catalog (r copied); returns true when it was published.
 */
typedef bool (*ctl_probe_found_fn)(void *arg, const struct pol_registration *r,
				   long long fetched_ms);

int ctl_probes_new(const struct pol_config *cfg, struct ctl_remote *remote,
		   ctl_probe_found_fn found, void *arg,
		   struct ctl_probes **out);
/* Starts the probe thread. Returns 0 or -errno. */
int ctl_probes_start(struct ctl_probes *p);
/* Stops the thread (waiters answered -ECANCELED) and frees. NULL: nothing. */
void ctl_probes_free(struct ctl_probes *p);
/* See ctl_catalog_probe in catalog.h. */
int ctl_probes_ask(struct ctl_probes *p, const char *project,
		   const char *name, const char *digest, long wait_ms);
/* Forgets every negative answer (a new listing arrived). */
void ctl_probes_clear_negative(struct ctl_probes *p);

#endif
