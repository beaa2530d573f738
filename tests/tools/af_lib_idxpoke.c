/*
 * af_lib_idxpoke.c - corrupts a cache index on purpose, for the tests of
 * a damaged index (issue 11 item 4: a record that does not decode is
 * dropped and fetched again, never a crash). Writes raw values into the
 * LMDB environment CACHE_DIR/index, with no daemon running.
 *
 *   af_lib_idxpoke CACHE_DIR blob DIGEST HEX       the blob record's value
 *   af_lib_idxpoke CACHE_DIR blob-cut DIGEST N     keep its first N bytes
 *   af_lib_idxpoke CACHE_DIR lease DIGEST HEX      the fetch lease's value
 *   af_lib_idxpoke CACHE_DIR chunk DIGEST I HEX    chunk I's value
 *   af_lib_idxpoke CACHE_DIR fails DIGEST HEX      every backoff entry's value
 *
 * HEX is the new value in hexadecimal ("" for an empty value). Exit 0 when
 * written, 1 on failure (nothing there to cut, an LMDB error), 2 on usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/index_int.h"

static int unhex(const char *s, unsigned char **out, size_t *len)
{
	size_t n = strlen(s);

	if (n % 2)
		return -1;
	*out = malloc(n / 2 + 1);
	if (!*out)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		(*out)[i] = (unsigned char)v;
	}
	*len = n / 2;
	return 0;
}

/* digest + big-endian u64, as index.c lays out chunk and backoff keys. */
static size_t key_u64(unsigned char *buf, const char *key, uint64_t i)
{
	size_t kl = strlen(key);

	memcpy(buf, key, kl);
	for (int b = 0; b < 8; b++)
		buf[kl + (size_t)b] = (unsigned char)(i >> (56 - 8 * b));
	return kl + 8;
}

static int usage(void)
{
	fprintf(stderr, "usage: af_lib_idxpoke CACHE_DIR blob|blob-cut|lease|chunk|fails DIGEST [I] HEX|N\n");
	return 2;
}

int main(int argc, char **argv)
{
	unsigned char kb[512], *val = NULL;
	char idxdir[4096];
	const char *what, *key;
	MDB_txn *txn = NULL;
	MDB_val k, v;
	size_t vlen = 0;
	struct idx x;
	int rc;

	if (argc < 5)
		return usage();
	what = argv[2];
	key = argv[3];
	if (strlen(key) > 256)
		return usage();
	snprintf(idxdir, sizeof(idxdir), "%s/index", argv[1]);
	if (idx_open(&x, idxdir) || idx_begin(&x, true, &txn)) {
		fprintf(stderr, "af_lib_idxpoke: cannot open %s\n", idxdir);
		return 1;
	}
	k.mv_data = (void *)key;
	k.mv_size = strlen(key);
	if (strcmp(what, "blob-cut") == 0) {
		size_t n = strtoul(argv[4], NULL, 10);

		rc = mdb_get(txn, x.blobs, &k, &v);
		if (rc || v.mv_size < n) {
			fprintf(stderr, "af_lib_idxpoke: no record of %zu bytes\n", n);
			return 1;
		}
		val = malloc(n + 1);
		memcpy(val, v.mv_data, n);
		v.mv_data = val;
		v.mv_size = n;
		rc = mdb_put(txn, x.blobs, &k, &v, 0);
	} else if (strcmp(what, "chunk") == 0 && argc == 6) {
		if (unhex(argv[5], &val, &vlen))
			return usage();
		k.mv_data = kb;
		k.mv_size = key_u64(kb, key, strtoull(argv[4], NULL, 10));
		v.mv_data = val;
		v.mv_size = vlen;
		rc = mdb_put(txn, x.chunks, &k, &v, 0);
	} else if (argc == 5 && (strcmp(what, "blob") == 0 ||
				 strcmp(what, "lease") == 0)) {
		if (unhex(argv[4], &val, &vlen))
			return usage();
		v.mv_data = val;
		v.mv_size = vlen;
		rc = mdb_put(txn, what[0] == 'b' ? x.blobs : x.leases, &k, &v,
			     0);
	} else if (argc == 5 && strcmp(what, "fails") == 0) {
		MDB_cursor *cur = NULL;
		MDB_val fk;
		unsigned n = 0;

		if (unhex(argv[4], &val, &vlen))
			return usage();
		fk.mv_data = kb;
		fk.mv_size = key_u64(kb, key, 0);
		rc = mdb_cursor_open(txn, x.fails, &cur);
		if (rc == 0)
			rc = mdb_cursor_get(cur, &fk, &v, MDB_SET_RANGE);
		while (rc == 0 && fk.mv_size == strlen(key) + 8 &&
		       memcmp(fk.mv_data, key, strlen(key)) == 0) {
			v.mv_data = val;
			v.mv_size = vlen;
			rc = mdb_cursor_put(cur, &fk, &v, MDB_CURRENT);
			if (rc == 0)
				n++;
			if (rc == 0)
				rc = mdb_cursor_get(cur, &fk, &v, MDB_NEXT);
		}
		if (rc == MDB_NOTFOUND || rc == 0)
			rc = n ? 0 : MDB_NOTFOUND;
		mdb_cursor_close(cur);
	} else {
		return usage();
	}
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	idx_close(&x);
	free(val);
	if (rc) {
		fprintf(stderr, "af_lib_idxpoke: %s\n", mdb_strerror(rc));
		return 1;
	}
	return 0;
}
