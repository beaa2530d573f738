/*
 * cmd_mount.c - artifactfs mount [-c FILE] [-f] [-o FUSEOPTS] MOUNTPOINT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
	"allow_other). Without -f the command returns once the mount answers\n"
	"(exit 0), or fails with the daemon's error (exit 1); the daemon then\n"
	"logs to [log] file, or syslog. SIGTERM or SIGINT unmount cleanly;\n"
	"SIGHUP reloads the registry and the policy and reopens [log] file.\n"
	"Under systemd (NOTIFY_SOCKET) it reports READY=1 once the mount\n"
	"answers, STATUS= lines and STOPPING=1.\n"
	"\n"
	"  -c, --config FILE   config file (default " POL_CONFIG_DEFAULT_PATH ")\n"
	"  -f, --foreground    stay in the foreground (for systemd)\n"
	"  -o FUSEOPTS         extra FUSE mount options, comma-separated\n"
	"  -d, --debug         libfuse debug output (implies -f)\n"
	"  --log-format F      text or json messages (default: [log] format)\n"
	"  -h, --help          this help\n";

/*
 * True when path is the root of a mount (something is mounted on it):
 * statx's STATX_ATTR_MOUNT_ROOT, else a device that differs from the
 * parent's (a bind mount of a folder on itself escapes that fallback).
 */
static bool is_mount_root(const char *path, const struct stat *sb)
{
	char parent[4096];
	struct stat psb;
#ifdef STATX_ATTR_MOUNT_ROOT
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_TYPE, &stx) == 0 &&
	    (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
#endif
	if ((size_t)snprintf(parent, sizeof(parent), "%s/..", path) >=
	    sizeof(parent) || stat(parent, &psb) < 0)
		return false;
	return psb.st_dev != sb->st_dev;
}

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
	char mp[PATH_MAX];
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
	opts.mountpoint = cli_mountpoint_arg("mount", argc, argv, mount_usage);
	if (!opts.mountpoint)
		return EXIT_USAGE;
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
	/* DESIGN §7: two daemons never stack on one mount point. */
	if (is_mount_root(opts.mountpoint, &sb)) {
		fprintf(stderr, "artifactfs mount: %s already holds a mount (another artifactfs daemon?): refusing to mount on top of it; unmount it first\n",
			opts.mountpoint);
		return EXIT_FAIL;
	}
	/* Absolute: the daemon works from / (the probe, the final unmount). */
	if (!realpath(opts.mountpoint, mp)) {
		fprintf(stderr, "artifactfs mount: mount point %s: %s\n",
			opts.mountpoint, strerror(errno));
		return EXIT_FAIL;
	}
	opts.mountpoint = mp;
	if (cli_load_config(cli))
		return EXIT_FAIL;
	/*
	 * The daemon's messages (DESIGN §10 [log]): the format from
	 * --log-format, else [log] format; on stderr until a detached
	 * daemon's command returns, then in [log] file, or syslog without
	 * one. A log file gets every line, in the foreground too.
	 */
	af_log_setup(af_log_get_level(),
		     !cli->log_format_given && cli->cfg.log_format_set ?
		     cli->cfg.log_format : af_log_get_format(),
		     !opts.foreground && !cli->cfg.log_file);
	rc = daemon_run(&cli->cfg, &opts, NULL);
	return rc < 0 ? EXIT_FAIL : EXIT_OK;
}
