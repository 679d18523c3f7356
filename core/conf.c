/*
 * config.c - loads hubd's JSON config and checks every key against a
 * declarative table, so that each problem is reported once, precisely, as
 * "file: path.to.key: what is wrong". Defaults are filled in after the
 * checks pass. See conf.h.
 */
#include "config.h"
#include "conf.h"
#include "sync.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hub/sdk.h>

void cfg_problem(struct cfg_problems *p, const char *file, const char *path, const char *fmt, ...)
{
	char msg[512], *line;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = snprintf(NULL, 0, "%s: %s: %s", file, path, msg);
	line = malloc((size_t)n + 1);
	if (!line)
		return;
	snprintf(line, (size_t)n + 1, "%s: %s: %s", file, path, msg);
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		char **lines = realloc(p->lines, cap * sizeof(*lines));
		if (!lines) {
			free(line);
			return;
		}
		p->lines = lines;
		p->cap = cap;
	}
	p->lines[p->n++] = line;
}

void cfg_problems_release(struct cfg_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->lines[i]);
	free(p->lines);
	memset(p, 0, sizeof(*p));
}

/* What a key may hold. */
enum key_type { K_STRING, K_INT, K_NUMBER, K_BOOL, K_OBJECT, K_ARRAY, K_ANY_OBJECT };

struct key_spec {
	const char *name;
	enum key_type type;
	int required;
};

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "unknown";
}

static const char *const expected_names[] = {
	[K_STRING] = "a string", [K_INT] = "an integer", [K_NUMBER] = "a number",
	[K_BOOL] = "a boolean", [K_OBJECT] = "an object", [K_ARRAY] = "an array",
	[K_ANY_OBJECT] = "an object",
};

static int type_ok(const json_t *v, enum key_type t)
{
	switch (t) {
	case K_STRING: return json_is_string(v);
	case K_INT: return json_is_integer(v);
	case K_NUMBER: return json_is_number(v);
	case K_BOOL: return json_is_boolean(v);
	case K_OBJECT:
	case K_ANY_OBJECT: return json_is_object(v);
	case K_ARRAY: return json_is_array(v);
	}
	return 0;
}

/* Checks obj's keys against specs: unknown keys, missing required keys and
 * wrong types are problems. Returns the number of problems added. */
static int check_keys(struct cfg_problems *p, const char *file, const char *prefix,
		      const json_t *obj, const struct key_spec *specs)
{
	const char *key;
	json_t *v;
	char path[256];
	int bad = 0;

	json_object_foreach((json_t *)obj, key, v) {
		const struct key_spec *s;
		for (s = specs; s->name; s++)
			if (strcmp(s->name, key) == 0)
				break;
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", key);
		if (!s->name) {
			char allowed[256];
			size_t len = 0;
			for (s = specs; s->name && len < sizeof(allowed); s++)
				len += (size_t)snprintf(allowed + len, sizeof(allowed) - len, "%s%s",
							s == specs ? "" : ", ", s->name);
			cfg_problem(p, file, path, "unknown key (allowed here: %s)", allowed);
			bad++;
		} else if (!type_ok(v, s->type)) {
			cfg_problem(p, file, path, "must be %s, found %s", expected_names[s->type], type_name(v));
			bad++;
		}
	}
	for (const struct key_spec *s = specs; s->name; s++) {
		if (s->required && !json_object_get(obj, s->name)) {
			snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", s->name);
			cfg_problem(p, file, path, "required key missing");
			bad++;
		}
	}
	return bad;
}

static const struct key_spec top_keys[] = {
	{"listen", K_STRING, 0},    {"state_dir", K_STRING, 1}, {"store", K_STRING, 0},
	{"redis", K_STRING, 0},     {"plugin_dir", K_STRING, 0}, {"log", K_OBJECT, 0},
	{"http", K_OBJECT, 0},      {"outbound", K_OBJECT, 0},  {"connectors", K_ARRAY, 0},
	{"sync", K_OBJECT, 0},      {"leases", K_OBJECT, 0},    {"retry", K_OBJECT, 0},
	{"store_connections", K_INT, 0}, {NULL, 0, 0},
};
static const struct key_spec retry_keys[] = {
	{"base_ms", K_INT, 0}, {"cap_ms", K_INT, 0}, {"max_attempts", K_INT, 0}, {NULL, 0, 0},
};
static const struct key_spec lease_keys[] = {
	{"enabled", K_BOOL, 0}, {"ttl_s", K_INT, 0}, {NULL, 0, 0},
};
static const struct key_spec log_keys[] = {
	{"level", K_STRING, 0}, {"format", K_STRING, 0}, {NULL, 0, 0},
};
static const struct key_spec http_keys[] = {
	{"max_body_bytes", K_INT, 0}, {"max_header_bytes", K_INT, 0}, {"timeout_s", K_INT, 0},
	{"rate_per_s", K_NUMBER, 0},  {"burst", K_NUMBER, 0},         {"tls_cert", K_STRING, 0},
	{"tls_key", K_STRING, 0},     {"webhook_workers", K_INT, 0}, {NULL, 0, 0},
};
static const struct key_spec outbound_keys[] = {
	{"ca_file", K_STRING, 0}, {"proxy", K_STRING, 0}, {"timeout_ms", K_INT, 0},
	{"max_response_bytes", K_INT, 0}, {"max_in_flight", K_INT, 0}, {"max_host_connections", K_INT, 0},
	{"max_total_connections", K_INT, 0}, {NULL, 0, 0},
};
static const struct key_spec sync_keys[] = {
	{"start_spread_s", K_INT, 0}, {NULL, 0, 0},
};
static const struct key_spec connector_keys[] = {
	{"name", K_STRING, 1},     {"plugin", K_STRING, 1},     {"merchant", K_STRING, 1},
	{"config", K_ANY_OBJECT, 1}, {"enabled", K_BOOL, 0},     {"poll_interval_s", K_INT, 0},
	{"backfill_since", K_STRING, 0}, {"rate_limits", K_OBJECT, 0}, {NULL, 0, 0},
};

static char *dup_or_null(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? strdup(s) : NULL;
}

static int valid_name(const char *s, int allow_dash)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (const char *c = s; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')
			continue;
		if (allow_dash && *c == '-' && c != s)
			continue;
		return 0;
	}
	return 1;
}

/* Splits "host:port" or "[v6]:port". Returns 0 or -1. */
static int parse_listen(const char *text, char **host, int *port)
{
	const char *colon;
	char *end;
	long v;
	size_t hl;

	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -1;
		colon = close + 1;
		*host = strndup(text + 1, (size_t)(close - text - 1));
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -1;
		hl = (size_t)(colon - text);
		*host = strndup(text, hl);
	}
	if (!*host || !**host) {
		free(*host);
		*host = NULL;
		return -1;
	}
	errno = 0;
	v = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || v < 0 || v > 65535) {
		free(*host);
		*host = NULL;
		return -1;
	}
	*port = (int)v;
	return 0;
}

static void check_connectors(struct cfg_problems *p, const char *file, json_t *arr)
{
	size_t i;
	json_t *c, *seen = json_object(); /* name -> first index: linear with 10,000 connectors */
	char path[64];

	json_array_foreach(arr, i, c) {
		const char *name, *plugin, *merchant, *since;
		json_t *iv;

		snprintf(path, sizeof(path), "connectors[%zu]", i);
		if (!json_is_object(c)) {
			cfg_problem(p, file, path, "must be an object, found %s", type_name(c));
			continue;
		}
		check_keys(p, file, path, c, connector_keys);
		name = json_string_value(json_object_get(c, "name"));
		plugin = json_string_value(json_object_get(c, "plugin"));
		merchant = json_string_value(json_object_get(c, "merchant"));
		since = json_string_value(json_object_get(c, "backfill_since"));
		iv = json_object_get(c, "poll_interval_s");
		if (name && !valid_name(name, 0))
			cfg_problem(p, file, path, "name \"%s\" must be 1-63 characters of a-z, 0-9 and _", name);
		if (plugin && !valid_name(plugin, 0))
			cfg_problem(p, file, path, "plugin \"%s\" must be 1-63 characters of a-z, 0-9 and _", plugin);
		if (merchant && !valid_name(merchant, 1))
			cfg_problem(p, file, path, "merchant \"%s\" must be 1-63 characters of a-z, 0-9, _ and -", merchant);
		if (json_is_integer(iv) && (json_integer_value(iv) < 1 || json_integer_value(iv) > 86400))
			cfg_problem(p, file, path, "poll_interval_s must be between 1 and 86400");
		if (since) {
			int64_t ms;
			struct hub_error err;
			if (hub_time_parse(since, 0, &ms, "backfill_since", &err) < 0)
				cfg_problem(p, file, path, "backfill_since: %s", err.message);
		}
		{
			const char *bucket;
			json_t *b;
			json_object_foreach(json_object_get(c, "rate_limits"), bucket, b) {
				json_t *burst = json_object_get(b, "burst"), *rate = json_object_get(b, "rate");
				if (!json_is_object(b) || !json_is_number(burst) || !json_is_number(rate) ||
				    json_number_value(burst) < 1 || json_number_value(rate) <= 0)
					cfg_problem(p, file, path, "rate_limits.%s must be {\"burst\": >= 1, \"rate\": > 0}",
						    bucket);
			}
		}
		if (name) {
			json_t *first = json_object_get(seen, name);
			if (first)
				cfg_problem(p, file, path, "name \"%s\" is already used by connectors[%lld]", name,
					    (long long)json_integer_value(first));
			else
				json_object_set_new(seen, name, json_integer((json_int_t)i));
		}
	}
	json_decref(seen);
}

static int int_in(struct cfg_problems *p, const char *file, const json_t *obj, const char *key,
		  const char *path, long long lo, long long hi, long long *out)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v))
		return 0;
	if (json_integer_value(v) < lo || json_integer_value(v) > hi) {
		cfg_problem(p, file, path, "must be between %lld and %lld, found %lld", lo, hi,
			    (long long)json_integer_value(v));
		return -1;
	}
	*out = json_integer_value(v);
	return 0;
}

/* The "retry" object: each key in range, the cap no smaller than the first
 * window, and the windows of one step's retries adding up to no more than
 * the lease of a tracking step's numbers. */
static void load_retry(struct cfg_problems *p, const char *file, const json_t *retry, struct hub_config *cfg)
{
	long long v;
	int bad;

	bad = check_keys(p, file, "retry", retry, retry_keys);
	if (int_in(p, file, retry, "base_ms", "retry.base_ms", 1, 60000, &v) < 0)
		bad++;
	else if (json_object_get(retry, "base_ms"))
		cfg->retry_base_ms = (int)v;
	if (int_in(p, file, retry, "cap_ms", "retry.cap_ms", 1, 600000, &v) < 0)
		bad++;
	else if (json_object_get(retry, "cap_ms"))
		cfg->retry_cap_ms = (int)v;
	if (int_in(p, file, retry, "max_attempts", "retry.max_attempts", 1, 100, &v) < 0)
		bad++;
	else if (json_object_get(retry, "max_attempts"))
		cfg->retry_max_attempts = (int)v;
	if (bad)
		return;
	if (cfg->retry_cap_ms < cfg->retry_base_ms) {
		cfg_problem(p, file, json_object_get(retry, "cap_ms") ? "retry.cap_ms" : "retry.base_ms",
			    "cap_ms (%d) must be at least base_ms (%d): raise the first or lower the second",
			    cfg->retry_cap_ms, cfg->retry_base_ms);
		return;
	}
	/* A tracking step keeps its numbers leased while it retries: the
	 * longest its retries may wait must fit in that lease. */
	{
		long long window = cfg->retry_base_ms, total = 0;

		for (int n = 1; n < cfg->retry_max_attempts; n++) {
			total += window;
			window = window * 2 < cfg->retry_cap_ms ? window * 2 : cfg->retry_cap_ms;
		}
		if (total > SYNC_TRACKING_LEASE_MS)
			cfg_problem(p, file, "retry.max_attempts",
				    "%d attempts with base_ms %d and cap_ms %d may wait up to %lld ms in all (the sum "
				    "of their backoff windows), more than the %d ms a tracking step holds its numbers: "
				    "lower max_attempts or cap_ms",
				    cfg->retry_max_attempts, cfg->retry_base_ms, cfg->retry_cap_ms, total,
				    SYNC_TRACKING_LEASE_MS);
	}
}

int config_load(const char *path, struct hub_config *cfg, struct cfg_problems *p)
{
	json_error_t jerr;
	json_t *root = NULL, *log, *http, *out, *sync, *leases, *retry;
	const char *s;
	size_t before = p->n;
	long long v;

	memset(cfg, 0, sizeof(*cfg));
	cfg->path = strdup(path);
	cfg->log_level = LOG_INFO;
	cfg->log_format = LOG_TEXT;
	cfg->http_max_body = 1 << 20;
	cfg->http_max_headers = 16 << 10;
	cfg->http_timeout_s = 30;
	cfg->http_rate = 5000;
	cfg->http_burst = 10000;
	cfg->webhook_workers = -1;
	cfg->request_timeout_ms = 30000;
	cfg->max_response_bytes = 32u << 20;
	cfg->max_in_flight = 256;
	cfg->max_host_connections = 64;
	cfg->max_total_connections = 1024;
	cfg->start_spread_s = 900;
	cfg->leases_enabled = 1;
	cfg->lease_ttl_s = 30;
	cfg->retry_base_ms = 500;
	cfg->retry_cap_ms = 60000;
	cfg->retry_max_attempts = 8;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (jerr.line < 1)
			cfg_problem(p, path, "(file)", "cannot read: %s", strerror(errno ? errno : ENOENT));
		else
			cfg_problem(p, path, "(file)", "line %d column %d: invalid JSON: %s", jerr.line,
				    jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		cfg_problem(p, path, "(root)", "must be an object, found %s", type_name(root));
		goto out;
	}
	check_keys(p, path, "", root, top_keys);

	s = json_string_value(json_object_get(root, "listen"));
	cfg->listen = strdup(s ? s : "127.0.0.1:8080");
	if (parse_listen(cfg->listen, &cfg->listen_host, &cfg->listen_port) < 0)
		cfg_problem(p, path, "listen", "\"%s\" is not HOST:PORT (for example 127.0.0.1:8080)", cfg->listen);

	cfg->state_dir = dup_or_null(root, "state_dir");
	if (cfg->state_dir && !*cfg->state_dir)
		cfg_problem(p, path, "state_dir", "must not be empty");

	cfg->store = dup_or_null(root, "store");
	if (cfg->store && strncmp(cfg->store, "sqlite:", 7) != 0 &&
	    strncmp(cfg->store, "postgresql://", 13) != 0 && strncmp(cfg->store, "postgres://", 11) != 0)
		cfg_problem(p, path, "store", "\"%s\" must be sqlite:PATH or a postgresql:// URL", cfg->store);
	else if (cfg->store && strcmp(cfg->store, "sqlite:") == 0)
		cfg_problem(p, path, "store", "sqlite: needs a file path (sqlite:/var/lib/hub/hub.db)");
	if (json_is_integer(json_object_get(root, "store_connections")) &&
	    int_in(p, path, root, "store_connections", "store_connections", 1, 8, &v) == 0) {
		cfg->store_connections = (unsigned)v;
		if (v > 1 && (!cfg->store || strncmp(cfg->store, "sqlite:", 7) == 0))
			cfg_problem(p, path, "store_connections", "%lld connections need a PostgreSQL "
				    "store: SQLite has one writer (leave store_connections out)", v);
	}
	if (!cfg->store && cfg->state_dir) {
		size_t n = strlen(cfg->state_dir) + 16;
		cfg->store = malloc(n);
		if (cfg->store)
			snprintf(cfg->store, n, "sqlite:%s/hub.db", cfg->state_dir);
	}

	cfg->redis = dup_or_null(root, "redis");
	if (cfg->redis && strncmp(cfg->redis, "redis://", 8) != 0 && strncmp(cfg->redis, "unix:", 5) != 0)
		cfg_problem(p, path, "redis", "\"%s\" must be a redis://HOST:PORT[/DB] or unix:PATH URL", cfg->redis);

	cfg->plugin_dir = dup_or_null(root, "plugin_dir");
	if (!cfg->plugin_dir)
		cfg->plugin_dir = strdup(HUB_PLUGIN_DIR);

	log = json_object_get(root, "log");
	if (json_is_object(log)) {
		check_keys(p, path, "log", log, log_keys);
		s = json_string_value(json_object_get(log, "level"));
		if (s && log_level_parse(s, &cfg->log_level) < 0)
			cfg_problem(p, path, "log.level", "\"%s\" must be one of debug, info, warn, error", s);
		s = json_string_value(json_object_get(log, "format"));
		if (s && log_format_parse(s, &cfg->log_format) < 0)
			cfg_problem(p, path, "log.format", "\"%s\" must be text or json", s);
	}

	http = json_object_get(root, "http");
	if (json_is_object(http)) {
		check_keys(p, path, "http", http, http_keys);
		if (int_in(p, path, http, "max_body_bytes", "http.max_body_bytes", 1024, 256LL << 20, &v) == 0 &&
		    json_object_get(http, "max_body_bytes"))
			cfg->http_max_body = (size_t)v;
		if (int_in(p, path, http, "max_header_bytes", "http.max_header_bytes", 1024, 1 << 20, &v) == 0 &&
		    json_object_get(http, "max_header_bytes"))
			cfg->http_max_headers = (size_t)v;
		if (int_in(p, path, http, "timeout_s", "http.timeout_s", 1, 3600, &v) == 0 &&
		    json_object_get(http, "timeout_s"))
			cfg->http_timeout_s = (int)v;
		if (json_is_number(json_object_get(http, "rate_per_s"))) {
			cfg->http_rate = json_number_value(json_object_get(http, "rate_per_s"));
			if (cfg->http_rate <= 0)
				cfg_problem(p, path, "http.rate_per_s", "must be greater than 0");
		}
		if (json_is_number(json_object_get(http, "burst"))) {
			cfg->http_burst = json_number_value(json_object_get(http, "burst"));
			if (cfg->http_burst < 1)
				cfg_problem(p, path, "http.burst", "must be at least 1");
		}
		if (int_in(p, path, http, "webhook_workers", "http.webhook_workers", 0, 64, &v) == 0 &&
		    json_object_get(http, "webhook_workers"))
			cfg->webhook_workers = (int)v;
		cfg->tls_cert = dup_or_null(http, "tls_cert");
		cfg->tls_key = dup_or_null(http, "tls_key");
		if (!cfg->tls_cert != !cfg->tls_key)
			cfg_problem(p, path, cfg->tls_cert ? "http.tls_key" : "http.tls_cert",
				    "TLS needs both tls_cert and tls_key");
	}

	out = json_object_get(root, "outbound");
	if (json_is_object(out)) {
		check_keys(p, path, "outbound", out, outbound_keys);
		cfg->ca_file = dup_or_null(out, "ca_file");
		cfg->proxy = dup_or_null(out, "proxy");
		if (int_in(p, path, out, "timeout_ms", "outbound.timeout_ms", 100, 600000, &v) == 0 &&
		    json_object_get(out, "timeout_ms"))
			cfg->request_timeout_ms = (int)v;
		if (int_in(p, path, out, "max_response_bytes", "outbound.max_response_bytes", 4096,
			   1LL << 30, &v) == 0 && json_object_get(out, "max_response_bytes"))
			cfg->max_response_bytes = (size_t)v;
		if (int_in(p, path, out, "max_in_flight", "outbound.max_in_flight", 1, 100000, &v) == 0 &&
		    json_object_get(out, "max_in_flight"))
			cfg->max_in_flight = (long)v;
		if (int_in(p, path, out, "max_host_connections", "outbound.max_host_connections", 1, 10000, &v) == 0 &&
		    json_object_get(out, "max_host_connections"))
			cfg->max_host_connections = (long)v;
		if (int_in(p, path, out, "max_total_connections", "outbound.max_total_connections", 1, 100000,
			   &v) == 0 && json_object_get(out, "max_total_connections")) {
			cfg->max_total_connections = (long)v;
			cfg->max_total_connections_set = 1;
		}
		if (cfg->max_total_connections < cfg->max_host_connections)
			cfg_problem(p, path, json_object_get(out, "max_total_connections") ? "outbound.max_total_connections"
											 : "outbound.max_host_connections",
				    "max_total_connections (%ld) must be at least max_host_connections (%ld): raise "
				    "the first or lower the second",
				    cfg->max_total_connections, cfg->max_host_connections);
	}

	sync = json_object_get(root, "sync");
	if (json_is_object(sync)) {
		check_keys(p, path, "sync", sync, sync_keys);
		if (int_in(p, path, sync, "start_spread_s", "sync.start_spread_s", 0, 86400, &v) == 0 &&
		    json_object_get(sync, "start_spread_s"))
			cfg->start_spread_s = (int)v;
	}

	leases = json_object_get(root, "leases");
	if (json_is_object(leases)) {
		check_keys(p, path, "leases", leases, lease_keys);
		if (json_is_boolean(json_object_get(leases, "enabled")))
			cfg->leases_enabled = json_is_true(json_object_get(leases, "enabled"));
		if (int_in(p, path, leases, "ttl_s", "leases.ttl_s", 2, 3600, &v) == 0 &&
		    json_object_get(leases, "ttl_s"))
			cfg->lease_ttl_s = (int)v;
	}

	retry = json_object_get(root, "retry");
	if (json_is_object(retry))
		load_retry(p, path, retry, cfg);

	cfg->connectors = json_object_get(root, "connectors");
	if (json_is_array(cfg->connectors)) {
		json_incref(cfg->connectors);
		check_connectors(p, path, cfg->connectors);
	} else {
		cfg->connectors = json_array();
	}
out:
	json_decref(root);
	return p->n == before ? 0 : -1;
}

/* Nearest existing ancestor of path (for "can it be created?"). */
static int existing_ancestor(const char *path, char *buf, size_t size)
{
	struct stat st;
	char *slash;

	if (snprintf(buf, size, "%s", path) >= (int)size)
		return -1;
	while (stat(buf, &st) != 0) {
		slash = strrchr(buf, '/');
		if (!slash)
			return snprintf(buf, size, ".") < 0 ? -1 : 0;
		if (slash == buf) {
			buf[1] = '\0';
			return 0;
		}
		*slash = '\0';
	}
	return 0;
}

int config_check_paths(const struct hub_config *cfg, struct cfg_problems *p)
{
	struct stat st;
	struct rlimit nofile;
	char anc[PATH_MAX];
	size_t before = p->n;

	if (cfg->state_dir) {
		if (stat(cfg->state_dir, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				cfg_problem(p, cfg->path, "state_dir", "%s exists and is not a directory", cfg->state_dir);
			else if (access(cfg->state_dir, W_OK | X_OK) != 0)
				cfg_problem(p, cfg->path, "state_dir", "%s is not writable by this user", cfg->state_dir);
		} else if (existing_ancestor(cfg->state_dir, anc, sizeof(anc)) == 0) {
			if (stat(anc, &st) != 0 || !S_ISDIR(st.st_mode))
				cfg_problem(p, cfg->path, "state_dir", "cannot create %s: %s is not a directory",
					    cfg->state_dir, anc);
			else if (access(anc, W_OK | X_OK) != 0)
				cfg_problem(p, cfg->path, "state_dir", "cannot create %s: %s is not writable",
					    cfg->state_dir, anc);
		}
	}
	if (cfg->plugin_dir) {
		if (stat(cfg->plugin_dir, &st) != 0)
			cfg_problem(p, cfg->path, "plugin_dir", "%s: %s", cfg->plugin_dir, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			cfg_problem(p, cfg->path, "plugin_dir", "%s is not a directory", cfg->plugin_dir);
	}
	if (cfg->tls_cert && access(cfg->tls_cert, R_OK) != 0)
		cfg_problem(p, cfg->path, "http.tls_cert", "%s: %s", cfg->tls_cert, strerror(errno));
	if (cfg->tls_key && access(cfg->tls_key, R_OK) != 0)
		cfg_problem(p, cfg->path, "http.tls_key", "%s: %s", cfg->tls_key, strerror(errno));
	if (cfg->ca_file && access(cfg->ca_file, R_OK) != 0)
		cfg_problem(p, cfg->path, "outbound.ca_file", "%s: %s", cfg->ca_file, strerror(errno));
	/* Each upstream connection is a descriptor; keep room for the listener's
	 * clients, the store and the logs. hubd raises its soft limit to the
	 * hard one at start, and lowers the default to fit. */
	if (cfg->max_total_connections_set && getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
	    nofile.rlim_max != RLIM_INFINITY &&
	    (rlim_t)cfg->max_total_connections + HUB_FD_RESERVE > nofile.rlim_max)
		cfg_problem(p, cfg->path, "outbound.max_total_connections",
			    "%ld connections need more open files than this process may have (ulimit -Hn is %llu, "
			    "of which hubd keeps %d for itself): raise the limit or lower the setting",
			    cfg->max_total_connections, (unsigned long long)nofile.rlim_max, HUB_FD_RESERVE);
	return p->n == before ? 0 : -1;
}

void config_release(struct hub_config *cfg)
{
	free(cfg->path);
	free(cfg->listen);
	free(cfg->listen_host);
	free(cfg->state_dir);
	free(cfg->store);
	free(cfg->redis);
	free(cfg->plugin_dir);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->ca_file);
	free(cfg->proxy);
	json_decref(cfg->connectors);
	memset(cfg, 0, sizeof(*cfg));
}
