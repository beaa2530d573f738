/*
 * buf.h - a growable byte buffer with a hard maximum fixed at creation
 * (STYLE.md "every growable buffer has a maximum"), shared by the parsers
 * and request builders of every room. Once an append fails, failed is set
 * and every later append is a no-op, so a caller checks once at the end.
 */
#ifndef POL_BUF_H
#define POL_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct pol_buf {
	char *p;		/* NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max;		/* len never exceeds max */
	bool failed;
	bool secret;		/* wiped on growth and release */
};

void pol_buf_init(struct pol_buf *b, size_t max);
/*
 * The same for a buffer that will hold secrets: every copy it leaves
 * behind (on growth, on release) is wiped with OPENSSL_cleanse first.
 */
void pol_buf_init_secret(struct pol_buf *b, size_t max);
/* Frees the bytes (wiped first for a secret buffer); b stays usable. */
void pol_buf_release(struct pol_buf *b);
void pol_buf_add(struct pol_buf *b, const char *s, size_t n);
void pol_buf_adds(struct pol_buf *b, const char *s);
void pol_buf_addf(struct pol_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string, quotes included; invalid UTF-8 -> U+FFFD. */
void pol_buf_add_json_string(struct pol_buf *b, const char *s);
/*
 * Takes the bytes out of b (NUL-terminated, caller frees) and leaves b
 * empty. NULL when an append failed or nothing was added.
 */
char *pol_buf_take(struct pol_buf *b);

#endif
