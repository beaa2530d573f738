/*
 * auditq.c - the daemon's audit lines leave FUSE workers at once (issue 10
 * item 10): a request formats its line and queues it; one writer thread
 * appends the lines to the audit log (a slow disk, a full pipe, a syslog
 * that stalls hold that thread, never a worker). The queue is bounded: a
 * line that does not fit is dropped and counted, and the drops are
 * logged. lookup_unregistered is rate-limited per uid (DESIGN §8): past
 * FS_UNREG_BURST per FS_UNREG_INTERVAL_MS, events are counted, and one
 * line per interval carries the count suppressed.
 *
 * The writer runs while fs_serve's loop does; before and after (the opens
 * cache_close answers at the end), lines are written directly, as before.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/ratelimit.h"
#include "ops_int.h"

#define FS_AUDITQ_MAX_LINES	65536
#define FS_AUDITQ_MAX_BYTES	((size_t)32 << 20)
#define FS_UNREG_BURST		20
#define FS_UNREG_INTERVAL_MS	10000
#define FS_UNREG_MAX_UIDS	1024

struct fs_aline {
	struct fs_aline *next;
	size_t len;
	char line[];		/* one JSON line, '\n'-terminated */
};

/* Appends a line; lock held. False when the queue is full. */
static bool queue_push(struct fs_auditq *q, struct fs_aline *l)
{
	if (q->nlines >= FS_AUDITQ_MAX_LINES ||
	    q->bytes + l->len > FS_AUDITQ_MAX_BYTES)
		return false;
	l->next = NULL;
	if (q->tail)
		q->tail->next = l;
	else
		q->head = l;
	q->tail = l;
	q->nlines++;
	q->bytes += l->len;
	return true;
}

static void write_line(struct fs_ctx *ctx, char *line)
{
	audit_write_line(ctx->audit, line);
}

/* One line per uid whose interval ended with events suppressed. */
static void report_suppressed(void *arg, uint32_t uid, uint64_t count)
{
	struct fs_ctx *ctx = arg;
	char reason[160], *line;

	if (uid == POL_RATELIMIT_OTHERS)
		snprintf(reason, sizeof(reason),
			 "rate limited: %llu more lookup_unregistered events suppressed (uids beyond %u tracked)",
			 (unsigned long long)count, FS_UNREG_MAX_UIDS);
	else
		snprintf(reason, sizeof(reason),
			 "rate limited: %llu more lookup_unregistered events suppressed for this uid in %d s",
			 (unsigned long long)count, FS_UNREG_INTERVAL_MS / 1000);
	line = audit_format(&(struct audit_event){
		.event = "lookup_unregistered", .has_ids = true,
		.uid = uid == POL_RATELIMIT_OTHERS ? (uid_t)-1 : (uid_t)uid,
		.gid = (gid_t)-1, .pid = 0, .decision = "deny",
		.reason = reason,
	}, af_wall_ms() / 1000);
	if (line) {
		write_line(ctx, line);
		free(line);
	}
}

static void *writer_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	struct fs_auditq *q = &ctx->auditq;
	long long last_flush = af_now_ms();

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct fs_aline *list;
		uint64_t dropped;
		long long now;

		if (!q->head && !q->stop) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&q->cond, &q->lock, &ts);
		}
		list = q->head;
		q->head = q->tail = NULL;
		q->nlines = 0;
		q->bytes = 0;
		dropped = q->dropped;
		q->dropped = 0;
		pthread_mutex_unlock(&q->lock);
		for (struct fs_aline *l = list, *next; l; l = next) {
			next = l->next;
			write_line(ctx, l->line);
			free(l);
		}
		if (dropped)
			af_err("audit: %llu lines dropped: the audit log did not keep up",
			       (unsigned long long)dropped);
		now = af_now_ms();
		pthread_mutex_lock(&q->lock);
		if (now - last_flush >= 1000 || q->stop) {
			pol_ratelimit_flush(q->unreg, now, q->stop,
					    report_suppressed, ctx);
			last_flush = now;
		}
		if (q->stop && !q->head)
			break;
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int fs_auditq_init(struct fs_ctx *ctx)
{
	struct fs_auditq *q = &ctx->auditq;

	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->unreg = pol_ratelimit_new(FS_UNREG_BURST, FS_UNREG_INTERVAL_MS,
				     FS_UNREG_MAX_UIDS);
	return q->unreg ? 0 : -ENOMEM;
}

int fs_auditq_start(struct fs_ctx *ctx)
{
	struct fs_auditq *q = &ctx->auditq;
	int rc;

	if (!ctx->audit)
		return 0;
	pthread_mutex_lock(&q->lock);
	q->stop = false;	/* again after a hand-over that did not happen */
	pthread_mutex_unlock(&q->lock);
	rc = pthread_create(&q->thread, NULL, writer_main, ctx);
	if (rc)
		return -rc;
	pthread_mutex_lock(&q->lock);
	q->running = true;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void fs_auditq_stop(struct fs_ctx *ctx)
{
	struct fs_auditq *q = &ctx->auditq;
	bool running;

	/* Lines from now on are written by their thread; the queue drains. */
	pthread_mutex_lock(&q->lock);
	running = q->running;
	q->running = false;
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (running)
		pthread_join(q->thread, NULL);
}

void fs_auditq_release(struct fs_ctx *ctx)
{
	struct fs_auditq *q = &ctx->auditq;

	while (q->head) {
		struct fs_aline *l = q->head;

		q->head = l->next;
		free(l);
	}
	pol_ratelimit_free(q->unreg);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
}

void fs_audit(struct fs_ctx *ctx, const struct audit_event *ev)
{
	struct fs_auditq *q = &ctx->auditq;
	struct fs_aline *l;
	char *line;
	size_t len;

	if (!ctx->audit)
		return;
	line = audit_format(ev, af_wall_ms() / 1000);
	if (!line)
		return;
	len = strlen(line);
	l = malloc(sizeof(*l) + len + 1);
	if (l) {
		l->len = len;
		memcpy(l->line, line, len + 1);
	}
	pthread_mutex_lock(&q->lock);
	if (q->running && l) {
		if (queue_push(q, l)) {
			pthread_cond_signal(&q->cond);
			l = NULL;
		} else {
			q->dropped++;
		}
		pthread_mutex_unlock(&q->lock);
		free(l);
		free(line);
		return;
	}
	pthread_mutex_unlock(&q->lock);
	/* No writer (before fs_serve, after the end): written here. */
	write_line(ctx, line);
	free(line);
	free(l);
}

bool fs_audit_unreg_allowed(struct fs_ctx *ctx, uid_t uid)
{
	struct fs_auditq *q = &ctx->auditq;
	bool ok;

	if (!q->unreg)
		return true;
	pthread_mutex_lock(&q->lock);
	ok = pol_ratelimit_allow(q->unreg, (uint32_t)uid, af_now_ms());
	pthread_mutex_unlock(&q->lock);
	return ok;
}
