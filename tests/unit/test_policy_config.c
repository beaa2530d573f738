/*
 * test_policy_config.c - the INI configuration (DESIGN §10).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "policy/af.h"
#include "policy/config.h"

static void test_defaults(void **state)
{
	struct pol_config c;

	(void)state;
	assert_int_equal(pol_config_init(&c), 0);
	assert_null(c.path);
	assert_string_equal(c.cache_dir, "/var/cache/artifactfs");
	assert_int_equal(c.cache_max_size, 0);
	assert_int_equal(c.chunk_size, 8 << 20);
	assert_string_equal(c.registry_dir, "/etc/artifactfs/registry");
	assert_null(c.registry_url);
	assert_null(c.registry_token_file);
	assert_int_equal(c.registry_refresh_ms, 30000);
	assert_null(c.policy_file);
	assert_null(c.credentials_dir);
	assert_null(c.credentials_helper);
	assert_int_equal(c.credentials_max_lifetime_ms, 12ULL * 3600 * 1000);
	assert_int_equal(c.fetch_connections, 8);
	assert_int_equal(c.fetch_retries, 5);
	assert_int_equal(c.connect_timeout_ms, 10000);
	assert_int_equal(c.low_speed_timeout_ms, 30000);
	assert_null(c.ca_file);
	assert_null(c.proxy);
	assert_int_equal(c.n_mirrors, 0);
	assert_string_equal(c.audit_log, "/var/log/artifactfs/audit.jsonl");
	assert_false(c.audit_syslog);
	assert_int_equal(c.passthrough, POL_PASSTHROUGH_AUTO);
	assert_null(c.log_file);
	assert_int_equal(c.log_format, AF_LOG_TEXT);
	assert_false(c.log_format_set);
	assert_null(c.metrics_listen);
	assert_int_equal(c.credentials_helper_timeout_ms, 30000);
	assert_string_equal(c.s3_region, "us-east-1");
	assert_null(c.s3_endpoint);
	assert_int_equal(c.s3_addressing, POL_S3_ADDR_DEFAULT);
	assert_null(c.gcs_endpoint);
	assert_null(c.azure_endpoint);
	assert_null(c.hf_endpoint);
	assert_null(c.artifact_store_endpoint);
	pol_config_release(&c);
	pol_config_release(&c);
}

static const char full_ini[] =
	"# artifactfs\n"
	"; comment\n"
	"[cache]\n"
	"dir = /srv/cache\n"
	"max_size = 200G\n"
	"chunk_size = 4M ; inline comment\n"
	"\n"
	"[registry]\n"
	"dir = /srv/registry\n"
	"url = https://control-plane.internal/api\n"
	"token_file = /run/artifactfs/control-plane.token\n"
	"refresh = 2m\n"
	"[policy]\n"
	"file = /srv/policy.json\n"
	"[credentials]\n"
	"dir = /run/artifactfs/credentials\n"
	"helper = /usr/libexec/artifactfs-credential-helper\n"
	"max_lifetime = 1d\n"
	"helper_timeout = 5s\n"
	"[fetch]\n"
	"connections = 16\n"
	"retries = 0\n"
	"connect_timeout = 5s\n"
	"ca_file = /etc/artifactfs/ca.pem\n"
	"low_speed_timeout = 90\n"
	"proxy = http://127.0.0.1:3128\n"
	"mirrors = https://cache-tier.internal/blobs, http://127.0.0.1:8080/v2/m/blobs/{digest}\n"
	"[audit]\n"
	"log = /srv/audit.jsonl\n"
	"syslog = yes\n"
	"[fs]\n"
	"passthrough = off\n"
	"[log]\n"
	"file = /var/log/artifactfs/artifactfs.log\n"
	"format = json\n"
	"[s3]\n"
	"region = eu-west-3\n"
	"endpoint = http://127.0.0.1:9000/\n"
	"addressing = virtual\n"
	"[gcs]\n"
	"endpoint = https://storage.googleapis.com\n"
	"[azure_blob]\n"
	"endpoint = http://127.0.0.1:10000/{account}\n"
	"[huggingface]\n"
	"endpoint = https://huggingface.co\n"
	"[artifact_store]\n"
	"endpoint = https://artifact-store.internal/api//\n"
	"[metrics]\n"
	"listen = 127.0.0.1:9464\n";

static void test_every_key(void **state)
{
	struct pol_config c;
	char err[256];

	(void)state;
	assert_int_equal(pol_config_init(&c), 0);
	if (pol_config_parse(&c, full_ini, strlen(full_ini), "a.conf", err,
			     sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.cache_dir, "/srv/cache");
	assert_int_equal(c.cache_max_size, 200ULL << 30);
	assert_int_equal(c.chunk_size, 4 << 20);
	assert_string_equal(c.registry_dir, "/srv/registry");
	assert_string_equal(c.registry_url,
			    "https://control-plane.internal/api");
	assert_string_equal(c.registry_token_file,
			    "/run/artifactfs/control-plane.token");
	assert_int_equal(c.registry_refresh_ms, 120000);
	assert_string_equal(c.policy_file, "/srv/policy.json");
	assert_string_equal(c.credentials_dir, "/run/artifactfs/credentials");
	assert_string_equal(c.credentials_helper,
			    "/usr/libexec/artifactfs-credential-helper");
	assert_int_equal(c.credentials_max_lifetime_ms, 86400000);
	assert_int_equal(c.fetch_connections, 16);
	assert_int_equal(c.fetch_retries, 0);
	assert_int_equal(c.connect_timeout_ms, 5000);
	assert_string_equal(c.ca_file, "/etc/artifactfs/ca.pem");
	assert_int_equal(c.low_speed_timeout_ms, 90000);
	assert_string_equal(c.proxy, "http://127.0.0.1:3128");
	assert_int_equal(c.n_mirrors, 2);
	assert_string_equal(c.mirrors[0], "https://cache-tier.internal/blobs");
	assert_string_equal(c.mirrors[1],
			    "http://127.0.0.1:8080/v2/m/blobs/{digest}");
	assert_string_equal(c.audit_log, "/srv/audit.jsonl");
	assert_true(c.audit_syslog);
	assert_int_equal(c.passthrough, POL_PASSTHROUGH_OFF);
	assert_string_equal(c.log_file, "/var/log/artifactfs/artifactfs.log");
	assert_int_equal(c.log_format, AF_LOG_JSON);
	assert_true(c.log_format_set);
	assert_int_equal(c.credentials_helper_timeout_ms, 5000);
	assert_string_equal(c.s3_region, "eu-west-3");
	assert_string_equal(c.s3_endpoint, "http://127.0.0.1:9000");
	assert_int_equal(c.s3_addressing, POL_S3_ADDR_VIRTUAL);
	assert_string_equal(c.gcs_endpoint, "https://storage.googleapis.com");
	assert_string_equal(c.azure_endpoint,
			    "http://127.0.0.1:10000/{account}");
	assert_string_equal(c.hf_endpoint, "https://huggingface.co");
	assert_string_equal(c.artifact_store_endpoint,
			    "https://artifact-store.internal/api");
	assert_string_equal(c.metrics_listen, "127.0.0.1:9464");
	pol_config_release(&c);
}

static void expect_error(const char *text, const char *want)
{
	struct pol_config c;
	char err[512] = "";
	int ret;

	assert_int_equal(pol_config_init(&c), 0);
	ret = pol_config_parse(&c, text, strlen(text), "a.conf", err,
			       sizeof(err));
	pol_config_release(&c);
	if (ret != AF_EPARSE || strcmp(err, want) != 0)
		fail_msg("got %d \"%s\", want \"%s\"", ret, err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("[fetch]\nconnections = 2\n\nfoo = 1\n",
		     "a.conf:4: unknown key \"foo\" in [fetch]");
	expect_error("[cache]\ndir = /x\n[fecth]\nretries = 1\n",
		     "a.conf:3: unknown section [fecth]");
	expect_error("[cache]\n[bogus]\n", "a.conf:2: unknown section [bogus]");
	expect_error("dir = /x\n", "a.conf:1: key \"dir\" outside any [section]");
	expect_error("[cache]\nchunk_size = 3M\n",
		     "a.conf:2: chunk_size: must be a power of two from 64K to 1G");
	expect_error("[cache]\nchunk_size = 32K\n",
		     "a.conf:2: chunk_size: must be a power of two from 64K to 1G");
	expect_error("[cache]\nchunk_size = 2G\n",
		     "a.conf:2: chunk_size: must be a power of two from 64K to 1G");
	expect_error("[cache]\nmax_size = lots\n",
		     "a.conf:2: max_size: not a size (a number with K, M, G or T)");
	expect_error("[cache]\nmax_size = 10X\n",
		     "a.conf:2: max_size: not a size (a number with K, M, G or T)");
	expect_error("[cache]\nmax_size = -1G\n",
		     "a.conf:2: max_size: not a size (a number with K, M, G or T)");
	expect_error("[cache]\nmax_size = 99999999999999999999\n",
		     "a.conf:2: max_size: not a size (a number with K, M, G or T)");
	expect_error("[cache]\nmax_size = 17179869184T\n",
		     "a.conf:2: max_size: not a size (a number with K, M, G or T)");
	expect_error("[registry]\nrefresh = 10y\n",
		     "a.conf:2: refresh: not a positive duration (a number with s, m, h or d)");
	expect_error("[registry]\nrefresh = 0s\n",
		     "a.conf:2: refresh: not a positive duration (a number with s, m, h or d)");
	expect_error("[registry]\nrefresh = \n",
		     "a.conf:2: refresh: not a positive duration (a number with s, m, h or d)");
	expect_error("[fetch]\nconnections = 0\n",
		     "a.conf:2: connections: must be an integer from 1 to 64");
	expect_error("[fetch]\nconnections = 65\n",
		     "a.conf:2: connections: must be an integer from 1 to 64");
	expect_error("[fetch]\nretries = 3x\n",
		     "a.conf:2: retries: must be an integer from 0 to 100");
	expect_error("[audit]\nsyslog = maybe\n",
		     "a.conf:2: syslog: must be true or false (yes/no, 1/0)");
	expect_error("[fs]\npassthrough = always\n",
		     "a.conf:2: passthrough: must be auto, on or off");
	expect_error("[cache]\nthis line has no equals\n",
		     "a.conf:2: syntax error (want \"key = value\" or \"[section]\")");
	expect_error("[cache\n",
		     "a.conf:1: syntax error (want \"key = value\" or \"[section]\")");
	expect_error("[cache]\ndir =\n", "a.conf:2: dir: empty path");
	expect_error("[log]\nformat = xml\n",
		     "a.conf:2: format: must be text or json");
	expect_error("[log]\nlevel = debug\n",
		     "a.conf:2: unknown key \"level\" in [log]");
	expect_error("[metrics]\nlisten = :9464\n",
		     "a.conf:2: listen: give the address to listen on: 127.0.0.1:PORT for this node only, or 0.0.0.0:PORT for every interface");
	expect_error("[metrics]\nlisten = 127.0.0.1:99999\n",
		     "a.conf:2: listen: port must be a number from 1 to 65535");
	expect_error("[metrics]\nlisten = metrics.internal:9464\n",
		     "a.conf:2: listen: want an IP address (IPV4:PORT or [IPV6]:PORT), not a host name");
	/* First error wins. */
	expect_error("[fetch]\nfoo = 1\nbar = 2\n",
		     "a.conf:2: unknown key \"foo\" in [fetch]");
	expect_error("[cache]\nbad line\n[fetch]\nfoo = 1\n",
		     "a.conf:2: syntax error (want \"key = value\" or \"[section]\")");
}

/* DESIGN §5b: https://, or http:// on loopback only; no secrets. */
static void test_endpoints(void **state)
{
	(void)state;
	expect_error("[s3]\nendpoint = http://s3.internal:9000\n",
		     "a.conf:2: endpoint: http:// only for a loopback address (use https://)");
	expect_error("[gcs]\nendpoint = http://10.0.0.1/\n",
		     "a.conf:2: endpoint: http:// only for a loopback address (use https://)");
	expect_error("[s3]\nendpoint = ftp://127.0.0.1/\n",
		     "a.conf:2: endpoint: https uri must start with \"https://\" (or \"http://\")");
	expect_error("[s3]\nendpoint = https://u:hunter2@s3.internal\n",
		     "a.conf:2: endpoint: url must not carry userinfo (secrets never go in the config file)");
	expect_error("[s3]\nendpoint = https://s3.internal/?x=1\n",
		     "a.conf:2: endpoint: endpoint must not have a query or fragment");
	expect_error("[s3]\nendpoint = https://s3.internal/?X-Amz-Signature=1\n",
		     "a.conf:2: endpoint: uri query parameter \"x-amz-signature\" carries a credential (not allowed in a uri)");
	expect_error("[gcs]\nendpoint = https://{account}.example\n",
		     "a.conf:2: endpoint: endpoint takes no placeholder");
	expect_error("[azure_blob]\nendpoint = https://{acct}.example\n",
		     "a.conf:2: endpoint: endpoint takes only the {account} placeholder");
	expect_error("[azure_blob]\nendpoint = http://{account}.example\n",
		     "a.conf:2: endpoint: http:// only for a loopback address (use https://)");
	expect_error("[s3]\nregion = US East\n",
		     "a.conf:2: region: not a region name (such as us-east-1)");
	expect_error("[s3]\naddressing = dns\n",
		     "a.conf:2: addressing: must be path or virtual");
	expect_error("[s3]\naccess_key_id = AKIA\n",
		     "a.conf:2: unknown key \"access_key_id\" in [s3]: secrets never go in the config file (use credentials.dir or registry.token_file)");
	expect_error("[azure_blob]\nsas_token = sv=1\n",
		     "a.conf:2: unknown key \"sas_token\" in [azure_blob]: secrets never go in the config file (use credentials.dir or registry.token_file)");
	expect_error("[credentials]\nhelper_timeout = 0s\n",
		     "a.conf:2: helper_timeout: not a positive duration (a number with s, m, h or d)");
}

static void expect_ok_url(const char *url)
{
	struct pol_config c;
	char text[256], err[256];

	snprintf(text, sizeof(text), "[registry]\nurl = %s\n", url);
	assert_int_equal(pol_config_init(&c), 0);
	if (pol_config_parse(&c, text, strlen(text), "a.conf", err,
			     sizeof(err)) != 0)
		fail_msg("%s: %s", url, err);
	assert_string_equal(c.registry_url, url);
	pol_config_release(&c);
}

static void test_secrets_refused(void **state)
{
	struct pol_config c;
	char err[512];
	static const char *const bad[] = {
		"[registry]\nurl = https://user:hunter2@cp.internal/api\n",
		"[fetch]\nproxy = http://user:hunter2@proxy:3128\n",
		"[fetch]\nmirrors = https://ok.internal/b https://u:hunter2@m.internal/b\n",
		"[fetch]\nmirrors = https://m.internal/v2/{digest}?sig=hunter2\n",
		"[registry]\nurl = https://cp.internal/api?token=hunter2\n",
		"[registry]\ntoken = hunter2\n",
		"[credentials]\nsecret_access_key = hunter2\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pol_config_init(&c), 0);
		err[0] = '\0';
		assert_int_equal(pol_config_parse(&c, bad[i], strlen(bad[i]),
						  "a.conf", err, sizeof(err)),
				 AF_EPARSE);
		assert_null(strstr(err, "hunter2"));
		assert_non_null(strstr(err, "a.conf:2: "));
		pol_config_release(&c);
	}
	expect_error("[registry]\ntoken = x\n",
		     "a.conf:2: unknown key \"token\" in [registry]: secrets never go in the config file (use credentials.dir or registry.token_file)");
	expect_error("[registry]\nurl = ftp://cp.internal/\n",
		     "a.conf:2: url: https uri must start with \"https://\" (or \"http://\")");
	expect_error("[registry]\nurl = cp.internal\n",
		     "a.conf:2: url: not a url (want scheme://host/…)");
	expect_error("[registry]\nurl = http://cp.internal/api\n",
		     "a.conf:2: url: http:// only for a loopback address (use https://)");
	expect_error("[registry]\nurl = http://127.0.0.1.evil.example/api\n",
		     "a.conf:2: url: http:// only for a loopback address (use https://)");
	expect_ok_url("http://127.0.0.1:8080/api");
	expect_ok_url("http://localhost/api");
	expect_ok_url("http://[::1]:9000");
	expect_error("[fetch]\nproxy = socks5://u@p:1080\n",
		     "a.conf:2: proxy: url must not carry userinfo (secrets never go in the config file)");
}

static void test_sizes_durations(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(pol_parse_size("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(pol_parse_size("512K", &v), 0);
	assert_int_equal(v, 512 * 1024);
	assert_int_equal(pol_parse_size("8M", &v), 0);
	assert_int_equal(v, 8 << 20);
	assert_int_equal(pol_parse_size("8m", &v), 0);
	assert_int_equal(v, 8 << 20);
	assert_int_equal(pol_parse_size("2G", &v), 0);
	assert_int_equal(v, 2ULL << 30);
	assert_int_equal(pol_parse_size("1T", &v), 0);
	assert_int_equal(v, 1ULL << 40);
	assert_int_equal(pol_parse_size("64KiB", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(pol_parse_size("3GiB", &v), 0);
	assert_int_equal(v, 3ULL << 30);
	assert_int_equal(pol_parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pol_parse_size("", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("K", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("1.5G", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("1 G", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("1GG", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("1P", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("+1", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size("18446744073709551615", &v), 0);
	assert_int_equal(pol_parse_size("18446744073709551616", &v),
			 AF_EPARSE);
	assert_int_equal(pol_parse_size("16777216T", &v), AF_EPARSE);
	assert_int_equal(pol_parse_size(NULL, &v), AF_EPARSE);

	assert_int_equal(pol_parse_duration_ms("30s", &v), 0);
	assert_int_equal(v, 30000);
	assert_int_equal(pol_parse_duration_ms("90", &v), 0);
	assert_int_equal(v, 90000);
	assert_int_equal(pol_parse_duration_ms("5m", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(pol_parse_duration_ms("12h", &v), 0);
	assert_int_equal(v, 43200000);
	assert_int_equal(pol_parse_duration_ms("1d", &v), 0);
	assert_int_equal(v, 86400000);
	assert_int_equal(pol_parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(pol_parse_duration_ms("1w", &v), AF_EPARSE);
	assert_int_equal(pol_parse_duration_ms("s", &v), AF_EPARSE);
	assert_int_equal(pol_parse_duration_ms("-5s", &v), AF_EPARSE);
	assert_int_equal(pol_parse_duration_ms("5 s", &v), AF_EPARSE);
	assert_int_equal(pol_parse_duration_ms("99999999999999999999", &v),
			 AF_EPARSE);
	assert_int_equal(pol_parse_duration_ms("999999999999999999d", &v),
			 AF_EPARSE);
}

static void test_long_line_and_nul(void **state)
{
	char text[1200];
	size_t n;

	(void)state;
	n = (size_t)snprintf(text, sizeof(text), "[cache]\ndir = /");
	memset(text + n, 'a', 1000);
	memcpy(text + n + 1000, "\n", 2);
	expect_error(text, "a.conf:2: line longer than 197 characters");

	{
		static const char nul[] = "[cache]\ndir = /x\0y\n";
		struct pol_config c;
		char err[256];

		assert_int_equal(pol_config_init(&c), 0);
		assert_int_equal(pol_config_parse(&c, nul, sizeof(nul) - 1,
						  "a.conf", err, sizeof(err)),
				 AF_EPARSE);
		assert_string_equal(err, "a.conf:2: NUL byte in line");
		pol_config_release(&c);
	}
}

static void test_bools_passthrough_mirrors(void **state)
{
	static const char text[] =
		"[audit]\nsyslog = TRUE\n[fs]\npassthrough = on\n"
		"[fetch]\nmirrors = https://a.internal/x\n"
		"mirrors = https://b.internal/y,https://c.internal/z\n"
		"[audit]\nsyslog = 0\n";
	struct pol_config c;
	char err[256];

	(void)state;
	assert_int_equal(pol_config_init(&c), 0);
	assert_int_equal(pol_config_parse(&c, text, strlen(text), "a.conf",
					  err, sizeof(err)), 0);
	assert_false(c.audit_syslog);
	assert_int_equal(c.passthrough, POL_PASSTHROUGH_ON);
	assert_int_equal(c.n_mirrors, 3);
	assert_string_equal(c.mirrors[2], "https://c.internal/z");
	pol_config_release(&c);

	assert_int_equal(pol_config_init(&c), 0);
	assert_int_equal(pol_config_parse(&c, "", 0, "a.conf", err,
					  sizeof(err)), 0);
	assert_int_equal(pol_config_parse(&c, NULL, 0, "a.conf", err,
					  sizeof(err)), 0);
	pol_config_release(&c);
}

static void test_indented_keys(void **state)
{
	static const char text[] =
		"[cache]\n  dir = /srv/c\n\tmax_size = 1G\n  [fetch]\n"
		"  retries = 7\n";
	struct pol_config c;
	char err[256];

	(void)state;
	assert_int_equal(pol_config_init(&c), 0);
	if (pol_config_parse(&c, text, strlen(text), "a.conf", err,
			     sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.cache_dir, "/srv/c");
	assert_int_equal(c.cache_max_size, 1ULL << 30);
	assert_int_equal(c.fetch_retries, 7);
	pol_config_release(&c);
	expect_error("[cache]\ndir = /x\n    bogus = 1\n",
		     "a.conf:3: unknown key \"bogus\" in [cache]");
}

/*
 * [metrics] listen (DESIGN §13): anything but loopback only when asked
 * for by address; never a default, never a host name.
 */
static void test_listen(void **state)
{
	static const struct {
		const char *in, *host;
		unsigned port;
	} good[] = {
		{ "9464", "127.0.0.1", 9464 },
		{ "127.0.0.1:9464", "127.0.0.1", 9464 },
		{ "localhost:1", "127.0.0.1", 1 },
		{ "0.0.0.0:9464", "0.0.0.0", 9464 },
		{ "10.1.2.3:65535", "10.1.2.3", 65535 },
		{ "[::1]:9464", "::1", 9464 },
		{ "[::]:80", "::", 80 },
	};
	static const char *const bad[] = {
		"", ":9464", "*:9464", "0", "65536", "127.0.0.1:", "127.0.0.1:0",
		"127.0.0.1:x", "127.0.0.1:80x", "metrics.internal:9464",
		"[::1]", "[::1]9464", "[nope]:1", "[]:1", "1.2.3:80",
		"127.0.0.1:99999999999999999999999", " 127.0.0.1:80",
	};
	char host[64], why[256];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (pol_parse_listen(good[i].in, host, sizeof(host), &port, why,
				     sizeof(why)) != 0)
			fail_msg("%s: %s", good[i].in, why);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why[0] = '\0';
		if (pol_parse_listen(bad[i], host, sizeof(host), &port, why,
				     sizeof(why)) != AF_EPARSE)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_true(why[0] != '\0');
	}
	/* Too small a buffer for the address is an error, not a cut. */
	assert_int_equal(pol_parse_listen("[::1]:9", host, 3, &port, why,
					  sizeof(why)), AF_EPARSE);
}

static void test_load(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	struct pol_config c;
	char err[512];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, full_ini, strlen(full_ini)),
			 (ssize_t)strlen(full_ini));
	close(fd);
	assert_int_equal(pol_config_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.path, path);
	assert_int_equal(c.fetch_connections, 16);
	pol_config_release(&c);
	unlink(path);
	assert_int_equal(pol_config_load(path, &c, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
	pol_config_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_endpoints),
		cmocka_unit_test(test_secrets_refused),
		cmocka_unit_test(test_sizes_durations),
		cmocka_unit_test(test_long_line_and_nul),
		cmocka_unit_test(test_bools_passthrough_mirrors),
		cmocka_unit_test(test_indented_keys),
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_load),
	};

	return cmocka_run_group_tests_name("policy_config", tests, NULL, NULL);
}
