/*
 * audit.c - the audit log (DESIGN §8): one JSON object per line, fields in
 * a fixed order, appended with one write(2) under a mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "audit.h"
#include "pol_int.h"

#define AUDIT_LINE_MAX	(64 * 1024)
#define AUDIT_URI_MAX	4096
/* While writes fail, the log says so again this often. */
#define AUDIT_NAG_MS	60000
/*
 * How long a line waits for a pipe or socket that takes no writes (a
 * reader that stopped reading). Past it the line is lost, counted, and
 * later lines do not wait at all until a write goes through again: a
 * stalled reader costs lines, never a thread, and never a stop.
 */
#define AUDIT_STALL_MS	2000

struct audit {
	int fd;			/* -1 when no file; fixed after open */
	bool use_syslog;	/* fixed after open */
	char *path;		/* fixed after open; NULL when no file */
	pthread_mutex_t lock;	/* orders lines; guards what follows */
	bool failing;		/* the last write failed */
	uint64_t lost;		/* lines not written since the failure began */
	uint64_t lost_total;	/* lines not written since the open */
	long long said_ms;	/* when the failure was last logged */
};

/* mkdir -p of the folders above path (mode 0750); existing ones are fine. */
static int make_parents(const char *path)
{
	char *dup = strdup(path);
	int ret = 0;

	if (!dup)
		return -ENOMEM;
	for (char *p = dup + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dup, 0750) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*p = '/';
	}
	free(dup);
	return ret;
}

/*
 * A regular file takes writes at the disk's pace; a FIFO or a socket
 * takes them at its reader's, which may stop. Those get O_NONBLOCK, and
 * a write waits for them at most AUDIT_STALL_MS (audit_write_line).
 */
static int set_nonblock(struct audit *a)
{
	struct stat st;
	int fl;

	if (fstat(a->fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode))
		return 0;
	fl = fcntl(a->fd, F_GETFL);
	if (fl < 0 || fcntl(a->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int audit_open(const char *path, bool use_syslog, struct audit **out)
{
	struct audit *a;
	int ret;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fd = -1;
	a->use_syslog = use_syslog;
	if (path && *path) {
		ret = make_parents(path);
		if (ret < 0)
			goto out_free;
		a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
				   O_NOCTTY, 0640);
		if (a->fd < 0) {
			ret = -errno;
			goto out_free;
		}
		ret = set_nonblock(a);
		if (ret < 0)
			goto out_close;
		a->path = strdup(path);
		if (!a->path) {
			ret = -ENOMEM;
			goto out_close;
		}
	}
	ret = pthread_mutex_init(&a->lock, NULL);
	if (ret) {
		ret = -ret;
		goto out_close;
	}
	if (use_syslog)
		openlog("artifactfs", LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
	*out = a;
	return 0;
out_close:
	if (a->fd >= 0)
		close(a->fd);
out_free:
	free(a->path);
	free(a);
	return ret;
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	if (a->lost_total)
		af_err("audit log %s: %llu events could not be written",
		       a->path, (unsigned long long)a->lost_total);
	if (a->fd >= 0)
		close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

static void add_str(struct pol_buf *b, const char *key, const char *v)
{
	if (!v)
		return;
	pol_buf_addf(b, ",\"%s\":", key);
	pol_buf_add_json_string(b, v);
}

char *audit_format(const struct audit_event *ev, long long ts)
{
	char tsbuf[32], red[AUDIT_URI_MAX];
	struct pol_buf b;

	pol_buf_init(&b, AUDIT_LINE_MAX);
	af_rfc3339(ts, tsbuf, sizeof(tsbuf));
	pol_buf_addf(&b, "{\"ts\":\"%s\"", tsbuf);
	add_str(&b, "event", ev->event);
	add_str(&b, "project", ev->project);
	add_str(&b, "name", ev->name);
	add_str(&b, "digest", ev->digest);
	add_str(&b, "source_type", ev->source_type);
	if (ev->uri)
		add_str(&b, "uri", pol_uri_redact(ev->uri, red, sizeof(red)));
	if (ev->has_ids)
		pol_buf_addf(&b, ",\"uid\":%lu,\"gid\":%lu,\"pid\":%ld",
			     (unsigned long)ev->uid, (unsigned long)ev->gid,
			     (long)ev->pid);
	add_str(&b, "decision", ev->decision);
	add_str(&b, "reason", ev->reason);
	add_str(&b, "warning", ev->warning);
	if (ev->has_bytes)
		pol_buf_addf(&b, ",\"bytes\":%llu",
			     (unsigned long long)ev->bytes);
	if (ev->has_duration)
		pol_buf_addf(&b, ",\"duration_ms\":%llu",
			     (unsigned long long)ev->duration_ms);
	pol_buf_add(&b, "}\n", 2);
	if (b.failed) {
		pol_buf_release(&b);
		return NULL;
	}
	return b.p;
}

int audit_emit(struct audit *a, const struct audit_event *ev)
{
	char *line;
	int ret;

	if (!a)
		return 0;
	line = audit_format(ev, af_wall_ms() / 1000);
	if (!line)
		return -ENOMEM;
	ret = audit_write_line(a, line);
	free(line);
	return ret;
}

/* What a failed write is called in the daemon log. */
static const char *why(int ret)
{
	if (ret == -ETIMEDOUT || ret == -EAGAIN)
		return "its reader takes no writes";
	return af_strerror(ret);
}

/*
 * Says loudly that lines are being lost (DESIGN §8: the audit trail is
 * not optional): at the first failure, again every AUDIT_NAG_MS while it
 * lasts, and when writes work again, with the count. Lock held.
 */
static void note_result(struct audit *a, int ret)
{
	long long now = af_now_ms();

	if (ret < 0) {
		a->lost++;
		a->lost_total++;
		if (!a->failing) {
			a->failing = true;
			a->said_ms = now;
			af_err("audit log %s: write failed: %s: audit events are being lost",
			       a->path, why(ret));
		} else if (now - a->said_ms >= AUDIT_NAG_MS) {
			a->said_ms = now;
			af_err("audit log %s: still failing (%s): %llu events lost so far",
			       a->path, why(ret), (unsigned long long)a->lost);
		}
		return;
	}
	if (a->failing) {
		af_err("audit log %s: writable again after %llu events were lost",
		       a->path, (unsigned long long)a->lost);
		a->failing = false;
		a->lost = 0;
	}
}

/* Waits until the fd takes writes, or the deadline: -ETIMEDOUT. */
static int wait_writable(struct audit *a, long long deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = a->fd, .events = POLLOUT };
		long long left = deadline - af_now_ms();
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return 0;	/* writable, or an error write will name */
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

int audit_write_line(struct audit *a, char *line)
{
	long long deadline = 0;
	const char *p;
	size_t n;
	int ret = 0;

	if (!a || !line)
		return 0;
	n = strlen(line);
	pthread_mutex_lock(&a->lock);
	for (p = line; a->fd >= 0 && n > 0;) {
		ssize_t w = write(a->fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			/* A line begun is finished if it can be: whole lines. */
			if (ret == -EAGAIN && (!a->failing || p != line)) {
				if (!deadline)	/* one line waits at most this */
					deadline = af_now_ms() + AUDIT_STALL_MS;
				ret = wait_writable(a, deadline);
				if (ret == 0)
					continue;
			}
			break;
		}
		p += w;
		n -= (size_t)w;
	}
	if (a->fd >= 0)
		note_result(a, ret);
	pthread_mutex_unlock(&a->lock);
	if (a->use_syslog && line[0]) {
		size_t len = strlen(line);

		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "%s", line);
	}
	return ret;
}
