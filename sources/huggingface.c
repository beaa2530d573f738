/*
 * huggingface.c - the `huggingface` source type (DESIGN §5b, issue 8):
 * hf://[datasets/|spaces/]org/repo/path pinned to the commit in
 * source_ref is read from
 *   GET {endpoint}/[datasets/|spaces/]org/repo/resolve/{commit}/{path}
 * ([huggingface] endpoint, default https://huggingface.co) with
 * "Authorization: Bearer" from the credential, to the endpoint only: the
 * Hub answers a file kept in LFS or Xet with a 302 to its CDN, which the
 * engine follows without any credential (another host), as huggingface_hub
 * does.
 *
 * What the Hub says about the file is checked against the registration on
 * every response head (hf_check), before a byte is used; a disagreement is
 * EIO with the reason in the audit log (fetch_failed):
 *   X-Repo-Commit   must be source_ref (the revision the Hub resolved);
 *   X-Linked-Size   must be size_bytes, when registered;
 *   X-Linked-Etag   an LFS file's sha256: must be the registered digest
 *                   when that is a sha256 (another form is not comparable);
 *   Content-Length  of a whole-body answer, and the total of a
 *                   Content-Range, must be size_bytes, when registered.
 * The digest of the bytes stays the authority (DESIGN §6).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/af.h"
#include "policy/config.h"
#include "policy/policy.h"
#include "sources/hdrs_int.h"
#include "sources/src_int.h"

#define HF_DEFAULT_ENDPOINT	"https://huggingface.co"
#define HF_URL_MAX		8192

/* What the response checks compare with (s->priv). Immutable. */
struct hf_src {
	char commit[HDRS_COMMIT_LEN + 1];
	bool has_size;
	uint64_t size;
	bool sha256;			/* the digest is comparable to an LFS oid */
	char hex[2 * POL_DIGEST_RAW_MAX + 1];
};

/* A header value fit for a reason: a short token, else NULL. */
static const char *hf_token(const char *v, size_t n, char *out, size_t len)
{
	if (n == 0 || n >= len || n > 64)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return NULL;
	}
	memcpy(out, v, n);
	out[n] = '\0';
	return out;
}

/* 64 hex digits: an LFS oid, comparable to a sha256 digest. */
static bool hf_is_sha256(const char *v, size_t n)
{
	if (n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (pol_hex_value(v[i]) < 0)
			return false;
	return true;
}

static int hf_check_size(const struct hf_src *h, const char *what,
			 uint64_t got, char *reason, size_t reasonlen)
{
	if (!h->has_size || got == h->size)
		return 0;
	src_reason(reason, reasonlen,
		   "huggingface: %s %" PRIu64 " differs from size_bytes %"
		   PRIu64, what, got, h->size);
	return AF_ESOURCE;
}

static int hf_check(void *arg, const struct http_resp *r, char *reason,
		    size_t reasonlen)
{
	const struct src *s = arg;
	const struct hf_src *h = s->priv;
	char commit[HDRS_COMMIT_LEN + 1], code[65];
	struct http_content_range cr;
	const char *v, *tag;
	size_t n, taglen;
	uint64_t num;
	bool weak;
	int err;

	if (http_head_find(r->head, r->head_len, "X-Repo-Commit", &v, &n)) {
		if (hdrs_parse_commit(v, n, commit) != 0) {
			src_reason(reason, reasonlen,
				   "huggingface: malformed X-Repo-Commit");
			return AF_ESOURCE;
		}
		if (strcmp(commit, h->commit) != 0) {
			src_reason(reason, reasonlen,
				   "huggingface: X-Repo-Commit %s is not the registered revision %s",
				   commit, h->commit);
			return AF_ESOURCE;
		}
	}
	if (http_head_find(r->head, r->head_len, "X-Linked-Size", &v, &n)) {
		if (http_parse_u64(v, n, &num) != 0) {
			src_reason(reason, reasonlen,
				   "huggingface: malformed X-Linked-Size");
			return AF_ESOURCE;
		}
		err = hf_check_size(h, "X-Linked-Size", num, reason, reasonlen);
		if (err != 0)
			return err;
	}
	if (h->sha256 &&
	    http_head_find(r->head, r->head_len, "X-Linked-Etag", &v, &n) &&
	    hdrs_parse_etag(v, n, &tag, &taglen, &weak) == 0 &&
	    hf_is_sha256(tag, taglen) && strncasecmp(tag, h->hex, 64) != 0) {
		src_reason(reason, reasonlen,
			   "huggingface: X-Linked-Etag names sha256:%.64s, not the registered digest",
			   tag);
		return AF_ESOURCE;
	}
	if (r->status == 200 &&
	    http_head_find(r->head, r->head_len, "Content-Length", &v, &n) &&
	    http_parse_u64(v, n, &num) == 0) {
		err = hf_check_size(h, "Content-Length", num, reason,
				    reasonlen);
		if (err != 0)
			return err;
	}
	if (r->status == 206 &&
	    http_head_find(r->head, r->head_len, "Content-Range", &v, &n) &&
	    http_parse_content_range(v, n, &cr) == 0 && cr.total_known) {
		err = hf_check_size(h, "Content-Range length", cr.total,
				    reason, reasonlen);
		if (err != 0)
			return err;
	}
	/* The Hub names its refusals (RepoNotFound, GatedRepo, …). */
	if (r->status >= 400 && r->origin &&
	    http_head_find(r->head, r->head_len, "X-Error-Code", &v, &n) &&
	    hf_token(v, n, code, sizeof(code)) != NULL) {
		const char *words = http_status_text(r->status);

		src_reason(reason, reasonlen, "HTTP %d%s%s (%s)", r->status,
			   words ? " " : "", words ? words : "", code);
		return r->status == 429 || r->status >= 500 ? 0 : AF_ESOURCE;
	}
	return 0;
}

static int hf_open(struct src *s, const struct pol_registration *r)
{
	const char *ep = s->ctx->cfg->hf_endpoint ? s->ctx->cfg->hf_endpoint
						  : HF_DEFAULT_ENDPOINT;
	const char *p = s->uri + 5, *repo_end;
	char commit[HDRS_COMMIT_LEN + 1];
	struct hf_src *h;
	char *url;
	int err, n;

	/*
	 * The policy checked the form (pol_uri_check, the 40-hex lowercase
	 * source_ref); only split it here, refusing what it would refuse.
	 */
	if (strncmp(s->uri, "hf://", 5) != 0 || r->source_ref == NULL ||
	    hdrs_parse_commit(r->source_ref, strlen(r->source_ref),
			      commit) != 0 ||
	    strcmp(commit, r->source_ref) != 0)
		return AF_EPARSE;
	repo_end = strchr(p, '/');
	if (repo_end != NULL && (strncmp(p, "datasets/", 9) == 0 ||
				 strncmp(p, "spaces/", 7) == 0))
		repo_end = strchr(repo_end + 1, '/');
	if (repo_end != NULL)
		repo_end = strchr(repo_end + 1, '/');
	if (repo_end == NULL || repo_end[1] == '\0')
		return AF_EPARSE;
	h = calloc(1, sizeof(*h));
	url = malloc(HF_URL_MAX);
	if (h == NULL || url == NULL) {
		err = -ENOMEM;
		goto out_free;
	}
	memcpy(h->commit, commit, sizeof(commit));
	h->has_size = r->has_size;
	h->size = r->size_bytes;
	h->sha256 = r->digest.algo == POL_ALGO_SHA256;
	snprintf(h->hex, sizeof(h->hex), "%s", pol_digest_hex(&r->digest));
	n = snprintf(url, HF_URL_MAX, "%s/%.*s/resolve/%s%s", ep,
		     (int)(repo_end - p), p, h->commit, repo_end);
	if (n < 0 || n >= HF_URL_MAX) {
		err = AF_EPARSE;
		goto out_free;
	}
	s->priv = h;
	err = src_http_open(s, r, url, src_bearer_hook);
	if (err != 0) {
		s->priv = NULL;
		goto out_free;
	}
	http_src_set_check(s->http, hf_check, s);
	free(url);
	return 0;

out_free:
	free(url);
	free(h);
	return err;
}

static void hf_close(struct src *s)
{
	src_http_close(s);
	free(s->priv);
	s->priv = NULL;
}

const struct src_ops src_huggingface_ops = {
	.name = "huggingface",
	.type = POL_SRC_HUGGINGFACE,
	.open = hf_open,
	.size = src_http_size,
	.read_range = src_http_read_range,
	.close = hf_close,
};
