/*
 * cli.h - shared by the artifactfs subcommands (tools/).
 */
#ifndef TOOLS_CLI_H
#define TOOLS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "../policy/config.h"
#include "../policy/policy.h"

/* Exit codes (DESIGN §9). */
#define EXIT_OK		0
#define EXIT_FAIL	1
#define EXIT_USAGE	2

struct cache;
struct ctl_catalog;
struct ctl_snap;

struct cli {
	const char *config_path;	/* -c, default POL_CONFIG_DEFAULT_PATH */
	bool json;			/* --json */
	bool log_format_given;		/* --log-format (wins over [log] format) */
	struct pol_config cfg;		/* loaded by cli_load_config */
	bool cfg_loaded;
	/* cli_load_registry: what it loaded with; freed by cli_release. */
	struct ctl_catalog *catalog;
	struct ctl_snap *snap;
	bool registry_down;		/* the control plane could not be read */
};

/* Loads cli->config_path into cli->cfg; prints the error. 0 or EXIT_FAIL. */
int cli_load_config(struct cli *cli);

/*
 * Loads the registrations and the policy as the daemon does (the catalog,
 * control/): from registry.dir and policy.file, or from the control plane
 * (registry.url, DESIGN §3), with store (may be NULL) holding its answers
 * kept for an outage. *reg gets one registry with every project's records
 * (caller frees); *pol the policy (NULL when none: everything denied),
 * valid until cli_release. Problems go to problem(arg, msg), or are
 * printed as warnings when problem is NULL and verbose. strict: a policy
 * file that cannot be loaded is a failure (else it is reported and the
 * registrations still load). cli->registry_down says whether the control
 * plane could not be read. Returns 0 or EXIT_FAIL.
 */
typedef void (*cli_problem_fn)(void *arg, const char *msg);
int cli_load_registry(struct cli *cli, struct cache *store, bool strict,
		      cli_problem_fn problem, void *arg, bool verbose,
		      struct pol_registry **reg,
		      const struct pol_policy **pol);
/* Frees what cli_load_registry kept. */
void cli_release(struct cli *cli);

/* A REF split into its parts (DESIGN §9). */
struct cli_ref {
	char project[64];
	char name[256];
	bool has_digest;
	struct pol_digest digest;	/* when has_digest */
	char channel[64];		/* otherwise */
};

/*
 * Checks the form of REF ("project/name@algo:hex" or
 * "project/name@channel", each part valid per DESIGN §2) and splits it
 * into *out. Returns 0, or -EINVAL with a message naming REF in err (a
 * usage error: nothing was looked up).
 */
int cli_parse_ref(const char *ref, struct cli_ref *out, char *err,
		  size_t errlen);

/*
 * Resolves REF ("project/name@digest" or "project/name@channel") to a
 * registration in reg. Returns it (owned by reg) or NULL with a message in
 * err that names REF and what is missing: a malformed REF, no record of
 * project/name, or no (readable) record claiming the channel.
 */
const struct pol_registration *cli_resolve_ref(const struct pol_registry *reg,
					       const struct pol_policy *pol,
					       const char *ref, char *err,
					       size_t errlen);

/*
 * With [daemon] run_as set and started as root, becomes that user for
 * good (the cache belongs to it, DESIGN §13), after handing it the cache
 * folder: files a root command made would lock the daemon out. Call after
 * opening what needs root (the audit log) and before the cache. Prints
 * the error. Returns 0 or EXIT_FAIL.
 */
int cli_run_as(struct cli *cli);

/*
 * The one MOUNTPOINT operand of "artifactfs <cmd>" after getopt: returns
 * it, or prints what is wrong and usage to stderr and returns NULL.
 */
const char *cli_mountpoint_arg(const char *cmd, int argc, char **argv,
			       const char *usage);

/* Formats a byte count as "1.5 GiB" into buf. Returns buf. */
char *cli_human_size(unsigned long long n, char *buf, size_t len);

int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_check(struct cli *cli, int argc, char **argv);
int cmd_prefetch(struct cli *cli, int argc, char **argv);
int cmd_cache(struct cli *cli, int argc, char **argv);
int cmd_upgrade(struct cli *cli, int argc, char **argv);

#endif
