/*
 * attr.c - what the catalog says of an inode: lookup, getattr, readlink,
 * statfs, and the helpers the other operations share (DESIGN §2, §3, §7).
 * Nothing here fetches a byte of a blob.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ops_int.h"

bool fs_split_ref(const char *s, char *name, size_t namelen, const char **ref)
{
	const char *at = strrchr(s, '@');
	size_t n;

	if (!at || at == s || !at[1])
		return false;
	n = (size_t)(at - s);
	if (n >= namelen)
		return false;
	memcpy(name, s, n);
	name[n] = '\0';
	*ref = at + 1;
	return true;
}

/* ---- what the catalog says --------------------------------------------- */

struct pol_registration *fs_blob_registration(struct fs_ctx *ctx,
					      const struct fs_inode *n,
					      int *denied, char *reason,
					      size_t reasonlen)
{
	const struct pol_registration *r;
	struct pol_registration *copy = NULL;
	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);

	r = ctl_snap_find(s, n->project, n->name, n->ref);
	if (r) {
		*denied = pol_policy_decide(ctl_snap_policy(s), r, reason,
					    reasonlen);
		copy = pol_registration_dup(r);
	}
	ctl_snap_put(s);
	return copy;
}

/* Resolves a channel to "<name>@<digest>" into buf. False if none. */
static bool channel_target(struct fs_ctx *ctx, const struct fs_inode *n,
			   char *buf, size_t len)
{
	const struct pol_registration *r;
	bool ok = false;
	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);

	r = ctl_snap_channel(s, n->project, n->name, n->ref, NULL);
	if (r && (size_t)snprintf(buf, len, "%s@%s", r->name, r->digest.str) < len)
		ok = true;
	ctl_snap_put(s);
	return ok;
}

void fs_project_mode(struct fs_ctx *ctx, const char *project, gid_t *gid,
			 bool *has_gid)
{
	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);

	*has_gid = project && pol_policy_project_gid(ctl_snap_policy(s),
						     project, gid);
	ctl_snap_put(s);
	if (!*has_gid)
		*gid = 0;
}

/* ---- attributes ------------------------------------------------------- */

bool fs_blob_size_known(struct fs_ctx *ctx, struct fs_inode *n,
			const struct pol_registration *r, off_t *size)
{
	struct cache_info info;
	uint64_t learned = atomic_load(&n->learned_size);

	if (r->has_size) {
		*size = (off_t)r->size_bytes;
		return true;
	}
	if (learned) {
		*size = (off_t)(learned - 1);
		return true;
	}
	if (cache_stat(ctx->cache, &r->digest, &info) == 0 && info.size_known) {
		atomic_store(&n->learned_size, info.size + 1);
		*size = (off_t)info.size;
		return true;
	}
	*size = 0;
	return false;
}

/*
 * Size of a blob without fetching it (DESIGN §2, §7) and without waiting
 * on the network on this worker thread (issue 10 item 8): the registered
 * size, else what this inode or the index learned, else the cache learns
 * it off this thread (one request per blob, shared by every caller) and
 * this waits FS_SIZE_WAIT_MS at most: 0 until it is learned (the kernel
 * asks again after FS_ENTRY_TIMEOUT). A denied source is never asked.
 */
uint64_t fs_blob_size(struct fs_ctx *ctx, struct fs_inode *n,
			  const struct pol_registration *r, int denied)
{
	uint64_t size = 0;
	off_t known;

	if (fs_blob_size_known(ctx, n, r, &known))
		return (uint64_t)known;
	if (denied ||
	    cache_blob_size(ctx->cache, r, FS_SIZE_WAIT_MS, &size) != 0)
		return 0;
	atomic_store(&n->learned_size, size + 1);
	return size;
}

/*
 * Fills st for n from snapshot s. Returns 0 or a negative error (-ENOENT
 * when gone). may_head: a blob registered without a size may cost one
 * HEAD (lookup, getattr), else (readdirplus) *size_unknown says the size
 * is a placeholder the kernel must not keep.
 */
static int fill_attr(struct fs_ctx *ctx, struct ctl_snap *s,
		     struct fs_inode *n, struct stat *st, bool may_head,
		     bool *size_unknown)
{
	const struct pol_registration *r;
	char target[512];
	bool has_gid;
	gid_t gid = 0;
	int denied;

	memset(st, 0, sizeof(*st));
	if (size_unknown)
		*size_unknown = false;
	st->st_ino = n->ino;
	st->st_uid = 0;
	st->st_blksize = 4096;
	has_gid = n->project && pol_policy_project_gid(ctl_snap_policy(s),
						       n->project, &gid);
	st->st_gid = has_gid ? gid : 0;
	st->st_mtim.tv_sec = ctx->mounted_at;
	st->st_ctim.tv_sec = ctx->mounted_at;
	st->st_atim.tv_sec = ctx->mounted_at;
	switch (n->kind) {
	case FS_ROOT:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	case FS_PROJECT:
		if (!ctl_snap_project(s, n->project))
			return -ENOENT;
		st->st_mode = S_IFDIR | (has_gid ? 0550 : 0555);
		st->st_nlink = 2;
		return 0;
	case FS_CHANNEL:
		r = ctl_snap_channel(s, n->project, n->name, n->ref, NULL);
		if (!r || (size_t)snprintf(target, sizeof(target), "%s@%s",
					   r->name, r->digest.str) >= sizeof(target))
			return -ENOENT;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(target);
		return 0;
	case FS_BLOB:
		r = ctl_snap_find(s, n->project, n->name, n->ref);
		if (!r)
			return -ENOENT;
		st->st_mode = S_IFREG | (has_gid ? 0440 : 0444);
		st->st_nlink = 1;
		if (may_head) {
			denied = pol_policy_decide(ctl_snap_policy(s), r, NULL, 0);
			st->st_size = (off_t)fs_blob_size(ctx, n, r, denied);
		} else if (!fs_blob_size_known(ctx, n, r, &st->st_size) &&
			   size_unknown) {
			*size_unknown = true;
		}
		st->st_blocks = (st->st_size + 511) / 512;
		st->st_mtim.tv_sec = r->registered_at_s;
		st->st_ctim.tv_sec = r->registered_at_s;
		st->st_atim.tv_sec = r->registered_at_s;
		return 0;
	default:
		return -EIO;
	}
}

/* fill_attr with the current snapshot. */
static int fill_attr_now(struct fs_ctx *ctx, struct fs_inode *n,
			 struct stat *st)
{
	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);
	int rc = fill_attr(ctx, s, n, st, true, NULL);

	ctl_snap_put(s);
	return rc;
}

int fs_entry_fill(struct fs_ctx *ctx, struct ctl_snap *s, struct fs_inode *n,
		  struct fuse_entry_param *e, bool may_head)
{
	bool size_unknown = false;
	int rc;

	memset(e, 0, sizeof(*e));
	rc = fill_attr(ctx, s, n, &e->attr, may_head, &size_unknown);
	if (rc < 0)
		return rc;
	e->ino = n->ino;
	e->generation = 1;	/* numbers are never reused (fs_int.h) */
	e->attr_timeout = size_unknown ? 0 : FS_ENTRY_TIMEOUT;
	e->entry_timeout = FS_ENTRY_TIMEOUT;
	return 0;
}

/* Replies with the entry of n, counting the lookup the kernel now holds. */
static void reply_entry(struct fs_ctx *ctx, fuse_req_t req, struct fs_inode *n)
{
	struct fuse_entry_param e;
	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);
	int rc = fs_entry_fill(ctx, s, n, &e, true);

	ctl_snap_put(s);
	if (rc < 0) {
		fuse_reply_err(req, af_errno(rc));
		return;
	}
	fs_inode_lookup(&ctx->inodes, n);
	if (fuse_reply_entry(req, &e) != 0)
		fs_inodes_forget(&ctx->inodes, n->ino, 1);	/* never reached the kernel */
}

void fs_audit_unregistered(struct fs_ctx *ctx, fuse_req_t req,
			       const char *project, const char *name,
			       const char *digest)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	fs_count_open(ctx, ENOENT);
	/* DESIGN §8: a flood of wrong names must not fill the disk. */
	if (!fs_audit_unreg_allowed(ctx, fc->uid))
		return;
	fs_audit(ctx, &(struct audit_event){
		.event = "lookup_unregistered", .project = project,
		.name = name, .digest = digest, .has_ids = true,
		.uid = fc->uid, .gid = fc->gid, .pid = fc->pid,
		.decision = "deny", .reason = "not registered",
	});
}

/* ---- lookup, getattr, readlink, forget -------------------------------- */

/*
 * The inode for name in project directory p, with a reference, or NULL
 * and *err (ENOENT: unregistered, audited for a digest name).
 */
static struct fs_inode *lookup_in_project(struct fs_ctx *ctx, fuse_req_t req,
					  struct fs_inode *p, const char *name,
					  int *err)
{
	const struct pol_registration *r;
	struct fs_inode *n = NULL;
	struct pol_digest d;
	struct ctl_snap *s;
	char base[256];
	const char *ref;

	*err = ENOENT;
	if (!fs_split_ref(name, base, sizeof(base), &ref) ||
	    !pol_name_valid(base))
		return NULL;
	if (strchr(ref, ':')) {
		if (pol_digest_parse(ref, &d, NULL, 0) < 0) {
			fs_audit_unregistered(ctx, req, p->project, base, NULL);
			return NULL;
		}
		s = ctl_catalog_snap(ctx->catalog);
		r = ctl_snap_find(s, p->project, base, d.str);
		ctl_snap_put(s);
		/*
		 * Not in the last listing: the control plane is asked for
		 * this one name (DESIGN §3), within a bounded wait.
		 */
		if (!r && ctl_catalog_probe(ctx->catalog, p->project, base,
					    d.str, FS_PROBE_WAIT_MS) == 0) {
			s = ctl_catalog_snap(ctx->catalog);
			r = ctl_snap_find(s, p->project, base, d.str);
			ctl_snap_put(s);
		}
		if (!r) {
			fs_audit_unregistered(ctx, req, p->project, base, d.str);
			return NULL;
		}
		n = fs_inodes_get(&ctx->inodes, FS_BLOB, p->project, base, d.str);
	} else {
		if (!pol_channel_valid(ref))
			return NULL;
		/* Only a channel a readable record claims gets an inode. */
		s = ctl_catalog_snap(ctx->catalog);
		r = ctl_snap_channel(s, p->project, base, ref, NULL);
		ctl_snap_put(s);
		if (!r)
			return NULL;
		n = fs_inodes_get(&ctx->inodes, FS_CHANNEL, p->project, base, ref);
	}
	if (!n)
		*err = ENOMEM;
	return n;
}

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *p = fs_inodes_find(&ctx->inodes, parent);
	struct fs_inode *n = NULL;
	struct ctl_snap *s;
	int err = ENOENT;
	bool found;

	if (!p) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* The longest name served is FS_NAME_MAX (statfs says so). */
	if (strlen(name) > FS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	switch (p->kind) {
	case FS_ROOT:
		if (!pol_project_valid(name))
			break;
		s = ctl_catalog_snap(ctx->catalog);
		found = ctl_snap_project(s, name) != NULL;
		ctl_snap_put(s);
		if (!found)
			break;
		n = fs_inodes_get(&ctx->inodes, FS_PROJECT, name, NULL, NULL);
		if (!n)
			err = ENOMEM;
		break;
	case FS_PROJECT:
		n = lookup_in_project(ctx, req, p, name, &err);
		break;
	default:
		err = ENOTDIR;
		break;
	}
	fs_inode_put(&ctx->inodes, p);
	if (!n) {
		fuse_reply_err(req, err);
		return;
	}
	reply_entry(ctx, req, n);
	fs_inode_put(&ctx->inodes, n);
}

void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);

	fs_inodes_forget(&ctx->inodes, ino, nlookup);
	fuse_reply_none(req);
}

void fs_forget_multi(fuse_req_t req, size_t count,
		     struct fuse_forget_data *forgets)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);

	for (size_t i = 0; i < count; i++)
		fs_inodes_forget(&ctx->inodes, forgets[i].ino,
				 forgets[i].nlookup);
	fuse_reply_none(req);
}

/*
 * fstat of a file still open after its registration left (issue 9: handles
 * already open may finish; the kernel's fstat carries no file handle):
 * the attributes of what the opens read.
 */
static int open_attr(struct fs_ctx *ctx, struct fs_inode *n, struct stat *st)
{
	uint64_t size = atomic_load(&n->open_size);
	bool has_gid, open;
	gid_t gid;

	pthread_mutex_lock(&ctx->pt_lock);
	open = n->pt_nopen > 0;
	pthread_mutex_unlock(&ctx->pt_lock);
	if (!open || size == 0)
		return -ENOENT;
	fs_project_mode(ctx, n->project, &gid, &has_gid);
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = S_IFREG | (has_gid ? 0440 : 0444);
	st->st_nlink = 1;
	st->st_gid = gid;
	st->st_size = (off_t)(size - 1);
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = ctx->mounted_at;
	st->st_ctim.tv_sec = ctx->mounted_at;
	st->st_atim.tv_sec = ctx->mounted_at;
	return 0;
}

void fs_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	struct stat st;
	int rc;

	(void)fi;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = fill_attr_now(ctx, n, &st);
	if (rc == -ENOENT && n->kind == FS_BLOB)
		rc = open_attr(ctx, n, &st);
	fs_inode_put(&ctx->inodes, n);
	if (rc < 0) {
		fuse_reply_err(req, af_errno(rc));
		return;
	}
	fuse_reply_attr(req, &st, FS_ENTRY_TIMEOUT);
}

void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	char target[512];
	bool ok;

	if (!n || n->kind != FS_CHANNEL) {
		fuse_reply_err(req, n ? EINVAL : ENOENT);
		fs_inode_put(&ctx->inodes, n);
		return;
	}
	ok = channel_target(ctx, n, target, sizeof(target));
	fs_inode_put(&ctx->inodes, n);
	if (!ok) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_readlink(req, target);
}


void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct statvfs sv;
	struct ctl_snap *s;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	s = ctl_catalog_snap(ctx->catalog);
	sv.f_files = ctl_snap_count(s);
	ctl_snap_put(s);
	sv.f_namemax = FS_NAME_MAX;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

