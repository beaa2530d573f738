/*
 * tune.c - the read path without passthrough (issue 16): what the kernel is
 * asked for, so that a read through the daemon costs as few round trips
 * and as little memory as it can.
 *
 * Request size. Without passthrough every page of the mount's page cache
 * is filled by a FUSE read request, sized by the kernel's readahead window
 * and capped at max_pages. The kernel offers a FUSE connection its default
 * window (128 KiB, VM_READAHEAD_PAGES) in FUSE_INIT, so a sequential read
 * costs one round trip through the daemon per 128 KiB. That window is the
 * mount's backing device (bdi) read_ahead_kb, which root may raise in
 * sysfs; the kernel keeps min(bdi window, the max_readahead of the INIT
 * reply). So: raise the bdi's window right after the mount, while the
 * daemon is root and before the INIT is answered, and answer the INIT with
 * the same max_readahead (session.c). Where sysfs refuses (a user
 * namespace, no privilege) the default stays and reads still work, in
 * smaller requests.
 *
 * Splice. A reply is spliced from the cache file into a pipe and from the
 * pipe into /dev/fuse whole, so the pipe must hold the header and every
 * page of the data: 1 MiB of data needs 257 pipe slots, and an unprivileged
 * pipe is at most fs.pipe-max-size (1 MiB, 256 slots). libfuse then falls
 * back to read() into a buffer plus writev(): one more copy of every byte
 * (measured: docs/BENCHMARKS.md). FS_MAX_REQUEST keeps every request, and
 * the readahead window, a few pages under that.
 *
 * One copy. What a read returns stays in the mount's own page cache
 * (keep_cache: a verified blob never changes), so the cache file's pages
 * just copied there are a second copy of the same bytes: dropped once a
 * sequential reader has gone past them (fs_tune_drop_behind).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../policy/af.h"
#include "ops_int.h"

/*
 * Undoes the octal escapes of /proc/self/mountinfo (" " is "\040") in
 * place.
 */
static void mountinfo_unescape(char *s)
{
	char *w = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

int fs_tune_mountinfo_dev(FILE *f, const char *mountpoint, unsigned *major,
			  unsigned *minor)
{
	char line[8192];
	bool found = false;

	while (fgets(line, sizeof(line), f)) {
		char *save = NULL, *tok, *dev = NULL, *mnt = NULL;
		unsigned ma, mi;
		int field = 0;

		/* "36 35 98:0 /mnt1 /mnt2 opts ... - type source" (proc(5)) */
		for (tok = strtok_r(line, " \n", &save); tok && field < 5;
		     tok = strtok_r(NULL, " \n", &save), field++) {
			if (field == 2)
				dev = tok;
			else if (field == 4)
				mnt = tok;
		}
		if (!dev || !mnt)
			continue;
		mountinfo_unescape(mnt);
		if (strcmp(mnt, mountpoint) != 0 ||
		    sscanf(dev, "%u:%u", &ma, &mi) != 2)
			continue;
		*major = ma;	/* the last one listed is the newest */
		*minor = mi;
		found = true;
	}
	return found ? 0 : -ENOENT;
}

/*
 * Never stat(2)s the mount point: before the INIT is answered that would
 * wait on this very daemon.
 */
static int mount_dev(const char *mountpoint, unsigned *major, unsigned *minor)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc;

	if (!f)
		return -errno;
	rc = fs_tune_mountinfo_dev(f, mountpoint, major, minor);
	fclose(f);
	return rc;
}

/* Writes kib to the read_ahead_kb of bdi major:minor. 0 or -errno. */
static int bdi_write_readahead(unsigned major, unsigned minor, unsigned kib)
{
	char path[96], val[32];
	int fd, len, rc = 0;

	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major, minor);
	len = snprintf(val, sizeof(val), "%u\n", kib);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, (size_t)len) != len)
		rc = -errno;
	close(fd);
	return rc;
}

void fs_tune_readahead(struct fs_ctx *ctx, const char *mountpoint)
{
	unsigned major, minor, kib = FS_MAX_REQUEST >> 10;
	int rc;

	ctx->readahead_kib = 0;
	rc = mount_dev(mountpoint, &major, &minor);
	if (rc == 0)
		rc = bdi_write_readahead(major, minor, kib);
	if (rc < 0) {
		af_info("readahead: cannot raise the mount's read_ahead_kb to %u (%s): the kernel's default stays",
			kib, af_strerror(rc));
		return;
	}
	ctx->readahead_kib = kib;
	af_debug("readahead: %u KiB on bdi %u:%u", kib, major, minor);
}

void fs_tune_drop_behind(int fd, off_t off, size_t size)
{
	off_t from = off & ~(off_t)(FS_DROP_PIECE - 1);
	off_t to = (off + (off_t)size) & ~(off_t)(FS_DROP_PIECE - 1);

	/* Readahead-sized requests only: random small reads keep theirs. */
	if (size < FS_DROP_MIN_REQUEST || to <= from)
		return;
	(void)posix_fadvise(fd, from, to - from, POSIX_FADV_DONTNEED);
}
