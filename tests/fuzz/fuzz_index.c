/*
 * fuzz_index.c - libFuzzer target for the decoders of the cache index's
 * values (cache/index.c): a blob record, a fetch lease and a failure
 * backoff entry, as read back from LMDB. An index is a file on disk that
 * a crash, a bad disk or another program can leave in any state; a value
 * that does not decode must be refused (-EBADMSG), never read past, never
 * crash the daemon (issue 11 item 4; t_index_corrupt drops and refetches
 * such records end to end).
 *
 * Invariants: a decoded record's strings are terminated inside their
 * buffers, its state is a known one, its json (when asked for) lies
 * within the value; encoding it again gives a value that decodes to the
 * same record (a round trip through idx_rec_encode).
 *
 *   make fuzz && build/fuzz/fuzz_index tests/fuzz/corpus/index
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/index_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_rec(const struct idx_rec *a, const struct idx_rec *b)
{
	if (a->state != b->state || a->size_known != b->size_known ||
	    a->size != b->size || a->chunk_size != b->chunk_size ||
	    a->verified_at != b->verified_at ||
	    a->last_access != b->last_access || a->last_err != b->last_err ||
	    a->gen != b->gen || strcmp(a->project, b->project) != 0 ||
	    strcmp(a->name, b->name) != 0)
		abort();
	/* A snapshot over 1 MiB is not kept (idx_rec_size); an empty one
	 * (a value whose json bytes start with NUL) is no snapshot. */
	if (a->json && strlen(a->json) > (1u << 20))
		return;
	if (strcmp(a->json ? a->json : "", b->json ? b->json : "") != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct idx_rec rec, again;
	struct idx_lease l;
	struct idx_fail f;
	unsigned char *copy, *enc;
	size_t n;
	int rc;

	/* A heap copy of exactly the value: ASan sees any over-read. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	for (int want_json = 0; want_json < 2; want_json++) {
		rc = idx_rec_decode(copy, size, &rec, want_json);
		if (rc != 0) {
			if (rc != -EBADMSG && rc != -ENOMEM)
				abort();
			if (rec.json)
				abort();
			continue;
		}
		if (memchr(rec.project, '\0', sizeof(rec.project)) == NULL ||
		    memchr(rec.name, '\0', sizeof(rec.name)) == NULL ||
		    rec.state > CACHE_QUARANTINED)
			abort();
		if (rec.json && strlen(rec.json) > size)
			abort();
		n = idx_rec_size(&rec);
		enc = malloc(n);
		if (enc && idx_rec_encode(&rec, enc, n) == 0) {
			if (idx_rec_decode(enc, n, &again, true) != 0)
				abort();
			same_rec(&rec, &again);
			idx_rec_release(&again);
		}
		free(enc);
		idx_rec_release(&rec);
	}
	rc = idx_lease_decode(copy, size, &l);
	if (rc != 0 && rc != -EBADMSG)
		abort();
	rc = idx_fail_decode(copy, size, &f);
	if (rc == 0 && memchr(f.reason, '\0', sizeof(f.reason)) == NULL)
		abort();
	if (rc != 0 && rc != -EBADMSG)
		abort();
	free(copy);
	return 0;
}
