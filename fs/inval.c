/*
 * inval.c - telling the kernel when a blob's verified bytes went away
 * (issue 10 item 5). The kernel may hold a blob's pages (keep_cache) or
 * its cache file (the passthrough backing file) after the cache dropped
 * it: quarantined by `cache verify`, evicted by `cache evict` or LRU, in
 * this process or another. Opens check the generation of the file they
 * get (open.c, the shared rule); this thread also tells the kernel at once
 * (fuse_lowlevel_notify_inval_inode) for every inode of a dropped blob, so
 * cached pages and attributes go before the next open.
 *
 * It learns of drops from the cache's drop generation (cache_generation,
 * cache_changes_since: every process's drops), checked when kicked (this
 * daemon's own drops through cache_on_drop, an open that saw the
 * generation move) and every FS_INVAL_POLL_MS. Notifications are sent from
 * this thread only, never from a FUSE worker answering a request. An open
 * that sees the generation move first marks, itself, the inodes whose
 * file was found bad (fs_inode.bad), so that open.c never lets a new open
 * share such a file (an intact evicted one may be shared: same bytes).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cache/cache.h"
#include "../policy/af.h"
#include "ops_int.h"

#define FS_INVAL_POLL_MS	2000
#define FS_INVAL_BATCH		256

struct inval_list {
	struct fs_ctx *ctx;
	uint64_t ino[FS_INVAL_BATCH];
	size_t n;
	bool all;		/* too many, or the log lost track: every blob */
};

/* Marks the inodes of inos as holding a file found bad (pt_lock). */
static void mark_bad(struct fs_ctx *ctx, const uint64_t *ino, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fs_inode *node = fs_inodes_find(&ctx->inodes, ino[i]);

		if (!node)
			continue;	/* forgotten meanwhile */
		pthread_mutex_lock(&ctx->pt_lock);
		node->bad = true;
		pthread_mutex_unlock(&ctx->pt_lock);
		fs_inode_put(&ctx->inodes, node);
	}
}

static int mark_one(void *arg, const struct pol_digest *d, bool bad)
{
	struct fs_ctx *ctx = arg;
	uint64_t ino[FS_INVAL_BATCH];
	size_t got;

	if (!bad)
		return 0;	/* dropped intact: open fds still read right */
	got = fs_inodes_blobs(&ctx->inodes, d->str, ino, FS_INVAL_BATCH);
	if (got > FS_INVAL_BATCH)
		return 1;	/* too many: mark every blob */
	mark_bad(ctx, ino, got);
	return 0;
}

/*
 * Marks, before an open goes on, the inodes whose kernel-held file was
 * found bad by any process since the last look (open.c then gives their
 * next open a fresh inode). Serialized: one scan at a time.
 */
static void mark_scan(struct fs_ctx *ctx, uint64_t now)
{
	struct fs_inval *v = &ctx->inval;
	int rc;

	pthread_mutex_lock(&v->scan_lock);
	if (now != v->marked) {
		rc = cache_changes_since(ctx->cache, v->marked, mark_one, ctx);
		if (rc == -ERANGE || rc == 1) {
			size_t total = fs_inodes_blobs(&ctx->inodes, NULL, NULL, 0);
			uint64_t *all = calloc(total ? total : 1, sizeof(*all));

			if (all) {
				total = fs_inodes_blobs(&ctx->inodes, NULL, all,
							total);
				mark_bad(ctx, all, total);
				free(all);
			}
			rc = 0;
		}
		if (rc == 0)
			v->marked = now;
	}
	pthread_mutex_unlock(&v->scan_lock);
}

static int collect(void *arg, const struct pol_digest *d, bool bad)
{
	struct inval_list *l = arg;
	size_t room = FS_INVAL_BATCH - l->n;
	size_t got;

	(void)bad;	/* the kernel drops what it kept either way */
	got = fs_inodes_blobs(&l->ctx->inodes, d->str, l->ino + l->n, room);
	if (got > room) {
		l->all = true;
		return 1;
	}
	l->n += got;
	return 0;
}

static void notify(struct fs_ctx *ctx, const uint64_t *ino, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = fuse_lowlevel_notify_inval_inode(ctx->se, ino[i], 0, 0);

		if (rc < 0 && rc != -ENOENT)
			af_debug("invalidate inode %llu: %s",
				 (unsigned long long)ino[i], strerror(-rc));
	}
}

/* Tells the kernel about every drop since the last look. */
static void inval_check(struct fs_ctx *ctx)
{
	struct inval_list *l;
	uint64_t now, seen;
	int rc;

	if (!ctx->cache || cache_generation(ctx->cache, &now) < 0)
		return;
	mark_scan(ctx, now);
	seen = atomic_load(&ctx->inval.seen);
	if (now == seen)
		return;
	l = calloc(1, sizeof(*l));
	if (!l)
		return;
	l->ctx = ctx;
	rc = cache_changes_since(ctx->cache, seen, collect, l);
	if (rc == -ERANGE)
		l->all = true;
	else if (rc < 0 && rc != 1) {
		free(l);
		return;
	}
	if (l->all) {
		size_t total = fs_inodes_blobs(&ctx->inodes, NULL, NULL, 0);
		uint64_t *all = calloc(total ? total : 1, sizeof(*all));

		if (all) {
			total = fs_inodes_blobs(&ctx->inodes, NULL, all, total);
			notify(ctx, all, total);
			free(all);
		}
	} else {
		notify(ctx, l->ino, l->n);
	}
	free(l);
	atomic_store(&ctx->inval.seen, now);
}

static void *inval_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_inval *v = &ctx->inval;

	pthread_mutex_lock(&v->lock);
	while (!v->stop) {
		struct timespec ts;

		if (!v->kicked) {
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += FS_INVAL_POLL_MS / 1000;
			pthread_cond_timedwait(&v->cond, &v->lock, &ts);
			if (v->stop)
				break;
		}
		v->kicked = false;
		pthread_mutex_unlock(&v->lock);
		inval_check(ctx);
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

void fs_inval_kick(struct fs_ctx *ctx)
{
	struct fs_inval *v = &ctx->inval;

	pthread_mutex_lock(&v->lock);
	v->kicked = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* The cache dropped a verified blob (this process): tell the kernel. */
static void on_drop(void *arg, const struct pol_digest *d)
{
	(void)d;
	fs_inval_kick(arg);
}

int fs_inval_start(struct fs_ctx *ctx)
{
	struct fs_inval *v = &ctx->inval;
	uint64_t now = 0;
	int rc;

	if (!ctx->cache)
		return 0;
	/* Started again after a hand-over that did not happen: afresh. */
	pthread_mutex_lock(&v->lock);
	v->stop = false;
	v->kicked = false;
	pthread_mutex_unlock(&v->lock);
	/* Drops before the mount concern no inode of this session. */
	if (cache_generation(ctx->cache, &now) == 0) {
		atomic_store(&v->seen, now);
		v->marked = now;
	}
	cache_on_drop(ctx->cache, on_drop, ctx);
	rc = pthread_create(&v->thread, NULL, inval_main, ctx);
	if (rc)
		return -rc;
	v->started = true;
	return 0;
}

void fs_inval_stop(struct fs_ctx *ctx)
{
	struct fs_inval *v = &ctx->inval;

	if (!v->started)
		return;
	pthread_mutex_lock(&v->lock);
	v->stop = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	v->started = false;
}

void fs_inval_open_check(struct fs_ctx *ctx)
{
	uint64_t now;

	if (!ctx->cache || !ctx->inval.started ||
	    cache_generation(ctx->cache, &now) < 0 ||
	    now == atomic_load(&ctx->inval.seen))
		return;
	mark_scan(ctx, now);
	fs_inval_kick(ctx);
}
