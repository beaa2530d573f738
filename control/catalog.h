/*
 * catalog.h - what the node knows of the control plane (DESIGN §3, §4):
 * the registrations and the policy in force, as one immutable snapshot
 * that readers take a reference to, and the thread that keeps it current
 * (reload on SIGHUP and on change).
 *
 * The catalog sits above cache/ and below fs/ (DESIGN §1): it feeds the
 * documents it reads to policy/'s parsers, which stay pure, and publishes
 * the result. A reader never sees a half-built state: a reload builds a
 * new snapshot aside and swaps it in whole; a reader holding the old one
 * keeps it until it drops its reference.
 *
 * Thread-safety: every function may be called from any thread, except
 * where stated. ctl_catalog_request_reload is async-signal-safe.
 */
#ifndef CTL_CATALOG_H
#define CTL_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct pol_config;
struct pol_registry;
struct pol_policy;
struct audit;

struct ctl_catalog;

/*
 * A snapshot: registrations and policy as of one load. Immutable; valid
 * until ctl_snap_put, and so is every pointer read from it. The policy may
 * be NULL (none known yet: every open is denied, DESIGN §4 fail closed).
 *
 * The registrations are held per project (each project's records one
 * pol_registry, shared with the next snapshot when the project did not
 * change), so a change to one project costs that project only.
 */
struct ctl_snap;

const struct pol_policy *ctl_snap_policy(const struct ctl_snap *s);
/* Increases with every published snapshot (1 for the first). */
uint64_t ctl_snap_generation(const struct ctl_snap *s);
/* Registrations in the snapshot, all projects. */
size_t ctl_snap_count(const struct ctl_snap *s);
/* The sorted distinct project names; *n set. */
const char *const *ctl_snap_projects(const struct ctl_snap *s, size_t *n);
/*
 * The records of one project (sorted by name, digest; read them with
 * pol_registry_count / pol_registry_at / pol_registry_channel), or NULL
 * when the project has none.
 */
const struct pol_registry *ctl_snap_project(const struct ctl_snap *s,
					    const char *project);
/* The registration project/name@digest, or NULL when unregistered. */
const struct pol_registration *ctl_snap_find(const struct ctl_snap *s,
					     const char *project,
					     const char *name,
					     const char *digest);
/*
 * The record a channel points to (DESIGN §7, pol_registry_channel with
 * the snapshot's policy), or NULL. *tie as there (may be NULL).
 */
const struct pol_registration *ctl_snap_channel(const struct ctl_snap *s,
						const char *project,
						const char *name,
						const char *channel, bool *tie);

/*
 * Creates an empty catalog (no registration, no policy) for cfg. cfg and
 * audit (may be NULL) must outlive it. With registry.url set, the
 * registrations (and the policy, unless policy.file is set) come from the
 * control plane's API (DESIGN §3); otherwise from registry.dir. Returns 0
 * and *out, or -ENOMEM.
 */
int ctl_catalog_new(const struct pol_config *cfg, struct audit *audit,
		    struct ctl_catalog **out);
/*
 * Stops the threads if they run and frees the catalog. Snapshots still
 * referenced stay valid until put. c == NULL does nothing.
 */
void ctl_catalog_free(struct ctl_catalog *c);

/*
 * Problems found while loading (a bad record, a duplicate, a refused
 * document) go to fn instead of the log (artifactfs check). Set before the
 * first load.
 */
typedef void (*ctl_problem_fn)(void *arg, const char *msg);
void ctl_catalog_on_problem(struct ctl_catalog *c, ctl_problem_fn fn,
			    void *arg);

/*
 * The cache whose index keeps the control plane's last answers (DESIGN
 * §3 outage: across restarts too); NULL: none. The catalog only stores
 * and reads documents through it (cache_doc_*). May be changed at any
 * time; the cache must stay open until it is replaced or the catalog
 * stopped.
 */
void ctl_catalog_set_store(struct ctl_catalog *c, struct cache *store);

/*
 * Loads registry and policy now, on the calling thread, and publishes
 * them. initial == true: a policy file that cannot be loaded is an error
 * (the mount must not start on a broken policy); with registry.url, only
 * what the store kept is loaded (no network: a daemon with run_as reads
 * nothing from the network before it drops its privileges); call
 * ctl_catalog_sync next. Later loads keep the last good policy file, and
 * the last good registry when the registry folder or the control plane
 * cannot be read (a transient error never empties what the node knows);
 * both say so loudly. Audits registry_loaded / policy_loaded. Returns 0,
 * or a negative error (initial load only).
 */
int ctl_catalog_load(struct ctl_catalog *c, bool initial);
/*
 * With registry.url: asks the control plane now, on the calling thread
 * (bounded by the [fetch] timeouts), and publishes what changed. A control
 * plane that cannot be reached or refuses the token is logged loudly, not
 * an error: the node serves what it kept. Without registry.url: nothing.
 * Returns 0 or -ENOMEM.
 */
int ctl_catalog_sync(struct ctl_catalog *c);
/* Whether the last load reached the control plane (always true without). */
bool ctl_catalog_reachable(struct ctl_catalog *c);
/*
 * Called on the reload thread after each load that published a new
 * snapshot; why is "signal" (SIGHUP), "change" (files changed) or
 * "initial". Set before ctl_catalog_start. fn must not block for long.
 */
typedef void (*ctl_reload_fn)(void *arg, const char *why);
void ctl_catalog_on_reload(struct ctl_catalog *c, ctl_reload_fn fn, void *arg);

/*
 * Starts the reload thread (and, with registry.url, the probe thread).
 * From files, it reloads on ctl_catalog_request_reload and when the
 * registry folder or the policy file changed (checked every
 * registry.refresh). From the control plane, it polls every
 * registry.refresh (less up to a tenth, at random, so that a fleet does
 * not poll in step; never more) and on ctl_catalog_request_reload; the
 * first poll comes at once when ctl_catalog_sync did not run before
 * (a live upgrade's new daemon, which must not keep the mount waiting on
 * the network). Call once; returns 0 or -errno.
 */
int ctl_catalog_start(struct ctl_catalog *c);
/*
 * Stops the threads (a waiting probe is answered) and forgets the store;
 * the snapshots stay. Call before closing the store's cache. Idempotent.
 */
void ctl_catalog_stop(struct ctl_catalog *c);
/* Asks the reload thread for a reload (SIGHUP). Async-signal-safe. */
void ctl_catalog_request_reload(struct ctl_catalog *c);
/*
 * The fd a signal handler writes one byte 'h' to for the same effect (so
 * the handler needs no pointer, only a sig_atomic_t). Valid while c lives.
 */
int ctl_catalog_reload_fd(const struct ctl_catalog *c);

/*
 * What the loads did, for metrics and the service status (DESIGN §13).
 * Lock-free (atomics): a scrape never waits on a lock a request holds.
 */
struct ctl_stats {
	long long last_success_s;	/* epoch s of the last load that read
					   the registry; 0 before the first */
	bool last_failed;		/* the last load could not read it: the
					   node serves what it saw before */
	uint64_t registrations;		/* in the current snapshot */
	uint64_t loads;			/* loads attempted */
};
void ctl_catalog_stats(struct ctl_catalog *c, struct ctl_stats *out);

/*
 * A lookup of project/name@digest that the current snapshot does not hold
 * (DESIGN §3): with registry.url, asks the control plane for that one
 * registration, waiting at most wait_ms; a registration it confirms is in
 * the current snapshot when this returns 0. -ENOENT otherwise: not
 * registered, not answered within wait_ms (the answer still lands for
 * the next lookup), the control plane unreachable at the last poll, or
 * the probe budget spent. Answers are cached (a miss for a few seconds,
 * or until the next listing), and requests are bounded in number and
 * rate, so a flood of wrong names costs a bounded number of requests.
 * Without registry.url, -ENOENT at once. Called from FUSE workers.
 */
int ctl_catalog_probe(struct ctl_catalog *c, const char *project,
		      const char *name, const char *digest, long wait_ms);

/* The current snapshot with a reference taken. Never NULL. */
struct ctl_snap *ctl_catalog_snap(struct ctl_catalog *c);
/* Drops a reference; the last one frees the snapshot. s == NULL: nothing. */
void ctl_snap_put(struct ctl_snap *s);

#endif
