/*
 * http.c - one blocking HTTP connection to the control plane (ctl_int.h).
 *
 * Why a libcurl easy handle of our own rather than sources/' engine: the
 * engine is built for ranged blob reads (Range and Content-Range checks,
 * resumption, per-host connection sharing with every blob fetch, retries
 * with backoff inside the request). A control-plane request is a small
 * whole document, conditional, polled on the catalog's own thread (or the
 * probe thread): it must not queue behind blob transfers for [fetch]
 * connections, and its failure is simply "keep what we had, try at the
 * next interval". What must be the same is shared: the [fetch] timeouts
 * and CA file, the endpoint rule (pol_url_endpoint_ok), and the origin
 * test before a credential goes out after a redirect
 * (src_url_same_origin). The [fetch] proxy is for sources only: the
 * control plane is reached directly.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../policy/af.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "../sources/source.h"
#include "ctl_int.h"

#define CTL_TOKEN_MAX		(16 * 1024)
#define CTL_REDIRECTS_MAX	5
#define CTL_USER_AGENT		"artifactfs-control/1"
#define CTL_URL_MAX		4096

struct ctl_token {
	char *path;			/* immutable; NULL: no token */
	pthread_mutex_t lock;
	char *value;			/* lock; wiped before free */
	bool have_id;			/* lock */
	struct stat id;			/* lock: identity of the file read */
	int last_err;			/* lock: the error said last */
};

struct ctl_conn {
	const struct pol_config *cfg;
	struct ctl_token *tok;
	const bool *cancel;		/* __atomic; NULL: never */
	CURL *h;
	char base[CTL_URL_MAX];		/* registry.url without trailing '/' */
};

/* ---- the token ---------------------------------------------------------- */

int ctl_token_new(const char *path, struct ctl_token **out)
{
	struct ctl_token *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	if (path) {
		t->path = strdup(path);
		if (!t->path) {
			free(t);
			return -ENOMEM;
		}
	}
	pthread_mutex_init(&t->lock, NULL);
	*out = t;
	return 0;
}

static void token_clear(struct ctl_token *t)
{
	if (t->value) {
		OPENSSL_cleanse(t->value, strlen(t->value));
		free(t->value);
		t->value = NULL;
	}
}

void ctl_token_free(struct ctl_token *t)
{
	if (!t)
		return;
	token_clear(t);
	pthread_mutex_destroy(&t->lock);
	free(t->path);
	free(t);
}

static bool same_id(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	       a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Reads the token file into t->value (trimmed); lock held. 0 or -errno. */
static int token_read_locked(struct ctl_token *t, const struct stat *sb)
{
	char *buf;
	ssize_t n;
	size_t len = 0, a, b;
	int fd, rc = 0;

	if (sb->st_size > CTL_TOKEN_MAX)
		return -EFBIG;
	fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	buf = malloc(CTL_TOKEN_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (len < CTL_TOKEN_MAX) {
		n = read(fd, buf + len, CTL_TOKEN_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	/* Surrounding whitespace trimmed (DESIGN §3). */
	for (a = 0; a < len && strchr(" \t\r\n", buf[a]); a++)
		;
	for (b = len; b > a && strchr(" \t\r\n", buf[b - 1]); b--)
		;
	if (rc == 0 && b == a)
		rc = -ENODATA;
	for (size_t i = a; rc == 0 && i < b; i++)
		if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e)
			rc = -EINVAL;	/* would break the header */
	if (rc == 0) {
		token_clear(t);
		memmove(buf, buf + a, b - a);
		buf[b - a] = '\0';
		t->value = buf;
		buf = NULL;
	}
	if (buf) {
		OPENSSL_cleanse(buf, CTL_TOKEN_MAX + 1);
		free(buf);
	}
	return rc;
}

/*
 * Writes "Authorization: Bearer <token>" into hdr. Returns 1 when there is
 * a token, 0 when none is configured, or a negative error (said once per
 * change of error).
 */
static int token_header(struct ctl_token *t, char *hdr, size_t len)
{
	struct stat sb;
	int rc = 0;

	if (!t || !t->path)
		return 0;
	pthread_mutex_lock(&t->lock);
	if (stat(t->path, &sb) < 0) {
		rc = -errno;
	} else if (!t->have_id || !same_id(&sb, &t->id) || !t->value) {
		rc = token_read_locked(t, &sb);
		if (rc == 0) {
			if (t->have_id)
				af_info("registry: token file %s changed: re-read",
					t->path);
			t->id = sb;
			t->have_id = true;
		}
	}
	if (rc == 0 && t->value &&
	    (size_t)snprintf(hdr, len, "Authorization: Bearer %s", t->value) >= len)
		rc = -E2BIG;
	if (rc < 0 && rc != t->last_err)
		af_err("registry: token file %s: %s", t->path,
		       rc == -ENODATA ? "empty" :
		       rc == -EINVAL ? "not a token (control characters or spaces inside)" :
		       af_strerror(rc));
	t->last_err = rc < 0 ? rc : 0;
	pthread_mutex_unlock(&t->lock);
	return rc < 0 ? rc : 1;
}

/* ---- the connection ----------------------------------------------------- */

int ctl_conn_new(const struct pol_config *cfg, struct ctl_token *tok,
		 struct ctl_conn **out)
{
	struct ctl_conn *k;
	size_t n;

	if (src_curl_init() < 0)
		return -ENOMEM;
	if (!cfg->registry_url)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->cfg = cfg;
	k->tok = tok;
	n = strlen(cfg->registry_url);
	while (n > 0 && cfg->registry_url[n - 1] == '/')
		n--;
	if (n >= sizeof(k->base)) {
		free(k);
		return -ENAMETOOLONG;
	}
	memcpy(k->base, cfg->registry_url, n);
	k->base[n] = '\0';
	k->h = curl_easy_init();
	if (!k->h) {
		free(k);
		return -ENOMEM;
	}
	*out = k;
	return 0;
}

void ctl_conn_free(struct ctl_conn *k)
{
	if (!k)
		return;
	curl_easy_cleanup(k->h);
	free(k);
}

void ctl_resp_release(struct ctl_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int ctl_path_segment(char *buf, size_t len, size_t *pos, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t p = *pos;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
			     ch == '_' || ch == '~';

		if (p + (plain ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (plain) {
			buf[p++] = (char)ch;
		} else {
			buf[p++] = '%';
			buf[p++] = hex[ch >> 4];
			buf[p++] = hex[ch & 15];
		}
	}
	buf[p] = '\0';
	*pos = p;
	return 0;
}

/* The body being received, bounded. */
struct body {
	char *p;
	size_t len, cap;
	bool keep;			/* status 200: keep the bytes */
	bool too_big;
};

/* What the headers of one hop said. */
struct hop {
	struct body body;
	char etag[256];
	char last_modified[64];
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct hop *hp = arg;
	struct body *b = &hp->body;
	size_t n = size * nmemb;

	if (!b->keep)
		return n;
	if (b->len + n > CTL_DOC_MAX) {
		b->too_big = true;
		return 0;	/* aborts the transfer */
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64 * 1024;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > CTL_DOC_MAX + 1)
			cap = CTL_DOC_MAX + 1;
		np = realloc(b->p, cap);
		if (!np)
			return 0;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

/* Copies a header value (trimmed) into dst when the line has that name. */
static void header_copy(const char *line, size_t n, const char *name,
			char *dst, size_t dstlen)
{
	size_t nl = strlen(name), a, b;

	if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	for (a = nl + 1; a < n && (line[a] == ' ' || line[a] == '\t'); a++)
		;
	for (b = n; b > a && strchr(" \t\r\n", line[b - 1]); b--)
		;
	if (b - a >= dstlen)
		return;		/* longer than any real validator: ignore */
	for (size_t i = a; i < b; i++)
		if ((unsigned char)line[i] < 0x20)
			return;
	memcpy(dst, line + a, b - a);
	dst[b - a] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct hop *hp = arg;
	size_t n = size * nmemb;

	/* A new status line (a 100 Continue, say) starts a new header set. */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
		hp->etag[0] = '\0';
		hp->last_modified[0] = '\0';
	}
	header_copy(data, n, "ETag", hp->etag, sizeof(hp->etag));
	header_copy(data, n, "Last-Modified", hp->last_modified,
		    sizeof(hp->last_modified));
	return n;
}

static void set_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	if (vsnprintf(why, whylen, fmt, ap) < 0)
		why[0] = '\0';
	va_end(ap);
}

void ctl_conn_set_cancel(struct ctl_conn *k, const bool *cancel)
{
	k->cancel = cancel;
}

/* Called by curl at least once a second: a set cancel flag aborts. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
		       curl_off_t ultotal, curl_off_t ulnow)
{
	const bool *cancel = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED) ? 1 : 0;
}

/* A URL fit for a log line: without query, fragment or userinfo. */
static void url_for_log(const char *url, char *out, size_t len)
{
	pol_uri_redact(url, out, len);
}

/* One hop: GET url. Returns 0 (status in *status) or a negative error. */
static int hop_get(struct ctl_conn *k, const char *url, bool with_token,
		   const char *etag, const char *lm, long timeout_ms,
		   struct hop *hp, long *status, char *why, size_t whylen)
{
	const struct pol_config *cfg = k->cfg;
	struct curl_slist *hdrs = NULL, *tmp;
	char auth[CTL_TOKEN_MAX + 64], line[512], shown[512];
	long stall_s = (long)((cfg->low_speed_timeout_ms + 999) / 1000);
	CURLcode cc;
	CURL *h = k->h;
	int rc = 0;

	url_for_log(url, shown, sizeof(shown));
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, CTL_USER_AGENT);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Redirects are followed by hand: the token stays with its origin. */
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cfg->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)cfg->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s < 1 ? 1L : stall_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, hp);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, hp);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)k->cancel);
	if (with_token) {
		rc = token_header(k->tok, auth, sizeof(auth));
		if (rc < 0) {
			set_why(why, whylen, "token file %s: %s",
				k->tok ? k->tok->path : "-", af_strerror(rc));
			goto out;
		}
		if (rc > 0) {
			tmp = curl_slist_append(hdrs, auth);
			if (!tmp) {
				rc = -ENOMEM;
				goto out;
			}
			hdrs = tmp;
		}
		rc = 0;
	}
	if (etag && *etag) {
		snprintf(line, sizeof(line), "If-None-Match: %s", etag);
		tmp = curl_slist_append(hdrs, line);
		if (tmp)
			hdrs = tmp;
	}
	if (lm && *lm) {
		snprintf(line, sizeof(line), "If-Modified-Since: %s", lm);
		tmp = curl_slist_append(hdrs, line);
		if (tmp)
			hdrs = tmp;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	/* Kept up to CTL_DOC_MAX whatever the status; used for a 200 only. */
	hp->body.keep = true;
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (hp->body.too_big) {
		set_why(why, whylen, "%s: document larger than %zu MiB: refused",
			shown, CTL_DOC_MAX >> 20);
		rc = -E2BIG;
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		set_why(why, whylen, "%s: timed out", shown);
		rc = AF_ETIMEDOUT;
	} else if (cc == CURLE_ABORTED_BY_CALLBACK) {
		set_why(why, whylen, "%s: stopped", shown);
		rc = -ECANCELED;
	} else if (cc != CURLE_OK) {
		set_why(why, whylen, "%s: %s", shown, curl_easy_strerror(cc));
		rc = cc == CURLE_OUT_OF_MEMORY ? -ENOMEM : AF_ESOURCE;
	}
out:
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	OPENSSL_cleanse(auth, sizeof(auth));
	return rc;
}

int ctl_conn_get(struct ctl_conn *k, const char *path, const char *etag,
		 const char *last_modified, long timeout_ms,
		 struct ctl_resp *out, char *why, size_t whylen)
{
	char url[CTL_URL_MAX], shown[512];
	long long deadline = af_now_ms() + timeout_ms;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if ((size_t)snprintf(url, sizeof(url), "%s/%s", k->base, path) >=
	    sizeof(url)) {
		set_why(why, whylen, "request path too long");
		return -ENAMETOOLONG;
	}
	for (int hops = 0;; hops++) {
		struct hop hp;
		char *loc = NULL;
		long status = 0, left = (long)(deadline - af_now_ms());
		bool same = src_url_same_origin(k->base, url);

		memset(&hp, 0, sizeof(hp));
		if (left <= 0) {
			set_why(why, whylen, "timed out");
			return AF_ETIMEDOUT;
		}
		rc = hop_get(k, url, same, etag, last_modified, left, &hp,
			     &status, why, whylen);
		if (rc < 0) {
			free(hp.body.p);
			return rc;
		}
		if (status >= 300 && status < 400 && status != 304) {
			free(hp.body.p);
			curl_easy_getinfo(k->h, CURLINFO_REDIRECT_URL, &loc);
			url_for_log(url, shown, sizeof(shown));
			if (!loc) {
				set_why(why, whylen, "%s: %ld without a Location",
					shown, status);
				return AF_ESOURCE;
			}
			if (hops >= CTL_REDIRECTS_MAX) {
				set_why(why, whylen, "%s: more than %d redirects",
					shown, CTL_REDIRECTS_MAX);
				return AF_ESOURCE;
			}
			/*
			 * Never from https to http, and only to an endpoint the
			 * config could name (https, or http on loopback).
			 */
			if (!pol_url_endpoint_ok(loc) ||
			    (strncasecmp(url, "https://", 8) == 0 &&
			     strncasecmp(loc, "https://", 8) != 0)) {
				url_for_log(loc, shown, sizeof(shown));
				set_why(why, whylen, "redirect to %s refused (https only, or http on loopback)",
					shown);
				return AF_ESOURCE;
			}
			if ((size_t)snprintf(url, sizeof(url), "%s", loc) >=
			    sizeof(url)) {
				set_why(why, whylen, "redirect URL too long");
				return AF_ESOURCE;
			}
			continue;
		}
		out->status = (int)status;
		memcpy(out->etag, hp.etag, sizeof(out->etag));
		memcpy(out->last_modified, hp.last_modified,
		       sizeof(out->last_modified));
		if (status == 200) {
			if (!hp.body.p) {
				hp.body.p = strdup("");
				if (!hp.body.p)
					return -ENOMEM;
			}
			out->body = hp.body.p;
			out->len = hp.body.len;
		} else {
			free(hp.body.p);
		}
		return 0;
	}
}
