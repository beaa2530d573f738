/*
 * docs.c - opaque documents of other rooms in the index (cache.h
 * cache_doc_*): the "docs" database, one key per name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "cache_int.h"

#define DOC_NAME_MAX	255

static int doc_key(const char *name, MDB_val *k)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > DOC_NAME_MAX)
		return -EINVAL;
	k->mv_data = (void *)name;
	k->mv_size = n;
	return 0;
}

int cache_doc_put(struct cache *c, const char *name, const void *buf,
		  size_t len)
{
	MDB_val k, v = { .mv_size = len, .mv_data = (void *)buf };
	MDB_txn *txn;
	int rc;

	if (doc_key(name, &k) < 0 || len > CACHE_DOC_MAX)
		return -EINVAL;
	rc = idx_begin(&c->idx, true, &txn);
	if (rc < 0)
		return rc;
	rc = idx_err(mdb_put(txn, c->idx.docs, &k, &v, 0));
	if (rc < 0) {
		idx_abort(txn);
		return rc;
	}
	return idx_commit(txn);
}

int cache_doc_get(struct cache *c, const char *name, char **buf, size_t *len)
{
	MDB_val k, v;
	MDB_txn *txn;
	char *p;
	int rc;

	*buf = NULL;
	*len = 0;
	if (doc_key(name, &k) < 0)
		return -EINVAL;
	rc = idx_begin(&c->idx, false, &txn);
	if (rc < 0)
		return rc;
	rc = idx_err(mdb_get(txn, c->idx.docs, &k, &v));
	if (rc == 0) {
		/* LMDB values live only inside the transaction: copy. */
		p = malloc(v.mv_size + 1);
		if (!p) {
			rc = -ENOMEM;
		} else {
			memcpy(p, v.mv_data, v.mv_size);
			p[v.mv_size] = '\0';
			*buf = p;
			*len = v.mv_size;
		}
	}
	idx_abort(txn);
	return rc;
}

int cache_doc_del(struct cache *c, const char *name)
{
	MDB_txn *txn;
	MDB_val k;
	int rc;

	if (doc_key(name, &k) < 0)
		return -EINVAL;
	rc = idx_begin(&c->idx, true, &txn);
	if (rc < 0)
		return rc;
	rc = idx_err(mdb_del(txn, c->idx.docs, &k, NULL));
	if (rc < 0) {
		idx_abort(txn);
		return rc;
	}
	return idx_commit(txn);
}

int cache_doc_names(struct cache *c, const char *prefix,
		    int (*fn)(void *arg, const char *name), void *arg)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	char name[DOC_NAME_MAX + 1];
	MDB_cursor *cur;
	MDB_val k = { .mv_size = plen, .mv_data = (void *)prefix }, v;
	MDB_txn *txn;
	int rc, mrc;

	rc = idx_begin(&c->idx, false, &txn);
	if (rc < 0)
		return rc;
	rc = idx_err(mdb_cursor_open(txn, c->idx.docs, &cur));
	if (rc < 0) {
		idx_abort(txn);
		return rc;
	}
	mrc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) :
		     mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (; mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (k.mv_size > DOC_NAME_MAX)
			continue;
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		rc = fn(arg, name);
		if (rc)
			break;
	}
	if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
		rc = idx_err(mrc);
	mdb_cursor_close(cur);
	idx_abort(txn);
	return rc;
}
