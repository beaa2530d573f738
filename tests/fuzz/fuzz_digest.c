/*
 * fuzz_digest.c - libFuzzer target for pol_digest_parse and the name rules.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pol_digest d, e;
	char err[256];
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (pol_digest_parse(s, &d, err, sizeof(err)) == 0) {
		/* Canonical: parsing is the identity on the text. */
		if (strcmp(d.str, s) != 0)
			abort();
		if (pol_digest_from_raw(d.algo, d.raw, d.raw_len, &e) != 0 ||
		    strcmp(e.str, d.str) != 0 || !pol_digest_equal(&d, &e))
			abort();
	} else if (strlen(err) == 0) {
		abort();
	}
	(void)pol_project_valid(s);
	(void)pol_name_valid(s);
	(void)pol_channel_valid(s);
	free(s);
	return 0;
}
