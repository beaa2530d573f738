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

#endif
