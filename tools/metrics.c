/*
 * metrics.c - Prometheus /metrics (metrics.h): the renderer, the sampler
 * of the cache gauges and the libmicrohttpd server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../policy/af.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "metrics.h"

/* At most this many scrapers at once; a scrape that stalls is cut. */
#define METRICS_MAX_CONNECTIONS	8
#define METRICS_CONNECTION_TIMEOUT_S	10
/* How often the sampler looks whether the cache's counters moved. */
#define METRICS_SAMPLE_POLL_MS	1000

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct metrics_deps deps;
	struct MHD_Daemon *mhd;

	/* The sampler: cache gauges, refreshed off the request path. */
	pthread_t sampler;
	bool sampler_started;
	int stop_pipe[2];
	/* Sampled values: __atomic, written by the sampler only. */
	uint64_t s_bytes;
	uint64_t s_blobs[4];
};

static const char *const open_results[FS_OPEN_RESULTS] = {
	[FS_OPEN_OK] = "ok",
	[FS_OPEN_DENIED] = "denied",
	[FS_OPEN_ENOENT] = "enoent",
	[FS_OPEN_EIO] = "eio",
	[FS_OPEN_EAGAIN] = "eagain",
	[FS_OPEN_EINTR] = "eintr",
	[FS_OPEN_OTHER] = "other",
};

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_render(const struct metrics_sample *s, char **out, size_t *len)
{
	uint64_t cum = 0;
	char *buf = NULL;
	size_t n = 0;
	FILE *f;

	f = open_memstream(&buf, &n);
	if (!f)
		return -ENOMEM;

	family(f, "artifactfs_opens_total", "counter",
	       "Opens of artifacts by result (enoent also counts lookups of names no registration backs: such an open never reaches open).");
	for (int i = 0; i < FS_OPEN_RESULTS; i++)
		fprintf(f, "artifactfs_opens_total{result=\"%s\"} %llu\n",
			open_results[i], (unsigned long long)s->fs.opens[i]);

	family(f, "artifactfs_fetch_bytes_total", "counter",
	       "Bytes received from sources, by the registration's source type.");
	for (int t = 1; t < SRC_TYPE_MAX; t++) {
		const char *name = pol_source_type_name(t);

		if (!name || strcmp(name, "unknown") == 0)
			continue;
		fprintf(f, "artifactfs_fetch_bytes_total{source_type=\"%s\"} %llu\n",
			name, (unsigned long long)s->src.type_bytes[t]);
	}

	family(f, "artifactfs_fetches_total", "counter",
	       "Blob fetches finished, by result.");
	for (int i = 0; i < CACHE_FETCH_RESULTS; i++)
		fprintf(f, "artifactfs_fetches_total{result=\"%s\"} %llu\n",
			cache_fetch_result_name(i),
			(unsigned long long)s->cache.fetches[i]);

	family(f, "artifactfs_verify_failures_total", "counter",
	       "Blobs whose digest or size did not match their registration (quarantined).");
	fprintf(f, "artifactfs_verify_failures_total %llu\n",
		(unsigned long long)s->cache.verify_failures);

	family(f, "artifactfs_evictions_total", "counter",
	       "Blobs this daemon evicted from the cache (LRU above cache.max_size, and explicit).");
	fprintf(f, "artifactfs_evictions_total %llu\n",
		(unsigned long long)s->cache.evictions);

	family(f, "artifactfs_fetch_seconds", "histogram",
	       "Time from the start of a blob fetch to its verdict (verified or failed).");
	for (int i = 0; i < CACHE_FETCH_BUCKETS; i++) {
		cum += s->cache.fetch_buckets[i];
		fprintf(f, "artifactfs_fetch_seconds_bucket{le=\"%g\"} %llu\n",
			(double)cache_fetch_bucket_ms[i] / 1000.0,
			(unsigned long long)cum);
	}
	cum += s->cache.fetch_buckets[CACHE_FETCH_BUCKETS];
	fprintf(f, "artifactfs_fetch_seconds_bucket{le=\"+Inf\"} %llu\n",
		(unsigned long long)cum);
	fprintf(f, "artifactfs_fetch_seconds_sum %.3f\n",
		(double)s->cache.fetch_ms_sum / 1000.0);
	fprintf(f, "artifactfs_fetch_seconds_count %llu\n",
		(unsigned long long)cum);

	family(f, "artifactfs_cache_bytes", "gauge",
	       "Bytes of blob data present in the cache.");
	fprintf(f, "artifactfs_cache_bytes %llu\n",
		(unsigned long long)s->cache_bytes);
	family(f, "artifactfs_cache_max_bytes", "gauge",
	       "cache.max_size in bytes (0: no limit).");
	fprintf(f, "artifactfs_cache_max_bytes %llu\n",
		(unsigned long long)s->cache_max_bytes);
	family(f, "artifactfs_cache_blobs", "gauge",
	       "Blobs the cache index knows, by state.");
	for (int st = CACHE_PARTIAL; st <= CACHE_QUARANTINED; st++)
		fprintf(f, "artifactfs_cache_blobs{state=\"%s\"} %llu\n",
			cache_state_name(st),
			(unsigned long long)s->cache_blobs[st]);

	family(f, "artifactfs_registry_last_success_timestamp_seconds", "gauge",
	       "When the registry was last loaded without error (Unix time; 0: never).");
	fprintf(f, "artifactfs_registry_last_success_timestamp_seconds %lld\n",
		s->ctl.last_success_s);
	family(f, "artifactfs_registry_artifacts", "gauge",
	       "Registrations in the catalog the node serves.");
	fprintf(f, "artifactfs_registry_artifacts %llu\n",
		(unsigned long long)s->ctl.registrations);

	family(f, "artifactfs_source_requests_total", "counter",
	       "HTTP requests made to sources (retries included).");
	fprintf(f, "artifactfs_source_requests_total %llu\n",
		(unsigned long long)s->src.requests);
	family(f, "artifactfs_source_retries_total", "counter",
	       "Source requests retried after a failure.");
	fprintf(f, "artifactfs_source_retries_total %llu\n",
		(unsigned long long)s->src.retries);

	if (fclose(f) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}

int metrics_bind(const char *listen_addr)
{
	struct sockaddr_storage ss;
	socklen_t slen;
	char host[64], why[256];
	uint16_t port;
	int fd, one = 1, rc;

	if (pol_parse_listen(listen_addr, host, sizeof(host), &port, why,
			     sizeof(why)) < 0) {
		af_err("[metrics] listen %s: %s", listen_addr, why);
		return -EINVAL;
	}
	memset(&ss, 0, sizeof(ss));
	if (strchr(host, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		slen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		slen = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		af_err("[metrics] listen %s: socket: %s", listen_addr,
		       strerror(errno));
		return rc;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, slen) < 0 || listen(fd, 16) < 0) {
		rc = -errno;
		af_err("[metrics] listen %s: %s", listen_addr, strerror(errno));
		close(fd);
		return rc;
	}
	return fd;
}

/* ---- the sampler: cache gauges off the request path ---------------------- */

static uint64_t cache_events(struct cache *c)
{
	struct cache_counters k;
	uint64_t n = 0;

	cache_get_counters(c, &k);
	for (int i = 0; i < CACHE_FETCH_RESULTS; i++)
		n += k.fetches[i];
	return n + k.evictions + k.verify_failures;
}

static void sample_cache(struct metrics *m)
{
	struct cache_stats st;

	if (cache_get_stats(m->deps.cache, &st) < 0)
		return;		/* keep the last values */
	__atomic_store_n(&m->s_bytes, st.bytes, __ATOMIC_RELAXED);
	__atomic_store_n(&m->s_blobs[CACHE_PARTIAL], st.partial,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&m->s_blobs[CACHE_VERIFIED], st.verified,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&m->s_blobs[CACHE_QUARANTINED], st.quarantined,
			 __ATOMIC_RELAXED);
}

/*
 * Reads the index (cache_get_stats) when the cache's own events moved,
 * and at least every METRICS_SAMPLE_MAX_S for what other processes
 * (prefetch, cache evict) did: never on a scrape.
 */
static void *sampler_main(void *arg)
{
	struct metrics *m = arg;
	uint64_t seen = cache_events(m->deps.cache);
	long long last = af_now_ms();

	sample_cache(m);
	for (;;) {
		struct pollfd p = { .fd = m->stop_pipe[0], .events = POLLIN };
		uint64_t now_events;

		if (poll(&p, 1, METRICS_SAMPLE_POLL_MS) > 0)
			return NULL;
		now_events = cache_events(m->deps.cache);
		if (now_events == seen &&
		    af_now_ms() - last < METRICS_SAMPLE_MAX_S * 1000LL)
			continue;
		seen = now_events;
		last = af_now_ms();
		sample_cache(m);
	}
}

/* ---- scrape -------------------------------------------------------------- */

void metrics_collect(struct metrics *m, struct metrics_sample *s)
{
	memset(s, 0, sizeof(*s));
	if (m->deps.fs)
		fs_get_stats(m->deps.fs, &s->fs);
	cache_get_counters(m->deps.cache, &s->cache);
	src_ctx_stats(m->deps.srcs, &s->src);
	ctl_catalog_stats(m->deps.catalog, &s->ctl);
	s->cache_max_bytes = m->deps.cfg->cache_max_size;
	s->cache_bytes = __atomic_load_n(&m->s_bytes, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		s->cache_blobs[i] = __atomic_load_n(&m->s_blobs[i],
						    __ATOMIC_RELAXED);
}

static enum MHD_Result reply_text(struct MHD_Connection *conn,
				  unsigned int status, const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)text,
					    MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; charset=utf-8");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;
	struct metrics_sample s;
	struct MHD_Response *r;
	enum MHD_Result ret;
	char *body;
	size_t len;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size != 0)
		return MHD_NO;		/* no request body is ever expected */
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "only GET /metrics\n");
	if (strcmp(url, "/metrics") != 0)
		return reply_text(conn, MHD_HTTP_NOT_FOUND,
				  "artifactfs: the metrics are at /metrics\n");
	metrics_collect(m, &s);
	if (metrics_render(&s, &body, &len) < 0)
		return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "out of memory\n");
	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
	ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	af_warn("metrics: %s", msg);
}

int metrics_start(int fd, const struct metrics_deps *deps,
		  struct metrics **out)
{
	struct metrics *m = calloc(1, sizeof(*m));
	int rc;

	if (!m) {
		close(fd);
		return -ENOMEM;
	}
	m->deps = *deps;
	m->stop_pipe[0] = m->stop_pipe[1] = -1;
	if (pipe2(m->stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		close(fd);
		goto out_free;
	}
	/* The sampler first: the first scrape finds the gauges filled. */
	rc = -pthread_create(&m->sampler, NULL, sampler_main, m);
	if (rc < 0) {
		close(fd);
		goto out_free;
	}
	m->sampler_started = true;
	/* ITC: MHD_quiesce_daemon needs it to hand the socket on. */
	m->mhd = MHD_start_daemon(MHD_USE_POLL_INTERNAL_THREAD |
				  MHD_USE_ITC | MHD_USE_ERROR_LOG, 0, NULL,
				  NULL, on_request,
				  m, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned int)METRICS_MAX_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned int)METRICS_CONNECTION_TIMEOUT_S,
				  MHD_OPTION_END);
	if (!m->mhd) {
		af_err("metrics: cannot start the HTTP server");
		close(fd);
		rc = -EIO;
		goto out_free;
	}
	*out = m;
	return 0;

out_free:
	metrics_stop(m);
	return rc;
}

void metrics_stop(struct metrics *m)
{
	if (!m)
		return;
	if (m->mhd)
		MHD_stop_daemon(m->mhd);	/* closes the listening fd */
	if (m->sampler_started) {
		char q = 'q';

		if (write(m->stop_pipe[1], &q, 1) != 1)
			af_warn("metrics: cannot stop the sampler");
		pthread_join(m->sampler, NULL);
	}
	if (m->stop_pipe[0] >= 0)
		close(m->stop_pipe[0]);
	if (m->stop_pipe[1] >= 0)
		close(m->stop_pipe[1]);
	free(m);
}

int metrics_release(struct metrics *m)
{
	int fd = -1;

	if (!m)
		return -1;
	if (m->mhd) {
		MHD_socket ls = MHD_quiesce_daemon(m->mhd);

		if (ls != MHD_INVALID_SOCKET)
			fd = ls;
	}
	metrics_stop(m);
	return fd;
}
