/*
 * cred_int.h - private to sources/: the credential provider (DESIGN §5,
 * §5b). It finds the credential of a registration in credentials.dir (the
 * longest matching scope wins) or asks credentials.helper (run with the
 * request on stdin, killed after [credentials] helper_timeout), keeps it
 * until shortly before expires_at and fetches the next one before then.
 *
 * Threads. All of that work runs on the provider's own worker threads,
 * never on the HTTP engine thread: a source subscribes (cred_sub_new, no
 * I/O), and its header hook, on the engine thread, only looks at what the
 * subscription holds now (cred_sub_get, a mutex and a reference count).
 * When nothing usable is in hand yet the hook parks the request
 * (HTTP_HOOK_WAIT) and the subscription's wake callback unparks it when
 * the answer arrives: a helper that takes 10 s delays only the blobs that
 * need its answer.
 *
 * Refusals (a credential without or past expires_at, valid longer than
 * credentials.max_lifetime, with unknown fields; a helper that fails,
 * hangs, prints garbage or answers for another scope) are audited as
 * credential_refused naming the file or the helper and why, and logged;
 * the subscription then answers CRED_REFUSED and the fetch fails (EIO).
 * Never a secret in any of it.
 */
#ifndef SRC_CRED_INT_H
#define SRC_CRED_INT_H

#include <stdbool.h>
#include <stddef.h>

struct audit;
struct pol_config;
struct pol_cred;
struct pol_registration;

struct cred_provider;

/*
 * A credential held by reference: immutable while referenced; drop it
 * with cred_put. c is never NULL.
 */
struct cred_ref {
	unsigned refs;			/* __atomic */
	struct pol_cred *c;
};
/* Drops a reference; the last one wipes and frees. NULL does nothing. */
void cred_put(struct cred_ref *r);

/*
 * Starts the provider's worker threads when cfg has a credentials.dir or
 * a credentials.helper; otherwise *out is a provider that answers
 * CRED_NONE for everything. cfg and audit (may be NULL) must outlive it.
 * Returns 0 or -errno.
 */
int cred_provider_new(const struct pol_config *cfg, struct audit *audit,
		      struct cred_provider **out);
/* Whether a credentials.dir or credentials.helper is configured. */
bool cred_provider_enabled(const struct cred_provider *p);
/*
 * Stops the workers (a helper still running is killed). Subscriptions
 * still alive may only be freed afterwards; the provider's memory goes
 * with the last of them. NULL does nothing.
 */
void cred_provider_free(struct cred_provider *p);

/* The credential of one registration for one source, kept fresh. */
struct cred_sub;

/* Called on a worker thread whenever the subscription's answer changed. */
typedef void (*cred_wake_fn)(void *arg);

/*
 * Subscribes to r's credential and starts looking for it (on a worker;
 * no I/O here). wake (may be NULL) is called after each change until
 * cred_sub_free. Returns 0 and *out, or -ENOMEM.
 */
int cred_sub_new(struct cred_provider *p, const struct pol_registration *r,
		 cred_wake_fn wake, void *arg, struct cred_sub **out);
/*
 * After this returns, wake is never called again; cred_sub_get still
 * works (a request being started may still ask). NULL does nothing.
 */
void cred_sub_unwake(struct cred_sub *s);
/* Frees s (and unwakes it). NULL does nothing. */
void cred_sub_free(struct cred_sub *s);

enum cred_state {
	CRED_PENDING = 0,	/* being looked for or renewed: wait for wake */
	CRED_NONE,		/* no credential matches: go without */
	CRED_READY,		/* *out holds a valid credential */
	CRED_REFUSED,		/* refused: reason says why (no secret) */
};

/*
 * What s holds now. Never blocks on I/O: safe on the engine thread. On
 * CRED_READY *out is a new reference (cred_put it), valid for at least
 * half a second more; an expired one starts its renewal and answers
 * CRED_PENDING. reason (may be NULL) is filled for CRED_REFUSED.
 */
enum cred_state cred_sub_get(struct cred_sub *s, struct cred_ref **out,
			     char *reason, size_t reasonlen);

/* Counters for tests: helper runs started, dir scans done. */
struct cred_stats {
	unsigned long helper_runs;
	unsigned long dir_scans;
};
void cred_provider_stats(struct cred_provider *p, struct cred_stats *out);

#endif
