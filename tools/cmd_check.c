/*
 * cmd_check.c - artifactfs check [-c FILE] [--json]: validates the config,
 * the policy and every registration and lists every problem. Exit 0 when
 * there is none, 1 otherwise. Policy denials are reported as notes (they
 * are decisions, not errors); channel ties and unknown registration fields
 * as warnings (the record is valid, but probably not what was meant). A
 * record that claims trust_state attested without evidence that verifies
 * (DESIGN §12) is an error: the claim is false on this node, whatever the
 * minimum. Every problem of credentials.dir and credentials.helper
 * (DESIGN §5) is an error, named by file, never showing a secret.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <time.h>

#include "../policy/af.h"
#include "../sources/source.h"
#include "cli.h"

static const char check_usage[] =
	"usage: artifactfs check [-c FILE] [--json]\n"
	"\n"
	"Validates the config file, the policy and every registration, and lists\n"
	"the problems found (file, field, line), then a summary line. Exit 0 when\n"
	"there is none.\n"
	"\n"
	"  -c, --config FILE   config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  --json              one JSON object per problem, then a summary object\n"
	"  -h, --help          this help\n";

struct check_state {
	struct cli *cli;
	unsigned errors;
	unsigned warnings;
	unsigned notes;
};

/* Prints o as one compact JSON line and releases it (NULL: nothing). */
static void print_json(json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

static void emit(struct check_state *st, const char *level, const char *msg)
{
	if (strcmp(level, "error") == 0)
		st->errors++;
	else if (strcmp(level, "warning") == 0)
		st->warnings++;
	else
		st->notes++;
	if (st->cli->json) {
		json_t *o = json_pack("{s:s, s:s}", "level", level, "message", msg);
		print_json(o);
		return;
	}
	printf("%s: %s\n", level, msg);
}

/*
 * The last line, also when all is well: text "N registrations, E errors,
 * K notes"; with --json one object {"level":"summary", …} so a script
 * reading the lines knows the run ended and what it found.
 */
static void on_cred_problem(void *arg, const char *level, const char *msg)
{
	emit(arg, level, msg);
}

static void emit_summary(struct check_state *st, size_t registrations)
{
	if (st->cli->json) {
		json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:b}",
				      "level", "summary", "registrations",
				      (json_int_t)registrations, "errors",
				      (json_int_t)st->errors, "warnings",
				      (json_int_t)st->warnings, "notes",
				      (json_int_t)st->notes, "ok",
				      st->errors == 0);
		print_json(o);
		return;
	}
	printf("%zu registrations, %u errors, %u warnings, %u notes\n",
	       registrations, st->errors, st->warnings, st->notes);
}

static void on_registry_problem(void *arg, const char *msg)
{
	emit(arg, "error", msg);
}

/*
 * DESIGN §7: a tie on registered_at between records claiming one channel
 * is resolved (larger digest) but reported. Among every valid record,
 * whatever the policy says: a tie that policy hides today shows up the day
 * it allows both. Reported once, at the record that wins.
 */
static void check_channel_tie(struct check_state *st,
			      const struct pol_registry *reg,
			      const struct pol_registration *r,
			      const char *channel)
{
	const struct pol_registration *best = NULL;
	char msg[1400], others[900] = "";
	size_t first = 0, n, tied = 0;

	n = pol_registry_project_range(reg, r->project, &first);
	for (size_t i = first; i < first + n; i++) {
		const struct pol_registration *o = pol_registry_at(reg, i);

		if (strcmp(o->name, r->name) != 0 ||
		    !pol_registration_has_channel(o, channel))
			continue;
		if (!best || o->registered_at_s > best->registered_at_s ||
		    (o->registered_at_s == best->registered_at_s &&
		     strcmp(o->digest.str, best->digest.str) > 0))
			best = o;
	}
	if (best != r)
		return;
	for (size_t i = first; i < first + n; i++) {
		const struct pol_registration *o = pol_registry_at(reg, i);
		size_t used = strlen(others);

		if (o == r || strcmp(o->name, r->name) != 0 ||
		    !pol_registration_has_channel(o, channel) ||
		    o->registered_at_s != r->registered_at_s)
			continue;
		tied++;
		if (used + 1 < sizeof(others))
			snprintf(others + used, sizeof(others) - used, "%s%s (%s)",
				 used ? ", " : "", o->digest.str, o->origin);
	}
	if (!tied)
		return;
	snprintf(msg, sizeof(msg),
		 "%s/%s@%s: channel tie on registered_at (%s) between %s (%s) and %s; %s wins (larger digest)",
		 r->project, r->name, channel,
		 r->registered_at ? r->registered_at : "absent", r->digest.str,
		 r->origin, others, r->digest.str);
	emit(st, "warning", msg);
}

/* cache.dir must be a directory, or not exist yet (mount creates it). */
static void check_cache_dir(struct check_state *st, const char *dir)
{
	char msg[1400];
	struct stat sb;

	if (!dir || stat(dir, &sb) < 0)
		return;
	if (S_ISDIR(sb.st_mode))
		return;
	snprintf(msg, sizeof(msg), "cache.dir: %s exists and is not a directory",
		 dir);
	emit(st, "error", msg);
}

int cmd_check(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct check_state st = { .cli = cli };
	struct pol_registry *reg = NULL;
	struct pol_policy *file_pol = NULL;
	const struct pol_policy *pol = NULL;
	char err[1024], msg[1400];
	struct stat sb;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli->config_path = optarg;
			break;
		case 'J':
			cli->json = true;
			break;
		case 'h':
			fputs(check_usage, stdout);
			return EXIT_OK;
		default:
			fputs(check_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "artifactfs check: unexpected argument \"%s\"\n", argv[optind]);
		return EXIT_USAGE;
	}

	rc = pol_config_load(cli->config_path, &cli->cfg, err, sizeof(err));
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "%s", err);
		emit(&st, "error", msg);
		emit_summary(&st, 0);
		return EXIT_FAIL;
	}
	cli->cfg_loaded = true;
	check_cache_dir(&st, cli->cfg.cache_dir);

	if (!cli->cfg.run_as)
		emit(&st, "warning",
		     "[daemon] run_as is not set: the daemon would run as root with every capability, parsing network input (DESIGN §13)");
	src_cred_check(&cli->cfg, (long long)time(NULL), on_cred_problem, &st);
	if (!cli->cfg.policy_file && !cli->cfg.registry_url) {
		emit(&st, "note", "no [policy] file: every open is denied (fail closed)");
	} else if (cli->cfg.policy_file) {
		rc = pol_policy_load(cli->cfg.policy_file, &file_pol, err,
				     sizeof(err));
		if (rc < 0) {
			if (rc == AF_EPARSE)
				snprintf(msg, sizeof(msg), "%s", err);
			else
				snprintf(msg, sizeof(msg), "%s: %s",
					 cli->cfg.policy_file, af_strerror(rc));
			emit(&st, "error", msg);
		}
		pol_policy_free(file_pol);
	}

	if (!cli->cfg.registry_url &&
	    (stat(cli->cfg.registry_dir, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
		snprintf(msg, sizeof(msg), "%s: registry dir is not a readable directory",
			 cli->cfg.registry_dir);
		emit(&st, "error", msg);
	}
	/* As the daemon loads them (the catalog): files or the control plane. */
	if (cli_load_registry(cli, NULL, false, on_registry_problem, &st,
			      false, &reg, &pol)) {
		emit_summary(&st, 0);
		return EXIT_FAIL;
	}
	if (cli->registry_down) {
		snprintf(msg, sizeof(msg),
			 "registry.url: the control plane %s could not be read (see the message above)",
			 cli->cfg.registry_url);
		emit(&st, "error", msg);
	} else if (cli->cfg.registry_url && !cli->cfg.policy_file && !pol) {
		emit(&st, "error",
		     "the control plane gives no valid policy (/v1/policy): every open is denied (fail closed)");
	}

	/* Each envelope checked once, as the daemon does at load. */
	pol_registry_attest(reg, pol, NULL);
	for (size_t i = 0; i < pol_registry_count(reg); i++) {
		const struct pol_registration *r = pol_registry_at(reg, i);
		struct pol_attest_result ar;
		char reason[512];

		if (pol && r->trust == POL_TRUST_ATTESTED) {
			pol_attest_get(pol, r, &ar);
			if (ar.status != POL_ATTEST_VERIFIED) {
				snprintf(msg, sizeof(msg),
					 "%s: %s/%s@%s: trust_state attested, but the attestation does not verify: %s",
					 r->origin, r->project, r->name,
					 r->digest.str, ar.text);
				emit(&st, "error", msg);
			}
		}
		if (pol && pol_policy_decide(pol, r, reason, sizeof(reason)) < 0) {
			snprintf(msg, sizeof(msg), "%s: %s/%s@%s: denied: %s", r->origin,
				 r->project, r->name, r->digest.str, reason);
			emit(&st, "note", msg);
		}
		if (pol_registration_unknown_fields(r, reason, sizeof(reason))) {
			snprintf(msg, sizeof(msg),
				 "%s: %s/%s@%s: unknown field(s) %s (accepted, ignored)",
				 r->origin, r->project, r->name, r->digest.str,
				 reason);
			emit(&st, "warning", msg);
		}
		/* DESIGN §5b: artifact_store has no default endpoint. */
		if (r->source_type == POL_SRC_ARTIFACT_STORE &&
		    !cli->cfg.artifact_store_endpoint) {
			snprintf(msg, sizeof(msg),
				 "%s: %s/%s@%s: an artifact_store source needs [artifact_store] endpoint (there is no default)",
				 r->origin, r->project, r->name, r->digest.str);
			emit(&st, "error", msg);
		}
		for (size_t k = 0; k < r->n_channels; k++)
			check_channel_tie(&st, reg, r, r->channels[k]);
	}
	emit_summary(&st, pol_registry_count(reg));
	pol_registry_free(reg);
	return st.errors ? EXIT_FAIL : EXIT_OK;
}
