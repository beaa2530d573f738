/*
 * test_policy_log.c - the daemon's log (policy/af.h, DESIGN §10 [log]):
 * a log file gets every line, text or JSON; a reopen after a rename (what
 * logrotate does) sends later lines to a new file at the path; a detached
 * daemon's stderr becomes the file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/af.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/af-log-test-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void test_file_and_reopen(void **state)
{
	char path[128], rotated[160];
	struct stat sb;
	char *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/af.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/af.log.1", dir);
	/* No log file: a reopen does nothing. */
	assert_int_equal(af_log_reopen(), 0);
	af_log_setup(AF_LOG_INFO, AF_LOG_TEXT, false);
	assert_int_equal(af_log_open_file(path), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640);
	af_info("first %d", 1);
	af_debug("not at this level");
	assert_int_equal(rename(path, rotated), 0);
	af_info("second");		/* still the old file: not reopened yet */
	assert_int_equal(af_log_reopen(), 0);
	af_warn("third");
	s = slurp(rotated);
	assert_non_null(s);
	assert_string_equal(s, "artifactfs: info: first 1\nartifactfs: info: second\n");
	s = slurp(path);
	assert_non_null(s);
	assert_string_equal(s, "artifactfs: warning: third\n");
	af_log_close_file();
}

static void test_json_lines(void **state)
{
	char path[128];
	char *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/json.log", dir);
	af_log_setup(AF_LOG_INFO, AF_LOG_JSON, false);
	assert_int_equal(af_log_open_file(path), 0);
	af_err("a \"quoted\"\nline");
	s = slurp(path);
	assert_non_null(s);
	assert_non_null(strstr(s, "\"level\":\"error\",\"msg\":\"a \\\"quoted\\\"\\nline\"}\n"));
	assert_true(strncmp(s, "{\"ts\":\"", 7) == 0);
	af_log_close_file();
	af_log_setup(AF_LOG_INFO, AF_LOG_TEXT, false);
}

static void test_errors(void **state)
{
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/no/such/dir/x.log", dir);
	assert_int_equal(af_log_open_file(path), -ENOENT);
	assert_int_equal(af_log_open_file(""), -ENAMETOOLONG);
	/* The path went away and cannot be made again: an error, the old fd stays. */
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/sub/x.log", dir);
	assert_int_equal(af_log_open_file(path), 0);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(rmdir(path), 0);
	assert_int_equal(af_log_reopen(), -ENOENT);
	af_info("goes to the unlinked file, not nowhere");
	af_log_close_file();
}

/* Detached: stderr (fd 2) becomes the log file, and so it stays after a reopen. */
static void test_detach(void **state)
{
	char path[128], rotated[160];
	int status;
	pid_t pid;
	char *s;

	(void)state;
	snprintf(path, sizeof(path), "%s/d.log", dir);
	snprintf(rotated, sizeof(rotated), "%s/d.log.1", dir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		af_log_setup(AF_LOG_INFO, AF_LOG_TEXT, false);
		if (af_log_open_file(path) < 0 || af_log_detach() < 0)
			_exit(1);
		af_info("one line");
		fprintf(stderr, "stray stderr\n");
		fflush(stderr);
		if (rename(path, rotated) < 0 || af_log_reopen() < 0)
			_exit(1);
		fprintf(stderr, "after reopen\n");
		fflush(stderr);
		af_info("two");
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	s = slurp(rotated);
	assert_non_null(s);
	/* Once each: not also to a stderr that is the same file. */
	assert_string_equal(s, "artifactfs: info: one line\nstray stderr\n");
	s = slurp(path);
	assert_non_null(s);
	assert_string_equal(s, "after reopen\nartifactfs: info: two\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_and_reopen),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_detach),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
