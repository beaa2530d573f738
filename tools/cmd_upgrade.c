/*
 * cmd_upgrade.c - artifactfs upgrade [-c FILE] [-f] MOUNTPOINT (DESIGN
 * §13): this binary takes over the running daemon of MOUNTPOINT (its FUSE
 * connection and the state the kernel holds references to) and serves on;
 * the old daemon exits. Readers see no error. See tools/upgrade.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fs/fs.h"
#include "../policy/af.h"
#include "cli.h"
#include "daemon.h"
#include "upgrade.h"

static const char upgrade_usage[] =
	"usage: artifactfs upgrade [-c FILE] [-f] MOUNTPOINT\n"
	"\n"
	"Hands the running mount at MOUNTPOINT over to this binary, without\n"
	"unmounting: open files, mappings, inode numbers and opens waiting for\n"
	"a fetch carry over, and the fetch resumes. The old daemon exits. Run\n"
	"as root (the control socket is root's). Exit 0 once the new daemon\n"
	"serves; 1 when the hand-over did not happen (the old daemon serves on,\n"
	"and the reason is printed); 2 for a usage error.\n"
	"\n"
	"  -c, --config FILE   config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  -f, --foreground    the new daemon stays in the foreground\n"
	"  --log-format F      text or json messages (default: [log] format)\n"
	"  -h, --help          this help\n";

int cmd_upgrade(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon_adopt adopt = { .sock = -1 };
	struct fs_mount_opts opts;
	json_t *hello;
	char path[256];
	int c, rc, type;

	memset(&opts, 0, sizeof(opts));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:fh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli->config_path = optarg;
			break;
		case 'f':
			opts.foreground = true;
			break;
		case 'h':
			fputs(upgrade_usage, stdout);
			return EXIT_OK;
		default:
			fputs(upgrade_usage, stderr);
			return EXIT_USAGE;
		}
	}
	opts.mountpoint = cli_mountpoint_arg("upgrade", argc, argv, upgrade_usage);
	if (!opts.mountpoint)
		return EXIT_USAGE;
	if (cli_load_config(cli))
		return EXIT_FAIL;
	if (geteuid() != 0) {
		fprintf(stderr, "artifactfs upgrade: must run as root (the control socket is root's)\n");
		return EXIT_FAIL;
	}
	rc = upgrade_sock_path(&cli->cfg, opts.mountpoint, path, sizeof(path));
	if (rc == 0)
		rc = upgrade_connect(path);
	if (rc < 0) {
		fprintf(stderr,
			"artifactfs upgrade: %s: no daemon answers on %s (%s): is it mounted by artifactfs with this config?\n",
			opts.mountpoint, path, af_strerror(rc));
		return EXIT_FAIL;
	}
	adopt.sock = rc;
	{
		int v = UPGRADE_VERSION, min = UPGRADE_MIN_VERSION;
#ifdef AF_TEST_HOOKS
		/* Test builds: play a binary of another hand-over version. */
		const char *tv = getenv("AF_UPGRADE_TEST_VERSION");

		if (tv)
			v = min = (int)strtol(tv, NULL, 10);
#endif
		hello = json_pack("{s:i, s:i}", "version", v, "min_version",
				  min);
	}
	rc = hello ? upgrade_send(adopt.sock, UPGRADE_HELLO, hello, NULL, 0) :
		     -ENOMEM;
	json_decref(hello);
	if (rc == 0) {
		/* The old daemon finishes what it is answering first. */
		type = upgrade_recv(adopt.sock, UPGRADE_READY_TIMEOUT_S,
				    &adopt.state, &adopt.fds, &adopt.nfds);
		rc = type;
	}
	if (rc == UPGRADE_REFUSE) {
		const char *why = json_string_value(json_object_get(adopt.state,
								   "reason"));

		fprintf(stderr, "artifactfs upgrade: refused: %s\n",
			why ? why : "no reason given");
		rc = -EPERM;
	} else if (rc > 0 && (rc != UPGRADE_STATE || !adopt.state ||
			      json_integer_value(json_object_get(adopt.state,
							"version")) != UPGRADE_VERSION)) {
		fprintf(stderr, "artifactfs upgrade: the running daemon answered an unexpected frame\n");
		rc = -EPROTO;
	} else if (rc <= 0) {
		fprintf(stderr, "artifactfs upgrade: no state from the running daemon: %s\n",
			rc == 0 ? "it closed the connection" : af_strerror(rc));
		rc = rc ? rc : -EPIPE;
	} else {
		rc = daemon_run(&cli->cfg, &opts, &adopt);
	}
	if (adopt.sock >= 0)
		close(adopt.sock);
	json_decref(adopt.state);
	upgrade_close_fds(adopt.fds, adopt.nfds);
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}
