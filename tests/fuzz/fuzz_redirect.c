/*
 * fuzz_redirect.c - libFuzzer target for the redirect rules of DESIGN
 * §5b (sources/http_parse.c): a hostile server chooses the Location of a
 * 3xx. The engine takes curl's absolute form of it (CURLINFO_REDIRECT_URL:
 * the Location resolved against the URL that answered) and asks
 * http_redirect_check whether the hop may be followed. Input: the first
 * byte picks the URL that answered (https, http on loopback, or a scheme
 * the engine never fetches); the rest is the Location, taken both as the
 * raw value and resolved the way curl does.
 *
 * Invariants: a hop is allowed only to http:// or https://, never from
 * https:// down to http://, never from a scheme the engine does not
 * fetch; http_redirect_allowed agrees with http_redirect_check; every
 * refusal has words for the audit log.
 *
 *   make fuzz && build/fuzz/fuzz_redirect tests/fuzz/corpus/redirect
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "sources/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const froms[] = {
	"https://models.example.internal/org/m.bin",
	"http://127.0.0.1:8080/blobs/m.bin",
	"https://h.example:8443/a/b?x=1",
	"ftp://h.example/x",
};

static void check(const char *from, const char *loc)
{
	enum http_redirect_rule rule = http_redirect_check(from, loc);
	const char *words = http_redirect_refusal(rule);

	if (!words || !words[0])
		abort();
	if (http_redirect_allowed(from, loc) != (rule == HTTP_REDIRECT_OK))
		abort();
	if (rule != HTTP_REDIRECT_OK)
		return;
	if (!http_redirect_protocols(from))
		abort();
	if (strncasecmp(loc, "https://", 8) == 0)
		return;
	if (strncasecmp(loc, "http://", 7) != 0 ||
	    strncasecmp(from, "https://", 8) == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *from;
	char *loc, *abs = NULL;
	CURLU *u;

	if (size < 1)
		return 0;
	from = froms[data[0] % (sizeof(froms) / sizeof(froms[0]))];
	loc = malloc(size);
	if (!loc)
		return 0;
	memcpy(loc, data + 1, size - 1);
	loc[size - 1] = '\0';
	check(from, loc);
	/* As the engine sees it: resolved against the URL that answered. */
	u = curl_url();
	if (u && curl_url_set(u, CURLUPART_URL, from, 0) == CURLUE_OK &&
	    curl_url_set(u, CURLUPART_URL, loc,
			 CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_URL, &abs, 0) == CURLUE_OK)
		check(from, abs);
	curl_free(abs);
	curl_url_cleanup(u);
	free(loc);
	return 0;
}
