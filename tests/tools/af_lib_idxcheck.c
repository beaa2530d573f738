/*
 * af_lib_idxcheck.c - checks a cache directory after a crash (issue 11
 * item 2), from outside any daemon: the LMDB environment opens and a
 * write transaction can be taken (a writer that died holding LMDB's lock
 * must not wedge the next one); every record decodes; no blob is
 * `verified` whose data file does not hash to its digest; no chunk is
 * recorded whose bytes do not match its xxh3 (DESIGN §6: "a chunk is
 * recorded only after its bytes are written").
 *
 *   af_lib_idxcheck CACHE_DIR
 *
 * One line per blob on stdout:
 *   DIGEST STATE good=BYTES file=yes|no lease=PID|-
 * where BYTES is what a restart must not download again: the whole size
 * of a verified blob whose file hashes right, else the bytes of the
 * recorded chunks whose xxh3 matches. Then "summary: ..." and, for each
 * violation, a line starting "BAD: " on stderr (a CACHE_DIR that does not
 * exist yet is an empty cache). Exit 0 when nothing is
 * wrong, 1 on a violation, 2 on usage.
 * A verified record whose data file is gone is a violation too (the index
 * would claim bytes that are not there). A data file that no record
 * claims is not (eviction unlinks it right after its commit, and gc or
 * the next fetch removes what a crash in between leaves): such files are
 * counted as "orphans" in the summary.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/hash_int.h"
#include "cache/index_int.h"
#include "policy/policy.h"

static unsigned bad;

__attribute__((format(printf, 2, 3)))
static void violation(const char *key, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "BAD: %s: ", key);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	bad++;
}

struct chunks {
	const char *key;
	int fd;			/* -1: no data file */
	uint64_t size;
	uint64_t chunk_size;
	uint64_t good;		/* bytes of chunks that check */
	uint64_t n;
	unsigned char *buf;
};

static int check_chunk(void *arg, uint64_t i, uint64_t xxh)
{
	struct chunks *k = arg;
	uint64_t off, len, got = 0;
	int rc;

	k->n++;
	off = i * k->chunk_size;
	if (!k->chunk_size || off >= k->size) {
		violation(k->key, "chunk %" PRIu64 " lies past the end (%"
			  PRIu64 " bytes)", i, k->size);
		return 0;
	}
	len = k->size - off < k->chunk_size ? k->size - off : k->chunk_size;
	if (k->fd < 0) {
		violation(k->key, "chunk %" PRIu64 " recorded, no data file",
			  i);
		return 0;
	}
	rc = hash_fd_range(k->fd, off, len, NULL, &got, k->buf);
	if (rc || got != xxh) {
		violation(k->key, "chunk %" PRIu64 " recorded with wrong "
			  "bytes (xxh3 %016" PRIx64 ", recorded %016" PRIx64 ")",
			  i, got, xxh);
		return 0;
	}
	k->good += len;
	return 0;
}

static void data_path(const char *dir, const char *key, char *buf, size_t len)
{
	const char *colon = strchr(key, ':');

	snprintf(buf, len, "%s/blobs/%.*s/%.2s/%s", dir,
		 colon ? (int)(colon - key) : 0, key, colon ? colon + 1 : "",
		 colon ? colon + 1 : "");
}

static void check_blob(struct idx *x, MDB_txn *txn, const char *dir,
		       const char *key, unsigned char *buf, unsigned *counts)
{
	struct chunks k = { .key = key, .fd = -1, .buf = buf };
	struct pol_digest want, got;
	struct idx_rec rec;
	struct idx_lease l;
	char path[4096], lease[32] = "-";
	struct stat st = { 0 };
	uint64_t good = 0;
	bool verified_ok = false;
	int rc;

	rc = idx_rec_get(x, txn, key, &rec, false);
	if (rc) {
		violation(key, "record does not decode: %s", strerror(-rc));
		return;
	}
	if (rec.state <= CACHE_QUARANTINED)
		counts[rec.state]++;
	if (idx_lease_get(x, txn, key, &l) == 0)
		snprintf(lease, sizeof(lease), "%d", (int)l.pid);
	data_path(dir, key, path, sizeof(path));
	k.fd = open(path, O_RDONLY | O_CLOEXEC);
	k.size = rec.size;
	k.chunk_size = rec.chunk_size;
	if (rec.state == CACHE_VERIFIED && k.fd < 0)
		violation(key, "verified, but its data file is gone");
	if (rec.state == CACHE_VERIFIED && k.fd >= 0) {
		if (pol_digest_parse(key, &want, NULL, 0) != 0) {
			violation(key, "verified record under a bad key");
		} else if (fstat(k.fd, &st) != 0 ||
			   (uint64_t)st.st_size != rec.size) {
			violation(key, "verified: file %lld bytes, record %"
				  PRIu64, (long long)st.st_size, rec.size);
		} else if (hash_fd(k.fd, rec.size, want.algo, &got) != 0 ||
			   !pol_digest_equal(&got, &want)) {
			violation(key, "verified: data file does not hash to "
				  "its digest");
		} else {
			verified_ok = true;
		}
	}
	/* Chunks of a quarantined record are dropped with its data. */
	if (rec.state != CACHE_QUARANTINED &&
	    (rec.state != CACHE_VERIFIED || k.fd >= 0))
		idx_chunks_each(x, txn, key, check_chunk, &k);
	good = verified_ok ? rec.size : rec.state == CACHE_PARTIAL ? k.good : 0;
	printf("%s %s good=%" PRIu64 " file=%s lease=%s chunks=%" PRIu64 "\n",
	       key, cache_state_name(rec.state), good, k.fd >= 0 ? "yes" : "no",
	       lease, k.n);
	if (k.fd >= 0)
		close(k.fd);
}

/* Data files under blobs/ that no record claims. */
static unsigned count_orphans(struct idx *x, MDB_txn *txn, const char *dir)
{
	static const char *const algos[] = { "sha256", "sha512" };
	unsigned n = 0;

	for (size_t a = 0; a < 2; a++) {
		char top[4096];
		struct dirent *e;
		DIR *d1;

		snprintf(top, sizeof(top), "%s/blobs/%s", dir, algos[a]);
		d1 = opendir(top);
		if (!d1)
			continue;
		while ((e = readdir(d1))) {
			char sub[4400];
			struct dirent *f;
			DIR *d2;

			if (e->d_name[0] == '.')
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", top, e->d_name);
			d2 = opendir(sub);
			if (!d2)
				continue;
			while ((f = readdir(d2))) {
				char key[POL_DIGEST_STR_MAX + 300];
				struct idx_rec rec;

				if (f->d_name[0] == '.')
					continue;
				snprintf(key, sizeof(key), "%s:%s", algos[a],
					 f->d_name);
				if (idx_rec_get(x, txn, key, &rec, false) ==
				    -ENOENT) {
					printf("orphan %s\n", key);
					n++;
				}
			}
			closedir(d2);
		}
		closedir(d1);
	}
	return n;
}

int main(int argc, char **argv)
{
	char idxdir[4096], (*keys)[POL_DIGEST_STR_MAX] = NULL;
	unsigned counts[4] = { 0 }, orphans;
	unsigned char *buf;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	size_t n = 0, cap = 0;
	MDB_val k, v;
	struct idx x;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: af_lib_idxcheck CACHE_DIR\n");
		return 2;
	}
	/* Killed before it made the cache folder: nothing to check. */
	if (access(argv[1], F_OK) != 0 && errno == ENOENT) {
		printf("summary: no cache folder yet\n");
		return 0;
	}
	snprintf(idxdir, sizeof(idxdir), "%s/index", argv[1]);
	rc = idx_open(&x, idxdir);
	if (rc) {
		fprintf(stderr, "BAD: the index does not open: %s\n",
			strerror(-rc));
		return 1;
	}
	/* The writer lock of a process killed inside a txn is recovered. */
	rc = idx_begin(&x, true, &txn);
	if (rc) {
		fprintf(stderr, "BAD: no write transaction: %s\n",
			strerror(-rc));
		idx_close(&x);
		return 1;
	}
	idx_abort(txn);
	buf = malloc(HASH_PIECE);
	if (!buf || idx_begin(&x, false, &txn) ||
	    mdb_cursor_open(txn, x.blobs, &cur)) {
		fprintf(stderr, "BAD: cannot read the index\n");
		return 1;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		if (k.mv_size == 0 || k.mv_size >= POL_DIGEST_STR_MAX) {
			fprintf(stderr, "BAD: key of %zu bytes\n", k.mv_size);
			bad++;
		} else {
			if (n == cap) {
				cap = cap ? cap * 2 : 64;
				keys = realloc(keys, cap * sizeof(*keys));
				if (!keys)
					return 1;
			}
			memcpy(keys[n], k.mv_data, k.mv_size);
			keys[n][k.mv_size] = '\0';
			n++;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < n; i++)
		check_blob(&x, txn, argv[1], keys[i], buf, counts);
	orphans = count_orphans(&x, txn, argv[1]);
	idx_abort(txn);
	idx_close(&x);
	printf("summary: blobs=%zu verified=%u partial=%u quarantined=%u "
	       "orphans=%u bad=%u\n", n, counts[CACHE_VERIFIED],
	       counts[CACHE_PARTIAL], counts[CACHE_QUARANTINED], orphans, bad);
	free(keys);
	free(buf);
	return bad ? 1 : 0;
}
