/*
 * file.c - the `file` source type, for local development only (DESIGN §2:
 * policy denies it unless allowlisted). file:///abs/path. Reads are
 * synchronous: on_data in bounded chunks, then on_done, all before
 * src_read_range returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/af.h"
#include "policy/policy.h"
#include "sources/src_int.h"

/* Largest piece handed to on_data at once (bounded memory). */
#define FILE_CHUNK	(1024 * 1024)

struct file_src {
	char *path;		/* absolute, decoded; immutable */
};

/* file:///abs/path (percent-decoded; no NUL, no query). */
static int file_path_from_uri(const char *uri, char **out)
{
	static const char prefix[] = "file://";
	const char *p;
	char *path, *w;

	if (strncmp(uri, prefix, sizeof(prefix) - 1) != 0)
		return AF_EPARSE;
	p = uri + sizeof(prefix) - 1;
	if (*p != '/')
		return AF_EPARSE;	/* a host part is not supported */
	path = malloc(strlen(p) + 1);
	if (path == NULL)
		return -ENOMEM;
	for (w = path; *p != '\0'; p++) {
		if (*p == '?' || *p == '#')
			goto out_bad;
		if (*p == '%') {
			int hi = pol_hex_value(p[1]), lo = hi < 0 ? -1 : pol_hex_value(p[2]);

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				goto out_bad;
			*w++ = (char)(hi * 16 + lo);
			p += 2;
			continue;
		}
		*w++ = *p;
	}
	*w = '\0';
	*out = path;
	return 0;

out_bad:
	free(path);
	return AF_EPARSE;
}

static int file_open(struct src *s, const struct pol_registration *r)
{
	struct file_src *f;
	int err;

	(void)r;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	err = file_path_from_uri(s->uri, &f->path);
	if (err != 0) {
		free(f);
		return err;
	}
	s->priv = f;
	return 0;
}

static int file_size(struct src *s, uint64_t *size, char *reason,
		     size_t reasonlen)
{
	struct file_src *f = s->priv;
	struct stat st;
	int fd, err;

	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		src_reason(reason, reasonlen, "open: %s", strerror(-err));
		return err;
	}
	if (fstat(fd, &st) != 0) {
		err = -errno;
		src_reason(reason, reasonlen, "fstat: %s", strerror(-err));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		src_reason(reason, reasonlen, "not a regular file");
		goto out_close;
	}
	*size = (uint64_t)st.st_size;
	err = 0;
out_close:
	close(fd);
	return err;
}

static int file_read_range(struct src *s, uint64_t off, uint64_t len,
			   const struct src_range_cb *cb)
{
	struct file_src *f = s->priv;
	char reason[128] = "";
	uint64_t done = 0;
	char *buf;
	int fd, err = 0;

	buf = malloc(len < FILE_CHUNK ? (len ? len : 1) : FILE_CHUNK);
	if (buf == NULL)
		return -ENOMEM;
	fd = open(f->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		src_reason(reason, sizeof(reason), "open: %s", strerror(-err));
		goto out_done;
	}
	while (done < len) {
		size_t want = len - done < FILE_CHUNK ? (size_t)(len - done)
						      : FILE_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			src_reason(reason, sizeof(reason), "read: %s",
				   strerror(-err));
			break;
		}
		if (n == 0) {
			/* The file ends before the range: another size. */
			err = AF_ESIZE;
			src_reason(reason, sizeof(reason), "size mismatch");
			break;
		}
		src_ctx_count_bytes(s->ctx, (uint64_t)n);
		err = cb->on_data(cb->arg, off + done, buf, (size_t)n);
		if (err != 0)
			break;
		done += (uint64_t)n;
	}
	close(fd);
out_done:
	free(buf);
	cb->on_done(cb->arg, err, err != 0 && reason[0] ? reason : NULL);
	return 0;
}

static void file_close(struct src *s)
{
	struct file_src *f = s->priv;

	if (f == NULL)
		return;
	free(f->path);
	free(f);
	s->priv = NULL;
}

const struct src_ops src_file_ops = {
	.name = "file",
	.type = POL_SRC_FILE,
	.open = file_open,
	.size = file_size,
	.read_range = file_read_range,
	.close = file_close,
};
