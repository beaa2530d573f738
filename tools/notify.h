/*
 * notify.h - readiness for the service manager (DESIGN §13): the
 * sd_notify(3) datagram protocol, spoken directly (no libsystemd).
 *
 * The protocol, as systemd documents it (sd_notify(3), "Notes"): the
 * service manager passes the path of a unix datagram socket in
 * $NOTIFY_SOCKET (a leading '@' names the abstract namespace); a service
 * sends newline-separated "KEY=VALUE" assignments, one datagram per
 * message: READY=1, STATUS=…, STOPPING=1, RELOADING=1, MAINPID=…. A
 * message with BARRIER=1 carries one file descriptor (SCM_RIGHTS) that
 * the manager closes once it has processed every earlier message
 * (sd_notify_barrier(3)). Without $NOTIFY_SOCKET every call is a no-op.
 *
 * Thread-safety: after notify_init, notify_send may be called from any
 * thread (one sendmsg per message).
 */
#ifndef TOOLS_NOTIFY_H
#define TOOLS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define NOTIFY_MSG_MAX	1024

struct notify {
	int fd;				/* -1 when not under a manager */
	struct sockaddr_un addr;
	socklen_t addrlen;
};

/*
 * Reads $NOTIFY_SOCKET and removes it from the environment (programs we
 * run, such as a credential helper, must not speak for the daemon).
 * Returns 0 (n->fd == -1 when the variable is unset), or -EINVAL for an
 * address that is not a unix socket path (logged), or -errno.
 */
int notify_init(struct notify *n);
/* Closes the socket. n == NULL or not initialised: nothing. */
void notify_release(struct notify *n);
/* True when a service manager listens. */
bool notify_enabled(const struct notify *n);

/*
 * Sends one message (printf-style; newline-separated assignments, longer
 * ones cut at NOTIFY_MSG_MAX). Returns 0 (also when not enabled) or
 * -errno. Never blocks for long (a datagram socket; EAGAIN is returned).
 */
int notify_send(const struct notify *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * sd_notify_barrier(3): waits until the manager has processed every
 * message sent before, at most timeout_ms. Needed before a process that
 * sent MAINPID= and READY=1 exits. Returns 0, -ETIMEDOUT or -errno.
 */
int notify_barrier(const struct notify *n, int timeout_ms);

/*
 * Parses a $NOTIFY_SOCKET value into a socket address (pure, for tests).
 * Returns 0 and *addr, *len, or -EINVAL (not "/…" or "@…", or too long).
 */
int notify_parse_address(const char *s, struct sockaddr_un *addr,
			 socklen_t *len);

#endif
