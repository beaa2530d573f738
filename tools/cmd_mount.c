/*
 * cmd_mount.c - artifactfs mount [-c FILE] [-f] [-o FUSEOPTS] MOUNTPOINT
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../fs/fs.h"
#include "../policy/af.h"
#include "cli.h"
#include "daemon.h"

static const char mount_usage[] =
	"usage: artifactfs mount [-c FILE] [-f] [-o FUSEOPTS] [-d] MOUNTPOINT\n"
	"\n"
	"Mounts the artifacts read-only (always with default_permissions and\n"
	"allow_other). SIGTERM or SIGINT unmount cleanly; SIGHUP reloads the\n"
	"registry and the policy.\n"
	"\n"
	"  -c, --config FILE   config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  -f, --foreground    stay in the foreground (for systemd)\n"
	"  -o OPTS             extra FUSE mount options, comma-separated\n"
	"  -d, --debug         libfuse debug output (implies -f)\n"
	"  --log-format F      text or json messages on stderr\n";

int cmd_mount(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct fs_mount_opts opts;
	struct stat sb;
	int c, rc;

	memset(&opts, 0, sizeof(opts));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:fo:dh", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli->config_path = optarg;
			break;
		case 'f':
			opts.foreground = true;
			break;
		case 'o':
			opts.fuse_opts = optarg;
			break;
		case 'd':
			opts.debug = true;
			opts.foreground = true;
			break;
		case 'J':
			cli->json = true;
			break;
		case 'h':
			fputs(mount_usage, stdout);
			return EXIT_OK;
		default:
			fputs(mount_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "artifactfs mount: %s\n\n",
			optind >= argc ? "missing MOUNTPOINT" : "too many arguments");
		fputs(mount_usage, stderr);
		return EXIT_USAGE;
	}
	opts.mountpoint = argv[optind];
	if (stat(opts.mountpoint, &sb) < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "artifactfs mount: mount point %s does not exist (create it first)\n",
				opts.mountpoint);
		else
			fprintf(stderr, "artifactfs mount: mount point %s: %s\n",
				opts.mountpoint, strerror(errno));
		return EXIT_FAIL;
	}
	if (!S_ISDIR(sb.st_mode)) {
		fprintf(stderr, "artifactfs mount: mount point %s is not a directory\n",
			opts.mountpoint);
		return EXIT_FAIL;
	}
	if (cli_load_config(cli))
		return EXIT_FAIL;
	if (!opts.foreground)
		af_log_setup(af_log_get_level(), AF_LOG_TEXT, true);
	rc = daemon_run(&cli->cfg, &opts);
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}
