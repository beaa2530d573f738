/*
 * daemon.c - the composition root of a mount (DESIGN §1): which contexts
 * the daemon has, in which order they are made and unmade, and who owns
 * them. fs/ serves requests with what it is given here; nothing below
 * tools/ creates a context for another room.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../fs/fs.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../sources/source.h"
#include "daemon.h"
#include "metrics.h"
#include "notify.h"
#include "privsep.h"

/*
 * How long the mount command waits for a detached daemon's mount to
 * answer before it gives up (and stops the daemon): the slow parts (the
 * registry, the policy, the cache's pre-flight) are done before the fork.
 */
#define DAEMON_READY_TIMEOUT_MS	60000
/* How long a parent that reported READY=1 waits for the manager to take it. */
#define DAEMON_BARRIER_MS	5000

/* The only signal-handler state (STYLE.md): where SIGHUP writes. */
static volatile sig_atomic_t reload_fd = -1;

/*
 * SIGHUP (DESIGN §9): reload the registry and the policy (the catalog's
 * thread does it), and reopen the log file for logrotate. Both are
 * async-signal-safe: a write(2) and an open/dup2/close.
 */
static void on_sighup(int sig)
{
	int fd = reload_fd;
	char c = 'h';

	(void)sig;
	af_log_reopen();
	if (fd >= 0 && write(fd, &c, 1) < 0) {
		/* Nothing to do in a signal handler; the next poll reloads. */
	}
}

struct daemon {
	const struct pol_config *cfg;
	const char *mountpoint;
	struct audit *audit;
	struct ctl_catalog *catalog;
	struct src_ctx *srcs;
	struct cache *cache;
	struct fs_ctx *fs;
	struct privsep *priv;		/* with [daemon] run_as */
	int metrics_fd;			/* bound, until metrics_start takes it */
	struct metrics *metrics;	/* with [metrics] listen */

	/* Readiness (DESIGN §13). */
	struct notify notify;		/* the service manager, if any */
	int ready_fd;			/* detached: the pipe to the waiting
					   command; -1 in the foreground */
	pthread_t probe;
	bool probe_started;
	char status[256];		/* STATUS= once ready; set before the probe */
};

static void daemon_release(struct daemon *d)
{
	reload_fd = -1;
	signal(SIGHUP, SIG_DFL);
	/* First: a scrape reads every context below. */
	metrics_stop(d->metrics);
	d->metrics = NULL;
	if (d->metrics_fd >= 0)
		close(d->metrics_fd);
	d->metrics_fd = -1;
	/* The catalog's threads stop before anything they touch goes. */
	ctl_catalog_stop(d->catalog);
	/* Before the session goes: answers every open still waiting. */
	cache_close(d->cache);
	d->cache = NULL;
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
 * The first load of the catalog, before the fork. The cache opens after
 * daemonizing (its threads do not survive the fork), but a cache that
 * cannot open must fail the mount command itself, not a detached daemon
 * after "mounted" was reported; and the control plane's answers kept in
 * its index (DESIGN §3 outage) are needed now. So it is opened here
 * without sources for the load, and closed again before the fork.
 */
static int catalog_first_load(const struct pol_config *cfg,
			      struct ctl_catalog *cat)
{
	struct cache *c = NULL;
	int rc = cache_open(cfg, NULL, NULL, &c);

	if (rc < 0) {
		af_err("cache %s: %s", cfg->cache_dir, af_strerror(rc));
		return rc;
	}
	ctl_catalog_set_store(cat, c);
	rc = ctl_catalog_load(cat, true);
	ctl_catalog_set_store(cat, NULL);
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
	/* Open already; the user must be able to reopen it on SIGHUP. */
	if (cfg->log_file && chown(cfg->log_file, uid, gid) < 0)
		af_warn("[log] file %s: chown: %s", cfg->log_file,
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

/*
 * The command's side of detaching: wait for the daemon's word. 'R' means
 * its mount answers: report READY=1 for it when a service manager
 * started us (we are the main process; MAINPID= hands the role over,
 * DESIGN §13) and exit 0. End of file means it failed (its messages went
 * to our stderr, which it shares until ready): exit 1. A daemon that says
 * nothing in DAEMON_READY_TIMEOUT_MS is stopped.
 */
static int detach_wait(struct daemon *d, int fd, pid_t child)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	long long deadline = af_now_ms() + DAEMON_READY_TIMEOUT_MS;
	char c = 0;

	for (;;) {
		long long left = deadline - af_now_ms();
		int n;

		if (left <= 0) {
			af_err("the daemon (pid %d) did not answer on %s within %d s: stopping it",
			       (int)child, d->mountpoint,
			       DAEMON_READY_TIMEOUT_MS / 1000);
			kill(child, SIGTERM);
			return EXIT_FAILURE;
		}
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return EXIT_FAILURE;
		if (n == 0)
			continue;
		if (read(fd, &c, 1) == 1 && c == 'R')
			break;
		/* The daemon exited (its errors are on our stderr already). */
		return EXIT_FAILURE;
	}
	if (notify_enabled(&d->notify)) {
		notify_send(&d->notify, "MAINPID=%d\nREADY=1\nSTATUS=%s",
			    (int)child, d->status);
		if (notify_barrier(&d->notify, DAEMON_BARRIER_MS) < 0)
			af_warn("the service manager did not confirm READY=1");
	}
	return EXIT_SUCCESS;
}

/*
 * Detaches from the terminal unless in the foreground: the command's
 * process forks; it waits in detach_wait and exits with the outcome, the
 * child goes on as the daemon (a new session, cwd /, stdin and stdout on
 * /dev/null; stderr stays the command's until the mount answers, so what
 * goes wrong before is seen where the command was run). Call before any
 * thread exists. Returns 0 in the daemon, or -errno.
 */
static int daemon_detach(struct daemon *d, bool foreground)
{
	int p[2], nullfd;
	pid_t pid;

	if (chdir("/") < 0)
		return -errno;
	if (foreground)
		return 0;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid > 0) {
		close(p[1]);
		/* A logrotate SIGHUP meant for daemons must not end the wait. */
		signal(SIGHUP, SIG_IGN);
		/* _exit: the session and the mount now belong to the child. */
		_exit(detach_wait(d, p[0], pid));
	}
	close(p[0]);
	d->ready_fd = p[1];
	if (setsid() < 0)
		return -errno;
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nullfd < 0)
		return -errno;
	dup2(nullfd, STDIN_FILENO);
	dup2(nullfd, STDOUT_FILENO);
	close(nullfd);
	return 0;
}

/*
 * The mount answers once a stat through it does: the kernel's INIT done
 * and the session loop serving (DESIGN §13 "once the mount answers").
 * Then: in the foreground, READY=1 from this process (the main one); when
 * detached, the word to the waiting command (which reports READY=1), and
 * from now on messages go to the log only (the command has returned).
 */
static void *probe_main(void *arg)
{
	struct daemon *d = arg;
	struct stat sb;
	char c = 'R';

	if (stat(d->mountpoint, &sb) < 0) {
		af_err("%s does not answer: %s", d->mountpoint, strerror(errno));
		return NULL;	/* detached: the command sees the pipe close */
	}
	af_info("mounted: %s", d->status);
	if (d->ready_fd < 0) {
		notify_send(&d->notify, "READY=1\nSTATUS=%s", d->status);
		return NULL;
	}
	if (af_log_detach() < 0)
		af_warn("cannot redirect stderr to the log");
	if (write(d->ready_fd, &c, 1) != 1)
		af_warn("cannot tell the mount command that the mount is ready");
	close(d->ready_fd);
	d->ready_fd = -1;
	return NULL;
}

/* STATUS= for the service manager: what the node serves now. */
static void daemon_status(struct daemon *d, char *buf, size_t len)
{
	struct ctl_stats st;

	ctl_catalog_stats(d->catalog, &st);
	if (st.last_failed)
		snprintf(buf, len,
			 "registry unreachable: serving the %llu artifacts last seen on %s",
			 (unsigned long long)st.registrations, d->mountpoint);
	else
		snprintf(buf, len, "serving %llu artifacts on %s",
			 (unsigned long long)st.registrations, d->mountpoint);
}

/* After each reload (the catalog's thread): a fresh STATUS=. */
static void on_reload(void *arg, const char *why)
{
	struct daemon *d = arg;
	char status[256];
	int rc;

	/* DESIGN §6: SIGHUP ends every fetch failure backoff. */
	if (strcmp(why, "signal") == 0 && d->cache) {
		rc = cache_backoff_clear(d->cache);
		if (rc < 0)
			af_warn("cache: cannot clear the fetch failure backoff: %s",
				af_strerror(rc));
		else
			af_info("cache: SIGHUP: fetch failure backoff cleared");
	}
	/* Names that left the catalog leave the kernel, then memory. */
	fs_catalog_changed(d->fs);
	daemon_status(d, status, sizeof(status));
	notify_send(&d->notify, "STATUS=%s", status);
}

int daemon_run(const struct pol_config *cfg, const struct fs_mount_opts *opts)
{
	struct daemon d = { .cfg = cfg, .mountpoint = opts->mountpoint,
			    .ready_fd = -1, .metrics_fd = -1 };
	struct fs_deps deps;
	struct sigaction sa;
	bool drop;
	uid_t uid = 0;
	gid_t gid = 0;
	int rc;

	notify_init(&d.notify);
	rc = resolve_run_as(cfg, &drop, &uid, &gid);
	if (rc < 0)
		goto out;
	if (cfg->log_file) {
		rc = af_log_open_file(cfg->log_file);
		if (rc < 0) {
			af_err("[log] file %s: %s", cfg->log_file,
			       af_strerror(rc));
			goto out;
		}
	}
	notify_send(&d.notify, "STATUS=loading the registry and the policy");

	rc = audit_open(cfg->audit_log, cfg->audit_syslog, &d.audit);
	if (rc < 0) {
		af_err("audit log %s: %s", cfg->audit_log ? cfg->audit_log : "-",
		       af_strerror(rc));
		goto out;
	}
	rc = ctl_catalog_new(cfg, d.audit, &d.catalog);
	if (rc < 0)
		goto out;
	rc = catalog_first_load(cfg, d.catalog);
	if (rc < 0)
		goto out;
	/* Bound now: a busy port fails the command, as root, before the fork. */
	if (cfg->metrics_listen) {
		rc = d.metrics_fd = metrics_bind(cfg->metrics_listen);
		if (rc < 0)
			goto out;
	}
	deps = (struct fs_deps){ .cfg = cfg, .audit = d.audit,
				 .catalog = d.catalog };
	rc = fs_new(&deps, opts, &d.fs);
	if (rc < 0)
		goto out;
	notify_send(&d.notify, "STATUS=mounting %s", opts->mountpoint);
	rc = fs_mount(d.fs, opts->mountpoint);
	if (rc < 0)
		goto out;
	daemon_status(&d, d.status, sizeof(d.status));
	/* Fork before any thread exists: threads do not survive daemonizing. */
	rc = daemon_detach(&d, opts->foreground);
	if (rc < 0) {
		af_err("cannot detach: %s", af_strerror(rc));
		goto out;
	}
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
	ctl_catalog_set_store(d.catalog, d.cache);
	reload_fd = ctl_catalog_reload_fd(d.catalog);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sighup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	ctl_catalog_on_reload(d.catalog, on_reload, &d);
	rc = ctl_catalog_start(d.catalog);
	if (rc < 0) {
		af_err("catalog: cannot start the reload thread: %s",
		       af_strerror(rc));
		goto out;
	}
	if (d.metrics_fd >= 0) {
		struct metrics_deps md = { .cfg = cfg, .fs = d.fs,
			.cache = d.cache, .srcs = d.srcs, .catalog = d.catalog };
		int fd = d.metrics_fd;

		d.metrics_fd = -1;	/* taken, closed on failure too */
		rc = metrics_start(fd, &md, &d.metrics);
		if (rc < 0)
			goto out;
		af_info("metrics: serving /metrics on %s", cfg->metrics_listen);
	}
	rc = -pthread_create(&d.probe, NULL, probe_main, &d);
	if (rc < 0) {
		af_err("cannot start the readiness probe: %s", af_strerror(rc));
		goto out;
	}
	d.probe_started = true;
	rc = fs_serve(d.fs);
	notify_send(&d.notify, "STOPPING=1\nSTATUS=unmounting %s",
		    opts->mountpoint);
	af_info("unmounting %s", opts->mountpoint);
out:
	daemon_release(&d);
	/* After the unmount: a probe still in stat(2) has its answer now. */
	if (d.probe_started)
		pthread_join(d.probe, NULL);
	if (d.ready_fd >= 0)
		close(d.ready_fd);
	notify_release(&d.notify);
	return rc;
}
