/*
 * open.c - open, read, release (DESIGN §7): an open of a blob that is not
 * verified yet waits for the cache's fetch without holding a worker
 * thread, and is answered when the fetch ends; reads of a verified blob go
 * through FUSE passthrough where the kernel allows, else by splice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ops_int.h"

static void pending_put(struct fs_pending *p)
{
	struct fs_ctx *ctx = p->ctx;
	bool last;

	pthread_mutex_lock(&ctx->pending_lock);
	last = --p->refs == 0;
	pthread_mutex_unlock(&ctx->pending_lock);
	if (!last)
		return;
	fs_inode_put(&ctx->inodes, p->inode);
	if (p->dev_fd >= 0)
		close(p->dev_fd);
	pol_registration_free(p->reg);
	free(p);
}

/* The device fd p's request came from (a reply must go back there). */
static int pending_fd(const struct fs_pending *p)
{
	return p->dev_fd >= 0 ? p->dev_fd : fuse_session_fd(p->ctx->se);
}

static void open_reply_err(struct fs_ctx *ctx, fuse_req_t req, int err);

/* Answers p with err (a positive errno), whichever process read it. */
static void pending_reply_err(struct fs_pending *p, int err)
{
	int rc;

	if (p->req) {
		open_reply_err(p->ctx, p->req, err);
		return;
	}
	fs_count_open(p->ctx, err);
	rc = fs_io_reply_raw(pending_fd(p), p->unique, err, NULL, 0);
	if (rc < 0)
		af_debug("open %llu: reply: %s", (unsigned long long)p->unique,
			 af_strerror(rc));
}

/* Answers p's open with p->fi. 0, or non-zero when the kernel gave up. */
static int pending_reply_open(struct fs_pending *p)
{
	struct fs_open_out o = { 0 };

	if (p->req)
		return fuse_reply_open(p->req, &p->fi);
	o.fh = p->fi.fh;
	if (p->fi.keep_cache)
		o.open_flags |= FS_FOPEN_KEEP_CACHE;
	if (p->fi.noflush)
		o.open_flags |= FS_FOPEN_NOFLUSH;
#ifdef FUSE_CAP_PASSTHROUGH
	if (p->fi.backing_id > 0) {
		o.open_flags |= FS_FOPEN_PASSTHROUGH;
		o.backing_id = p->fi.backing_id;
	}
#endif
	return fs_io_reply_raw(pending_fd(p), p->unique, 0, &o, sizeof(o));
}

/* Takes the right to reply for p. True for exactly one caller. */
static bool pending_claim(struct fs_pending *p)
{
	struct fs_ctx *ctx = p->ctx;
	struct fs_pending **pp;
	bool won = false;

	pthread_mutex_lock(&ctx->pending_lock);
	if (!p->claimed) {
		p->claimed = true;
		won = true;
		for (pp = &ctx->pending; *pp; pp = &(*pp)->next) {
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&ctx->pending_lock);
	return won;
}

void fs_count_open(struct fs_ctx *ctx, int err)
{
	enum fs_open_result r;

	switch (err) {
	case 0:
		r = FS_OPEN_OK;
		break;
	case EACCES:
		r = FS_OPEN_DENIED;
		break;
	case ENOENT:
		r = FS_OPEN_ENOENT;
		break;
	case EIO:
		r = FS_OPEN_EIO;
		break;
	case EAGAIN:
		r = FS_OPEN_EAGAIN;
		break;
	case EINTR:
		r = FS_OPEN_EINTR;
		break;
	default:
		r = FS_OPEN_OTHER;
		break;
	}
	__atomic_add_fetch(&ctx->stat_opens[r], 1, __ATOMIC_RELAXED);
}

void fs_get_stats(struct fs_ctx *ctx, struct fs_stats *out)
{
	for (int i = 0; i < FS_OPEN_RESULTS; i++)
		out->opens[i] = __atomic_load_n(&ctx->stat_opens[i],
						__ATOMIC_RELAXED);
}

/* The one error reply of an open, counted (DESIGN §13). */
static void open_reply_err(struct fs_ctx *ctx, fuse_req_t req, int err)
{
	fs_count_open(ctx, err);
	fuse_reply_err(req, err);
}

/* Kernel interrupt (Ctrl-C on a waiting open): EINTR, the fetch goes on. */
static void open_interrupted(fuse_req_t req, void *data)
{
	struct fs_ctx *ctx = data;
	struct fs_pending **pp;
	bool won = false;

	pthread_mutex_lock(&ctx->pending_lock);
	for (pp = &ctx->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->req == req) {
			(*pp)->claimed = true;
			*pp = (*pp)->next;
			won = true;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->pending_lock);
	if (won)
		open_reply_err(ctx, req, EINTR);
}

static void audit_open_result(struct fs_pending *p, const char *event,
			      const char *decision, const char *reason,
			      const char *warning)
{
	struct fs_ctx *ctx = p->ctx;
	const struct pol_registration *r = p->reg;

	fs_audit(ctx, &(struct audit_event){
		.event = event, .project = r->project, .name = r->name,
		.digest = r->digest.str,
		.source_type = pol_source_type_name(r->source_type),
		.uri = r->uri, .has_ids = true, .uid = p->uid, .gid = p->gid,
		.pid = p->pid, .decision = decision, .reason = reason,
		.warning = warning,
		.has_duration = true,
		.duration_ms = (uint64_t)(af_now_ms() - p->started_ms),
	});
}

/*
 * FUSE passthrough (Linux >= 6.9, libfuse >= 3.17): a verified blob's cache
 * file becomes the backing file of the open, so reads and mmap never reach
 * the daemon and its pages sit once in the page cache. Kernel rules: one
 * backing id per inode at a time, no mixing with cached opens of the same
 * inode, and no keep_cache with passthrough (the pages belong to the
 * backing file anyway). The id is registered at the first open and closed
 * at the last release, never right after the reply (the kernel looks it up
 * when the opener's open() completes).
 */
#ifdef FUSE_CAP_PASSTHROUGH
/* The backing id for fd (> 0), or -errno; through the privileged helper
 * when there is one (DESIGN §13). */
static int backing_open(struct fs_ctx *ctx, int fd)
{
	struct fs_backing_map map = { .fd = fd };
	int id;

	if (ctx->backing.open)
		return ctx->backing.open(ctx->backing.arg, fd);
	/* What fuse_passthrough_open does, with no request needed. */
	id = ioctl(fuse_session_fd(ctx->se), FS_IOC_BACKING_OPEN, &map);
	return id > 0 ? id : -(errno ? errno : EIO);
}

static void backing_close(struct fs_ctx *ctx, int id)
{
	uint32_t u = (uint32_t)id;
	int rc;

	if (ctx->backing.close)
		rc = ctx->backing.close(ctx->backing.arg, id);
	else
		rc = ioctl(fuse_session_fd(ctx->se), FS_IOC_BACKING_CLOSE, &u) < 0 ?
		     -errno : 0;
	if (rc < 0)
		af_warn("passthrough: closing backing id %d: %s", id,
			strerror(-rc));
}
#endif

/*
 * gen is the cache generation of h's file (issue 10 item 5). A verified
 * file never changes, so its pages are kept across opens (keep_cache) and
 * it may back the inode (passthrough) — but only while the inode's opens
 * are of that very file. One of another generation (the blob was
 * dropped and fetched again):
 *  - once no open of the old one remains, it becomes the inode's file,
 *    and keep_cache = 0 makes the kernel drop the old pages at this open;
 *  - while some remain, the kernel holds the old file for the inode (its
 *    pages, its passthrough backing file, which no other open of the
 *    inode may differ from). An old file dropped intact (evicted) has the
 *    same bytes: the open shares it. One found bad (quarantined: inval.c
 *    marks the inode bad) must not be shared: returns -ESTALE, and the
 *    caller retires the inode, so that the VFS's retry of the open (it
 *    retries an ESTALE once, revalidating the name) gets a fresh inode
 *    for the new file.
 * Returns 0 (attached) or -ESTALE.
 */
static int pt_attach(struct fs_ctx *ctx, struct fs_handle *h,
		     struct fuse_file_info *fi, uint64_t gen)
{
	struct fs_inode *n = h->inode;

	fi->keep_cache = 1;		/* verified bytes never change */
	pthread_mutex_lock(&ctx->pt_lock);
	if (n->gen != gen && n->pt_nopen > 0 && n->bad) {
		pthread_mutex_unlock(&ctx->pt_lock);
		return -ESTALE;
	}
	if (n->gen != gen && n->pt_nopen == 0) {
		if (n->gen)
			fi->keep_cache = 0;
		n->gen = gen;
		n->bad = false;
	}
#ifdef FUSE_CAP_PASSTHROUGH
	if (ctx->passthrough && !(n->pt_nopen > 0 && n->pt_fallback)) {
		if (n->pt_backing_id <= 0) {
			int id = backing_open(ctx, h->fd);

			if (id > 0) {
				n->pt_backing_id = id;
			} else {
				int e = -id;

				if (!ctx->pt_said) {
					af_log(ctx->pt_required ? AF_LOG_ERROR : AF_LOG_WARN,
					       "passthrough: cannot register a backing file (%s): reads go through the daemon (splice)",
					       strerror(e));
					ctx->pt_said = true;
				}
				if (e == EPERM)
					ctx->passthrough = false;	/* no CAP_SYS_ADMIN */
			}
		}
		if (n->pt_backing_id > 0) {
			fi->backing_id = n->pt_backing_id;
			fi->keep_cache = 0;
			h->passthrough = true;
		}
	}
#endif
	n->pt_fallback = !h->passthrough;
	n->pt_nopen++;
	h->attached = true;
	pthread_mutex_unlock(&ctx->pt_lock);
	return 0;
}

static void pt_detach(struct fs_ctx *ctx, struct fs_handle *h)
{
	struct fs_inode *n = h->inode;

	if (!h->attached)
		return;		/* never counted: see pt_attach */
	pthread_mutex_lock(&ctx->pt_lock);
	if (n->pt_nopen > 0)
		n->pt_nopen--;
#ifdef FUSE_CAP_PASSTHROUGH
	if (n->pt_nopen == 0 && n->pt_backing_id > 0) {
		backing_close(ctx, n->pt_backing_id);
		n->pt_backing_id = 0;
	}
#endif
	if (n->pt_nopen == 0)
		n->pt_fallback = false;
	pthread_mutex_unlock(&ctx->pt_lock);
}

static void handle_free(void *obj)
{
	struct fs_handle *h = obj;

	close(h->fd);
	fs_inode_put(h->table, h->inode);
	free(h);
}

/*
 * The catalog may have changed while the fetch ran (issue 9): an artifact
 * revoked, denied or unregistered meanwhile is not served. Returns 0, or
 * AF_EDENIED / AF_EUNREG with the reason.
 */
static int recheck(struct fs_pending *p, char *reason, size_t len)
{
	struct pol_registration *now;
	int denied = 0;

	now = fs_blob_registration(p->ctx, p->inode, &denied, reason, len);
	if (!now) {
		snprintf(reason, len, "unregistered while fetching");
		return AF_EUNREG;
	}
	pol_registration_free(now);
	return denied ? AF_EDENIED : 0;
}

/*
 * Replies to a claimed open: err from the cache, or the verified file.
 * Called once per open, from a FUSE worker or a cache thread.
 */
static void finish_open(struct fs_pending *p, int err)
{
	struct fs_ctx *ctx = p->ctx;
	struct fs_handle *h;
	char reason[256];
	uint64_t size, gen = 0;
	int fd;

	if (err < 0) {
		audit_open_result(p, "open_denied", "deny", af_strerror(err), NULL);
		pending_reply_err(p, af_errno(err));
		return;
	}
	err = recheck(p, reason, sizeof(reason));
	if (err < 0) {
		audit_open_result(p, "open_denied", "deny", reason, NULL);
		pending_reply_err(p, af_errno(err));
		return;
	}
	fd = cache_open_verified(ctx->cache, &p->reg->digest, &size, &gen);
	if (fd < 0) {
		/* Evicted between verification and open: rare; the caller retries. */
		audit_open_result(p, "open_denied", "deny", af_strerror(fd), NULL);
		pending_reply_err(p, EIO);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		pending_reply_err(p, ENOMEM);
		return;
	}
	atomic_store(&p->inode->open_size, size + 1);
	h->fd = fd;
	h->table = &ctx->inodes;
	h->inode = p->inode;
	fs_inode_hold(&ctx->inodes, h->inode);
	p->fi.fh = fs_handles_add(&ctx->handles, h, handle_free);
	if (!p->fi.fh) {
		handle_free(h);
		pending_reply_err(p, ENOMEM);
		return;
	}
	p->fi.direct_io = 0;
	p->fi.noflush = 1;
	/* A quarantine while this open waited marks its inode now. */
	fs_inval_open_check(ctx);
	if (pt_attach(ctx, h, &p->fi, gen) < 0) {
		/* The kernel holds another file for this inode: a new one. */
		fs_handles_close(&ctx->handles, p->fi.fh);
		fs_inodes_retire(&ctx->inodes, p->inode);
		pending_reply_err(p, ESTALE);
		return;
	}
	if (pending_reply_open(p) != 0) {
		/* The kernel gave up on the request: no release will come. */
		pt_detach(ctx, h);
		fs_handles_close(&ctx->handles, p->fi.fh);
		return;
	}
	atomic_fetch_add(&ctx->opens, 1);
	fs_count_open(ctx, 0);
	audit_open_result(p, "open", "allow", NULL,
			  pol_registration_deprecated(p->reg) ? "deprecated" : NULL);
}

static void open_fetched(void *arg, int err)
{
	struct fs_pending *p = arg;

	if (pending_claim(p))
		finish_open(p, err);
	pending_put(p);
}

/* A background fetch started by O_NONBLOCK: nobody to answer. */
static void nonblock_fetched(void *arg, int err)
{
	(void)arg;
	(void)err;
}

void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct fs_pending *p;
	char reason[256];
	int denied = 0, rc;

	if (!n) {
		open_reply_err(ctx, req, ENOENT);
		return;
	}
	if (n->kind != FS_BLOB) {
		open_reply_err(ctx, req, n->kind == FS_CHANNEL ? ELOOP : EISDIR);
		fs_inode_put(&ctx->inodes, n);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		open_reply_err(ctx, req, EROFS);
		fs_inode_put(&ctx->inodes, n);
		return;
	}
	/* Drops by any process: the kernel hears of them (inval.c). */
	fs_inval_open_check(ctx);
	p = calloc(1, sizeof(*p));
	if (!p) {
		open_reply_err(ctx, req, ENOMEM);
		fs_inode_put(&ctx->inodes, n);
		return;
	}
	p->ctx = ctx;
	p->req = req;
	p->dev_fd = -1;
	p->inode = n;
	p->fi = *fi;
	p->uid = fc->uid;
	p->gid = fc->gid;
	p->pid = fc->pid;
	p->started_ms = af_now_ms();
	p->refs = 1;
	p->reg = fs_blob_registration(ctx, n, &denied, reason, sizeof(reason));
	if (!p->reg) {
		/* Counted as enoent there. */
		fs_audit_unregistered(ctx, req, n->project, n->name, n->ref);
		fuse_reply_err(req, ENOENT);
		pending_put(p);
		return;
	}
	if (denied) {
		audit_open_result(p, "open_denied", "deny", reason, NULL);
		open_reply_err(ctx, req, EACCES);
		pending_put(p);
		return;
	}

	if (fi->flags & O_NONBLOCK) {
		rc = cache_ensure(ctx->cache, p->reg, nonblock_fetched, NULL, NULL);
		if (rc == -EINPROGRESS) {
			open_reply_err(ctx, req, EAGAIN);
			pending_put(p);
			return;
		}
		p->claimed = true;
		finish_open(p, rc);
		pending_put(p);
		return;
	}

	/*
	 * Which request this is and where it came from, so that another
	 * process can answer it after a live upgrade (io.c): a reply must go
	 * back on the device fd the request was read from.
	 */
	{
		const struct fs_cur_req *cr = fs_io_current();

		if (cr->fd >= 0 && cr->opcode == FS_OP_OPEN && cr->nodeid == ino) {
			p->unique = cr->unique;
			if (cr->fd != fuse_session_fd(ctx->se))
				p->dev_fd = fcntl(cr->fd, F_DUPFD_CLOEXEC, 3);
		}
	}
	/* Register for interrupts before the fetch can end (see pending_claim). */
	pthread_mutex_lock(&ctx->pending_lock);
	p->next = ctx->pending;
	ctx->pending = p;
	p->refs = 2;		/* this function, and open_fetched */
	pthread_mutex_unlock(&ctx->pending_lock);
	fuse_req_interrupt_func(req, open_interrupted, ctx);

	rc = cache_ensure(ctx->cache, p->reg, open_fetched, p, NULL);
	if (rc != -EINPROGRESS) {
		/* done will not be called: drop its reference, answer here. */
		pthread_mutex_lock(&ctx->pending_lock);
		p->refs--;
		pthread_mutex_unlock(&ctx->pending_lock);
		if (pending_claim(p))
			finish_open(p, rc);
	}
	pending_put(p);
}

void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_handle *h = fs_handles_get(&ctx->handles, fi->fh);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	atomic_fetch_add(&ctx->reads, 1);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	/*
	 * Splice (tune.c): the kernel copies the cache file's pages into the
	 * mount's. SPLICE_F_MOVE would hand them over instead, but the kernel
	 * moves only order-0 pages the file no longer needs, which a cache
	 * file's are not: every byte is copied (docs/BENCHMARKS.md).
	 */
	if (fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE) == 0 &&
	    !ctx->passthrough)
		fs_tune_drop_behind(h->fd, off, size);
	fs_handles_put(&ctx->handles, fi->fh);
}

void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_handle *h = fs_handles_get(&ctx->handles, fi->fh);

	(void)ino;
	if (h) {
		pt_detach(ctx, h);
		fs_handles_put(&ctx->handles, fi->fh);
		fs_handles_close(&ctx->handles, fi->fh);
	}
	fuse_reply_err(req, 0);
}


/* ---- live upgrade (DESIGN §13; handover.c drives these) ------------------ */

void fs_open_hold(struct fs_ctx *ctx)
{
	struct fs_pending *p, *next, *bad = NULL;

	pthread_mutex_lock(&ctx->pending_lock);
	for (p = ctx->pending; p; p = next) {
		next = p->next;
		p->claimed = true;	/* the cache's callback no longer answers */
		p->refs++;		/* the hold's own */
		if (!p->unique) {
			/* Never read through our I/O: it cannot move. */
			p->next = bad;
			bad = p;
			continue;
		}
		p->next = ctx->held;
		ctx->held = p;
	}
	ctx->pending = NULL;
	pthread_mutex_unlock(&ctx->pending_lock);
	for (p = bad; p; p = next) {
		next = p->next;
		af_err("upgrade: an open of %s@%s cannot be handed over: EINTR",
		       p->inode->name, p->inode->ref);
		pending_reply_err(p, EINTR);
		pending_put(p);
	}
}

/* Starts p's fetch (again); p's one reference goes to the callback. */
static void pending_start(struct fs_ctx *ctx, struct fs_pending *p)
{
	int rc;

	pthread_mutex_lock(&ctx->pending_lock);
	p->claimed = false;
	p->next = ctx->pending;
	ctx->pending = p;
	pthread_mutex_unlock(&ctx->pending_lock);
	rc = cache_ensure(ctx->cache, p->reg, open_fetched, p, NULL);
	if (rc != -EINPROGRESS) {
		if (pending_claim(p))
			finish_open(p, rc);
		pending_put(p);
	}
}

static struct fs_pending *take_held(struct fs_ctx *ctx)
{
	struct fs_pending *list;

	pthread_mutex_lock(&ctx->pending_lock);
	list = ctx->held;
	ctx->held = NULL;
	pthread_mutex_unlock(&ctx->pending_lock);
	return list;
}

int fs_open_resume(struct fs_ctx *ctx)
{
	struct fs_pending *p, *next;

	for (p = take_held(ctx); p; p = next) {
		next = p->next;
		pending_start(ctx, p);
	}
	return 0;
}

struct export_files {
	json_t *files;
	struct fs_fdlist *l;
	int err;
};

static void export_file(void *arg, uint64_t id, void *obj,
			void (*free_fn)(void *obj))
{
	struct export_files *x = arg;
	struct fs_handle *h = obj;
	int idx;

	if (free_fn != handle_free || x->err)
		return;
	idx = fs_fdlist_add(x->l, h->fd);
	if (idx < 0 ||
	    json_array_append_new(x->files, json_pack("{s:I, s:I, s:b, s:i}",
			"fh", (json_int_t)id, "ino", (json_int_t)h->inode->ino,
			"passthrough", h->passthrough, "fd", idx)) < 0)
		x->err = -ENOMEM;
}

int fs_open_export(struct fs_ctx *ctx, json_t *doc, struct fs_fdlist *l)
{
	struct export_files x = { .files = json_array(), .l = l };
	json_t *pend = json_array();
	struct fs_pending *p;

	if (!x.files || !pend) {
		json_decref(x.files);
		json_decref(pend);
		return -ENOMEM;
	}
	fs_handles_foreach(&ctx->handles, export_file, &x);
	pthread_mutex_lock(&ctx->pending_lock);
	for (p = ctx->held; p && !x.err; p = p->next) {
		int dev = 0;	/* the session fd, always first */

		if (p->dev_fd >= 0)
			dev = fs_fdlist_add(l, p->dev_fd);
		if (dev < 0 || json_array_append_new(pend,
				json_pack("{s:I, s:I, s:i, s:i, s:i, s:i, s:i}",
					  "unique", (json_int_t)p->unique,
					  "ino", (json_int_t)p->inode->ino,
					  "flags", p->fi.flags, "uid", (int)p->uid,
					  "gid", (int)p->gid, "pid", (int)p->pid,
					  "dev", dev)) < 0)
			x.err = -ENOMEM;
	}
	pthread_mutex_unlock(&ctx->pending_lock);
	if (x.err || json_object_set_new(doc, "files", x.files) < 0 ||
	    json_object_set_new(doc, "pending", pend) < 0 ||
	    json_object_set_new(doc, "next_fh",
				json_integer((json_int_t)fs_handles_next_id(&ctx->handles))) < 0) {
		json_decref(x.files);
		json_decref(pend);
		return x.err ? x.err : -ENOMEM;
	}
	return 0;
}

/* The fd at index i of fds, taken (its entry becomes -1), or -1. */
static int take_fd(int *fds, size_t nfds, json_int_t i)
{
	int fd;

	if (i < 0 || (size_t)i >= nfds)
		return -1;
	fd = fds[i];
	fds[i] = -1;
	return fd;
}

int fs_open_adopt(struct fs_ctx *ctx, const json_t *doc, int *fds,
		  size_t nfds)
{
	const json_t *files = json_object_get(doc, "files");
	const json_t *pend = json_object_get(doc, "pending");
	const json_t *e;
	size_t i;

	json_array_foreach(files, i, e) {
		json_int_t fh = 0, ino = 0, fdi = -1;
		int passthrough = 0, rc;
		struct fs_handle *h;
		struct fs_inode *n;

		if (json_unpack((json_t *)e, "{s:I, s:I, s:b, s:I}", "fh", &fh,
				"ino", &ino, "passthrough", &passthrough,
				"fd", &fdi) < 0 || fh <= 0)
			return -EPROTO;
		n = fs_inodes_find(&ctx->inodes, (uint64_t)ino);	/* a reference */
		h = calloc(1, sizeof(*h));
		if (!n || !h) {
			free(h);
			fs_inode_put(&ctx->inodes, n);
			return n ? -ENOMEM : -EPROTO;
		}
		h->fd = take_fd(fds, nfds, fdi);
		h->table = &ctx->inodes;
		h->inode = n;		/* the handle's reference from now on */
		h->passthrough = passthrough;
		if (h->fd < 0) {
			fs_inode_put(&ctx->inodes, n);
			free(h);
			return -EPROTO;
		}
		rc = fs_handles_restore(&ctx->handles, (uint64_t)fh, h,
					handle_free);
		if (rc < 0) {
			handle_free(h);
			return rc;
		}
	}
	fs_handles_set_next_id(&ctx->handles, (uint64_t)json_integer_value(
					json_object_get(doc, "next_fh")));
	json_array_foreach(pend, i, e) {
		json_int_t unique = 0, ino = 0, dev = 0;
		int flags = 0, uid = 0, gid = 0, pid = 0;
		struct fs_pending *p;
		struct fs_inode *n;

		if (json_unpack((json_t *)e, "{s:I, s:I, s:i, s:i, s:i, s:i, s:I}",
				"unique", &unique, "ino", &ino, "flags", &flags,
				"uid", &uid, "gid", &gid, "pid", &pid,
				"dev", &dev) < 0 || !unique)
			return -EPROTO;
		n = fs_inodes_find(&ctx->inodes, (uint64_t)ino);	/* a reference */
		if (!n || n->kind != FS_BLOB) {
			fs_inode_put(&ctx->inodes, n);
			return -EPROTO;
		}
		p = calloc(1, sizeof(*p));
		if (!p) {
			fs_inode_put(&ctx->inodes, n);
			return -ENOMEM;
		}
		p->ctx = ctx;
		p->unique = (uint64_t)unique;
		p->dev_fd = dev > 0 ? take_fd(fds, nfds, dev) : -1;
		p->inode = n;
		p->fi.flags = flags;
		p->uid = (uid_t)uid;
		p->gid = (gid_t)gid;
		p->pid = (pid_t)pid;
		p->started_ms = af_now_ms();
		p->refs = 1;
		p->claimed = true;
		pthread_mutex_lock(&ctx->pending_lock);
		p->next = ctx->held;
		ctx->held = p;
		pthread_mutex_unlock(&ctx->pending_lock);
	}
	return 0;
}

int fs_open_adopt_resume(struct fs_ctx *ctx)
{
	struct fs_pending *p, *next;

	for (p = take_held(ctx); p; p = next) {
		char reason[256];
		int denied = 0;

		next = p->next;
		/* This process's catalog decides now, as for any open. */
		p->reg = fs_blob_registration(ctx, p->inode, &denied, reason,
					      sizeof(reason));
		if (!p->reg || denied) {
			if (p->reg)
				audit_open_result(p, "open_denied", "deny",
						  reason, NULL);
			pending_reply_err(p, p->reg ? EACCES : ENOENT);
			pending_put(p);
			continue;
		}
		pending_start(ctx, p);
	}
	return 0;
}
