/*
 * privsep.h - privilege separation (DESIGN §13, issue 11), in the style of
 * OpenSSH's privsep: the daemon that reads /dev/fuse, talks to the network
 * and parses what comes back runs as [daemon] run_as with no capability;
 * the one thing that still needs CAP_SYS_ADMIN after the mount, registering
 * FUSE passthrough backing files, goes to a tiny helper process that stays
 * root, holds only CAP_SYS_ADMIN, and does nothing but:
 *
 *   OPEN   one fd passed with SCM_RIGHTS: registered as a backing file
 *          (FUSE_DEV_IOC_BACKING_OPEN) only when it is a regular file on
 *          the cache directory's filesystem, opened read-only; answers the
 *          backing id.
 *   CLOSE  a backing id this helper registered: closed.
 *   UNMOUNT the mount point fixed at start, detached (a clean stop: the
 *          daemon may no longer unmount a mount root made).
 *
 * Anything else (no fd, two fds, a pipe, a directory, another device, a
 * writable or O_PATH fd, an id it did not open, a short or unknown
 * message) is refused with an errno and changes nothing. The helper exits
 * when the daemon's end of the socket closes (and on the daemon's death),
 * so it never keeps a dead daemon's FUSE connection alive.
 */
#ifndef TOOLS_PRIVSEP_H
#define TOOLS_PRIVSEP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum privsep_op {
	PRIVSEP_OPEN = 1,
	PRIVSEP_CLOSE = 2,
	PRIVSEP_UNMOUNT = 3,
};

/* On the wire, both ways: one fixed-size SOCK_SEQPACKET message. */
struct privsep_msg {
	uint32_t op;		/* enum privsep_op (request), or echoed */
	int32_t arg;		/* CLOSE: backing id; reply: id or -errno */
};

/* What the helper serves; fixed when it starts. */
struct privsep_server {
	int sock;		/* its end of the socketpair */
	int fuse_fd;		/* the FUSE connection (/dev/fuse) */
	dev_t cache_dev;	/* st_dev of cache.dir */
	const char *mountpoint;	/* for UNMOUNT */
	/* Ids this helper registered and not yet closed. */
	int *ids;
	size_t n_ids, cap_ids;
};

/*
 * Checks that fd may become a backing file: a regular file on cache_dev,
 * open read-only (not O_PATH). Returns 0 or the -errno of the refusal
 * (-EBADF, -EINVAL for the wrong type, -EXDEV for another device, -EPERM
 * for a writable or O_PATH fd).
 */
int privsep_check_fd(int fd, dev_t cache_dev);

/*
 * Answers one request read from s->sock. Returns 1 after a request was
 * answered (refusals included), 0 at end of file (the daemon is gone), or
 * -errno when the socket failed.
 */
int privsep_serve_one(struct privsep_server *s);

/* Frees the id table (not the fds). */
void privsep_server_release(struct privsep_server *s);

/* The daemon's side. */
struct privsep;

/*
 * Forks the helper: the child keeps root and CAP_SYS_ADMIN only, the
 * socket and a copy of fuse_fd, closes every other fd and serves until
 * the daemon's end closes. ids (n_ids, may be 0) are backing ids already
 * registered on the connection (a live upgrade) that it may close too.
 * Call before the daemon starts any thread. Returns 0 and *out, or -errno.
 */
int privsep_start(int fuse_fd, const char *cache_dir, const char *mountpoint,
		  const int *ids, size_t n_ids, struct privsep **out);

/*
 * Client calls, thread-safe (one request at a time on the socket):
 * the backing id (> 0) or -errno; 0 or -errno; 0 or -errno.
 */
int privsep_backing_open(struct privsep *p, int fd);
int privsep_backing_close(struct privsep *p, int id);
int privsep_unmount(struct privsep *p);

/* The helper's pid (for tests and logs). */
pid_t privsep_pid(const struct privsep *p);

/*
 * Closes the socket (the helper exits), reaps the helper and frees p.
 * p == NULL does nothing.
 */
void privsep_stop(struct privsep *p);

/*
 * Drops the calling process to user (name or uid) for good: supplementary
 * groups cleared, real/effective/saved gid and uid set, no capability
 * left, not dumpable, no new privileges. Returns 0 or -errno (logged).
 * Call with no other thread running.
 */
int privsep_drop(uid_t uid, gid_t gid);

/*
 * Resolves user (a name, or a number) to uid and its primary gid. Returns
 * 0, or -ENOENT with nothing set.
 */
int privsep_lookup_user(const char *user, uid_t *uid, gid_t *gid);

/*
 * Makes dir (created if missing) and everything below it owned by
 * uid:gid, and dir itself mode 0700 (DESIGN §13). Returns 0 or -errno.
 */
int privsep_own_tree(const char *dir, uid_t uid, gid_t gid);

#endif
