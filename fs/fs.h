/*
 * fs.h - the FUSE side of artifactfs (DESIGN §7): turns kernel requests
 * into (project, name, digest), asks policy/ for a decision and cache/ for
 * verified bytes, and replies. Nothing here parses outside input beyond
 * splitting a file name at its last '@'.
 */
#ifndef FS_FS_H
#define FS_FS_H

#include <stdbool.h>

struct pol_config;

struct fs_mount_opts {
	const char *mountpoint;
	const char *fuse_opts;		/* extra -o options, may be NULL */
	bool foreground;		/* stay attached (-f) */
	bool debug;			/* libfuse debug output */
};

/*
 * Mounts the filesystem described by cfg at opts->mountpoint and serves it
 * until SIGTERM/SIGINT or an unmount; SIGHUP reloads registry and policy.
 * Always mounts read-only with default_permissions and allow_other
 * (DESIGN §4). Returns 0 after a clean unmount, or a negative error (the
 * reason already logged).
 */
int fs_mount_run(const struct pol_config *cfg, const struct fs_mount_opts *opts);

/*
 * Splits "name@ref" at the last '@'. Returns false when there is no '@',
 * the name part is empty or the ref is empty. name gets a copy of at most
 * namelen-1 bytes (false if longer); *ref points into s.
 */
bool fs_split_ref(const char *s, char *name, size_t namelen, const char **ref);

#endif
