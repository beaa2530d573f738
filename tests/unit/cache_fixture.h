/*
 * cache_fixture.h - shared set-up for the cache unit tests: a temporary
 * folder with a cache, a real source context (file:// sources pointing at
 * generated random files), an audit log to count events in, and helpers.
 */
#ifndef TESTS_UNIT_CACHE_FIXTURE_H
#define TESTS_UNIT_CACHE_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "cache/cache.h"
#include "cache/cache_int.h"
#include "policy/audit.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sources/source.h"

#define FX_CHUNK	((uint64_t)64 << 10)

struct fx {
	char dir[64];
	char audit_path[128];
	struct pol_config cfg;
	struct src_ctx *srcs;
	struct audit *audit;
	struct cache *c;
	int nblobs;
};

static inline void fx_rm_rf(const char *dir)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", dir);
}

static inline void fx_open_cache(struct fx *f)
{
	assert_int_equal(cache_open(&f->cfg, f->srcs, f->audit, &f->c), 0);
}

static inline int fx_setup(void **state)
{
	char path[128];
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/afcache.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(pol_config_init(&f->cfg), 0);
	snprintf(path, sizeof(path), "%s/cache", f->dir);
	free(f->cfg.cache_dir);
	f->cfg.cache_dir = strdup(path);
	f->cfg.chunk_size = FX_CHUNK;
	f->cfg.fetch_connections = 4;
	snprintf(f->audit_path, sizeof(f->audit_path), "%s/audit.jsonl",
		 f->dir);
	assert_int_equal(audit_open(f->audit_path, false, &f->audit), 0);
	assert_int_equal(src_ctx_new(&f->cfg, NULL, &f->srcs), 0);
	fx_open_cache(f);
	*state = f;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx *f = *state;

	cache_close(f->c);
	src_ctx_free(f->srcs);
	audit_close(f->audit);
	pol_config_release(&f->cfg);
	fx_rm_rf(f->dir);
	free(f);
	return 0;
}

/* Random bytes of size into path. */
static inline void fx_write_random(const char *path, uint64_t size,
				   unsigned seed)
{
	unsigned char buf[4096];
	uint64_t left = size;
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	srand(seed);
	while (left) {
		size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf), i;

		for (i = 0; i < n; i++)
			buf[i] = (unsigned char)rand();
		assert_int_equal(fwrite(buf, 1, n, fp), n);
		left -= n;
	}
	assert_int_equal(fclose(fp), 0);
}

static inline void fx_file_digest(const char *path, const EVP_MD *md,
				  char *out, size_t outlen)
{
	unsigned char buf[65536], raw[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	FILE *fp = fopen(path, "rb");
	size_t got;
	size_t pos;

	assert_non_null(fp);
	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, md, NULL), 1);
	while ((got = fread(buf, 1, sizeof(buf), fp)) > 0)
		EVP_DigestUpdate(ctx, buf, got);
	fclose(fp);
	EVP_DigestFinal_ex(ctx, raw, &n);
	EVP_MD_CTX_free(ctx);
	pos = (size_t)snprintf(out, outlen, "%s:",
			       md == EVP_sha512() ? "sha512" : "sha256");
	for (i = 0; i < n && pos + 2 < outlen; i++)
		pos += (size_t)snprintf(out + pos, outlen - pos, "%02x",
					raw[i]);
}

/*
 * A registration for path with the given digest; size_bytes when
 * with_size.
 */
static inline struct pol_registration *fx_reg(struct fx *f, const char *path,
					      const char *digest,
					      bool with_size, uint64_t size)
{
	struct pol_registration *r = NULL;
	char json[1024], sz[64] = "", err[256];
	int n;

	if (with_size)
		snprintf(sz, sizeof(sz), ", \"size_bytes\": %" PRIu64, size);
	n = snprintf(json, sizeof(json),
		     "{\"project\": \"test\", \"name\": \"blob-%d.bin\", "
		     "\"artifact_kind\": \"blob\", \"digest\": \"%s\", "
		     "\"source\": {\"source_type\": \"file\", "
		     "\"uri\": \"file://%s\"%s}, "
		     "\"lifecycle_state\": \"active\", "
		     "\"trust_state\": \"verified\"}",
		     f->nblobs++, digest, path, sz);
	assert_true(n > 0 && (size_t)n < sizeof(json));
	if (pol_registration_parse(json, (size_t)n, "test", &r, err,
				   sizeof(err)) != 0)
		fail_msg("registration: %s", err);
	return r;
}

/* A registration of digest at path, with or without size, in project. */
static inline struct pol_registration *fx_reg_at(const char *project,
						 const char *name,
						 const char *digest,
						 const char *path, bool with_size,
						 uint64_t size)
{
	struct pol_registration *r = NULL;
	char json[1024], sz[64] = "", err[256];
	int n;

	if (with_size)
		snprintf(sz, sizeof(sz), ", \"size_bytes\": %" PRIu64, size);
	n = snprintf(json, sizeof(json),
		     "{\"project\": \"%s\", \"name\": \"%s\", "
		     "\"artifact_kind\": \"blob\", \"digest\": \"%s\", "
		     "\"source\": {\"source_type\": \"file\", "
		     "\"uri\": \"file://%s\"%s}, "
		     "\"lifecycle_state\": \"active\", "
		     "\"trust_state\": \"verified\"}",
		     project, name, digest, path, sz);
	assert_true(n > 0 && (size_t)n < sizeof(json));
	if (pol_registration_parse(json, (size_t)n, "test", &r, err,
				   sizeof(err)) != 0)
		fail_msg("registration: %s", err);
	return r;
}

/* Generates a random source file and its registration. */
static inline struct pol_registration *fx_blob(struct fx *f, uint64_t size,
					       unsigned seed, char *path,
					       size_t pathlen)
{
	char digest[POL_DIGEST_STR_MAX];

	snprintf(path, pathlen, "%s/src-%u.bin", f->dir, seed);
	fx_write_random(path, size, seed);
	fx_file_digest(path, EVP_sha256(), digest, sizeof(digest));
	return fx_reg(f, path, digest, true, size);
}

/* Compares the cache's verified bytes of r with the file at path. */
static inline void fx_assert_cached_equal(struct fx *f,
					  const struct pol_registration *r,
					  const char *path)
{
	unsigned char a[65536], b[65536];
	uint64_t size = 0, off = 0;
	int fd, sfd;

	fd = cache_open_verified(f->c, &r->digest, &size, NULL);
	assert_true(fd >= 0);
	sfd = open(path, O_RDONLY);
	assert_true(sfd >= 0);
	for (;;) {
		ssize_t na = pread(fd, a, sizeof(a), (off_t)off);
		ssize_t nb = pread(sfd, b, sizeof(b), (off_t)off);

		assert_int_equal(na, nb);
		if (na <= 0)
			break;
		assert_memory_equal(a, b, (size_t)na);
		off += (uint64_t)na;
	}
	assert_int_equal(off, size);
	close(fd);
	close(sfd);
}

/* Number of audit lines with "event":"<event>" (and containing extra). */
static inline int fx_audit_count(struct fx *f, const char *event,
				 const char *extra)
{
	char needle[64], line[8192];
	FILE *fp = fopen(f->audit_path, "r");
	int n = 0;

	if (!fp)
		return 0;
	snprintf(needle, sizeof(needle), "\"event\":\"%s\"", event);
	while (fgets(line, sizeof(line), fp))
		if (strstr(line, needle) && (!extra || strstr(line, extra)))
			n++;
	fclose(fp);
	return n;
}

static inline bool fx_file_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static inline void fx_flip_byte(const char *path, uint64_t off)
{
	unsigned char b;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

/* An asynchronous waiter recording its done calls. */
struct fx_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	int err;
};

static inline void fx_wait_init(struct fx_wait *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static inline void fx_wait_done(void *arg, int err)
{
	struct fx_wait *w = arg;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	w->err = err;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Waits for the done call (at most 30 s). Returns its error. */
static inline int fx_wait_for(struct fx_wait *w)
{
	long long end = af_now_ms() + 30000;
	int err;

	pthread_mutex_lock(&w->lock);
	while (!w->calls && af_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	}
	assert_int_equal(w->calls, 1);
	err = w->err;
	pthread_mutex_unlock(&w->lock);
	return err;
}

static inline int fx_wait_calls(struct fx_wait *w)
{
	int n;

	pthread_mutex_lock(&w->lock);
	n = w->calls;
	pthread_mutex_unlock(&w->lock);
	return n;
}

static inline enum cache_state fx_state(struct fx *f,
					const struct pol_registration *r)
{
	struct cache_info info;

	if (cache_stat(f->c, &r->digest, &info) != 0)
		return CACHE_NONE;
	return info.state;
}

static inline uint64_t fx_src_bytes(struct fx *f)
{
	struct src_stats st;

	src_ctx_stats(f->srcs, &st);
	return st.bytes;
}

/*
 * A job held at one named step (the cache's test seam, c->test_hook)
 * until the test lets it go; one at a time. "hash" steps are counted, and
 * whether one found a write txn held by its thread.
 */
static struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	const char *step;	/* the step to hold, or NULL */
	bool reached;
	bool open;
	int hashes;		/* "hash" steps seen */
	bool write_held;	/* a "hash" step found a write txn held */
	void (*on_step)(struct cache *c, const char *step, const char *key);
} gate = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static inline void gate_hook(struct cache *c, const char *step, const char *key)
{
	if (strcmp(step, "hash") == 0) {
		pthread_mutex_lock(&gate.lock);
		gate.hashes++;
		if (idx_write_held(&c->idx))
			gate.write_held = true;
		pthread_mutex_unlock(&gate.lock);
	}
	if (gate.on_step)
		gate.on_step(c, step, key);
	pthread_mutex_lock(&gate.lock);
	if (gate.step && strcmp(step, gate.step) == 0) {
		gate.reached = true;
		pthread_cond_broadcast(&gate.cond);
		while (!gate.open)
			pthread_cond_wait(&gate.cond, &gate.lock);
	}
	pthread_mutex_unlock(&gate.lock);
}

static inline void gate_set(struct fx *f, const char *step)
{
	pthread_mutex_lock(&gate.lock);
	gate.step = step;
	gate.reached = false;
	gate.open = false;
	gate.hashes = 0;
	gate.write_held = false;
	gate.on_step = NULL;
	pthread_mutex_unlock(&gate.lock);
	f->c->test_hook = gate_hook;
}

static inline void gate_wait(void)
{
	long long end = af_now_ms() + 20000;

	pthread_mutex_lock(&gate.lock);
	while (!gate.reached && af_now_ms() < end) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&gate.cond, &gate.lock, &ts);
	}
	assert_true(gate.reached);
	pthread_mutex_unlock(&gate.lock);
}

static inline void gate_open(void)
{
	pthread_mutex_lock(&gate.lock);
	gate.open = true;
	gate.step = NULL;
	pthread_cond_broadcast(&gate.cond);
	pthread_mutex_unlock(&gate.lock);
}

#endif
