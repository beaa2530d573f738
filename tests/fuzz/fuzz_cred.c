/*
 * fuzz_cred.c - libFuzzer target for pol_cred_parse (credential files and
 * helper answers are outside input), the time rules and scope matching.
 * Invariants: a usable credential has the secrets its type needs; a
 * refused one keeps none; a message never repeats a secret value.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/af.h"
#include "policy/cred.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_leak(const char *err, const char *secret)
{
	if (secret && strlen(secret) >= 8 && strstr(err, secret))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pol_cred *c = NULL, *d;
	char err[1024] = "";
	int ret;

	ret = pol_cred_parse((const char *)data, size, "fuzz.json", &c, err,
			     sizeof(err));
	if (ret == 0) {
		if (!c || !c->scope)
			abort();
		if (c->type == POL_SRC_S3 &&
		    (!c->access_key_id || !c->secret_access_key))
			abort();
		if (c->type != POL_SRC_S3 && !c->bearer_token && !c->sas_token)
			abort();
		if (pol_cred_check_time(c, 1773057600LL, 43200000, err,
					sizeof(err)) != 0) {
			no_leak(err, c->secret_access_key);
			no_leak(err, c->bearer_token);
			no_leak(err, c->sas_token);
			no_leak(err, c->session_token);
		}
		(void)pol_cred_scope_matches(c->scope, "s3://bucket/key");
		(void)pol_cred_scope_matches(c->scope, c->scope);
		d = pol_cred_dup(c);
		if (d && strcmp(d->scope, c->scope) != 0)
			abort();
		pol_cred_free(d);
	} else if (ret == AF_ECRED) {
		if (!c || c->bearer_token || c->sas_token ||
		    c->secret_access_key || c->access_key_id ||
		    c->session_token || strlen(err) == 0)
			abort();
	} else if (ret == AF_EPARSE) {
		if (c || strlen(err) == 0)
			abort();
	} else if (ret != 1 && ret != -ENOMEM) {
		abort();
	}
	pol_cred_free(c);
	return 0;
}
