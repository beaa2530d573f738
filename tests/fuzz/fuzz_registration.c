/*
 * fuzz_registration.c - libFuzzer target for pol_registration_parse and
 * the registry builder over the same text.
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
	struct pol_registration *r, *d;
	struct pol_registry *g;
	char err[1024], reason[512];
	bool tie;

	if (pol_registration_parse((const char *)data, size, "fuzz.json", &r,
				   err, sizeof(err)) == 0) {
		if (!pol_project_valid(r->project) || !pol_name_valid(r->name))
			abort();
		d = pol_registration_dup(r);
		if (d && strcmp(d->json, r->json) != 0)
			abort();
		pol_registration_free(d);
		(void)pol_policy_decide(NULL, r, reason, sizeof(reason));
		pol_registration_free(r);
	}
	if (pol_registry_parse((const char *)data, size, "fuzz.json", ignore,
			       NULL, &g) == 0) {
		for (size_t i = 0; i < pol_registry_count(g); i++) {
			const struct pol_registration *x =
				pol_registry_at(g, i);

			if (pol_registry_find(g, x->project, x->name,
					      x->digest.str) != x)
				abort();
			for (size_t j = 0; j < x->n_channels; j++)
				(void)pol_registry_channel(g, NULL, x->project,
							   x->name,
							   x->channels[j],
							   &tie);
		}
		pol_registry_free(g);
	}
	return 0;
}
