/*
 * io.c - the session's own I/O on /dev/fuse (libfuse's custom io): the same
 * system calls libfuse makes, plus what a live upgrade (DESIGN §13) needs
 * to know and libfuse does not tell:
 *
 *  - which fd and which request (unique, opcode, node) the current worker
 *    thread is answering, so that an open that waits for a fetch can be
 *    answered later by another process, on the same device fd (the kernel
 *    keeps one processing queue per cloned fd: a reply must go back the
 *    way its request came);
 *  - the kernel's FUSE_INIT, kept raw, so that the process that takes the
 *    connection over can replay it to its own session and make exactly the
 *    choices the kernel was told.
 *
 * A replayed INIT's reply goes nowhere: the kernel is not waiting for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../policy/af.h"
#include "ops_int.h"

#ifndef FUSE_DEV_IOC_CLONE
#define FUSE_DEV_IOC_CLONE	_IOR(229, 0, uint32_t)
#endif

/*
 * The request the calling worker thread read last. libfuse reads a request
 * and processes it on the same thread, so while an operation runs this is
 * its own request. Per-thread request context, not shared state.
 */
static __thread struct fs_cur_req cur;

const struct fs_cur_req *fs_io_current(void)
{
	return &cur;
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs_ctx *ctx = userdata;
	ssize_t n = read(fd, buf, len);
	const struct fs_in_header *in = buf;

	if (n < (ssize_t)sizeof(*in)) {
		cur.fd = -1;
		return n;
	}
	cur.fd = fd;
	cur.unique = in->unique;
	cur.opcode = in->opcode;
	cur.nodeid = in->nodeid;
	if (in->opcode == FS_OP_INIT && !ctx->init_seen &&
	    (size_t)n >= sizeof(*in) + FS_INIT_IN_MIN) {
		size_t k = (size_t)n - sizeof(*in);

		if (k > sizeof(ctx->init_raw))
			k = sizeof(ctx->init_raw);
		memset(ctx->init_raw, 0, sizeof(ctx->init_raw));
		memcpy(ctx->init_raw, (const char *)buf + sizeof(*in), k);
		ctx->init_len = k;
		ctx->init_seen = true;	/* before any worker thread exists */
	}
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	const struct fs_out_header *out;

	(void)userdata;
	/* The reply to a replayed INIT: nobody asked, nobody gets it. */
	if (count > 0 && iov[0].iov_len >= sizeof(*out)) {
		out = iov[0].iov_base;
		if (out->unique == FS_REPLAY_UNIQUE) {
			ssize_t total = 0;

			for (int i = 0; i < count; i++)
				total += (ssize_t)iov[i].iov_len;
			return total;
		}
	}
	return writev(fd, iov, count);
}

static ssize_t io_splice_send(int fdin, off_t *offin, int fdout,
			      off_t *offout, size_t len, unsigned int flags,
			      void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

/* A /dev/fuse fd attached to the same connection (what libfuse does). */
static int io_clone_fd(int master)
{
	uint32_t m = (uint32_t)master;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ioctl(fd, FUSE_DEV_IOC_CLONE, &m) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int fs_io_install(struct fs_ctx *ctx, int fd)
{
	static const struct fuse_custom_io io = {
		.read = io_read,
		.writev = io_writev,
		.splice_send = io_splice_send,
		.clone_fd = io_clone_fd,
	};
	/* The 3.17 entry point: the older one drops the clone_fd member. */
	int rc = fuse_session_custom_io_317(ctx->se, &io, sizeof(io), fd);

	if (rc < 0)
		af_err("cannot set the session's I/O: %s", af_strerror(rc));
	return rc;
}

int fs_io_reply_raw(int fd, uint64_t unique, int err, const void *arg,
		    size_t arglen)
{
	struct fs_out_header out = {
		.len = (uint32_t)(sizeof(out) + (err ? 0 : arglen)),
		.error = err ? -err : 0,
		.unique = unique,
	};
	struct iovec iov[2] = {
		{ .iov_base = &out, .iov_len = sizeof(out) },
		{ .iov_base = (void *)arg, .iov_len = err ? 0 : arglen },
	};
	ssize_t n;

	do {
		n = writev(fd, iov, err || !arglen ? 1 : 2);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)out.len ? 0 : -EIO;
}

int fs_io_replay_init(struct fs_ctx *ctx, const void *init, size_t len)
{
	struct {
		struct fs_in_header in;
		unsigned char arg[sizeof(ctx->init_raw)];
	} msg;
	struct fuse_buf fbuf;

	if (len < FS_INIT_IN_MIN || len > sizeof(msg.arg))
		return -EINVAL;
	memset(&msg, 0, sizeof(msg));
	msg.in.len = (uint32_t)(sizeof(msg.in) + len);
	msg.in.opcode = FS_OP_INIT;
	msg.in.unique = FS_REPLAY_UNIQUE;
	memcpy(msg.arg, init, len);
	memset(&fbuf, 0, sizeof(fbuf));
	fbuf.mem = &msg;
	fbuf.size = msg.in.len;
	/* Kept for the next hand-over; the read path never sees this one. */
	memcpy(ctx->init_raw, init, len);
	ctx->init_len = len;
	ctx->init_seen = true;
	fuse_session_process_buf(ctx->se, &fbuf);
	return 0;
}
