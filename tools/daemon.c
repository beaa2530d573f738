/*
 * daemon.c - the composition root of a mount (DESIGN §1): which contexts
 * the daemon has, in which order they are made and unmade, and who owns
 * them. fs/ serves requests with what it is given here; nothing below
 * tools/ creates a context for another room.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../fs/fs.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../sources/source.h"
#include "daemon.h"
#include "privsep.h"

/* The only signal-handler state (STYLE.md): where SIGHUP writes. */
static volatile sig_atomic_t reload_fd = -1;

static void on_sighup(int sig)
{
	int fd = reload_fd;
	char c = 'h';

	(void)sig;
	if (fd >= 0 && write(fd, &c, 1) < 0) {
		/* Nothing to do in a signal handler; the next poll reloads. */
	}
}

struct daemon {
	const struct pol_config *cfg;
	struct audit *audit;
	struct ctl_catalog *catalog;
	struct src_ctx *srcs;
	struct cache *cache;
	struct fs_ctx *fs;
	struct privsep *priv;		/* with [daemon] run_as */
};

static void daemon_release(struct daemon *d)
{
	reload_fd = -1;
	signal(SIGHUP, SIG_DFL);
	/* Before the session goes: answers every open still waiting. */
	cache_close(d->cache);
	d->cache = NULL;
	/* The reload thread stops before anything it touches goes. */
	ctl_catalog_free(d->catalog);
	d->catalog = NULL;
	fs_free(d->fs);
	d->fs = NULL;
	privsep_stop(d->priv);
	d->priv = NULL;
	src_ctx_free(d->srcs);
	d->srcs = NULL;
	audit_close(d->audit);
	d->audit = NULL;
}

/*
 * The cache opens after daemonizing (its threads do not survive the
 * fork), but a cache that cannot open must fail the mount command itself,
 * not a detached daemon after "mounted" was reported.
 */
static int cache_preflight(const struct pol_config *cfg)
{
	struct cache *c = NULL;
	int rc = cache_open(cfg, NULL, NULL, &c);

	if (rc < 0)
		af_err("cache %s: %s", cfg->cache_dir, af_strerror(rc));
	cache_close(c);
	return rc;
}

static int backing_open(void *arg, int fd)
{
	return privsep_backing_open(arg, fd);
}

static int backing_close(void *arg, int id)
{
	return privsep_backing_close(arg, id);
}

static int backing_unmount(void *arg)
{
	return privsep_unmount(arg);
}

/*
 * Who the daemon runs as (DESIGN §13). Decided before the mount, so that
 * an unknown user fails the command, not a detached daemon.
 */
static int resolve_run_as(const struct pol_config *cfg, bool *drop,
			  uid_t *uid, gid_t *gid)
{
	*drop = false;
	if (!cfg->run_as)
		return 0;
	if (privsep_lookup_user(cfg->run_as, uid, gid) < 0) {
		af_err("[daemon] run_as: no such user \"%s\"", cfg->run_as);
		return -ENOENT;
	}
	if (geteuid() == 0) {
		*drop = true;
		return 0;
	}
	if (geteuid() == *uid)
		return 0;	/* started as that user already */
	af_err("[daemon] run_as = %s: start the mount as root (it mounts, then drops to that user)",
	       cfg->run_as);
	return -EPERM;
}

/*
 * Privilege separation (DESIGN §13, tools/privsep.h): the cache becomes
 * the user's, the helper that keeps CAP_SYS_ADMIN for passthrough starts,
 * and this process drops to the user for good, before any thread exists
 * and before a byte from the network is read.
 */
static int drop_privileges(struct daemon *d, const struct fs_mount_opts *opts,
			   uid_t uid, gid_t gid)
{
	const struct pol_config *cfg = d->cfg;
	struct fs_backing_ops ops;
	int rc;

	rc = privsep_own_tree(cfg->cache_dir, uid, gid);
	if (rc < 0) {
		af_err("cache %s: cannot hand it to %s: %s", cfg->cache_dir,
		       cfg->run_as, af_strerror(rc));
		return rc;
	}
	if (cfg->audit_log && chown(cfg->audit_log, uid, gid) < 0)
		af_warn("audit log %s: chown: %s", cfg->audit_log,
			strerror(errno));
	rc = privsep_start(fs_session_fd(d->fs), cfg->cache_dir,
			   opts->mountpoint, &d->priv);
	if (rc < 0) {
		af_err("privsep: cannot start the helper: %s", af_strerror(rc));
		return rc;
	}
	ops = (struct fs_backing_ops){ .open = backing_open,
		.close = backing_close, .unmount = backing_unmount,
		.arg = d->priv };
	fs_set_backing(d->fs, &ops);
	rc = privsep_drop(uid, gid);
	if (rc < 0)
		return rc;
	af_info("running as %s (uid %u) with no capability; helper pid %d keeps CAP_SYS_ADMIN for passthrough",
		cfg->run_as, (unsigned)uid, (int)privsep_pid(d->priv));
	return 0;
}

int daemon_run(const struct pol_config *cfg, const struct fs_mount_opts *opts)
{
	struct daemon d = { .cfg = cfg };
	struct fs_deps deps;
	struct sigaction sa;
	bool drop;
	uid_t uid = 0;
	gid_t gid = 0;
	int rc;

	rc = resolve_run_as(cfg, &drop, &uid, &gid);
	if (rc < 0)
		return rc;

	rc = audit_open(cfg->audit_log, cfg->audit_syslog, &d.audit);
	if (rc < 0) {
		af_err("audit log %s: %s", cfg->audit_log ? cfg->audit_log : "-",
		       af_strerror(rc));
		goto out;
	}
	rc = ctl_catalog_new(cfg, d.audit, &d.catalog);
	if (rc < 0)
		goto out;
	rc = ctl_catalog_load(d.catalog, true);
	if (rc < 0)
		goto out;
	rc = cache_preflight(cfg);
	if (rc < 0)
		goto out;
	deps = (struct fs_deps){ .cfg = cfg, .audit = d.audit,
				 .catalog = d.catalog };
	rc = fs_new(&deps, opts, &d.fs);
	if (rc < 0)
		goto out;
	rc = fs_mount(d.fs, opts->mountpoint);
	if (rc < 0)
		goto out;
	/* Fork before any thread exists: threads do not survive daemonizing. */
	rc = fs_daemonize(d.fs, opts->foreground);
	if (rc < 0)
		goto out;
	if (drop) {
		rc = drop_privileges(&d, opts, uid, gid);
		if (rc < 0)
			goto out;
	}
	rc = src_ctx_new(cfg, &d.srcs);
	if (rc < 0) {
		af_err("sources: %s", af_strerror(rc));
		goto out;
	}
	rc = cache_open(cfg, d.srcs, d.audit, &d.cache);
	if (rc < 0) {
		af_err("cache %s: %s", cfg->cache_dir, af_strerror(rc));
		goto out;
	}
	fs_set_cache(d.fs, d.cache, d.srcs);
	reload_fd = ctl_catalog_reload_fd(d.catalog);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sighup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	rc = ctl_catalog_start(d.catalog);
	if (rc < 0) {
		af_err("catalog: cannot start the reload thread: %s",
		       af_strerror(rc));
		goto out;
	}
	af_info("mounted on %s", opts->mountpoint);
	rc = fs_serve(d.fs);
	af_info("unmounting %s", opts->mountpoint);
out:
	daemon_release(&d);
	return rc;
}
