/*
 * daemon.h - the mount's composition root (tools/daemon.c).
 */
#ifndef TOOLS_DAEMON_H
#define TOOLS_DAEMON_H

#include <stddef.h>
#include <jansson.h>

struct pol_config;
struct fs_mount_opts;

/*
 * What a live upgrade brings (tools/upgrade.h): the connection to the old
 * daemon, its STATE document and the fds that came with it. All taken by
 * daemon_run.
 */
struct daemon_adopt {
	int sock;
	json_t *state;
	int *fds;
	size_t nfds;
};

/*
 * Mounts the filesystem described by cfg at opts->mountpoint (or, with
 * adopt, takes over the running daemon's mount, DESIGN §13) and serves it
 * until SIGTERM/SIGINT or an unmount; SIGHUP reloads registry and policy;
 * a root connection on the control socket hands it to a new binary.
 * Returns 0 after a clean unmount, or a negative error (the reason
 * already logged). After handing the mount over, the process exits 0
 * without returning.
 */
int daemon_run(const struct pol_config *cfg, const struct fs_mount_opts *opts,
	       struct daemon_adopt *adopt);

#endif
