/*
 * af.h - the bottom of the tree: error codes and logging shared by every
 * subsystem. Depends on nothing of ours.
 *
 * Error convention (STYLE.md "Errors"): functions return 0 or a negative
 * value. Negative values above AF_EBASE are -errno; project-specific
 * failures use the AF_E* codes below. af_errno() converts either to the
 * positive errno the kernel gets, exactly once, at fuse_reply_err.
 */
#ifndef AF_H
#define AF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define AF_EBASE	(-4096)

enum {
	AF_EDIGEST = AF_EBASE - 1,	/* digest mismatch (EIO) */
	AF_ESIZE = AF_EBASE - 2,	/* source size differs from registration (EIO) */
	AF_EDENIED = AF_EBASE - 3,	/* policy denial (EACCES) */
	AF_EUNREG = AF_EBASE - 4,	/* not registered (ENOENT) */
	AF_EPARSE = AF_EBASE - 5,	/* malformed input (EINVAL) */
	AF_ESOURCE = AF_EBASE - 6,	/* source failed after retries (EIO) */
	AF_ECRED = AF_EBASE - 7,	/* credential refused (EACCES) */
	AF_EQUARANTINE = AF_EBASE - 8,	/* blob quarantined after a failure (EIO) */
	AF_ETIMEDOUT = AF_EBASE - 9,	/* transfer stalled or timed out (EIO) */
	AF_EBACKOFF = AF_EBASE - 10,	/* fetch failed recently: backing off (EIO) */
};

/* Returns a static description of err (AF_E* or -errno); never NULL. */
const char *af_strerror(int err);

/* Returns the positive errno the kernel should see for err (AF_E* or -errno). */
int af_errno(int err);

enum af_log_level {
	AF_LOG_ERROR = 0,
	AF_LOG_WARN = 1,
	AF_LOG_INFO = 2,
	AF_LOG_DEBUG = 3,
};

enum af_log_format {
	AF_LOG_TEXT = 0,	/* "artifactfs: warning: message" on stderr */
	AF_LOG_JSON = 1,	/* {"ts":…,"level":…,"msg":…} one per line */
};

/*
 * Process-wide log settings (one of the globals STYLE.md allows). Call
 * before starting threads; af_log itself is thread-safe (one write(2) per
 * line). Messages must never contain secrets (DESIGN §5): callers pass
 * redacted URIs only.
 */
void af_log_setup(enum af_log_level max_level, enum af_log_format format,
		  bool use_syslog);
enum af_log_level af_log_get_level(void);
enum af_log_format af_log_get_format(void);

/*
 * The daemon's log file ([log] file, DESIGN §10). From af_log_open_file
 * on, every line is also appended to path (created 0640). Call before
 * threads start. Returns 0 or -errno (nothing changed then).
 */
int af_log_open_file(const char *path);
/*
 * A detached daemon, once its command has returned: lines stop going to
 * stderr, and stderr itself (fd 2, where libfuse and the sanitizers
 * write) becomes the log file, or /dev/null without one. Thread-safe.
 * Returns 0 or -errno.
 */
int af_log_detach(void);
/*
 * Reopens the log file at its path (logrotate renamed it), for the
 * SIGHUP handler: async-signal-safe (open, dup2, close only). Lines
 * written meanwhile go to the old file or the new one, never nowhere.
 * Returns 0 (also when there is no log file) or -errno.
 */
int af_log_reopen(void);
/* Closes the log file (tests; the daemon's ends with the process). */
void af_log_close_file(void);

void af_log(enum af_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void af_vlog(enum af_log_level level, const char *fmt, va_list ap);

#define af_err(...)	af_log(AF_LOG_ERROR, __VA_ARGS__)
#define af_warn(...)	af_log(AF_LOG_WARN, __VA_ARGS__)
#define af_info(...)	af_log(AF_LOG_INFO, __VA_ARGS__)
#define af_debug(...)	af_log(AF_LOG_DEBUG, __VA_ARGS__)

/* Monotonic and wall clocks in milliseconds. */
long long af_now_ms(void);
long long af_wall_ms(void);

/*
 * The moment ms milliseconds from now on clock (CLOCK_REALTIME, or
 * CLOCK_MONOTONIC for a condition variable set to it), normalised: the
 * deadline pthread_cond_timedwait takes.
 */
struct timespec af_deadline(clockid_t clock, long long ms);

/*
 * Formats epoch seconds as RFC 3339 UTC ("2026-03-09T12:00:00Z") into buf,
 * which must hold 21 bytes. Returns buf.
 */
char *af_rfc3339(long long epoch_s, char *buf, size_t len);

/*
 * Fault-injection points for tests (crash consistency, live upgrade), in
 * the builds make check runs (-DAF_TEST_HOOKS); a release build has none.
 * The environment variable AF_HOOK lists "name=action[@N]" entries,
 * comma-separated; at the Nth hit of the point (default 1, "@0" every
 * hit), action runs: "kill" (SIGKILL to this process), "abort", "exit"
 * (exit code 3), or "sleep:MS". Thread-safe.
 */
#ifdef AF_TEST_HOOKS
void af_hook(const char *name);
#define AF_HAVE_HOOKS 1
#else
static inline void af_hook(const char *name) { (void)name; }
#define AF_HAVE_HOOKS 0
#endif

#endif
