/*
 * ops_int.h - private to fs/: the daemon context every FUSE operation
 * receives as userdata, and the operations, one file per concern:
 *
 *   attr.c      lookup, getattr, readlink, statfs; what the catalog says
 *   dir.c       opendir, readdir, releasedir
 *   open.c      open (waiting on the fetch), read, release, passthrough
 *   xattr.c     getxattr, listxattr (DESIGN §7)
 *   readonly.c  every write-type operation: EROFS
 *   session.c   init, the operations table, the session's life cycle
 */
#ifndef FS_OPS_INT_H
#define FS_OPS_INT_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <jansson.h>

#include "../policy/policy.h"
#include "fs.h"
#include "fs_int.h"

struct pol_config;
struct pol_registration;
struct audit;
struct cache;
struct ctl_catalog;

#define FS_ENTRY_TIMEOUT 1.0	/* DESIGN §3: at most a second of kernel caching */
/* The longest stat waits for a size the cache is learning (issue 10 #8). */
#define FS_SIZE_WAIT_MS 100
/*
 * The longest name in a project folder (issue 10 item 12): a 200-byte
 * name, "@", and a sha512 digest string ("sha512:" + 128 hex); a channel
 * ([a-z0-9-]{1,63}) is shorter. Above NAME_MAX (255): statfs says so.
 */
#define FS_NAME_MAX (200 + 1 + 7 + 2 * POL_DIGEST_RAW_MAX)
/*
 * Longest a lookup waits for the control plane's answer about a name the
 * last listing missed (ctl_catalog_probe); then ENOENT, and the answer
 * still lands for the next lookup.
 */
#define FS_PROBE_WAIT_MS 2000
#define FS_XATTR_PREFIX "user.artifact."

struct fs_aline;
struct pol_ratelimit;

/* The audit queue and its writer thread (auditq.c). */
struct fs_auditq {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running;			/* lines go to the queue; lock */
	bool stop;			/* lock */
	struct fs_aline *head, *tail;	/* lock */
	size_t nlines;			/* lock */
	size_t bytes;			/* lock */
	uint64_t dropped;		/* queue full; lock */
	struct pol_ratelimit *unreg;	/* lookup_unregistered per uid; lock */
};

/* The invalidation thread (inval.c). */
struct fs_inval {
	pthread_t thread;
	bool started;			/* set and cleared by fs_serve's thread */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool kicked;			/* guarded by lock */
	bool stop;			/* guarded by lock */
	_Atomic uint64_t seen;		/* cache drop generation told to the kernel */
	pthread_mutex_t scan_lock;
	uint64_t marked;		/* drops marked on inodes; scan_lock */
};

/*
 * The FUSE wire headers (kernel uapi <linux/fuse.h>, stable since 7.x),
 * for what libfuse does not expose: the raw request a worker is answering
 * and raw replies from a process that took the connection over (io.c).
 */
struct fs_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
	uint16_t total_extlen;
	uint16_t padding;
};

struct fs_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct fs_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;	/* padding before protocol 7.40 */
};

/* Passthrough backing files (uapi, Linux >= 6.9). */
struct fs_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define FS_IOC_BACKING_OPEN	_IOW(229, 1, struct fs_backing_map)
#define FS_IOC_BACKING_CLOSE	_IOW(229, 2, uint32_t)

#define FS_OP_OPEN		14
#define FS_OP_INIT		26
#define FS_INIT_IN_MIN		16	/* major, minor, max_readahead, flags */
#define FS_INIT_IN_MAX		64	/* with flags2 and the unused tail */
#define FS_REPLAY_UNIQUE	0xfffffffffffffff0ULL
#define FS_FOPEN_KEEP_CACHE	(1u << 1)
#define FS_FOPEN_NOFLUSH	(1u << 5)
#define FS_FOPEN_PASSTHROUGH	(1u << 7)

/*
 * The daemon context: the FUSE userdata (STYLE.md "Memory and
 * concurrency"). The dependencies are the composition root's (tools/):
 * fs uses them, never creates or frees them.
 */
struct fs_ctx {
	const struct pol_config *cfg;
	struct audit *audit;
	struct ctl_catalog *catalog;	/* registrations and policy */
	struct cache *cache;		/* set before the session serves */
	struct fuse_session *se;
	struct fs_inodes inodes;
	struct fs_handles handles;	/* open files and directories */

	pthread_mutex_t pending_lock;
	struct fs_pending *pending;	/* guarded by pending_lock */
	struct fs_pending *held;	/* taken for a hand-over; pending_lock */

	/* Live upgrade (handover.c). */
	pthread_t serve_thread;		/* the thread in fs_serve */
	_Atomic bool serving;
	_Atomic bool stop_requested;	/* fs_request_stop */
	bool handed_over;		/* the mount is another process's */
	bool adopted;			/* taken over from another process */
	bool adopt_taken;		/* ... and that process let go */
	char *mountpoint;		/* adopted: to unmount at the end */

	struct fs_backing_ops backing;	/* all NULL: the daemon registers */
	/* The kernel's FUSE_INIT argument, raw (io.c), for a hand-over. */
	unsigned char init_raw[FS_INIT_IN_MAX];
	size_t init_len;
	bool init_seen;
	long long mounted_at;		/* epoch seconds: times of directories */
	bool mounted;			/* fuse_session_mount succeeded */
	bool passthrough;		/* negotiated at init, cleared on EPERM */
	bool pt_said;			/* fallback logged once; guarded by pt_lock */
	bool pt_required;		/* [fs] passthrough = on */
	bool pt_missing;		/* required but not offered by the kernel */
	unsigned readahead_kib;		/* raised at mount (tune.c), or 0 */
	pthread_mutex_t pt_lock;	/* guards inode pt_* fields, pt_said */
	struct fs_inval inval;		/* kernel invalidation (inval.c) */
	struct fs_auditq auditq;	/* audit lines off the workers (auditq.c) */
	_Atomic uint64_t reads;		/* read requests served by the daemon */
	_Atomic uint64_t opens;
	/* fs_stats: __atomic, no lock (read by a metrics scrape). */
	uint64_t stat_opens[FS_OPEN_RESULTS];
};

/* Counts one open outcome by the positive errno the opener gets (0: ok). */
void fs_count_open(struct fs_ctx *ctx, int err);

/*
 * An open waiting for its fetch (DESIGN §7: replied when the fetch ends).
 * req is NULL for an open this process took over from another (a live
 * upgrade): it is answered raw, on dev_fd, by unique.
 */
struct fs_pending {
	struct fs_ctx *ctx;
	fuse_req_t req;
	uint64_t unique;		/* the kernel's id of the request */
	int dev_fd;			/* its device fd when not the session's;
					   -1: the session's (owned) */
	struct fuse_file_info fi;	/* copy: the kernel's is gone once we return */
	struct pol_registration *reg;
	struct fs_inode *inode;		/* a reference held until p goes */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	long long started_ms;
	bool claimed;			/* guarded by ctx->pending_lock */
	int refs;			/* guarded by ctx->pending_lock */
	struct fs_pending *next;	/* guarded by ctx->pending_lock */
};

struct fs_handle {
	int fd;
	struct fs_inodes *table;
	struct fs_inode *inode;	/* a reference held until the handle goes */
	bool passthrough;	/* reads go straight to the backing file */
	bool attached;		/* counted in its inode's pt_nopen */
};

/* io.c: the request the calling worker thread is answering. */
struct fs_cur_req {
	int fd;			/* the device fd it came from; -1: none */
	uint64_t unique;
	uint32_t opcode;
	uint64_t nodeid;
};
const struct fs_cur_req *fs_io_current(void);
/* Installs the session's I/O on fd (the mounted or adopted device). */
int fs_io_install(struct fs_ctx *ctx, int fd);
/*
 * Writes a reply to request unique on fd: err (positive errno) alone, or
 * success with arg. Returns 0 or -errno.
 */
int fs_io_reply_raw(int fd, uint64_t unique, int err, const void *arg,
		    size_t arglen);
/* Feeds the session a kernel INIT kept by a previous daemon. */
int fs_io_replay_init(struct fs_ctx *ctx, const void *init, size_t len);

/* A growing list of fds a hand-over carries (handover.c). */
struct fs_fdlist {
	int *v;
	size_t n, cap;
};
/* Appends fd; returns its index, or -ENOMEM. */
int fs_fdlist_add(struct fs_fdlist *l, int fd);

/*
 * open.c, for a live upgrade: waiting opens taken from the cache (hold),
 * put back (resume), described with the file handles (export; their fds
 * added to l), rebuilt from such a description (adopt; the fds it keeps
 * become -1 in fds), and started in the new process (adopt_resume).
 */
/*
 * handover.c: the signals that end fs_serve's loop (fs_request_stop's
 * wake-up, and SIGTERM or SIGINT whichever thread they land on), set for
 * the loop and put back after; unmount of an adopted mount at the end.
 */
void fs_stop_signals(struct fs_ctx *ctx);
void fs_stop_signals_restore(void);
void fs_adopt_unmount(struct fs_ctx *ctx);
/* The inode table and open directories, described and rebuilt. */
int fs_inodes_export(struct fs_ctx *ctx, json_t *doc);
int fs_inodes_adopt(struct fs_ctx *ctx, const json_t *doc);
size_t fs_inodes_backing_ids(struct fs_ctx *ctx, int *ids, size_t max);
int fs_dir_export(struct fs_ctx *ctx, json_t *doc);
int fs_dir_adopt(struct fs_ctx *ctx, const json_t *doc);

void fs_open_hold(struct fs_ctx *ctx);
int fs_open_resume(struct fs_ctx *ctx);
int fs_open_export(struct fs_ctx *ctx, json_t *doc, struct fs_fdlist *l);
int fs_open_adopt(struct fs_ctx *ctx, const json_t *doc, int *fds,
		  size_t nfds);
int fs_open_adopt_resume(struct fs_ctx *ctx);

/* attr.c: what the catalog says of an inode. */

/*
 * Finds the registration of a blob inode in the current snapshot and
 * decides on it. Returns a copy (caller frees) or NULL (unregistered).
 * *denied gets AF_EDENIED or 0, with the reason.
 */
struct pol_registration *fs_blob_registration(struct fs_ctx *ctx,
					      const struct fs_inode *n,
					      int *denied, char *reason,
					      size_t reasonlen);
/* Owner gid of a project's files (DESIGN §4); *has_gid false: root. */
void fs_project_mode(struct fs_ctx *ctx, const char *project, gid_t *gid,
		     bool *has_gid);
/*
 * Size of a blob without fetching it (DESIGN §2): the cache may learn it
 * with one HEAD, off this thread; waits FS_SIZE_WAIT_MS at most (0 until
 * learned).
 */
uint64_t fs_blob_size(struct fs_ctx *ctx, struct fs_inode *n,
		      const struct pol_registration *r, int denied);
/* The size when known without a request (registered, learned, cached). */
bool fs_blob_size_known(struct fs_ctx *ctx, struct fs_inode *n,
			const struct pol_registration *r, off_t *size);
/*
 * Fills the entry of n from snapshot s (attributes, timeouts). may_head:
 * as fs_blob_size; otherwise a size not yet known gets attr_timeout 0.
 * Returns 0 or -ENOENT when n is not in s.
 */
struct ctl_snap;
int fs_entry_fill(struct fs_ctx *ctx, struct ctl_snap *s, struct fs_inode *n,
		  struct fuse_entry_param *e, bool may_head);
/* The kernel's forget (fuse_lowlevel.h): inode lifetime, fs_int.h. */
void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void fs_forget_multi(fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets);
void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
/* Audits lookup_unregistered for the requester of req. */
void fs_audit_unregistered(struct fs_ctx *ctx, fuse_req_t req,
			   const char *project, const char *name,
			   const char *digest);

/* The operations (each replies exactly once). */
void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readlink(fuse_req_t req, fuse_ino_t ino);
void fs_statfs(fuse_req_t req, fuse_ino_t ino);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi);
void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);

/*
 * inval.c: tells the kernel when blobs it may hold were dropped from the
 * cache. start (after fs_set_cache, before the loop) also registers the
 * cache's drop hook; stop (after the loop) joins the thread; open_check is
 * the cheap look an open takes at the cache's drop generation; kick asks
 * for a look now. Returns 0 or -errno.
 */
int fs_inval_start(struct fs_ctx *ctx);
void fs_inval_stop(struct fs_ctx *ctx);
void fs_inval_kick(struct fs_ctx *ctx);
void fs_inval_open_check(struct fs_ctx *ctx);

/*
 * auditq.c: the daemon's audit lines never wait on the audit log (issue 10
 * item 10). init in fs_new, start/stop around fs_serve's loop, release in
 * fs_free. fs_audit formats ev now and queues it (written at once when no
 * writer runs); it never blocks on the log, and drops (counting) when the
 * queue is full. fs_audit_unreg_allowed: whether a lookup_unregistered of
 * uid may be written now (DESIGN §8 rate limit; the writer reports the
 * count suppressed once per interval).
 */
int fs_auditq_init(struct fs_ctx *ctx);
int fs_auditq_start(struct fs_ctx *ctx);
void fs_auditq_stop(struct fs_ctx *ctx);
void fs_auditq_release(struct fs_ctx *ctx);
struct audit_event;
void fs_audit(struct fs_ctx *ctx, const struct audit_event *ev);
bool fs_audit_unreg_allowed(struct fs_ctx *ctx, uid_t uid);

/*
 * tune.c: the read path without passthrough (issue 16).
 *
 * FS_MAX_REQUEST is the largest FUSE request (max_write, hence max_pages)
 * and the readahead window asked for: 252 pages, so that a reply's header
 * and data fit a 1 MiB pipe and are spliced, never copied twice.
 */
#define FS_MAX_REQUEST ((1u << 20) - (16u << 10))
/* Pieces of the cache file dropped behind a reader: its largest folio. */
#define FS_DROP_PIECE ((off_t)2 << 20)
/* Smaller requests are random reads (no readahead): nothing dropped. */
#define FS_DROP_MIN_REQUEST ((size_t)128 << 10)
/*
 * Raises the read_ahead_kb of the mount on mountpoint (absolute, as
 * mounted) to FS_MAX_REQUEST and sets ctx->readahead_kib; or leaves the
 * kernel's default (logged at info) and sets it to 0. Call right after the
 * mount, before the INIT is answered, with the privilege to write sysfs.
 */
void fs_tune_readahead(struct fs_ctx *ctx, const char *mountpoint);
/*
 * major:minor of the newest mount on mountpoint in f, a mountinfo table
 * (proc(5), octal escapes undone). 0, or -ENOENT when none is listed.
 */
int fs_tune_mountinfo_dev(FILE *f, const char *mountpoint, unsigned *major,
			  unsigned *minor);
/*
 * After [off, off + size) of a cache file was copied into the mount's page
 * cache: drops the file's own pages of every whole FS_DROP_PIECE the range
 * has gone past, when size is readahead-sized. Never fails (advice).
 */
void fs_tune_drop_behind(int fd, off_t off, size_t size);

/* readonly.c: sets every write-type operation of ops to EROFS (DESIGN §7). */
void fs_readonly_fill(struct fuse_lowlevel_ops *ops);

#endif
