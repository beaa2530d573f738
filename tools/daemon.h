/*
 * daemon.h - the mount's composition root (tools/daemon.c).
 */
#ifndef TOOLS_DAEMON_H
#define TOOLS_DAEMON_H

struct pol_config;
struct fs_mount_opts;

/*
 * Mounts the filesystem described by cfg at opts->mountpoint and serves
 * it until SIGTERM/SIGINT or an unmount; SIGHUP reloads registry and
 * policy. Returns 0 after a clean unmount, or a negative error (the reason
 * already logged).
 */
int daemon_run(const struct pol_config *cfg, const struct fs_mount_opts *opts);

#endif
