/*
 * test_policy_audit.c - audit lines (DESIGN §8) and the af_log formats.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "policy/af.h"
#include "policy/audit.h"

static void test_format_full(void **state)
{
	struct audit_event ev = {
		.event = "open_denied",
		.project = "vision",
		.name = "m.bin",
		.digest = "sha256:00",
		.source_type = "https",
		.uri = "https://user:hunter2@host/a/m.bin?sig=hunter2#x",
		.has_ids = true,
		.uid = 1000,
		.gid = 1001,
		.pid = 4242,
		.decision = "deny",
		.reason = "lifecycle state revoked is not readable",
		.warning = "deprecated",
		.has_bytes = true,
		.bytes = 18446744073709551615ULL,
		.has_duration = true,
		.duration_ms = 12,
	};
	char *line = audit_format(&ev, 1773057600);

	(void)state;
	assert_non_null(line);
	assert_string_equal(line,
		"{\"ts\":\"2026-03-09T12:00:00Z\",\"event\":\"open_denied\","
		"\"project\":\"vision\",\"name\":\"m.bin\",\"digest\":\"sha256:00\","
		"\"source_type\":\"https\",\"uri\":\"https://host/a/m.bin\","
		"\"uid\":1000,\"gid\":1001,\"pid\":4242,\"decision\":\"deny\","
		"\"reason\":\"lifecycle state revoked is not readable\","
		"\"warning\":\"deprecated\",\"bytes\":18446744073709551615,"
		"\"duration_ms\":12}\n");
	assert_null(strstr(line, "hunter2"));
	free(line);
}

static void test_format_minimal(void **state)
{
	struct audit_event ev = { .event = "policy_loaded" };
	char *line = audit_format(&ev, 0);

	(void)state;
	assert_string_equal(line, "{\"ts\":\"1970-01-01T00:00:00Z\","
				  "\"event\":\"policy_loaded\"}\n");
	free(line);
	memset(&ev, 0, sizeof(ev));
	line = audit_format(&ev, 0);
	assert_string_equal(line, "{\"ts\":\"1970-01-01T00:00:00Z\"}\n");
	free(line);
}

static void test_format_escaping(void **state)
{
	struct audit_event ev = {
		.event = "lookup_unregistered",
		.name = "a\"b\\c\nd\te\x01\x1f\x7f",
		.project = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		.reason = "bad \xff\xfe utf8 \xc3 \xed\xa0\x80 \xc0\xaf end",
	};
	json_error_t jerr;
	json_t *obj;
	char *line = audit_format(&ev, 1);

	(void)state;
	assert_non_null(line);
	assert_non_null(strstr(line, "\"name\":\"a\\\"b\\\\c\\nd\\te\\u0001\\u001f\\u007f\""));
	/* One line, valid JSON even from invalid UTF-8. */
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
	obj = json_loads(line, 0, &jerr);
	if (!obj)
		fail_msg("invalid JSON: %s: %s", jerr.text, line);
	assert_string_equal(json_string_value(json_object_get(obj, "name")),
			    "a\"b\\c\nd\te\x01\x1f\x7f");
	assert_string_equal(json_string_value(json_object_get(obj, "project")),
			    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	assert_string_equal(json_string_value(json_object_get(obj, "reason")),
			    "bad \xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd "
			    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd "
			    "\xef\xbf\xbd\xef\xbf\xbd end");
	json_decref(obj);
	free(line);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

struct thr {
	struct audit *a;
	int id;
};

static void *emit_many(void *arg)
{
	struct thr *t = arg;
	char name[32];

	for (int i = 0; i < 200; i++) {
		struct audit_event ev = { .event = "open", .name = name,
					  .has_bytes = true,
					  .bytes = (uint64_t)i };

		snprintf(name, sizeof(name), "t%d-%d", t->id, i);
		if (audit_emit(t->a, &ev) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_open_emit(void **state)
{
	char dir[] = "/tmp/test_audit_XXXXXX";
	char path[256], cmd[300];
	struct audit_event ev = { .event = "verify_ok", .project = "vision",
				  .uri = "https://host/x?token=hunter2" };
	struct audit *a;
	struct thr t[4];
	pthread_t th[4];
	struct stat st;
	char *text, *p;
	size_t lines = 0;
	mode_t old = umask(022);

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/deep/er/audit.jsonl", dir);
	assert_int_equal(audit_open(path, false, &a), 0);
	assert_int_equal(audit_emit(a, &ev), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	for (int i = 0; i < 4; i++) {
		t[i].a = a;
		t[i].id = i;
		assert_int_equal(pthread_create(&th[i], NULL, emit_many, &t[i]),
				 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;

		pthread_join(th[i], &ret);
		assert_null(ret);
	}
	audit_close(a);
	/* Appends to an existing log. */
	assert_int_equal(audit_open(path, false, &a), 0);
	assert_int_equal(audit_emit(a, &ev), 0);
	audit_close(a);

	text = slurp(path);
	assert_null(strstr(text, "hunter2"));
	for (p = text; *p;) {
		char *nl = strchr(p, '\n');
		json_t *obj;

		assert_non_null(nl);
		*nl = '\0';
		obj = json_loads(p, 0, NULL);
		assert_non_null(obj);
		json_decref(obj);
		lines++;
		p = nl + 1;
	}
	assert_int_equal(lines, 802);
	free(text);

	/* NULL sink and NULL path are fine. */
	assert_int_equal(audit_emit(NULL, &ev), 0);
	assert_int_equal(audit_open(NULL, false, &a), 0);
	assert_int_equal(audit_emit(a, &ev), 0);
	audit_close(a);
	audit_close(NULL);

	/* A path under a file cannot be created. */
	snprintf(cmd, sizeof(cmd), "%s/x/y.jsonl", path);
	assert_true(audit_open(cmd, false, &a) < 0);
	assert_null(a);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	umask(old);
}

static char *capture_log(enum af_log_format fmt, enum af_log_level max,
			 void (*fn)(void))
{
	char path[] = "/tmp/test_log_XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	char *text;

	assert_true(fd >= 0);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	af_log_setup(max, fmt, false);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	text = slurp(path);
	unlink(path);
	af_log_setup(AF_LOG_INFO, AF_LOG_TEXT, false);
	return text;
}

static void log_some(void)
{
	af_err("cannot open %s", "a.json");
	af_warn("quote \" and newline\n");
	af_info("info %d", 3);
	af_debug("hidden %d", 4);
}

static void test_log(void **state)
{
	char *text;
	char *nl;
	int n = 0;

	(void)state;
	text = capture_log(AF_LOG_TEXT, AF_LOG_INFO, log_some);
	assert_string_equal(text,
			    "artifactfs: error: cannot open a.json\n"
			    "artifactfs: warning: quote \" and newline\n\n"
			    "artifactfs: info: info 3\n");
	free(text);
	assert_int_equal(af_log_get_level(), AF_LOG_INFO);

	text = capture_log(AF_LOG_JSON, AF_LOG_WARN, log_some);
	for (char *p = text; (nl = strchr(p, '\n')); p = nl + 1) {
		json_t *obj;

		*nl = '\0';
		obj = json_loads(p, 0, NULL);
		assert_non_null(obj);
		assert_non_null(json_string_value(json_object_get(obj, "ts")));
		if (n == 0) {
			assert_string_equal(json_string_value(json_object_get(obj, "level")),
					    "error");
			assert_string_equal(json_string_value(json_object_get(obj, "msg")),
					    "cannot open a.json");
		} else {
			assert_string_equal(json_string_value(json_object_get(obj, "msg")),
					    "quote \" and newline\n");
		}
		assert_int_equal(strncmp(p, "{\"ts\":\"", 7), 0);
		json_decref(obj);
		n++;
	}
	assert_int_equal(n, 2);
	free(text);
}

/*
 * A log that stops taking writes (a FIFO whose reader went: EPIPE) is
 * said loudly at once, the events lost are counted, and the recovery (a
 * reader again) is said with the count; the close says the total.
 */
static char fifo_path[64];

static void fifo_fail_and_recover(void)
{
	struct audit_event ev = { .event = "open", .project = "vision" };
	struct audit *a;
	int rd = open(fifo_path, O_RDONLY | O_NONBLOCK);
	char buf[4096];

	assert_true(rd >= 0);
	assert_int_equal(audit_open(fifo_path, false, &a), 0);
	assert_int_equal(audit_emit(a, &ev), 0);
	close(rd);
	assert_int_equal(audit_emit(a, &ev), -EPIPE);
	assert_int_equal(audit_emit(a, &ev), -EPIPE);
	assert_int_equal(audit_emit(a, &ev), -EPIPE);
	rd = open(fifo_path, O_RDONLY | O_NONBLOCK);
	assert_true(rd >= 0);
	assert_int_equal(audit_emit(a, &ev), 0);
	assert_true(read(rd, buf, sizeof(buf)) > 0);
	audit_close(a);
	close(rd);
}

static void test_write_failures_said(void **state)
{
	char dir[] = "/tmp/test_audit_XXXXXX";
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	char *text, *first, *again, *total;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(fifo_path, sizeof(fifo_path), "%s/audit.fifo", dir);
	assert_int_equal(mkfifo(fifo_path, 0600), 0);
	text = capture_log(AF_LOG_TEXT, AF_LOG_INFO, fifo_fail_and_recover);
	first = strstr(text, "audit.fifo: write failed: ");
	assert_non_null(first);
	assert_non_null(strstr(first, "audit events are being lost"));
	/* Said once at the start of the failure, not once per line. */
	assert_non_null(strchr(first, '\n'));
	assert_null(strstr(strchr(first, '\n'), "write failed"));
	again = strstr(text, "audit.fifo: writable again after 3 events were lost");
	assert_non_null(again);
	assert_true(again > first);
	total = strstr(text, "audit.fifo: 3 events could not be written");
	assert_non_null(total);
	assert_true(total > again);
	free(text);
	unlink(fifo_path);
	rmdir(dir);
	signal(SIGPIPE, old);
}

/*
 * A FIFO whose reader holds it open and never reads: the line that finds
 * it full waits AUDIT_STALL_MS at most and is lost; while that lasts,
 * later lines do not wait at all (a stop drains the queue at once), and
 * lines are whole; when the reader reads again, writes go through.
 */
static void stalled_reader(void)
{
	struct audit_event ev = { .event = "open", .project = "vision",
				  .reason = "x" };
	struct audit *a;
	int rd = open(fifo_path, O_RDONLY | O_NONBLOCK);
	static char buf[1 << 20];
	size_t total, len;
	long long t0, t1;
	int ret = 0, n = 0;
	ssize_t got;

	assert_true(rd >= 0);
	assert_int_equal(audit_open(fifo_path, false, &a), 0);
	t0 = af_now_ms();
	while (n < 100000 && (ret = audit_emit(a, &ev)) == 0)
		n++;
	t1 = af_now_ms();
	assert_int_equal(ret, -ETIMEDOUT);
	assert_true(n > 10);		/* the pipe took lines until full */
	assert_true(t1 - t0 >= 1900);	/* the first refusal waited */
	t0 = af_now_ms();
	for (int i = 0; i < 1000; i++)
		assert_int_equal(audit_emit(a, &ev), -EAGAIN);
	t1 = af_now_ms();
	assert_true(t1 - t0 < 1900);	/* and the next ones did not */
	/* The pipe holds the n lines taken, whole (all of one length). */
	total = 0;
	while (total < sizeof(buf) &&
	       (got = read(rd, buf + total, sizeof(buf) - total)) > 0)
		total += (size_t)got;
	assert_true(total > 0 && total < sizeof(buf));
	len = strcspn(buf, "\n") + 1;
	assert_int_equal(total, (size_t)n * len);
	for (size_t i = len - 1; i < total; i += len)
		assert_int_equal(buf[i], '\n');
	assert_int_equal(audit_emit(a, &ev), 0);
	audit_close(a);
	close(rd);
}

static void test_stalled_reader(void **state)
{
	char dir[] = "/tmp/test_audit_XXXXXX";
	char *text;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(fifo_path, sizeof(fifo_path), "%s/audit.fifo", dir);
	assert_int_equal(mkfifo(fifo_path, 0600), 0);
	text = capture_log(AF_LOG_TEXT, AF_LOG_INFO, stalled_reader);
	assert_non_null(strstr(text, "audit.fifo: write failed: its reader takes no writes"));
	assert_non_null(strstr(text, "audit.fifo: writable again after 1001 events were lost"));
	free(text);
	unlink(fifo_path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_full),
		cmocka_unit_test(test_format_minimal),
		cmocka_unit_test(test_format_escaping),
		cmocka_unit_test(test_open_emit),
		cmocka_unit_test(test_log),
		cmocka_unit_test(test_write_failures_said),
		cmocka_unit_test(test_stalled_reader),
	};

	return cmocka_run_group_tests_name("policy_audit", tests, NULL, NULL);
}
