/*
 * af.c - error codes, logging and clocks shared by every subsystem (af.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "af.h"
#include "pol_int.h"

#define AF_LOG_LINE_MAX	4096

/*
 * Log settings: the one process-wide state af.h allows. Written by
 * af_log_setup before threads start, read-only afterwards.
 */
static enum af_log_level log_max = AF_LOG_INFO;
static enum af_log_format log_format = AF_LOG_TEXT;
static bool log_syslog;
/*
 * The log file: its fd number never changes once opened (a reopen dup2s
 * the new file over it), so writers need no lock against a reopen. The
 * path is written once, before threads start.
 */
static int log_fd = -1;
static char log_path[4096];
/* Written with __atomic: lines go to stderr (1) or not (0). */
static int log_to_stderr = 1;
/* Written with __atomic: fd 2 is the log file too (af_log_detach). */
static int log_stderr_is_file;
/* Orders whole lines from concurrent threads on stderr. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

const char *af_strerror(int err)
{
	const char *s;

	switch (err) {
	case 0:
		return "success";
	case AF_EDIGEST:
		return "digest mismatch";
	case AF_ESIZE:
		return "size differs from registration";
	case AF_EDENIED:
		return "denied by policy";
	case AF_EUNREG:
		return "not registered";
	case AF_EPARSE:
		return "malformed input";
	case AF_ESOURCE:
		return "source failed";
	case AF_ECRED:
		return "credential refused";
	case AF_EQUARANTINE:
		return "blob quarantined";
	case AF_ETIMEDOUT:
		return "transfer timed out";
	case AF_EBACKOFF:
		return "backing off after a failed fetch (fetch.failure_backoff)";
	default:
		break;
	}
	if (err < 0 && err > AF_EBASE) {
		s = strerrordesc_np(-err);
		if (s)
			return s;
	}
	return "unknown error";
}

int af_errno(int err)
{
	switch (err) {
	case 0:
		return 0;
	case AF_EDIGEST:
	case AF_ESIZE:
	case AF_ESOURCE:
	case AF_EQUARANTINE:
	case AF_ETIMEDOUT:
	case AF_EBACKOFF:
		return EIO;
	case AF_EDENIED:
	case AF_ECRED:
		return EACCES;
	case AF_EUNREG:
		return ENOENT;
	case AF_EPARSE:
		return EINVAL;
	default:
		break;
	}
	if (err < 0 && err > AF_EBASE)
		return -err;
	return EIO;
}

void af_log_setup(enum af_log_level max_level, enum af_log_format format,
		  bool use_syslog)
{
	log_max = max_level;
	log_format = format;
	log_syslog = use_syslog;
	if (use_syslog)
		openlog("artifactfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

enum af_log_level af_log_get_level(void)
{
	return log_max;
}

enum af_log_format af_log_get_format(void)
{
	return log_format;
}

int af_log_open_file(const char *path)
{
	size_t n = strlen(path);
	int fd;

	if (n == 0 || n >= sizeof(log_path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
		  0640);
	if (fd < 0)
		return -errno;
	memcpy(log_path, path, n + 1);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	return 0;
}

int af_log_detach(void)
{
	int fd = log_fd, rc = 0;

	if (fd < 0) {
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	__atomic_store_n(&log_to_stderr, 0, __ATOMIC_RELEASE);
	if (dup2(fd, STDERR_FILENO) < 0)
		rc = -errno;
	else if (fd == log_fd)
		__atomic_store_n(&log_stderr_is_file, 1, __ATOMIC_RELEASE);
	if (fd != log_fd)
		close(fd);
	return rc;
}

int af_log_reopen(void)
{
	int fd, rc = 0, saved = errno;

	if (log_fd < 0)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		  O_NOCTTY, 0640);
	if (fd < 0) {
		rc = -errno;
		errno = saved;
		return rc;
	}
	if (dup2(fd, log_fd) < 0)
		rc = -errno;
	else if (__atomic_load_n(&log_stderr_is_file, __ATOMIC_ACQUIRE) &&
		 dup2(fd, STDERR_FILENO) < 0)
		rc = -errno;
	close(fd);
	errno = saved;
	return rc;
}

void af_log_close_file(void)
{
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	log_path[0] = '\0';
	__atomic_store_n(&log_stderr_is_file, 0, __ATOMIC_RELEASE);
}

static const char *level_name(enum af_log_level level)
{
	switch (level) {
	case AF_LOG_ERROR:
		return "error";
	case AF_LOG_WARN:
		return "warning";
	case AF_LOG_INFO:
		return "info";
	case AF_LOG_DEBUG:
		return "debug";
	default:
		return "log";
	}
}

static int level_prio(enum af_log_level level)
{
	switch (level) {
	case AF_LOG_ERROR:
		return LOG_ERR;
	case AF_LOG_WARN:
		return LOG_WARNING;
	case AF_LOG_INFO:
		return LOG_INFO;
	case AF_LOG_DEBUG:
		return LOG_DEBUG;
	default:
		return LOG_NOTICE;
	}
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

void af_vlog(enum af_log_level level, const char *fmt, va_list ap)
{
	char msg[AF_LOG_LINE_MAX], ts[32];
	struct pol_buf line;
	int saved = errno;

	if (level > log_max)
		return;
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	pol_buf_init(&line, 2 * AF_LOG_LINE_MAX);
	if (log_format == AF_LOG_JSON) {
		af_rfc3339(af_wall_ms() / 1000, ts, sizeof(ts));
		pol_buf_addf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":",
			     ts, level_name(level));
		pol_buf_add_json_string(&line, msg);
		pol_buf_adds(&line, "}\n");
	} else {
		pol_buf_addf(&line, "artifactfs: %s: %s\n", level_name(level),
			     msg);
	}
	if (!line.failed && line.p) {
		pthread_mutex_lock(&log_lock);
		if (__atomic_load_n(&log_to_stderr, __ATOMIC_ACQUIRE))
			write_all(STDERR_FILENO, line.p, line.len);
		if (log_fd >= 0)
			write_all(log_fd, line.p, line.len);
		pthread_mutex_unlock(&log_lock);
	}
	pol_buf_release(&line);
	if (log_syslog)
		syslog(LOG_DAEMON | level_prio(level), "%s", msg);
	errno = saved;
}

void af_log(enum af_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	af_vlog(level, fmt, ap);
	va_end(ap);
}

long long af_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct timespec af_deadline(clockid_t clock, long long ms)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

long long af_wall_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

char *af_rfc3339(long long epoch_s, char *buf, size_t len)
{
	struct tm tm;
	time_t t;

	if (len == 0)
		return buf;
	buf[0] = '\0';
	/* Four-digit years from 1970 on (RFC 3339 section 5.6 date-fullyear). */
	if (epoch_s < 0)
		epoch_s = 0;
	if (epoch_s > 253402300799LL)
		epoch_s = 253402300799LL;
	t = (time_t)epoch_s;
	if (!gmtime_r(&t, &tm))
		return buf;
	if (strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		buf[0] = '\0';
	return buf;
}

#ifdef AF_TEST_HOOKS
#define HOOKS_MAX	8

struct hook {
	char name[64];
	char action[32];
	unsigned long at;	/* hit that fires; 0: every hit */
	unsigned long hits;	/* __atomic */
};

/* Parsed once from AF_HOOK; read-only afterwards but for the counters. */
static struct hook hooks[HOOKS_MAX];
static size_t n_hooks;
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void hooks_parse(void)
{
	const char *env = getenv("AF_HOOK");
	char buf[512], *save = NULL, *tok;

	if (!env || strlen(env) >= sizeof(buf))
		return;
	memcpy(buf, env, strlen(env) + 1);
	for (tok = strtok_r(buf, ",", &save); tok && n_hooks < HOOKS_MAX;
	     tok = strtok_r(NULL, ",", &save)) {
		struct hook *h = &hooks[n_hooks];
		char *eq = strchr(tok, '='), *at;

		if (!eq || (size_t)(eq - tok) >= sizeof(h->name))
			continue;
		*eq = '\0';
		at = strchr(eq + 1, '@');
		h->at = 1;
		if (at) {
			*at = '\0';
			h->at = strtoul(at + 1, NULL, 10);
		}
		snprintf(h->name, sizeof(h->name), "%s", tok);
		snprintf(h->action, sizeof(h->action), "%s", eq + 1);
		n_hooks++;
	}
}

void af_hook(const char *name)
{
	pthread_once(&hooks_once, hooks_parse);
	for (size_t i = 0; i < n_hooks; i++) {
		struct hook *h = &hooks[i];
		unsigned long n;

		if (strcmp(h->name, name) != 0)
			continue;
		n = __atomic_add_fetch(&h->hits, 1, __ATOMIC_RELAXED);
		if (h->at && n != h->at)
			continue;
		af_log(AF_LOG_WARN, "test hook %s: %s (hit %lu)", name,
		       h->action, n);
		if (strcmp(h->action, "kill") == 0)
			raise(SIGKILL);
		else if (strcmp(h->action, "abort") == 0)
			abort();
		else if (strcmp(h->action, "exit") == 0)
			_exit(3);
		else if (strncmp(h->action, "sleep:", 6) == 0)
			usleep((useconds_t)strtoul(h->action + 6, NULL, 10) * 1000);
	}
}
#endif
