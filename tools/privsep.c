/*
 * privsep.c - the privileged helper and the daemon's side of it
 * (privsep.h). The helper's whole job fits on a screen on purpose: what
 * stays root must be small enough to read in one sitting.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../policy/af.h"
#include "privsep.h"

/* The kernel's FUSE passthrough ioctls (Linux >= 6.9, uapi fuse.h). */
#ifndef FUSE_DEV_IOC_BACKING_OPEN
struct fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FUSE_DEV_IOC_MAGIC		229
#define FUSE_DEV_IOC_BACKING_OPEN	_IOW(FUSE_DEV_IOC_MAGIC, 1, \
					     struct fuse_backing_map)
#define FUSE_DEV_IOC_BACKING_CLOSE	_IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)
#endif

/* Most fds one message may carry before it is refused whole. */
#define PRIVSEP_MAX_FDS	4
/* Most backing ids registered at once (one per open inode). */
#define PRIVSEP_MAX_IDS	65536

/* ---- the helper -------------------------------------------------------- */

int privsep_check_fd(int fd, dev_t cache_dev)
{
	struct stat st;
	int fl;

	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	if (fl & O_PATH)
		return -EPERM;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_dev != cache_dev)
		return -EXDEV;
	if ((fl & O_ACCMODE) != O_RDONLY)
		return -EPERM;
	return 0;
}

static bool id_take(struct privsep_server *s, int id)
{
	for (size_t i = 0; i < s->n_ids; i++) {
		if (s->ids[i] == id) {
			s->ids[i] = s->ids[--s->n_ids];
			return true;
		}
	}
	return false;
}

static int id_add(struct privsep_server *s, int id)
{
	if (s->n_ids == s->cap_ids) {
		size_t cap = s->cap_ids ? s->cap_ids * 2 : 64;
		int *v;

		if (cap > PRIVSEP_MAX_IDS)
			return -ENOSPC;
		v = realloc(s->ids, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->ids = v;
		s->cap_ids = cap;
	}
	s->ids[s->n_ids++] = id;
	return 0;
}

static int do_open(struct privsep_server *s, int fd)
{
	struct fuse_backing_map map = { .fd = fd };
	int rc, id;

	rc = privsep_check_fd(fd, s->cache_dev);
	if (rc)
		return rc;
	id = ioctl(s->fuse_fd, FUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id <= 0)
		return id < 0 ? -errno : -EIO;
	rc = id_add(s, id);
	if (rc) {
		uint32_t u = (uint32_t)id;

		ioctl(s->fuse_fd, FUSE_DEV_IOC_BACKING_CLOSE, &u);
		return rc;
	}
	return id;
}

static int do_close(struct privsep_server *s, int id)
{
	uint32_t u = (uint32_t)id;

	if (id <= 0 || !id_take(s, id))
		return -ENOENT;	/* not one of ours */
	return ioctl(s->fuse_fd, FUSE_DEV_IOC_BACKING_CLOSE, &u) < 0 ?
	       -errno : 0;
}

static int do_unmount(struct privsep_server *s)
{
	if (!s->mountpoint)
		return -EINVAL;
	return umount2(s->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ?
	       -errno : 0;
}

int privsep_serve_one(struct privsep_server *s)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PRIVSEP_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct privsep_msg m = { 0 }, reply;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	int fds[PRIVSEP_MAX_FDS];
	size_t nfds = 0;
	ssize_t n;
	int rc;

	do {
		n = recvmsg(s->sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && nfds < PRIVSEP_MAX_FDS; i++)
			memcpy(&fds[nfds++], CMSG_DATA(c) + i * sizeof(int),
			       sizeof(int));
	}
	if (n == 0 && nfds == 0)
		return 0;
	if (n != (ssize_t)sizeof(m) || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)))
		rc = -EINVAL;
	else if (m.op == PRIVSEP_OPEN)
		rc = nfds == 1 ? do_open(s, fds[0]) : -EINVAL;
	else if (m.op == PRIVSEP_CLOSE)
		rc = nfds == 0 ? do_close(s, m.arg) : -EINVAL;
	else if (m.op == PRIVSEP_UNMOUNT)
		rc = nfds == 0 ? do_unmount(s) : -EINVAL;
	else
		rc = -EINVAL;
	/* The kernel holds its own reference to a registered file. */
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	reply.op = m.op;
	reply.arg = rc;
	if (send(s->sock, &reply, sizeof(reply), MSG_NOSIGNAL) < 0)
		return -errno;
	return 1;
}

void privsep_server_release(struct privsep_server *s)
{
	free(s->ids);
	s->ids = NULL;
	s->n_ids = s->cap_ids = 0;
}

/* Keeps only CAP_SYS_ADMIN, in the bounding set too. */
static int keep_only_sys_admin(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct d[2];

	for (int cap = 0; cap <= 63; cap++)
		if (cap != CAP_SYS_ADMIN && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return -errno;
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = 1u << CAP_SYS_ADMIN;
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return 0;
}

static void helper_main(int sock, int fuse_fd, dev_t dev,
			const char *mountpoint, const int *ids, size_t n_ids)
{
	struct privsep_server s = {
		.sock = 3, .fuse_fd = 4, .cache_dev = dev,
		.mountpoint = mountpoint,
	};
	int rc;

	int a, b;

	/* Only the socket and the FUSE connection: fds 3 and 4, nothing else. */
	a = fcntl(sock, F_DUPFD, 10);
	b = fcntl(fuse_fd, F_DUPFD, 10);
	if (a < 0 || b < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0)
		_exit(1);
	syscall(SYS_close_range, 5U, ~0U, 0U);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(0);	/* the daemon is already gone */
	prctl(PR_SET_DUMPABLE, 0);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (keep_only_sys_admin() < 0)
		af_warn("privsep helper: cannot drop the other capabilities");
	for (size_t i = 0; i < n_ids; i++)
		if (ids[i] > 0 && id_add(&s, ids[i]) < 0)
			_exit(1);
	while ((rc = privsep_serve_one(&s)) > 0)
		;
	privsep_server_release(&s);
	_exit(rc < 0 ? 1 : 0);
}

/* ---- the daemon's side -------------------------------------------------- */

struct privsep {
	int sock;
	pid_t pid;
	pthread_mutex_t lock;	/* one request at a time on sock */
};

int privsep_start(int fuse_fd, const char *cache_dir, const char *mountpoint,
		  const int *ids, size_t n_ids, struct privsep **out)
{
	struct privsep *p;
	struct stat st;
	int sv[2];
	pid_t pid;

	if (stat(cache_dir, &st) < 0)
		return -errno;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		free(p);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int rc = -errno;

		close(sv[0]);
		close(sv[1]);
		free(p);
		return rc;
	}
	if (pid == 0) {
		close(sv[0]);
		helper_main(sv[1], fuse_fd, st.st_dev, mountpoint, ids, n_ids);
	}
	close(sv[1]);
	p->sock = sv[0];
	p->pid = pid;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

static int call(struct privsep *p, uint32_t op, int32_t arg, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct privsep_msg m = { .op = op, .arg = arg }, reply;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int rc;

	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	pthread_mutex_lock(&p->lock);
	do {
		n = sendmsg(p->sock, &mh, MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	do {
		n = recv(p->sock, &reply, sizeof(reply), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		rc = -errno;
	else if (n != (ssize_t)sizeof(reply) || reply.op != op)
		rc = -EPROTO;	/* helper gone (0) or confused */
	else
		rc = reply.arg;
out:
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int privsep_backing_open(struct privsep *p, int fd)
{
	return call(p, PRIVSEP_OPEN, 0, fd);
}

int privsep_backing_close(struct privsep *p, int id)
{
	return call(p, PRIVSEP_CLOSE, id, -1);
}

int privsep_unmount(struct privsep *p)
{
	return call(p, PRIVSEP_UNMOUNT, 0, -1);
}

pid_t privsep_pid(const struct privsep *p)
{
	return p->pid;
}

void privsep_stop(struct privsep *p)
{
	if (!p)
		return;
	close(p->sock);
	while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
		;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- dropping privileges ------------------------------------------------ */

int privsep_lookup_user(const char *user, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	char buf[4096], *end;
	unsigned long n;

	if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res) {
		*uid = res->pw_uid;
		*gid = res->pw_gid;
		return 0;
	}
	errno = 0;
	n = strtoul(user, &end, 10);
	if (*user && !*end && errno == 0 && n > 0 && n < 0xfffffffful) {
		if (getpwuid_r((uid_t)n, &pw, buf, sizeof(buf), &res) == 0 && res) {
			*uid = res->pw_uid;
			*gid = res->pw_gid;
		} else {
			*uid = (uid_t)n;
			*gid = (gid_t)n;
		}
		return 0;
	}
	return -ENOENT;
}

int privsep_drop(uid_t uid, gid_t gid)
{
	uid_t r, e, s;

	if (uid == 0) {
		af_err("privsep: refusing to run as uid 0: set [daemon] run_as to a system user");
		return -EINVAL;
	}
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		int rc = -errno;

		af_err("privsep: cannot switch to uid %u: %s", (unsigned)uid,
		       strerror(errno));
		return rc;
	}
	/* No way back: every id is the user's, so no capability is left. */
	if (getresuid(&r, &e, &s) < 0 || r != uid || e != uid || s != uid ||
	    setuid(0) == 0) {
		af_err("privsep: the switch to uid %u did not hold", (unsigned)uid);
		return -EPERM;
	}
	prctl(PR_SET_DUMPABLE, 0);	/* holds credentials: no core, no ptrace */
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	return 0;
}

/* Owns everything below the directory open at dfd (taken). */
static int own_at(int dfd, uid_t uid, gid_t gid, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	int rc = 0;

	if (!d) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	while (rc == 0 && (e = readdir(d))) {
		struct stat st;
		int sub;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = errno == ENOENT ? 0 : -errno;
			continue;
		}
		if ((st.st_uid != uid || st.st_gid != gid) &&
		    fchownat(dfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			af_err("privsep: chown %s: %s", e->d_name, strerror(errno));
			continue;
		}
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth >= 32) {
			rc = -ELOOP;
			continue;
		}
		sub = openat(dfd, e->d_name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			rc = -errno;
			continue;
		}
		rc = own_at(sub, uid, gid, depth + 1);
	}
	closedir(d);
	return rc;
}

int privsep_own_tree(const char *dir, uid_t uid, gid_t gid)
{
	int fd;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0700) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return own_at(fd, uid, gid, 0);
}
