/*
 * dir.c - directories (DESIGN §7): the root lists projects, a project lists
 * <name>@<digest> files and <name>@<channel> symlinks. A listing is built
 * once at opendir from one catalog snapshot and served from that buffer.
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

struct fs_dirbuf {
	char *p;
	size_t size;
	size_t cap;
};

static int dirbuf_add(fuse_req_t req, struct fs_dirbuf *b, const char *name,
		      fuse_ino_t ino, mode_t mode)
{
	struct stat st;
	size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);

	if (b->size + need > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 4096;
		char *np;

		while (cap < b->size + need)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = mode;
	fuse_add_direntry(req, b->p + b->size, need, name, &st,
			  (off_t)(b->size + need));
	b->size += need;
	return 0;
}

static int list_root(struct fs_ctx *ctx, fuse_req_t req, struct fs_dirbuf *b)
{
	const char *const *projects;
	size_t n;
	int rc = 0;

	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);

	projects = pol_registry_projects(ctl_snap_registry(s), &n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct fs_inode *in = fs_inodes_get(&ctx->inodes, FS_PROJECT,
						    projects[i], NULL, NULL);

		rc = in ? dirbuf_add(req, b, projects[i], in->ino, S_IFDIR) : -ENOMEM;
	}
	ctl_snap_put(s);
	return rc;
}

static int list_project(struct fs_ctx *ctx, fuse_req_t req,
			const char *project, struct fs_dirbuf *b)
{
	size_t first, n;
	int rc = 0;
	char ent[512];

	struct ctl_snap *s = ctl_catalog_snap(ctx->catalog);
	const struct pol_registry *g = ctl_snap_registry(s);

	n = pol_registry_project_range(g, project, &first);
	for (size_t i = first; i < first + n && rc == 0; i++) {
		const struct pol_registration *r = pol_registry_at(g, i);
		struct fs_inode *in;

		snprintf(ent, sizeof(ent), "%s@%s", r->name, r->digest.str);
		in = fs_inodes_get(&ctx->inodes, FS_BLOB, project, r->name,
				   r->digest.str);
		rc = in ? dirbuf_add(req, b, ent, in->ino, S_IFREG) : -ENOMEM;
	}
	/* Channel symlinks: each (name, channel) once, if a readable record claims it. */
	for (size_t i = first; i < first + n && rc == 0; i++) {
		const struct pol_registration *r = pol_registry_at(g, i);

		for (size_t c = 0; c < r->n_channels && rc == 0; c++) {
			const struct pol_registration *win;
			struct fs_inode *in;
			bool dup = false;

			win = pol_registry_channel(g, ctl_snap_policy(s),
						   project, r->name,
						   r->channels[c], NULL);
			if (win != r)
				continue;	/* listed once, under the winner */
			for (size_t k = 0; k < c; k++)
				dup |= strcmp(r->channels[k], r->channels[c]) == 0;
			if (dup)
				continue;
			snprintf(ent, sizeof(ent), "%s@%s", r->name, r->channels[c]);
			in = fs_inodes_get(&ctx->inodes, FS_CHANNEL, project,
					   r->name, r->channels[c]);
			rc = in ? dirbuf_add(req, b, ent, in->ino, S_IFLNK) : -ENOMEM;
		}
	}
	ctl_snap_put(s);
	return rc;
}

static void dirbuf_free(void *obj)
{
	struct fs_dirbuf *b = obj;

	free(b->p);
	free(b);
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	struct fs_dirbuf *b;
	int rc;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind != FS_ROOT && n->kind != FS_PROJECT) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = dirbuf_add(req, b, ".", n->ino, S_IFDIR);
	if (rc == 0)
		rc = dirbuf_add(req, b, "..", 1, S_IFDIR);
	if (rc == 0)
		rc = n->kind == FS_ROOT ? list_root(ctx, req, b) :
					  list_project(ctx, req, n->project, b);
	if (rc < 0) {
		free(b->p);
		free(b);
		fuse_reply_err(req, af_errno(rc));
		return;
	}
	fi->fh = fs_handles_add(&ctx->handles, b, dirbuf_free);
	if (!fi->fh) {
		dirbuf_free(b);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		fs_handles_close(&ctx->handles, fi->fh);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_dirbuf *b = fs_handles_get(&ctx->handles, fi->fh);
	size_t start = (size_t)off;

	(void)ino;
	if (!b) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0 || start >= b->size) {
		fuse_reply_buf(req, NULL, 0);
		fs_handles_put(&ctx->handles, fi->fh);
		return;
	}
	/*
	 * Offsets are entry ends; a reply cut inside an entry is fine: the
	 * kernel keeps whole entries and asks again from the last offset.
	 */
	fuse_reply_buf(req, b->p + start,
		       b->size - start < size ? b->size - start : size);
	fs_handles_put(&ctx->handles, fi->fh);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);

	(void)ino;
	fs_handles_close(&ctx->handles, fi->fh);
	fuse_reply_err(req, 0);
}

