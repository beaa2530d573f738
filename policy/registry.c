/*
 * registry.c - the embedded file registry (DESIGN §3): every *.json below
 * a directory, each one registration or an array of them. A bad file or
 * record is reported and skipped; it never hides the good ones.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pol_int.h"

#define REG_DEPTH_MAX	32
#define REG_FILES_MAX	100000
#define REG_RECORDS_MAX	1000000

struct pol_registry {
	struct pol_registration **recs;	/* sorted by project, name, digest */
	size_t n;
	char **projects;		/* sorted, distinct; point into recs */
	size_t n_projects;
};

/* Records collected while loading, in path order. */
struct reg_list {
	struct pol_registration **v;
	size_t n, cap;
	pol_report_fn report;
	void *arg;
};

static void reportf(struct reg_list *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reportf(struct reg_list *l, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!l->report)
		return;
	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	l->report(l->arg, msg);
}

static int list_push(struct reg_list *l, struct pol_registration *r)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct pol_registration **v;

		if (l->n >= REG_RECORDS_MAX) {
			reportf(l, "%s: more than %d registrations, skipped",
				r->origin, REG_RECORDS_MAX);
			pol_registration_free(r);
			return 0;
		}
		v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			reportf(l, "%s: out of memory", r->origin);
			pol_registration_free(r);
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = r;
	return 0;
}

static void add_one(struct reg_list *l, json_t *obj, const char *origin)
{
	struct pol_registration *r;
	char err[1024];

	if (pol_registration_from_json(obj, origin, &r, err, sizeof(err)) < 0) {
		if (l->report)
			l->report(l->arg, err);
		return;
	}
	list_push(l, r);
}

/* Adds the records of one JSON text; problems reported. */
static void add_text(struct reg_list *l, const char *buf, size_t len,
		     const char *origin)
{
	json_error_t jerr;
	json_t *root, *e;
	char sub[4096];
	size_t i;

	root = json_loadb(buf, len,
			  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		reportf(l, "%s:%d:%d: invalid JSON: %s", origin, jerr.line,
			jerr.column, jerr.text);
		return;
	}
	if (json_is_object(root)) {
		add_one(l, root, origin);
	} else if (json_is_array(root)) {
		json_array_foreach(root, i, e) {
			snprintf(sub, sizeof(sub), "%s[%zu]", origin, i);
			add_one(l, e, sub);
		}
	} else {
		reportf(l, "%s: must be a registration object or an array of them",
			origin);
	}
	json_decref(root);
}

static int key_cmp(const struct pol_registration *a, const char *project,
		   const char *name, const char *digest)
{
	int c = strcmp(a->project, project);

	if (c || !name)
		return c;
	c = strcmp(a->name, name);
	if (c || !digest)
		return c;
	return strcmp(a->digest.str, digest);
}

static int rec_cmp(const void *x, const void *y)
{
	const struct pol_registration *a = *(struct pol_registration *const *)x;
	const struct pol_registration *b = *(struct pol_registration *const *)y;

	return key_cmp(a, b->project, b->name, b->digest.str);
}

struct rec_ix {
	struct pol_registration *r;
	size_t ix;
};

/*
 * Duplicates of one key sort the later registered_at first (it wins, issue
 * 9), then by load order, so the first in path (or array) order is kept
 * among equals.
 */
static int ix_cmp(const void *x, const void *y)
{
	const struct rec_ix *a = x, *b = y;
	int c = rec_cmp(&a->r, &b->r);

	if (c)
		return c;
	if (a->r->registered_at_s != b->r->registered_at_s)
		return a->r->registered_at_s > b->r->registered_at_s ? -1 : 1;
	return a->ix < b->ix ? -1 : a->ix > b->ix;
}

/* Sorts, drops duplicates (keeping the later registered_at) and indexes. */
static int registry_build(struct reg_list *l, struct pol_registry **out)
{
	struct pol_registry *g;
	struct rec_ix *ix = NULL;
	size_t i, n = 0;

	g = calloc(1, sizeof(*g));
	if (!g)
		goto out_nomem;
	if (l->n) {
		ix = malloc(l->n * sizeof(*ix));
		if (!ix)
			goto out_nomem;
		for (i = 0; i < l->n; i++) {
			ix[i].r = l->v[i];
			ix[i].ix = i;
		}
		qsort(ix, l->n, sizeof(*ix), ix_cmp);
		for (i = 0; i < l->n; i++) {
			struct pol_registration *r = ix[i].r;

			if (n > 0 && rec_cmp(&l->v[n - 1], &r) == 0) {
				reportf(l,
					"%s: duplicate of %s (%s/%s@%s), skipped: %s",
					r->origin, l->v[n - 1]->origin,
					r->project, r->name, r->digest.str,
					r->registered_at_s ==
					l->v[n - 1]->registered_at_s ?
					"the first one loaded wins" :
					"the later registered_at wins");
				pol_registration_free(r);
				continue;
			}
			l->v[n++] = r;
		}
		free(ix);
		l->n = n;
	}
	g->recs = l->v;
	g->n = l->n;
	l->v = NULL;
	l->n = l->cap = 0;
	if (g->n) {
		g->projects = malloc(g->n * sizeof(*g->projects));
		if (!g->projects)
			goto out_free_g;
		for (i = 0; i < g->n; i++)
			if (g->n_projects == 0 ||
			    strcmp(g->projects[g->n_projects - 1],
				   g->recs[i]->project) != 0)
				g->projects[g->n_projects++] = g->recs[i]->project;
	}
	*out = g;
	return 0;
out_nomem:
	free(g);
	return -ENOMEM;
out_free_g:
	pol_registry_free(g);
	return -ENOMEM;
}

static void list_release(struct reg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		pol_registration_free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Paths found below the directory, relative to it. */
struct path_list {
	char **v;
	size_t n, cap;
};

static int paths_push(struct path_list *pl, char *p)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 32;
		char **v = realloc(pl->v, cap * sizeof(*v));

		if (!v) {
			free(p);
			return -ENOMEM;
		}
		pl->v = v;
		pl->cap = cap;
	}
	pl->v[pl->n++] = p;
	return 0;
}

static char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);

	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static bool ends_with_json(const char *s)
{
	size_t n = strlen(s);

	return n > 5 && strcmp(s + n - 5, ".json") == 0;
}

/*
 * Collects *.json below root/rel. Dot-files and dot-folders are skipped
 * (editors' temporaries, ".git"); symlinked folders are not followed (no
 * loops), symlinked files are.
 */
static int walk(struct reg_list *l, struct path_list *pl, const char *root,
		const char *rel, int depth)
{
	char *dpath = rel ? path_join(root, rel) : strdup(root);
	struct dirent *de;
	DIR *d;
	int ret = 0;

	if (!dpath)
		return -ENOMEM;
	d = opendir(dpath);
	if (!d) {
		ret = -errno;
		reportf(l, "%s: %s", rel ? rel : root, af_strerror(ret));
		free(dpath);
		return rel ? 0 : ret;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		char *child;

		if (de->d_name[0] == '.')
			continue;
		child = rel ? path_join(rel, de->d_name) : strdup(de->d_name);
		if (!child) {
			ret = -ENOMEM;
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			reportf(l, "%s: %s", child, af_strerror(-errno));
			free(child);
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			if (depth >= REG_DEPTH_MAX)
				reportf(l, "%s: deeper than %d folders, skipped",
					child, REG_DEPTH_MAX);
			else
				ret = walk(l, pl, root, child, depth + 1);
			free(child);
			if (ret < 0)
				break;
			continue;
		}
		if (!ends_with_json(de->d_name) ||
		    !(S_ISREG(st.st_mode) || S_ISLNK(st.st_mode))) {
			free(child);
			continue;
		}
		if (pl->n >= REG_FILES_MAX) {
			reportf(l, "%s: more than %d files, skipped", child,
				REG_FILES_MAX);
			free(child);
			continue;
		}
		ret = paths_push(pl, child);
		if (ret < 0)
			break;
	}
	closedir(d);
	free(dpath);
	return ret;
}

static int str_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int pol_registry_load_dir(const char *dir, pol_report_fn report, void *arg,
			  struct pol_registry **out)
{
	struct reg_list l = { NULL, 0, 0, report, arg };
	struct path_list pl = { NULL, 0, 0 };
	size_t i, len;
	char *buf, *full;
	int ret;

	*out = NULL;
	ret = walk(&l, &pl, dir, NULL, 0);
	if (ret < 0)
		goto out_paths;
	qsort(pl.v, pl.n, sizeof(*pl.v), str_ptr_cmp);
	for (i = 0; i < pl.n; i++) {
		full = path_join(dir, pl.v[i]);
		if (!full) {
			ret = -ENOMEM;
			goto out_paths;
		}
		ret = pol_read_file(full, &buf, &len);
		free(full);
		if (ret < 0) {
			reportf(&l, "%s: %s", pl.v[i], af_strerror(ret));
			ret = 0;
			continue;
		}
		add_text(&l, buf, len, pl.v[i]);
		free(buf);
	}
	ret = registry_build(&l, out);
out_paths:
	for (i = 0; i < pl.n; i++)
		free(pl.v[i]);
	free(pl.v);
	list_release(&l);
	return ret;
}

int pol_registry_parse(const char *buf, size_t len, const char *origin,
		       pol_report_fn report, void *arg,
		       struct pol_registry **out)
{
	struct reg_list l = { NULL, 0, 0, report, arg };
	int ret;

	*out = NULL;
	if (buf)
		add_text(&l, buf, len, origin ? origin : "registry");
	ret = registry_build(&l, out);
	list_release(&l);
	return ret;
}

struct pol_registry *pol_registry_new_empty(void)
{
	return calloc(1, sizeof(struct pol_registry));
}

void pol_registry_free(struct pol_registry *g)
{
	if (!g)
		return;
	for (size_t i = 0; i < g->n; i++)
		pol_registration_free(g->recs[i]);
	free(g->recs);
	free(g->projects);
	free(g);
}

size_t pol_registry_count(const struct pol_registry *g)
{
	return g ? g->n : 0;
}

const struct pol_registration *pol_registry_at(const struct pol_registry *g,
					       size_t i)
{
	if (!g || i >= g->n)
		return NULL;
	return g->recs[i];
}

/* First index whose key is >= the given (partial) key. */
static size_t lower_bound(const struct pol_registry *g, const char *project,
			  const char *name, const char *digest)
{
	size_t lo = 0, hi = g->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (key_cmp(g->recs[mid], project, name, digest) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct pol_registration *pol_registry_find(const struct pol_registry *g,
						 const char *project,
						 const char *name,
						 const char *digest)
{
	size_t i;

	if (!g || !project || !name || !digest)
		return NULL;
	i = lower_bound(g, project, name, digest);
	if (i < g->n && key_cmp(g->recs[i], project, name, digest) == 0)
		return g->recs[i];
	return NULL;
}

const char *const *pol_registry_projects(const struct pol_registry *g,
					 size_t *n)
{
	if (!g) {
		*n = 0;
		return NULL;
	}
	*n = g->n_projects;
	return (const char *const *)g->projects;
}

size_t pol_registry_project_range(const struct pol_registry *g,
				  const char *project, size_t *first)
{
	size_t i, j;

	*first = 0;
	if (!g || !project)
		return 0;
	i = lower_bound(g, project, NULL, NULL);
	j = i;
	while (j < g->n && strcmp(g->recs[j]->project, project) == 0)
		j++;
	*first = i;
	return j - i;
}

const struct pol_registration *
pol_registry_channel(const struct pol_registry *g, const struct pol_policy *p,
		     const char *project, const char *name,
		     const char *channel, bool *tie)
{
	const struct pol_registration *best = NULL;
	bool t = false;
	size_t i;

	if (tie)
		*tie = false;
	if (!g || !project || !name || !channel)
		return NULL;
	for (i = lower_bound(g, project, name, NULL); i < g->n; i++) {
		const struct pol_registration *r = g->recs[i];

		if (key_cmp(r, project, name, NULL) != 0)
			break;
		if (!pol_registration_has_channel(r, channel))
			continue;
		if (pol_policy_decide(p, r, NULL, 0) != 0)
			continue;
		if (!best || r->registered_at_s > best->registered_at_s) {
			best = r;
			t = false;
			continue;
		}
		if (r->registered_at_s == best->registered_at_s) {
			t = true;
			if (strcmp(r->digest.str, best->digest.str) > 0)
				best = r;
		}
	}
	if (tie)
		*tie = best && t;
	return best;
}

size_t pol_registry_attest(struct pol_registry *g, const struct pol_policy *p,
			   const struct pol_registry *prev)
{
	size_t fresh = 0;

	if (!g)
		return 0;
	for (size_t i = 0; i < g->n; i++) {
		struct pol_registration *r = g->recs[i];
		const struct pol_registration *old = NULL;

		if (prev)
			old = pol_registry_find(prev, r->project, r->name,
						r->digest.str);
		if (pol_attest_fill(r, p, old))
			fresh++;
	}
	return fresh;
}

/* An empty registry with room for n records; NULL on -ENOMEM. */
static struct pol_registry *registry_alloc(size_t n)
{
	struct pol_registry *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	if (n) {
		g->recs = malloc(n * sizeof(*g->recs));
		g->projects = malloc(sizeof(*g->projects));
		if (!g->recs || !g->projects) {
			free(g->recs);
			free(g->projects);
			free(g);
			return NULL;
		}
	}
	return g;
}

int pol_registry_split(struct pol_registry *g, struct pol_registry ***out,
		       size_t *n)
{
	struct pol_registry **v = NULL;
	size_t i = 0, k = 0;

	*out = NULL;
	*n = 0;
	if (!g)
		return 0;
	if (g->n_projects) {
		v = calloc(g->n_projects, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	/* Allocate everything first, so a failure leaves g whole. */
	for (k = 0; k < g->n_projects; k++) {
		size_t first, cnt = pol_registry_project_range(g, g->projects[k],
							       &first);

		v[k] = registry_alloc(cnt);
		if (!v[k])
			goto out_nomem;
	}
	for (k = 0; k < g->n_projects; k++) {
		size_t first, cnt = pol_registry_project_range(g, g->projects[k],
							       &first);

		memcpy(v[k]->recs, g->recs + first, cnt * sizeof(*g->recs));
		v[k]->n = cnt;
		v[k]->projects[0] = v[k]->recs[0]->project;
		v[k]->n_projects = 1;
	}
	*out = v;
	*n = g->n_projects;
	/* The records moved: free only g's arrays. */
	free(g->recs);
	free(g->projects);
	free(g);
	return 0;

out_nomem:
	for (i = 0; i < k; i++)
		pol_registry_free(v[i]);
	free(v);
	return -ENOMEM;
}

int pol_registry_merge(const struct pol_registry *const *parts, size_t nparts,
		       struct pol_registry **out)
{
	struct reg_list l = { NULL, 0, 0, NULL, NULL };
	int ret = 0;

	*out = NULL;
	for (size_t k = 0; k < nparts && ret == 0; k++) {
		for (size_t i = 0; parts[k] && i < parts[k]->n; i++) {
			struct pol_registration *d =
				pol_registration_dup(parts[k]->recs[i]);

			if (!d) {
				ret = -ENOMEM;
				break;
			}
			ret = list_push(&l, d);
			if (ret < 0)
				break;
		}
	}
	if (ret == 0)
		ret = registry_build(&l, out);
	list_release(&l);
	return ret;
}

int pol_registry_from(struct pol_registration **recs, size_t n,
		      pol_report_fn report, void *arg,
		      struct pol_registry **out)
{
	struct reg_list l = { NULL, 0, 0, report, arg };
	int ret = 0;
	size_t i;

	*out = NULL;
	for (i = 0; i < n; i++) {
		ret = list_push(&l, recs[i]);
		recs[i] = NULL;
		if (ret < 0)
			break;
	}
	for (i++; i < n; i++) {
		pol_registration_free(recs[i]);
		recs[i] = NULL;
	}
	if (ret == 0)
		ret = registry_build(&l, out);
	list_release(&l);
	return ret;
}

/* Parses JSON text; reports and returns NULL when it is not JSON. */
static json_t *load_json(const char *buf, size_t len, const char *origin,
			 char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *root;

	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
			  &jerr);
	if (!root)
		pol_seterr(err, errlen, "%s:%d:%d: invalid JSON: %s", origin,
			   jerr.line, jerr.column, jerr.text);
	return root;
}

bool pol_json_wellformed(const char *buf, size_t len)
{
	json_t *root = buf ? load_json(buf, len, "", NULL, 0) : NULL;

	json_decref(root);
	return root != NULL;
}

int pol_registry_parse_listing(const char *buf, size_t len,
			       const char *origin, const char *project,
			       pol_report_fn report, void *arg,
			       struct pol_registry **out, char *err,
			       size_t errlen)
{
	struct reg_list l = { NULL, 0, 0, report, arg };
	char sub[512], safe[POL_SAFE_BUF];
	json_t *root, *e;
	size_t i;
	int ret;

	*out = NULL;
	root = load_json(buf, len, origin, err, errlen);
	if (!root)
		return AF_EPARSE;
	if (!json_is_array(root)) {
		pol_seterr(err, errlen, "%s: not an array of registrations",
			   origin);
		json_decref(root);
		return AF_EPARSE;
	}
	json_array_foreach(root, i, e) {
		struct pol_registration *r;
		char rerr[1024];

		snprintf(sub, sizeof(sub), "%s[%zu]", origin, i);
		if (pol_registration_from_json(e, sub, &r, rerr,
					       sizeof(rerr)) < 0) {
			if (report)
				report(arg, rerr);
			continue;
		}
		if (project && strcmp(r->project, project) != 0) {
			reportf(&l, "%s: project \"%s\" in the listing of \"%s\", skipped",
				sub, pol_safe(r->project, POL_SAFE_LEN, safe,
					      sizeof(safe)), project);
			pol_registration_free(r);
			continue;
		}
		if (list_push(&l, r) < 0)
			break;
	}
	json_decref(root);
	ret = registry_build(&l, out);
	list_release(&l);
	return ret;
}

static int name_ptr_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void pol_names_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int pol_projects_parse(const char *buf, size_t len, const char *origin,
		       pol_report_fn report, void *arg, char ***out,
		       size_t *n, char *err, size_t errlen)
{
	struct reg_list l = { NULL, 0, 0, report, arg };
	char **v = NULL, safe[POL_SAFE_BUF];
	size_t i, k = 0, cnt;
	json_t *root, *e;

	*out = NULL;
	*n = 0;
	root = load_json(buf, len, origin, err, errlen);
	if (!root)
		return AF_EPARSE;
	if (!json_is_array(root)) {
		pol_seterr(err, errlen, "%s: not an array of project names",
			   origin);
		json_decref(root);
		return AF_EPARSE;
	}
	cnt = json_array_size(root);
	if (cnt > POL_API_PROJECTS_MAX) {
		pol_seterr(err, errlen, "%s: more than %d projects", origin,
			   POL_API_PROJECTS_MAX);
		json_decref(root);
		return AF_EPARSE;
	}
	v = calloc(cnt ? cnt : 1, sizeof(*v));
	if (!v) {
		json_decref(root);
		return -ENOMEM;
	}
	json_array_foreach(root, i, e) {
		const char *s = json_string_value(e);

		if (!s || !pol_project_valid(s)) {
			reportf(&l, "%s[%zu]: not a valid project name (%s), skipped",
				origin, i,
				s ? pol_safe(s, POL_SAFE_LEN, safe, sizeof(safe)) :
				    "not a string");
			continue;
		}
		v[k] = strdup(s);
		if (!v[k]) {
			pol_names_free(v, k);
			json_decref(root);
			return -ENOMEM;
		}
		k++;
	}
	json_decref(root);
	qsort(v, k, sizeof(*v), name_ptr_cmp);
	/* Distinct: a name listed twice is reported once and kept once. */
	cnt = k;
	k = 0;
	for (i = 0; i < cnt; i++) {
		if (k > 0 && strcmp(v[k - 1], v[i]) == 0) {
			reportf(&l, "%s: project \"%s\" listed twice", origin,
				v[i]);
			free(v[i]);
			continue;
		}
		v[k++] = v[i];
	}
	*out = v;
	*n = k;
	return 0;
}
