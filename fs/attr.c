/*
 * attr.c - what the catalog says of an inode: lookup, getattr, readlink,
 * statfs, and the helpers the other operations share (DESIGN §2, §3, §7).
 * Nothing here fetches a byte of a blob.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "../sources/source.h"
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

	r = pol_registry_find(ctl_snap_registry(s), n->project, n->name, n->ref);
	if (r) {
		*denied = pol_policy_decide(ctl_snap_policy(s), r, reason,
					    reasonlen);
		copy = pol_registration_dup(r);
	}
	ctl_snap_put(s);
	return copy;
}

static bool project_exists(struct fs_ctx *ctx, const char *project)
{
	size_t first;
	bool ok;

	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);

	ok = pol_registry_project_range(ctl_snap_registry(s), project,
					&first) > 0;
	ctl_snap_put(s);
	return ok;
}

/* Resolves a channel to "<name>@<digest>" into buf. False if none. */
static bool channel_target(struct fs_ctx *ctx, const struct fs_inode *n,
			   char *buf, size_t len)
{
	const struct pol_registration *r;
	bool ok = false;

	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);

	r = pol_registry_channel(ctl_snap_registry(s), ctl_snap_policy(s),
				 n->project, n->name,
				 n->ref, NULL);
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

/*
 * Size of a blob without fetching: the registered size, else what the cache
 * or an earlier HEAD learned, else one HEAD (DESIGN §2), only when policy
 * allows the source.
 */
uint64_t fs_blob_size(struct fs_ctx *ctx, struct fs_inode *n,
			  const struct pol_registration *r, int denied)
{
	struct cache_info info;
	uint64_t learned = atomic_load(&n->learned_size);
	struct src *s = NULL;
	uint64_t size = 0;
	char reason[256];

	if (r->has_size)
		return r->size_bytes;
	if (learned)
		return learned - 1;
	if (cache_stat(ctx->cache, &r->digest, &info) == 0 && info.size_known) {
		atomic_store(&n->learned_size, info.size + 1);
		return info.size;
	}
	if (denied || src_open(ctx->srcs, r, &s) < 0)
		return 0;
	if (src_size(s, &size, reason, sizeof(reason)) == 0) {
		atomic_store(&n->learned_size, size + 1);
		if (cache_note_size(ctx->cache, r, size) < 0)
			af_debug("cache: %s: size not kept in the index", r->digest.str);
	} else {
		size = 0;
	}
	src_close(s);
	return size;
}

/* Fills st for n. Returns 0 or a negative error (-ENOENT when gone). */
static int fill_attr(struct fs_ctx *ctx, struct fs_inode *n, struct stat *st)
{
	struct pol_registration *r;
	char target[512], reason[256];
	bool has_gid;
	gid_t gid;
	int denied = 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_uid = 0;
	st->st_blksize = 4096;
	fs_project_mode(ctx, n->project, &gid, &has_gid);
	st->st_gid = gid;

	st->st_mtim.tv_sec = ctx->mounted_at;
	st->st_ctim.tv_sec = ctx->mounted_at;
	st->st_atim.tv_sec = ctx->mounted_at;
	switch (n->kind) {
	case FS_ROOT:
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		return 0;
	case FS_PROJECT:
		if (!project_exists(ctx, n->project))
			return -ENOENT;
		st->st_mode = S_IFDIR | (has_gid ? 0550 : 0555);
		st->st_nlink = 2;
		return 0;
	case FS_CHANNEL:
		if (!channel_target(ctx, n, target, sizeof(target)))
			return -ENOENT;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(target);
		return 0;
	case FS_BLOB:
		r = fs_blob_registration(ctx, n, &denied, reason, sizeof(reason));
		if (!r)
			return -ENOENT;
		st->st_mode = S_IFREG | (has_gid ? 0440 : 0444);
		st->st_nlink = 1;
		st->st_size = (off_t)fs_blob_size(ctx, n, r, denied);
		st->st_blocks = (st->st_size + 511) / 512;
		st->st_mtim.tv_sec = r->registered_at_s;
		st->st_ctim.tv_sec = r->registered_at_s;
		st->st_atim.tv_sec = r->registered_at_s;
		pol_registration_free(r);
		return 0;
	default:
		return -EIO;
	}
}

static void reply_entry(struct fs_ctx *ctx, fuse_req_t req, struct fs_inode *n)
{
	struct fuse_entry_param e;
	int rc;

	memset(&e, 0, sizeof(e));
	rc = fill_attr(ctx, n, &e.attr);
	if (rc < 0) {
		fuse_reply_err(req, af_errno(rc));
		return;
	}
	e.ino = n->ino;
	e.generation = 1;
	e.attr_timeout = FS_ENTRY_TIMEOUT;
	e.entry_timeout = FS_ENTRY_TIMEOUT;
	fuse_reply_entry(req, &e);
}

void fs_audit_unregistered(struct fs_ctx *ctx, fuse_req_t req,
			       const char *project, const char *name,
			       const char *digest)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	audit_emit(ctx->audit, &(struct audit_event){
		.event = "lookup_unregistered", .project = project,
		.name = name, .digest = digest, .has_ids = true,
		.uid = fc->uid, .gid = fc->gid, .pid = fc->pid,
		.decision = "deny", .reason = "not registered",
	});
}

/* ---- lookup, getattr, readlink ---------------------------------------- */

void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *p = fs_inodes_find(&ctx->inodes, parent);
	struct fs_inode *n;
	struct ctl_snap *s;
	char base[256];
	const char *ref;
	struct pol_digest d;

	if (!p) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	switch (p->kind) {
	case FS_ROOT:
		if (!pol_project_valid(name) || !project_exists(ctx, name)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		n = fs_inodes_get(&ctx->inodes, FS_PROJECT, name, NULL, NULL);
		break;
	case FS_PROJECT:
		if (!fs_split_ref(name, base, sizeof(base), &ref) ||
		    !pol_name_valid(base)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if (strchr(ref, ':')) {
			const struct pol_registration *r;
			bool found;

			if (pol_digest_parse(ref, &d, NULL, 0) < 0) {
				fs_audit_unregistered(ctx, req, p->project, base, NULL);
				fuse_reply_err(req, ENOENT);
				return;
			}
			s = ctl_catalog_snap(ctx->catalog);
			r = pol_registry_find(ctl_snap_registry(s), p->project,
					      base, d.str);
			found = r != NULL;
			ctl_snap_put(s);
			if (!found) {
				fs_audit_unregistered(ctx, req, p->project, base, d.str);
				fuse_reply_err(req, ENOENT);
				return;
			}
			n = fs_inodes_get(&ctx->inodes, FS_BLOB, p->project, base, d.str);
		} else {
			const struct pol_registration *r;
			bool found;

			if (!pol_channel_valid(ref)) {
				fuse_reply_err(req, ENOENT);
				return;
			}
			/* Only a channel a readable record claims gets an inode. */
			s = ctl_catalog_snap(ctx->catalog);
			r = pol_registry_channel(ctl_snap_registry(s),
						 ctl_snap_policy(s),
						 p->project, base, ref, NULL);
			found = r != NULL;
			ctl_snap_put(s);
			if (!found) {
				fuse_reply_err(req, ENOENT);
				return;
			}
			n = fs_inodes_get(&ctx->inodes, FS_CHANNEL, p->project, base, ref);
		}
		break;
	default:
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_entry(ctx, req, n);
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
	rc = fill_attr(ctx, n, &st);
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

	if (!n || n->kind != FS_CHANNEL) {
		fuse_reply_err(req, n ? EINVAL : ENOENT);
		return;
	}
	if (!channel_target(ctx, n, target, sizeof(target))) {
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
	sv.f_files = pol_registry_count(ctl_snap_registry(s));
	ctl_snap_put(s);
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

