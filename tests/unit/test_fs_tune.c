/*
 * test_fs_tune.c - the read path without passthrough (fs/tune.c, issue
 * 16): finding the mount's device in a mountinfo table, and dropping the
 * cache file's pages behind a sequential reader (one copy per blob).
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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <cmocka.h>

#include "fs/ops_int.h"

static int mi_dev(const char *table, const char *mnt, unsigned *ma,
		  unsigned *mi)
{
	FILE *f = fmemopen((void *)table, strlen(table), "r");
	int rc;

	assert_non_null(f);
	rc = fs_tune_mountinfo_dev(f, mnt, ma, mi);
	fclose(f);
	return rc;
}

static void test_mountinfo(void **state)
{
	static const char table[] =
		"22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
		"40 22 0:39 / /mnt/a rw,nosuid - fuse.artifactfs artifactfs rw\n"
		"41 22 0:40 / /mnt/with\\040space rw - fuse.artifactfs artifactfs rw\n"
		"garbage\n"
		"42 22 nodev / /mnt/bad rw - tmpfs tmpfs rw\n"
		"43 40 0:41 / /mnt/a rw - fuse.artifactfs artifactfs rw\n";
	unsigned ma = 7, mi = 7;

	(void)state;
	assert_int_equal(mi_dev(table, "/", &ma, &mi), 0);
	assert_int_equal(ma, 253);
	assert_int_equal(mi, 0);
	/* Two mounts on one point: the newest (listed last) is the one. */
	assert_int_equal(mi_dev(table, "/mnt/a", &ma, &mi), 0);
	assert_int_equal(ma, 0);
	assert_int_equal(mi, 41);
	/* Escapes undone: "\040" is a space. */
	assert_int_equal(mi_dev(table, "/mnt/with space", &ma, &mi), 0);
	assert_int_equal(mi, 40);
	assert_int_equal(mi_dev(table, "/mnt/with\\040space", &ma, &mi),
			 -ENOENT);
	/* Not listed, a prefix only, or no device number: none. */
	ma = mi = 7;
	assert_int_equal(mi_dev(table, "/mnt", &ma, &mi), -ENOENT);
	assert_int_equal(mi_dev(table, "/mnt/bad", &ma, &mi), -ENOENT);
	assert_int_equal(mi_dev(table, "", &ma, &mi), -ENOENT);
	assert_int_equal(mi_dev("", "/", &ma, &mi), -ENOENT);
	assert_int_equal(ma, 7);		/* untouched when not found */
	assert_int_equal(mi, 7);
}

/* The real table of this process: "/" has the device stat(2) gives. */
static void test_mountinfo_self(void **state)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	unsigned ma, mi;
	struct stat sb;

	(void)state;
	if (!f)
		skip();
	assert_int_equal(stat("/proc", &sb), 0);
	assert_int_equal(fs_tune_mountinfo_dev(f, "/proc", &ma, &mi), 0);
	fclose(f);
	assert_int_equal(ma, major(sb.st_dev));
	assert_int_equal(mi, minor(sb.st_dev));
}

/* No such mount (or sysfs refuses): the kernel's default stays, said. */
static void test_readahead_refused(void **state)
{
	struct fs_ctx ctx;

	(void)state;
	memset(&ctx, 0, sizeof(ctx));
	ctx.readahead_kib = 99;
	fs_tune_readahead(&ctx, "/no/such/mount/point");
	assert_int_equal(ctx.readahead_kib, 0);
}

#define PG 4096
#define FILE_SIZE ((size_t)8 << 20)

/* Pages of [off, off + len) of map resident in the page cache. */
static size_t resident(void *map, size_t off, size_t len)
{
	unsigned char vec[FILE_SIZE / PG];
	size_t n = 0;

	assert_int_equal(mincore((char *)map + off, len, vec), 0);
	for (size_t i = 0; i < len / PG; i++)
		n += vec[i] & 1;
	return n;
}

static void cache_all(int fd)
{
	static char buf[1 << 16];

	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void test_drop_behind(void **state)
{
	char path[] = "/var/tmp/aftune.XXXXXX";
	static char buf[1 << 16];
	const size_t two = (size_t)2 << 20;
	void *map;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	memset(buf, 'x', sizeof(buf));
	for (size_t o = 0; o < FILE_SIZE; o += sizeof(buf))
		assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(fsync(fd), 0);
	map = mmap(NULL, FILE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);

	/* A filesystem that ignores the advice (tmpfs) cannot show it. */
	cache_all(fd);
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (resident(map, 0, FILE_SIZE) == FILE_SIZE / PG) {
		munmap(map, FILE_SIZE);
		close(fd);
		print_message("SKIP: %s keeps pages on POSIX_FADV_DONTNEED\n",
			      "/var/tmp");
		skip();
	}

	cache_all(fd);
	assert_int_equal(resident(map, 0, FILE_SIZE), FILE_SIZE / PG);
	/* Random-read sized requests keep their pages. */
	fs_tune_drop_behind(fd, 0, 4096);
	fs_tune_drop_behind(fd, (off_t)two - 4096, 4096);
	fs_tune_drop_behind(fd, 0, FS_DROP_MIN_REQUEST - 4096);
	assert_int_equal(resident(map, 0, FILE_SIZE), FILE_SIZE / PG);
	/* A readahead request inside the first piece: nothing passed yet. */
	fs_tune_drop_behind(fd, 0, FS_MAX_REQUEST);
	fs_tune_drop_behind(fd, FS_MAX_REQUEST, FS_MAX_REQUEST);
	assert_int_equal(resident(map, 0, FILE_SIZE), FILE_SIZE / PG);
	/* The request that crosses 2 MiB has gone past the first piece. */
	fs_tune_drop_behind(fd, 2 * (off_t)FS_MAX_REQUEST, FS_MAX_REQUEST);
	assert_int_equal(resident(map, 0, two), 0);
	assert_int_equal(resident(map, two, FILE_SIZE - two),
			 (FILE_SIZE - two) / PG);
	/* One large read that covers pieces 2 and 3 whole drops both. */
	fs_tune_drop_behind(fd, (off_t)two, 2 * two);
	assert_int_equal(resident(map, 0, 3 * two), 0);
	assert_int_equal(resident(map, 3 * two, two), two / PG);
	munmap(map, FILE_SIZE);
	close(fd);
}

/* Every request splices whole through a 1 MiB pipe (tune.c). */
static void test_request_fits_pipe(void **state)
{
	(void)state;
	/* header (1 slot) + data pages + libfuse's own slack (2 slots) */
	assert_true(FS_MAX_REQUEST % PG == 0);
	assert_true(PG * 3 + 16 + FS_MAX_REQUEST <= (1u << 20));
	assert_true(FS_MAX_REQUEST >= FS_DROP_MIN_REQUEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_mountinfo_self),
		cmocka_unit_test(test_readahead_refused),
		cmocka_unit_test(test_drop_behind),
		cmocka_unit_test(test_request_fits_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
