/*
 * upgrade.h - live upgrade (DESIGN §13, issue 13): the control socket a
 * running daemon listens on, and the versioned hand-over protocol spoken
 * on it. The state itself (inodes, handles, waiting opens) is fs/'s
 * (fs_handover_*); this module carries it, with its file descriptors.
 *
 * The socket is <cache.dir>/ctl.<xxh3 of the mount point>.sock, mode 0600
 * root:root, bound before the daemon drops privileges and handed on to
 * each new daemon (the path never changes hands). A connecting process
 * must be root (SO_PEERCRED). One exchange:
 *
 *   new -> old   HELLO  {"version": V, "min_version": M}
 *   old -> new   REFUSE {"reason"}                 (old goes on serving)
 *             or STATE  {"version", "pid", ...fs state...} + fds
 *   new -> old   READY  {}    (everything built; nothing read yet)
 *             or FAIL   {"reason"}                  (old resumes)
 *   old -> new   GO     {}    (old never reads again, then exits)
 *
 * The old daemon stops reading requests before it sends STATE and resumes
 * if the new one fails, refuses, dies or stays silent before READY
 * (UPGRADE_READY_TIMEOUT_S). Only after GO does the new daemon read.
 */
#ifndef TOOLS_UPGRADE_H
#define TOOLS_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

struct pol_config;

/* The hand-over format this binary writes, and the oldest it reads. */
#define UPGRADE_VERSION		1
#define UPGRADE_MIN_VERSION	1
#define UPGRADE_READY_TIMEOUT_S	60
/* How long the old daemon lets ranges in flight land before handing over. */
#define UPGRADE_DRAIN_MS	5000
/* Largest frame accepted (the state of 100k inodes fits many times). */
#define UPGRADE_FRAME_MAX	((size_t)256 << 20)
/* Most fds carried by one hand-over. */
#define UPGRADE_FDS_MAX		65536

enum upgrade_type {
	UPGRADE_HELLO = 1,
	UPGRADE_REFUSE,
	UPGRADE_STATE,
	UPGRADE_READY,
	UPGRADE_FAIL,
	UPGRADE_GO,
};

/* Path of the control socket for mountpoint. 0 or -ENAMETOOLONG. */
int upgrade_sock_path(const struct pol_config *cfg, const char *mountpoint,
		      char *buf, size_t len);

/*
 * Sends one frame: type, the JSON document (compact), and fds (may be
 * none; more than fit one message go in follow-up messages). Returns 0 or
 * -errno.
 */
int upgrade_send(int sock, enum upgrade_type type, const json_t *doc,
		 const int *fds, size_t nfds);
/*
 * Receives one frame within timeout_s (0: none). *doc gets the parsed
 * document (caller decrefs), *fds a malloc'd array of the fds received
 * (caller closes and frees; may be NULL with *nfds 0). Returns the type
 * (> 0), 0 at end of file, or -errno (-EPROTO for a malformed frame, whose
 * fds are closed).
 */
int upgrade_recv(int sock, unsigned timeout_s, json_t **doc, int **fds,
		 size_t *nfds);

/* Closes and frees fds received. */
void upgrade_close_fds(int *fds, size_t nfds);

/*
 * The daemon's side: binds and listens on path (mode 0600, owner root) as
 * the caller (root), replacing a stale socket. Returns the listening fd
 * or -errno.
 */
int upgrade_listen(const char *path);
/*
 * Accepts one connection on the listening fd, checks the peer is root.
 * Returns the connected fd, -EAGAIN when none is waiting, -EPERM for a
 * peer that is not root (closed), or -errno.
 */
int upgrade_accept(int lfd);
/* Connects to path as a client. Returns the fd or -errno. */
int upgrade_connect(const char *path);

#endif
