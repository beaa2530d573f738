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

struct cli {
	const char *config_path;	/* -c, default POL_CONFIG_DEFAULT_PATH */
	bool json;			/* --json */
	bool log_format_given;		/* --log-format (wins over [log] format) */
	struct pol_config cfg;		/* loaded by cli_load_config */
	bool cfg_loaded;
};

/* Loads cli->config_path into cli->cfg; prints the error. 0 or EXIT_FAIL. */
int cli_load_config(struct cli *cli);

/*
 * Loads the registry and the policy named by the config. Problems are
 * printed when verbose. Returns 0 or EXIT_FAIL (policy unreadable).
 */
int cli_load_registry(struct cli *cli, struct pol_registry **reg,
		      struct pol_policy **pol, bool verbose);

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
