/*
 * notify.c - the sd_notify(3) datagram protocol (notify.h). Spoken
 * directly rather than through libsystemd: a dozen lines of a documented,
 * stable protocol do not warrant linking the whole of libsystemd into a
 * daemon that holds credentials.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../policy/af.h"
#include "notify.h"

int notify_parse_address(const char *s, struct sockaddr_un *addr,
			 socklen_t *len)
{
	size_t n;

	if (!s || (s[0] != '/' && s[0] != '@'))
		return -EINVAL;
	n = strlen(s);
	if (n < 2 || n >= sizeof(addr->sun_path))
		return -EINVAL;
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, s, n);
	/* An abstract address: a leading NUL, and its length is exact. */
	if (s[0] == '@')
		addr->sun_path[0] = '\0';
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n +
			   (s[0] == '/' ? 1 : 0));
	return 0;
}

int notify_init(struct notify *n)
{
	const char *env = getenv("NOTIFY_SOCKET");
	int rc;

	memset(n, 0, sizeof(*n));
	n->fd = -1;
	if (!env || !*env)
		return 0;
	rc = notify_parse_address(env, &n->addr, &n->addrlen);
	unsetenv("NOTIFY_SOCKET");
	if (rc < 0) {
		af_warn("NOTIFY_SOCKET is not a unix socket path: readiness is not reported");
		return rc;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0) {
		rc = -errno;
		af_warn("notify socket: %s", strerror(errno));
		return rc;
	}
	return 0;
}

void notify_release(struct notify *n)
{
	if (!n || n->fd < 0)
		return;
	close(n->fd);
	n->fd = -1;
}

bool notify_enabled(const struct notify *n)
{
	return n && n->fd >= 0;
}

/* One datagram, optionally with one fd (SCM_RIGHTS). */
static int send_msg(const struct notify *n, const char *msg, int pass_fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };
	struct msghdr mh = {
		.msg_name = (void *)&n->addr,
		.msg_namelen = n->addrlen,
		.msg_iov = &iov,
		.msg_iovlen = 1,
	};

	if (pass_fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	for (;;) {
		if (sendmsg(n->fd, &mh, MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int notify_send(const struct notify *n, const char *fmt, ...)
{
	char msg[NOTIFY_MSG_MAX];
	va_list ap;
	int w;

	if (!notify_enabled(n))
		return 0;
	va_start(ap, fmt);
	w = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w < 0)
		return -EINVAL;
	return send_msg(n, msg, -1);
}

int notify_barrier(const struct notify *n, int timeout_ms)
{
	struct pollfd p;
	int pfd[2], rc;

	if (!notify_enabled(n))
		return 0;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	rc = send_msg(n, "BARRIER=1", pfd[1]);
	/* Only the manager's copy of the write end may remain. */
	close(pfd[1]);
	if (rc < 0)
		goto out_close;
	p = (struct pollfd){ .fd = pfd[0], .events = 0 };
	for (;;) {
		int k = poll(&p, 1, timeout_ms);

		if (k > 0) {
			rc = 0;
			break;
		}
		if (k == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		if (errno != EINTR) {
			rc = -errno;
			break;
		}
	}
out_close:
	close(pfd[0]);
	return rc;
}
