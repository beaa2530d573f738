/*
 * notify.c - telling the kernel what left the catalog (issue 9): after a
 * reload, every name the kernel holds (an inode with lookups) that the new
 * snapshot no longer has is invalidated, so the kernel drops the dentry,
 * forgets the inode (fs_forget), and the daemon's memory follows the
 * control plane instead of growing with every name ever listed. A name
 * that is open stays until its last close (the kernel holds the inode).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../control/catalog.h"
#include "../policy/af.h"
#include "../policy/policy.h"
#include "ops_int.h"

struct gone {
	enum fs_kind kind;
	char *project;
	char *entry;		/* the name in its parent */
};

struct scan {
	struct ctl_snap *snap;
	struct gone *v;
	size_t n, cap;
	bool nomem;
};

/* Under the table lock: only the snapshot is consulted, nothing locked. */
static void scan_one(void *arg, const struct fs_inode *n)
{
	struct scan *sc = arg;
	bool present;
	char buf[512];
	int len;

	switch (n->kind) {
	case FS_PROJECT:
		present = ctl_snap_project(sc->snap, n->project) != NULL;
		len = snprintf(buf, sizeof(buf), "%s", n->project);
		break;
	case FS_BLOB:
		present = ctl_snap_find(sc->snap, n->project, n->name,
					n->ref) != NULL;
		len = snprintf(buf, sizeof(buf), "%s@%s", n->name, n->ref);
		break;
	case FS_CHANNEL:
		present = ctl_snap_channel(sc->snap, n->project, n->name,
					   n->ref, NULL) != NULL;
		len = snprintf(buf, sizeof(buf), "%s@%s", n->name, n->ref);
		break;
	default:
		return;
	}
	if (present || sc->nomem || len < 0 || (size_t)len >= sizeof(buf))
		return;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 64;
		struct gone *v = realloc(sc->v, cap * sizeof(*v));

		if (!v) {
			sc->nomem = true;
			return;
		}
		sc->v = v;
		sc->cap = cap;
	}
	sc->v[sc->n].kind = n->kind;
	sc->v[sc->n].project = strdup(n->project);
	sc->v[sc->n].entry = strdup(buf);
	if (!sc->v[sc->n].project || !sc->v[sc->n].entry) {
		free(sc->v[sc->n].project);
		free(sc->v[sc->n].entry);
		sc->nomem = true;
		return;
	}
	sc->n++;
}

void fs_catalog_changed(struct fs_ctx *ctx)
{
	struct scan sc = { 0 };
	size_t done = 0;

	if (!ctx || !ctx->se || !ctx->mounted)
		return;
	sc.snap = ctl_catalog_snap(ctx->catalog);
	fs_inodes_foreach(&ctx->inodes, scan_one, &sc);
	ctl_snap_put(sc.snap);
	for (size_t i = 0; i < sc.n; i++) {
		struct gone *g = &sc.v[i];
		uint64_t parent = g->kind == FS_PROJECT ? 1 :
			fs_inodes_number(&ctx->inodes, FS_PROJECT, g->project,
					 NULL, NULL);

		/* ENOENT: the kernel dropped it already; nothing to say. */
		if (parent && fuse_lowlevel_notify_inval_entry(
				ctx->se, parent, g->entry, strlen(g->entry)) == 0)
			done++;
		free(g->project);
		free(g->entry);
	}
	free(sc.v);
	if (sc.nomem)
		af_warn("fs: out of memory while telling the kernel what left the catalog");
	if (done)
		af_debug("fs: %zu names that left the catalog invalidated", done);
}
