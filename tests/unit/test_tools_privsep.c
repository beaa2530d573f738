/*
 * test_tools_privsep.c - the privileged helper (tools/privsep.h, issue 11):
 * what it accepts (a regular file on the cache's device, read-only) and
 * every forged request it must refuse (a pipe, a directory, a file on
 * another device, a writable or O_PATH fd, no fd, two fds, an id it did not
 * open, a short or unknown message); the client round trip through a real
 * forked helper; the user lookup and the cache ownership walk.
 *
 * The FUSE connection is /dev/null here: a request that passes every check
 * reaches the ioctl and comes back ENOTTY, which proves it got that far;
 * the real registration is tested through a mount (t_privsep).
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
#include <unistd.h>
#include <cmocka.h>

#include "policy/af.h"
#include "tools/privsep.h"

struct world {
	char dir[64];
	char file[128];
	dev_t dev;
	int sv[2];
	int devnull;
	struct privsep_server srv;
};

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct stat st;
	FILE *f;

	assert_non_null(w);
	snprintf(w->dir, sizeof(w->dir), "/tmp/aftest-privsep.XXXXXX");
	assert_non_null(mkdtemp(w->dir));
	snprintf(w->file, sizeof(w->file), "%s/blob", w->dir);
	f = fopen(w->file, "w");
	assert_non_null(f);
	fputs("verified bytes", f);
	fclose(f);
	assert_int_equal(stat(w->dir, &st), 0);
	w->dev = st.st_dev;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, w->sv), 0);
	w->devnull = open("/dev/null", O_RDWR);
	assert_true(w->devnull >= 0);
	w->srv.sock = w->sv[1];
	w->srv.fuse_fd = w->devnull;
	w->srv.cache_dev = w->dev;
	w->srv.mountpoint = NULL;
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;
	char cmd[128];

	privsep_server_release(&w->srv);
	close(w->sv[0]);
	close(w->sv[1]);
	close(w->devnull);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", w->dir);
	assert_int_equal(system(cmd), 0);
	free(w);
	return 0;
}

/* Sends a request carrying nfds fds (may be 0) and len bytes of m. */
static void send_req(int sock, uint32_t op, int32_t arg, const int *fds,
		     size_t nfds, size_t len)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct privsep_msg m = { .op = op, .arg = arg };
	struct iovec iov = { .iov_base = &m, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
}

/* One request through privsep_serve_one; returns the helper's answer. */
static int ask(struct world *w, uint32_t op, int32_t arg, const int *fds,
	       size_t nfds, size_t len)
{
	struct privsep_msg r;

	send_req(w->sv[0], op, arg, fds, nfds, len);
	assert_int_equal(privsep_serve_one(&w->srv), 1);
	assert_int_equal(recv(w->sv[0], &r, sizeof(r), 0), (ssize_t)sizeof(r));
	return r.arg;
}

static void test_check_fd(void **state)
{
	struct world *w = *state;
	int fd, p[2];

	fd = open(w->file, O_RDONLY);
	assert_int_equal(privsep_check_fd(fd, w->dev), 0);
	close(fd);
	fd = open(w->file, O_RDWR);
	assert_int_equal(privsep_check_fd(fd, w->dev), -EPERM);
	close(fd);
	fd = open(w->file, O_WRONLY);
	assert_int_equal(privsep_check_fd(fd, w->dev), -EPERM);
	close(fd);
	fd = open(w->file, O_PATH);
	assert_int_equal(privsep_check_fd(fd, w->dev), -EPERM);
	close(fd);
	fd = open(w->dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(privsep_check_fd(fd, w->dev), -EINVAL);
	close(fd);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(privsep_check_fd(p[0], w->dev), -EINVAL);
	close(p[0]);
	close(p[1]);
	/* A regular file on another filesystem (procfs). */
	fd = open("/proc/self/stat", O_RDONLY);
	assert_int_equal(privsep_check_fd(fd, w->dev), -EXDEV);
	close(fd);
	assert_int_equal(privsep_check_fd(9999, w->dev), -EBADF);
}

static void test_serve_valid_reaches_the_kernel(void **state)
{
	struct world *w = *state;
	int fd = open(w->file, O_RDONLY);

	/* Every check passed: the ioctl itself answers (not a FUSE fd here). */
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, &fd, 1, sizeof(struct privsep_msg)),
			 -ENOTTY);
	close(fd);
	assert_int_equal(w->srv.n_ids, 0);
}

static void test_serve_refuses_forgeries(void **state)
{
	struct world *w = *state;
	const size_t L = sizeof(struct privsep_msg);
	int fd, two[2], p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, &p[0], 1, L), -EINVAL);
	fd = open(w->dir, O_RDONLY | O_DIRECTORY);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, &fd, 1, L), -EINVAL);
	close(fd);
	fd = open("/proc/self/stat", O_RDONLY);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, &fd, 1, L), -EXDEV);
	close(fd);
	fd = open(w->file, O_RDWR);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, &fd, 1, L), -EPERM);
	close(fd);
	fd = open(w->file, O_PATH);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, &fd, 1, L), -EPERM);
	close(fd);
	/* No fd, two fds, an fd with a request that takes none. */
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, NULL, 0, L), -EINVAL);
	two[0] = open(w->file, O_RDONLY);
	two[1] = open(w->file, O_RDONLY);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, two, 2, L), -EINVAL);
	assert_int_equal(ask(w, PRIVSEP_CLOSE, 1, two, 1, L), -EINVAL);
	close(two[0]);
	close(two[1]);
	/* An id it never registered; an unknown op; a short message. */
	assert_int_equal(ask(w, PRIVSEP_CLOSE, 7, NULL, 0, L), -ENOENT);
	assert_int_equal(ask(w, PRIVSEP_CLOSE, -1, NULL, 0, L), -ENOENT);
	assert_int_equal(ask(w, 99, 0, NULL, 0, L), -EINVAL);
	assert_int_equal(ask(w, PRIVSEP_OPEN, 0, NULL, 0, 3), -EINVAL);
	/* UNMOUNT without a mount point fixed at start. */
	assert_int_equal(ask(w, PRIVSEP_UNMOUNT, 0, NULL, 0, L), -EINVAL);
	close(p[0]);
	close(p[1]);
}

static void test_serve_eof(void **state)
{
	struct world *w = *state;

	close(w->sv[0]);
	w->sv[0] = -1;
	assert_int_equal(privsep_serve_one(&w->srv), 0);
}

static void test_forked_helper_round_trip(void **state)
{
	struct world *w = *state;
	struct privsep *p = NULL;
	int fd, pp[2];

	assert_int_equal(privsep_start(w->devnull, w->dir, NULL, NULL, 0, &p), 0);
	assert_true(privsep_pid(p) > 0);
	fd = open(w->file, O_RDONLY);
	assert_int_equal(privsep_backing_open(p, fd), -ENOTTY);
	close(fd);
	assert_int_equal(pipe(pp), 0);
	assert_int_equal(privsep_backing_open(p, pp[0]), -EINVAL);
	close(pp[0]);
	close(pp[1]);
	assert_int_equal(privsep_backing_close(p, 42), -ENOENT);
	assert_int_equal(privsep_unmount(p), -EINVAL);
	/* Closing our end ends the helper; stop reaps it. */
	privsep_stop(p);
}

static void test_lookup_user(void **state)
{
	uid_t uid = 1;
	gid_t gid = 1;

	(void)state;
	assert_int_equal(privsep_lookup_user("root", &uid, &gid), 0);
	assert_int_equal(uid, 0);
	assert_int_equal(privsep_lookup_user("nobody", &uid, &gid), 0);
	assert_int_not_equal(uid, 0);
	assert_int_equal(privsep_lookup_user("no-such-user-af", &uid, &gid),
			 -ENOENT);
	assert_int_equal(privsep_lookup_user("4242", &uid, &gid), 0);
	assert_int_equal(uid, 4242);
	assert_int_equal(privsep_lookup_user("", &uid, &gid), -ENOENT);
}

static void test_own_tree(void **state)
{
	struct world *w = *state;
	char sub[160], link[160], target[160];
	struct stat st;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_int_equal(privsep_lookup_user("nobody", &uid, &gid), 0);
	snprintf(sub, sizeof(sub), "%s/a/b", w->dir);
	snprintf(target, sizeof(target), "%s/a", w->dir);
	assert_int_equal(mkdir(target, 0750), 0);
	assert_int_equal(mkdir(sub, 0750), 0);
	/* A symlink inside must not hand its target over. */
	snprintf(target, sizeof(target), "%s.outside", w->dir);
	close(open(target, O_CREAT | O_WRONLY, 0600));
	snprintf(link, sizeof(link), "%s/a/b/link", w->dir);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(privsep_own_tree(w->dir, uid, gid), 0);
	assert_int_equal(stat(w->dir, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(stat(w->file, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(lstat(link, &st), 0);
	assert_int_equal(st.st_uid, uid);
	assert_int_equal(stat(target, &st), 0);
	assert_int_equal(st.st_uid, 0);		/* the target is untouched */
	unlink(target);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_check_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve_valid_reaches_the_kernel,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve_refuses_forgeries,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_serve_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forked_helper_round_trip,
						setup, teardown),
		cmocka_unit_test(test_lookup_user),
		cmocka_unit_test_setup_teardown(test_own_tree, setup, teardown),
	};

	af_log_setup(AF_LOG_ERROR, AF_LOG_TEXT, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
