/*
 * config.h - the INI configuration file (DESIGN §10), parsed with libinih.
 * Sizes take K/M/G/T (powers of 1024), durations s/m/h/d (a bare number is
 * seconds). Unknown sections or keys are errors naming the key and line.
 */
#ifndef POL_CONFIG_H
#define POL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "af.h"

#define POL_CONFIG_DEFAULT_PATH "/etc/artifactfs/artifactfs.conf"

enum pol_passthrough {
	POL_PASSTHROUGH_AUTO = 0,
	POL_PASSTHROUGH_ON,
	POL_PASSTHROUGH_OFF,
};

enum pol_s3_addressing {
	POL_S3_ADDR_DEFAULT = 0,	/* virtual, or path with an endpoint */
	POL_S3_ADDR_PATH,
	POL_S3_ADDR_VIRTUAL,
};

/* A plain value object; pol_config_release frees every string. */
struct pol_config {
	char *path;			/* file it was read from, or NULL */

	/* [cache] */
	char *cache_dir;		/* default /var/cache/artifactfs */
	uint64_t cache_max_size;	/* bytes; 0 = no limit (default) */
	uint64_t chunk_size;		/* default 8M; power of two, 64K..1G */

	/* [registry] */
	char *registry_dir;		/* default /etc/artifactfs/registry */
	char *registry_url;		/* NULL unless set */
	char *registry_token_file;	/* NULL unless set */
	uint64_t registry_refresh_ms;	/* default 30s */

	/* [policy] */
	char *policy_file;		/* NULL unless set */

	/* [credentials] */
	char *credentials_dir;		/* NULL unless set */
	char *credentials_helper;	/* NULL unless set */
	uint64_t credentials_max_lifetime_ms;	/* default 12h */
	uint64_t credentials_helper_timeout_ms;	/* default 30s; then killed */

	/* [fetch] */
	unsigned fetch_connections;	/* default 8, 1..64 */
	unsigned fetch_retries;		/* default 5, 0..100 */
	uint64_t connect_timeout_ms;	/* default 10s */
	uint64_t low_speed_timeout_ms;	/* default 30s */
	uint64_t failure_backoff_ms;	/* default 30s; 0 = off (DESIGN §6) */
	char *ca_file;			/* NULL unless set */
	char *proxy;			/* NULL unless set */
	char **mirrors;			/* comma- or space-separated list */
	size_t n_mirrors;

	/* [audit] */
	char *audit_log;		/* default /var/log/artifactfs/audit.jsonl */
	bool audit_syslog;		/* default false */

	/* [fs] */
	enum pol_passthrough passthrough;	/* default auto */

	/* [daemon] */
	char *run_as;			/* NULL: stay root (check warns) */

	/* [log] */
	char *log_file;			/* NULL: syslog when detached */
	enum af_log_format log_format;	/* default text */
	bool log_format_set;		/* format given in the file */

	/* [metrics] */
	char *metrics_listen;		/* NULL: no metrics server */
	/*
	 * Source endpoints (DESIGN §5b, §10): https://, or http:// on a
	 * loopback address only; no userinfo, query or fragment; stored
	 * without a trailing '/'. NULL: the type's default endpoint.
	 */
	char *s3_region;		/* [s3] region, default us-east-1 */
	char *s3_endpoint;		/* [s3] endpoint */
	enum pol_s3_addressing s3_addressing;	/* [s3] addressing */
	char *gcs_endpoint;		/* [gcs] endpoint */
	char *azure_endpoint;		/* [azure_blob] endpoint; may hold {account} */
	char *hf_endpoint;		/* [huggingface] endpoint */
	char *artifact_store_endpoint;	/* [artifact_store] endpoint */
};

/* Fills cfg with the defaults above. Returns 0 or -ENOMEM. */
int pol_config_init(struct pol_config *cfg);

/*
 * Parses INI text on top of the values already in cfg (call
 * pol_config_init first). origin names the text in messages. Returns 0, or
 * AF_EPARSE with "<origin>:<line>: <problem>" in err; cfg then holds a mix
 * and must only be released. Secrets are refused here: a key that looks
 * like a secret (token, secret, password, key) is an error (DESIGN §5).
 */
int pol_config_parse(struct pol_config *cfg, const char *buf, size_t len,
		     const char *origin, char *err, size_t errlen);

/*
 * pol_config_init + read path + pol_config_parse. Returns 0, or -errno or
 * AF_EPARSE with "<path>: …" or "<path>:<line>: …" in err; on failure cfg
 * is already released (and zeroed).
 */
int pol_config_load(const char *path, struct pol_config *cfg, char *err,
		    size_t errlen);

void pol_config_release(struct pol_config *cfg);

/*
 * The endpoint rule (DESIGN §3, §5b): https://, or http:// on a loopback
 * address only (127.0.0.0/8, [::1], localhost). For a URL a redirect
 * leads to as much as for one from the config.
 */
bool pol_url_endpoint_ok(const char *url);

/*
 * [metrics] listen (DESIGN §13): "IPV4:PORT", "[IPV6]:PORT",
 * "localhost:PORT", or a bare "PORT" meaning 127.0.0.1:PORT. Every
 * interface only when asked by address (0.0.0.0, [::]); ":PORT" and
 * "*:PORT" are refused, and so are host names (no DNS at startup).
 * Returns 0 with the numeric address in host (hostlen >= 46 suffices) and
 * *port, or AF_EPARSE with why filled.
 */
int pol_parse_listen(const char *s, char *host, size_t hostlen,
		     uint16_t *port, char *why, size_t whylen);

/* "512K", "8M", "2G", "1T", "4096" -> bytes. 0 or AF_EPARSE. */
int pol_parse_size(const char *s, uint64_t *out);
/* "30s", "5m", "12h", "1d", "90" (seconds) -> milliseconds. 0 or AF_EPARSE. */
int pol_parse_duration_ms(const char *s, uint64_t *out);

#endif
