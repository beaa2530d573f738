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
#include "upgrade.h"

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

	/* Live upgrade (DESIGN §13, tools/upgrade.h). */
	int listen_fd;			/* the control socket; -1 when none */
	pid_t old_pid;			/* adopting: the daemon taken over */
	int stop_pipe[2];		/* wakes the control thread to quit */
	pthread_t ctl_thread;
	bool ctl_started;
	pthread_mutex_t up_lock;
	pthread_cond_t up_cond;
	int up_sock;			/* a hand-over in progress; up_lock */
	bool up_busy;			/* main thread working on it; up_lock */
	bool handed_over;		/* up_lock */
	/*
	 * The catalog's reload hook (its own thread) and a hand-over (the
	 * main thread, which closes the cache): while handing is set the
	 * hook touches neither the cache nor the session.
	 */
	pthread_mutex_t reload_lock;
	bool handing;			/* reload_lock */
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
 * without sources for the load, and closed again before the fork. No
 * network here: the control plane is asked after the drop (run_as).
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
	size_t n_ids, max_ids = 65536;
	int *ids, rc;

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
	/* Backing ids an adopted mount already has are the helper's to close. */
	ids = calloc(max_ids, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	n_ids = fs_backing_ids(d->fs, ids, max_ids);
	rc = privsep_start(fs_session_fd(d->fs), cfg->cache_dir,
			   opts->mountpoint, ids, n_ids, &d->priv);
	free(ids);
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
	if (d->old_pid > 0)
		printf("artifactfs: upgraded %s: pid %d -> %d\n", d->mountpoint,
		       (int)d->old_pid, (int)child);
	fflush(stdout);	/* the caller leaves with _exit */
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
	if (st.last_failed && d->cfg->registry_url)
		snprintf(buf, len,
			 "control plane unreachable: serving the %llu artifacts last seen on %s",
			 (unsigned long long)st.registrations, d->mountpoint);
	else if (st.last_failed)
		snprintf(buf, len,
			 "registry folder unreadable: serving the %llu artifacts last seen on %s",
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

	pthread_mutex_lock(&d->reload_lock);
	if (d->handing) {
		/* The next daemon (or this one, resumed) catches up. */
		pthread_mutex_unlock(&d->reload_lock);
		return;
	}
	/* DESIGN §6: SIGHUP ends every fetch failure backoff. */
	if (strcmp(why, "signal") == 0 && d->cache) {
		rc = cache_backoff_clear(d->cache);
		if (rc < 0)
			af_warn("cache: cannot clear the fetch failure backoff: %s",
				af_strerror(rc));
		else
			af_info("cache: SIGHUP: fetch failure backoff cleared");
		src_mirrors_forgive(d->srcs);
	}
	/* Names that left the catalog leave the kernel, then memory. */
	fs_catalog_changed(d->fs);
	pthread_mutex_unlock(&d->reload_lock);
	daemon_status(d, status, sizeof(status));
	notify_send(&d->notify, "STATUS=%s", status);
}

/* Starts /metrics on the bound (or inherited) socket, if there is one. */
static int metrics_begin(struct daemon *d)
{
	struct metrics_deps md = { .cfg = d->cfg, .fs = d->fs,
		.cache = d->cache, .srcs = d->srcs, .catalog = d->catalog };
	int fd = d->metrics_fd, rc;

	if (fd < 0)
		return 0;
	d->metrics_fd = -1;	/* taken, closed on failure too */
	rc = metrics_start(fd, &md, &d->metrics);
	if (rc == 0)
		af_info("metrics: serving /metrics on %s", d->cfg->metrics_listen);
	return rc;
}

/* ---- live upgrade: the old daemon's side ------------------------------- */

/*
 * The control thread: accepts root connections on the control socket,
 * reads HELLO, refuses an incompatible version itself (the daemon goes on
 * serving, untouched), and hands a compatible one to the main thread,
 * which stops serving and does the hand-over. It waits for the verdict:
 * after a successful hand-over it ends; after a failed one it listens
 * again.
 */
static void *ctl_main(void *arg)
{
	struct daemon *d = arg;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = d->listen_fd, .events = POLLIN },
			{ .fd = d->stop_pipe[0], .events = POLLIN },
		};
		json_t *hello = NULL;
		int *fds = NULL;
		size_t nfds = 0;
		json_int_t v = 0, min = 0;
		int fd, type;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			af_err("upgrade: control socket: %s", strerror(errno));
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		fd = upgrade_accept(d->listen_fd);
		if (fd < 0)
			continue;
		type = upgrade_recv(fd, 5, &hello, &fds, &nfds);
		upgrade_close_fds(fds, nfds);
		if (type == UPGRADE_HELLO) {
			v = json_integer_value(json_object_get(hello, "version"));
			min = json_integer_value(json_object_get(hello, "min_version"));
		}
		json_decref(hello);
		if (type != UPGRADE_HELLO) {
			af_warn("upgrade: a connection without HELLO: ignored");
			close(fd);
			continue;
		}
		if (UPGRADE_VERSION < min || UPGRADE_VERSION > v) {
			char reason[256];
			json_t *r;

			snprintf(reason, sizeof(reason),
				 "the running daemon (pid %d) writes hand-over version %d; the new binary reads versions %lld to %lld: unmount and mount again to change binaries",
				 (int)getpid(), UPGRADE_VERSION, (long long)min,
				 (long long)v);
			af_warn("upgrade refused: %s", reason);
			r = json_pack("{s:s}", "reason", reason);
			upgrade_send(fd, UPGRADE_REFUSE, r, NULL, 0);
			json_decref(r);
			close(fd);
			continue;
		}
		pthread_mutex_lock(&d->up_lock);
		d->up_sock = fd;
		d->up_busy = true;
		pthread_mutex_unlock(&d->up_lock);
		af_info("upgrade: a new binary asks for the mount: handing over");
		fs_request_stop(d->fs);
		pthread_mutex_lock(&d->up_lock);
		while (d->up_busy)
			pthread_cond_wait(&d->up_cond, &d->up_lock);
		if (d->handed_over) {
			pthread_mutex_unlock(&d->up_lock);
			return NULL;
		}
		pthread_mutex_unlock(&d->up_lock);
	}
}

static int ctl_start(struct daemon *d)
{
	int rc;

	if (d->listen_fd < 0)
		return 0;
	if (pipe2(d->stop_pipe, O_CLOEXEC) < 0)
		return -errno;
	rc = pthread_create(&d->ctl_thread, NULL, ctl_main, d);
	if (rc)
		return -rc;
	d->ctl_started = true;
	return 0;
}

static void ctl_stop(struct daemon *d)
{
	if (d->ctl_started) {
		char q = 'q';

		if (write(d->stop_pipe[1], &q, 1) != 1)
			af_warn("upgrade: cannot stop the control thread");
		pthread_join(d->ctl_thread, NULL);
		d->ctl_started = false;
	}
	if (d->stop_pipe[0] >= 0)
		close(d->stop_pipe[0]);
	if (d->stop_pipe[1] >= 0)
		close(d->stop_pipe[1]);
	d->stop_pipe[0] = d->stop_pipe[1] = -1;
}

/* Tells the control thread how the hand-over it started ended. */
static void ctl_verdict(struct daemon *d, bool handed)
{
	pthread_mutex_lock(&d->up_lock);
	if (d->up_sock >= 0)
		close(d->up_sock);
	d->up_sock = -1;
	d->handed_over = handed;
	d->up_busy = false;
	pthread_cond_broadcast(&d->up_cond);
	pthread_mutex_unlock(&d->up_lock);
}

/*
 * The old daemon hands the mount over (fs_serve has returned: no request
 * is being read or answered). Returns true when the new daemon took it
 * (GO sent: this process must exit without touching the mount), false
 * when it did not (the caller resumes serving).
 */
static bool handover(struct daemon *d)
{
	json_t *doc = NULL, *ans = NULL;
	int *fds = NULL, *rfds = NULL, *all = NULL;
	size_t nfds = 0, nr = 0;
	int sock, type, rc;

	pthread_mutex_lock(&d->up_lock);
	sock = d->up_sock;
	pthread_mutex_unlock(&d->up_lock);
	notify_send(&d->notify, "RELOADING=1\nSTATUS=handing %s over to a new binary",
		    d->mountpoint);
	/* The catalog's reload hook stays off the cache and the session now. */
	pthread_mutex_lock(&d->reload_lock);
	d->handing = true;
	pthread_mutex_unlock(&d->reload_lock);
	/* Opens waiting for a fetch: theirs to answer now; then the fetches stop. */
	fs_handover_hold(d->fs);
	ctl_catalog_set_store(d->catalog, NULL);
	/* /metrics reads the cache: stop it, keep its socket for the next one. */
	if (d->metrics) {
		d->metrics_fd = metrics_release(d->metrics);
		d->metrics = NULL;
	}
	/* Ranges in flight land and are recorded: the new daemon resumes after. */
	cache_drain(d->cache, UPGRADE_DRAIN_MS);
	cache_close(d->cache);
	d->cache = NULL;
	fs_set_cache(d->fs, NULL);
	rc = fs_handover_export(d->fs, &doc, &fds, &nfds);
	if (rc < 0) {
		af_err("upgrade: cannot gather the state: %s", af_strerror(rc));
		goto out_failed;
	}
	all = malloc((nfds + 2) * sizeof(*all));
	if (!all) {
		rc = -ENOMEM;
		goto out_failed;
	}
	memcpy(all, fds, nfds * sizeof(*all));
	free(fds);	/* the fds themselves stay fs's */
	fds = NULL;
	json_object_set_new(doc, "version", json_integer(UPGRADE_VERSION));
	json_object_set_new(doc, "pid", json_integer(getpid()));
	json_object_set_new(doc, "listen_fd", json_integer((json_int_t)nfds));
	all[nfds++] = d->listen_fd;
	if (d->metrics_fd >= 0) {
		json_object_set_new(doc, "metrics_fd",
				    json_integer((json_int_t)nfds));
		all[nfds++] = d->metrics_fd;
	}
	af_hook("upgrade.old.before_state");
	rc = upgrade_send(sock, UPGRADE_STATE, doc, all, nfds);
	if (rc < 0) {
		af_err("upgrade: cannot send the state: %s", af_strerror(rc));
		goto out_failed;
	}
	type = upgrade_recv(sock, UPGRADE_READY_TIMEOUT_S, &ans, &rfds, &nr);
	upgrade_close_fds(rfds, nr);
	if (type != UPGRADE_READY) {
		const char *why = json_string_value(json_object_get(ans, "reason"));

		if (type == UPGRADE_FAIL)
			af_err("upgrade: the new daemon failed: %s", why ? why : "?");
		else if (type == -ETIMEDOUT)
			af_err("upgrade: the new daemon said nothing for %d s",
			       UPGRADE_READY_TIMEOUT_S);
		else
			af_err("upgrade: the new daemon went away before it was ready");
		goto out_failed;
	}
	af_hook("upgrade.old.before_go");
	rc = upgrade_send(sock, UPGRADE_GO, NULL, NULL, 0);
	if (rc < 0) {
		af_err("upgrade: the new daemon went away at GO: %s",
		       af_strerror(rc));
		goto out_failed;
	}
	json_decref(ans);
	json_decref(doc);
	free(all);
	fs_handover_done(d->fs);
	return true;

out_failed:
	json_decref(ans);
	json_decref(doc);
	free(fds);
	free(all);
	return false;
}

/* After a hand-over that failed: the fetches and the waiting opens again. */
static int handover_resume(struct daemon *d)
{
	int rc = cache_open(d->cfg, d->srcs, d->audit, &d->cache);

	if (rc < 0) {
		af_err("cache %s: %s", d->cfg->cache_dir, af_strerror(rc));
		return rc;
	}
	fs_set_cache(d->fs, d->cache);
	ctl_catalog_set_store(d->catalog, d->cache);
	rc = metrics_begin(d);
	if (rc < 0)
		af_warn("metrics: not serving after the failed upgrade: %s",
			af_strerror(rc));
	rc = fs_handover_resume(d->fs);
	/* What the catalog published meanwhile reaches the kernel now. */
	pthread_mutex_lock(&d->reload_lock);
	d->handing = false;
	fs_catalog_changed(d->fs);
	pthread_mutex_unlock(&d->reload_lock);
	af_info("upgrade did not happen: serving %s on", d->mountpoint);
	notify_send(&d->notify, "READY=1\nSTATUS=%s", d->status);
	return rc;
}

/* ---- live upgrade: the new daemon's side -------------------------------- */

/*
 * Tells the old daemon everything is built and waits for GO. Returns 0
 * (serve), or -errno (the old one serves on: exit).
 */
static int adopt_ready(struct daemon *d, struct daemon_adopt *a, pid_t old)
{
	json_t *ans = NULL;
	int *fds = NULL;
	size_t nfds = 0;
	int rc, type;

	af_hook("upgrade.new.before_ready");
	rc = upgrade_send(a->sock, UPGRADE_READY, NULL, NULL, 0);
	if (rc < 0)
		return rc;
	type = upgrade_recv(a->sock, 10, &ans, &fds, &nfds);
	upgrade_close_fds(fds, nfds);
	json_decref(ans);
	if (type == UPGRADE_GO)
		return 0;
	/*
	 * No GO: if the old daemon lives, it resumed (it closed on us): it
	 * serves, we must not. If it died after STATE, nobody else can serve.
	 */
	if (old > 0 && kill(old, 0) < 0 && errno == ESRCH) {
		af_warn("upgrade: the old daemon (pid %d) died before GO: serving",
			(int)old);
		return 0;
	}
	af_err("upgrade: the old daemon did not let go of %s", d->mountpoint);
	return -EAGAIN;
}

static void adopt_fail(struct daemon_adopt *a, const char *reason)
{
	json_t *r = json_pack("{s:s}", "reason", reason);

	if (a->sock >= 0)
		upgrade_send(a->sock, UPGRADE_FAIL, r, NULL, 0);
	json_decref(r);
}

int daemon_run(const struct pol_config *cfg, const struct fs_mount_opts *opts,
	       struct daemon_adopt *adopt)
{
	struct daemon d = { .cfg = cfg, .mountpoint = opts->mountpoint,
			    .ready_fd = -1, .metrics_fd = -1, .listen_fd = -1,
			    .stop_pipe = { -1, -1 }, .up_sock = -1 };
	struct fs_deps deps;
	struct sigaction sa;
	char path[256];
	pid_t old_pid = 0;
	bool drop;
	uid_t uid = 0;
	gid_t gid = 0;
	int rc;

	pthread_mutex_init(&d.up_lock, NULL);
	pthread_mutex_init(&d.reload_lock, NULL);
	pthread_cond_init(&d.up_cond, NULL);
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
	/*
	 * Bound now: a busy port fails the command, as root, before the fork.
	 * A live upgrade inherits the old daemon's socket instead (below).
	 */
	if (cfg->metrics_listen && !(adopt && json_integer_value(
			json_object_get(adopt->state, "metrics_fd")) > 0)) {
		rc = d.metrics_fd = metrics_bind(cfg->metrics_listen);
		if (rc < 0)
			goto out;
	}
	deps = (struct fs_deps){ .cfg = cfg, .audit = d.audit,
				 .catalog = d.catalog };
	rc = fs_new(&deps, opts, &d.fs);
	if (rc < 0)
		goto out;
	if (adopt) {
		json_int_t lfd = json_integer_value(json_object_get(adopt->state,
								   "listen_fd"));

		old_pid = (pid_t)json_integer_value(json_object_get(adopt->state,
								   "pid"));
		d.old_pid = old_pid;
		rc = fs_adopt(d.fs, opts->mountpoint, adopt->state, adopt->fds,
			      adopt->nfds);
		if (rc < 0)
			goto out;
		if (lfd >= 0 && (size_t)lfd < adopt->nfds) {
			d.listen_fd = adopt->fds[lfd];
			adopt->fds[lfd] = -1;
		}
		lfd = json_integer_value(json_object_get(adopt->state,
							 "metrics_fd"));
		if (cfg->metrics_listen && lfd > 0 && (size_t)lfd < adopt->nfds &&
		    d.metrics_fd < 0) {
			d.metrics_fd = adopt->fds[lfd];
			adopt->fds[lfd] = -1;
		}
		/* What the state brought and nothing took is not ours to keep. */
		for (size_t i = 0; i < adopt->nfds; i++) {
			if (adopt->fds[i] >= 0)
				close(adopt->fds[i]);
			adopt->fds[i] = -1;
		}
	} else {
		notify_send(&d.notify, "STATUS=mounting %s", opts->mountpoint);
		rc = fs_mount(d.fs, opts->mountpoint);
		if (rc < 0)
			goto out;
		/* Root's socket, bound before the drop (tools/upgrade.h). */
		rc = upgrade_sock_path(cfg, opts->mountpoint, path, sizeof(path));
		if (rc == 0)
			rc = upgrade_listen(path);
		if (rc < 0)
			af_warn("upgrade: no control socket (%s): live upgrade unavailable",
				af_strerror(rc));
		else
			d.listen_fd = rc;
		rc = 0;
	}
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
	rc = src_ctx_new(cfg, d.audit, &d.srcs);
	if (rc < 0) {
		af_err("sources: %s", af_strerror(rc));
		goto out;
	}
	rc = cache_open(cfg, d.srcs, d.audit, &d.cache);
	if (rc < 0) {
		af_err("cache %s: %s", cfg->cache_dir, af_strerror(rc));
		goto out;
	}
	fs_set_cache(d.fs, d.cache);
	ctl_catalog_set_store(d.catalog, d.cache);
	/*
	 * The control plane is asked now, as the user the daemon runs as,
	 * before the session serves: the first listing through the mount
	 * shows what it says (or, when it cannot be reached, what was kept).
	 * Not in a live upgrade: the mount waits for this daemon, and the old
	 * one kept its last answers in the cache index (restored by the first
	 * load); the reload thread polls as soon as it starts.
	 */
	if (!adopt) {
		rc = ctl_catalog_sync(d.catalog);
		if (rc < 0)
			goto out;
	}
	if (adopt) {
		rc = adopt_ready(&d, adopt, old_pid);
		if (rc < 0)
			goto out;
		close(adopt->sock);
		adopt->sock = -1;
		/* Now ours: the opens that were waiting get their fetch again. */
		rc = fs_adopt_resume(d.fs);
		if (rc < 0)
			goto out;
		af_info("took over %s from pid %d", opts->mountpoint, (int)old_pid);
	}
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
	rc = metrics_begin(&d);
	if (rc < 0)
		goto out;
	rc = ctl_start(&d);
	if (rc < 0) {
		af_err("upgrade: cannot start the control thread: %s",
		       af_strerror(rc));
		goto out;
	}
	rc = -pthread_create(&d.probe, NULL, probe_main, &d);
	if (rc < 0) {
		af_err("cannot start the readiness probe: %s", af_strerror(rc));
		goto out;
	}
	d.probe_started = true;
	for (;;) {
		rc = fs_serve(d.fs);
		if (!fs_stop_requested(d.fs))
			break;
		if (handover(&d)) {
			ctl_verdict(&d, true);
			goto out_handed;
		}
		ctl_verdict(&d, false);
		rc = handover_resume(&d);
		if (rc < 0)
			break;
	}
	notify_send(&d.notify, "STOPPING=1\nSTATUS=unmounting %s",
		    opts->mountpoint);
	af_info("unmounting %s", opts->mountpoint);
out:
	if (adopt && adopt->sock >= 0 && rc < 0)
		adopt_fail(adopt, af_strerror(rc));
	ctl_stop(&d);
	daemon_release(&d);
	/* After the unmount: a probe still in stat(2) has its answer now. */
	if (d.probe_started)
		pthread_join(d.probe, NULL);
	if (d.ready_fd >= 0)
		close(d.ready_fd);
	if (d.listen_fd >= 0)
		close(d.listen_fd);
	notify_release(&d.notify);
	pthread_cond_destroy(&d.up_cond);
	pthread_mutex_destroy(&d.up_lock);
	pthread_mutex_destroy(&d.reload_lock);
	return rc;

out_handed:
	/*
	 * The mount is the new daemon's now: nothing here may answer a
	 * request, unmount, or unregister a backing file. Stop what writes
	 * (the catalog's thread, the audit log), then leave at once: the
	 * rest (the session, the tables, the fds) goes with the process.
	 */
	af_info("handed %s over: exiting", opts->mountpoint);
	ctl_stop(&d);
	ctl_catalog_free(d.catalog);
	audit_close(d.audit);
	if (d.probe_started)
		pthread_join(d.probe, NULL);
	notify_release(&d.notify);
	_exit(0);
}
