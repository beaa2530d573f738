/*
 * test_tools_notify.c - the sd_notify(3) datagram protocol (tools/notify.h)
 * against a socket of our own, as systemd's would receive it: path and
 * abstract addresses, messages, the barrier's file descriptor, and the
 * refusals.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "tools/notify.h"

/* A listening datagram socket at path ("@name": abstract). */
static int listener(const char *path)
{
	struct sockaddr_un a;
	socklen_t len;
	int fd;

	assert_int_equal(notify_parse_address(path, &a, &len), 0);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (path[0] == '/')
		unlink(path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, len), 0);
	return fd;
}

/* Receives one datagram into buf; *passed gets an fd if one came. */
static ssize_t receive(int fd, char *buf, size_t len, int *passed)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.b,
			     .msg_controllen = sizeof(ctl.b) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(fd, &mh, 0);

	*passed = -1;
	if (n < 0)
		return n;
	buf[n] = '\0';
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(passed, CMSG_DATA(c), sizeof(int));
	return n;
}

static void test_parse_address(void **state)
{
	struct sockaddr_un a;
	socklen_t len;
	char longp[200];

	(void)state;
	assert_int_equal(notify_parse_address("/run/systemd/notify", &a, &len), 0);
	assert_string_equal(a.sun_path, "/run/systemd/notify");
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 20);
	/* Abstract: a leading NUL, and the length is exact (no NUL after). */
	assert_int_equal(notify_parse_address("@sd-notify", &a, &len), 0);
	assert_int_equal(a.sun_path[0], '\0');
	assert_memory_equal(a.sun_path + 1, "sd-notify", 9);
	assert_int_equal(len, offsetof(struct sockaddr_un, sun_path) + 10);
	/* Refused: relative, empty, a bare '@', vsock, too long. */
	assert_int_equal(notify_parse_address("run/notify", &a, &len), -EINVAL);
	assert_int_equal(notify_parse_address("", &a, &len), -EINVAL);
	assert_int_equal(notify_parse_address("@", &a, &len), -EINVAL);
	assert_int_equal(notify_parse_address("vsock:2:1234", &a, &len), -EINVAL);
	assert_int_equal(notify_parse_address(NULL, &a, &len), -EINVAL);
	memset(longp, 'x', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(notify_parse_address(longp, &a, &len), -EINVAL);
}

static void test_unset_is_a_noop(void **state)
{
	struct notify n;

	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(notify_init(&n), 0);
	assert_false(notify_enabled(&n));
	assert_int_equal(notify_send(&n, "READY=1"), 0);
	assert_int_equal(notify_barrier(&n, 10), 0);
	notify_release(&n);
	notify_release(NULL);
}

static void send_and_receive(const char *addr)
{
	struct notify n;
	char buf[2048];
	int fd, passed;

	fd = listener(addr);
	setenv("NOTIFY_SOCKET", addr, 1);
	assert_int_equal(notify_init(&n), 0);
	assert_true(notify_enabled(&n));
	/* Taken out of the environment: programs we run do not inherit it. */
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_int_equal(notify_send(&n, "READY=1\nSTATUS=serving %d artifacts", 3), 0);
	assert_true(receive(fd, buf, sizeof(buf), &passed) > 0);
	assert_string_equal(buf, "READY=1\nSTATUS=serving 3 artifacts");
	assert_int_equal(passed, -1);
	assert_int_equal(notify_send(&n, "STOPPING=1"), 0);
	assert_true(receive(fd, buf, sizeof(buf), &passed) > 0);
	assert_string_equal(buf, "STOPPING=1");
	notify_release(&n);
	close(fd);
}

static void test_path_socket(void **state)
{
	char path[64];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/af-notify-test-%d.sock", (int)getpid());
	send_and_receive(path);
	unlink(path);
}

static void test_abstract_socket(void **state)
{
	char addr[64];

	(void)state;
	snprintf(addr, sizeof(addr), "@af-notify-test-%d", (int)getpid());
	send_and_receive(addr);
}

/* A long message is cut, never overflows. */
static void test_long_message(void **state)
{
	char addr[64], big[3000], buf[4096];
	struct notify n;
	int fd, passed;

	(void)state;
	snprintf(addr, sizeof(addr), "@af-notify-long-%d", (int)getpid());
	fd = listener(addr);
	setenv("NOTIFY_SOCKET", addr, 1);
	assert_int_equal(notify_init(&n), 0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(notify_send(&n, "STATUS=%s", big), 0);
	assert_int_equal(receive(fd, buf, sizeof(buf), &passed), NOTIFY_MSG_MAX - 1);
	notify_release(&n);
	close(fd);
}

struct manager {
	int fd;
	bool close_it;
	char msg[64];
};

/* What systemd does with BARRIER=1: close the fd it got. */
static void *manager_main(void *arg)
{
	struct manager *m = arg;
	int passed;

	if (receive(m->fd, m->msg, sizeof(m->msg), &passed) > 0 && passed >= 0) {
		if (!m->close_it)
			usleep(300 * 1000);
		close(passed);
	}
	return NULL;
}

static void test_barrier(void **state)
{
	struct manager m = { .close_it = true };
	char addr[64];
	struct notify n;
	pthread_t t;

	(void)state;
	snprintf(addr, sizeof(addr), "@af-notify-barrier-%d", (int)getpid());
	m.fd = listener(addr);
	setenv("NOTIFY_SOCKET", addr, 1);
	assert_int_equal(notify_init(&n), 0);
	assert_int_equal(pthread_create(&t, NULL, manager_main, &m), 0);
	assert_int_equal(notify_barrier(&n, 5000), 0);
	pthread_join(t, NULL);
	assert_string_equal(m.msg, "BARRIER=1");
	/* A manager that is slower than the timeout: -ETIMEDOUT, no hang. */
	m.close_it = false;
	assert_int_equal(pthread_create(&t, NULL, manager_main, &m), 0);
	assert_int_equal(notify_barrier(&n, 50), -ETIMEDOUT);
	pthread_join(t, NULL);
	notify_release(&n);
	close(m.fd);
}

/* Nobody listening at the address: an error, not a crash or a block. */
static void test_nobody_listens(void **state)
{
	struct notify n;
	char path[64];

	(void)state;
	snprintf(path, sizeof(path), "/tmp/af-notify-none-%d.sock", (int)getpid());
	unlink(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(notify_init(&n), 0);
	assert_int_equal(notify_send(&n, "READY=1"), -ENOENT);
	assert_true(notify_barrier(&n, 50) < 0);
	notify_release(&n);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(notify_init(&n), -EINVAL);
	assert_false(notify_enabled(&n));
	assert_null(getenv("NOTIFY_SOCKET"));
	notify_release(&n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_address),
		cmocka_unit_test(test_unset_is_a_noop),
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_long_message),
		cmocka_unit_test(test_barrier),
		cmocka_unit_test(test_nobody_listens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
