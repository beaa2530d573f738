/*
 * cred.c - the credential provider (cred_int.h): credentials.dir,
 * credentials.helper, the cache of helper answers, renewal before expiry,
 * and the check of credentials.dir for `artifactfs check`.
 *
 * Locking: one mutex per provider (p->lock) guards the subscription list,
 * every subscription's state, the helper cache and the counters; it is
 * never held across I/O (reading files, running the helper). A wake
 * callback runs with p->lock held, so that cred_sub_free can promise no
 * wake after it returns; it may take the engine's lock (the order is
 * always p->lock, then the engine's), and the engine never calls into the
 * provider with its own lock held.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "policy/af.h"
#include "policy/audit.h"
#include "policy/config.h"
#include "policy/cred.h"
#include "policy/policy.h"
#include "sources/cred_int.h"
#include "sources/source.h"

extern char **environ;

/* Worker threads: helper runs in parallel before a new one waits. */
#define CRED_WORKERS		8
/* Helper answers kept (per request). */
#define CRED_CACHE_MAX		256
/* Bad files already reported (one report per version of a file). */
#define CRED_SEEN_MAX		256
/* A credential is renewed this long before it expires: a quarter of its
 * life, between these bounds. */
#define CRED_MARGIN_MIN_MS	1000
#define CRED_MARGIN_MAX_MS	(5 * 60 * 1000)
/* cred_sub_get hands out only credentials valid this much longer. */
#define CRED_USE_GUARD_MS	500
/* Retry of a failed renewal while the old credential still lasts. */
#define CRED_RETRY_MS		1000
#define CRED_REASON_MAX		400

struct cred_sub {
	struct cred_provider *p;
	struct cred_sub *prev, *next;	/* p->subs; p->lock */
	unsigned refs;			/* owner + a busy worker; p->lock */
	struct pol_registration *r;	/* immutable copy */
	char *req;			/* the helper request; immutable */
	cred_wake_fn wake;		/* p->lock; NULL once freed */
	void *wake_arg;			/* p->lock */
	bool freed;			/* p->lock; the owner let go */
	enum cred_state state;		/* p->lock */
	struct cred_ref *cur;		/* p->lock; the credential in hand */
	long long cur_expires_ms;	/* p->lock; wall clock */
	char reason[CRED_REASON_MAX];	/* p->lock; why refused */
	char audited[CRED_REASON_MAX];	/* p->lock; last reason audited */
	long long due_ms;		/* p->lock; next lookup (mono), 0: none */
	bool busy;			/* p->lock; a worker looks it up */
};

struct cache_ent {
	char *key;			/* the helper request */
	struct cred_ref *ref;
	long long expires_ms;
};

struct seen_file {
	dev_t dev;
	ino_t ino;
	long long mtime_ns;
	off_t size;
};

struct cred_provider {
	const struct pol_config *cfg;
	struct audit *audit;
	bool enabled;			/* a dir or a helper is configured */

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* work due, or stop (lock) */
	bool stop;			/* lock */
	bool dead;			/* workers joined (lock) */
	unsigned n_subs;		/* lock */
	struct cred_sub *subs;		/* lock */
	pid_t running[CRED_WORKERS];	/* helper process groups (lock) */
	struct cache_ent cache[CRED_CACHE_MAX];	/* lock */
	size_t n_cache;			/* lock */
	struct seen_file seen[CRED_SEEN_MAX];	/* lock */
	size_t n_seen;			/* lock */
	struct cred_stats stats;	/* lock */

	pthread_t workers[CRED_WORKERS];
	unsigned n_workers;
};

/* The outcome of one lookup (worker thread, no lock). */
struct lookup {
	enum cred_state state;
	struct cred_ref *ref;		/* CRED_READY */
	char reason[CRED_REASON_MAX];	/* CRED_REFUSED */
};

static struct cred_ref *ref_new(struct pol_cred *c)
{
	struct cred_ref *r = calloc(1, sizeof(*r));

	if (!r) {
		pol_cred_free(c);
		return NULL;
	}
	r->refs = 1;
	r->c = c;
	return r;
}

static struct cred_ref *ref_get(struct cred_ref *r)
{
	__atomic_fetch_add(&r->refs, 1, __ATOMIC_RELAXED);
	return r;
}

void cred_put(struct cred_ref *r)
{
	if (!r || __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pol_cred_free(r->c);
	free(r);
}

static long long expires_ms(const struct pol_cred *c)
{
	return c->expires_at_s * 1000LL;
}

/* How long before expiry a credential obtained at now is renewed. */
static long long margin_ms(long long exp_ms, long long now_wall)
{
	long long m = (exp_ms - now_wall) / 4;

	if (m < CRED_MARGIN_MIN_MS)
		m = CRED_MARGIN_MIN_MS;
	if (m > CRED_MARGIN_MAX_MS)
		m = CRED_MARGIN_MAX_MS;
	return m;
}

static void reason_set(struct lookup *lk, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reason_set(struct lookup *lk, const char *fmt, ...)
{
	va_list ap;

	lk->state = CRED_REFUSED;
	va_start(ap, fmt);
	vsnprintf(lk->reason, sizeof(lk->reason), fmt, ap);
	va_end(ap);
}

/*
 * The time rules, with a second to spare: a credential that would expire
 * while its first request is on the way counts as expired.
 */
static int check_time(const struct pol_cred *c, const struct pol_config *cfg,
		      char *err, size_t errlen)
{
	long long now_s = af_wall_ms() / 1000;

	if (c->expires_at_s <= now_s + 1 && c->expires_at_s > now_s) {
		snprintf(err, errlen, "%s: expires_at: expires within a second",
			 c->origin);
		return AF_ECRED;
	}
	return pol_cred_check_time(c, now_s, cfg->credentials_max_lifetime_ms,
				   err, errlen);
}

/* Reads a credential file (at most POL_CRED_DOC_MAX bytes) into buf. */
static int read_doc(int dirfd, const char *name, char *buf, size_t cap,
		    size_t *len, struct stat *st)
{
	size_t n = 0;
	int fd, ret = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		ret = -EISDIR;
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n == cap) {
			ret = -EFBIG;
			goto out;
		}
	}
	*len = n;
out:
	close(fd);
	return ret;
}

/* Whether the file was reported already; records it when not (p->lock). */
static bool seen_before(struct cred_provider *p, const struct stat *st)
{
	struct seen_file f = { st->st_dev, st->st_ino,
			       (long long)st->st_mtim.tv_sec * 1000000000LL +
			       st->st_mtim.tv_nsec, st->st_size };

	for (size_t i = 0; i < p->n_seen; i++)
		if (memcmp(&p->seen[i], &f, sizeof(f)) == 0)
			return true;
	if (p->n_seen == CRED_SEEN_MAX)
		p->n_seen = 0;
	p->seen[p->n_seen++] = f;
	return false;
}

static void audit_refusal(struct cred_provider *p,
			  const struct pol_registration *r, const char *reason)
{
	struct audit_event ev = { .event = "credential_refused",
				  .decision = "deny", .reason = reason };

	if (r) {
		ev.project = r->project;
		ev.name = r->name;
		ev.digest = r->digest.str;
		ev.source_type = pol_source_type_name(r->source_type);
		ev.uri = r->uri;
	}
	audit_emit(p->audit, &ev);
	af_warn("credential refused: %s", reason);
}

/* A file nobody can use: reported once per version of it. */
static void report_bad_file(struct cred_provider *p, const struct stat *st,
			    const char *msg)
{
	bool seen;

	pthread_mutex_lock(&p->lock);
	seen = seen_before(p, st);
	pthread_mutex_unlock(&p->lock);
	if (!seen)
		audit_refusal(p, NULL, msg);
}

typedef void (*scan_fn)(void *arg, const char *path, int ret,
			struct pol_cred *c, const char *err,
			const struct stat *st);

static int json_name(const struct dirent *de)
{
	size_t n = strlen(de->d_name);

	return de->d_name[0] != '.' && n > 5 &&
	       strcmp(de->d_name + n - 5, ".json") == 0;
}

/*
 * Calls fn for every *.json file of dir (dot files skipped, sorted by
 * name) with what pol_cred_parse made of it: ret 0 or AF_ECRED with c
 * (fn takes it), AF_EPARSE or -errno with err. Returns 0 or -errno when
 * dir cannot be read.
 */
static int scan_dir(const char *dir, scan_fn fn, void *arg)
{
	struct dirent **names = NULL;
	char *buf, path[4096], err[512];
	int n, dirfd;

	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	n = scandirat(dirfd, ".", &names, json_name, alphasort);
	if (n < 0) {
		int e = -errno;

		close(dirfd);
		return e;
	}
	buf = malloc(POL_CRED_DOC_MAX + 1);
	for (int i = 0; i < n; i++) {
		struct pol_cred *c = NULL;
		struct stat st = { 0 };
		size_t len = 0;
		int ret;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		err[0] = '\0';
		ret = buf ? read_doc(dirfd, names[i]->d_name, buf,
				     POL_CRED_DOC_MAX + 1, &len, &st) : -ENOMEM;
		if (ret == -EFBIG)
			snprintf(err, sizeof(err), "%.400s: larger than %u bytes",
				 path, POL_CRED_DOC_MAX);
		else if (ret < 0)
			snprintf(err, sizeof(err), "%.400s: %s", path,
				 af_strerror(ret));
		if (ret == 0) {
			ret = pol_cred_parse(buf, len, path, &c, err,
					     sizeof(err));
			OPENSSL_cleanse(buf, len);
			if (ret == 1) {
				ret = AF_EPARSE;
				snprintf(err, sizeof(err),
					 "%.400s: document: null (a file must hold a credential)",
					 path);
			}
		}
		if (ret != -EISDIR)
			fn(arg, path, ret, c, err, &st);
		else
			pol_cred_free(c);
		free(names[i]);
	}
	free(names);
	free(buf);
	close(dirfd);
	return 0;
}

struct best {
	struct cred_provider *p;
	const struct pol_registration *r;
	struct pol_cred *c;		/* the longest matching scope so far */
	int ret;			/* 0 or AF_ECRED for c */
	char err[CRED_REASON_MAX];
	size_t len;
};

static void pick_best(void *arg, const char *path, int ret,
		      struct pol_cred *c, const char *err,
		      const struct stat *st)
{
	struct best *b = arg;
	size_t len;

	(void)path;
	if (ret != 0 && ret != AF_ECRED) {
		/* Unreadable: it names no scope, so it concerns nobody. */
		report_bad_file(b->p, st, err);
		return;
	}
	len = pol_cred_match_len(c, b->r);
	if (len <= b->len) {
		pol_cred_free(c);
		return;
	}
	pol_cred_free(b->c);
	b->c = c;
	b->ret = ret;
	b->len = len;
	snprintf(b->err, sizeof(b->err), "%s", err);
}

/* credentials.dir: the longest matching scope wins (DESIGN §5b). */
static bool lookup_dir(struct cred_provider *p, struct cred_sub *s,
		       struct lookup *lk)
{
	struct best b = { .p = p, .r = s->r };
	int ret;

	pthread_mutex_lock(&p->lock);
	p->stats.dir_scans++;
	pthread_mutex_unlock(&p->lock);
	ret = scan_dir(p->cfg->credentials_dir, pick_best, &b);
	if (ret < 0) {
		/*
		 * An unreadable folder is reported once per errno (it counts
		 * as a "file" with no inode), then the helper is asked.
		 */
		struct stat st = { .st_ino = 0, .st_size = -ret };
		char msg[CRED_REASON_MAX];

		snprintf(msg, sizeof(msg), "credentials.dir %.300s: %s",
			 p->cfg->credentials_dir, af_strerror(ret));
		report_bad_file(p, &st, msg);
		return false;
	}
	if (!b.c)
		return false;
	if (b.ret == 0 && check_time(b.c, p->cfg, b.err, sizeof(b.err)) != 0)
		b.ret = AF_ECRED;
	if (b.ret != 0) {
		reason_set(lk, "%s", b.err);
		pol_cred_free(b.c);
		return true;
	}
	lk->ref = ref_new(b.c);
	if (lk->ref)
		lk->state = CRED_READY;
	else
		reason_set(lk, "%s: out of memory", p->cfg->credentials_dir);
	return true;
}

/* Remembers the pid of a running helper for cred_provider_free. */
static void running_set(struct cred_provider *p, pid_t old, pid_t pid)
{
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < CRED_WORKERS; i++)
		if (p->running[i] == old) {
			p->running[i] = pid;
			break;
		}
	pthread_mutex_unlock(&p->lock);
}

/*
 * Runs the helper with req on stdin; its stdout (at most cap bytes) into
 * buf. stdin is a socket (a helper that exits without reading cannot
 * raise SIGPIPE here), stderr is /dev/null (it could print a secret),
 * other descriptors are closed; the helper has its own process group,
 * killed whole after the timeout. Returns 0 with *len, or AF_ECRED with
 * why in err.
 */
static int run_helper(struct cred_provider *p, const char *req, char *buf,
		      size_t cap, size_t *len, char *err, size_t errlen)
{
	const char *helper = p->cfg->credentials_helper;
	long long deadline = af_now_ms() +
			     (long long)p->cfg->credentials_helper_timeout_ms;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, status = 0, ret;
	char *argv[] = { (char *)helper, NULL };
	size_t n = 0, sent = 0, reqlen = strlen(req);
	bool timed_out = false, too_big = false;
	pid_t pid = -1;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0 ||
	    pipe2(out, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "credentials.helper %s: %s", helper,
			 strerror(errno));
		ret = AF_ECRED;
		goto out_close;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[1], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&at);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP |
				      POSIX_SPAWN_SETSIGMASK |
				      POSIX_SPAWN_SETSIGDEF);
	{
		sigset_t none, all;

		sigemptyset(&none);
		sigfillset(&all);
		posix_spawnattr_setsigmask(&at, &none);
		posix_spawnattr_setsigdefault(&at, &all);
	}
	pthread_mutex_lock(&p->lock);
	p->stats.helper_runs++;
	pthread_mutex_unlock(&p->lock);
	ret = posix_spawn(&pid, helper, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (ret != 0) {
		snprintf(err, errlen, "credentials.helper %s: cannot run: %s",
			 helper, strerror(ret));
		pid = -1;
		ret = AF_ECRED;
		goto out_close;
	}
	running_set(p, 0, pid);
	close(in[1]);
	close(out[1]);
	in[1] = out[1] = -1;
	fcntl(in[0], F_SETFL, O_NONBLOCK);

	/* Write the request and read the answer, both under the deadline. */
	while (out[0] >= 0) {
		struct pollfd pf[2] = { { out[0], POLLIN, 0 },
					{ in[0], POLLOUT, 0 } };
		long long left = deadline - af_now_ms();
		int np = in[0] >= 0 ? 2 : 1;

		if (left <= 0) {
			timed_out = true;
			break;
		}
		if (poll(pf, (nfds_t)np, (int)(left > 1000 ? 1000 : left)) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (np == 2 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = send(in[0], req + sent, reqlen - sent,
					 MSG_NOSIGNAL);

			if (w > 0)
				sent += (size_t)w;
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				sent = reqlen;	/* it stopped reading: fine */
			if (sent == reqlen) {
				shutdown(in[0], SHUT_WR);
				close(in[0]);
				in[0] = -1;
			}
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(out[0], buf + n, cap - n);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				close(out[0]);
				out[0] = -1;
				break;
			}
			n += (size_t)r;
			if (n == cap) {
				too_big = true;
				break;
			}
		}
	}
	/* Then its exit, under the same deadline. */
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			break;
		if (timed_out || too_big || af_now_ms() >= deadline) {
			timed_out = !too_big;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			break;
		}
		usleep(5000);
	}
	/* Whatever the helper left behind in its group goes too. */
	kill(-pid, SIGKILL);
	running_set(p, pid, 0);
	if (timed_out) {
		snprintf(err, errlen,
			 "credentials.helper %s: no answer within %llus (killed)",
			 helper, (unsigned long long)
			 (p->cfg->credentials_helper_timeout_ms / 1000));
		ret = AF_ECRED;
	} else if (too_big) {
		snprintf(err, errlen,
			 "credentials.helper %s: answer larger than %u bytes",
			 helper, POL_CRED_DOC_MAX);
		ret = AF_ECRED;
	} else if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "credentials.helper %s: killed by signal %d",
			 helper, WTERMSIG(status));
		ret = AF_ECRED;
	} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(err, errlen, "credentials.helper %s: exited with status %d",
			 helper, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		ret = AF_ECRED;
	} else {
		*len = n;
		ret = 0;
	}
out_close:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	if (ret != 0)
		OPENSSL_cleanse(buf, n);
	return ret;
}

/* A cached helper answer for req, fresh enough and not `have` (p->lock). */
static struct cred_ref *cache_find(struct cred_provider *p, const char *req,
				   const struct cred_ref *have)
{
	long long now = af_wall_ms();

	for (size_t i = 0; i < p->n_cache; i++) {
		struct cache_ent *e = &p->cache[i];

		if (strcmp(e->key, req) != 0)
			continue;
		if (e->ref == have || e->expires_ms - now <=
		    margin_ms(e->expires_ms, now))
			return NULL;
		return ref_get(e->ref);
	}
	return NULL;
}

/* Keeps ref as the answer to req (p->lock). Drops stale entries first. */
static void cache_put(struct cred_provider *p, const char *req,
		      struct cred_ref *ref)
{
	long long now = af_wall_ms();
	size_t i, o = 0;
	char *key;

	for (i = 0; i < p->n_cache; i++) {
		struct cache_ent *e = &p->cache[i];

		if (strcmp(e->key, req) == 0 || e->expires_ms <= now ||
		    (p->n_cache == CRED_CACHE_MAX && i == 0)) {
			free(e->key);
			cred_put(e->ref);
			continue;
		}
		p->cache[o++] = *e;
	}
	p->n_cache = o;
	key = strdup(req);
	if (!key || p->n_cache == CRED_CACHE_MAX) {
		free(key);
		return;
	}
	p->cache[p->n_cache++] = (struct cache_ent){
		key, ref_get(ref), expires_ms(ref->c) };
}

/* credentials.helper (DESIGN §5): asked only when no file matched. */
static void lookup_helper(struct cred_provider *p, struct cred_sub *s,
			  const struct cred_ref *have, struct lookup *lk)
{
	const char *helper = p->cfg->credentials_helper;
	struct pol_cred *c = NULL;
	char origin[600], err[CRED_REASON_MAX];
	struct cred_ref *ref;
	size_t len = 0;
	char *buf;
	int ret;

	pthread_mutex_lock(&p->lock);
	ref = cache_find(p, s->req, have);
	pthread_mutex_unlock(&p->lock);
	if (ref) {
		lk->state = CRED_READY;
		lk->ref = ref;
		return;
	}
	buf = malloc(POL_CRED_DOC_MAX + 1);
	if (!buf) {
		reason_set(lk, "credentials.helper %s: out of memory", helper);
		return;
	}
	ret = run_helper(p, s->req, buf, POL_CRED_DOC_MAX + 1, &len, err,
			 sizeof(err));
	if (ret != 0) {
		reason_set(lk, "%s", err);
		goto out_free;
	}
	snprintf(origin, sizeof(origin), "credentials.helper %s", helper);
	ret = pol_cred_parse(buf, len, origin, &c, err, sizeof(err));
	OPENSSL_cleanse(buf, len);
	if (ret == 1) {
		lk->state = CRED_NONE;
		goto out_free;
	}
	if (ret != 0) {
		reason_set(lk, "%s", err);
		goto out_free;
	}
	if (pol_cred_match_len(c, s->r) == 0) {
		reason_set(lk, "%s: answered a credential whose source_type or scope does not cover this uri",
			   origin);
		goto out_free;
	}
	if (check_time(c, p->cfg, err, sizeof(err)) != 0) {
		reason_set(lk, "%s", err);
		goto out_free;
	}
	lk->ref = ref_new(c);
	c = NULL;
	if (!lk->ref) {
		reason_set(lk, "%s: out of memory", origin);
		goto out_free;
	}
	lk->state = CRED_READY;
	pthread_mutex_lock(&p->lock);
	cache_put(p, s->req, lk->ref);
	pthread_mutex_unlock(&p->lock);
out_free:
	pol_cred_free(c);
	free(buf);
}

/* One lookup for s (worker thread, no lock held). */
static void lookup(struct cred_provider *p, struct cred_sub *s,
		   const struct cred_ref *have, struct lookup *lk)
{
	memset(lk, 0, sizeof(*lk));
	lk->state = CRED_NONE;
	if (p->cfg->credentials_dir && lookup_dir(p, s, lk))
		return;
	if (p->cfg->credentials_helper)
		lookup_helper(p, s, have, lk);
}

static void sub_unref(struct cred_sub *s);

/*
 * Applies a lookup to s (p->lock held). A renewal that fails while the
 * credential in hand still lasts keeps it and tries again shortly.
 */
static void apply(struct cred_provider *p, struct cred_sub *s,
		  struct lookup *lk)
{
	long long now = af_wall_ms();
	bool have_valid = s->cur && s->cur_expires_ms - now > CRED_USE_GUARD_MS;

	if (lk->state == CRED_READY) {
		long long exp = expires_ms(lk->ref->c);

		cred_put(s->cur);
		s->cur = lk->ref;
		lk->ref = NULL;
		s->cur_expires_ms = exp;
		s->state = CRED_READY;
		s->due_ms = af_now_ms() + (exp - margin_ms(exp, now) - now);
		if (s->due_ms <= af_now_ms())
			s->due_ms = af_now_ms() + CRED_RETRY_MS;
		s->audited[0] = '\0';
		return;
	}
	if (lk->state == CRED_REFUSED && strcmp(s->audited, lk->reason) != 0) {
		snprintf(s->audited, sizeof(s->audited), "%s", lk->reason);
		audit_refusal(p, s->r, lk->reason);
	}
	if (have_valid) {
		long long retry = af_now_ms() + CRED_RETRY_MS;

		s->due_ms = retry;
		return;
	}
	cred_put(s->cur);
	s->cur = NULL;
	s->state = lk->state;
	snprintf(s->reason, sizeof(s->reason), "%s", lk->reason);
	s->due_ms = 0;
}

/* The subscription due first, or NULL; *wait_ms until then (p->lock). */
static struct cred_sub *next_due(struct cred_provider *p, long long *wait_ms)
{
	long long now = af_now_ms();
	struct cred_sub *best = NULL;

	*wait_ms = 1000;
	for (struct cred_sub *s = p->subs; s; s = s->next) {
		if (s->busy || s->due_ms == 0)
			continue;
		if (!best || s->due_ms < best->due_ms)
			best = s;
	}
	if (best && best->due_ms > now) {
		if (best->due_ms - now < *wait_ms)
			*wait_ms = best->due_ms - now;
		return NULL;
	}
	return best;
}

static void *worker_main(void *arg)
{
	struct cred_provider *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct cred_ref *have;
		struct cred_sub *s;
		struct lookup lk;
		long long wait;

		s = next_due(p, &wait);
		if (!s) {
			struct timespec ts = af_deadline(CLOCK_MONOTONIC, wait);

			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
			continue;
		}
		s->busy = true;
		s->due_ms = 0;
		s->refs++;
		have = s->cur ? ref_get(s->cur) : NULL;
		pthread_mutex_unlock(&p->lock);
		lookup(p, s, have, &lk);
		cred_put(have);
		pthread_mutex_lock(&p->lock);
		s->busy = false;
		if (!p->stop && !s->freed) {
			apply(p, s, &lk);
			if (s->wake)
				s->wake(s->wake_arg);
		}
		cred_put(lk.ref);
		OPENSSL_cleanse(&lk, sizeof(lk));
		pthread_mutex_unlock(&p->lock);
		sub_unref(s);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void provider_destroy(struct cred_provider *p)
{
	for (size_t i = 0; i < p->n_cache; i++) {
		free(p->cache[i].key);
		cred_put(p->cache[i].ref);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Drops a reference to s; the last frees it (and maybe the provider). */
static void sub_unref(struct cred_sub *s)
{
	struct cred_provider *p = s->p;
	bool last_sub, gone;

	pthread_mutex_lock(&p->lock);
	gone = --s->refs == 0;
	if (gone)
		p->n_subs--;
	last_sub = gone && p->dead && p->n_subs == 0;
	pthread_mutex_unlock(&p->lock);
	if (!gone)
		return;
	cred_put(s->cur);
	pol_registration_free(s->r);
	free(s->req);
	free(s);
	if (last_sub)
		provider_destroy(p);
}

int cred_provider_new(const struct pol_config *cfg, struct audit *audit,
		      struct cred_provider **out)
{
	struct cred_provider *p;
	int err = 0;

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cfg = cfg;
	p->audit = audit;
	p->enabled = cfg->credentials_dir || cfg->credentials_helper;
	pthread_mutex_init(&p->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&p->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (unsigned i = 0; p->enabled && i < CRED_WORKERS; i++) {
		err = -pthread_create(&p->workers[i], NULL, worker_main, p);
		if (err)
			break;
		p->n_workers++;
	}
	if (err && p->n_workers == 0) {
		provider_destroy(p);
		return err;
	}
	*out = p;
	return 0;
}

bool cred_provider_enabled(const struct cred_provider *p)
{
	return p != NULL && p->enabled;
}

void cred_provider_free(struct cred_provider *p)
{
	bool last;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	/* A helper still running ends now, not at its timeout. */
	for (unsigned i = 0; i < CRED_WORKERS; i++)
		if (p->running[i] > 0)
			kill(-p->running[i], SIGKILL);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n_workers; i++)
		pthread_join(p->workers[i], NULL);
	pthread_mutex_lock(&p->lock);
	p->dead = true;
	last = p->n_subs == 0;
	pthread_mutex_unlock(&p->lock);
	if (last)
		provider_destroy(p);
}

int cred_sub_new(struct cred_provider *p, const struct pol_registration *r,
		 cred_wake_fn wake, void *arg, struct cred_sub **out)
{
	struct cred_sub *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->p = p;
	s->refs = 1;
	s->wake = wake;
	s->wake_arg = arg;
	s->r = pol_registration_dup(r);
	s->req = s->r ? pol_cred_request_json(s->r) : NULL;
	if (!s->r || !s->req) {
		pol_registration_free(s->r);
		free(s->req);
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_lock(&p->lock);
	p->n_subs++;
	if (!p->enabled || p->stop) {
		s->state = p->enabled ? CRED_REFUSED : CRED_NONE;
		snprintf(s->reason, sizeof(s->reason), "credentials: stopping");
	} else {
		s->state = CRED_PENDING;
		s->due_ms = af_now_ms();
		s->next = p->subs;
		if (p->subs)
			p->subs->prev = s;
		p->subs = s;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	*out = s;
	return 0;
}

void cred_sub_unwake(struct cred_sub *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->p->lock);
	s->wake = NULL;
	pthread_mutex_unlock(&s->p->lock);
}

void cred_sub_free(struct cred_sub *s)
{
	struct cred_provider *p;

	if (!s)
		return;
	p = s->p;
	pthread_mutex_lock(&p->lock);
	s->freed = true;
	s->wake = NULL;
	if (s->prev || p->subs == s) {
		if (s->prev)
			s->prev->next = s->next;
		else
			p->subs = s->next;
		if (s->next)
			s->next->prev = s->prev;
		s->prev = s->next = NULL;
	}
	pthread_mutex_unlock(&p->lock);
	sub_unref(s);
}

enum cred_state cred_sub_get(struct cred_sub *s, struct cred_ref **out,
			     char *reason, size_t reasonlen)
{
	struct cred_provider *p = s->p;
	enum cred_state st;

	*out = NULL;
	pthread_mutex_lock(&p->lock);
	st = s->state;
	if (st == CRED_READY) {
		if (s->cur && s->cur_expires_ms - af_wall_ms() > CRED_USE_GUARD_MS) {
			*out = ref_get(s->cur);
		} else {
			/* Expired in hand: renew now, park until then. */
			st = CRED_PENDING;
			if (!s->busy && !p->stop &&
			    (s->due_ms == 0 || s->due_ms > af_now_ms())) {
				s->due_ms = af_now_ms();
				pthread_cond_signal(&p->cond);
			}
		}
	} else if (st == CRED_REFUSED && reason && reasonlen) {
		snprintf(reason, reasonlen, "%s", s->reason);
	}
	pthread_mutex_unlock(&p->lock);
	return st;
}

void cred_provider_stats(struct cred_provider *p, struct cred_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}

struct check_ctx {
	const struct pol_config *cfg;
	long long now_s;
	src_report_fn report;
	void *arg;
	unsigned problems;
};

static void check_one(void *arg, const char *path, int ret,
		      struct pol_cred *c, const char *err,
		      const struct stat *st)
{
	struct check_ctx *k = arg;
	char msg[CRED_REASON_MAX];

	(void)path;
	(void)st;
	if (ret == 0 && pol_cred_check_time(c, k->now_s,
					    k->cfg->credentials_max_lifetime_ms,
					    msg, sizeof(msg)) != 0)
		ret = AF_ECRED;
	else
		snprintf(msg, sizeof(msg), "%s", err);
	pol_cred_free(c);
	if (ret == 0)
		return;
	k->problems++;
	k->report(k->arg, "error", msg);
}

int src_cred_check(const struct pol_config *cfg, long long now_s,
		   src_report_fn report, void *arg)
{
	struct check_ctx k = { cfg, now_s, report, arg, 0 };
	char msg[4200];
	struct stat st;
	int ret;

	if (cfg->credentials_dir) {
		ret = scan_dir(cfg->credentials_dir, check_one, &k);
		if (ret < 0) {
			snprintf(msg, sizeof(msg),
				 "%s: credentials.dir cannot be read: %s",
				 cfg->credentials_dir, af_strerror(ret));
			report(arg, "error", msg);
			k.problems++;
		}
	}
	if (cfg->credentials_helper &&
	    (stat(cfg->credentials_helper, &st) < 0 || !S_ISREG(st.st_mode) ||
	     access(cfg->credentials_helper, X_OK) < 0)) {
		snprintf(msg, sizeof(msg),
			 "%s: credentials.helper is not an executable file",
			 cfg->credentials_helper);
		report(arg, "error", msg);
		k.problems++;
	}
	return k.problems ? AF_ECRED : 0;
}
