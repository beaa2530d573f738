/*
 * fuzz_listing.c - libFuzzer target for the control plane's documents
 * (DESIGN §3): pol_registry_parse_listing (GET /v1/projects/{p}/blobs),
 * pol_projects_parse (GET /v1/projects) and pol_json_wellformed, over the
 * same bytes. Invariants: what is accepted is valid and of the project
 * asked for; the projects come out sorted, distinct and valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ignore(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct pol_registry *g = NULL;
	char err[512], **names = NULL;
	size_t n = 0;
	bool wellformed = pol_json_wellformed(buf, size);

	if (pol_registry_parse_listing(buf, size, "fuzz", "vision", ignore,
				       NULL, &g, err, sizeof(err)) == 0) {
		if (!wellformed)
			abort();
		for (size_t i = 0; i < pol_registry_count(g); i++) {
			const struct pol_registration *r = pol_registry_at(g, i);

			if (strcmp(r->project, "vision") != 0 ||
			    !pol_name_valid(r->name) ||
			    pol_registry_find(g, r->project, r->name,
					      r->digest.str) != r)
				abort();
		}
		pol_registry_free(g);
	}
	if (pol_projects_parse(buf, size, "fuzz", ignore, NULL, &names, &n,
			       err, sizeof(err)) == 0) {
		if (!wellformed)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (!pol_project_valid(names[i]))
				abort();
			if (i > 0 && strcmp(names[i - 1], names[i]) >= 0)
				abort();
		}
		pol_names_free(names, n);
	}
	return 0;
}
