/*
 * index.c - the LMDB index of the cache (see index_int.h for the layout).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../policy/af.h"
#include "cache.h"
#include "index_int.h"

/* 1 GiB of address space: a record is ~1 KiB, a chunk entry ~150 bytes. */
#define IDX_MAP_SIZE	((size_t)1 << 30)
#define IDX_KEY_MAX	256
/* Fixed part of a version 1 record; version 2 adds the generation. */
#define IDX_REC_FIXED_V1	(4 + 4 + 1 + 8 + 8 + 8 + 8 + 4 + 2 + 2 + 4)
#define IDX_REC_FIXED		(IDX_REC_FIXED_V1 + 8)
/* A lease as version 1 wrote it (no heartbeat). */
#define IDX_LEASE_V1_SIZE	24

int idx_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	default:
		if (rc > 0 && rc < 4096)
			return -rc;
		af_err("cache index: %s", mdb_strerror(rc));
		return -EIO;
	}
}

int idx_open(struct idx *x, const char *dir)
{
	MDB_txn *txn = NULL;
	int rc;

	memset(x, 0, sizeof(*x));
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		rc = -errno;
		af_err("cache index: %s: %s", dir, strerror(errno));
		return rc;
	}
	rc = mdb_env_create(&x->env);
	if (rc)
		return idx_err(rc);
	mdb_env_set_userctx(x->env, x);
	rc = mdb_env_set_maxdbs(x->env, 8);
	if (!rc)
		rc = mdb_env_set_mapsize(x->env, IDX_MAP_SIZE);
	if (!rc)
		rc = mdb_env_set_maxreaders(x->env, 254);
	if (!rc)
		rc = mdb_env_open(x->env, dir, MDB_NOTLS | MDB_NOMETASYNC, 0640);
	if (rc) {
		af_err("cache index: %s: %s", dir, mdb_strerror(rc));
		goto out_env;
	}
	/* Clears reader slots left by crashed processes. */
	mdb_reader_check(x->env, NULL);
	rc = mdb_txn_begin(x->env, NULL, 0, &txn);
	if (!rc)
		rc = mdb_dbi_open(txn, "blobs", MDB_CREATE, &x->blobs);
	if (!rc)
		rc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &x->chunks);
	if (!rc)
		rc = mdb_dbi_open(txn, "leases", MDB_CREATE, &x->leases);
	if (!rc)
		rc = mdb_dbi_open(txn, "fails", MDB_CREATE, &x->fails);
	if (!rc)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &x->meta);
	if (!rc)
		rc = mdb_dbi_open(txn, "docs", MDB_CREATE, &x->docs);
	if (rc) {
		mdb_txn_abort(txn);
		af_err("cache index: %s: %s", dir, mdb_strerror(rc));
		goto out_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc) {
		af_err("cache index: %s: %s", dir, mdb_strerror(rc));
		goto out_env;
	}
	return 0;

out_env:
	mdb_env_close(x->env);
	x->env = NULL;
	return idx_err(rc);
}

void idx_close(struct idx *x)
{
	if (!x->env)
		return;
	mdb_env_close(x->env);
	x->env = NULL;
}

int idx_begin(struct idx *x, bool write, MDB_txn **txn)
{
	int rc = mdb_txn_begin(x->env, NULL, write ? 0 : MDB_RDONLY, txn);

	if (rc == 0 && write) {
		__atomic_store_n(&x->wthread, (unsigned long)pthread_self(),
				 __ATOMIC_RELAXED);
		__atomic_store_n(&x->wtxn, *txn, __ATOMIC_RELEASE);
	}
	return idx_err(rc);
}

/* Forgets txn as this process's write txn (before it ends). */
static void idx_txn_ending(MDB_txn *txn)
{
	struct idx *x = mdb_env_get_userctx(mdb_txn_env(txn));

	if (x && __atomic_load_n(&x->wtxn, __ATOMIC_ACQUIRE) == txn)
		__atomic_store_n(&x->wtxn, NULL, __ATOMIC_RELEASE);
}

bool idx_write_held(struct idx *x)
{
	return __atomic_load_n(&x->wtxn, __ATOMIC_ACQUIRE) != NULL &&
	       __atomic_load_n(&x->wthread, __ATOMIC_RELAXED) ==
	       (unsigned long)pthread_self();
}

/*
 * LMDB answers EIO when a page write comes out short, which is how a full
 * filesystem often shows (issue 11): call it ENOSPC when the index's
 * filesystem has less than a MiB left, so callers treat it as local space
 * trouble (DESIGN §6: no backoff, partial data dropped).
 */
static bool idx_fs_full(MDB_env *env)
{
	const char *path = NULL;
	struct statvfs sv;

	if (mdb_env_get_path(env, &path) || !path || statvfs(path, &sv) != 0)
		return false;
	return (uint64_t)sv.f_bavail * sv.f_frsize < ((uint64_t)1 << 20);
}

int idx_commit(MDB_txn *txn)
{
	MDB_env *env = mdb_txn_env(txn);
	int rc;

	af_hook("idx.commit");	/* inside the write txn: nothing committed */
	idx_txn_ending(txn);
	rc = mdb_txn_commit(txn);
	if (rc == EIO && idx_fs_full(env))
		rc = ENOSPC;
	return idx_err(rc);
}

void idx_abort(MDB_txn *txn)
{
	if (!txn)
		return;
	idx_txn_ending(txn);
	mdb_txn_abort(txn);
}

void idx_rec_release(struct idx_rec *r)
{
	free(r->json);
	r->json = NULL;
}

/* Bounds-checked little cursor over a record value (STYLE.md). */
struct cur {
	unsigned char *p;
	size_t len;
	size_t pos;
	bool bad;
};

static void cur_put(struct cur *c, const void *v, size_t n)
{
	if (c->bad || c->len - c->pos < n) {
		c->bad = true;
		return;
	}
	if (n)
		memcpy(c->p + c->pos, v, n);
	c->pos += n;
}

static void cur_get(struct cur *c, void *v, size_t n)
{
	if (c->bad || c->len - c->pos < n) {
		c->bad = true;
		memset(v, 0, n);
		return;
	}
	if (n)
		memcpy(v, c->p + c->pos, n);
	c->pos += n;
}

static void key_val(MDB_val *k, const char *key)
{
	k->mv_data = (void *)key;
	k->mv_size = strlen(key);
}

int idx_rec_decode(const void *val, size_t len, struct idx_rec *out,
		   bool want_json)
{
	struct cur c = { .p = (unsigned char *)val, .len = len };
	uint32_t version;
	uint8_t size_known;
	uint16_t plen, nlen;
	uint32_t jlen;

	memset(out, 0, sizeof(*out));
	cur_get(&c, &version, sizeof(version));
	if (c.bad || version < 1 || version > IDX_REC_VERSION)
		return -EBADMSG;
	cur_get(&c, &out->state, sizeof(out->state));
	cur_get(&c, &size_known, sizeof(size_known));
	out->size_known = size_known != 0;
	cur_get(&c, &out->size, sizeof(out->size));
	cur_get(&c, &out->chunk_size, sizeof(out->chunk_size));
	cur_get(&c, &out->verified_at, sizeof(out->verified_at));
	cur_get(&c, &out->last_access, sizeof(out->last_access));
	cur_get(&c, &out->last_err, sizeof(out->last_err));
	if (version >= 2)
		cur_get(&c, &out->gen, sizeof(out->gen));
	cur_get(&c, &plen, sizeof(plen));
	cur_get(&c, &nlen, sizeof(nlen));
	cur_get(&c, &jlen, sizeof(jlen));
	if (c.bad || out->state > CACHE_QUARANTINED ||
	    plen >= sizeof(out->project) || nlen >= sizeof(out->name))
		goto out_bad;
	cur_get(&c, out->project, plen);
	cur_get(&c, out->name, nlen);
	if (c.bad || c.len - c.pos != jlen)
		goto out_bad;
	if (want_json && jlen) {
		out->json = malloc((size_t)jlen + 1);
		if (!out->json)
			return -ENOMEM;
		cur_get(&c, out->json, jlen);
		out->json[jlen] = '\0';
	}
	return 0;

out_bad:
	memset(out, 0, sizeof(*out));
	return -EBADMSG;
}

/* The snapshot's bytes as stored: none when absurdly large. */
static size_t rec_json_len(const struct idx_rec *r)
{
	size_t jl = r->json ? strlen(r->json) : 0;

	return jl > 1u << 20 ? 0 : jl;
}

size_t idx_rec_size(const struct idx_rec *r)
{
	return IDX_REC_FIXED + strnlen(r->project, sizeof(r->project) - 1) +
	       strnlen(r->name, sizeof(r->name) - 1) + rec_json_len(r);
}

int idx_rec_encode(const struct idx_rec *r, void *buf, size_t len)
{
	uint32_t version = IDX_REC_VERSION;
	uint8_t size_known = r->size_known;
	size_t pl = strnlen(r->project, sizeof(r->project) - 1);
	size_t nl = strnlen(r->name, sizeof(r->name) - 1);
	size_t jl = rec_json_len(r);
	uint16_t plen = (uint16_t)pl, nlen = (uint16_t)nl;
	uint32_t jlen = (uint32_t)jl;
	struct cur c = { .p = buf, .len = len };

	cur_put(&c, &version, sizeof(version));
	cur_put(&c, &r->state, sizeof(r->state));
	cur_put(&c, &size_known, sizeof(size_known));
	cur_put(&c, &r->size, sizeof(r->size));
	cur_put(&c, &r->chunk_size, sizeof(r->chunk_size));
	cur_put(&c, &r->verified_at, sizeof(r->verified_at));
	cur_put(&c, &r->last_access, sizeof(r->last_access));
	cur_put(&c, &r->last_err, sizeof(r->last_err));
	cur_put(&c, &r->gen, sizeof(r->gen));
	cur_put(&c, &plen, sizeof(plen));
	cur_put(&c, &nlen, sizeof(nlen));
	cur_put(&c, &jlen, sizeof(jlen));
	cur_put(&c, r->project, pl);
	cur_put(&c, r->name, nl);
	cur_put(&c, r->json, jl);
	return c.bad || c.pos != len ? -EINVAL : 0;
}

int idx_rec_get(struct idx *x, MDB_txn *txn, const char *key,
		struct idx_rec *out, bool want_json)
{
	MDB_val k, v;
	int rc;

	memset(out, 0, sizeof(*out));
	key_val(&k, key);
	rc = mdb_get(txn, x->blobs, &k, &v);
	if (rc)
		return idx_err(rc);
	rc = idx_rec_decode(v.mv_data, v.mv_size, out, want_json);
	if (rc == -EBADMSG)
		af_warn("cache index: %s: record does not decode", key);
	return rc;
}

int idx_rec_put(struct idx *x, MDB_txn *txn, const char *key,
		const struct idx_rec *r)
{
	MDB_val k, v;
	int rc;

	key_val(&k, key);
	v.mv_size = idx_rec_size(r);
	v.mv_data = NULL;
	rc = mdb_put(txn, x->blobs, &k, &v, MDB_RESERVE);
	if (rc)
		return idx_err(rc);
	return idx_rec_encode(r, v.mv_data, v.mv_size) ? -EIO : 0;
}

static int chunk_key(unsigned char *buf, size_t len, const char *key,
		     uint64_t i, MDB_val *k)
{
	size_t kl = strlen(key);
	int b;

	if (kl + 8 > len)
		return -ENAMETOOLONG;
	memcpy(buf, key, kl);
	for (b = 0; b < 8; b++)
		buf[kl + (size_t)b] = (unsigned char)(i >> (56 - 8 * b));
	k->mv_data = buf;
	k->mv_size = kl + 8;
	return 0;
}

int idx_chunk_put(struct idx *x, MDB_txn *txn, const char *key, uint64_t i,
		  uint64_t xxh)
{
	unsigned char kb[IDX_KEY_MAX];
	MDB_val k, v = { .mv_size = sizeof(xxh), .mv_data = &xxh };
	int rc;

	rc = chunk_key(kb, sizeof(kb), key, i, &k);
	if (rc)
		return rc;
	return idx_err(mdb_put(txn, x->chunks, &k, &v, 0));
}

int idx_chunk_del(struct idx *x, MDB_txn *txn, const char *key, uint64_t i)
{
	unsigned char kb[IDX_KEY_MAX];
	MDB_val k;
	int rc;

	rc = chunk_key(kb, sizeof(kb), key, i, &k);
	if (rc)
		return rc;
	rc = mdb_del(txn, x->chunks, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

int idx_chunk_get(struct idx *x, MDB_txn *txn, const char *key, uint64_t i,
		  uint64_t *xxh)
{
	unsigned char kb[IDX_KEY_MAX];
	MDB_val k, v;
	int rc;

	rc = chunk_key(kb, sizeof(kb), key, i, &k);
	if (rc)
		return rc;
	rc = mdb_get(txn, x->chunks, &k, &v);
	if (rc)
		return idx_err(rc);
	if (v.mv_size != sizeof(*xxh))
		return -EBADMSG;
	memcpy(xxh, v.mv_data, sizeof(*xxh));
	return 0;
}

/*
 * Walks the chunk keys of key: they sort together because every key of one
 * digest is the digest string (fixed length per algorithm) + 8 bytes.
 */
static int chunks_walk(struct idx *x, MDB_txn *txn, const char *key,
		       bool del, int (*fn)(void *, uint64_t, uint64_t),
		       void *arg)
{
	unsigned char kb[IDX_KEY_MAX];
	size_t kl = strlen(key);
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, ret = 0;

	rc = chunk_key(kb, sizeof(kb), key, 0, &k);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, x->chunks, &cur);
	if (rc)
		return idx_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		uint64_t i = 0, xxh = 0;
		const unsigned char *p = k.mv_data;
		int b;

		if (k.mv_size != kl + 8 || memcmp(p, key, kl) != 0)
			break;
		for (b = 0; b < 8; b++)
			i = (i << 8) | p[kl + (size_t)b];
		if (v.mv_size == sizeof(xxh))
			memcpy(&xxh, v.mv_data, sizeof(xxh));
		if (del) {
			rc = mdb_cursor_del(cur, 0);
			if (rc)
				break;
		} else if (fn && v.mv_size == sizeof(xxh)) {
			/* One that does not decode counts as not recorded. */
			ret = fn(arg, i, xxh);
			if (ret)
				break;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (ret)
		return ret;
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

int idx_chunks_each(struct idx *x, MDB_txn *txn, const char *key,
		    int (*fn)(void *arg, uint64_t i, uint64_t xxh), void *arg)
{
	return chunks_walk(x, txn, key, false, fn, arg);
}

int idx_chunks_del(struct idx *x, MDB_txn *txn, const char *key)
{
	return chunks_walk(x, txn, key, true, NULL, NULL);
}

int idx_blob_del(struct idx *x, MDB_txn *txn, const char *key)
{
	MDB_val k;
	int rc, found;

	key_val(&k, key);
	rc = mdb_del(txn, x->blobs, &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return idx_err(rc);
	found = rc == 0;
	rc = idx_chunks_del(x, txn, key);
	if (rc)
		return rc;
	rc = idx_lease_del(x, txn, key);
	if (rc)
		return rc;
	return found ? 0 : -ENOENT;
}

int idx_lease_decode(const void *val, size_t len, struct idx_lease *out)
{
	memset(out, 0, sizeof(*out));
	/* A version 1 lease (pid, start, token) has no heartbeat: beat 0. */
	if (len != sizeof(*out) && len != IDX_LEASE_V1_SIZE)
		return -EBADMSG;
	memcpy(out, val, len);
	return 0;
}

int idx_lease_get(struct idx *x, MDB_txn *txn, const char *key,
		  struct idx_lease *out)
{
	MDB_val k, v;
	int rc;

	memset(out, 0, sizeof(*out));
	key_val(&k, key);
	rc = mdb_get(txn, x->leases, &k, &v);
	if (rc)
		return idx_err(rc);
	rc = idx_lease_decode(v.mv_data, v.mv_size, out);
	if (rc == -EBADMSG)
		af_warn("cache index: %s: lease does not decode", key);
	return rc;
}

int idx_lease_put(struct idx *x, MDB_txn *txn, const char *key,
		  const struct idx_lease *l)
{
	struct idx_lease copy;
	MDB_val k, v = { .mv_size = sizeof(copy), .mv_data = &copy };

	memset(&copy, 0, sizeof(copy));
	copy.pid = l->pid;
	copy.start = l->start;
	copy.token = l->token;
	copy.beat = l->beat;
	key_val(&k, key);
	return idx_err(mdb_put(txn, x->leases, &k, &v, 0));
}

int idx_lease_del(struct idx *x, MDB_txn *txn, const char *key)
{
	MDB_val k;
	int rc;

	key_val(&k, key);
	rc = mdb_del(txn, x->leases, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

static int meta_u64_get(struct idx *x, MDB_txn *txn, const char *name,
			uint64_t *out)
{
	MDB_val k, v;
	int rc;

	*out = 0;
	key_val(&k, name);
	rc = mdb_get(txn, x->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return idx_err(rc);
	if (v.mv_size != sizeof(*out))
		return -EIO;
	memcpy(out, v.mv_data, sizeof(*out));
	return 0;
}

static int meta_u64_put(struct idx *x, MDB_txn *txn, const char *name,
			uint64_t val)
{
	MDB_val k, v = { .mv_size = sizeof(val), .mv_data = &val };

	key_val(&k, name);
	return idx_err(mdb_put(txn, x->meta, &k, &v, 0));
}

int idx_gen_next(struct idx *x, MDB_txn *txn, uint64_t *out)
{
	uint64_t seq;
	int rc;

	rc = meta_u64_get(x, txn, "seq", &seq);
	if (rc)
		return rc;
	seq++;
	rc = meta_u64_put(x, txn, "seq", seq);
	if (rc)
		return rc;
	*out = seq;
	return 0;
}

int idx_drops_get(struct idx *x, MDB_txn *txn, uint64_t *out)
{
	return meta_u64_get(x, txn, "drops", out);
}

/* "drop" + big-endian n: the log entries sort in drop order. */
static void drop_key(unsigned char *buf, uint64_t n, MDB_val *k)
{
	memcpy(buf, "drop", 4);
	for (int b = 0; b < 8; b++)
		buf[4 + b] = (unsigned char)(n >> (56 - 8 * b));
	k->mv_data = buf;
	k->mv_size = 12;
}

int idx_drop_note(struct idx *x, MDB_txn *txn, const char *key, bool bad)
{
	unsigned char kb[12];
	char vb[IDX_KEY_MAX + 1];
	size_t kl = strlen(key);
	uint64_t n;
	MDB_val k, v;
	int rc;

	if (kl >= IDX_KEY_MAX)
		return -ENAMETOOLONG;

	rc = meta_u64_get(x, txn, "drops", &n);
	if (rc)
		return rc;
	n++;
	rc = meta_u64_put(x, txn, "drops", n);
	if (rc)
		return rc;
	drop_key(kb, n, &k);
	vb[0] = bad ? 'q' : 'e';
	memcpy(vb + 1, key, kl);
	v.mv_data = vb;
	v.mv_size = kl + 1;
	rc = idx_err(mdb_put(txn, x->meta, &k, &v, 0));
	if (rc || n <= IDX_DROP_LOG)
		return rc;
	/* Bounded: the oldest entry goes. */
	drop_key(kb, n - IDX_DROP_LOG, &k);
	rc = mdb_del(txn, x->meta, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

int idx_drops_since(struct idx *x, MDB_txn *txn, uint64_t since,
		    int (*fn)(void *arg, const char *key, bool bad),
		    void *arg)
{
	char key[IDX_KEY_MAX];
	unsigned char kb[12];
	uint64_t now, n;
	MDB_val k, v;
	int rc;

	rc = meta_u64_get(x, txn, "drops", &now);
	if (rc)
		return rc;
	if (since >= now)
		return 0;
	if (now - since > IDX_DROP_LOG)
		return -ERANGE;
	for (n = since + 1; n <= now; n++) {
		drop_key(kb, n, &k);
		rc = mdb_get(txn, x->meta, &k, &v);
		if (rc == MDB_NOTFOUND)
			return -ERANGE;
		if (rc)
			return idx_err(rc);
		if (v.mv_size < 2 || v.mv_size > sizeof(key))
			continue;
		memcpy(key, (const char *)v.mv_data + 1, v.mv_size - 1);
		key[v.mv_size - 1] = '\0';
		rc = fn(arg, key, ((const char *)v.mv_data)[0] == 'q');
		if (rc)
			return rc;
	}
	return 0;
}

/* A failure entry as stored: fixed fields, then the reason's bytes. */
struct fail_val {
	uint32_t count;
	int32_t err;
	int64_t until_ms;
};

int idx_fail_decode(const void *val, size_t len, struct idx_fail *out)
{
	struct fail_val fv;
	size_t rl;

	memset(out, 0, sizeof(*out));
	if (len < sizeof(fv))
		return -EBADMSG;
	memcpy(&fv, val, sizeof(fv));
	out->count = fv.count;
	out->err = fv.err;
	out->until_ms = fv.until_ms;
	rl = len - sizeof(fv);
	if (rl >= sizeof(out->reason))
		rl = sizeof(out->reason) - 1;
	memcpy(out->reason, (const unsigned char *)val + sizeof(fv), rl);
	out->reason[rl] = '\0';
	return 0;
}

int idx_fail_get(struct idx *x, MDB_txn *txn, const char *key, uint64_t fp,
		 struct idx_fail *out)
{
	unsigned char kb[IDX_KEY_MAX];
	MDB_val k, v;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = chunk_key(kb, sizeof(kb), key, fp, &k);
	if (rc)
		return rc;
	rc = mdb_get(txn, x->fails, &k, &v);
	if (rc)
		return idx_err(rc);
	rc = idx_fail_decode(v.mv_data, v.mv_size, out);
	if (rc == -EBADMSG)
		af_warn("cache index: %s: backoff entry does not decode", key);
	return rc;
}

int idx_fail_put(struct idx *x, MDB_txn *txn, const char *key, uint64_t fp,
		 const struct idx_fail *f)
{
	unsigned char kb[IDX_KEY_MAX], vb[sizeof(struct fail_val) +
					 sizeof(f->reason)];
	struct fail_val fv = { .count = f->count, .err = f->err,
			       .until_ms = f->until_ms };
	size_t rl = strnlen(f->reason, sizeof(f->reason) - 1);
	MDB_val k, v;
	int rc;

	rc = chunk_key(kb, sizeof(kb), key, fp, &k);
	if (rc)
		return rc;
	memcpy(vb, &fv, sizeof(fv));
	memcpy(vb + sizeof(fv), f->reason, rl);
	v.mv_data = vb;
	v.mv_size = sizeof(fv) + rl;
	return idx_err(mdb_put(txn, x->fails, &k, &v, 0));
}

int idx_fail_del(struct idx *x, MDB_txn *txn, const char *key, uint64_t fp)
{
	unsigned char kb[IDX_KEY_MAX];
	MDB_val k;
	int rc;

	rc = chunk_key(kb, sizeof(kb), key, fp, &k);
	if (rc)
		return rc;
	rc = mdb_del(txn, x->fails, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

int idx_fails_del_blob(struct idx *x, MDB_txn *txn, const char *key)
{
	unsigned char kb[IDX_KEY_MAX];
	size_t kl = strlen(key);
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	rc = chunk_key(kb, sizeof(kb), key, 0, &k);
	if (rc)
		return rc;
	rc = mdb_cursor_open(txn, x->fails, &cur);
	if (rc)
		return idx_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != kl + 8 || memcmp(k.mv_data, key, kl) != 0)
			break;
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		/* After a delete, MDB_NEXT gives the entry that followed. */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

int idx_fails_clear(struct idx *x, MDB_txn *txn)
{
	return idx_err(mdb_drop(txn, x->fails, 0));
}

int idx_fails_prune(struct idx *x, MDB_txn *txn, int64_t before_ms)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc;

	rc = mdb_cursor_open(txn, x->fails, &cur);
	if (rc)
		return idx_err(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (rc == 0) {
		struct fail_val fv;
		bool old = false;

		if (v.mv_size >= sizeof(fv)) {
			memcpy(&fv, v.mv_data, sizeof(fv));
			old = fv.until_ms < before_ms;
		}
		if (old) {
			rc = mdb_cursor_del(cur, 0);
			if (rc)
				break;
			/* After a delete, MDB_NEXT gives the entry that followed. */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		} else {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : idx_err(rc);
}

uint64_t idx_proc_start(pid_t pid)
{
	char path[64], buf[1024];
	const char *p;
	char *end;
	ssize_t n;
	int fd, field;
	uint64_t v;

	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold anything: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return 0;
	p++;
	/* After ")" comes field 3 (state); starttime is field 22. */
	for (field = 3; field < 22; field++) {
		while (*p == ' ')
			p++;
		while (*p && *p != ' ')
			p++;
		if (!*p)
			return 0;
	}
	while (*p == ' ')
		p++;
	errno = 0;
	v = strtoull(p, &end, 10);
	if (errno || end == p)
		return 0;
	/* A zombie is as good as dead: state 'Z' or 'X'. */
	p = strrchr(buf, ')') + 1;
	while (*p == ' ')
		p++;
	if (*p == 'Z' || *p == 'X')
		return 0;
	return v ? v : 1;
}

bool idx_lease_alive(const struct idx_lease *l)
{
	uint64_t start;

	if (l->pid <= 0)
		return false;
	start = idx_proc_start(l->pid);
	return start != 0 && start == l->start;
}
