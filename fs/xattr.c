/*
 * xattr.c - extended attributes of artifacts (DESIGN §7), read-only, and
 * the daemon's own counters on the root (user.artifactfs.reads, .inodes).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cache/cache.h"
#include "../control/catalog.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "ops_int.h"

static const char *const xattr_names[] = {
	"digest", "source_type", "uri", "size", "lifecycle_state",
	"trust_state", "cache_state", "verified_at", "content_encoding",
	"denied_reason", "attestation",
};

/*
 * Value of attribute key for blob n into buf. Returns its length, or
 * -ENODATA when it has none (verified_at before verification,
 * denied_reason when allowed), or -ENOENT. trust_state is the registered
 * value; attestation is the node's own finding on the evidence (§12).
 */
static int blob_xattr(struct fs_ctx *ctx, struct fs_inode *n, const char *key,
		      char *buf, size_t len)
{
	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);
	const struct pol_registration *r;
	struct cache_info info;
	char reason[256];
	int denied = 0, rc = -ENODATA;
	bool cached;

	/* Read in place under the snapshot's reference: no copy of the record. */
	r = ctl_snap_find(s, n->project, n->name, n->ref);
	if (!r) {
		ctl_snap_put(s);
		return -ENOENT;
	}
	denied = pol_policy_decide(ctl_snap_policy(s), r, reason, sizeof(reason));
	cached = cache_stat(ctx->cache, &r->digest, &info) == 0;
	if (strcmp(key, "digest") == 0) {
		rc = snprintf(buf, len, "%s", r->digest.str);
	} else if (strcmp(key, "source_type") == 0) {
		rc = snprintf(buf, len, "%s", pol_source_type_name(r->source_type));
	} else if (strcmp(key, "uri") == 0) {
		pol_uri_redact(r->uri, buf, len);
		rc = (int)strlen(buf);
	} else if (strcmp(key, "size") == 0) {
		rc = snprintf(buf, len, "%llu",
			      (unsigned long long)fs_blob_size(ctx, n, r, denied));
	} else if (strcmp(key, "lifecycle_state") == 0) {
		rc = snprintf(buf, len, "%s", pol_lifecycle_name(r->lifecycle));
	} else if (strcmp(key, "trust_state") == 0) {
		rc = snprintf(buf, len, "%s", pol_trust_name(r->trust));
	} else if (strcmp(key, "content_encoding") == 0) {
		rc = snprintf(buf, len, "%s", r->content_encoding);
	} else if (strcmp(key, "cache_state") == 0) {
		const char *st = "none";

		if (cached && info.state == CACHE_VERIFIED)
			st = "verified";
		else if (cached && info.state == CACHE_QUARANTINED)
			st = "quarantined";	/* DESIGN §7: failed verification */
		else if (cached && info.state == CACHE_PARTIAL &&
			 info.bytes_present > 0)
			st = "partial";	/* a record with no byte is only a known size */
		rc = snprintf(buf, len, "%s", st);
	} else if (strcmp(key, "verified_at") == 0) {
		if (cached && info.state == CACHE_VERIFIED && info.verified_at > 0) {
			af_rfc3339(info.verified_at, buf, len);
			rc = (int)strlen(buf);
		}
	} else if (strcmp(key, "denied_reason") == 0) {
		if (denied)
			rc = snprintf(buf, len, "%s", reason);
	} else if (strcmp(key, "attestation") == 0) {
		struct pol_attest_result ar;

		/* The result cached at load: no signature check here. */
		pol_attest_get(ctl_snap_policy(s), r, &ar);
		rc = snprintf(buf, len, "%s", ar.text);
	}
	ctl_snap_put(s);
	if (rc >= (int)len)
		rc = (int)len - 1;
	return rc;
}

static void reply_xattr_value(fuse_req_t req, const char *val, size_t vlen,
			      size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, vlen);
	else if (size < vlen)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, vlen);
}

static void getxattr_of(fuse_req_t req, struct fs_ctx *ctx,
			struct fs_inode *n, const char *name, size_t size)
{
	char val[4096];
	int rc;

	if (n->kind == FS_ROOT && strcmp(name, "user.artifactfs.reads") == 0) {
		rc = snprintf(val, sizeof(val), "%llu",
			      (unsigned long long)atomic_load(&ctx->reads));
		reply_xattr_value(req, val, (size_t)rc, size);
		return;
	}
	/* Inodes the daemon holds (the kernel's lookups; issue 9 memory). */
	if (n->kind == FS_ROOT && strcmp(name, "user.artifactfs.inodes") == 0) {
		rc = snprintf(val, sizeof(val), "%zu",
			      fs_inodes_count(&ctx->inodes));
		reply_xattr_value(req, val, (size_t)rc, size);
		return;
	}
	/*
	 * Only the user namespace exists here: security.*, system.* (POSIX
	 * ACLs), trusted.* are not supported rather than absent, so that a
	 * tool that probes them (ls -l asks for an SELinux label and an ACL
	 * on every file) learns it once per file system instead of asking
	 * the daemon twice per file (issue 9: ls -l of 10,000 entries).
	 */
	if (strncmp(name, "user.", 5) != 0) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (n->kind != FS_BLOB ||
	    strncmp(name, FS_XATTR_PREFIX, strlen(FS_XATTR_PREFIX)) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = blob_xattr(ctx, n, name + strlen(FS_XATTR_PREFIX), val, sizeof(val));
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_xattr_value(req, val, (size_t)rc, size);
}

static void listxattr_of(fuse_req_t req, struct fs_ctx *ctx,
			 struct fs_inode *n, size_t size)
{
	char list[1024], val[4096];
	size_t len = 0;

	if (n->kind == FS_ROOT) {
		static const char root_attr[] =
			"user.artifactfs.reads\0user.artifactfs.inodes";

		reply_xattr_value(req, root_attr, sizeof(root_attr), size);
		return;
	}
	if (n->kind == FS_BLOB) {
		for (size_t i = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++) {
			int rc = blob_xattr(ctx, n, xattr_names[i], val, sizeof(val));
			int w;

			if (rc == -ENOENT) {
				fuse_reply_err(req, ENOENT);
				return;
			}
			if (rc < 0)
				continue;
			w = snprintf(list + len, sizeof(list) - len, "%s%s",
				     FS_XATTR_PREFIX, xattr_names[i]);
			if (w < 0 || (size_t)w >= sizeof(list) - len)
				break;
			len += (size_t)w + 1;	/* keep the NUL separator */
		}
	}
	reply_xattr_value(req, list, len, size);
}


/* The inode is held (fs_int.h) while its attributes are read. */
void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 size_t size)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	getxattr_of(req, ctx, n, name, size);
	fs_inode_put(&ctx->inodes, n);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	listxattr_of(req, ctx, n, size);
	fs_inode_put(&ctx->inodes, n);
}
