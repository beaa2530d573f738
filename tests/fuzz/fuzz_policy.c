/*
 * fuzz_policy.c - libFuzzer target for pol_policy_parse, deciding a fixed
 * registration against whatever policy parsed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char reg_json[] =
	"{\"project\":\"vision\",\"name\":\"m.bin\",\"artifact_kind\":\"blob\","
	"\"digest\":\"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\","
	"\"source\":{\"source_type\":\"https\",\"uri\":\"https://models.example.internal/m.bin\"},"
	"\"lifecycle_state\":\"active\",\"trust_state\":\"verified\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pol_registration *reg;
	struct pol_policy *p;
	char err[1024], reason[512];
	gid_t gid;

	if (!reg && pol_registration_parse(reg_json, strlen(reg_json), "r",
					   &reg, err, sizeof(err)) != 0)
		abort();
	if (pol_policy_parse((const char *)data, size, "fuzz.json", &p, err,
			     sizeof(err)) != 0) {
		if (strlen(err) == 0)
			abort();
		return 0;
	}
	if (pol_policy_decide(p, reg, reason, sizeof(reason)) != 0 &&
	    strlen(reason) == 0)
		abort();
	(void)pol_policy_project_gid(p, "vision", &gid);
	pol_policy_free(p);
	return 0;
}
