/*
 * fuzz_attest.c - libFuzzer target for the attestation checker (DESIGN
 * §12): the input is a registration's `attestation`, checked for
 * vision/m.bin against a fixed policy with one Ed25519 and one P-256 key
 * (the seeds in tests/fuzz/corpus/attest/ are signed by them, so the
 * fuzzer reaches the statement parser), and also decoded as base64.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy_json[] =
	"{\"min_trust_state\":\"attested\",\"attestation_keys\":["
	"{\"keyid\":\"fuzz-ed\",\"public_key\":\"-----BEGIN PUBLIC KEY-----\\n"
	"MCowBQYDK2VwAyEA7J0zpu5na6sji9aQPH6WgMPJJCMbfvhfzgj0pM5esFM=\\n"
	"-----END PUBLIC KEY-----\\n\"},"
	"{\"keyid\":\"fuzz-ec\",\"projects\":[\"vision\"],\"public_key\":\"-----BEGIN PUBLIC KEY-----\\n"
	"MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKoYAMlh00qwjKWl++kii01bNrsLM\\n"
	"bINu/wOTsuClWa7/aN1P5DbyOPNvOk6PQfgEO/z3AKT6HIT895Eijdf+tA==\\n"
	"-----END PUBLIC KEY-----\\n\"}]}";

#define DIGEST "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pol_policy *pol;
	struct pol_attest_result ar;
	unsigned char *dec;
	size_t dec_len;
	char err[1024];

	if (!pol && pol_policy_parse(policy_json, strlen(policy_json), "p",
				     &pol, err, sizeof(err)) != 0)
		abort();
	pol_attest_check_envelope(pol, (const char *)data, size, "vision",
				  "m.bin", DIGEST, &ar);
	if (ar.text[0] == '\0' || memchr(ar.text, '\0', sizeof(ar.text)) == NULL)
		abort();
	if (ar.status == POL_ATTEST_VERIFIED &&
	    strncmp(ar.text, "verified:fuzz-", 14) != 0)
		abort();
	pol_dsse_verify(pol, (const char *)data, size, NULL, &ar);
	if (pol_base64_decode((const char *)data, size, &dec, &dec_len) == 0) {
		if (dec_len > size)
			abort();
		free(dec);
	}
	return 0;
}
