/*
 * src_fixture.h - shared set-up for the tests of sources/ against faultd
 * (tests/tools/faultd.c) on 127.0.0.1: a temporary folder whose root/ the
 * servers serve, two faultd instances (b: the "other host"), a source
 * context, and a synchronous view of one asynchronous range (struct sink).
 *
 * faultd is found as $AF_FAULTD, else $AF_BUILD/tests/faultd, else beside
 * the test binary. It is started once per group and stopped by PID in the
 * group teardown (and by PR_SET_PDEATHSIG if the test process dies first).
 */
#ifndef TESTS_UNIT_SRC_FIXTURE_H
#define TESTS_UNIT_SRC_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sources/source.h"

#define BLOB_SIZE	(1024 * 1024 + 333)
#define SMALL_SIZE	4000

struct server {
	pid_t pid;
	unsigned port;
	char log[PATH_MAX];
};

struct fixture {
	char dir[64];
	unsigned char *blob;		/* contents of root/blob */
	unsigned char *small;		/* contents of root/small */
	struct server a, b;		/* b: the "other host" for redirects */
	struct pol_config cfg;
	struct src_ctx *ctx;
};

/* A synchronous view of one asynchronous range. */
struct sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned char *buf;
	uint64_t off, len, got;	/* lock */
	int done_calls;		/* lock */
	int err;		/* lock */
	char reason[160];	/* lock */
	bool order_ok;		/* lock */
	int fail_with;		/* on_data returns this once got > 0 */
	void *user;		/* for a test's own callbacks */
};

static inline int sink_data(void *arg, uint64_t off, const void *buf,
			    size_t len)
{
	struct sink *k = arg;
	int ret = 0;

	pthread_mutex_lock(&k->lock);
	if (off != k->off + k->got || k->got + len > k->len || k->done_calls) {
		k->order_ok = false;
		ret = -EIO;
	} else {
		memcpy(k->buf + k->got, buf, len);
		k->got += len;
		if (k->fail_with)
			ret = k->fail_with;
	}
	pthread_mutex_unlock(&k->lock);
	return ret;
}

static inline void sink_done(void *arg, int err, const char *reason)
{
	struct sink *k = arg;

	pthread_mutex_lock(&k->lock);
	k->done_calls++;
	k->err = err;
	snprintf(k->reason, sizeof(k->reason), "%s", reason ? reason : "");
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->lock);
}

static inline void sink_init(struct sink *k, uint64_t off, uint64_t len)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	pthread_cond_init(&k->cond, NULL);
	k->off = off;
	k->len = len;
	k->order_ok = true;
	k->buf = malloc(len ? len : 1);
	assert_non_null(k->buf);
}

static inline void sink_release(struct sink *k)
{
	free(k->buf);
	pthread_cond_destroy(&k->cond);
	pthread_mutex_destroy(&k->lock);
}

/* Waits for on_done, at most limit_s seconds (a hang fails the test). */
static inline void sink_wait(struct sink *k, int limit_s)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += limit_s;
	pthread_mutex_lock(&k->lock);
	while (k->done_calls == 0) {
		if (pthread_cond_timedwait(&k->cond, &k->lock, &ts) ==
		    ETIMEDOUT) {
			pthread_mutex_unlock(&k->lock);
			fail_msg("range did not end within %d s", limit_s);
		}
	}
	pthread_mutex_unlock(&k->lock);
}

static inline const struct src_range_cb *sink_cb(struct sink *k,
					  struct src_range_cb *cb)
{
	cb->on_data = sink_data;
	cb->on_done = sink_done;
	cb->arg = k;
	cb->more = NULL;
	return cb;
}

static inline const char *faultd_path(char *buf, size_t len)
{
	const char *env = getenv("AF_FAULTD");
	char exe[PATH_MAX - 16];
	ssize_t n;
	char *slash;

	if (env != NULL && *env != '\0')
		return env;
	env = getenv("AF_BUILD");
	if (env != NULL && *env != '\0') {
		snprintf(buf, len, "%s/tests/faultd", env);
		return buf;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "faultd";
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash != NULL)
		*slash = '\0';
	snprintf(buf, len, "%s/faultd", exe);
	return buf;
}

static inline int server_start(struct server *sv, const char *dir,
			       const char *tag)
{
	char bin[PATH_MAX], root[PATH_MAX], port_file[PATH_MAX];
	const char *path = faultd_path(bin, sizeof(bin));
	pid_t parent = getpid();

	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(port_file, sizeof(port_file), "%s/port-%s", dir, tag);
	snprintf(sv->log, sizeof(sv->log), "%s/log-%s", dir, tag);
	sv->pid = fork();
	if (sv->pid < 0)
		return -1;
	if (sv->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		execl(path, path, "--root", root, "--port-file", port_file,
		      "--log", sv->log, "--stall", "20", (char *)NULL);
		fprintf(stderr, "cannot run %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(port_file, "r");
		int status;

		if (f != NULL) {
			int ok = fscanf(f, "%u", &sv->port) == 1;

			fclose(f);
			if (ok)
				return 0;
		}
		if (waitpid(sv->pid, &status, WNOHANG) == sv->pid) {
			sv->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	return -1;
}

static inline void server_stop(struct server *sv)
{
	if (sv->pid <= 0)
		return;
	kill(sv->pid, SIGTERM);
	waitpid(sv->pid, NULL, 0);
	sv->pid = 0;
}

/* Lines of the server log containing every one of the given strings. */
static inline int log_count(const struct server *sv, const char *a,
			    const char *b)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(sv->log, "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, a) != NULL && (b == NULL || strstr(line, b)))
			n++;
	fclose(f);
	return n;
}

static inline void write_file(const char *dir, const char *name,
		       const unsigned char *data, size_t len)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/root/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static inline int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static inline void test_cfg(struct pol_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->fetch_connections = 4;
	cfg->fetch_retries = 3;
	cfg->connect_timeout_ms = 2000;
	cfg->low_speed_timeout_ms = 2000;
}

static inline int group_setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char root[128];
	uint64_t x = 0x9e3779b97f4a7c15ULL;

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/af-srchttp-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(root, sizeof(root), "%s/root", f->dir);
	if (mkdir(root, 0755) != 0)
		return -1;
	f->blob = malloc(BLOB_SIZE);
	f->small = malloc(SMALL_SIZE);
	if (f->blob == NULL || f->small == NULL)
		return -1;
	for (size_t i = 0; i < BLOB_SIZE; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		f->blob[i] = (unsigned char)x;
	}
	memcpy(f->small, f->blob + 5000, SMALL_SIZE);
	write_file(f->dir, "blob", f->blob, BLOB_SIZE);
	write_file(f->dir, "small", f->small, SMALL_SIZE);
	write_file(f->dir, "empty", f->small, 0);
	*state = f;
	if (server_start(&f->a, f->dir, "a") != 0 ||
	    server_start(&f->b, f->dir, "b") != 0) {
		fprintf(stderr, "faultd did not start (set AF_FAULTD or "
			"AF_BUILD)\n");
		return -1;
	}
	test_cfg(&f->cfg);
	if (src_ctx_new(&f->cfg, NULL, &f->ctx) != 0)
		return -1;
	return 0;
}

static inline int group_teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	src_ctx_free(f->ctx);
	server_stop(&f->a);
	server_stop(&f->b);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f->blob);
	free(f->small);
	free(f);
	return 0;
}

static inline struct src *open_url(struct src_ctx *ctx, const char *url)
{
	struct pol_registration r = { 0 };
	struct src *s = NULL;

	r.source_type = POL_SRC_HTTPS;
	r.uri = (char *)url;
	assert_int_equal(src_open(ctx, &r, &s), 0);
	return s;
}

static inline struct src *open_path(struct fixture *f, const struct server *sv,
			     const char *path)
{
	char url[512];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", sv->port, path);
	return open_url(f->ctx, url);
}

/* Reads [off, off+len) and checks it equals want; returns the sink's err. */
static inline int fetch(struct src *s, uint64_t off, uint64_t len,
		 const unsigned char *want, char *reason, size_t reasonlen)
{
	struct src_range_cb cb;
	struct sink k;
	int err;

	sink_init(&k, off, len);
	assert_int_equal(src_read_range(s, off, len, sink_cb(&k, &cb)), 0);
	sink_wait(&k, 60);
	assert_int_equal(k.done_calls, 1);
	assert_true(k.order_ok);
	/* Whatever was delivered is a correct prefix: never a wrong byte. */
	if (want != NULL)
		assert_memory_equal(k.buf, want + off, k.got);
	if (k.err == 0)
		assert_int_equal(k.got, len);
	else
		assert_true(k.got < len);
	err = k.err;
	if (reason != NULL)
		snprintf(reason, reasonlen, "%s", k.reason);
	sink_release(&k);
	return err;
}

#endif
