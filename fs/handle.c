/*
 * handle.c - the table of open handles (see fs_int.h): ids in fi->fh,
 * references held by requests in flight, deferred free on release.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs_int.h"

#define FS_HANDLE_BUCKETS 4096

struct fs_hent {
	uint64_t id;
	void *obj;
	void (*free_fn)(void *obj);
	unsigned refs;		/* guarded by the table lock */
	bool closed;		/* guarded by the table lock */
	struct fs_hent *next;	/* guarded by the table lock */
};

int fs_handles_init(struct fs_handles *t)
{
	t->buckets = calloc(FS_HANDLE_BUCKETS, sizeof(*t->buckets));
	if (!t->buckets)
		return -ENOMEM;
	t->nbuckets = FS_HANDLE_BUCKETS;
	t->next_id = 1;
	pthread_mutex_init(&t->lock, NULL);
	return 0;
}

void fs_handles_release_all(struct fs_handles *t)
{
	if (!t->buckets)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct fs_hent *e = t->buckets[i];

		while (e) {
			struct fs_hent *next = e->next;

			e->free_fn(e->obj);
			free(e);
			e = next;
		}
	}
	free(t->buckets);
	t->buckets = NULL;
	pthread_mutex_destroy(&t->lock);
}

uint64_t fs_handles_add(struct fs_handles *t, void *obj,
			void (*free_fn)(void *obj))
{
	struct fs_hent *e = calloc(1, sizeof(*e));
	size_t b;

	if (!e)
		return 0;
	e->obj = obj;
	e->free_fn = free_fn;
	pthread_mutex_lock(&t->lock);
	e->id = t->next_id++;
	b = e->id % t->nbuckets;
	e->next = t->buckets[b];
	t->buckets[b] = e;
	pthread_mutex_unlock(&t->lock);
	return e->id;
}

/* Lock held. */
static struct fs_hent *find(struct fs_handles *t, uint64_t id,
			    struct fs_hent ***link)
{
	struct fs_hent **pp = &t->buckets[id % t->nbuckets];

	for (; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			if (link)
				*link = pp;
			return *pp;
		}
	}
	return NULL;
}

void *fs_handles_get(struct fs_handles *t, uint64_t id)
{
	struct fs_hent *e;
	void *obj = NULL;

	pthread_mutex_lock(&t->lock);
	e = find(t, id, NULL);
	if (e && !e->closed) {
		e->refs++;
		obj = e->obj;
	}
	pthread_mutex_unlock(&t->lock);
	return obj;
}

/* Unlinks e and frees it if nothing holds it; lock held, then dropped. */
static void drop_locked(struct fs_handles *t, struct fs_hent *e,
			struct fs_hent **link)
{
	bool free_now = e->closed && e->refs == 0;

	if (free_now)
		*link = e->next;
	pthread_mutex_unlock(&t->lock);
	if (free_now) {
		e->free_fn(e->obj);
		free(e);
	}
}

void fs_handles_put(struct fs_handles *t, uint64_t id)
{
	struct fs_hent **link, *e;

	pthread_mutex_lock(&t->lock);
	e = find(t, id, &link);
	if (!e) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (e->refs > 0)
		e->refs--;
	drop_locked(t, e, link);
}

void fs_handles_close(struct fs_handles *t, uint64_t id)
{
	struct fs_hent **link, *e;

	pthread_mutex_lock(&t->lock);
	e = find(t, id, &link);
	if (!e || e->closed) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	e->closed = true;
	drop_locked(t, e, link);
}

void fs_handles_foreach(struct fs_handles *t,
			void (*fn)(void *arg, uint64_t id, void *obj,
				   void (*free_fn)(void *obj)),
			void *arg)
{
	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct fs_hent *e = t->buckets[i]; e; e = e->next)
			if (!e->closed)
				fn(arg, e->id, e->obj, e->free_fn);
	pthread_mutex_unlock(&t->lock);
}

uint64_t fs_handles_next_id(struct fs_handles *t)
{
	uint64_t id;

	pthread_mutex_lock(&t->lock);
	id = t->next_id;
	pthread_mutex_unlock(&t->lock);
	return id;
}

int fs_handles_restore(struct fs_handles *t, uint64_t id, void *obj,
		       void (*free_fn)(void *obj))
{
	struct fs_hent *e;
	size_t b;

	if (id == 0)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->id = id;
	e->obj = obj;
	e->free_fn = free_fn;
	pthread_mutex_lock(&t->lock);
	if (find(t, id, NULL)) {
		pthread_mutex_unlock(&t->lock);
		free(e);
		return -EEXIST;
	}
	b = id % t->nbuckets;
	e->next = t->buckets[b];
	t->buckets[b] = e;
	if (t->next_id <= id)
		t->next_id = id + 1;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void fs_handles_set_next_id(struct fs_handles *t, uint64_t id)
{
	pthread_mutex_lock(&t->lock);
	if (t->next_id < id)
		t->next_id = id;
	pthread_mutex_unlock(&t->lock);
}
