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
 * One inode. Every field but size is immutable after creation, so a
 * pointer obtained from the table can be read without the table lock.
 * Inodes are never removed while mounted: a number always means the same
 * (kind, project, name, ref), across registry reloads too.
 */
struct fs_inode {
	uint64_t ino;
	enum fs_kind kind;
	char *project;		/* NULL for the root */
	char *name;		/* artifact name; NULL for root and projects */
	char *ref;		/* digest string or channel; NULL otherwise */
	_Atomic uint64_t learned_size;	/* size learned from the source + 1; 0 = unknown */
	/*
	 * FUSE passthrough state: the kernel takes one backing file per inode
	 * and refuses to mix passthrough and cached opens of one inode, so the
	 * mode is decided per inode while it has opens. Guarded by the
	 * context's pt_lock.
	 */
	int pt_backing_id;		/* > 0 while registered */
	unsigned pt_nopen;		/* open handles of this inode */
	bool pt_fallback;		/* current opens read through the daemon */
	struct fs_inode *hash_next;	/* guarded by the table lock */
};

struct fs_inodes {
	pthread_mutex_t lock;
	struct fs_inode **by_ino;	/* index ino - 1; guarded by lock */
	size_t n;			/* guarded by lock */
	size_t cap;			/* guarded by lock */
	struct fs_inode **buckets;	/* guarded by lock */
	size_t nbuckets;		/* guarded by lock */
};

/* Creates the table with the root as inode 1. Returns 0 or -ENOMEM. */
int fs_inodes_init(struct fs_inodes *t);
void fs_inodes_release(struct fs_inodes *t);
/* Finds or creates the inode for the key. Returns NULL on -ENOMEM. */
struct fs_inode *fs_inodes_get(struct fs_inodes *t, enum fs_kind kind,
			       const char *project, const char *name,
			       const char *ref);
/* The inode with number ino, or NULL. */
struct fs_inode *fs_inodes_find(struct fs_inodes *t, uint64_t ino);

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

#endif
