/*
 * test_tools_metrics.c - Prometheus metrics (tools/metrics.h, DESIGN §13):
 * the text rendering (every family with HELP and TYPE, cumulative
 * buckets, +Inf = count), counters that move with a real cache's fetches,
 * failures and evictions (file:// sources), and a scrape over HTTP that
 * answers while another thread holds the cache's lock and the index's
 * write transaction: the locks a FUSE open waits on.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "tests/unit/cache_fixture.h"
#include "control/catalog.h"
#include "tools/metrics.h"

static void test_render(void **state)
{
	static const char *const families[] = {
		"artifactfs_opens_total counter",
		"artifactfs_fetch_bytes_total counter",
		"artifactfs_fetches_total counter",
		"artifactfs_verify_failures_total counter",
		"artifactfs_evictions_total counter",
		"artifactfs_fetch_seconds histogram",
		"artifactfs_cache_bytes gauge",
		"artifactfs_cache_max_bytes gauge",
		"artifactfs_cache_blobs gauge",
		"artifactfs_registry_last_success_timestamp_seconds gauge",
	};
	struct metrics_sample s;
	char *out = NULL, line[128];
	size_t len = 0;

	(void)state;
	memset(&s, 0, sizeof(s));
	s.fs.opens[FS_OPEN_OK] = 7;
	s.fs.opens[FS_OPEN_DENIED] = 2;
	s.fs.opens[FS_OPEN_EAGAIN] = 1;
	s.src.type_bytes[POL_SRC_HTTPS] = 123456;
	s.cache.fetches[CACHE_FETCH_OK] = 3;
	s.cache.fetches[CACHE_FETCH_VERIFY_FAILED] = 1;
	s.cache.verify_failures = 1;
	s.cache.evictions = 4;
	s.cache.fetch_buckets[0] = 2;			/* <= 0.1 s */
	s.cache.fetch_buckets[3] = 1;			/* <= 1 s */
	s.cache.fetch_buckets[CACHE_FETCH_BUCKETS] = 1;	/* > 1 h */
	s.cache.fetch_ms_sum = 3700500;
	s.cache_bytes = 1000;
	s.cache_max_bytes = 2000;
	s.cache_blobs[CACHE_VERIFIED] = 5;
	s.ctl.last_success_s = 1764547200;
	assert_int_equal(metrics_render(&s, &out, &len), 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		snprintf(line, sizeof(line), "\n# TYPE %s\n", families[i]);
		if (!strstr(out, line))
			fail_msg("no \"%s\"", line + 1);
		snprintf(line, sizeof(line), "\n# HELP %.*s ",
			 (int)strcspn(families[i], " "), families[i]);
		if (!strstr(out, line) && strncmp(out, line + 1, strlen(line + 1)) != 0)
			fail_msg("no HELP for %s", families[i]);
	}
	assert_non_null(strstr(out, "\nartifactfs_opens_total{result=\"ok\"} 7\n"));
	assert_non_null(strstr(out, "\nartifactfs_opens_total{result=\"denied\"} 2\n"));
	assert_non_null(strstr(out, "\nartifactfs_opens_total{result=\"enoent\"} 0\n"));
	assert_non_null(strstr(out, "\nartifactfs_opens_total{result=\"eagain\"} 1\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_bytes_total{source_type=\"https\"} 123456\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_bytes_total{source_type=\"s3\"} 0\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetches_total{result=\"verify_failed\"} 1\n"));
	/* Cumulative buckets; +Inf and _count are the total. */
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_bucket{le=\"0.1\"} 2\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_bucket{le=\"0.5\"} 2\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_bucket{le=\"1\"} 3\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_bucket{le=\"3600\"} 3\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_bucket{le=\"+Inf\"} 4\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_count 4\n"));
	assert_non_null(strstr(out, "\nartifactfs_fetch_seconds_sum 3700.500\n"));
	assert_non_null(strstr(out, "\nartifactfs_cache_blobs{state=\"verified\"} 5\n"));
	assert_non_null(strstr(out, "\nartifactfs_cache_max_bytes 2000\n"));
	assert_non_null(strstr(out, "\nartifactfs_registry_last_success_timestamp_seconds 1764547200\n"));
	/* Every line ends; no blank line; no NaN. */
	assert_int_equal(out[len - 1], '\n');
	assert_null(strstr(out, "\n\n"));
	assert_null(strstr(out, "nan"));
	free(out);
}

/* GET /metrics over a raw socket, with a deadline. Returns the body. */
static char *http_get(uint16_t port, int timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	static char buf[65536];
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	const char req[] = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
	long long deadline = af_now_ms() + timeout_ms;

	assert_true(fd >= 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - af_now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			close(fd);
			return NULL;	/* the scrape did not answer in time */
		}
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return strstr(buf, "\r\n\r\n") ? strstr(buf, "\r\n\r\n") + 4 : NULL;
}

static uint64_t value(const char *body, const char *series)
{
	char key[256];
	const char *p;

	snprintf(key, sizeof(key), "\n%s ", series);
	p = strstr(body, key);
	if (!p)
		fail_msg("no series %s", series);
	return strtoull(p + strlen(key), NULL, 10);
}

struct holder {
	struct cache *c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool holding, release;
};

/* Holds the cache's lock and the index's write transaction until told. */
static void *hold_main(void *arg)
{
	struct holder *h = arg;
	MDB_txn *txn = NULL;

	assert_int_equal(idx_begin(&h->c->idx, true, &txn), 0);
	pthread_mutex_lock(&h->c->lock);
	pthread_mutex_lock(&h->lock);
	h->holding = true;
	pthread_cond_broadcast(&h->cond);
	while (!h->release)
		pthread_cond_wait(&h->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	pthread_mutex_unlock(&h->c->lock);
	idx_abort(txn);
	return NULL;
}

static void test_scrape_moves_and_never_waits(void **state)
{
	struct fx *f = *state;
	struct pol_registration *r1, *r2, *bad;
	struct ctl_catalog *cat = NULL;
	struct metrics *m = NULL;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct holder h = { .lock = PTHREAD_MUTEX_INITIALIZER,
			    .cond = PTHREAD_COND_INITIALIZER };
	struct metrics_deps deps;
	pthread_t t;
	char *body;
	int fd;

	char p1[128], p2[128], p3[128];

	fx_open_cache(f);
	r1 = fx_blob(f, 3 * FX_CHUNK + 17, 1, p1, sizeof(p1));
	r2 = fx_blob(f, FX_CHUNK, 2, p2, sizeof(p2));
	/* A digest its bytes do not have: a verification failure. */
	snprintf(p3, sizeof(p3), "%s/src-3.bin", f->dir);
	fx_write_random(p3, 1000, 3);
	bad = fx_reg(f, p3, "sha256:00000000000000000000000000000000"
		     "00000000000000000000000000000005", true, 1000);
	assert_int_equal(ctl_catalog_new(&f->cfg, NULL, &cat), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	deps = (struct metrics_deps){ .cfg = &f->cfg, .cache = f->c,
		.srcs = f->srcs, .catalog = cat };
	assert_int_equal(metrics_start(fd, &deps, &m), 0);

	body = http_get(ntohs(a.sin_port), 5000);
	assert_non_null(body);
	assert_int_equal(value(body, "artifactfs_fetches_total{result=\"ok\"}"), 0);

	assert_int_equal(cache_ensure_sync(f->c, r1, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r2, NULL, NULL), 0);
	assert_int_equal(cache_ensure_sync(f->c, r1, NULL, NULL), 0);	/* no fetch */
	assert_int_equal(cache_ensure_sync(f->c, bad, NULL, NULL), AF_EDIGEST);
	assert_int_equal(cache_evict(f->c, &r2->digest, "test"), 0);
	body = http_get(ntohs(a.sin_port), 5000);
	assert_non_null(body);
	assert_int_equal(value(body, "artifactfs_fetches_total{result=\"ok\"}"), 2);
	assert_int_equal(value(body, "artifactfs_fetches_total{result=\"verify_failed\"}"), 1);
	assert_int_equal(value(body, "artifactfs_verify_failures_total"), 1);
	assert_int_equal(value(body, "artifactfs_evictions_total"), 1);
	assert_int_equal(value(body, "artifactfs_fetch_seconds_count"), 3);
	assert_int_equal(value(body, "artifactfs_fetch_bytes_total{source_type=\"file\"}"),
			 3 * FX_CHUNK + 17 + FX_CHUNK + 1000);

	/* The locks an open waits on are held: a scrape still answers. */
	h.c = f->c;
	assert_int_equal(pthread_create(&t, NULL, hold_main, &h), 0);
	pthread_mutex_lock(&h.lock);
	while (!h.holding)
		pthread_cond_wait(&h.cond, &h.lock);
	pthread_mutex_unlock(&h.lock);
	for (int i = 0; i < 5; i++) {
		body = http_get(ntohs(a.sin_port), 2000);
		if (!body)
			fail_msg("scrape %d did not answer while the cache lock was held", i);
		assert_int_equal(value(body, "artifactfs_evictions_total"), 1);
	}
	pthread_mutex_lock(&h.lock);
	h.release = true;
	pthread_cond_broadcast(&h.cond);
	pthread_mutex_unlock(&h.lock);
	pthread_join(t, NULL);

	/* The sampler (off the request path) catches up with the index. */
	for (int i = 0; i < 50; i++) {
		body = http_get(ntohs(a.sin_port), 2000);
		assert_non_null(body);
		if (value(body, "artifactfs_cache_blobs{state=\"verified\"}") == 1 &&
		    value(body, "artifactfs_cache_blobs{state=\"quarantined\"}") == 1)
			break;
		usleep(100 * 1000);
	}
	assert_int_equal(value(body, "artifactfs_cache_blobs{state=\"verified\"}"), 1);
	assert_int_equal(value(body, "artifactfs_cache_bytes"), 3 * FX_CHUNK + 17);

	metrics_stop(m);
	metrics_stop(NULL);
	ctl_catalog_free(cat);
	pol_registration_free(r1);
	pol_registration_free(r2);
	pol_registration_free(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test_setup_teardown(test_scrape_moves_and_never_waits,
						fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
