/*
 * inode.c - the inode table: stable numbers for (kind, project, name, ref).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs_int.h"

#define FS_INODES_MIN_BUCKETS 1024

static uint64_t key_hash(enum fs_kind kind, const char *project,
			 const char *name, const char *ref)
{
	/* FNV-1a over the parts with separators; inputs are short names. */
	uint64_t h = 1469598103934665603ULL;
	const char *parts[3] = { project, name, ref };

	h = (h ^ (uint64_t)kind) * 1099511628211ULL;
	for (int i = 0; i < 3; i++) {
		const char *p = parts[i] ? parts[i] : "";

		for (; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ULL;
		h = (h ^ 0xff) * 1099511628211ULL;
	}
	return h;
}

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static void inode_free(struct fs_inode *n)
{
	if (!n)
		return;
	free(n->project);
	free(n->name);
	free(n->ref);
	free(n);
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

/* Appends n to the table; lock held. Returns 0 or -ENOMEM. */
static int table_add(struct fs_inodes *t, struct fs_inode *n)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		struct fs_inode **v = realloc(t->by_ino, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->by_ino = v;
		t->cap = cap;
	}
	if (t->n >= t->nbuckets) {
		size_t nb = t->nbuckets * 2;
		struct fs_inode **b = calloc(nb, sizeof(*b));

		if (!b)
			return -ENOMEM;
		for (size_t i = 0; i < t->n; i++) {
			struct fs_inode *e = t->by_ino[i];
			size_t k = key_hash(e->kind, e->project, e->name, e->ref) % nb;

			e->hash_next = b[k];
			b[k] = e;
		}
		free(t->buckets);
		t->buckets = b;
		t->nbuckets = nb;
	}
	n->ino = t->n + 1;
	t->by_ino[t->n++] = n;
	{
		size_t k = key_hash(n->kind, n->project, n->name, n->ref) % t->nbuckets;

		n->hash_next = t->buckets[k];
		t->buckets[k] = n;
	}
	return 0;
}

int fs_inodes_init(struct fs_inodes *t)
{
	struct fs_inode *root;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = FS_INODES_MIN_BUCKETS;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	root = calloc(1, sizeof(*root));
	if (!t->buckets || !root) {
		free(root);
		fs_inodes_release(t);
		return -ENOMEM;
	}
	root->kind = FS_ROOT;
	if (table_add(t, root) < 0) {
		free(root);
		fs_inodes_release(t);
		return -ENOMEM;
	}
	return 0;
}

void fs_inodes_release(struct fs_inodes *t)
{
	for (size_t i = 0; i < t->n; i++)
		inode_free(t->by_ino[i]);
	free(t->by_ino);
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

struct fs_inode *fs_inodes_get(struct fs_inodes *t, enum fs_kind kind,
			       const char *project, const char *name,
			       const char *ref)
{
	struct fs_inode *n;
	bool oom = false;
	uint64_t h = key_hash(kind, project, name, ref);

	if (kind == FS_ROOT)
		return fs_inodes_find(t, 1);
	pthread_mutex_lock(&t->lock);
	for (n = t->buckets[h % t->nbuckets]; n; n = n->hash_next) {
		if (n->kind == kind && str_eq(n->project, project) &&
		    str_eq(n->name, name) && str_eq(n->ref, ref))
			goto out_unlock;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto out_unlock;
	n->kind = kind;
	n->project = dup_or_null(project, &oom);
	n->name = dup_or_null(name, &oom);
	n->ref = dup_or_null(ref, &oom);
	if (oom || table_add(t, n) < 0) {
		inode_free(n);
		n = NULL;
	}
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct fs_inode *fs_inodes_find(struct fs_inodes *t, uint64_t ino)
{
	struct fs_inode *n = NULL;

	pthread_mutex_lock(&t->lock);
	if (ino >= 1 && ino <= t->n)
		n = t->by_ino[ino - 1];
	pthread_mutex_unlock(&t->lock);
	return n;
}
