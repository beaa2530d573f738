/*
 * upgrade.c - the control socket and the hand-over frames (upgrade.h).
 *
 * A frame on the stream socket: a 16-byte header (magic "AFUP", type,
 * payload length, fd count, little-endian as the host writes it: both
 * ends are on one machine), the JSON payload, then one byte per batch of
 * at most UPGRADE_FDS_BATCH fds, each byte carrying its batch with
 * SCM_RIGHTS and read alone, so batches never merge.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <xxhash.h>

#include "../policy/af.h"
#include "../policy/config.h"
#include "upgrade.h"

#define UPGRADE_MAGIC		0x50554641u	/* "AFUP" */
#define UPGRADE_FDS_BATCH	250		/* below SCM_MAX_FD */

struct frame_hdr {
	uint32_t magic;
	uint32_t type;
	uint32_t len;
	uint32_t nfds;
};

int upgrade_sock_path(const struct pol_config *cfg, const char *mountpoint,
		      char *buf, size_t len)
{
	char abs[4096];
	const char *mp = realpath(mountpoint, abs) ? abs : mountpoint;
	uint64_t h = XXH3_64bits(mp, strlen(mp));
	struct sockaddr_un sa;
	int n;

	n = snprintf(buf, len, "%s/ctl.%016llx.sock", cfg->cache_dir,
		     (unsigned long long)h);
	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

static int send_all(int sock, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = send(sock, c, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_fds(int sock, const int *fds, size_t n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * UPGRADE_FDS_BATCH)];
		struct cmsghdr align;
	} ctl;
	char byte = 'F';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf };
	struct cmsghdr *c;
	ssize_t r;

	memset(&ctl, 0, sizeof(ctl));
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	do {
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	} while (r < 0 && errno == EINTR);
	return r == 1 ? 0 : (r < 0 ? -errno : -EIO);
}

int upgrade_send(int sock, enum upgrade_type type, const json_t *doc,
		 const int *fds, size_t nfds)
{
	struct frame_hdr h;
	char *text = NULL;
	size_t len = 0;
	int rc;

	if (nfds > UPGRADE_FDS_MAX)
		return -E2BIG;
	if (doc) {
		text = json_dumps(doc, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
		len = strlen(text);
	}
	if (len > UPGRADE_FRAME_MAX) {
		free(text);
		return -E2BIG;
	}
	h = (struct frame_hdr){ .magic = UPGRADE_MAGIC, .type = type,
				.len = (uint32_t)len, .nfds = (uint32_t)nfds };
	rc = send_all(sock, &h, sizeof(h));
	if (rc == 0 && len)
		rc = send_all(sock, text, len);
	free(text);
	for (size_t i = 0; rc == 0 && i < nfds; i += UPGRADE_FDS_BATCH)
		rc = send_fds(sock, fds + i, nfds - i < UPGRADE_FDS_BATCH ?
					     nfds - i : UPGRADE_FDS_BATCH);
	return rc;
}

/* Waits until sock is readable, up to deadline (ms, monotonic; 0: none). */
static int wait_readable(int sock, long long deadline)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int n;

	for (;;) {
		long long left = deadline ? deadline - af_now_ms() : -1;

		if (deadline && left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, deadline ? (int)left : -1);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Reads exactly len bytes; 1 when done, 0 at EOF before any, -errno. */
static int recv_all(int sock, void *p, size_t len, long long deadline)
{
	char *c = p;
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		int rc = wait_readable(sock, deadline);

		if (rc)
			return rc;
		n = recv(sock, c + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return got ? -EPROTO : 0;
		got += (size_t)n;
	}
	return 1;
}

/* Receives one fd batch; appends to fds (room for want more). */
static int recv_fds(int sock, int *fds, size_t *have, size_t want,
		    long long deadline)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * UPGRADE_FDS_BATCH)];
		struct cmsghdr align;
	} ctl;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;
	int rc;

	rc = wait_readable(sock, deadline);
	if (rc)
		return rc;
	do {
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPROTO;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*have < want)
				fds[(*have)++] = fd;
			else
				close(fd);	/* more than announced */
		}
	}
	if (byte != 'F' || (mh.msg_flags & MSG_CTRUNC))
		return -EPROTO;
	return 0;
}

void upgrade_close_fds(int *fds, size_t nfds)
{
	for (size_t i = 0; fds && i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

int upgrade_recv(int sock, unsigned timeout_s, json_t **doc, int **fds,
		 size_t *nfds)
{
	long long deadline = timeout_s ? af_now_ms() + timeout_s * 1000LL : 0;
	struct frame_hdr h;
	json_error_t jerr;
	char *text = NULL;
	int *v = NULL;
	size_t have = 0;
	int rc;

	*doc = NULL;
	*fds = NULL;
	*nfds = 0;
	rc = recv_all(sock, &h, sizeof(h), deadline);
	if (rc <= 0)
		return rc;
	if (h.magic != UPGRADE_MAGIC || h.type < UPGRADE_HELLO ||
	    h.type > UPGRADE_GO || h.len > UPGRADE_FRAME_MAX ||
	    h.nfds > UPGRADE_FDS_MAX)
		return -EPROTO;
	if (h.len) {
		text = malloc(h.len + 1);
		if (!text)
			return -ENOMEM;
		rc = recv_all(sock, text, h.len, deadline);
		if (rc <= 0) {
			free(text);
			return rc ? rc : -EPROTO;
		}
		text[h.len] = '\0';
	}
	if (h.nfds) {
		v = malloc(h.nfds * sizeof(*v));
		if (!v) {
			free(text);
			return -ENOMEM;
		}
		while (have < h.nfds) {
			rc = recv_fds(sock, v, &have, h.nfds, deadline);
			if (rc) {
				upgrade_close_fds(v, have);
				free(text);
				return rc;
			}
		}
	}
	if (text) {
		*doc = json_loads(text, 0, &jerr);
		free(text);
		if (!*doc || !json_is_object(*doc)) {
			json_decref(*doc);
			*doc = NULL;
			upgrade_close_fds(v, have);
			return -EPROTO;
		}
	}
	*fds = v;
	*nfds = have;
	return (int)h.type;
}

int upgrade_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, rc;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket left by a daemon that died: nobody listens on it. */
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		goto out_close;
	}
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || chown(path, 0, 0) < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, 4) < 0) {
		rc = -errno;
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return rc;
}

int upgrade_accept(int lfd)
{
	struct ucred cred = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	socklen_t len = sizeof(cred);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
	    cred.uid != 0) {
		af_warn("upgrade: refused a connection from uid %d (root only)",
			(int)cred.uid);
		close(fd);
		return -EPERM;
	}
	return fd;
}

int upgrade_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	return fd;
}
