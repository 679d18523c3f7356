/*
 * conf.h - hubd's JSON configuration: loading, validation, defaults.
 *
 * The config file is a JSON object (see etc/hubd.json and docs/operations.md).
 * Loading collects every problem at once, each as one line
 * "FILE: path.to.key: what is wrong", so `hubd --check-config` can print
 * them all. Unknown keys are errors. Nothing outside the struct is touched:
 * loading creates no file or directory.
 */
#ifndef HUB_CONF_H
#define HUB_CONF_H

#include <stddef.h>
#include <jansson.h>

#include "log.h"

/* Descriptors hubd keeps for itself (listener's clients, store, logs) on top
 * of outbound.max_total_connections. */
#define HUB_FD_RESERVE 128

/* Problems found while loading; each is "file: path: message". */
struct cfg_problems {
	char **lines;
	size_t n, cap;
};

/* The whole configuration. Strings are owned by the struct. */
struct hub_config {
	char *path;          /* the file it came from */
	char *listen;        /* "127.0.0.1:8080" as written */
	char *listen_host;   /* "127.0.0.1" */
	int listen_port;     /* 8080 (0: pick a free port, tests) */
	char *state_dir;     /* absolute or relative to the working directory */
	char *store;         /* "sqlite:PATH" or "postgresql://..." (default sqlite:<state_dir>/hub.db) */
	unsigned store_connections; /* PostgreSQL: connections writing batches side by side
	                               (0: the store's default, 1) */
	char *redis;         /* "redis://host:port[/db]" or NULL */
	char *plugin_dir;    /* where *.so plugins are loaded from */
	enum log_level log_level;
	enum log_format log_format;

	/* Inbound HTTP limits (webhooks and admin API). */
	size_t http_max_body;     /* bytes, 413 above */
	size_t http_max_headers;  /* bytes */
	int http_timeout_s;       /* read/write timeout: slow clients are dropped */
	double http_rate;         /* requests/s per source address */
	double http_burst;
	int webhook_workers;      /* threads for reentrant webhook plugins; -1 = auto */
	char *tls_cert;           /* PEM paths; both or neither */
	char *tls_key;

	/* Outbound HTTP. */
	char *ca_file;            /* NULL: system store */
	char *proxy;              /* NULL: no proxy */
	int request_timeout_ms;
	size_t max_response_bytes;
	long max_in_flight;          /* requests handed to libcurl at once */
	long max_host_connections;   /* connections (and requests at once) per upstream host */
	long max_total_connections;  /* connections open at once, idle ones included */
	int max_total_connections_set; /* given in the file (else the default, which hubd
					  lowers to what the open-files limit allows) */

	/* Scheduling. */
	int start_spread_s;          /* first syncs after start-up spread over at most this */

	/* Retries of failed upstream requests (stream steps, outbox jobs, token
	 * refreshes): backoff with full jitter, see core/retry.h. */
	int retry_base_ms;           /* window of the first retry (default 500) */
	int retry_cap_ms;            /* largest window (default 60000) */
	int retry_max_attempts;      /* attempts in all, the first included (default 8) */

	/* Polling leases, when several hubd share a PostgreSQL store. */
	int leases_enabled;       /* default 1; ignored with SQLite (one process) */
	int lease_ttl_s;          /* default 30 */

	/* Declared connectors: array of {name, plugin, merchant, config, ...},
	 * validated for shape here; each plugin validates its own config. */
	json_t *connectors;
};

/* Loads and validates `path` into cfg (zeroed and filled; release with
 * config_release even on failure). Returns 0 when there are no problems,
 * -1 otherwise, with every problem appended to `problems`. */
int config_load(const char *path, struct hub_config *cfg, struct cfg_problems *problems);

/* Frees what cfg holds (not cfg itself). */
void config_release(struct hub_config *cfg);

/* Checks the environment the config points to without changing it: the
 * state dir is a writable directory or can be created, the plugin dir is a
 * readable directory. Appends problems like config_load. Returns 0 or -1. */
int config_check_paths(const struct hub_config *cfg, struct cfg_problems *problems);

/* Appends a formatted problem line. */
void cfg_problem(struct cfg_problems *p, const char *file, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Frees the problem lines (not the struct). */
void cfg_problems_release(struct cfg_problems *p);

#endif
