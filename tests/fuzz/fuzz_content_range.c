/*
 * fuzz_content_range.c - libFuzzer target for the HTTP response header
 * parsers of sources/ (http_parse.c): Content-Range, Retry-After,
 * Content-Length, status lines, header matching, and the error code of an
 * error body (S3/Azure XML, GCS JSON). The first byte picks the parser;
 * the rest is the value, as untrusted as the server. Invariants checked: a
 * parsed Content-Range is self-consistent, a Retry-After never exceeds its
 * cap, an error code is a short token.
 *
 *   make fuzz && build/fuzz/fuzz_content_range tests/fuzz/corpus/content_range
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_content_range cr;
	const char *v, *val;
	size_t len, vlen;
	unsigned secs;
	uint64_t n;
	int status;
	char *copy;

	if (size == 0)
		return 0;
	/* A heap copy of exactly the value: ASan sees any over-read. */
	len = size - 1;
	copy = malloc(len ? len : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, len);
	v = copy;
	switch (data[0] % 6) {
	case 0:
		if (http_parse_content_range(v, len, &cr) == 0) {
			if (!cr.unsatisfied && cr.last < cr.first)
				abort();
			if (!cr.unsatisfied && cr.total_known &&
			    cr.last >= cr.total)
				abort();
			if (cr.unsatisfied && !cr.total_known)
				abort();
		}
		break;
	case 1:
		if (http_parse_retry_after(v, len, 1700000000LL, 30, &secs) ==
		    0 && secs > 30)
			abort();
		break;
	case 2:
		if (http_parse_u64(v, len, &n) == 0 && n > (uint64_t)INT64_MAX)
			abort();
		break;
	case 3:
		if (http_parse_status_line(v, len, &status) == 0 &&
		    (status < 100 || status > 999))
			abort();
		break;
	case 5: {
		char code[72];

		if (http_error_code(v, len, code, sizeof(code))) {
			size_t n = strlen(code);

			if (n == 0 || n > 64 ||
			    strspn(code, "abcdefghijklmnopqrstuvwxyz"
					 "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789._-") != n)
				abort();
		}
		break;
	}
	default:
		if (http_header_value(v, len, "Content-Range", &val, &vlen) &&
		    (val < v || val + vlen > v + len))
			abort();
		break;
	}
	free(copy);
	return 0;
}
