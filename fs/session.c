/*
 * session.c - the FUSE session's life cycle (DESIGN §7): init (what the
 * kernel is asked for), the operations table, mount, serve, unmount.
 * Which contexts exist and who owns them is the composition root's
 * business (tools/); fs receives them.
 */
#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ops_int.h"

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *ctx = userdata;

	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/*
	 * Lookups (and listings) of one directory in parallel: without it
	 * the kernel runs one at a time per directory, and a lookup waiting
	 * for the control plane's answer (ctl_catalog_probe, up to 2 s)
	 * would hold up every other lookup of its project (issue 9).
	 */
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Verified blobs never change: let the kernel keep their pages. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* Passthrough and writeback caching exclude each other: never ask for it. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/*
	 * Requests that splice whole (tune.c), and the readahead window
	 * tune.c gave the mount: the kernel keeps min(its window, this).
	 */
	if (conn->max_write > FS_MAX_REQUEST)
		conn->max_write = FS_MAX_REQUEST;
	if (ctx->readahead_kib)
		conn->max_readahead = ctx->readahead_kib << 10;
	ctx->passthrough = false;
	if (ctx->cfg->passthrough == POL_PASSTHROUGH_OFF) {
		af_info("passthrough: off by config: reads go through the daemon (splice)");
		return;
	}
#ifdef FUSE_CAP_PASSTHROUGH
	if (fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		struct statfs sf;

		/* A cache on overlayfs needs one level of stacking (else ELOOP). */
		if (statfs(ctx->cfg->cache_dir, &sf) == 0 &&
		    sf.f_type == OVERLAYFS_SUPER_MAGIC)
			conn->max_backing_stack_depth = FUSE_BACKING_STACKED_OVER;
		ctx->passthrough = true;
		af_info("passthrough: on: reads of verified blobs bypass the daemon");
		return;
	}
#endif
	if (ctx->pt_required) {
		af_err("passthrough = on, but this kernel or libfuse does not offer FUSE passthrough: unmounting");
		ctx->pt_missing = true;
		fuse_session_exit(ctx->se);
		return;
	}
	af_info("passthrough: not offered by the kernel: reads go through the daemon (splice)");
}

static const struct fuse_lowlevel_ops fs_read_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.statfs = fs_statfs,
};

static void ctx_free(struct fs_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->se) {
		/*
		 * A helper that kept the privilege unmounts for a daemon that
		 * dropped it; libfuse then finds the connection gone and only
		 * closes its fd (and frees what it kept of the mount).
		 */
		if (ctx->mounted && !ctx->handed_over && ctx->backing.unmount &&
		    ctx->backing.unmount(ctx->backing.arg) < 0)
			af_warn("unmount through the privileged helper failed");
		if (ctx->mounted && !ctx->handed_over)
			fuse_session_unmount(ctx->se);
		fs_adopt_unmount(ctx);
		fuse_remove_signal_handlers(ctx->se);
		fuse_session_destroy(ctx->se);
	}
	fs_handles_release_all(&ctx->handles);
	fs_inodes_release(&ctx->inodes);
	free(ctx->mountpoint);
	pthread_mutex_destroy(&ctx->pending_lock);
	pthread_mutex_destroy(&ctx->pt_lock);
	pthread_cond_destroy(&ctx->inval.cond);
	pthread_mutex_destroy(&ctx->inval.scan_lock);
	pthread_mutex_destroy(&ctx->inval.lock);
	fs_auditq_stop(ctx);
	fs_auditq_release(ctx);
	free(ctx);
}

static int build_fuse_args(struct fuse_args *args,
			   const struct fs_mount_opts *opts)
{
	char o[2048];
	int n;

	n = snprintf(o, sizeof(o),
		     "ro,default_permissions,allow_other,fsname=artifactfs,subtype=artifactfs%s%s",
		     opts->fuse_opts && *opts->fuse_opts ? "," : "",
		     opts->fuse_opts ? opts->fuse_opts : "");
	if (n < 0 || (size_t)n >= sizeof(o))
		return -E2BIG;
	if (fuse_opt_add_arg(args, "artifactfs") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, o))
		return -ENOMEM;
	if (opts->debug && fuse_opt_add_arg(args, "-d"))
		return -ENOMEM;
	return 0;
}

int fs_new(const struct fs_deps *deps, const struct fs_mount_opts *opts,
	   struct fs_ctx **out)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_lowlevel_ops ops = fs_read_ops;
	struct fs_ctx *ctx;
	int rc;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->cfg = deps->cfg;
	ctx->audit = deps->audit;
	ctx->catalog = deps->catalog;
	ctx->mounted_at = af_wall_ms() / 1000;
	ctx->pt_required = deps->cfg->passthrough == POL_PASSTHROUGH_ON;
	pthread_mutex_init(&ctx->pending_lock, NULL);
	pthread_mutex_init(&ctx->pt_lock, NULL);
	pthread_mutex_init(&ctx->inval.lock, NULL);
	pthread_mutex_init(&ctx->inval.scan_lock, NULL);
	pthread_cond_init(&ctx->inval.cond, NULL);
	rc = fs_auditq_init(ctx);
	if (rc == 0)
		rc = fs_inodes_init(&ctx->inodes);
	if (rc == 0)
		rc = fs_handles_init(&ctx->handles);
	if (rc < 0)
		goto out_free;
	rc = build_fuse_args(&args, opts);
	if (rc < 0)
		goto out_args;
	fs_readonly_fill(&ops);
	ctx->se = fuse_session_new(&args, &ops, sizeof(ops), ctx);
	if (!ctx->se) {
		af_err("cannot create the FUSE session (bad -o options?)");
		rc = -EINVAL;
		goto out_args;
	}
	/* SIGTERM and SIGINT end the session loop: a clean unmount. */
	if (fuse_set_signal_handlers(ctx->se) != 0) {
		rc = -EIO;
		goto out_args;
	}
	fuse_opt_free_args(&args);
	*out = ctx;
	return 0;

out_args:
	fuse_opt_free_args(&args);
out_free:
	ctx_free(ctx);
	return rc;
}

int fs_mount(struct fs_ctx *ctx, const char *mountpoint)
{
	if (fuse_session_mount(ctx->se, mountpoint) != 0) {
		af_err("cannot mount on %s", mountpoint);
		return -EIO;
	}
	ctx->mounted = true;
	fs_tune_readahead(ctx, mountpoint);
	/* Our own I/O on the device, for what a live upgrade needs (io.c). */
	return fs_io_install(ctx, fuse_session_fd(ctx->se));
}

void fs_set_cache(struct fs_ctx *ctx, struct cache *cache)
{
	ctx->cache = cache;
}

int fs_serve(struct fs_ctx *ctx)
{
	struct fuse_loop_config *loop;
	int rc;

	loop = fuse_loop_cfg_create();
	if (!loop)
		return -ENOMEM;
	/*
	 * A /dev/fuse fd per worker thread, when this process may open the
	 * device (after dropping to run_as it may not, where /dev/fuse is not
	 * 0666): then every worker reads the one session fd.
	 */
	if (access("/dev/fuse", R_OK | W_OK) == 0) {
		fuse_loop_cfg_set_clone_fd(loop, 1);
	} else {
		af_info("/dev/fuse is not open to uid %u: workers share one fd (no clone_fd)",
			(unsigned)getuid());
	}
	fuse_loop_cfg_set_max_threads(loop, 64);
	rc = fs_inval_start(ctx);
	if (rc == 0)
		rc = fs_auditq_start(ctx);
	if (rc < 0) {
		fs_inval_stop(ctx);
		fuse_loop_cfg_destroy(loop);
		af_err("cannot start the invalidation or audit thread: %s",
		       af_strerror(rc));
		return rc;
	}
	ctx->serve_thread = pthread_self();
	fs_stop_signals(ctx);
	atomic_store(&ctx->serving, true);
	/* A stop asked before the loop started still ends it at once. */
	if (atomic_load(&ctx->stop_requested))
		fuse_session_exit(ctx->se);
	/* > 0 is the signal that ended the loop (SIGTERM, SIGINT): a clean exit. */
	rc = fuse_session_loop_mt(ctx->se, loop);
	atomic_store(&ctx->serving, false);
	fs_stop_signals_restore();
	fs_inval_stop(ctx);
	fs_auditq_stop(ctx);
	fuse_loop_cfg_destroy(loop);
	if (rc < 0)
		af_err("session loop failed: %s", af_strerror(rc));
	rc = rc < 0 ? rc : 0;
	if (ctx->pt_missing)
		rc = -ENOTSUP;
	return rc;
}

void fs_set_backing(struct fs_ctx *ctx, const struct fs_backing_ops *ops)
{
	ctx->backing = *ops;
}

int fs_session_fd(struct fs_ctx *ctx)
{
	return fuse_session_fd(ctx->se);
}

void fs_free(struct fs_ctx *ctx)
{
	ctx_free(ctx);
}
