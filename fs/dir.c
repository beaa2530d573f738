/*
 * dir.c - directories (DESIGN §7): the root lists projects, a project lists
 * <name>@<digest> files and <name>@<channel> symlinks.
 *
 * The names are taken once at opendir from one catalog snapshot; each
 * readdir reply is built from them on demand. A plain readdir hands out no
 * inode (an entry the kernel never looked up shows the number of its live
 * inode, else FS_UNKNOWN_INO). A readdirplus reply hands out an inode per
 * entry, so each entry counts as a lookup (fs_inode_lookup) and is only
 * given while the current snapshot still holds it: `ls -l` then costs one
 * reply per page of entries instead of a lookup per entry.
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

/* The d_ino of an entry without an inode (libfuse's FUSE_UNKNOWN_INO). */
#define FS_UNKNOWN_INO	0xffffffffULL

struct fs_dent {
	uint32_t off;		/* of the name in names */
	uint16_t at;		/* length of the name part before '@'; 0: none */
	uint8_t kind;		/* enum fs_kind */
};

struct fs_dir {
	enum fs_kind kind;	/* FS_ROOT or FS_PROJECT */
	uint64_t ino;		/* of the directory itself */
	char *project;		/* FS_PROJECT: its name */
	struct fs_dent *ents;
	size_t n, cap;
	char *names;		/* NUL-separated */
	size_t names_len, names_cap;
};

static void dir_free(void *obj)
{
	struct fs_dir *d = obj;

	free(d->project);
	free(d->ents);
	free(d->names);
	free(d);
}

static int dir_add(struct fs_dir *d, const char *name, size_t at,
		   enum fs_kind kind)
{
	size_t len = strlen(name) + 1;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct fs_dent *v = realloc(d->ents, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->ents = v;
		d->cap = cap;
	}
	if (d->names_len + len > d->names_cap) {
		size_t cap = d->names_cap ? d->names_cap * 2 : 4096;
		char *p;

		while (cap < d->names_len + len)
			cap *= 2;
		if (cap > UINT32_MAX)
			return -E2BIG;
		p = realloc(d->names, cap);
		if (!p)
			return -ENOMEM;
		d->names = p;
		d->names_cap = cap;
	}
	memcpy(d->names + d->names_len, name, len);
	d->ents[d->n].off = (uint32_t)d->names_len;
	d->ents[d->n].at = (uint16_t)at;
	d->ents[d->n].kind = (uint8_t)kind;
	d->names_len += len;
	d->n++;
	return 0;
}

static int list_root(struct ctl_snap *s, struct fs_dir *d)
{
	const char *const *projects;
	size_t n;
	int rc = 0;

	projects = ctl_snap_projects(s, &n);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = dir_add(d, projects[i], 0, FS_PROJECT);
	return rc;
}

static int list_project(struct ctl_snap *s, struct fs_dir *d)
{
	const struct pol_registry *g = ctl_snap_project(s, d->project);
	size_t n = pol_registry_count(g);
	char ent[512];
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct pol_registration *r = pol_registry_at(g, i);

		snprintf(ent, sizeof(ent), "%s@%s", r->name, r->digest.str);
		rc = dir_add(d, ent, strlen(r->name), FS_BLOB);
	}
	/* Channel symlinks: each (name, channel) once, if a readable record claims it. */
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct pol_registration *r = pol_registry_at(g, i);

		for (size_t c = 0; c < r->n_channels && rc == 0; c++) {
			const struct pol_registration *win;
			bool dup = false;

			win = pol_registry_channel(g, ctl_snap_policy(s),
						   d->project, r->name,
						   r->channels[c], NULL);
			if (win != r)
				continue;	/* listed once, under the winner */
			for (size_t k = 0; k < c; k++)
				dup |= strcmp(r->channels[k], r->channels[c]) == 0;
			if (dup)
				continue;
			snprintf(ent, sizeof(ent), "%s@%s", r->name, r->channels[c]);
			rc = dir_add(d, ent, strlen(r->name), FS_CHANNEL);
		}
	}
	return rc;
}

void fs_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	struct ctl_snap *s;
	struct fs_dir *d;
	int rc = -ENOMEM;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind != FS_ROOT && n->kind != FS_PROJECT) {
		fuse_reply_err(req, ENOTDIR);
		fs_inode_put(&ctx->inodes, n);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (d) {
		d->kind = n->kind;
		d->ino = n->ino;
		d->project = n->project ? strdup(n->project) : NULL;
		if (!n->project || d->project) {
			s = ctl_catalog_snap(ctx->catalog);
			rc = n->kind == FS_ROOT ? list_root(s, d) :
						  list_project(s, d);
			ctl_snap_put(s);
		}
	}
	fs_inode_put(&ctx->inodes, n);
	if (rc < 0) {
		if (d)
			dir_free(d);
		fuse_reply_err(req, af_errno(rc));
		return;
	}
	fi->fh = fs_handles_add(&ctx->handles, d, dir_free);
	if (!fi->fh) {
		dir_free(d);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		fs_handles_close(&ctx->handles, fi->fh);
}

/* The key of entry e: kind, name and ref (into buf). False: malformed. */
static bool dent_key(const struct fs_dir *d, const struct fs_dent *e,
		     char *buf, size_t len, const char **name,
		     const char **ref)
{
	const char *full = d->names + e->off;

	if (e->kind == FS_PROJECT) {
		*name = full;
		*ref = NULL;
		return true;
	}
	if (e->at == 0 || e->at >= len)
		return false;
	memcpy(buf, full, e->at);
	buf[e->at] = '\0';
	*name = buf;
	*ref = full + e->at + 1;
	return true;
}

/*
 * Offsets: 1 after ".", 2 after "..", 3 + i after entry i. A reply holds
 * whole entries only; the kernel asks again from the last offset.
 */
static void reply_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi, bool plus)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_dir *d = fs_handles_get(&ctx->handles, fi->fh);
	struct ctl_snap *s = NULL;
	uint64_t *given = NULL;
	size_t used = 0, n_given = 0, i;
	char *buf;

	(void)ino;
	if (!d) {
		fuse_reply_err(req, EBADF);
		return;
	}
	buf = malloc(size ? size : 1);
	/* An entry takes at least 24 (plain) or 152 (plus) bytes. */
	if (buf && plus)
		given = malloc((size / 128 + 1) * sizeof(*given));
	if (!buf || (plus && !given)) {
		free(buf);
		fs_handles_put(&ctx->handles, fi->fh);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (plus)
		s = ctl_catalog_snap(ctx->catalog);
	for (i = off < 0 ? 0 : (size_t)off; i < d->n + 2; i++) {
		struct fuse_entry_param e;
		struct fs_inode *n = NULL;
		const char *shown, *name, *ref;
		char base[256];
		size_t need;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			/* "." and "..": no lookup counted (ino 0 in plus). */
			shown = i == 0 ? "." : "..";
			e.attr.st_ino = i == 0 ? d->ino : 1;
			e.attr.st_mode = S_IFDIR;
		} else {
			const struct fs_dent *de = &d->ents[i - 2];

			shown = d->names + de->off;
			if (!dent_key(d, de, base, sizeof(base), &name, &ref))
				continue;
			if (!plus) {
				uint64_t num = de->kind == FS_PROJECT ?
					fs_inodes_number(&ctx->inodes, FS_PROJECT,
							 name, NULL, NULL) :
					fs_inodes_number(&ctx->inodes, de->kind,
							 d->project, name, ref);

				e.attr.st_ino = num ? num : FS_UNKNOWN_INO;
				e.attr.st_mode = de->kind == FS_PROJECT ? S_IFDIR :
						 de->kind == FS_CHANNEL ? S_IFLNK :
									  S_IFREG;
			} else {
				n = de->kind == FS_PROJECT ?
					fs_inodes_get(&ctx->inodes, FS_PROJECT,
						      name, NULL, NULL) :
					fs_inodes_get(&ctx->inodes, de->kind,
						      d->project, name, ref);
				if (!n)
					break;
				if (fs_entry_fill(ctx, s, n, &e, false) < 0) {
					/* Gone since opendir: not shown. */
					fs_inode_put(&ctx->inodes, n);
					continue;
				}
			}
		}
		need = plus ? fuse_add_direntry_plus(req, NULL, 0, shown, NULL, 0) :
			      fuse_add_direntry(req, NULL, 0, shown, NULL, 0);
		if (used + need > size) {
			fs_inode_put(&ctx->inodes, n);
			break;
		}
		if (plus) {
			fuse_add_direntry_plus(req, buf + used, size - used,
					       shown, &e, (off_t)(i + 1));
			if (n) {
				fs_inode_lookup(&ctx->inodes, n);
				given[n_given++] = n->ino;
			}
		} else {
			fuse_add_direntry(req, buf + used, size - used, shown,
					  &e.attr, (off_t)(i + 1));
		}
		used += need;
		fs_inode_put(&ctx->inodes, n);
	}
	ctl_snap_put(s);
	fs_handles_put(&ctx->handles, fi->fh);
	if (fuse_reply_buf(req, buf, used) != 0) {
		/* The kernel never saw these entries: no forget will come. */
		for (i = 0; i < n_given; i++)
			fs_inodes_forget(&ctx->inodes, given[i], 1);
	}
	free(given);
	free(buf);
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	reply_dir(req, ino, size, off, fi, false);
}

void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	reply_dir(req, ino, size, off, fi, true);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);

	(void)ino;
	fs_handles_close(&ctx->handles, fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- live upgrade: open directories (handover.c) ------------------------- */

struct dir_export {
	json_t *v;
	int err;
};

static void export_dir(void *arg, uint64_t id, void *obj,
		       void (*free_fn)(void *obj))
{
	struct dir_export *x = arg;
	struct fs_dir *d = obj;
	json_t *ents, *e;

	if (free_fn != dir_free || x->err)
		return;
	ents = json_array();
	e = json_pack("{s:I, s:i, s:I, s:s*, s:o*}", "fh", (json_int_t)id,
		      "kind", (int)d->kind, "ino", (json_int_t)d->ino,
		      "project", d->project, "entries", ents);
	for (size_t i = 0; e && i < d->n; i++) {
		const struct fs_dent *de = &d->ents[i];

		if (json_array_append_new(ents, json_pack("[s, i, i]",
				d->names + de->off, (int)de->at,
				(int)de->kind)) < 0) {
			json_decref(e);
			e = NULL;
		}
	}
	if (!e || json_array_append_new(x->v, e) < 0)
		x->err = -ENOMEM;
}

int fs_dir_export(struct fs_ctx *ctx, json_t *doc)
{
	struct dir_export x = { .v = json_array() };

	if (!x.v)
		return -ENOMEM;
	fs_handles_foreach(&ctx->handles, export_dir, &x);
	if (x.err) {
		json_decref(x.v);
		return x.err;
	}
	return json_object_set_new(doc, "dirs", x.v) < 0 ? -ENOMEM : 0;
}

int fs_dir_adopt(struct fs_ctx *ctx, const json_t *doc)
{
	const json_t *v = json_object_get(doc, "dirs"), *e, *ent;
	size_t i, k;

	json_array_foreach(v, i, e) {
		json_t *ents = NULL;
		const char *project = NULL;
		json_int_t fh = 0, ino = 0;
		int kind = 0, rc = 0;
		struct fs_dir *d;

		if (json_unpack((json_t *)e, "{s:I, s:i, s:I, s?s, s:o}", "fh",
				&fh, "kind", &kind, "ino", &ino, "project",
				&project, "entries", &ents) < 0 || fh <= 0 ||
		    (kind != FS_ROOT && kind != FS_PROJECT) ||
		    (kind == FS_PROJECT && !project) || !json_is_array(ents))
			return -EPROTO;
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		d->kind = (enum fs_kind)kind;
		d->ino = (uint64_t)ino;
		if (project && !(d->project = strdup(project)))
			rc = -ENOMEM;
		json_array_foreach(ents, k, ent) {
			const char *name = NULL;
			int at = 0, ek = 0;

			if (rc)
				break;
			if (json_unpack((json_t *)ent, "[s, i, i]", &name, &at, &ek) < 0 ||
			    at < 0 || (size_t)at > strlen(name) ||
			    ek < FS_ROOT || ek > FS_CHANNEL)
				rc = -EPROTO;
			else
				rc = dir_add(d, name, (size_t)at, (enum fs_kind)ek);
		}
		if (rc == 0)
			rc = fs_handles_restore(&ctx->handles, (uint64_t)fh, d,
						dir_free);
		if (rc < 0) {
			dir_free(d);
			return rc;
		}
	}
	return 0;
}
