/*
 * pol_int.h - private helpers shared by the files of policy/. Nothing
 * outside policy/ includes this header.
 */
#ifndef POL_INT_H
#define POL_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "policy.h"

/* Largest file a policy loader reads (registrations, policy, config). */
#define POL_FILE_MAX	(16u * 1024 * 1024)

/*
 * A growable byte buffer with a hard maximum fixed at creation (STYLE.md
 * "every growable buffer has a maximum"). Once an append fails, failed is
 * set and every later append is a no-op, so a caller checks once at the end.
 */
struct pol_buf {
	char *p;		/* NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max;		/* len never exceeds max */
	bool failed;
};

void pol_buf_init(struct pol_buf *b, size_t max);
void pol_buf_release(struct pol_buf *b);
void pol_buf_add(struct pol_buf *b, const char *s, size_t n);
void pol_buf_adds(struct pol_buf *b, const char *s);
void pol_buf_addf(struct pol_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string, quotes included; invalid UTF-8 -> U+FFFD. */
void pol_buf_add_json_string(struct pol_buf *b, const char *s);

/*
 * Formats into err (may be NULL or errlen 0): always NUL-terminated,
 * truncated when too long.
 */
void pol_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Where a parser reports: the record's origin and the caller's buffer. */
struct pol_perr {
	const char *origin;
	char *err;
	size_t errlen;
};

/*
 * Writes "<origin>: <field>: <message>" into c->err. Returns AF_EPARSE, so
 * a parser can "return pol_perr_fail(…)".
 */
int pol_perr_fail(struct pol_perr *c, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Copies at most max characters of untrusted s into out for quoting in a
 * message: printable ASCII kept, anything else '?', "..." when cut. Returns
 * out.
 */
const char *pol_safe(const char *s, size_t max, char *out, size_t outlen);
#define POL_SAFE_LEN	48	/* characters quoted from input in messages */
#define POL_SAFE_BUF	(POL_SAFE_LEN + 4)

/*
 * Reads the whole of path (at most POL_FILE_MAX bytes) into a new
 * NUL-terminated buffer. Returns 0, -errno, or -EFBIG.
 */
int pol_read_file(const char *path, char **out, size_t *len);

/*
 * Parses an RFC 3339 timestamp (Z or numeric offset, optional fraction)
 * into epoch seconds. Returns true on success.
 */
bool pol_parse_rfc3339(const char *s, long long *out);

/*
 * Validates one registration object already parsed by jansson. origin is
 * copied. Returns 0 and *out, or AF_EPARSE with "<origin>: <field>:
 * <problem>" in err.
 */
int pol_registration_from_json(json_t *obj, const char *origin,
			       struct pol_registration **out, char *err,
			       size_t errlen);

#endif
