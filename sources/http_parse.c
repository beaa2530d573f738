/*
 * http_parse.c - pure parsers of the HTTP response headers the engine acts
 * on (STYLE.md "Parsers apart from coordinators"). Every input is a
 * (pointer, length) pair read through a bounds-checked cursor; nothing here
 * allocates, locks or logs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "policy/af.h"
#include "sources/http_int.h"

/* Largest value accepted for any number: fits an off_t. */
#define NUM_MAX	((uint64_t)INT64_MAX)

struct cur {
	const char *p;
	const char *end;
};

static bool cur_eof(const struct cur *c)
{
	return c->p >= c->end;
}

static void cur_skip_ows(struct cur *c)
{
	while (!cur_eof(c) && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static bool cur_take(struct cur *c, char ch)
{
	if (cur_eof(c) || *c->p != ch)
		return false;
	c->p++;
	return true;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static char lower(char ch)
{
	return (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
}

/* One or more digits, value <= NUM_MAX. */
static bool cur_num(struct cur *c, uint64_t *out)
{
	uint64_t v = 0;

	if (cur_eof(c) || !is_digit(*c->p))
		return false;
	while (!cur_eof(c) && is_digit(*c->p)) {
		unsigned d = (unsigned)(*c->p - '0');

		if (v > (NUM_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		c->p++;
	}
	*out = v;
	return true;
}

/* Case-insensitive match of the literal word w. */
static bool cur_word(struct cur *c, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(c->end - c->p) < n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(c->p[i]) != lower(w[i]))
			return false;
	c->p += n;
	return true;
}

static void trim(const char **v, size_t *len)
{
	while (*len > 0 && ((*v)[0] == ' ' || (*v)[0] == '\t')) {
		(*v)++;
		(*len)--;
	}
	while (*len > 0 && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t' ||
			    (*v)[*len - 1] == '\r' || (*v)[*len - 1] == '\n'))
		(*len)--;
}

int http_parse_u64(const char *v, size_t len, uint64_t *out)
{
	struct cur c;
	uint64_t n;

	if (v == NULL)
		return AF_EPARSE;
	trim(&v, &len);
	c.p = v;
	c.end = v + len;
	if (!cur_num(&c, &n) || !cur_eof(&c))
		return AF_EPARSE;
	*out = n;
	return 0;
}

int http_parse_content_range(const char *v, size_t len,
			     struct http_content_range *out)
{
	struct http_content_range cr = { 0 };
	struct cur c;

	if (v == NULL)
		return AF_EPARSE;
	trim(&v, &len);
	c.p = v;
	c.end = v + len;
	if (!cur_word(&c, "bytes") || !cur_take(&c, ' '))
		return AF_EPARSE;
	cur_skip_ows(&c);
	if (cur_take(&c, '*')) {
		cr.unsatisfied = true;
	} else {
		if (!cur_num(&c, &cr.first) || !cur_take(&c, '-') ||
		    !cur_num(&c, &cr.last) || cr.last < cr.first)
			return AF_EPARSE;
	}
	if (!cur_take(&c, '/'))
		return AF_EPARSE;
	if (cur_take(&c, '*')) {
		/* "bytes * / *" says nothing at all. */
		if (cr.unsatisfied)
			return AF_EPARSE;
		cr.total_known = false;
	} else {
		if (!cur_num(&c, &cr.total))
			return AF_EPARSE;
		cr.total_known = true;
		if (!cr.unsatisfied && cr.last >= cr.total)
			return AF_EPARSE;
	}
	if (!cur_eof(&c))
		return AF_EPARSE;
	*out = cr;
	return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), m 1..12. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate, RFC 9110 §5.6.7). */
static int parse_imf_fixdate(struct cur *c, long long *epoch)
{
	static const char *const wdays[] = { "Mon", "Tue", "Wed", "Thu",
					     "Fri", "Sat", "Sun" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
					      "May", "Jun", "Jul", "Aug",
					      "Sep", "Oct", "Nov", "Dec" };
	uint64_t day, year, hh, mm, ss;
	const char *p;
	unsigned mon = 0;
	bool ok = false;

	for (size_t i = 0; i < 7 && !ok; i++)
		ok = cur_word(c, wdays[i]);
	if (!ok || !cur_take(c, ',') || !cur_take(c, ' '))
		return AF_EPARSE;
	p = c->p;
	if (!cur_num(c, &day) || c->p - p != 2 || day < 1 || day > 31 ||
	    !cur_take(c, ' '))
		return AF_EPARSE;
	for (unsigned i = 0; i < 12 && mon == 0; i++)
		if (cur_word(c, months[i]))
			mon = i + 1;
	if (mon == 0 || !cur_take(c, ' '))
		return AF_EPARSE;
	p = c->p;
	if (!cur_num(c, &year) || c->p - p != 4 || !cur_take(c, ' '))
		return AF_EPARSE;
	p = c->p;
	if (!cur_num(c, &hh) || c->p - p != 2 || hh > 23 || !cur_take(c, ':'))
		return AF_EPARSE;
	p = c->p;
	if (!cur_num(c, &mm) || c->p - p != 2 || mm > 59 || !cur_take(c, ':'))
		return AF_EPARSE;
	p = c->p;
	if (!cur_num(c, &ss) || c->p - p != 2 || ss > 60 || !cur_take(c, ' '))
		return AF_EPARSE;
	if (!cur_word(c, "GMT") || !cur_eof(c))
		return AF_EPARSE;
	*epoch = days_from_civil((long long)year, mon, (unsigned)day) * 86400 +
		 (long long)(hh * 3600 + mm * 60 + ss);
	return 0;
}

int http_parse_retry_after(const char *v, size_t len, long long now_s,
			   unsigned max_s, unsigned *secs)
{
	struct cur c;
	uint64_t n;
	long long when;

	if (v == NULL)
		return AF_EPARSE;
	trim(&v, &len);
	c.p = v;
	c.end = v + len;
	if (!cur_eof(&c) && is_digit(*c.p)) {
		if (!cur_num(&c, &n) || !cur_eof(&c))
			return AF_EPARSE;
		*secs = n > max_s ? max_s : (unsigned)n;
		return 0;
	}
	if (parse_imf_fixdate(&c, &when) != 0)
		return AF_EPARSE;
	if (when <= now_s)
		*secs = 0;
	else if ((unsigned long long)(when - now_s) > max_s)
		*secs = max_s;
	else
		*secs = (unsigned)(when - now_s);
	return 0;
}

int http_parse_status_line(const char *line, size_t len, int *status)
{
	struct cur c = { line, line + len };
	const char *p;
	uint64_t code;

	if (line == NULL || !cur_word(&c, "HTTP/"))
		return AF_EPARSE;
	/* Version: "1.1", "1.0", "2", "3". */
	if (cur_eof(&c) || !is_digit(*c.p))
		return AF_EPARSE;
	c.p++;
	if (cur_take(&c, '.')) {
		if (cur_eof(&c) || !is_digit(*c.p))
			return AF_EPARSE;
		c.p++;
	}
	if (!cur_take(&c, ' '))
		return AF_EPARSE;
	p = c.p;
	if (!cur_num(&c, &code) || c.p - p != 3 || code < 100)
		return AF_EPARSE;
	if (!cur_eof(&c) && *c.p != ' ' && *c.p != '\r' && *c.p != '\n')
		return AF_EPARSE;
	*status = (int)code;
	return 0;
}

bool http_header_value(const char *line, size_t len, const char *name,
		       const char **val, size_t *vlen)
{
	struct cur c = { line, line + len };
	const char *v;
	size_t n;

	if (line == NULL || !cur_word(&c, name) || !cur_take(&c, ':'))
		return false;
	v = c.p;
	n = (size_t)(c.end - c.p);
	trim(&v, &n);
	*val = v;
	*vlen = n;
	return true;
}

bool http_head_find(const char *head, size_t head_len, const char *name,
		    const char **val, size_t *vlen)
{
	const char *p = head, *end = head + head_len;

	if (head == NULL || name == NULL)
		return false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl + 1 : end;

		if (http_header_value(p, (size_t)(line_end - p), name, val,
				      vlen))
			return true;
		p = line_end;
	}
	return false;
}

const char *http_redirect_protocols(const char *url)
{
	if (url == NULL)
		return NULL;
	if (strncasecmp(url, "https://", 8) == 0)
		return "https";
	if (strncasecmp(url, "http://", 7) == 0)
		return "http,https";
	return NULL;
}

enum http_redirect_rule http_redirect_check(const char *from,
					    const char *loc)
{
	const char *p = http_redirect_protocols(from);

	if (p == NULL || loc == NULL)
		return HTTP_REDIRECT_SCHEME;
	if (strncasecmp(loc, "https://", 8) == 0)
		return HTTP_REDIRECT_OK;
	if (strncasecmp(loc, "http://", 7) != 0)
		return HTTP_REDIRECT_SCHEME;
	return strcmp(p, "http,https") == 0 ? HTTP_REDIRECT_OK
					    : HTTP_REDIRECT_DOWNGRADE;
}

const char *http_redirect_refusal(enum http_redirect_rule rule)
{
	switch (rule) {
	case HTTP_REDIRECT_OK:
		return "redirect allowed";
	case HTTP_REDIRECT_DOWNGRADE:
		return "redirect from https to http refused";
	case HTTP_REDIRECT_SCHEME:
	default:
		return "redirect to a refused scheme";
	}
}

bool http_redirect_allowed(const char *from, const char *loc)
{
	return http_redirect_check(from, loc) == HTTP_REDIRECT_OK;
}

/* An error code as services spell them: 1..64 of [A-Za-z0-9._-]. */
bool http_error_token(const char *v, size_t len, char *out, size_t outlen)
{
	if (len == 0 || len > 64 || len + 1 > outlen)
		return false;
	for (size_t i = 0; i < len; i++) {
		char ch = v[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
		      ch == '-'))
			return false;
	}
	memcpy(out, v, len);
	out[len] = '\0';
	return true;
}

/* The token after `"key"\s*:\s*"` in [p, end), if any. */
static bool json_string_after(const char *p, const char *end,
			      const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);

	while (p < end) {
		const char *q = memmem(p, (size_t)(end - p), key, klen);
		struct cur c;
		const char *v;

		if (q == NULL)
			return false;
		c.p = q + klen;
		c.end = end;
		p = c.p;
		while (!cur_eof(&c) && (*c.p == ' ' || *c.p == '\t' ||
					*c.p == '\r' || *c.p == '\n'))
			c.p++;
		if (!cur_take(&c, ':'))
			continue;
		while (!cur_eof(&c) && (*c.p == ' ' || *c.p == '\t' ||
					*c.p == '\r' || *c.p == '\n'))
			c.p++;
		if (!cur_take(&c, '"'))
			continue;
		v = c.p;
		while (!cur_eof(&c) && *c.p != '"')
			c.p++;
		if (cur_eof(&c))
			return false;
		if (http_error_token(v, (size_t)(c.p - v), out, outlen))
			return true;
	}
	return false;
}

bool http_error_code(const char *body, size_t len, char *out, size_t outlen)
{
	const char *end = body + len, *a, *b;

	if (body == NULL || len == 0)
		return false;
	/* S3 and Azure: <Error><Code>SignatureDoesNotMatch</Code>… */
	a = memmem(body, len, "<Code>", 6);
	if (a != NULL) {
		a += 6;
		b = memmem(a, (size_t)(end - a), "</Code>", 7);
		if (b != NULL &&
		    http_error_token(a, (size_t)(b - a), out, outlen))
			return true;
	}
	/* GCS: {"error": {"errors": [{"reason": "authError"}], "status": …}} */
	return json_string_after(body, end, "\"reason\"", out, outlen) ||
	       json_string_after(body, end, "\"status\"", out, outlen) ||
	       json_string_after(body, end, "\"error\"", out, outlen) ||
	       json_string_after(body, end, "\"code\"", out, outlen);
}

const char *http_status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 407: return "Proxy Authentication Required";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 412: return "Precondition Failed";
	case 416: return "Range Not Satisfiable";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return NULL;
	}
}
