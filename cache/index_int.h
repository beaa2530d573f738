/*
 * index_int.h - the LMDB index of the cache (DESIGN §6), private to cache/.
 *
 * Six named databases in <dir>/index/:
 *   "blobs"   digest string -> blob record (idx_rec, versioned encoding)
 *   "chunks"  digest string + big-endian u64 chunk index -> xxh3-64 (u64);
 *             presence of the key means the chunk's bytes are in the data
 *             file (recorded only after they were written)
 *   "leases"  digest string -> fetch lease (pid, process start time, owner
 *             token, heartbeat), so one process fetches a blob at a time
 *   "fails"   digest string + big-endian u64 registration fingerprint ->
 *             failure backoff (DESIGN §6) of that registration's fetch
 *   "meta"    "seq" -> u64, the last generation handed out;
 *             "drops" -> u64, bumped whenever a blob's data is dropped
 *             (quarantine, eviction, gc), with "drop" + big-endian u64 ->
 *             'q' (quarantined) or 'e' (dropped intact) + digest string,
 *             the last IDX_DROP_LOG of them
 *   "docs"    name -> opaque document of another room (cache_doc_put:
 *             the control plane's last answers, kept for outages)
 *
 * LMDB values are valid only inside their transaction: every getter here
 * copies out. Write transactions are serialized by LMDB itself (its writer
 * lock is process-shared), which is also what orders evict against fetch.
 *
 * The index is a file on disk: a crash, a bad disk or another program may
 * leave any bytes in a value. Every value is decoded by a bounds-checked,
 * pure decoder (idx_*_decode, fuzzed by tests/fuzz/fuzz_index.c); one
 * that does not decode is -EBADMSG, and the cache treats it as absent: a
 * record or chunk that does not decode is dropped and fetched again, a
 * lease or a backoff entry that does not decode is overwritten (issue 11).
 */
#ifndef CACHE_INDEX_INT_H
#define CACHE_INDEX_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <lmdb.h>

#define IDX_REC_VERSION	2
/* Drops remembered for cache_changes_since. */
#define IDX_DROP_LOG	4096

struct idx {
	MDB_env *env;
	MDB_dbi blobs;
	MDB_dbi chunks;
	MDB_dbi leases;
	MDB_dbi fails;
	MDB_dbi meta;
	MDB_dbi docs;
	/*
	 * The write txn open in this process and its thread (LMDB allows one
	 * at a time per environment): idx_write_held() lets hashing assert
	 * that it holds no writer lock (cache_int.h rule 7). __atomic.
	 */
	MDB_txn *wtxn;
	unsigned long wthread;
};

/* One blob record; json is heap-owned (may be NULL), see idx_rec_release. */
struct idx_rec {
	uint32_t state;			/* enum cache_state */
	bool size_known;
	uint64_t size;
	uint64_t chunk_size;
	int64_t verified_at;		/* epoch seconds, 0 if never */
	int64_t last_access;		/* epoch seconds */
	int32_t last_err;		/* error of the last failed fetch, 0 */
	/*
	 * Changes with every change of the record's state or owner (a new
	 * lease, a commit, a quarantine); a write based on an earlier read
	 * checks it (cache_int.h "Ownership"). 0 in a version 1 record.
	 */
	uint64_t gen;
	char project[64];
	char name[201];
	char *json;			/* registration snapshot, or NULL */
};

struct idx_lease {
	int32_t pid;
	uint64_t start;			/* /proc/<pid>/stat field 22 */
	uint64_t token;			/* per cache instance */
	int64_t beat;			/* wall seconds of the last heartbeat, 0: none */
};

/* A fetch failure of one registration of a blob (DESIGN §6 backoff). */
struct idx_fail {
	uint32_t count;			/* failures in a row */
	int32_t err;			/* the last one's error */
	int64_t until_ms;		/* wall ms: no new fetch before */
	char reason[200];		/* the last one's reason (audit words) */
};

int idx_open(struct idx *x, const char *dir);
void idx_close(struct idx *x);

/* Begin/commit/abort. Returns 0 or -errno (mapped from MDB errors). */
int idx_begin(struct idx *x, bool write, MDB_txn **txn);
int idx_commit(MDB_txn *txn);
void idx_abort(MDB_txn *txn);
int idx_err(int mdb_rc);
/* True when the calling thread has a write txn of x open. */
bool idx_write_held(struct idx *x);

void idx_rec_release(struct idx_rec *r);
/*
 * Pure codecs of a blob record's value. idx_rec_decode: 0 and *out (json
 * copied, NUL-terminated, only when want_json: release it), -EBADMSG when
 * the value is not a record (*out zeroed), -ENOMEM. idx_rec_size: the
 * bytes idx_rec_encode writes (a json over 1 MiB is not kept);
 * idx_rec_encode: 0, or -EINVAL when len is not that size.
 */
int idx_rec_decode(const void *val, size_t len, struct idx_rec *out,
		   bool want_json);
size_t idx_rec_size(const struct idx_rec *r);
int idx_rec_encode(const struct idx_rec *r, void *buf, size_t len);
/* 0 and *out, -ENOENT, -EBADMSG (logged), -ENOMEM or -EIO. */
int idx_rec_get(struct idx *x, MDB_txn *txn, const char *key,
		struct idx_rec *out, bool want_json);
int idx_rec_put(struct idx *x, MDB_txn *txn, const char *key,
		const struct idx_rec *r);
/* Deletes record, chunks and lease. 0 or -ENOENT when there was no record. */
int idx_blob_del(struct idx *x, MDB_txn *txn, const char *key);

int idx_chunk_put(struct idx *x, MDB_txn *txn, const char *key, uint64_t i,
		  uint64_t xxh);
int idx_chunk_del(struct idx *x, MDB_txn *txn, const char *key, uint64_t i);
/* 0 and *xxh, -ENOENT, or -EBADMSG. */
int idx_chunk_get(struct idx *x, MDB_txn *txn, const char *key, uint64_t i,
		  uint64_t *xxh);
int idx_chunks_del(struct idx *x, MDB_txn *txn, const char *key);
/*
 * Calls fn for every recorded chunk of key in index order (one whose
 * value does not decode is skipped: not recorded); stops at a non-zero
 * return (which is returned). Returns 0 or -errno.
 */
int idx_chunks_each(struct idx *x, MDB_txn *txn, const char *key,
		    int (*fn)(void *arg, uint64_t i, uint64_t xxh), void *arg);

/* Pure: 0 and *out, or -EBADMSG. */
int idx_lease_decode(const void *val, size_t len, struct idx_lease *out);
/* 0 and *out, -ENOENT, -EBADMSG (logged) or -errno. */
int idx_lease_get(struct idx *x, MDB_txn *txn, const char *key,
		  struct idx_lease *out);
int idx_lease_put(struct idx *x, MDB_txn *txn, const char *key,
		  const struct idx_lease *l);
int idx_lease_del(struct idx *x, MDB_txn *txn, const char *key);

/*
 * Generations (meta). idx_gen_next hands out the next one (> 0, never
 * reused). idx_drop_note bumps the drop counter and logs key under it,
 * with bad = the bytes were found wrong (quarantine) rather than dropped
 * intact (eviction). idx_drops_get reads the counter (0 when nothing was
 * ever dropped). idx_drops_since calls fn for every key dropped after
 * since, oldest first, and returns -ERANGE when the log no longer reaches
 * back that far.
 */
int idx_gen_next(struct idx *x, MDB_txn *txn, uint64_t *out);
int idx_drop_note(struct idx *x, MDB_txn *txn, const char *key, bool bad);
int idx_drops_get(struct idx *x, MDB_txn *txn, uint64_t *out);
int idx_drops_since(struct idx *x, MDB_txn *txn, uint64_t since,
		    int (*fn)(void *arg, const char *key, bool bad),
		    void *arg);

/* Pure: 0 and *out (reason NUL-terminated), or -EBADMSG. */
int idx_fail_decode(const void *val, size_t len, struct idx_fail *out);
/* Failure backoff entries: 0 / -ENOENT / -EBADMSG (get) / -errno. */
int idx_fail_get(struct idx *x, MDB_txn *txn, const char *key, uint64_t fp,
		 struct idx_fail *out);
int idx_fail_put(struct idx *x, MDB_txn *txn, const char *key, uint64_t fp,
		 const struct idx_fail *f);
int idx_fail_del(struct idx *x, MDB_txn *txn, const char *key, uint64_t fp);
/* Every entry of key (evict DIGEST), of every blob (SIGHUP). */
int idx_fails_del_blob(struct idx *x, MDB_txn *txn, const char *key);
int idx_fails_clear(struct idx *x, MDB_txn *txn);
/* Drops entries that ended before before_ms (wall). Returns 0 or -errno. */
int idx_fails_prune(struct idx *x, MDB_txn *txn, int64_t before_ms);

/* Start time of pid from /proc/<pid>/stat; 0 when the process is gone. */
uint64_t idx_proc_start(pid_t pid);
/* True when the lease's process still runs (same pid, same start time). */
bool idx_lease_alive(const struct idx_lease *l);

#endif
