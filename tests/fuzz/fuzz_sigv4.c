/*
 * fuzz_sigv4.c - libFuzzer target for the SigV4 canonicalisation
 * (sources/sigv4.c): the path, query and headers come from registrations
 * and the engine, so hostile ones must be refused or signed, never crash.
 * Input: lines "path", "query", then "name:value" header lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/af.h"
#include "sources/sigv4_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sigv4_header hdrs[16] = { { "host", "h.example" } };
	struct sigv4_key key = { "AKID", "secret", "token/+=" };
	struct sigv4_request rq = {
		.method = "GET", .payload_hash = "UNSIGNED-PAYLOAD",
		.region = "us-east-1", .service = "s3", .time_s = 1369353600,
		.headers = hdrs,
	};
	struct sigv4_result res;
	char *s, *lines[18], *p;
	size_t n = 0, nh = 1;
	char *e;

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	for (p = s; p && n < 18; n++) {
		lines[n] = p;
		p = strchr(p, '\n');
		if (p)
			*p++ = '\0';
	}
	rq.path = n > 0 ? lines[0] : "/";
	rq.query = n > 1 ? lines[1] : NULL;
	rq.normalize = size > 0 && (data[0] & 1);
	for (size_t i = 2; i < n && nh < 16; i++) {
		char *colon = strchr(lines[i], ':');

		if (!colon)
			continue;
		*colon = '\0';
		hdrs[nh].name = lines[i];
		hdrs[nh++].value = colon + 1;
	}
	rq.n_headers = nh;
	if (sigv4_sign_headers(&rq, &key, 0, &res) == 0) {
		if (strlen(res.signature) != 64 || !res.authorization)
			abort();
		sigv4_result_release(&res);
	}
	if (sigv4_presign(&rq, &key, 60, SIGV4_TOKEN_UNSIGNED, &res) == 0) {
		if (strlen(res.signature) != 64 || !res.query)
			abort();
		sigv4_result_release(&res);
	}
	e = sigv4_encode_path(rq.path, 1 << 16);
	free(e);
	e = rq.query ? sigv4_canonical_query(rq.query, 1 << 16) : NULL;
	free(e);
	free(s);
	return 0;
}
