/*
 * util.c - bounded buffers, message helpers, file reading and RFC 3339
 * parsing shared by the parsers of policy/.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "pol_int.h"

void pol_buf_init(struct pol_buf *b, size_t max)
{
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->failed = false;
	b->secret = false;
}

void pol_buf_init_secret(struct pol_buf *b, size_t max)
{
	pol_buf_init(b, max);
	b->secret = true;
}

void pol_buf_release(struct pol_buf *b)
{
	bool secret = b->secret;

	if (b->p && secret)
		OPENSSL_cleanse(b->p, b->cap);
	free(b->p);
	pol_buf_init(b, b->max);
	b->secret = secret;
}

char *pol_buf_take(struct pol_buf *b)
{
	char *p = b->failed ? NULL : b->p;
	bool secret = b->secret;

	if (!p)
		pol_buf_release(b);
	else
		pol_buf_init(b, b->max);
	b->secret = secret;
	return p;
}

static bool buf_reserve(struct pol_buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->failed)
		return false;
	if (n > b->max - b->len) {
		b->failed = true;
		return false;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap = cap > SIZE_MAX / 2 ? want : cap * 2;
	if (b->secret) {
		/* realloc would leave the old bytes behind unwiped. */
		p = malloc(cap);
		if (p && b->p) {
			memcpy(p, b->p, b->len + 1);
			OPENSSL_cleanse(b->p, b->cap);
			free(b->p);
		}
	} else {
		p = realloc(b->p, cap);
	}
	if (!p) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void pol_buf_add(struct pol_buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void pol_buf_adds(struct pol_buf *b, const char *s)
{
	pol_buf_add(b, s, strlen(s));
}

void pol_buf_addf(struct pol_buf *b, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		pol_buf_add(b, small, (size_t)n);
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/*
 * Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid:
 * overlong forms, surrogates and code points above U+10FFFF are invalid
 * (RFC 3629 section 4).
 */
static size_t utf8_seq_len(const unsigned char *s)
{
	unsigned c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0;
		if (c == 0xed && s[1] >= 0xa0)
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

void pol_buf_add_json_string(struct pol_buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	pol_buf_add(b, "\"", 1);
	while (*p) {
		switch (*p) {
		case '"':
			pol_buf_add(b, "\\\"", 2);
			p++;
			continue;
		case '\\':
			pol_buf_add(b, "\\\\", 2);
			p++;
			continue;
		case '\n':
			pol_buf_add(b, "\\n", 2);
			p++;
			continue;
		case '\r':
			pol_buf_add(b, "\\r", 2);
			p++;
			continue;
		case '\t':
			pol_buf_add(b, "\\t", 2);
			p++;
			continue;
		default:
			break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			pol_buf_addf(b, "\\u%04x", *p);
			p++;
			continue;
		}
		/* utf8_seq_len stops at the NUL: continuation tests fail on it. */
		n = utf8_seq_len(p);
		if (n == 0) {
			pol_buf_add(b, "\\ufffd", 6);
			p++;
			continue;
		}
		pol_buf_add(b, (const char *)p, n);
		p += n;
	}
	pol_buf_add(b, "\"", 1);
}

void pol_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(err, errlen, fmt, ap) < 0)
		err[0] = '\0';
	va_end(ap);
}

const char *pol_safe(const char *s, size_t max, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	if (outlen == 0)
		return out;
	if (!s)
		s = "";
	while (s[i] && i < max && o + 1 < outlen) {
		unsigned char c = (unsigned char)s[i];

		out[o++] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
		i++;
	}
	if (s[i] && o + 4 <= outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

int pol_read_file(const char *path, char **out, size_t *len)
{
	struct stat st;
	size_t cap, n = 0;
	char *p = NULL, *q;
	ssize_t r;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_close;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out_close;
	}
	if (st.st_size > (off_t)POL_FILE_MAX) {
		ret = -EFBIG;
		goto out_close;
	}
	cap = (st.st_size > 0 ? (size_t)st.st_size : 4096) + 1;
	p = malloc(cap);
	if (!p) {
		ret = -ENOMEM;
		goto out_close;
	}
	for (;;) {
		if (n + 1 >= cap) {
			if (cap > POL_FILE_MAX) {
				ret = -EFBIG;
				goto out_free;
			}
			q = realloc(p, cap * 2);
			if (!q) {
				ret = -ENOMEM;
				goto out_free;
			}
			p = q;
			cap *= 2;
		}
		r = read(fd, p + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out_free;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	p[n] = '\0';
	*out = p;
	*len = n;
	p = NULL;
	ret = 0;
out_free:
	free(p);
out_close:
	close(fd);
	return ret;
}

/* Reads exactly n digits at *s into *v, advancing *s. */
static bool take_digits(const char **s, int n, int *v)
{
	int x = 0;

	for (int i = 0; i < n; i++) {
		char c = (*s)[i];

		if (c < '0' || c > '9')
			return false;
		x = x * 10 + (c - '0');
	}
	*s += n;
	*v = x;
	return true;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant). */
static long long days_from_civil(int y, int m, int d)
{
	long long yy = (long long)y - (m <= 2);
	long long era = (yy >= 0 ? yy : yy - 399) / 400;
	long long yoe = yy - era * 400;
	long long doy = (153LL * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

bool pol_parse_rfc3339(const char *s, long long *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
				     30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, dim;
	long long t;

	if (!s)
		return false;
	if (!take_digits(&s, 4, &y) || *s++ != '-' ||
	    !take_digits(&s, 2, &mo) || *s++ != '-' ||
	    !take_digits(&s, 2, &d))
		return false;
	if (*s != 'T' && *s != 't')
		return false;
	s++;
	if (!take_digits(&s, 2, &h) || *s++ != ':' ||
	    !take_digits(&s, 2, &mi) || *s++ != ':' ||
	    !take_digits(&s, 2, &sec))
		return false;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return false;
		for (int i = 0; *s >= '0' && *s <= '9'; i++, s++)
			if (i >= 9)
				return false;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '+' ? 1 : -1;
		s++;
		if (!take_digits(&s, 2, &oh) || *s++ != ':' ||
		    !take_digits(&s, 2, &om))
			return false;
		if (oh > 23 || om > 59)
			return false;
	} else {
		return false;
	}
	if (*s != '\0')
		return false;
	if (mo < 1 || mo > 12 || y < 1)
		return false;
	dim = mdays[mo - 1] + (mo == 2 && is_leap(y));
	/* Second 60 is a leap second (RFC 3339 section 5.6). */
	if (d < 1 || d > dim || h > 23 || mi > 59 || sec > 60)
		return false;
	t = days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + sec;
	t -= sign * (oh * 3600LL + om * 60LL);
	*out = t;
	return true;
}

int pol_perr_fail(struct pol_perr *c, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	pol_seterr(c->err, c->errlen, "%s: %s: %s", c->origin, field, msg);
	return AF_EPARSE;
}

int pol_perr_keys(struct pol_perr *c, json_t *obj, const char *where,
		  const char *const *allowed)
{
	char safe[POL_SAFE_BUF], field[128];
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		bool ok = false;

		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(key, allowed[i]) == 0;
		if (ok)
			continue;
		pol_safe(key, POL_SAFE_LEN, safe, sizeof(safe));
		if (where)
			snprintf(field, sizeof(field), "%s.%s", where, safe);
		else
			snprintf(field, sizeof(field), "%s", safe);
		return pol_perr_fail(c, field, "unknown field");
	}
	return 0;
}

int pol_perr_projects(struct pol_perr *c, json_t *obj, const char *where,
		      char ***out, size_t *n)
{
	char safe[POL_SAFE_BUF], field[96];
	json_t *pv, *e;
	size_t i, len;

	*out = NULL;
	*n = 0;
	snprintf(field, sizeof(field), "%s.projects", where);
	pv = json_object_get(obj, "projects");
	if (!pv || json_is_null(pv))
		return 0;
	if (!json_is_array(pv))
		return pol_perr_fail(c, field, "must be an array");
	len = json_array_size(pv);
	if (len > POL_PROJECTS_MAX)
		return pol_perr_fail(c, field, "too many projects");
	/* An empty list names no project; keep a non-NULL array for it. */
	*out = calloc(len ? len : 1, sizeof(**out));
	if (!*out)
		return pol_perr_fail(c, field, "out of memory");
	json_array_foreach(pv, i, e) {
		snprintf(field, sizeof(field), "%s.projects[%zu]", where, i);
		if (!json_is_string(e))
			return pol_perr_fail(c, field, "must be a string");
		if (!pol_project_valid(json_string_value(e)))
			return pol_perr_fail(c, field, "invalid project \"%s\"",
				     pol_safe(json_string_value(e),
					      POL_SAFE_LEN, safe,
					      sizeof(safe)));
		(*out)[i] = strdup(json_string_value(e));
		if (!(*out)[i])
			return pol_perr_fail(c, field, "out of memory");
		*n = i + 1;
	}
	return 0;
}

int pol_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
