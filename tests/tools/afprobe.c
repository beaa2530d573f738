/*
 * afprobe.c - tiny syscall prober for the integration tests. Prints "ok" or
 * the errno name (EROFS, EACCES, …) of the one call it makes; exit 0 on
 * success, 1 on failure, 2 on usage.
 *
 *   afprobe open PATH              open O_RDONLY
 *   afprobe open-nonblock PATH     open O_RDONLY|O_NONBLOCK
 *   afprobe open-write PATH        open O_WRONLY
 *   afprobe create PATH            open O_CREAT|O_WRONLY
 *   afprobe read PATH OUT          copy PATH to OUT with read(2)
 *   afprobe mmap PATH OUT          copy PATH to OUT through mmap(2)
 *   afprobe read-first PATH        open and read one byte
 *   afprobe unlink PATH | rmdir PATH | mkdir PATH | truncate PATH
 *   afprobe rename FROM TO | link FROM TO | symlink TARGET PATH
 *   afprobe chmod PATH | setxattr PATH
 *   afprobe getxattr PATH NAME     lgetxattr of NAME (its value is not
 *                                  printed: "ok" when it has one)
 *   afprobe hold PATH REF STOPFILE [mmap]
 *                                  open PATH once (and map it), then pread
 *                                  (or read the mapping) at random offsets,
 *                                  comparing with REF, until STOPFILE
 *                                  exists; prints "ok N" or the first error
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int result(int rc)
{
	if (rc < 0) {
		const char *n = strerrorname_np(errno);

		printf("%s\n", n ? n : "EUNKNOWN");
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int copy_read(const char *path, const char *out)
{
	static char buf[1 << 20];
	int in = open(path, O_RDONLY), o;
	ssize_t n;

	if (in < 0)
		return -1;
	o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (o < 0) {
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write_all(o, buf, (size_t)n) < 0)
			break;
	}
	close(o);
	close(in);
	return n < 0 ? -1 : 0;
}

static int copy_mmap(const char *path, const char *out)
{
	int in = open(path, O_RDONLY), o, rc = 0;
	struct stat sb;
	void *p = NULL;

	if (in < 0)
		return -1;
	if (fstat(in, &sb) < 0) {
		close(in);
		return -1;
	}
	if (sb.st_size > 0) {
		p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, in, 0);
		if (p == MAP_FAILED) {
			close(in);
			return -1;
		}
	}
	o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (o < 0)
		rc = -1;
	else if (sb.st_size > 0)
		rc = write_all(o, p, (size_t)sb.st_size);
	if (o >= 0)
		close(o);
	if (p)
		munmap(p, (size_t)sb.st_size);
	close(in);
	return rc;
}

/* Reads of one open file at random offsets, compared with ref. */
static int hold(const char *path, const char *ref, const char *stop,
		bool use_mmap)
{
	static char a[1 << 20], b[1 << 20];
	int fd = open(path, O_RDONLY), rfd = open(ref, O_RDONLY);
	unsigned long long reads = 0;
	unsigned seed = (unsigned)getpid();
	struct stat sb;
	char *map = NULL;

	if (fd < 0 || rfd < 0 || fstat(rfd, &sb) < 0 || sb.st_size == 0)
		return result(-1);
	if (use_mmap) {
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED)
			return result(-1);
	}
	while (access(stop, F_OK) != 0) {
		off_t off = (off_t)(((unsigned long long)rand_r(&seed) << 16 ^
				     (unsigned)rand_r(&seed)) % (unsigned long long)sb.st_size);
		size_t len = 1 + (size_t)rand_r(&seed) % sizeof(a);
		ssize_t n, m;

		if ((off_t)len > sb.st_size - off)
			len = (size_t)(sb.st_size - off);
		m = pread(rfd, b, len, off);
		if (map) {
			memcpy(a, map + off, len);
			n = (ssize_t)len;
		} else {
			n = pread(fd, a, len, off);
		}
		if (n < 0) {
			printf("%s at offset %lld after %llu reads\n",
			       strerrorname_np(errno), (long long)off, reads);
			return 1;
		}
		if (n != m || memcmp(a, b, (size_t)n) != 0) {
			printf("EBADDATA at offset %lld after %llu reads\n",
			       (long long)off, reads);
			return 1;
		}
		reads++;
	}
	printf("ok %llu\n", reads);
	return 0;
}

int main(int argc, char **argv)
{
	const char *op, *path;
	int fd;

	if (argc < 3)
		goto usage;
	op = argv[1];
	path = argv[2];
	if (strcmp(op, "open") == 0 || strcmp(op, "open-nonblock") == 0 ||
	    strcmp(op, "open-write") == 0 || strcmp(op, "create") == 0) {
		int flags = O_RDONLY;

		if (strcmp(op, "open-nonblock") == 0)
			flags |= O_NONBLOCK;
		else if (strcmp(op, "open-write") == 0)
			flags = O_WRONLY;
		else if (strcmp(op, "create") == 0)
			flags = O_WRONLY | O_CREAT;
		fd = open(path, flags, 0644);
		if (fd >= 0)
			close(fd);
		return result(fd);
	}
	if (strcmp(op, "read-first") == 0) {
		char c;
		ssize_t n;

		fd = open(path, O_RDONLY);
		if (fd < 0)
			return result(-1);
		n = read(fd, &c, 1);
		close(fd);
		return result(n < 0 ? -1 : 0);
	}
	if (strcmp(op, "unlink") == 0)
		return result(unlink(path));
	if (strcmp(op, "rmdir") == 0)
		return result(rmdir(path));
	if (strcmp(op, "mkdir") == 0)
		return result(mkdir(path, 0755));
	if (strcmp(op, "truncate") == 0)
		return result(truncate(path, 0));
	if (strcmp(op, "chmod") == 0)
		return result(chmod(path, 0777));
	if (strcmp(op, "setxattr") == 0)
		return result(setxattr(path, "user.test", "x", 1, 0));
	if (argc < 4)
		goto usage;
	if (strcmp(op, "read") == 0)
		return result(copy_read(path, argv[3]));
	if (strcmp(op, "mmap") == 0)
		return result(copy_mmap(path, argv[3]));
	if (strcmp(op, "rename") == 0)
		return result(rename(path, argv[3]));
	if (strcmp(op, "link") == 0)
		return result(link(path, argv[3]));
	if (strcmp(op, "symlink") == 0)
		return result(symlink(path, argv[3]));
	if (strcmp(op, "getxattr") == 0) {
		char v[4096];

		return result(lgetxattr(path, argv[3], v, sizeof(v)) < 0 ? -1 : 0);
	}
	if (strcmp(op, "hold") == 0 && argc >= 5)
		return hold(path, argv[3], argv[4],
			    argc > 5 && strcmp(argv[5], "mmap") == 0);
usage:
	fprintf(stderr, "usage: afprobe OP PATH [ARG]\n");
	return 2;
}
