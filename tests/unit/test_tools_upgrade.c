/*
 * test_tools_upgrade.c - the hand-over frames and the control socket of
 * live upgrade (tools/upgrade.h, issue 13): a document with more fds than
 * fit one message arrives whole and in order; malformed, oversized,
 * truncated and silent peers are refused, never trusted; the socket is
 * root's (0600) and a peer that is not root is turned away.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/af.h"
#include "policy/config.h"
#include "tools/upgrade.h"

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
}

static void test_round_trip_many_fds(void **state)
{
	enum { N = 300 };	/* more than one SCM_RIGHTS batch */
	int sv[2], fds[N], *got = NULL;
	size_t ngot = 0;
	json_t *doc, *back = NULL;
	struct stat a, b;

	(void)state;
	pair(sv);
	for (int i = 0; i < N; i++) {
		fds[i] = open(i % 2 ? "/dev/null" : "/dev/zero", O_RDONLY);
		assert_true(fds[i] >= 0);
	}
	doc = json_pack("{s:i, s:s}", "version", 1, "init", "abcd");
	/* The socket buffer holds it all: send first, then receive. */
	assert_int_equal(upgrade_send(sv[0], UPGRADE_STATE, doc, fds, N), 0);
	assert_int_equal(upgrade_recv(sv[1], 5, &back, &got, &ngot),
			 UPGRADE_STATE);
	assert_int_equal(ngot, N);
	assert_string_equal(json_string_value(json_object_get(back, "init")),
			    "abcd");
	for (int i = 0; i < N; i++) {
		assert_int_equal(fstat(fds[i], &a), 0);
		assert_int_equal(fstat(got[i], &b), 0);
		assert_int_equal(a.st_rdev, b.st_rdev);	/* same order */
		close(fds[i]);
	}
	upgrade_close_fds(got, ngot);
	json_decref(doc);
	json_decref(back);
	/* A frame without a document or fds. */
	assert_int_equal(upgrade_send(sv[0], UPGRADE_GO, NULL, NULL, 0), 0);
	assert_int_equal(upgrade_recv(sv[1], 5, &back, &got, &ngot), UPGRADE_GO);
	assert_null(back);
	assert_int_equal(ngot, 0);
	close(sv[0]);
	/* End of file before a frame: 0. */
	assert_int_equal(upgrade_recv(sv[1], 5, &back, &got, &ngot), 0);
	close(sv[1]);
}

struct hdr {
	uint32_t magic, type, len, nfds;
};

static int recv_raw(const void *bytes, size_t n, unsigned timeout)
{
	json_t *doc = NULL;
	int sv[2], *fds = NULL, rc;
	size_t nfds = 0;

	pair(sv);
	assert_int_equal(write(sv[0], bytes, n), (ssize_t)n);
	close(sv[0]);
	rc = upgrade_recv(sv[1], timeout, &doc, &fds, &nfds);
	json_decref(doc);
	upgrade_close_fds(fds, nfds);
	close(sv[1]);
	return rc;
}

static void test_malformed(void **state)
{
	struct hdr h = { 0x50554641u, UPGRADE_STATE, 0, 0 };
	char buf[64];

	(void)state;
	h.magic = 0x12345678;
	assert_int_equal(recv_raw(&h, sizeof(h), 5), -EPROTO);
	h.magic = 0x50554641u;
	h.type = 99;
	assert_int_equal(recv_raw(&h, sizeof(h), 5), -EPROTO);
	h.type = UPGRADE_STATE;
	h.len = (uint32_t)UPGRADE_FRAME_MAX + 1;
	assert_int_equal(recv_raw(&h, sizeof(h), 5), -EPROTO);
	h.len = 0;
	h.nfds = UPGRADE_FDS_MAX + 1;
	assert_int_equal(recv_raw(&h, sizeof(h), 5), -EPROTO);
	/* A truncated header, a truncated payload. */
	assert_int_equal(recv_raw(&h, 7, 5), -EPROTO);
	h.nfds = 0;
	h.len = 10;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "{\"a\":", 5);
	assert_int_equal(recv_raw(buf, sizeof(h) + 5, 5), -EPROTO);
	/* A payload that is not a JSON object. */
	h.len = 3;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), "[1]", 3);
	assert_int_equal(recv_raw(buf, sizeof(h) + 3, 5), -EPROTO);
	/* Announced fds that never come. */
	h.len = 0;
	h.nfds = 2;
	assert_int_equal(recv_raw(&h, sizeof(h), 5), -EPROTO);
}

static void test_silent_peer_times_out(void **state)
{
	json_t *doc = NULL;
	int sv[2], *fds = NULL;
	size_t nfds = 0;
	long long t0;

	(void)state;
	pair(sv);
	t0 = af_now_ms();
	assert_int_equal(upgrade_recv(sv[1], 1, &doc, &fds, &nfds), -ETIMEDOUT);
	assert_true(af_now_ms() - t0 < 3000);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_is_roots(void **state)
{
	char dir[] = "/tmp/aftest-upgrade.XXXXXX", path[128], cmd[160];
	struct pol_config cfg;
	struct stat st;
	int lfd, c, a, status;
	pid_t pid;

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_non_null(mkdtemp(dir));
	memset(&cfg, 0, sizeof(cfg));
	cfg.cache_dir = dir;
	assert_int_equal(upgrade_sock_path(&cfg, "/artifacts", path, sizeof(path)),
			 0);
	assert_non_null(strstr(path, "/ctl."));
	lfd = upgrade_listen(path);
	assert_true(lfd >= 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(upgrade_accept(lfd), -EAGAIN);	/* nobody waits */
	/* Root connects and is accepted. */
	c = upgrade_connect(path);
	assert_true(c >= 0);
	a = upgrade_accept(lfd);
	assert_true(a >= 0);
	close(a);
	close(c);
	/* Another user: even with the file opened up, the peer check says no. */
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(chmod(dir, 0711), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		c = upgrade_connect(path);
		if (c < 0)
			_exit(3);
		sleep(1);
		_exit(0);
	}
	for (int i = 0; i < 50 && (a = upgrade_accept(lfd)) == -EAGAIN; i++)
		usleep(20000);
	assert_int_equal(a, -EPERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);
	close(lfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_many_fds),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_silent_peer_times_out),
		cmocka_unit_test(test_socket_is_roots),
	};

	af_log_setup(AF_LOG_ERROR, AF_LOG_TEXT, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
