/*
 * fuzz_http_hdrs.c - libFuzzer target for the response header parsers
 * that source types check against a registration (sources/hdrs.c) and
 * for the engine's header-block lookup (http_head_find). The first byte
 * picks the parser; the rest is the value, as untrusted as the server.
 * Invariants checked: a commit is 40 lowercase hex, an entity tag lies
 * inside the input, challenge params are NUL-terminated printable ASCII.
 *
 *   make fuzz && build/fuzz/fuzz_http_hdrs tests/fuzz/corpus/http_hdrs
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sources/hdrs_int.h"
#include "sources/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_param(const char *s)
{
	size_t n = strnlen(s, HDRS_PARAM_MAX);

	if (n >= HDRS_PARAM_MAX)
		abort();
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hdrs_challenge ch;
	char commit[HDRS_COMMIT_LEN + 1];
	const char *v, *tag, *val;
	size_t len, taglen, vlen;
	bool weak;
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
	switch (data[0] % 4) {
	case 0:
		if (hdrs_parse_commit(v, len, commit) == 0) {
			if (strlen(commit) != HDRS_COMMIT_LEN)
				abort();
			for (size_t i = 0; i < HDRS_COMMIT_LEN; i++)
				if (!((commit[i] >= '0' && commit[i] <= '9') ||
				      (commit[i] >= 'a' && commit[i] <= 'f')))
					abort();
		}
		break;
	case 1:
		if (hdrs_parse_etag(v, len, &tag, &taglen, &weak) == 0 &&
		    (tag < v || tag + taglen > v + len))
			abort();
		break;
	case 2:
		if (hdrs_parse_challenge(v, len, &ch) == 0) {
			check_param(ch.realm);
			check_param(ch.service);
			check_param(ch.scope);
			check_param(ch.error);
		}
		break;
	default:
		if (http_head_find(v, len, "X-Linked-Size", &val, &vlen) &&
		    (val < v || val + vlen > v + len))
			abort();
		break;
	}
	free(copy);
	return 0;
}
