/*
 * common.c - what the subcommands share: config, registry, REF parsing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../control/catalog.h"
#include "../policy/af.h"
#include "cli.h"
#include "privsep.h"

int cli_load_config(struct cli *cli)
{
	char err[512];
	int rc;

	rc = pol_config_load(cli->config_path, &cli->cfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "artifactfs: %s\n", err);
		return EXIT_FAIL;
	}
	cli->cfg_loaded = true;
	return 0;
}

static void print_problem(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "artifactfs: warning: %s\n", msg);
}

static void drop_problem(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

int cli_load_registry(struct cli *cli, struct cache *store, bool strict,
		      cli_problem_fn problem, void *arg, bool verbose,
		      struct pol_registry **reg,
		      const struct pol_policy **pol)
{
	const struct pol_registry **parts = NULL;
	const char *const *names;
	size_t n;
	int rc;

	*reg = NULL;
	*pol = NULL;
	cli_release(cli);
	rc = ctl_catalog_new(&cli->cfg, NULL, &cli->catalog);
	if (rc < 0) {
		fprintf(stderr, "artifactfs: %s\n", af_strerror(rc));
		return EXIT_FAIL;
	}
	ctl_catalog_on_problem(cli->catalog,
			       problem ? problem :
			       verbose ? print_problem : drop_problem, arg);
	ctl_catalog_set_store(cli->catalog, store);
	/* Strict: as the mount's first load (a broken policy file fails). */
	rc = ctl_catalog_load(cli->catalog, strict);
	if (rc == 0 && strict)
		rc = ctl_catalog_sync(cli->catalog);
	ctl_catalog_set_store(cli->catalog, NULL);
	if (rc < 0)
		return EXIT_FAIL;
	cli->registry_down = !ctl_catalog_reachable(cli->catalog);
	cli->snap = ctl_catalog_snap(cli->catalog);
	names = ctl_snap_projects(cli->snap, &n);
	parts = calloc(n ? n : 1, sizeof(*parts));
	if (!parts)
		return EXIT_FAIL;
	for (size_t i = 0; i < n; i++)
		parts[i] = ctl_snap_project(cli->snap, names[i]);
	rc = pol_registry_merge(parts, n, reg);
	free(parts);
	if (rc < 0) {
		fprintf(stderr, "artifactfs: %s\n", af_strerror(rc));
		return EXIT_FAIL;
	}
	*pol = ctl_snap_policy(cli->snap);
	return 0;
}

void cli_release(struct cli *cli)
{
	ctl_snap_put(cli->snap);
	cli->snap = NULL;
	ctl_catalog_free(cli->catalog);
	cli->catalog = NULL;
}

int cli_parse_ref(const char *ref, struct cli_ref *out, char *err,
		  size_t errlen)
{
	const char *slash = strchr(ref, '/');
	const char *at = strrchr(ref, '@');
	size_t plen, nlen;
	char derr[256];

	memset(out, 0, sizeof(*out));
	if (!slash || !at || at < slash) {
		snprintf(err, errlen, "%s: expected project/name@digest or project/name@channel", ref);
		return -EINVAL;
	}
	plen = (size_t)(slash - ref);
	nlen = (size_t)(at - slash - 1);
	if (plen == 0 || plen >= sizeof(out->project) || nlen == 0 ||
	    nlen >= sizeof(out->name)) {
		snprintf(err, errlen, "%s: bad project or name", ref);
		return -EINVAL;
	}
	memcpy(out->project, ref, plen);
	memcpy(out->name, slash + 1, nlen);
	if (!pol_project_valid(out->project)) {
		snprintf(err, errlen, "%s: bad project name (want [a-z0-9][a-z0-9-]*)", ref);
		return -EINVAL;
	}
	if (!pol_name_valid(out->name)) {
		snprintf(err, errlen, "%s: bad artifact name", ref);
		return -EINVAL;
	}
	if (strchr(at + 1, ':')) {
		if (pol_digest_parse(at + 1, &out->digest, derr, sizeof(derr)) < 0) {
			snprintf(err, errlen, "%s: %s", ref, derr);
			return -EINVAL;
		}
		out->has_digest = true;
		return 0;
	}
	if (!pol_channel_valid(at + 1) ||
	    strlen(at + 1) >= sizeof(out->channel)) {
		snprintf(err, errlen, "%s: bad channel name (want [a-z0-9-]+)", ref);
		return -EINVAL;
	}
	memcpy(out->channel, at + 1, strlen(at + 1) + 1);
	return 0;
}

/* Whether project/name has any record, and any that claims channel. */
static void name_claims(const struct pol_registry *reg, const char *project,
			const char *name, const char *channel, bool *named,
			bool *claimed)
{
	size_t first = 0, n = pol_registry_project_range(reg, project, &first);

	*named = *claimed = false;
	for (size_t i = first; i < first + n; i++) {
		const struct pol_registration *r = pol_registry_at(reg, i);

		if (strcmp(r->name, name) != 0)
			continue;
		*named = true;
		if (pol_registration_has_channel(r, channel))
			*claimed = true;
	}
}

const struct pol_registration *cli_resolve_ref(const struct pol_registry *reg,
					       const struct pol_policy *pol,
					       const char *ref, char *err,
					       size_t errlen)
{
	const struct pol_registration *r;
	struct cli_ref cr;
	bool named, claimed;

	if (cli_parse_ref(ref, &cr, err, errlen) < 0)
		return NULL;
	if (cr.has_digest) {
		r = pol_registry_find(reg, cr.project, cr.name, cr.digest.str);
		if (!r)
			snprintf(err, errlen, "%s: not registered", ref);
		return r;
	}
	r = pol_registry_channel(reg, pol, cr.project, cr.name, cr.channel,
				 NULL);
	if (r)
		return r;
	/* Say which part is missing (DESIGN §7: a channel no readable record claims does not exist). */
	name_claims(reg, cr.project, cr.name, cr.channel, &named, &claimed);
	if (!named)
		snprintf(err, errlen, "%s: not registered (no record of %s/%s)",
			 ref, cr.project, cr.name);
	else if (claimed)
		snprintf(err, errlen,
			 "%s: no readable record claims channel %s (policy denies the records that do)",
			 ref, cr.channel);
	else
		snprintf(err, errlen, "%s: no record claims channel %s", ref,
			 cr.channel);
	return NULL;
}

int cli_run_as(struct cli *cli)
{
	uid_t uid;
	gid_t gid;
	int rc;

	if (!cli->cfg.run_as || geteuid() != 0)
		return 0;
	if (privsep_lookup_user(cli->cfg.run_as, &uid, &gid) < 0) {
		fprintf(stderr, "artifactfs: [daemon] run_as: no such user \"%s\"\n",
			cli->cfg.run_as);
		return EXIT_FAIL;
	}
	rc = privsep_own_tree(cli->cfg.cache_dir, uid, gid);
	if (rc < 0) {
		fprintf(stderr, "artifactfs: cache %s: cannot hand it to %s: %s\n",
			cli->cfg.cache_dir, cli->cfg.run_as, af_strerror(rc));
		return EXIT_FAIL;
	}
	return privsep_drop(uid, gid) < 0 ? EXIT_FAIL : 0;
}

char *cli_human_size(unsigned long long n, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", n);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

const char *cli_mountpoint_arg(const char *cmd, int argc, char **argv,
			       const char *usage)
{
	if (optind == argc - 1)
		return argv[optind];
	fprintf(stderr, "artifactfs %s: %s\n\n", cmd,
		optind >= argc ? "missing MOUNTPOINT" : "too many arguments");
	fputs(usage, stderr);
	return NULL;
}
