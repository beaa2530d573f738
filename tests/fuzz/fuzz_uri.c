/*
 * fuzz_uri.c - libFuzzer target for pol_uri_check and pol_uri_redact.
 * The first byte picks the source type; a refusal must never quote a
 * secret from the uri.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum pol_source_type t;
	char err[512], red[256], *s;

	if (size < 1)
		return 0;
	t = (enum pol_source_type)(data[0] % 8);
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (pol_uri_check(t, s, err, sizeof(err)) != 0) {
		if (strlen(err) == 0)
			abort();
		/* A secret in the uri (the seeds use "hunter2") is never
		 * quoted back. */
		if (strstr(s, "hunter2") && strstr(err, "hunter2"))
			abort();
	}
	pol_uri_redact(s, red, sizeof(red));
	if (strlen(red) >= sizeof(red) || strchr(red, '?') || strchr(red, '#'))
		abort();
	pol_uri_redact(s, red, 1);
	if (red[0] != '\0')
		abort();
	free(s);
	return 0;
}
