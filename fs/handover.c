/*
 * handover.c - live upgrade, fs/'s part (fs.h, DESIGN §13): stopping the
 * session without losing a request, and the state the kernel holds
 * references to, described for another process and rebuilt there.
 *
 * The document (version 1, carried by tools/upgrade.c with its fds):
 *
 *   "init"     the kernel's FUSE_INIT argument, hex (replayed, io.c)
 *   "passthrough", "mounted_at"
 *   "inodes"   [{ino, kind, project, name, ref, nlookup, pt_id, pt_nopen,
 *                pt_fallback}]  (inode.c)
 *   "next_ino"
 *   "dirs"     open directory handles (dir.c)
 *   "files", "pending", "next_fh"   file handles and waiting opens (open.c)
 *
 * fds[0] is the FUSE connection; every other fd is named by its index.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "../policy/af.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ops_int.h"

int fs_fdlist_add(struct fs_fdlist *l, int fd)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		int *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = fd;
	return (int)l->n++;
}

/* ---- stopping --------------------------------------------------------- */

/*
 * Wakes the thread in fs_serve: libfuse's loop waits on a semaphore that
 * only a signal delivered to that thread interrupts.
 */
static void on_wake(int sig)
{
	(void)sig;
}

void fs_request_stop(struct fs_ctx *ctx)
{
	atomic_store(&ctx->stop_requested, true);
	fuse_session_exit(ctx->se);
	if (atomic_load(&ctx->serving))
		pthread_kill(ctx->serve_thread, SIGUSR2);
}

bool fs_stop_requested(const struct fs_ctx *ctx)
{
	return atomic_load(&ctx->stop_requested);
}

/*
 * SIGTERM and SIGINT end the loop: libfuse's handler marks the session
 * exited. A process-directed signal lands on any thread that does not
 * block it, though, and only the serving thread and a worker in read(2)
 * notice: one that lands on the HTTP engine, the audit writer or another
 * thread of ours left the loop waiting for the next FUSE request, and
 * `systemctl stop` hanging. So wherever it lands, the serving thread is
 * woken too (pthread_kill is async-signal-safe).
 */
static const int stop_sigs[] = { SIGTERM, SIGINT };
static struct sigaction fuse_stop_sa[2];	/* libfuse's, restored after */
static bool stop_wrapped[2];
static pthread_t stop_thread;
static _Atomic bool stop_armed;

static void on_stop(int sig)
{
	int saved = errno;
	int i = sig == SIGINT;

	fuse_stop_sa[i].sa_handler(sig);	/* wrapped only when a function */
	if (atomic_load(&stop_armed) &&
	    !pthread_equal(pthread_self(), stop_thread))
		pthread_kill(stop_thread, SIGUSR2);
	errno = saved;
}

void fs_stop_signals(struct fs_ctx *ctx)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_wake;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);	/* no SA_RESTART: the wait must end */
	stop_thread = ctx->serve_thread;
	for (size_t i = 0; i < 2; i++) {
		stop_wrapped[i] = false;
		if (sigaction(stop_sigs[i], NULL, &fuse_stop_sa[i]) < 0)
			continue;
		/* Ignored (a script's background job) or libfuse's default: left. */
		if (fuse_stop_sa[i].sa_handler == SIG_DFL ||
		    fuse_stop_sa[i].sa_handler == SIG_IGN ||
		    (fuse_stop_sa[i].sa_flags & SA_SIGINFO))
			continue;
		sa.sa_handler = on_stop;
		sa.sa_flags = 0;
		sigemptyset(&sa.sa_mask);
		if (sigaction(stop_sigs[i], &sa, NULL) == 0)
			stop_wrapped[i] = true;
	}
	atomic_store(&stop_armed, true);
}

void fs_stop_signals_restore(void)
{
	atomic_store(&stop_armed, false);
	for (size_t i = 0; i < 2; i++) {
		if (stop_wrapped[i])
			sigaction(stop_sigs[i], &fuse_stop_sa[i], NULL);
		stop_wrapped[i] = false;
	}
}

/* ---- the old daemon ----------------------------------------------------- */

void fs_handover_hold(struct fs_ctx *ctx)
{
	fs_open_hold(ctx);
}

static char *hex_of(const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	char *s = malloc(2 * n + 1);

	if (!s)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		s[2 * i] = digits[p[i] >> 4];
		s[2 * i + 1] = digits[p[i] & 15];
	}
	s[2 * n] = '\0';
	return s;
}

static int hex_to(const char *s, unsigned char *out, size_t max, size_t *len)
{
	size_t n = s ? strlen(s) : 0;

	if (!s || n % 2 || n / 2 > max)
		return -EPROTO;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = pol_hex_value(s[2 * i]), lo = pol_hex_value(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EPROTO;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

int fs_handover_export(struct fs_ctx *ctx, json_t **out, int **fds,
		       size_t *nfds)
{
	struct fs_fdlist l = { 0 };
	json_t *doc = json_object();
	char *init = NULL;
	int rc = -ENOMEM;

	if (!doc)
		return -ENOMEM;
	if (!ctx->init_seen) {
		rc = -EPROTO;	/* no INIT seen: nothing to replay */
		goto out_free;
	}
	init = hex_of(ctx->init_raw, ctx->init_len);
	if (!init || fs_fdlist_add(&l, fuse_session_fd(ctx->se)) < 0 ||
	    json_object_set_new(doc, "init", json_string(init)) < 0 ||
	    json_object_set_new(doc, "passthrough",
				json_boolean(ctx->passthrough)) < 0 ||
	    json_object_set_new(doc, "mounted_at",
				json_integer(ctx->mounted_at)) < 0)
		goto out_free;
	rc = fs_inodes_export(ctx, doc);
	if (rc == 0)
		rc = fs_dir_export(ctx, doc);
	if (rc == 0)
		rc = fs_open_export(ctx, doc, &l);
	if (rc < 0)
		goto out_free;
	free(init);
	*out = doc;
	*fds = l.v;
	*nfds = l.n;
	return 0;

out_free:
	free(init);
	free(l.v);
	json_decref(doc);
	return rc;
}

void fs_handover_done(struct fs_ctx *ctx)
{
	ctx->handed_over = true;
}

int fs_handover_resume(struct fs_ctx *ctx)
{
	atomic_store(&ctx->stop_requested, false);
	return fs_open_resume(ctx);
}

/* ---- the new daemon ----------------------------------------------------- */

int fs_adopt(struct fs_ctx *ctx, const char *mountpoint, const json_t *doc,
	     int *fds, size_t nfds)
{
	unsigned char init[FS_INIT_IN_MAX];
	size_t init_len = 0;
	int rc, fd;

	if (nfds < 1 || fds[0] < 0)
		return -EPROTO;
	rc = hex_to(json_string_value(json_object_get(doc, "init")), init,
		    sizeof(init), &init_len);
	if (rc < 0) {
		af_err("upgrade: the state has no usable FUSE INIT");
		return rc;
	}
	ctx->mountpoint = strdup(mountpoint);
	if (!ctx->mountpoint)
		return -ENOMEM;
	fd = fds[0];
	fds[0] = -1;
	rc = fs_io_install(ctx, fd);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	ctx->adopted = true;
	ctx->mounted_at = (long long)json_integer_value(
		json_object_get(doc, "mounted_at"));
	/* The kernel's INIT, again, so libfuse's session is the one it knows. */
	rc = fs_io_replay_init(ctx, init, init_len);
	if (rc == 0)
		rc = fs_inodes_adopt(ctx, doc);
	if (rc == 0)
		rc = fs_dir_adopt(ctx, doc);
	if (rc == 0)
		rc = fs_open_adopt(ctx, doc, fds, nfds);
	if (rc < 0)
		af_err("upgrade: the state does not fit: %s", af_strerror(rc));
	return rc;
}

int fs_adopt_resume(struct fs_ctx *ctx)
{
	ctx->adopt_taken = true;
	return fs_open_adopt_resume(ctx);
}

size_t fs_backing_ids(struct fs_ctx *ctx, int *ids, size_t max)
{
	return fs_inodes_backing_ids(ctx, ids, max);
}

/*
 * The end of an adopted mount: no libfuse mount to undo (the fd came
 * from elsewhere), so unmount the mount point ourselves, as root, or
 * through the privileged helper (session.c calls this).
 */
void fs_adopt_unmount(struct fs_ctx *ctx)
{
	struct pollfd p = { .fd = fuse_session_fd(ctx->se) };

	if (!ctx->adopted || !ctx->adopt_taken || ctx->handed_over)
		return;
	/* Unmounted already (umount(8)): the connection says so (as libfuse). */
	if (p.fd < 0 || (poll(&p, 1, 0) == 1 && (p.revents & POLLERR)))
		return;
	if (ctx->backing.unmount) {
		if (ctx->backing.unmount(ctx->backing.arg) < 0)
			af_warn("unmount through the privileged helper failed");
		return;
	}
	if (umount2(ctx->mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
		af_warn("unmount %s: %s", ctx->mountpoint, strerror(errno));
}

/* ---- the inode table (numbers the kernel holds) --------------------------- */

static const char *kind_name(enum fs_kind k)
{
	switch (k) {
	case FS_ROOT:
		return "root";
	case FS_PROJECT:
		return "project";
	case FS_BLOB:
		return "blob";
	case FS_CHANNEL:
		return "channel";
	default:
		return "?";
	}
}

static int kind_parse(const char *s, enum fs_kind *k)
{
	static const enum fs_kind all[] = { FS_ROOT, FS_PROJECT, FS_BLOB,
					    FS_CHANNEL };

	for (size_t i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(s, kind_name(all[i])) == 0) {
			*k = all[i];
			return 0;
		}
	}
	return -EPROTO;
}

struct inode_export {
	json_t *v;
	int err;
};

static void export_inode(void *arg, const struct fs_inode *in)
{
	struct inode_export *x = arg;
	json_t *e;

	if (x->err)
		return;
	/* pt_* are guarded by pt_lock, which the caller holds. */
	e = json_pack("{s:I, s:s, s:s*, s:s*, s:s*, s:I, s:i, s:i, s:b}",
		      "ino", (json_int_t)in->ino, "kind", kind_name(in->kind),
		      "project", in->project, "name", in->name, "ref", in->ref,
		      "nlookup", (json_int_t)in->nlookup,
		      "pt_id", in->pt_backing_id, "pt_nopen", (int)in->pt_nopen,
		      "pt_fallback", in->pt_fallback);
	if (!e || json_array_append_new(x->v, e) < 0)
		x->err = -ENOMEM;
}

/*
 * Every inode the kernel holds (nlookup > 0): open files and waiting
 * opens are on inodes the kernel looked up, so they are among them.
 */
int fs_inodes_export(struct fs_ctx *ctx, json_t *doc)
{
	struct inode_export x = { .v = json_array() };

	if (!x.v)
		return -ENOMEM;
	pthread_mutex_lock(&ctx->pt_lock);
	fs_inodes_foreach(&ctx->inodes, export_inode, &x);
	pthread_mutex_unlock(&ctx->pt_lock);
	if (x.err) {
		json_decref(x.v);
		return x.err;
	}
	if (json_object_set_new(doc, "inodes", x.v) < 0 ||
	    json_object_set_new(doc, "next_ino",
			json_integer((json_int_t)fs_inodes_next(&ctx->inodes))) < 0)
		return -ENOMEM;
	return 0;
}

int fs_inodes_adopt(struct fs_ctx *ctx, const json_t *doc)
{
	const json_t *v = json_object_get(doc, "inodes"), *e;
	size_t i;

	json_array_foreach(v, i, e) {
		const char *kind = NULL, *project = NULL, *name = NULL,
			   *ref = NULL;
		json_int_t ino = 0, nlookup = 0;
		int pt_id = 0, pt_nopen = 0, pt_fallback = 0, rc;
		struct fs_inode *in;
		enum fs_kind k;

		if (json_unpack((json_t *)e,
				"{s:I, s:s, s?s, s?s, s?s, s:I, s:i, s:i, s:b}",
				"ino", &ino, "kind", &kind, "project", &project,
				"name", &name, "ref", &ref, "nlookup", &nlookup,
				"pt_id", &pt_id, "pt_nopen", &pt_nopen,
				"pt_fallback", &pt_fallback) < 0 ||
		    kind_parse(kind, &k) < 0 || ino <= 0 || nlookup < 0 ||
		    pt_nopen < 0 || (k == FS_ROOT) != (ino == 1))
			return -EPROTO;
		rc = fs_inodes_restore(&ctx->inodes, (uint64_t)ino, k, project,
				       name, ref, (uint64_t)nlookup, &in);
		if (rc < 0)
			return rc == -EEXIST ? -EPROTO : rc;
		pthread_mutex_lock(&ctx->pt_lock);
		in->pt_backing_id = pt_id;
		in->pt_nopen = (unsigned)pt_nopen;
		in->pt_fallback = pt_fallback;
		pthread_mutex_unlock(&ctx->pt_lock);
	}
	fs_inodes_set_next(&ctx->inodes, (uint64_t)json_integer_value(
				   json_object_get(doc, "next_ino")));
	return 0;
}

struct ids_collect {
	int *ids;
	size_t n, max;
};

static void collect_id(void *arg, const struct fs_inode *in)
{
	struct ids_collect *c = arg;

	if (in->pt_backing_id > 0 && c->n < c->max)
		c->ids[c->n++] = in->pt_backing_id;
}

size_t fs_inodes_backing_ids(struct fs_ctx *ctx, int *ids, size_t max)
{
	struct ids_collect c = { .ids = ids, .max = max };

	pthread_mutex_lock(&ctx->pt_lock);
	fs_inodes_foreach(&ctx->inodes, collect_id, &c);
	pthread_mutex_unlock(&ctx->pt_lock);
	return c.n;
}
