/*
 * hdrs.c - pure parsers of the response headers that source types check
 * against a registration (hdrs_int.h): X-Repo-Commit and X-Linked-Etag of
 * the Hugging Face Hub, WWW-Authenticate of an OCI registry. Input is as
 * untrusted as the server; everything is read through a bounds-checked
 * cursor, nothing allocates, locks or logs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "policy/af.h"
#include "sources/hdrs_int.h"

struct cur {
	const char *p;
	const char *end;
};

static bool cur_eof(const struct cur *c)
{
	return c->p >= c->end;
}

static bool is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void cur_skip_ows(struct cur *c)
{
	while (!cur_eof(c) && is_ows(*c->p))
		c->p++;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Trims optional whitespace (and a stray line end) around [v, v+len). */
static struct cur trimmed(const char *v, size_t len)
{
	struct cur c = { v, v + len };

	cur_skip_ows(&c);
	while (c.end > c.p && (is_ows(c.end[-1]) || c.end[-1] == '\r' ||
			       c.end[-1] == '\n'))
		c.end--;
	return c;
}

int hdrs_parse_commit(const char *v, size_t len,
		      char out[HDRS_COMMIT_LEN + 1])
{
	struct cur c;
	char buf[HDRS_COMMIT_LEN + 1];

	if (v == NULL)
		return AF_EPARSE;
	c = trimmed(v, len);
	if (c.end - c.p != HDRS_COMMIT_LEN)
		return AF_EPARSE;
	for (size_t i = 0; i < HDRS_COMMIT_LEN; i++) {
		int x = hex_value(c.p[i]);

		if (x < 0)
			return AF_EPARSE;
		buf[i] = "0123456789abcdef"[x];
	}
	buf[HDRS_COMMIT_LEN] = '\0';
	memcpy(out, buf, sizeof(buf));
	return 0;
}

/* etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3). */
static bool is_etagc(unsigned char ch)
{
	return ch == 0x21 || (ch >= 0x23 && ch != 0x7f);
}

int hdrs_parse_etag(const char *v, size_t len, const char **tag,
		    size_t *taglen, bool *weak)
{
	struct cur c;
	bool w = false;
	const char *start;

	if (v == NULL)
		return AF_EPARSE;
	c = trimmed(v, len);
	if (c.end - c.p >= 2 && c.p[0] == 'W' && c.p[1] == '/') {
		w = true;
		c.p += 2;
	}
	if (cur_eof(&c) || *c.p != '"')
		return AF_EPARSE;
	c.p++;
	start = c.p;
	while (!cur_eof(&c) && *c.p != '"') {
		if (!is_etagc((unsigned char)*c.p))
			return AF_EPARSE;
		c.p++;
	}
	/* The closing quote must be the last byte. */
	if (cur_eof(&c) || c.p + 1 != c.end)
		return AF_EPARSE;
	*tag = start;
	*taglen = (size_t)(c.p - start);
	*weak = w;
	return 0;
}

/* tchar (RFC 9110 §5.6.2). */
static bool is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* token68 characters before its trailing '='s (RFC 9110 §11.2). */
static bool is_t68char(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	return ch != '\0' && strchr("-._~+/", ch) != NULL;
}

/* A token: sets [*s, *s + *n). */
static bool cur_token(struct cur *c, const char **s, size_t *n)
{
	const char *start = c->p;

	while (!cur_eof(c) && is_tchar((unsigned char)*c->p))
		c->p++;
	*s = start;
	*n = (size_t)(c->p - start);
	return *n > 0;
}

/* Appends one value byte to a kept param, printable ASCII only. */
static void param_put(char *dst, size_t *o, unsigned char ch, bool *cut)
{
	if (dst == NULL)
		return;
	if (*o + 1 >= HDRS_PARAM_MAX) {
		*cut = true;
		return;
	}
	dst[(*o)++] = (ch >= 0x20 && ch <= 0x7e) ? (char)ch : '?';
	dst[*o] = '\0';
}

/*
 * A param value: a token or a quoted-string (RFC 9110 §5.6.4), copied
 * unescaped into dst when dst is not NULL.
 */
static bool cur_param_value(struct cur *c, char *dst, bool *cut)
{
	size_t o = 0;

	if (dst != NULL)
		dst[0] = '\0';
	if (cur_eof(c))
		return false;
	if (*c->p != '"') {
		const char *s;
		size_t n;

		if (!cur_token(c, &s, &n))
			return false;
		for (size_t i = 0; i < n; i++)
			param_put(dst, &o, (unsigned char)s[i], cut);
		return true;
	}
	c->p++;
	while (!cur_eof(c)) {
		unsigned char ch = (unsigned char)*c->p++;

		if (ch == '"')
			return true;
		if (ch == '\\') {
			if (cur_eof(c))
				return false;
			ch = (unsigned char)*c->p++;
			if (ch < 0x20 && ch != '\t')
				return false;
		} else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			return false;
		}
		param_put(dst, &o, ch, cut);
	}
	return false;
}

/*
 * After a token at c: does "BWS =" follow, and then not another '=' (a
 * token68's padding)? That makes it an auth-param name.
 */
static bool param_follows(const struct cur *c)
{
	struct cur k = *c;

	cur_skip_ows(&k);
	if (cur_eof(&k) || *k.p != '=')
		return false;
	k.p++;
	cur_skip_ows(&k);
	return !cur_eof(&k) && *k.p != '=' && *k.p != ',';
}

/* Skips OWS, commas and OWS (empty list elements are allowed). */
static void cur_skip_list_sep(struct cur *c)
{
	while (!cur_eof(c) && (is_ows(*c->p) || *c->p == ','))
		c->p++;
}

int hdrs_parse_challenge(const char *v, size_t len,
			 struct hdrs_challenge *out)
{
	struct hdrs_challenge ch;
	struct cur c;
	bool first_bearer_done = false;

	if (v == NULL || out == NULL)
		return AF_EPARSE;
	memset(&ch, 0, sizeof(ch));
	c = trimmed(v, len);
	cur_skip_list_sep(&c);
	if (cur_eof(&c))
		return AF_EPARSE;
	while (!cur_eof(&c)) {
		const char *scheme;
		size_t slen;
		bool keep;

		if (!cur_token(&c, &scheme, &slen))
			return AF_EPARSE;
		keep = false;
		if (slen == 6 && strncasecmp(scheme, "Bearer", 6) == 0) {
			keep = !first_bearer_done;
			ch.bearer = true;
			first_bearer_done = true;
		} else if (slen == 5 && strncasecmp(scheme, "Basic", 5) == 0) {
			ch.basic = true;
		} else {
			ch.other = true;
		}
		if (cur_eof(&c) || *c.p == ',') {
			cur_skip_list_sep(&c);
			continue;
		}
		if (*c.p != ' ')
			return AF_EPARSE;
		cur_skip_ows(&c);
		if (cur_eof(&c) || *c.p == ',') {
			cur_skip_list_sep(&c);
			continue;
		}
		/* token68, or a list of auth-params. */
		{
			struct cur k = c;
			const char *name;
			size_t nlen;

			if (!cur_token(&k, &name, &nlen) ||
			    !param_follows(&k)) {
				if (!is_t68char((unsigned char)*c.p))
					return AF_EPARSE;
				while (!cur_eof(&c) &&
				       is_t68char((unsigned char)*c.p))
					c.p++;
				while (!cur_eof(&c) && *c.p == '=')
					c.p++;
				cur_skip_ows(&c);
				if (!cur_eof(&c) && *c.p != ',')
					return AF_EPARSE;
				cur_skip_list_sep(&c);
				continue;
			}
		}
		for (;;) {
			const char *name;
			size_t nlen;
			char *dst = NULL;
			struct cur k;

			if (!cur_token(&c, &name, &nlen))
				return AF_EPARSE;
			cur_skip_ows(&c);
			if (cur_eof(&c) || *c.p != '=')
				return AF_EPARSE;
			c.p++;
			cur_skip_ows(&c);
			if (keep && nlen == 5 && strncasecmp(name, "realm", 5) == 0)
				dst = ch.realm;
			else if (keep && nlen == 7 &&
				 strncasecmp(name, "service", 7) == 0)
				dst = ch.service;
			else if (keep && nlen == 5 &&
				 strncasecmp(name, "scope", 5) == 0)
				dst = ch.scope;
			else if (keep && nlen == 5 &&
				 strncasecmp(name, "error", 5) == 0)
				dst = ch.error;
			if (!cur_param_value(&c, dst, &ch.cut))
				return AF_EPARSE;
			cur_skip_ows(&c);
			if (cur_eof(&c))
				break;
			if (*c.p != ',')
				return AF_EPARSE;
			cur_skip_list_sep(&c);
			if (cur_eof(&c))
				break;
			/* Another param of this challenge, or a new one? */
			k = c;
			if (!cur_token(&k, &name, &nlen) || !param_follows(&k))
				break;
		}
	}
	*out = ch;
	return 0;
}
