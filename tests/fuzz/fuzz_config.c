/*
 * fuzz_config.c - libFuzzer target for pol_config_parse and the size and
 * duration parsers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/af.h"
#include "policy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pol_config cfg;
	char err[1024], *s;
	uint64_t v;
	int ret;

	if (pol_config_init(&cfg) != 0)
		return 0;
	ret = pol_config_parse(&cfg, (const char *)data, size, "fuzz.conf",
			       err, sizeof(err));
	if (ret == 0) {
		if (cfg.chunk_size < 65536 || (cfg.chunk_size &
					       (cfg.chunk_size - 1)))
			abort();
	} else if (ret == AF_EPARSE && strlen(err) == 0) {
		abort();
	}
	pol_config_release(&cfg);

	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)pol_parse_size(s, &v);
	(void)pol_parse_duration_ms(s, &v);
	free(s);
	return 0;
}
