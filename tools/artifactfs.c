/*
 * artifactfs.c - the command (DESIGN §9): one binary, subcommands mount,
 * prefetch, cache and check. Options may stand before or after the
 * subcommand word: the word is found first, then every other argument is
 * parsed by the subcommand.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../policy/af.h"
#include "cli.h"

static const char usage_text[] =
	"usage: artifactfs [-c FILE] [--json] COMMAND [ARGS]\n"
	"\n"
	"Verified blob artifacts as read-only files at\n"
	"<mountpoint>/<project>/<name>@<algo>:<hex>.\n"
	"\n"
	"commands:\n"
	"  mount [-f] [-o FUSEOPTS] MOUNTPOINT   serve the artifacts (SIGHUP reloads)\n"
	"  prefetch [-j N] [-f LISTFILE] REF...  fetch and verify into the cache\n"
	"  cache ls | stats | evict | verify | gc   inspect and manage the cache\n"
	"  check                                 validate config, policy, registrations\n"
	"  upgrade [-f] MOUNTPOINT               hand a running mount over to this binary\n"
	"\n"
	"options:\n"
	"  -c, --config FILE   config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  --json              machine output: one JSON object per line\n"
	"  --log-format F      text (default) or json, for messages on stderr\n"
	"  -v, --verbose       more messages\n"
	"  -h, --help          this help; 'artifactfs COMMAND --help' for a command\n"
	"  --version           print the version\n"
	"\n"
	"exit status: 0 success, 1 failure, 2 usage error\n";

#ifndef AF_VERSION
#define AF_VERSION "0.1.0"
#endif

static const char *const commands[] = { "mount", "prefetch", "cache", "check",
					"upgrade" };

/* Options that take a value, so the word after them is not the command. */
static bool takes_value(const char *opt)
{
	static const char *const with_value[] = {
		"-c", "--config", "-o", "-j", "--log-format", "--to",
		"--older-than",
	};

	for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
		if (strcmp(opt, with_value[i]) == 0)
			return true;
	return false;
}

static int find_command(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return -1;
		if (argv[i][0] == '-') {
			if (takes_value(argv[i]))
				i++;
			continue;
		}
		for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
			if (strcmp(argv[i], commands[k]) == 0)
				return i;
		return -1;	/* the first word is not a command */
	}
	return -1;
}

/*
 * Handles --log-format and -v wherever they stand; removes them from argv.
 * A format given here wins over [log] format (cli->log_format_given).
 */
static int take_log_options(struct cli *cli, int *argc, char **argv)
{
	enum af_log_format fmt = AF_LOG_TEXT;
	enum af_log_level lvl = AF_LOG_INFO;
	int out = 1;

	for (int i = 1; i < *argc; i++) {
		const char *v = NULL;

		if (strcmp(argv[i], "--log-format") == 0 && i + 1 < *argc)
			v = argv[++i];
		else if (strncmp(argv[i], "--log-format=", 13) == 0)
			v = argv[i] + 13;
		if (v) {
			if (strcmp(v, "json") == 0) {
				fmt = AF_LOG_JSON;
			} else if (strcmp(v, "text") == 0) {
				fmt = AF_LOG_TEXT;
			} else {
				fprintf(stderr, "artifactfs: --log-format: expected text or json, got \"%s\"\n", v);
				return EXIT_USAGE;
			}
			cli->log_format_given = true;
			continue;
		}
		if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
			lvl = AF_LOG_DEBUG;
			continue;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	*argc = out;
	af_log_setup(lvl, fmt, false);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli cli;
	int cmd, rc;
	char *sub;

	memset(&cli, 0, sizeof(cli));
	cli.config_path = POL_CONFIG_DEFAULT_PATH;
	rc = take_log_options(&cli, &argc, argv);
	if (rc)
		return rc;

	cmd = find_command(argc, argv);
	if (cmd < 0) {
		for (int i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--version") == 0) {
				printf("artifactfs %s%s\n", AF_VERSION,
				       AF_HAVE_HOOKS ? " (test hooks)" : "");
				return EXIT_OK;
			}
			if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
				fputs(usage_text, stdout);
				return EXIT_OK;
			}
		}
		for (int i = 1; i < argc; i++) {
			if (argv[i][0] != '-') {
				fprintf(stderr, "artifactfs: unknown command \"%s\"\n\n", argv[i]);
				break;
			}
		}
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}

	/* Move the command word to argv[0]; the rest keeps its order. */
	sub = argv[cmd];
	memmove(&argv[cmd], &argv[cmd + 1], (size_t)(argc - cmd) * sizeof(*argv));
	argv[0] = sub;
	argc--;

	if (strcmp(sub, "mount") == 0)
		rc = cmd_mount(&cli, argc, argv);
	else if (strcmp(sub, "check") == 0)
		rc = cmd_check(&cli, argc, argv);
	else if (strcmp(sub, "prefetch") == 0)
		rc = cmd_prefetch(&cli, argc, argv);
	else if (strcmp(sub, "upgrade") == 0)
		rc = cmd_upgrade(&cli, argc, argv);
	else
		rc = cmd_cache(&cli, argc, argv);
	cli_release(&cli);
	if (cli.cfg_loaded)
		pol_config_release(&cli.cfg);
	return rc;
}
