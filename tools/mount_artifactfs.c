/*
 * mount_artifactfs.c - mount.artifactfs, the helper mount(8) runs for
 * fstype "artifactfs" so /etc/fstab and systemd .mount units work:
 *
 *   mount.artifactfs SPEC MOUNTPOINT [-sfnv] [-o OPTIONS]
 *
 * SPEC is the config file path (or "artifactfs" for the default config).
 * OPTIONS may carry config=FILE; options only mount(8) or systemd care
 * about (defaults, auto, noauto, nofail, _netdev, x-*, comment=*, rw, ro,
 * user, users, nouser) are dropped; the rest go to FUSE. It execs
 * "artifactfs mount -c CONFIG [-o OPTS] MOUNTPOINT", which daemonizes once
 * the mount is up.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef AF_BINDIR
#define AF_BINDIR "/usr/local/bin"
#endif

#define DEFAULT_CONFIG "/etc/artifactfs/artifactfs.conf"

static bool dropped(const char *opt)
{
	static const char *const exact[] = {
		"defaults", "auto", "noauto", "nofail", "_netdev", "rw", "ro",
		"user", "users", "nouser", "owner", "group", "dev", "nodev",
		"suid", "nosuid", "exec", "noexec",
	};

	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strcmp(opt, exact[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

int main(int argc, char **argv)
{
	const char *config = DEFAULT_CONFIG, *spec, *dir;
	char fuse_opts[2048] = "", exe[4096], config_buf[4096];
	size_t flen = 0;
	bool verbose = false, fake = false;
	char *args[12];
	int n = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: mount.artifactfs SPEC MOUNTPOINT [-sfnv] [-o OPTIONS]\n");
		return 2;
	}
	spec = argv[1];
	dir = argv[2];
	if (strcmp(spec, "artifactfs") != 0 && strchr(spec, '/'))
		config = spec;
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			char *opts = strdup(argv[++i]), *save = NULL;

			if (!opts)
				return 1;
			for (char *o = strtok_r(opts, ",", &save); o;
			     o = strtok_r(NULL, ",", &save)) {
				int w;

				if (strncmp(o, "config=", 7) == 0) {
					snprintf(config_buf, sizeof(config_buf), "%s", o + 7);
					config = config_buf;
					continue;
				}
				if (dropped(o))
					continue;
				w = snprintf(fuse_opts + flen, sizeof(fuse_opts) - flen,
					     "%s%s", flen ? "," : "", o);
				if (w < 0 || (size_t)w >= sizeof(fuse_opts) - flen) {
					fprintf(stderr, "mount.artifactfs: options too long\n");
					free(opts);
					return 1;
				}
				flen += (size_t)w;
			}
			free(opts);
		} else if (strcmp(argv[i], "-v") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "-f") == 0) {
			fake = true;
		} else if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "-n") == 0) {
			/* sloppy / no mtab: nothing to do */
		} else {
			fprintf(stderr, "mount.artifactfs: unknown argument \"%s\"\n", argv[i]);
			return 2;
		}
	}
	snprintf(exe, sizeof(exe), "%s/artifactfs", AF_BINDIR);
	if (access(exe, X_OK) != 0)
		snprintf(exe, sizeof(exe), "artifactfs");
	args[n++] = exe;
	args[n++] = "mount";
	args[n++] = "-c";
	args[n++] = (char *)config;
	if (flen) {
		args[n++] = "-o";
		args[n++] = fuse_opts;
	}
	args[n++] = (char *)dir;
	args[n] = NULL;
	if (verbose || fake) {
		for (int i = 0; i < n; i++)
			fprintf(stderr, "%s%s", i ? " " : "", args[i]);
		fputc('\n', stderr);
	}
	if (fake)
		return 0;
	execvp(exe, args);
	fprintf(stderr, "mount.artifactfs: cannot run %s: %s\n", exe, strerror(errno));
	return 1;
}
