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

int daemon_run(const struct pol_config *cfg, const struct fs_mount_opts *opts)
{
	struct daemon d = { .cfg = cfg };
	struct fs_deps deps;
	struct sigaction sa;
	int rc;

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
