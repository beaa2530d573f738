/*
 * inode.c - the inode table (fs_int.h): numbers for (kind, project, name,
 * ref) that the kernel holds, with FUSE lookup counts, forgotten when the
 * kernel forgets them; numbers never reused.
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

static uint64_t ino_hash(uint64_t ino)
{
	/* Numbers are consecutive: a multiplicative hash spreads them. */
	return ino * 0x9e3779b97f4a7c15ULL >> 17;
}

static size_t key_bucket(const struct fs_inodes *t, const struct fs_inode *n)
{
	return key_hash(n->kind, n->project, n->name, n->ref) % t->nbuckets;
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

/* Rehashes both chains into nb buckets; lock held. Returns 0 or -ENOMEM. */
static int table_resize(struct fs_inodes *t, size_t nb)
{
	struct fs_inode **bk = calloc(nb, sizeof(*bk));
	struct fs_inode **bi = calloc(nb, sizeof(*bi));
	size_t old = t->nbuckets;

	if (!bk || !bi) {
		free(bk);
		free(bi);
		return -ENOMEM;
	}
	t->nbuckets = nb;
	for (size_t i = 0; i < old; i++) {
		struct fs_inode *e = t->by_ino[i], *next;

		for (; e; e = next) {
			size_t k = key_bucket(t, e), j = ino_hash(e->ino) % nb;

			next = e->ino_next;
			if (!e->retired) {	/* a retired one: by number only */
				e->key_next = bk[k];
				bk[k] = e;
			}
			e->ino_next = bi[j];
			bi[j] = e;
		}
	}
	free(t->by_key);
	free(t->by_ino);
	t->by_key = bk;
	t->by_ino = bi;
	return 0;
}

/* Gives n the next number and links it; lock held. 0 or -ENOMEM. */
static int table_add(struct fs_inodes *t, struct fs_inode *n)
{
	size_t k, j;

	/* Grow at a load of 1; a failed grow only makes chains longer. */
	if (t->n >= t->nbuckets)
		(void)table_resize(t, t->nbuckets * 2);
	n->ino = t->next_ino++;
	k = key_bucket(t, n);
	j = ino_hash(n->ino) % t->nbuckets;
	n->key_next = t->by_key[k];
	t->by_key[k] = n;
	n->ino_next = t->by_ino[j];
	t->by_ino[j] = n;
	t->n++;
	return 0;
}

/* Unlinks n from both chains and frees it; lock held. */
static void table_remove(struct fs_inodes *t, struct fs_inode *n)
{
	struct fs_inode **pp;

	for (pp = &t->by_key[key_bucket(t, n)]; *pp; pp = &(*pp)->key_next)
		if (*pp == n) {
			*pp = n->key_next;
			break;
		}
	for (pp = &t->by_ino[ino_hash(n->ino) % t->nbuckets]; *pp;
	     pp = &(*pp)->ino_next)
		if (*pp == n) {
			*pp = n->ino_next;
			break;
		}
	t->n--;
	inode_free(n);
}

/* Frees n if nothing holds it any more; lock held. */
static void maybe_remove(struct fs_inodes *t, struct fs_inode *n)
{
	if (n != t->root && n->nlookup == 0 && n->refs == 0)
		table_remove(t, n);
}

int fs_inodes_init(struct fs_inodes *t)
{
	struct fs_inode *root;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = FS_INODES_MIN_BUCKETS;
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	root = calloc(1, sizeof(*root));
	if (!t->by_key || !t->by_ino || !root) {
		free(root);
		fs_inodes_release(t);
		return -ENOMEM;
	}
	root->kind = FS_ROOT;
	root->nlookup = 1;	/* the kernel holds the root while mounted */
	t->next_ino = 1;	/* FUSE_ROOT_ID */
	table_add(t, root);
	t->root = root;
	return 0;
}

void fs_inodes_release(struct fs_inodes *t)
{
	for (size_t i = 0; t->by_ino && i < t->nbuckets; i++) {
		struct fs_inode *e = t->by_ino[i], *next;

		for (; e; e = next) {
			next = e->ino_next;
			inode_free(e);
		}
	}
	free(t->by_key);
	free(t->by_ino);
	pthread_mutex_destroy(&t->lock);
	memset(t, 0, sizeof(*t));
}

/* The inode for the key, or NULL; lock held. */
static struct fs_inode *find_key(struct fs_inodes *t, enum fs_kind kind,
				 const char *project, const char *name,
				 const char *ref)
{
	struct fs_inode *n;
	uint64_t h = key_hash(kind, project, name, ref);

	for (n = t->by_key[h % t->nbuckets]; n; n = n->key_next)
		if (n->kind == kind && str_eq(n->project, project) &&
		    str_eq(n->name, name) && str_eq(n->ref, ref))
			return n;
	return NULL;
}

struct fs_inode *fs_inodes_get(struct fs_inodes *t, enum fs_kind kind,
			       const char *project, const char *name,
			       const char *ref)
{
	struct fs_inode *n;
	bool oom = false;

	if (kind == FS_ROOT)
		return fs_inodes_find(t, 1);
	pthread_mutex_lock(&t->lock);
	n = find_key(t, kind, project, name, ref);
	if (n) {
		n->refs++;
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
		goto out_unlock;
	}
	n->refs = 1;
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct fs_inode *fs_inodes_find(struct fs_inodes *t, uint64_t ino)
{
	struct fs_inode *n;

	pthread_mutex_lock(&t->lock);
	for (n = t->by_ino[ino_hash(ino) % t->nbuckets]; n; n = n->ino_next)
		if (n->ino == ino) {
			n->refs++;
			break;
		}
	pthread_mutex_unlock(&t->lock);
	return n;
}

uint64_t fs_inodes_number(struct fs_inodes *t, enum fs_kind kind,
			  const char *project, const char *name,
			  const char *ref)
{
	struct fs_inode *n;
	uint64_t ino = 0;

	if (kind == FS_ROOT)
		return 1;
	pthread_mutex_lock(&t->lock);
	n = find_key(t, kind, project, name, ref);
	if (n)
		ino = n->ino;
	pthread_mutex_unlock(&t->lock);
	return ino;
}

void fs_inode_hold(struct fs_inodes *t, struct fs_inode *n)
{
	pthread_mutex_lock(&t->lock);
	n->refs++;
	pthread_mutex_unlock(&t->lock);
}

void fs_inode_put(struct fs_inodes *t, struct fs_inode *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&t->lock);
	if (n->refs > 0)
		n->refs--;
	maybe_remove(t, n);
	pthread_mutex_unlock(&t->lock);
}

void fs_inode_lookup(struct fs_inodes *t, struct fs_inode *n)
{
	pthread_mutex_lock(&t->lock);
	n->nlookup++;
	pthread_mutex_unlock(&t->lock);
}

void fs_inodes_forget(struct fs_inodes *t, uint64_t ino, uint64_t nlookup)
{
	struct fs_inode *n;

	if (ino == 1)
		return;
	pthread_mutex_lock(&t->lock);
	for (n = t->by_ino[ino_hash(ino) % t->nbuckets]; n; n = n->ino_next)
		if (n->ino == ino)
			break;
	if (n) {
		n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
		maybe_remove(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

size_t fs_inodes_count(struct fs_inodes *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->n;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void fs_inodes_foreach(struct fs_inodes *t,
		       void (*fn)(void *arg, const struct fs_inode *n),
		       void *arg)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct fs_inode *e = t->by_ino[i]; e; e = e->ino_next)
			if (e->nlookup > 0)
				fn(arg, e);
	pthread_mutex_unlock(&t->lock);
}

int fs_inodes_restore(struct fs_inodes *t, uint64_t ino, enum fs_kind kind,
		      const char *project, const char *name, const char *ref,
		      uint64_t nlookup, struct fs_inode **out)
{
	struct fs_inode *n;
	bool oom = false;
	uint64_t next;

	if (ino == 0)
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	if (ino == 1) {
		n = t->root;
		goto out_found;
	}
	for (n = t->by_ino[ino_hash(ino) % t->nbuckets]; n; n = n->ino_next)
		if (n->ino == ino)
			break;
	if (n || find_key(t, kind, project, name, ref)) {
		pthread_mutex_unlock(&t->lock);
		return -EEXIST;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	n->kind = kind;
	n->project = dup_or_null(project, &oom);
	n->name = dup_or_null(name, &oom);
	n->ref = dup_or_null(ref, &oom);
	if (oom) {
		inode_free(n);
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	/* table_add numbers from next_ino: give it this one, keep the max. */
	next = t->next_ino;
	t->next_ino = ino;
	table_add(t, n);
	t->next_ino = next > ino + 1 ? next : ino + 1;
	n->nlookup = nlookup;
out_found:
	*out = n;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

uint64_t fs_inodes_next(struct fs_inodes *t)
{
	uint64_t n;

	pthread_mutex_lock(&t->lock);
	n = t->next_ino;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void fs_inodes_set_next(struct fs_inodes *t, uint64_t next)
{
	pthread_mutex_lock(&t->lock);
	if (t->next_ino < next)
		t->next_ino = next;
	pthread_mutex_unlock(&t->lock);
}

void fs_inodes_retire(struct fs_inodes *t, struct fs_inode *n)
{
	struct fs_inode **pp;

	pthread_mutex_lock(&t->lock);
	if (n->retired || n == t->root)
		goto out_unlock;
	for (pp = &t->by_key[key_bucket(t, n)]; *pp; pp = &(*pp)->key_next) {
		if (*pp == n) {
			*pp = n->key_next;
			break;
		}
	}
	n->key_next = NULL;
	n->retired = true;
out_unlock:
	pthread_mutex_unlock(&t->lock);
}

size_t fs_inodes_blobs(struct fs_inodes *t, const char *digest, uint64_t *out,
		       size_t max)
{
	size_t found = 0;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (const struct fs_inode *n = t->by_ino[i]; n;
		     n = n->ino_next) {
			if (n->kind != FS_BLOB ||
			    (digest && !str_eq(n->ref, digest)))
				continue;
			if (found < max)
				out[found] = n->ino;
			found++;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return found;
}
