/*
 * fs_int.h - private to fs/: the inode table and the daemon context.
 */
#ifndef FS_FS_INT_H
#define FS_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum fs_kind {
	FS_ROOT = 1,
	FS_PROJECT,
	FS_BLOB,	/* <name>@<algo>:<hex> */
	FS_CHANNEL,	/* <name>@<channel>, a symlink */
};

/*
 * One inode. Every field but the counts, the sizes and pt_* is
 * immutable after creation, so a pointer held with a reference can be
 * read without the table lock.
 *
 * Lifetime (FUSE lookup counts, fuse_lowlevel.h "forget"): nlookup counts
 * the entries the kernel was given (lookup and readdirplus replies) and
 * not yet forgotten; refs counts the daemon's own references (a request
 * in flight, an open handle, a waiting open). An inode leaves the table
 * and memory when both reach zero; a later lookup of the same name gets a
 * new number. Numbers are never reused (next_ino only grows), so a number
 * the kernel may still hold always means the same (kind, project, name,
 * ref), and the generation is always 1. Issue 13 (live upgrade) hands
 * the table over with its counts and next_ino: keep them explicit.
 */
struct fs_inode {
	uint64_t ino;
	enum fs_kind kind;
	char *project;		/* NULL for the root */
	char *name;		/* artifact name; NULL for root and projects */
	char *ref;		/* digest string or channel; NULL otherwise */
	uint64_t nlookup;	/* kernel lookup count; guarded by the table lock */
	unsigned refs;		/* daemon references; guarded by the table lock */
	_Atomic uint64_t learned_size;	/* size learned from the source + 1; 0 = unknown */
	_Atomic uint64_t open_size;	/* size of what an open reads + 1; 0 = none yet */
	/*
	 * FUSE passthrough state: the kernel takes one backing file per inode
	 * and refuses to mix passthrough and cached opens of one inode, so the
	 * mode is decided per inode while it has opens. Guarded by the
	 * context's pt_lock.
	 */
	int pt_backing_id;		/* > 0 while registered */
	unsigned pt_nopen;		/* open handles of this inode */
	bool pt_fallback;		/* current opens read through the daemon */
	/*
	 * The cache generation of the verified file behind the opens counted
	 * in pt_nopen, and so of whatever the kernel may hold for this inode
	 * (pages kept by keep_cache, the passthrough backing file); 0 before
	 * the first open. bad: that file was found corrupt (quarantined),
	 * so no new open may share it (issue 10 item 5). Guarded by pt_lock.
	 */
	uint64_t gen;
	bool bad;
	/*
	 * Out of the key chain: found by number only (its opens go on),
	 * while a lookup of the same name gets a new inode (issue 10 item 5).
	 * Guarded by the table lock.
	 */
	bool retired;
	struct fs_inode *key_next;	/* guarded by the table lock */
	struct fs_inode *ino_next;	/* guarded by the table lock */
};

struct fs_inodes {
	pthread_mutex_t lock;
	struct fs_inode **by_key;	/* hash of (kind, project, name, ref); lock */
	struct fs_inode **by_ino;	/* hash of the number; lock */
	size_t nbuckets;		/* of both; lock */
	size_t n;			/* inodes in the table; lock */
	uint64_t next_ino;		/* the next number given; lock */
	struct fs_inode *root;		/* number 1, permanent */
};

/* Creates the table with the root as inode 1. Returns 0 or -ENOMEM. */
int fs_inodes_init(struct fs_inodes *t);
/* Frees every inode, whatever its counts (at unmount). */
void fs_inodes_release(struct fs_inodes *t);
/*
 * Finds or creates the inode for the key, with a reference taken (drop it
 * with fs_inode_put). Returns NULL on -ENOMEM.
 */
struct fs_inode *fs_inodes_get(struct fs_inodes *t, enum fs_kind kind,
			       const char *project, const char *name,
			       const char *ref);
/* The inode with number ino with a reference taken, or NULL. */
struct fs_inode *fs_inodes_find(struct fs_inodes *t, uint64_t ino);
/* The number of the inode for the key if it is in the table, else 0. */
uint64_t fs_inodes_number(struct fs_inodes *t, enum fs_kind kind,
			  const char *project, const char *name,
			  const char *ref);
/* Takes one more reference on n (held already by the caller). */
void fs_inode_hold(struct fs_inodes *t, struct fs_inode *n);
/* Drops a reference; the inode goes when nothing holds it. n may be NULL. */
void fs_inode_put(struct fs_inodes *t, struct fs_inode *n);
/*
 * Counts one more lookup of n: call it for every entry handed to the
 * kernel (lookup reply, readdirplus entry), before the reply; undo it with
 * fs_inodes_forget(t, n->ino, 1) when the reply fails.
 */
void fs_inode_lookup(struct fs_inodes *t, struct fs_inode *n);
/*
 * The kernel forgets nlookup lookups of ino (FUSE forget): the inode goes
 * when its count reaches zero and nothing else holds it. Unknown numbers
 * and the root are ignored.
 */
void fs_inodes_forget(struct fs_inodes *t, uint64_t ino, uint64_t nlookup);
/* Inodes in the table (the root included). */
size_t fs_inodes_count(struct fs_inodes *t);
/*
 * Takes n out of the name lookup: fs_inodes_get makes a new inode for its
 * key from now on, fs_inodes_find still finds n by number. Idempotent.
 */
void fs_inodes_retire(struct fs_inodes *t, struct fs_inode *n);
/*
 * Numbers of the blob inodes whose ref is digest (every blob inode when
 * digest is NULL) into out (at most max). Returns how many there are (may
 * exceed max).
 */
size_t fs_inodes_blobs(struct fs_inodes *t, const char *digest, uint64_t *out,
		       size_t max);
/*
 * Calls fn for every inode the kernel holds (nlookup > 0), under the table
 * lock: fn must not call into the table; it may copy what it needs.
 */
void fs_inodes_foreach(struct fs_inodes *t,
		       void (*fn)(void *arg, const struct fs_inode *n),
		       void *arg);

/*
 * Live upgrade (DESIGN §13): puts back an inode under the number the
 * kernel knows it by, with the kernel's lookup count (the root: only
 * found); *out is valid while the table holds it (no reference taken).
 * 0, -EEXIST (the number or the key is taken), -EINVAL or -ENOMEM. The
 * next number to give, and raising it (numbers are never reused).
 */
int fs_inodes_restore(struct fs_inodes *t, uint64_t ino, enum fs_kind kind,
		      const char *project, const char *name, const char *ref,
		      uint64_t nlookup, struct fs_inode **out);
uint64_t fs_inodes_next(struct fs_inodes *t);
void fs_inodes_set_next(struct fs_inodes *t, uint64_t next);

/*
 * Open handles (files and directories). The kernel can deliver a release
 * while a read or readdir of the same handle is still being answered on
 * another worker thread, so fi->fh carries an id, never a pointer: a
 * request looks the id up and holds a reference while it uses the object;
 * release unlinks the id and the object is freed (its fd closed) when the
 * last reference goes. A closed fd is never used, nor one reused for
 * another file.
 */
struct fs_hent;

struct fs_handles {
	pthread_mutex_t lock;
	struct fs_hent **buckets;	/* guarded by lock */
	size_t nbuckets;
	uint64_t next_id;		/* guarded by lock */
};

int fs_handles_init(struct fs_handles *t);
/* Frees every object still held (at unmount). */
void fs_handles_release_all(struct fs_handles *t);
/*
 * Adds obj (freed later with free_fn(obj)). Returns its id (> 0), or 0 on
 * allocation failure (obj then not taken).
 */
uint64_t fs_handles_add(struct fs_handles *t, void *obj,
			void (*free_fn)(void *obj));
/* The object of id with a reference taken, or NULL once released. */
void *fs_handles_get(struct fs_handles *t, uint64_t id);
/* Drops a reference taken by fs_handles_get. */
void fs_handles_put(struct fs_handles *t, uint64_t id);
/* Unlinks id; the object is freed now or when the last reference drops. */
void fs_handles_close(struct fs_handles *t, uint64_t id);

/*
 * Live upgrade (DESIGN §13): every open handle, under the table lock (fn
 * must not call into the table); the next id to give; an object put back
 * under the id the kernel knows it by (0, -EEXIST or -ENOMEM); the next
 * id raised to at least id.
 */
void fs_handles_foreach(struct fs_handles *t,
			void (*fn)(void *arg, uint64_t id, void *obj,
				   void (*free_fn)(void *obj)),
			void *arg);
uint64_t fs_handles_next_id(struct fs_handles *t);
int fs_handles_restore(struct fs_handles *t, uint64_t id, void *obj,
		       void (*free_fn)(void *obj));
void fs_handles_set_next_id(struct fs_handles *t, uint64_t id);

#endif
