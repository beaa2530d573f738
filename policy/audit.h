/*
 * audit.h - the audit log (DESIGN §8): one JSON object per line, appended
 * with one write(2) per event, optionally copied to syslog.
 */
#ifndef POL_AUDIT_H
#define POL_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct audit;

/*
 * Every field is optional: NULL strings and has_* == false are left out of
 * the line. uri is redacted by the audit module itself (no userinfo, no
 * query), whatever the caller passes.
 */
struct audit_event {
	const char *event;	/* lookup_unregistered, open_denied, open, … */
	const char *project;
	const char *name;
	const char *digest;
	const char *source_type;
	const char *uri;
	bool has_ids;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	const char *decision;
	const char *reason;
	const char *warning;
	bool has_bytes;
	uint64_t bytes;
	bool has_duration;
	uint64_t duration_ms;
};

/*
 * Opens the audit sink: path appended to (created 0640, parent folders
 * created), or NULL for none; use_syslog also sends each line to syslog
 * (LOG_AUTHPRIV|LOG_NOTICE). Returns 0 and *out, or -errno.
 */
int audit_open(const char *path, bool use_syslog, struct audit **out);
void audit_close(struct audit *a);

/*
 * Formats ev as one JSON line (with "ts" = now, RFC 3339 UTC) and writes
 * it. Thread-safe. a == NULL does nothing. Returns 0 or -errno; a failure
 * to write is also logged once.
 */
int audit_emit(struct audit *a, const struct audit_event *ev);

/*
 * Writes line (one formatted line ending in '\n', e.g. from audit_format)
 * as audit_emit does: to the file, and to syslog without its '\n' (line
 * is modified for that). Thread-safe. a == NULL does nothing. Returns 0 or
 * -errno.
 */
int audit_write_line(struct audit *a, char *line);

/*
 * Formats ev with the given ts (epoch seconds) into a newly allocated
 * NUL-terminated line ending in '\n'. Returns NULL on allocation failure.
 * Exposed for tests.
 */
char *audit_format(const struct audit_event *ev, long long ts);

#endif
