/*
 * fs.h - the FUSE side of artifactfs (DESIGN §7): turns kernel requests
 * into (project, name, digest), asks the catalog (control/) for the
 * registration and policy/ for a decision, asks cache/ for verified bytes,
 * and replies. Nothing here parses outside input beyond splitting a file
 * name at its last '@'; nothing here talks to the network.
 *
 * The composition root (tools/) creates the contexts fs uses and owns
 * them; the order of a mount is:
 *
 *   fs_new -> fs_mount -> (detach: tools/) -> (create threads, the cache)
 *   -> fs_set_cache -> fs_serve -> (close the cache) -> fs_free
 *
 * The cache must be closed after fs_serve returns and before fs_free:
 * closing it answers every open still waiting on a fetch, and those
 * replies need the session, which fs_free unmounts and destroys.
 */
#ifndef FS_FS_H
#define FS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pol_config;
struct audit;
struct cache;
struct ctl_catalog;

struct fs_mount_opts {
	const char *mountpoint;
	const char *fuse_opts;		/* extra -o options, may be NULL */
	bool foreground;		/* stay attached (-f) */
	bool debug;			/* libfuse debug output */
};

/* What the filesystem uses; all must outlive it. */
struct fs_deps {
	const struct pol_config *cfg;
	struct audit *audit;		/* may be NULL */
	struct ctl_catalog *catalog;
};

/* The mounted filesystem (the FUSE session and its tables). */
struct fs_ctx;

/*
 * Creates the FUSE session (always read-only, default_permissions and
 * allow_other, DESIGN §4) and installs the SIGTERM/SIGINT handlers that
 * end fs_serve. Mounts nothing. Returns 0 and *out, or a negative error
 * (logged).
 */
int fs_new(const struct fs_deps *deps, const struct fs_mount_opts *opts,
	   struct fs_ctx **out);
/* Mounts at mountpoint. Returns 0 or -EIO (logged). */
int fs_mount(struct fs_ctx *fs, const char *mountpoint);
/*
 * The cache opens are served from, and sizes learned through (fs asks the
 * cache, never a source: DESIGN §1); set before fs_serve.
 */
void fs_set_cache(struct fs_ctx *fs, struct cache *cache);
/*
 * Who registers FUSE passthrough backing files and unmounts at the end
 * (DESIGN §13). Unset, the daemon does both itself, which needs
 * CAP_SYS_ADMIN; with privilege separation a helper process that kept it
 * does. Each call returns as documented or -errno.
 */
struct fs_backing_ops {
	int (*open)(void *arg, int fd);		/* backing id > 0 */
	int (*close)(void *arg, int id);	/* 0 */
	int (*unmount)(void *arg);		/* 0 */
	void *arg;
};
/* Sets them (copied); before fs_serve. */
void fs_set_backing(struct fs_ctx *fs, const struct fs_backing_ops *ops);
/* The FUSE connection's fd (/dev/fuse), for the helper to share. */
int fs_session_fd(struct fs_ctx *fs);

/*
 * Serves requests until SIGTERM/SIGINT or an unmount. Returns 0 after a
 * clean end, or a negative error (logged); -ENOTSUP when passthrough = on
 * and the kernel does not offer it.
 */
int fs_serve(struct fs_ctx *fs);
/*
 * Unmounts (if mounted), removes the signal handlers, destroys the
 * session and frees the tables. fs == NULL does nothing.
 */
void fs_free(struct fs_ctx *fs);

/*
 * The catalog published a new snapshot (ctl_catalog_on_reload): names the
 * kernel still holds that the snapshot no longer has are invalidated, so
 * their inodes are forgotten and freed. Call from the catalog's thread,
 * never from a FUSE request. fs == NULL or not mounted: nothing.
 */
void fs_catalog_changed(struct fs_ctx *fs);

/*
 * Open outcomes since the session began (DESIGN §13
 * artifactfs_opens_total{result}), by the errno the opener got: EACCES
 * denied, EIO eio, EAGAIN eagain (O_NONBLOCK, fetch started), EINTR eintr;
 * enoent also counts lookups of names no registration backs (such an open
 * never reaches open). Anything else (EROFS, EISDIR, ENOMEM, …) is other.
 */
enum fs_open_result {
	FS_OPEN_OK = 0,
	FS_OPEN_DENIED,
	FS_OPEN_ENOENT,
	FS_OPEN_EIO,
	FS_OPEN_EAGAIN,
	FS_OPEN_EINTR,
	FS_OPEN_OTHER,
	FS_OPEN_RESULTS
};
struct fs_stats {
	uint64_t opens[FS_OPEN_RESULTS];
};
/* Copies the counters: relaxed atomic loads, no lock (a metrics scrape). */
void fs_get_stats(struct fs_ctx *fs, struct fs_stats *out);

/*
 * Live upgrade (DESIGN §13). The state the kernel holds references to —
 * inode numbers with their lookup counts, open handles, passthrough
 * backing ids, opens waiting for a fetch, the kernel's INIT — moves to a
 * new process as a JSON document plus file descriptors (tools/upgrade.h
 * carries them).
 *
 * The old daemon: fs_request_stop (any thread) makes fs_serve return with
 * every request it read answered and nothing more read; fs_handover_hold
 * takes the opens still waiting away from the cache (close it after);
 * fs_handover_export describes the rest; then fs_handover_done (the new
 * daemon has it: fs_free must neither answer nor unmount anything), or
 * fs_handover_resume with a cache set again (serve on).
 *
 * The new daemon: fs_adopt instead of fs_mount, then (after fs_set_cache,
 * once the old daemon let go) fs_adopt_resume. Returns: 0 or -errno.
 */
#include <jansson.h>
void fs_request_stop(struct fs_ctx *fs);
/* Whether the last fs_serve returned for fs_request_stop. */
bool fs_stop_requested(const struct fs_ctx *fs);
void fs_handover_hold(struct fs_ctx *fs);
/*
 * *doc (caller decrefs) refers to (*fds)[i] by index; the fds stay fs's
 * (send copies). The device fd is first.
 */
int fs_handover_export(struct fs_ctx *fs, json_t **doc, int **fds,
		       size_t *nfds);
void fs_handover_done(struct fs_ctx *fs);
int fs_handover_resume(struct fs_ctx *fs);
/*
 * Takes the fds it keeps (their entries become -1); the rest stay the
 * caller's. Until fs_adopt_resume, fs_free leaves the mount alone.
 */
int fs_adopt(struct fs_ctx *fs, const char *mountpoint, const json_t *doc,
	     int *fds, size_t nfds);
int fs_adopt_resume(struct fs_ctx *fs);
/*
 * The passthrough backing ids registered now (for a privileged helper
 * that must be allowed to close them). Fills at most max; returns the
 * count.
 */
size_t fs_backing_ids(struct fs_ctx *fs, int *ids, size_t max);

/*
 * Splits "name@ref" at the last '@'. Returns false when there is no '@',
 * the name part is empty or the ref is empty. name gets a copy of at most
 * namelen-1 bytes (false if longer); *ref points into s.
 */
bool fs_split_ref(const char *s, char *name, size_t namelen, const char **ref);

#endif
