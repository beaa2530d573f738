/*
 * fs.c - the FUSE low-level operations and the mount's life cycle
 * (DESIGN §7). Every request gets exactly one reply, whatever fails: the
 * kernel leaves an unkillable process behind a request never answered.
 */
#define FUSE_USE_VERSION 312

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "../cache/cache.h"
#include "../policy/af.h"
#include "../policy/audit.h"
#include "../policy/config.h"
#include "../policy/policy.h"
#include "../sources/source.h"
#include "fs.h"
#include "fs_int.h"

#define FS_ENTRY_TIMEOUT 1.0	/* DESIGN §3: at most a second of kernel caching */
#define FS_XATTR_PREFIX "user.artifact."

/* The daemon context: the FUSE userdata (STYLE.md "Memory and concurrency"). */
struct fs_ctx {
	const struct pol_config *cfg;
	struct audit *audit;
	struct src_ctx *srcs;
	struct cache *cache;
	struct fuse_session *se;
	struct fs_inodes inodes;
	struct fs_handles handles;	/* open files and directories */

	pthread_rwlock_t lock;
	struct pol_registry *registry;	/* guarded by lock */
	struct pol_policy *policy;	/* guarded by lock; NULL denies all */
	uint64_t fingerprint;		/* reload thread only */

	pthread_mutex_t pending_lock;
	struct fs_pending *pending;	/* guarded by pending_lock */

	int reload_pipe[2];
	pthread_t reload_thread;
	bool reload_started;

	long long mounted_at;		/* epoch seconds: times of directories */
	bool passthrough;		/* negotiated at init, cleared on EPERM */
	bool pt_said;			/* fallback logged once; guarded by pt_lock */
	bool pt_required;		/* [fs] passthrough = on */
	bool pt_missing;		/* required but not offered by the kernel */
	pthread_mutex_t pt_lock;	/* guards inode pt_* fields, pt_said */
	_Atomic uint64_t reads;		/* read requests served by the daemon */
	_Atomic uint64_t opens;
};

/* An open waiting for its fetch (DESIGN §7: replied when the fetch ends). */
struct fs_pending {
	struct fs_ctx *ctx;
	fuse_req_t req;
	struct fuse_file_info fi;	/* copy: the kernel's is gone once we return */
	struct pol_registration *reg;
	struct fs_inode *inode;
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
	struct fs_inode *inode;
	bool passthrough;	/* reads go straight to the backing file */
};

/* The only signal-handler state (STYLE.md): the reload pipe's write end. */
static volatile sig_atomic_t fs_reload_fd = -1;

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

/* ---- registry and policy snapshots ------------------------------------ */

static void report_problem(void *arg, const char *msg)
{
	unsigned *count = arg;

	(*count)++;
	af_warn("registry: %s", msg);
}

static void fingerprint_walk(const char *dir, XXH3_state_t *st, int depth)
{
	struct dirent **ents = NULL;
	int n;

	if (depth > 32)
		return;
	n = scandir(dir, &ents, NULL, alphasort);
	if (n < 0)
		return;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat sb;
		const char *nm = ents[i]->d_name;

		if (nm[0] == '.')
			goto next;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, nm) >=
		    sizeof(path))
			goto next;
		if (stat(path, &sb) < 0)
			goto next;
		XXH3_64bits_update(st, path, strlen(path) + 1);
		XXH3_64bits_update(st, &sb.st_mtim, sizeof(sb.st_mtim));
		XXH3_64bits_update(st, &sb.st_size, sizeof(sb.st_size));
		XXH3_64bits_update(st, &sb.st_ino, sizeof(sb.st_ino));
		if (S_ISDIR(sb.st_mode))
			fingerprint_walk(path, st, depth + 1);
next:
		free(ents[i]);
	}
	free(ents);
}

/* A cheap fingerprint of the registry folder and the policy file. */
static uint64_t sources_fingerprint(const struct pol_config *cfg)
{
	XXH3_state_t *st = XXH3_createState();
	uint64_t h;
	struct stat sb;

	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	if (cfg->registry_dir)
		fingerprint_walk(cfg->registry_dir, st, 0);
	if (cfg->policy_file && stat(cfg->policy_file, &sb) == 0) {
		XXH3_64bits_update(st, &sb.st_mtim, sizeof(sb.st_mtim));
		XXH3_64bits_update(st, &sb.st_size, sizeof(sb.st_size));
		XXH3_64bits_update(st, &sb.st_ino, sizeof(sb.st_ino));
	}
	h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

/*
 * Loads registry and policy and swaps them in. A policy that fails to load
 * keeps the last good one (or none: deny all) and says so loudly. At first
 * load (initial == true) a broken policy file is fatal instead.
 */
static int fs_reload(struct fs_ctx *ctx, bool initial)
{
	const struct pol_config *cfg = ctx->cfg;
	struct pol_registry *reg = NULL;
	struct pol_policy *pol = NULL;
	bool have_policy = false;
	unsigned problems = 0;
	char err[512], reason[128];
	int rc;

	ctx->fingerprint = sources_fingerprint(cfg);
	if (cfg->policy_file) {
		rc = pol_policy_load(cfg->policy_file, &pol, err, sizeof(err));
		if (rc < 0) {
			if (rc != AF_EPARSE)
				snprintf(err, sizeof(err), "%s: %s", cfg->policy_file,
					 af_strerror(rc));
			af_err("policy: %s%s", err,
			       initial ? "" : " (keeping the policy loaded before)");
			if (initial)
				return rc;
		} else {
			have_policy = true;
		}
	} else if (initial) {
		af_warn("policy: no [policy] file configured: every open is denied (fail closed)");
	}

	rc = pol_registry_load_dir(cfg->registry_dir, report_problem, &problems,
				   &reg);
	if (rc < 0) {
		af_err("registry: %s: %s", cfg->registry_dir, af_strerror(rc));
		reg = pol_registry_new_empty();
		if (!reg) {
			pol_policy_free(pol);
			return -ENOMEM;
		}
	}

	pthread_rwlock_wrlock(&ctx->lock);
	pol_registry_free(ctx->registry);
	ctx->registry = reg;
	if (have_policy) {
		pol_policy_free(ctx->policy);
		ctx->policy = pol;
	}
	pthread_rwlock_unlock(&ctx->lock);

	snprintf(reason, sizeof(reason), "%zu registrations, %u problems",
		 pol_registry_count(reg), problems);
	af_info("registry: loaded %s from %s", reason, cfg->registry_dir);
	audit_emit(ctx->audit, &(struct audit_event){
		.event = "registry_loaded", .reason = reason,
	});
	if (have_policy)
		audit_emit(ctx->audit, &(struct audit_event){
			.event = "policy_loaded", .reason = cfg->policy_file,
		});
	return 0;
}

static void on_sighup(int sig)
{
	int fd = fs_reload_fd;
	char c = 'h';

	(void)sig;
	if (fd >= 0 && write(fd, &c, 1) < 0) {
		/* Nothing to do in a signal handler; the poll timeout reloads. */
	}
}

static void *reload_main(void *arg)
{
	struct fs_ctx *ctx = arg;
	int timeout = (int)(ctx->cfg->registry_refresh_ms > 3600000 ?
			    3600000 : ctx->cfg->registry_refresh_ms);

	if (timeout <= 0)
		timeout = 30000;
	for (;;) {
		struct pollfd p = { .fd = ctx->reload_pipe[0], .events = POLLIN };
		int n = poll(&p, 1, timeout);
		bool hup = false;

		if (n > 0) {
			char buf[16];
			ssize_t got = read(ctx->reload_pipe[0], buf, sizeof(buf));

			for (ssize_t i = 0; i < got; i++) {
				if (buf[i] == 'q')
					return NULL;
				hup = true;
			}
		}
		if (hup) {
			af_info("SIGHUP: reloading registry and policy");
			fs_reload(ctx, false);
		} else if (sources_fingerprint(ctx->cfg) != ctx->fingerprint) {
			af_info("registry or policy changed: reloading");
			fs_reload(ctx, false);
		}
	}
}

/*
 * Finds the registration of a blob inode and decides on it, under the
 * read lock. Returns a copy (caller frees) or NULL (unregistered). *denied
 * gets AF_EDENIED or 0 with the reason.
 */
static struct pol_registration *blob_registration(struct fs_ctx *ctx,
						  const struct fs_inode *n,
						  int *denied, char *reason,
						  size_t reasonlen)
{
	const struct pol_registration *r;
	struct pol_registration *copy = NULL;

	pthread_rwlock_rdlock(&ctx->lock);
	r = pol_registry_find(ctx->registry, n->project, n->name, n->ref);
	if (r) {
		*denied = pol_policy_decide(ctx->policy, r, reason, reasonlen);
		copy = pol_registration_dup(r);
	}
	pthread_rwlock_unlock(&ctx->lock);
	return copy;
}

static bool project_exists(struct fs_ctx *ctx, const char *project)
{
	size_t first;
	bool ok;

	pthread_rwlock_rdlock(&ctx->lock);
	ok = pol_registry_project_range(ctx->registry, project, &first) > 0;
	pthread_rwlock_unlock(&ctx->lock);
	return ok;
}

/* Resolves a channel to "<name>@<digest>" into buf. False if none. */
static bool channel_target(struct fs_ctx *ctx, const struct fs_inode *n,
			   char *buf, size_t len)
{
	const struct pol_registration *r;
	bool ok = false;

	pthread_rwlock_rdlock(&ctx->lock);
	r = pol_registry_channel(ctx->registry, ctx->policy, n->project, n->name,
				 n->ref, NULL);
	if (r && (size_t)snprintf(buf, len, "%s@%s", r->name, r->digest.str) < len)
		ok = true;
	pthread_rwlock_unlock(&ctx->lock);
	return ok;
}

static void project_mode(struct fs_ctx *ctx, const char *project, gid_t *gid,
			 bool *has_gid)
{
	pthread_rwlock_rdlock(&ctx->lock);
	*has_gid = project && pol_policy_project_gid(ctx->policy, project, gid);
	pthread_rwlock_unlock(&ctx->lock);
	if (!*has_gid)
		*gid = 0;
}

/* ---- attributes ------------------------------------------------------- */

/*
 * Size of a blob without fetching: the registered size, else what the cache
 * or an earlier HEAD learned, else one HEAD (DESIGN §2), only when policy
 * allows the source.
 */
static uint64_t blob_size(struct fs_ctx *ctx, struct fs_inode *n,
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
	project_mode(ctx, n->project, &gid, &has_gid);
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
		r = blob_registration(ctx, n, &denied, reason, sizeof(reason));
		if (!r)
			return -ENOENT;
		st->st_mode = S_IFREG | (has_gid ? 0440 : 0444);
		st->st_nlink = 1;
		st->st_size = (off_t)blob_size(ctx, n, r, denied);
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

static void audit_unregistered(struct fs_ctx *ctx, fuse_req_t req,
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

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *p = fs_inodes_find(&ctx->inodes, parent);
	struct fs_inode *n;
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
				audit_unregistered(ctx, req, p->project, base, NULL);
				fuse_reply_err(req, ENOENT);
				return;
			}
			pthread_rwlock_rdlock(&ctx->lock);
			r = pol_registry_find(ctx->registry, p->project, base, d.str);
			found = r != NULL;
			pthread_rwlock_unlock(&ctx->lock);
			if (!found) {
				audit_unregistered(ctx, req, p->project, base, d.str);
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
			pthread_rwlock_rdlock(&ctx->lock);
			r = pol_registry_channel(ctx->registry, ctx->policy,
						 p->project, base, ref, NULL);
			found = r != NULL;
			pthread_rwlock_unlock(&ctx->lock);
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

static void fs_getattr(fuse_req_t req, fuse_ino_t ino,
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

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
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

/* ---- directories ------------------------------------------------------ */

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

	pthread_rwlock_rdlock(&ctx->lock);
	projects = pol_registry_projects(ctx->registry, &n);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct fs_inode *in = fs_inodes_get(&ctx->inodes, FS_PROJECT,
						    projects[i], NULL, NULL);

		rc = in ? dirbuf_add(req, b, projects[i], in->ino, S_IFDIR) : -ENOMEM;
	}
	pthread_rwlock_unlock(&ctx->lock);
	return rc;
}

static int list_project(struct fs_ctx *ctx, fuse_req_t req,
			const char *project, struct fs_dirbuf *b)
{
	size_t first, n;
	int rc = 0;
	char ent[512];

	pthread_rwlock_rdlock(&ctx->lock);
	n = pol_registry_project_range(ctx->registry, project, &first);
	for (size_t i = first; i < first + n && rc == 0; i++) {
		const struct pol_registration *r = pol_registry_at(ctx->registry, i);
		struct fs_inode *in;

		snprintf(ent, sizeof(ent), "%s@%s", r->name, r->digest.str);
		in = fs_inodes_get(&ctx->inodes, FS_BLOB, project, r->name,
				   r->digest.str);
		rc = in ? dirbuf_add(req, b, ent, in->ino, S_IFREG) : -ENOMEM;
	}
	/* Channel symlinks: each (name, channel) once, if a readable record claims it. */
	for (size_t i = first; i < first + n && rc == 0; i++) {
		const struct pol_registration *r = pol_registry_at(ctx->registry, i);

		for (size_t c = 0; c < r->n_channels && rc == 0; c++) {
			const struct pol_registration *win;
			struct fs_inode *in;
			bool dup = false;

			win = pol_registry_channel(ctx->registry, ctx->policy,
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
	pthread_rwlock_unlock(&ctx->lock);
	return rc;
}

static void dirbuf_free(void *obj)
{
	struct fs_dirbuf *b = obj;

	free(b->p);
	free(b);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino,
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

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
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

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);

	(void)ino;
	fs_handles_close(&ctx->handles, fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- open, read, release ---------------------------------------------- */

static void pending_put(struct fs_pending *p)
{
	struct fs_ctx *ctx = p->ctx;
	bool last;

	pthread_mutex_lock(&ctx->pending_lock);
	last = --p->refs == 0;
	pthread_mutex_unlock(&ctx->pending_lock);
	if (!last)
		return;
	pol_registration_free(p->reg);
	free(p);
}

/* Takes the right to reply for p. True for exactly one caller. */
static bool pending_claim(struct fs_pending *p)
{
	struct fs_ctx *ctx = p->ctx;
	struct fs_pending **pp;
	bool won = false;

	pthread_mutex_lock(&ctx->pending_lock);
	if (!p->claimed) {
		p->claimed = true;
		won = true;
		for (pp = &ctx->pending; *pp; pp = &(*pp)->next) {
			if (*pp == p) {
				*pp = p->next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&ctx->pending_lock);
	return won;
}

/* Kernel interrupt (Ctrl-C on a waiting open): EINTR, the fetch goes on. */
static void open_interrupted(fuse_req_t req, void *data)
{
	struct fs_ctx *ctx = data;
	struct fs_pending **pp;
	bool won = false;

	pthread_mutex_lock(&ctx->pending_lock);
	for (pp = &ctx->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->req == req) {
			(*pp)->claimed = true;
			*pp = (*pp)->next;
			won = true;
			break;
		}
	}
	pthread_mutex_unlock(&ctx->pending_lock);
	if (won)
		fuse_reply_err(req, EINTR);
}

static void audit_open_result(struct fs_pending *p, const char *event,
			      const char *decision, const char *reason,
			      const char *warning)
{
	struct fs_ctx *ctx = p->ctx;
	const struct pol_registration *r = p->reg;

	audit_emit(ctx->audit, &(struct audit_event){
		.event = event, .project = r->project, .name = r->name,
		.digest = r->digest.str,
		.source_type = pol_source_type_name(r->source_type),
		.uri = r->uri, .has_ids = true, .uid = p->uid, .gid = p->gid,
		.pid = p->pid, .decision = decision, .reason = reason,
		.warning = warning,
		.has_duration = true,
		.duration_ms = (uint64_t)(af_now_ms() - p->started_ms),
	});
}

/*
 * FUSE passthrough (Linux >= 6.9, libfuse >= 3.17): a verified blob's cache
 * file becomes the backing file of the open, so reads and mmap never reach
 * the daemon and its pages sit once in the page cache. Kernel rules: one
 * backing id per inode at a time, no mixing with cached opens of the same
 * inode, and no keep_cache with passthrough (the pages belong to the
 * backing file anyway). The id is registered at the first open and closed
 * at the last release, never right after the reply (the kernel looks it up
 * when the opener's open() completes).
 */
static void pt_attach(struct fs_ctx *ctx, fuse_req_t req, struct fs_handle *h,
		      struct fuse_file_info *fi)
{
	struct fs_inode *n = h->inode;

	fi->keep_cache = 1;		/* verified bytes never change */
	pthread_mutex_lock(&ctx->pt_lock);
#ifdef FUSE_CAP_PASSTHROUGH
	if (ctx->passthrough && !(n->pt_nopen > 0 && n->pt_fallback)) {
		if (n->pt_backing_id <= 0) {
			int id = fuse_passthrough_open(req, h->fd);

			if (id > 0) {
				n->pt_backing_id = id;
			} else {
				int e = errno;

				if (!ctx->pt_said) {
					af_log(ctx->pt_required ? AF_LOG_ERROR : AF_LOG_WARN,
					       "passthrough: cannot register a backing file (%s): reads go through the daemon (splice)",
					       strerror(e));
					ctx->pt_said = true;
				}
				if (e == EPERM)
					ctx->passthrough = false;	/* no CAP_SYS_ADMIN */
			}
		}
		if (n->pt_backing_id > 0) {
			fi->backing_id = n->pt_backing_id;
			fi->keep_cache = 0;
			h->passthrough = true;
		}
	}
#else
	(void)req;
#endif
	n->pt_fallback = !h->passthrough;
	n->pt_nopen++;
	pthread_mutex_unlock(&ctx->pt_lock);
}

static void pt_detach(struct fs_ctx *ctx, fuse_req_t req, struct fs_handle *h)
{
	struct fs_inode *n = h->inode;

	pthread_mutex_lock(&ctx->pt_lock);
	if (n->pt_nopen > 0)
		n->pt_nopen--;
#ifdef FUSE_CAP_PASSTHROUGH
	if (n->pt_nopen == 0 && n->pt_backing_id > 0) {
		fuse_passthrough_close(req, n->pt_backing_id);
		n->pt_backing_id = 0;
	}
#else
	(void)req;
#endif
	if (n->pt_nopen == 0)
		n->pt_fallback = false;
	pthread_mutex_unlock(&ctx->pt_lock);
}

static void handle_free(void *obj)
{
	struct fs_handle *h = obj;

	close(h->fd);
	free(h);
}

/*
 * Replies to a claimed open: err from the cache, or the verified file.
 * Called once per open, from a FUSE worker or a cache thread.
 */
static void finish_open(struct fs_pending *p, int err)
{
	struct fs_ctx *ctx = p->ctx;
	struct fs_handle *h;
	uint64_t size;
	int fd;

	if (err < 0) {
		audit_open_result(p, "open_denied", "deny", af_strerror(err), NULL);
		fuse_reply_err(p->req, af_errno(err));
		return;
	}
	fd = cache_open_verified(ctx->cache, &p->reg->digest, &size);
	if (fd < 0) {
		/* Evicted between verification and open: rare; the caller retries. */
		audit_open_result(p, "open_denied", "deny", af_strerror(fd), NULL);
		fuse_reply_err(p->req, EIO);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		close(fd);
		fuse_reply_err(p->req, ENOMEM);
		return;
	}
	h->fd = fd;
	h->inode = p->inode;
	p->fi.fh = fs_handles_add(&ctx->handles, h, handle_free);
	if (!p->fi.fh) {
		handle_free(h);
		fuse_reply_err(p->req, ENOMEM);
		return;
	}
	p->fi.direct_io = 0;
	p->fi.noflush = 1;
	pt_attach(ctx, p->req, h, &p->fi);
	if (fuse_reply_open(p->req, &p->fi) != 0) {
		/* The kernel gave up on the request: no release will come. */
		pt_detach(ctx, p->req, h);
		fs_handles_close(&ctx->handles, p->fi.fh);
		return;
	}
	atomic_fetch_add(&ctx->opens, 1);
	audit_open_result(p, "open", "allow", NULL,
			  pol_registration_deprecated(p->reg) ? "deprecated" : NULL);
}

static void open_fetched(void *arg, int err)
{
	struct fs_pending *p = arg;

	if (pending_claim(p))
		finish_open(p, err);
	pending_put(p);
}

/* A background fetch started by O_NONBLOCK: nobody to answer. */
static void nonblock_fetched(void *arg, int err)
{
	(void)arg;
	(void)err;
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct fs_pending *p;
	char reason[256];
	int denied = 0, rc;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind != FS_BLOB) {
		fuse_reply_err(req, n->kind == FS_CHANNEL ? ELOOP : EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->ctx = ctx;
	p->req = req;
	p->inode = n;
	p->fi = *fi;
	p->uid = fc->uid;
	p->gid = fc->gid;
	p->pid = fc->pid;
	p->started_ms = af_now_ms();
	p->refs = 1;
	p->reg = blob_registration(ctx, n, &denied, reason, sizeof(reason));
	if (!p->reg) {
		audit_unregistered(ctx, req, n->project, n->name, n->ref);
		fuse_reply_err(req, ENOENT);
		free(p);
		return;
	}
	if (denied) {
		audit_open_result(p, "open_denied", "deny", reason, NULL);
		fuse_reply_err(req, EACCES);
		pending_put(p);
		return;
	}

	if (fi->flags & O_NONBLOCK) {
		rc = cache_ensure(ctx->cache, p->reg, nonblock_fetched, NULL, NULL);
		if (rc == -EINPROGRESS) {
			fuse_reply_err(req, EAGAIN);
			pending_put(p);
			return;
		}
		p->claimed = true;
		finish_open(p, rc);
		pending_put(p);
		return;
	}

	/* Register for interrupts before the fetch can end (see pending_claim). */
	pthread_mutex_lock(&ctx->pending_lock);
	p->next = ctx->pending;
	ctx->pending = p;
	p->refs = 2;		/* this function, and open_fetched */
	pthread_mutex_unlock(&ctx->pending_lock);
	fuse_req_interrupt_func(req, open_interrupted, ctx);

	rc = cache_ensure(ctx->cache, p->reg, open_fetched, p, NULL);
	if (rc != -EINPROGRESS) {
		/* done will not be called: drop its reference, answer here. */
		pthread_mutex_lock(&ctx->pending_lock);
		p->refs--;
		pthread_mutex_unlock(&ctx->pending_lock);
		if (pending_claim(p))
			finish_open(p, rc);
	}
	pending_put(p);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_handle *h = fs_handles_get(&ctx->handles, fi->fh);
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	atomic_fetch_add(&ctx->reads, 1);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = h->fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	fs_handles_put(&ctx->handles, fi->fh);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_handle *h = fs_handles_get(&ctx->handles, fi->fh);

	(void)ino;
	if (h) {
		pt_detach(ctx, req, h);
		fs_handles_put(&ctx->handles, fi->fh);
		fs_handles_close(&ctx->handles, fi->fh);
	}
	fuse_reply_err(req, 0);
}

/* ---- xattrs (DESIGN §7) ------------------------------------------------ */

static const char *const xattr_names[] = {
	"digest", "source_type", "uri", "size", "lifecycle_state",
	"trust_state", "cache_state", "verified_at", "content_encoding",
	"denied_reason",
};

/*
 * Value of attribute key for blob n into buf. Returns its length, or
 * -ENODATA when it has none (verified_at before verification,
 * denied_reason when allowed), or -ENOENT.
 */
static int blob_xattr(struct fs_ctx *ctx, struct fs_inode *n, const char *key,
		      char *buf, size_t len)
{
	struct pol_registration *r;
	struct cache_info info;
	char reason[256];
	int denied = 0, rc = -ENODATA;
	bool cached;

	r = blob_registration(ctx, n, &denied, reason, sizeof(reason));
	if (!r)
		return -ENOENT;
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
			      (unsigned long long)blob_size(ctx, n, r, denied));
	} else if (strcmp(key, "lifecycle_state") == 0) {
		rc = snprintf(buf, len, "%s", pol_lifecycle_name(r->lifecycle));
	} else if (strcmp(key, "trust_state") == 0) {
		rc = snprintf(buf, len, "%s", pol_trust_name(r->trust));
	} else if (strcmp(key, "content_encoding") == 0) {
		rc = snprintf(buf, len, "%s", r->content_encoding);
	} else if (strcmp(key, "cache_state") == 0) {
		const char *s = "none";

		if (cached && info.state == CACHE_VERIFIED)
			s = "verified";
		else if (cached && info.state == CACHE_PARTIAL &&
			 info.bytes_present > 0)
			s = "partial";	/* a record with no byte is only a known size */
		rc = snprintf(buf, len, "%s", s);
	} else if (strcmp(key, "verified_at") == 0) {
		if (cached && info.state == CACHE_VERIFIED && info.verified_at > 0) {
			af_rfc3339(info.verified_at, buf, len);
			rc = (int)strlen(buf);
		}
	} else if (strcmp(key, "denied_reason") == 0) {
		if (denied)
			rc = snprintf(buf, len, "%s", reason);
	}
	pol_registration_free(r);
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

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	char val[4096];
	int rc;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind == FS_ROOT && strcmp(name, "user.artifactfs.reads") == 0) {
		rc = snprintf(val, sizeof(val), "%llu",
			      (unsigned long long)atomic_load(&ctx->reads));
		reply_xattr_value(req, val, (size_t)rc, size);
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

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct fs_inode *n = fs_inodes_find(&ctx->inodes, ino);
	char list[1024], val[4096];
	size_t len = 0;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->kind == FS_ROOT) {
		static const char root_attr[] = "user.artifactfs.reads";

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

/* ---- read-only: every write-type operation is EROFS (DESIGN §7) -------- */

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino; (void)attr; (void)to_set; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent; (void)name; (void)mode; (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EROFS);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link; (void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino; (void)newparent; (void)newname;
	fuse_reply_err(req, EROFS);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino; (void)buf; (void)size; (void)off; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino; (void)name; (void)value; (void)size; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino; (void)name;
	fuse_reply_err(req, EROFS);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	(void)ino; (void)mode; (void)off; (void)len; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_ctx *ctx = fuse_req_userdata(req);
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	pthread_rwlock_rdlock(&ctx->lock);
	sv.f_files = pol_registry_count(ctx->registry);
	pthread_rwlock_unlock(&ctx->lock);
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- init and life cycle ---------------------------------------------- */

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs_ctx *ctx = userdata;

	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/* Verified blobs never change: let the kernel keep their pages. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/* Passthrough and writeback caching exclude each other: never ask for it. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	ctx->passthrough = false;
	if (ctx->cfg->passthrough == POL_PASSTHROUGH_OFF) {
		af_info("passthrough: off by config: reads go through the daemon (splice)");
		return;
	}
#ifdef FUSE_CAP_PASSTHROUGH
	if (fuse_set_feature_flag(conn, FUSE_CAP_PASSTHROUGH)) {
		struct statfs sf;

		/* A cache on overlayfs needs one level of stacking (else ELOOP). */
		if (statfs(ctx->cfg->cache_dir, &sf) == 0 &&
		    sf.f_type == OVERLAYFS_SUPER_MAGIC)
			conn->max_backing_stack_depth = FUSE_BACKING_STACKED_OVER;
		ctx->passthrough = true;
		af_info("passthrough: on: reads of verified blobs bypass the daemon");
		return;
	}
#endif
	if (ctx->pt_required) {
		af_err("passthrough = on, but this kernel or libfuse does not offer FUSE passthrough: unmounting");
		ctx->pt_missing = true;
		fuse_session_exit(ctx->se);
		return;
	}
	af_info("passthrough: not offered by the kernel: reads go through the daemon (splice)");
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.open = fs_open,
	.read = fs_read,
	.release = fs_release,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_unlink,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.write = fs_write,
	.create = fs_create,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
	.fallocate = fs_fallocate,
	.statfs = fs_statfs,
};

static void ctx_release(struct fs_ctx *ctx)
{
	if (ctx->reload_started) {
		char q = 'q';

		if (write(ctx->reload_pipe[1], &q, 1) != 1)
			af_warn("reload thread: cannot signal stop");
		pthread_join(ctx->reload_thread, NULL);
	}
	fs_reload_fd = -1;
	if (ctx->reload_pipe[0] >= 0)
		close(ctx->reload_pipe[0]);
	if (ctx->reload_pipe[1] >= 0)
		close(ctx->reload_pipe[1]);
	cache_close(ctx->cache);
	src_ctx_free(ctx->srcs);
	pol_registry_free(ctx->registry);
	pol_policy_free(ctx->policy);
	audit_close(ctx->audit);
	fs_handles_release_all(&ctx->handles);
	fs_inodes_release(&ctx->inodes);
	pthread_rwlock_destroy(&ctx->lock);
	pthread_mutex_destroy(&ctx->pending_lock);
	pthread_mutex_destroy(&ctx->pt_lock);
}

static int build_fuse_args(struct fuse_args *args, const struct fs_mount_opts *opts)
{
	char o[2048];
	int n;

	n = snprintf(o, sizeof(o),
		     "ro,default_permissions,allow_other,fsname=artifactfs,subtype=artifactfs%s%s",
		     opts->fuse_opts && *opts->fuse_opts ? "," : "",
		     opts->fuse_opts ? opts->fuse_opts : "");
	if (n < 0 || (size_t)n >= sizeof(o))
		return -E2BIG;
	if (fuse_opt_add_arg(args, "artifactfs") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, o))
		return -ENOMEM;
	if (opts->debug && fuse_opt_add_arg(args, "-d"))
		return -ENOMEM;
	return 0;
}

int fs_mount_run(const struct pol_config *cfg, const struct fs_mount_opts *opts)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *loop = NULL;
	struct fs_ctx ctx;
	struct sigaction sa;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = cfg;
	ctx.mounted_at = af_wall_ms() / 1000;
	ctx.reload_pipe[0] = ctx.reload_pipe[1] = -1;
	pthread_rwlock_init(&ctx.lock, NULL);
	pthread_mutex_init(&ctx.pending_lock, NULL);
	pthread_mutex_init(&ctx.pt_lock, NULL);
	ctx.pt_required = cfg->passthrough == POL_PASSTHROUGH_ON;
	rc = fs_inodes_init(&ctx.inodes);
	if (rc == 0)
		rc = fs_handles_init(&ctx.handles);
	if (rc < 0)
		goto out_ctx;
	rc = audit_open(cfg->audit_log, cfg->audit_syslog, &ctx.audit);
	if (rc < 0) {
		af_err("audit log %s: %s", cfg->audit_log ? cfg->audit_log : "-",
		       af_strerror(rc));
		goto out_ctx;
	}
	rc = fs_reload(&ctx, true);
	if (rc < 0)
		goto out_ctx;
	/*
	 * Pre-flight: the cache opens after daemonizing (threads do not survive
	 * the fork), but a cache that cannot open must fail the mount command
	 * itself, not a detached daemon after "mounted" was reported.
	 */
	rc = cache_open(cfg, NULL, NULL, &ctx.cache);
	if (rc < 0) {
		af_err("cache %s: %s", cfg->cache_dir, af_strerror(rc));
		goto out_ctx;
	}
	cache_close(ctx.cache);
	ctx.cache = NULL;
	rc = build_fuse_args(&args, opts);
	if (rc < 0)
		goto out_args;

	ctx.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &ctx);
	if (!ctx.se) {
		af_err("cannot create the FUSE session (bad -o options?)");
		rc = -EINVAL;
		goto out_args;
	}
	if (fuse_set_signal_handlers(ctx.se) != 0) {
		rc = -EIO;
		goto out_session;
	}
	if (fuse_session_mount(ctx.se, opts->mountpoint) != 0) {
		af_err("cannot mount on %s", opts->mountpoint);
		rc = -EIO;
		goto out_signals;
	}
	/* Fork before any thread exists: threads do not survive daemonizing. */
	if (fuse_daemonize(opts->foreground) != 0) {
		rc = -EIO;
		goto out_unmount;
	}
	rc = src_ctx_new(cfg, &ctx.srcs);
	if (rc < 0) {
		af_err("sources: %s", af_strerror(rc));
		goto out_unmount;
	}
	rc = cache_open(cfg, ctx.srcs, ctx.audit, &ctx.cache);
	if (rc < 0) {
		af_err("cache %s: %s", cfg->cache_dir, af_strerror(rc));
		goto out_unmount;
	}
	if (pipe2(ctx.reload_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		rc = -errno;
		goto out_unmount;
	}
	fs_reload_fd = ctx.reload_pipe[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sighup;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	rc = pthread_create(&ctx.reload_thread, NULL, reload_main, &ctx);
	if (rc != 0) {
		rc = -rc;
		goto out_unmount;
	}
	ctx.reload_started = true;

	loop = fuse_loop_cfg_create();
	if (!loop) {
		rc = -ENOMEM;
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(loop, 1);
	fuse_loop_cfg_set_max_threads(loop, 64);
	af_info("mounted on %s", opts->mountpoint);
	/* > 0 is the signal that ended the loop (SIGTERM, SIGINT): a clean exit. */
	rc = fuse_session_loop_mt(ctx.se, loop);
	if (rc < 0)
		af_err("session loop failed: %s", af_strerror(rc));
	rc = rc < 0 ? rc : 0;
	if (ctx.pt_missing)
		rc = -ENOTSUP;
	fuse_loop_cfg_destroy(loop);
	af_info("unmounting %s", opts->mountpoint);

out_unmount:
	/* Answer every waiting open before the session goes away. */
	cache_close(ctx.cache);
	ctx.cache = NULL;
	fuse_session_unmount(ctx.se);
out_signals:
	fuse_remove_signal_handlers(ctx.se);
out_session:
	fuse_session_destroy(ctx.se);
out_args:
	fuse_opt_free_args(&args);
out_ctx:
	ctx_release(&ctx);
	return rc;
}
