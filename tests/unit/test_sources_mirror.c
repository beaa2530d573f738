/*
 * test_sources_mirror.c - [fetch] mirrors in sources/ (DESIGN §11, issue
 * 14 item 1) against faultd on 127.0.0.1: a plain and a template mirror
 * serve the blob instead of the source; a mirror that answers 404, is
 * down, is cut off mid-range or stalls hands the rest to the next mirror
 * or the source without asking for a delivered byte again; a mirror that
 * ignores Range is seen as such; a redirect to another host is followed
 * under the redirect rules; the source's credentials and the site proxy
 * are never used for a mirror, which sends a credential only when one's
 * own scope matches the mirror URL, and never to the host it redirects
 * to; a mirror whose size differs from the
 * registered one is skipped; src_mirrors_blame sends the source back to
 * its origin and keeps the mirror out of new sources until its backoff
 * expires; src_close cancels ranges at a mirror.
 *
 * The blob is root/blob (the source, /ok/blob on server b) and, by digest,
 * root/sha256/HEX and root/v2/sha256:HEX (the mirrors, on server a).
 */
#include <curl/curl.h>
#include <openssl/evp.h>

#include "sources/src_int.h"
#include "tests/unit/src_fixture.h"

struct mfx {
	struct fixture *f;
	struct pol_registration r;
	char hex[65];
	char origin[128];
};

static struct mfx *mfx_of(void **state)
{
	static struct mfx m;
	struct fixture *f = *state;
	unsigned char md[32];
	unsigned int mdlen = 0;
	char path[256], dstr[80];

	if (m.f == f)
		return &m;
	memset(&m, 0, sizeof(m));
	m.f = f;
	assert_int_equal(EVP_Digest(f->blob, BLOB_SIZE, md, &mdlen,
				    EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < 32; i++)
		snprintf(m.hex + 2 * i, 3, "%02x", md[i]);
	snprintf(dstr, sizeof(dstr), "sha256:%s", m.hex);
	assert_int_equal(pol_digest_parse(dstr, &m.r.digest, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/root/sha256", f->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/root/v2", f->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "sha256/%s", m.hex);
	write_file(f->dir, path, f->blob, BLOB_SIZE);
	snprintf(path, sizeof(path), "v2/sha256:%s", m.hex);
	write_file(f->dir, path, f->blob, BLOB_SIZE);
	/* A wrong-sized copy, for the size rule. */
	snprintf(path, sizeof(path), "v2/short-%s", m.hex);
	write_file(f->dir, path, f->blob, BLOB_SIZE - 1);
	snprintf(m.origin, sizeof(m.origin), "http://127.0.0.1:%u/ok/blob",
		 f->b.port);
	m.r.source_type = POL_SRC_HTTPS;
	m.r.project = "vision";		/* a credential request names them */
	m.r.name = "blob";
	m.r.uri = m.origin;
	m.r.has_size = true;
	m.r.size_bytes = BLOB_SIZE;
	return &m;
}

/* A context whose [fetch] mirrors are the given entries (NULL-ended). */
static struct src_ctx *ctx_with(struct pol_config *cfg, char **mirrors)
{
	struct src_ctx *ctx;

	test_cfg(cfg);
	cfg->fetch_retries = 2;
	cfg->low_speed_timeout_ms = 1000;
	cfg->mirrors = mirrors;
	for (cfg->n_mirrors = 0; mirrors[cfg->n_mirrors] != NULL;
	     cfg->n_mirrors++)
		;
	assert_int_equal(src_ctx_new(cfg, NULL, &ctx), 0);
	return ctx;
}

static char *mirror_url(const struct server *sv, const char *rest)
{
	static char bufs[4][256];
	static int next;
	char *b = bufs[next++ % 4];

	snprintf(b, 256, "http://127.0.0.1:%u%s", sv->port, rest);
	return b;
}

/* The source's URL gets a query marker, to tell its requests apart. */
static void set_origin(struct mfx *m, const char *marker)
{
	snprintf(m->origin, sizeof(m->origin),
		 "http://127.0.0.1:%u/ok/blob?k=%s", m->f->b.port, marker);
}

static int origin_gets(const struct fixture *f)
{
	return log_count(&f->b, "GET /ok/blob", NULL);
}

static void test_plain_and_template_mirror(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *plain[] = { mirror_url(&f->a, "/ok/"), NULL };
	char *tmpl[] = { mirror_url(&f->a, "/ok/v2/{digest}"), NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	char served[256], want[128];
	uint64_t size = 0;
	int o0 = origin_gets(f);
	struct src *s;

	ctx = ctx_with(&cfg, plain);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(src_size(s, &size, NULL, 0), 0);
	assert_int_equal(size, BLOB_SIZE);
	assert_int_equal(fetch(s, 0, 300000, f->blob, NULL, 0), 0);
	assert_int_equal(fetch(s, 300000, BLOB_SIZE - 300000, f->blob, NULL,
			       0), 0);
	assert_int_equal(src_mirrors_served(s, served, sizeof(served)), 1);
	snprintf(want, sizeof(want), "http://127.0.0.1:%u/ok/", f->a.port);
	assert_string_equal(served, want);
	assert_false(src_range_ignored(s));
	src_close(s);
	src_ctx_free(ctx);
	assert_true(log_count(&f->a, "GET /ok/sha256/", m->hex) >= 2);

	ctx = ctx_with(&cfg, tmpl);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 1000, 70000, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_close(s);
	src_ctx_free(ctx);
	assert_int_equal(log_count(&f->a, "GET /ok/v2/sha256:", m->hex), 1);
	/* Nothing of it came from the source. */
	assert_int_equal(origin_gets(f), o0);
}

static void test_404_and_down_move_on(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char down[128];
	char *mirrors[] = { NULL, mirror_url(&f->a, "/ok/none/{hex}"),
			    mirror_url(&f->a, "/ok/v2/{digest}?k=second"),
			    NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	uint64_t size = 0;
	int fd, o0 = origin_gets(f);
	struct src *s;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(down, sizeof(down), "http://127.0.0.1:%u/b",
		 ntohs(sa.sin_port));
	mirrors[0] = down;
	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(src_size(s, &size, NULL, 0), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(fetch(s, 5, 50, f->blob, NULL, 0), 0);
	src_close(s);
	/*
	 * The 404 was asked for the size only (a HEAD, and the one-byte GET
	 * that asks why), never again for this blob.
	 */
	assert_int_equal(log_count(&f->a, "HEAD /ok/none/", NULL), 1);
	assert_int_equal(log_count(&f->a, "GET /ok/none/", NULL),
			 log_count(&f->a, "GET /ok/none/", "range=bytes=0-0 "));
	assert_int_equal(log_count(&f->a, "k=second", "GET"), 2);
	assert_int_equal(origin_gets(f), o0);

	/* Every mirror fails: the source serves. */
	mirrors[2] = NULL;
	src_ctx_free(ctx);
	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 0);
	src_close(s);
	src_ctx_free(ctx);
	assert_int_equal(origin_gets(f), o0 + 1);
}

static void test_cut_off_mid_range(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { mirror_url(&f->a, "/reset/v2/{digest}?n=5"),
			    NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	int o0 = origin_gets(f);
	struct src *s;

	set_origin(m, "cut");
	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	src_close(s);
	src_ctx_free(ctx);
	/* Two attempts at the mirror (one retry), then the source... */
	assert_int_equal(log_count(&f->a, "/reset/v2/", "GET"), 2);
	assert_int_equal(origin_gets(f), o0 + 1);
	/* ...asked only for what the mirror had not delivered. */
	assert_int_equal(log_count(&f->b, "GET /ok/blob?k=cut range=bytes=0-",
				   NULL), 0);
	assert_int_equal(log_count(&f->b, "GET /ok/blob?k=cut range=bytes=",
				   NULL), 1);
}

static void test_stall_hands_over(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { mirror_url(&f->a, "/stall/v2/{digest}?n=5&s=20"),
			    mirror_url(&f->a, "/ok/v2/{digest}?k=after-stall"),
			    NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	struct src *s;
	int o0 = origin_gets(f);

	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	src_close(s);
	src_ctx_free(ctx);
	assert_int_equal(log_count(&f->a, "k=after-stall", "GET"), 1);
	assert_int_equal(log_count(&f->a, "k=after-stall range=bytes=0-",
				   NULL), 0);
	assert_int_equal(origin_gets(f), o0);
}

/* Takes the whole rest of a whole-body answer, once. */
static uint64_t take_rest(void *arg)
{
	struct sink *k = arg;
	uint64_t *asked = k->user;

	if (*asked)
		return 0;
	*asked = BLOB_SIZE - 4096;
	return *asked;
}

static void test_norange_mirror(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { mirror_url(&f->a, "/norange/v2/{digest}"), NULL };
	struct pol_config cfg;
	struct src_range_cb cb;
	struct src_ctx *ctx;
	uint64_t asked = 0;
	struct sink k;
	struct src *s;

	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_false(src_range_ignored(s));
	assert_int_equal(fetch(s, 0, 4096, f->blob, NULL, 0), 0);
	/* DESIGN §5b: the caller learns it, and reads the rest at once. */
	assert_true(src_range_ignored(s));
	assert_int_equal(fetch(s, 4096, BLOB_SIZE - 4096, f->blob, NULL, 0),
			 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_close(s);
	src_ctx_free(ctx);

	/* The caller takes the rest from the same answer: one request. */
	mirrors[0] = mirror_url(&f->a, "/norange/v2/{digest}?k=more");
	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	sink_init(&k, 0, BLOB_SIZE);
	k.user = &asked;
	sink_cb(&k, &cb);
	cb.more = take_rest;
	assert_int_equal(src_read_range(s, 0, 4096, &cb), 0);
	sink_wait(&k, 60);
	assert_int_equal(k.err, 0);
	assert_int_equal(k.got, BLOB_SIZE);
	assert_memory_equal(k.buf, f->blob, BLOB_SIZE);
	sink_release(&k);
	src_close(s);
	src_ctx_free(ctx);
	assert_int_equal(log_count(&f->a, "k=more", "GET"), 1);
}

/* A header hook standing for the source's credential (DESIGN §5). */
static int add_auth(void *arg, struct http_req *rq, char *reason,
		    size_t reasonlen)
{
	struct curl_slist *l;

	(void)arg;
	(void)reason;
	(void)reasonlen;
	l = curl_slist_append(rq->hdrs, "Authorization: Bearer source-only");
	if (l == NULL)
		return -ENOMEM;
	rq->hdrs = l;
	return 0;
}

static void test_no_credential_no_proxy_redirect(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { NULL, NULL };
	char proxy[64];
	struct pol_config cfg;
	struct src_ctx *ctx;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd;
	struct src *s;

	mirrors[0] = mirror_url(&f->a, "/redirect/v2/{digest}?k=rd&to=127.0.0.1:");
	/* The template takes the port as literal text. */
	snprintf(mirrors[0] + strlen(mirrors[0]), 16, "%u", f->b.port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%u",
		 ntohs(sa.sin_port));
	test_cfg(&cfg);
	cfg.fetch_retries = 0;
	cfg.proxy = proxy;	/* down: only a direct request can succeed */
	cfg.mirrors = mirrors;
	cfg.n_mirrors = 1;
	assert_int_equal(src_ctx_new(&cfg, NULL, &ctx), 0);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(src_set_headers_hook(s, add_auth, NULL), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_close(s);
	src_ctx_free(ctx);
	/* The mirror redirected to the other host, which served it... */
	assert_int_equal(log_count(&f->a, "k=rd", "status=302"), 1);
	assert_int_equal(log_count(&f->b, "GET /ok/v2/sha256:", "status=206"),
			 1);
	/* ...and neither saw the source's credential. */
	assert_int_equal(log_count(&f->a, "k=rd", "auth=1"), 0);
	assert_int_equal(log_count(&f->b, "/ok/v2/sha256:", "auth=1"), 0);
}

/* A credentials.dir file for an `https` scope, valid for an hour. */
static void bearer_file(const char *dir, const char *name, const char *scope,
			const char *tok)
{
	char path[512], doc[1024], when[40];
	FILE *fp;

	af_rfc3339(af_wall_ms() / 1000 + 3600, when, sizeof(when));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(doc, sizeof(doc),
		 "{\"source_type\": \"https\", \"scope\": \"%s\", "
		 "\"expires_at\": \"%s\", \"bearer_token\": \"%s\"}\n",
		 scope, when, tok);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(doc, fp);
	fclose(fp);
	chmod(path, 0600);
}

/*
 * DESIGN §11: "a mirror gets a credential only when a credential's own
 * scope matches the mirror URL". The source has a credential (and uses
 * it); a mirror whose URL no scope matches gets no Authorization; one
 * whose URL a scope matches gets that credential's token; a mirror with a
 * credential that redirects to another host sends it to itself only, even
 * though the source's scope covers the URL it redirects to.
 */
static void test_mirror_own_credential(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char creds[300], scope[128];
	char *mirrors[] = { mirror_url(&f->a, "/ok/none/{hex}?k=nocred"),
			    mirror_url(&f->a, "/bearer/v2/{digest}?tok=mirror-tok-77&k=cred"),
			    NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	int o0, v0, a0;
	struct src *s;

	snprintf(creds, sizeof(creds), "%s/creds", f->dir);
	mkdir(creds, 0700);
	snprintf(scope, sizeof(scope), "http://127.0.0.1:%u/ok/", f->b.port);
	bearer_file(creds, "source.json", scope, "source-tok-55");
	snprintf(scope, sizeof(scope), "http://127.0.0.1:%u/bearer/",
		 f->a.port);
	bearer_file(creds, "mirror.json", scope, "mirror-tok-77");
	snprintf(scope, sizeof(scope), "http://127.0.0.1:%u/redirect/",
		 f->a.port);
	bearer_file(creds, "redirect.json", scope, "redirect-tok-31");
	set_origin(m, "credsrc");
	test_cfg(&cfg);
	cfg.fetch_retries = 1;
	cfg.credentials_dir = creds;
	cfg.credentials_max_lifetime_ms = 12ULL * 3600 * 1000;
	cfg.credentials_helper_timeout_ms = 2000;
	cfg.mirrors = mirrors;
	cfg.n_mirrors = 2;
	assert_int_equal(src_ctx_new(&cfg, NULL, &ctx), 0);

	/* The second mirror serves, with its own token only. */
	o0 = origin_gets(f);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_close(s);
	assert_true(log_count(&f->a, "k=nocred", "status=404") >= 1);
	assert_int_equal(log_count(&f->a, "k=nocred", "auth=1"), 0);
	assert_true(log_count(&f->a, "k=cred ", "status=206") >= 1);
	assert_int_equal(log_count(&f->a, "k=cred ", "auth=0"), 0);
	assert_int_equal(log_count(&f->a, "k=cred ", "status=401"), 0);
	assert_int_equal(origin_gets(f), o0);

	/* Every mirror fails: the source is asked, with its own credential. */
	mirrors[1] = NULL;
	cfg.n_mirrors = 1;
	src_ctx_free(ctx);
	assert_int_equal(src_ctx_new(&cfg, NULL, &ctx), 0);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 0);
	src_close(s);
	assert_true(log_count(&f->b, "k=credsrc", "auth=1") >= 1);
	assert_int_equal(log_count(&f->b, "k=credsrc", "auth=0"), 0);
	assert_int_equal(log_count(&f->a, "k=nocred", "auth=1"), 0);
	src_ctx_free(ctx);

	/*
	 * A mirror with a credential redirects to the source's host: the
	 * token goes to the mirror, nothing to the other host, although
	 * the source's scope covers that URL.
	 */
	mirrors[0] = mirror_url(&f->a, "/redirect/v2/{digest}?k=rdc&to=127.0.0.1:");
	snprintf(mirrors[0] + strlen(mirrors[0]), 16, "%u", f->b.port);
	v0 = log_count(&f->b, "GET /ok/v2/sha256:", "status=206");
	a0 = log_count(&f->b, "/ok/v2/sha256:", "auth=1");
	assert_int_equal(src_ctx_new(&cfg, NULL, &ctx), 0);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_close(s);
	src_ctx_free(ctx);
	assert_int_equal(log_count(&f->a, "k=rdc", "status=302"), 1);
	assert_int_equal(log_count(&f->a, "k=rdc", "auth=1"), 1);
	assert_int_equal(log_count(&f->b, "GET /ok/v2/sha256:", "status=206"),
			 v0 + 1);
	assert_int_equal(log_count(&f->b, "/ok/v2/sha256:", "auth=1"), a0);
}

/* Also: without size_bytes, the size comes from the source. */
static void test_size_mismatch_skips_mirror(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { mirror_url(&f->a, "/ok/v2/short-{hex}"), NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	uint64_t size = 0;
	int o0 = origin_gets(f);
	struct src *s;

	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(src_size(s, &size, NULL, 0), 0);
	assert_int_equal(size, BLOB_SIZE);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 0);
	src_close(s);
	src_ctx_free(ctx);
	assert_int_equal(log_count(&f->a, "/ok/v2/short-", "GET"), 0);
	assert_int_equal(origin_gets(f), o0 + 1);

	/* No registered size: the source says it, never a mirror. */
	mirrors[0] = mirror_url(&f->a, "/ok/v2/{digest}?k=nosize");
	m->r.has_size = false;
	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(src_size(s, &size, NULL, 0), 0);
	assert_int_equal(size, BLOB_SIZE);
	assert_int_equal(log_count(&f->a, "k=nosize", NULL), 0);
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(log_count(&f->a, "k=nosize", "GET"), 1);
	src_close(s);
	src_ctx_free(ctx);
	m->r.has_size = true;
}

static void test_blame_and_backoff(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { mirror_url(&f->a, "/ok/v2/{digest}?k=blamed"),
			    NULL };
	struct pol_config cfg;
	struct src_ctx *ctx;
	int o0 = origin_gets(f);
	struct src *s;

	ctx = ctx_with(&cfg, mirrors);
	ctx->mirror_backoff_ms = 600;
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, 1000, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_mirrors_blame(s);
	/* From now on the source only, for this blob's fetch. */
	assert_int_equal(fetch(s, 0, BLOB_SIZE, f->blob, NULL, 0), 0);
	assert_int_equal(origin_gets(f), o0 + 1);
	src_close(s);
	/* A new source skips the blamed mirror until the backoff expires. */
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, 1000, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 0);
	src_close(s);
	assert_int_equal(log_count(&f->a, "k=blamed", "GET"), 1);
	usleep(700 * 1000);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	assert_int_equal(fetch(s, 0, 1000, f->blob, NULL, 0), 0);
	assert_int_equal(src_mirrors_served(s, NULL, 0), 1);
	src_close(s);
	assert_int_equal(log_count(&f->a, "k=blamed", "GET"), 2);
	src_ctx_free(ctx);
}

static void test_close_cancels_mirror_ranges(void **state)
{
	struct mfx *m = mfx_of(state);
	struct fixture *f = m->f;
	char *mirrors[] = { mirror_url(&f->a, "/stall/v2/{digest}?n=50&s=20&k=c"),
			    NULL };
	struct src_range_cb cb[4];
	struct sink k[4];
	struct pol_config cfg;
	struct src_ctx *ctx;
	struct src *s;

	ctx = ctx_with(&cfg, mirrors);
	assert_int_equal(src_open(ctx, &m->r, &s), 0);
	for (int i = 0; i < 4; i++) {
		sink_init(&k[i], (uint64_t)i * 100000, 100000);
		assert_int_equal(src_read_range(s, (uint64_t)i * 100000,
						100000, sink_cb(&k[i], &cb[i])),
				 0);
	}
	usleep(300 * 1000);
	src_close(s);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(k[i].done_calls, 1);
		assert_int_equal(k[i].err, -ECANCELED);
		sink_release(&k[i]);
	}
	src_ctx_free(ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_and_template_mirror),
		cmocka_unit_test(test_404_and_down_move_on),
		cmocka_unit_test(test_cut_off_mid_range),
		cmocka_unit_test(test_stall_hands_over),
		cmocka_unit_test(test_norange_mirror),
		cmocka_unit_test(test_no_credential_no_proxy_redirect),
		cmocka_unit_test(test_mirror_own_credential),
		cmocka_unit_test(test_size_mismatch_skips_mirror),
		cmocka_unit_test(test_blame_and_backoff),
		cmocka_unit_test(test_close_cancels_mirror_ranges),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
