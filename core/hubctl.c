/*
 * hubctl.c - the admin CLI: the /v1 API of docs/openapi.yaml for people.
 * Tables by default, --json for scripts. It finds hubd and the local admin
 * token by itself from hubd's config (listen and state_dir/admin.token),
 * unless --url/--token or HUB_URL/HUB_TOKEN say otherwise. Every error
 * says what to do next.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

struct ctl {
	char url[512];
	char token[256];
	int json_out;
	const char *config_path;
};

struct buf {
	char *data;
	size_t len;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("hubctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static size_t collect(char *ptr, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = size * n;
	char *nd = realloc(b->data, b->len + add + 1);

	if (!nd)
		return 0;
	memcpy(nd + b->len, ptr, add);
	b->len += add;
	nd[b->len] = '\0';
	b->data = nd;
	return add;
}

/* Reads the first line of a file into buf (trailing newline dropped). */
static int read_line(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (!fgets(buf, (int)size, f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* Fills url and token from options, the environment, then hubd's config. */
static void discover(struct ctl *c)
{
	const char *env;
	json_t *cfg = NULL;
	json_error_t jerr;

	if (!c->url[0] && (env = getenv("HUB_URL")) && *env)
		snprintf(c->url, sizeof(c->url), "%s", env);
	if (!c->token[0] && (env = getenv("HUB_TOKEN")) && *env)
		snprintf(c->token, sizeof(c->token), "%s", env);
	if (c->url[0] && c->token[0])
		return;
	if (!c->config_path)
		c->config_path = getenv("HUB_CONFIG");
	if (!c->config_path)
		c->config_path = HUB_SYSCONF_DIR "/hubd.json";
	cfg = json_load_file(c->config_path, 0, &jerr);
	if (!cfg) {
		if (!c->url[0])
			snprintf(c->url, sizeof(c->url), "http://127.0.0.1:8080");
		if (!c->token[0])
			die("no token: pass --token, set HUB_TOKEN, or point --config at hubd's config "
			    "(%s: %s) so hubctl can read <state_dir>/admin.token",
			    c->config_path, jerr.text);
		return;
	}
	if (!c->url[0]) {
		const char *listen = json_string_value(json_object_get(cfg, "listen"));
		int tls = json_string_value(json_object_get(json_object_get(cfg, "http"), "tls_cert")) != NULL;
		snprintf(c->url, sizeof(c->url), "%s://%s", tls ? "https" : "http",
			 listen ? listen : "127.0.0.1:8080");
	}
	if (!c->token[0]) {
		const char *state = json_string_value(json_object_get(cfg, "state_dir"));
		char path[1024];
		snprintf(path, sizeof(path), "%s/admin.token", state ? state : ".");
		if (read_line(path, c->token, sizeof(c->token)) < 0)
			die("cannot read the admin token %s: %s (run hubctl as the user running hubd, "
			    "or pass --token)", path, strerror(errno));
	}
	json_decref(cfg);
}

/*
 * Calls the API. Returns the parsed JSON body (new reference, may be NULL
 * for 204) and the status in *status. Transport failures exit with advice.
 */
static json_t *call(struct ctl *c, const char *method, const char *path, json_t *body, long *status)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdrs = NULL;
	struct buf out = {0};
	char url[2048], auth[300];
	char *payload = NULL;
	json_t *res = NULL;
	CURLcode rc;

	if (!h)
		die("out of memory");
	snprintf(url, sizeof(url), "%s%s", c->url, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
	hdrs = curl_slist_append(hdrs, auth);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		payload = json_dumps(body, JSON_COMPACT);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK)
		die("cannot reach hubd at %s: %s (is hubd running? pass --url or set HUB_URL)", c->url,
		    curl_easy_strerror(rc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (out.len)
		res = json_loadb(out.data, out.len, 0, NULL);
	if (*status >= 400) {
		const char *msg = json_string_value(json_object_get(json_object_get(res, "error"), "message"));
		if (*status == 401)
			die("%s (the token was refused: check --token / HUB_TOKEN)", msg ? msg : "unauthorized");
		die("%s %s: HTTP %ld: %s", method, path, *status, msg ? msg : (out.data ? out.data : ""));
	}
	free(out.data);
	free(payload);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return res;
}

/* Renders a JSON value as a table cell. */
static void cell(const json_t *v, char *buf, size_t size)
{
	if (!v || json_is_null(v))
		snprintf(buf, size, "-");
	else if (json_is_string(v))
		snprintf(buf, size, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, size, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, size, "%g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, size, "%s", json_is_true(v) ? "yes" : "no");
	else {
		char *s = json_dumps(v, JSON_COMPACT);
		snprintf(buf, size, "%s", s ? s : "?");
		free(s);
	}
}

/* Looks up "a.b" in an object. */
static json_t *dig(json_t *obj, const char *path)
{
	char key[128];
	const char *dot;

	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		obj = json_object_get(obj, key);
		path = dot + 1;
	}
	return json_object_get(obj, path);
}

/* Prints rows (array of objects) with the given columns ("key:HEADER"). */
static void table(json_t *rows, const char *const *cols)
{
	size_t ncols = 0, width[16] = {0}, i, k;
	char text[512];
	json_t *row;

	while (cols[ncols] && ncols < 16)
		ncols++;
	for (k = 0; k < ncols; k++)
		width[k] = strlen(strchr(cols[k], ':') + 1);
	json_array_foreach(rows, i, row) {
		for (k = 0; k < ncols; k++) {
			char key[64];
			snprintf(key, sizeof(key), "%.*s", (int)(strchr(cols[k], ':') - cols[k]), cols[k]);
			cell(dig(row, key), text, sizeof(text));
			if (strlen(text) > width[k])
				width[k] = strlen(text) > 60 ? 60 : strlen(text);
		}
	}
	for (k = 0; k < ncols; k++)
		printf("%-*s%s", (int)width[k], strchr(cols[k], ':') + 1, k + 1 < ncols ? "  " : "\n");
	json_array_foreach(rows, i, row) {
		for (k = 0; k < ncols; k++) {
			char key[64];
			snprintf(key, sizeof(key), "%.*s", (int)(strchr(cols[k], ':') - cols[k]), cols[k]);
			cell(dig(row, key), text, sizeof(text));
			printf("%-*.*s%s", (int)width[k], (int)width[k], text, k + 1 < ncols ? "  " : "\n");
		}
	}
	if (json_array_size(rows) == 0)
		printf("(none)\n");
}

static void print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

	printf("%s\n", s ? s : "null");
	free(s);
}

/* Prints a response as JSON or as a table of `listkey` with columns. */
static void show(struct ctl *c, json_t *res, const char *listkey, const char *const *cols)
{
	if (c->json_out || !listkey) {
		print_json(res);
		return;
	}
	table(json_object_get(res, listkey), cols);
	if (json_string_value(json_object_get(res, "next")))
		printf("more: --after %s\n", json_string_value(json_object_get(res, "next")));
}

/* Parses "--config JSON-or-@file" values. */
static json_t *json_arg(const char *text, const char *what)
{
	json_error_t jerr;
	json_t *v = text[0] == '@' ? json_load_file(text + 1, 0, &jerr) : json_loads(text, 0, &jerr);

	if (!v)
		die("%s: %s (line %d): give inline JSON or @FILE", what, jerr.text, jerr.line);
	return v;
}

/* Path "prefix/<escaped segment>suffix". */
static void seg_path(char *out, size_t size, const char *prefix, const char *segment,
		     const char *suffix)
{
	char *esc = curl_easy_escape(NULL, segment, 0);

	snprintf(out, size, "%s/%s%s", prefix, esc ? esc : "", suffix);
	curl_free(esc);
}

/* Parses a small non-negative integer; 0 when not one. */
static int atoi_safe(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *end || v < 0 || v > 1000000 ? 0 : (int)v;
}

/* Reads one unlabelled gauge from /metrics text. */
static double metric_of(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return 0;
}

/* Live view: every connector's streams, records and errors, refreshed
 * every 2 s (rounds: 0 = until interrupted). */
static void watch(struct ctl *c, int rounds)
{
	for (int round = 0; rounds == 0 || round < rounds; round++) {
		long st;
		json_t *list = call(c, "GET", "/v1/connectors", NULL, &st), *conn;
		CURL *h = curl_easy_init();
		struct buf m = {0};
		char url[600];
		size_t i;

		snprintf(url, sizeof(url), "%s/metrics", c->url);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
		curl_easy_perform(h);
		curl_easy_cleanup(h);
		if (isatty(STDOUT_FILENO))
			printf("\033[H\033[2J");
		printf("hubd at %s: %.0f orders, %.0f shipments stored, %.0f jobs queued, %.0f dead letters\n\n",
		       c->url, metric_of(m.data ? m.data : "", "hub_store_orders"),
		       metric_of(m.data ? m.data : "", "hub_store_shipments"),
		       metric_of(m.data ? m.data : "", "hub_jobs_queued"),
		       metric_of(m.data ? m.data : "", "hub_dead_letters_pending"));
		printf("%-16s %-12s %-10s %-9s %9s  %-24s %s\n", "CONNECTOR", "PLUGIN", "STREAM", "STATE", "RECORDS",
		       "LAST SUCCESS", "LAST ERROR");
		json_array_foreach(json_object_get(list, "connectors"), i, conn) {
			char path[512];
			json_t *status, *s;
			size_t k;
			seg_path(path, sizeof(path), "/v1/connectors",
				 json_string_value(json_object_get(conn, "name")), "/status");
			status = call(c, "GET", path, NULL, &st);
			json_array_foreach(json_object_get(status, "streams"), k, s) {
				char last[64], err[64];
				cell(json_object_get(s, "last_success"), last, sizeof(last));
				cell(json_object_get(s, "last_error"), err, sizeof(err));
				printf("%-16.16s %-12.12s %-10.10s %-9.9s %9lld  %-24.24s %.60s\n",
				       json_string_value(json_object_get(conn, "name")),
				       json_string_value(json_object_get(conn, "plugin")),
				       json_string_value(json_object_get(s, "name")),
				       json_string_value(json_object_get(s, "state")),
				       (long long)json_integer_value(json_object_get(s, "records")), last, err);
			}
			json_decref(status);
		}
		fflush(stdout);
		json_decref(list);
		free(m.data);
		if (rounds == 0 || round + 1 < rounds)
			sleep(2);
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: hubctl [--url URL] [--token TOKEN] [--config HUBD_JSON] [--json] COMMAND ...\n"
		"\n"
		"  status                                   health and readiness of hubd\n"
		"  watch [ROUNDS]                           live view of every connector (every 2 s)\n"
		"  plugins list | load NAME | reload NAME | unload NAME\n"
		"  connectors list | show NAME | status NAME | remove NAME | pause NAME | resume NAME\n"
		"  connectors add NAME --plugin P --merchant M --settings JSON|@FILE\n"
		"  connectors configure NAME --settings JSON|@FILE\n"
		"  connectors sync NAME [--since RFC3339] [--stream S] [--wait]\n"
		"  orders list [--merchant M] [--connector C] [--status S] [--since T] [--sku S] [--limit N] [--after K]\n"
		"  orders show ID\n"
		"  shipments list [--merchant M] [--connector C] [--status S] [--since T] [--limit N] [--after K]\n"
		"  shipments show ID\n"
		"  dead-letters list [--connector C] [--limit N] [--after K] | replay ID\n"
		"  tokens list | create NAME --role admin|operator|viewer [--merchant M] | revoke NAME\n"
		"\n"
		"hubd and its admin token are found from hubd's config (--config, HUB_CONFIG, or\n"
		"%s/hubd.json); --url/--token or HUB_URL/HUB_TOKEN override.\n",
		HUB_SYSCONF_DIR);
}

/* Sub-command options shared by several commands. */
struct sub {
	const char *plugin, *merchant, *settings, *since, *stream, *status, *connector, *role, *sku;
	const char *limit, *after;
	int wait;
};

static int parse_sub(int argc, char **argv, struct sub *s)
{
	static const struct option opts[] = {
		{"plugin", required_argument, NULL, 'p'},   {"merchant", required_argument, NULL, 'm'},
		{"settings", required_argument, NULL, 'c'}, {"since", required_argument, NULL, 's'},
		{"stream", required_argument, NULL, 'S'},   {"status", required_argument, NULL, 't'},
		{"connector", required_argument, NULL, 'n'}, {"role", required_argument, NULL, 'r'},
		{"limit", required_argument, NULL, 'l'},     {"after", required_argument, NULL, 'a'},
		{"sku", required_argument, NULL, 'k'},       {"wait", no_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	int o;

	optind = 0; /* 0, not 1: glibc re-initialises its state (the main parse used "+") */
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'p': s->plugin = optarg; break;
		case 'm': s->merchant = optarg; break;
		case 'c': s->settings = optarg; break;
		case 's': s->since = optarg; break;
		case 'S': s->stream = optarg; break;
		case 't': s->status = optarg; break;
		case 'n': s->connector = optarg; break;
		case 'r': s->role = optarg; break;
		case 'l': s->limit = optarg; break;
		case 'a': s->after = optarg; break;
		case 'k': s->sku = optarg; break;
		case 'w': s->wait = 1; break;
		default: return -1;
		}
	}
	return optind;
}

/* Appends "&key=escaped" to a query string being built. */
static void qadd(char *q, size_t size, const char *key, const char *value)
{
	char *esc;
	size_t len = strlen(q);

	if (!value)
		return;
	esc = curl_easy_escape(NULL, value, 0);
	snprintf(q + len, size - len, "%s%s=%s", len ? "&" : "?", key, esc ? esc : "");
	curl_free(esc);
}


static const char *need(int argc, char **argv, int i, const char *what)
{
	if (i >= argc)
		die("missing %s (see hubctl --help)", what);
	return argv[i];
}

/* Polls the connector's status and draws a progress bar until its
 * on-demand sync is finished. */
static void wait_sync(struct ctl *c, const char *name)
{
	char path[512];
	long st;
	int tty = isatty(STDERR_FILENO);

	seg_path(path, sizeof(path), "/v1/connectors", name, "/status");
	for (int i = 0; i < 36000; i++) {
		json_t *res = call(c, "GET", path, NULL, &st);
		json_t *sync = json_object_get(res, "sync");
		const char *state = json_string_value(json_object_get(sync, "state"));
		double progress = json_number_value(json_object_get(sync, "progress"));
		long long records = (long long)json_integer_value(json_object_get(sync, "records"));
		int done = !state || strcmp(state, "running") != 0;
		if (tty || done) {
			int filled = (int)(progress * 30 + 0.5);
			fprintf(stderr, "%s[%.*s%*s] %3d%%  %lld records%s", tty ? "\r" : "",
				filled, "##############################", 30 - filled, "",
				(int)(progress * 100 + 0.5), records, done ? "\n" : "");
		}
		if (done) {
			const char *err = json_string_value(json_object_get(sync, "last_error"));
			json_decref(res);
			if (err && state && strcmp(state, "failed") == 0)
				die("sync of %s failed: %s", name, err);
			return;
		}
		json_decref(res);
		usleep(200000);
	}
	die("gave up waiting for the sync of %s after 2 hours; it goes on in hubd", name);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},   {"token", required_argument, NULL, 't'},
		{"config", required_argument, NULL, 'c'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct ctl c = {0};
	struct sub s = {0};
	const char *group, *verb;
	char path[1024], q[1024] = "";
	json_t *res = NULL, *body = NULL;
	long st = 0;
	int o, i;

	while ((o = getopt_long(argc, argv, "+u:t:c:jhV", opts, NULL)) != -1) {
		switch (o) {
		case 'u': snprintf(c.url, sizeof(c.url), "%s", optarg); break;
		case 't': snprintf(c.token, sizeof(c.token), "%s", optarg); break;
		case 'c': c.config_path = optarg; break;
		case 'j': c.json_out = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("hubctl %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	group = argv[optind];
	argc -= optind;
	argv += optind;
	if (strcmp(group, "watch") == 0) {
		discover(&c);
		watch(&c, argc > 1 ? atoi_safe(argv[1]) : 0);
		goto out;
	}
	if (strcmp(group, "status") == 0) {
		discover(&c);
		res = call(&c, "GET", "/readyz", NULL, &st);
		if (c.json_out)
			print_json(res);
		else
			printf("hubd at %s: %s\n", c.url, json_string_value(json_object_get(res, "status")));
		goto out;
	}
	verb = argc > 1 ? argv[1] : "list";
	i = 2;
	{
		/* Options may follow the positional arguments. */
		int n = parse_sub(argc - 1, argv + 1, &s);
		if (n < 0) {
			usage(stderr);
			return 2;
		}
		i = 1 + n;
		verb = i - 1 < argc && argv[1] && argv[1][0] != '-' ? argv[1] : verb;
	}
	discover(&c);

	if (strcmp(group, "plugins") == 0) {
		static const char *const cols[] = {"name:NAME", "version:VERSION", "generation:GEN",
						   "connectors:CONNECTORS", "description:DESCRIPTION", NULL};
		if (strcmp(verb, "list") == 0) {
			res = call(&c, "GET", "/v1/plugins", NULL, &st);
			show(&c, res, "plugins", cols);
		} else if (strcmp(verb, "load") == 0) {
			body = json_pack("{s:s}", "name", need(argc, argv, i, "plugin name"));
			res = call(&c, "POST", "/v1/plugins", body, &st);
			show(&c, res, NULL, NULL);
		} else if (strcmp(verb, "reload") == 0) {
			seg_path(path, sizeof(path), "/v1/plugins", need(argc, argv, i, "plugin name"), "/reload");
			res = call(&c, "POST", path, NULL, &st);
			show(&c, res, NULL, NULL);
		} else if (strcmp(verb, "unload") == 0) {
			seg_path(path, sizeof(path), "/v1/plugins", need(argc, argv, i, "plugin name"), "");
			res = call(&c, "DELETE", path, NULL, &st);
			printf("unloaded %s\n", argv[i]);
		} else {
			die("unknown plugins command \"%s\": list, load, reload, unload", verb);
		}
	} else if (strcmp(group, "connectors") == 0) {
		static const char *const cols[] = {"name:NAME", "plugin:PLUGIN", "merchant:MERCHANT",
						   "paused:PAUSED", NULL};
		if (strcmp(verb, "list") == 0) {
			res = call(&c, "GET", "/v1/connectors", NULL, &st);
			show(&c, res, "connectors", cols);
		} else if (strcmp(verb, "add") == 0) {
			const char *name = need(argc, argv, i, "connector name");
			if (!s.plugin || !s.merchant || !s.settings)
				die("connectors add needs --plugin, --merchant and --settings JSON|@FILE");
			body = json_pack("{s:s,s:s,s:s,s:o}", "name", name, "plugin", s.plugin, "merchant",
					 s.merchant, "config", json_arg(s.settings, "--settings"));
			res = call(&c, "POST", "/v1/connectors", body, &st);
			show(&c, res, NULL, NULL);
		} else if (strcmp(verb, "configure") == 0) {
			seg_path(path, sizeof(path), "/v1/connectors", need(argc, argv, i, "connector name"), "");
			if (!s.settings)
				die("connectors configure needs --settings JSON|@FILE");
			body = json_pack("{s:o}", "config", json_arg(s.settings, "--settings"));
			res = call(&c, "PUT", path, body, &st);
			show(&c, res, NULL, NULL);
		} else if (strcmp(verb, "show") == 0 || strcmp(verb, "status") == 0) {
			seg_path(path, sizeof(path), "/v1/connectors", need(argc, argv, i, "connector name"),
				 strcmp(verb, "show") == 0 ? "" : "/status");
			res = call(&c, "GET", path, NULL, &st);
			if (strcmp(verb, "status") == 0 && !c.json_out) {
				static const char *const scols[] = {
					"name:STREAM", "state:STATE", "last_success:LAST SUCCESS",
					"lag_s:LAG S", "records:RECORDS", "last_error:LAST ERROR", NULL};
				char circ[256];
				cell(dig(res, "circuit.state"), circ, sizeof(circ));
				printf("connector %s: %s, circuit %s\n", argv[i],
				       json_is_true(json_object_get(res, "paused")) ? "paused" : "active", circ);
				table(json_object_get(res, "streams"), scols);
			} else {
				show(&c, res, NULL, NULL);
			}
		} else if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0) {
			char suffix[16];
			snprintf(suffix, sizeof(suffix), "/%s", verb);
			seg_path(path, sizeof(path), "/v1/connectors", need(argc, argv, i, "connector name"),
				 suffix);
			res = call(&c, "POST", path, NULL, &st);
			if (c.json_out)
				print_json(res);
			else
				printf("%s %s\n", argv[i], strcmp(verb, "pause") == 0 ? "paused" : "resumed");
		} else if (strcmp(verb, "sync") == 0) {
			const char *name = need(argc, argv, i, "connector name");
			seg_path(path, sizeof(path), "/v1/connectors", name, "/sync");
			body = json_object();
			if (s.since)
				json_object_set_new(body, "since", json_string(s.since));
			if (s.stream)
				json_object_set_new(body, "stream", json_string(s.stream));
			res = call(&c, "POST", path, body, &st);
			if (c.json_out && !s.wait)
				print_json(res);
			else if (!s.wait)
				printf("sync of %s scheduled\n", name);
			if (s.wait)
				wait_sync(&c, name);
		} else if (strcmp(verb, "remove") == 0) {
			seg_path(path, sizeof(path), "/v1/connectors", need(argc, argv, i, "connector name"), "");
			res = call(&c, "DELETE", path, NULL, &st);
			printf("removed %s\n", argv[i]);
		} else {
			die("unknown connectors command \"%s\": list, show, status, add, configure, pause, "
			    "resume, sync, remove", verb);
		}
	} else if (strcmp(group, "orders") == 0 || strcmp(group, "shipments") == 0) {
		int orders = strcmp(group, "orders") == 0;
		static const char *const ocols[] = {"id:ID", "connector:CONNECTOR", "name:NAME",
						    "status:STATUS", "financial_status:PAYMENT",
						    "total:TOTAL", "currency:CUR", "updated_at:UPDATED", NULL};
		static const char *const scols[] = {"id:ID", "connector:CONNECTOR", "carrier:CARRIER",
						    "tracking_numbers:TRACKING", "status:STATUS",
						    "updated_at:UPDATED", NULL};
		if (strcmp(verb, "list") == 0) {
			qadd(q, sizeof(q), "merchant", s.merchant);
			qadd(q, sizeof(q), "connector", s.connector);
			qadd(q, sizeof(q), "status", s.status);
			qadd(q, sizeof(q), "updated_since", s.since);
			qadd(q, sizeof(q), "sku", orders ? s.sku : NULL);
			qadd(q, sizeof(q), "limit", s.limit);
			qadd(q, sizeof(q), "after", s.after);
			snprintf(path, sizeof(path), "/v1/%s%s", group, q);
			res = call(&c, "GET", path, NULL, &st);
			show(&c, res, group, orders ? ocols : scols);
		} else if (strcmp(verb, "show") == 0) {
			char prefix[32];
			snprintf(prefix, sizeof(prefix), "/v1/%s", group);
			seg_path(path, sizeof(path), prefix, need(argc, argv, i, "id"), "");
			res = call(&c, "GET", path, NULL, &st);
			print_json(res);
		} else {
			die("unknown %s command \"%s\": list, show", group, verb);
		}
	} else if (strcmp(group, "dead-letters") == 0) {
		static const char *const cols[] = {"id:ID", "connector:CONNECTOR", "kind:KIND",
						   "reason:REASON", "created_at:WHEN", NULL};
		if (strcmp(verb, "list") == 0) {
			qadd(q, sizeof(q), "connector", s.connector);
			qadd(q, sizeof(q), "limit", s.limit);
			qadd(q, sizeof(q), "after", s.after);
			snprintf(path, sizeof(path), "/v1/dead-letters%s", q);
			res = call(&c, "GET", path, NULL, &st);
			show(&c, res, "dead_letters", cols);
		} else if (strcmp(verb, "replay") == 0) {
			seg_path(path, sizeof(path), "/v1/dead-letters", need(argc, argv, i, "id"), "/replay");
			res = call(&c, "POST", path, NULL, &st);
			printf("dead letter %s replayed\n", argv[i]);
		} else {
			die("unknown dead-letters command \"%s\": list, replay", verb);
		}
	} else if (strcmp(group, "tokens") == 0) {
		static const char *const cols[] = {"name:NAME", "role:ROLE", "merchant:MERCHANT",
						   "created_at:CREATED", "last_used_at:LAST USED", NULL};
		if (strcmp(verb, "list") == 0) {
			res = call(&c, "GET", "/v1/tokens", NULL, &st);
			show(&c, res, "tokens", cols);
		} else if (strcmp(verb, "create") == 0) {
			const char *name = need(argc, argv, i, "token name");
			if (!s.role)
				die("tokens create needs --role admin|operator|viewer");
			body = json_pack("{s:s,s:s}", "name", name, "role", s.role);
			if (s.merchant)
				json_object_set_new(body, "merchant", json_string(s.merchant));
			res = call(&c, "POST", "/v1/tokens", body, &st);
			if (c.json_out)
				print_json(res);
			else
				printf("token %s (%s): %s\nkeep it now: it is not shown again\n", name, s.role,
				       json_string_value(json_object_get(res, "token")));
		} else if (strcmp(verb, "revoke") == 0) {
			seg_path(path, sizeof(path), "/v1/tokens", need(argc, argv, i, "token name"), "");
			res = call(&c, "DELETE", path, NULL, &st);
			printf("revoked %s\n", argv[i]);
		} else {
			die("unknown tokens command \"%s\": list, create, revoke", verb);
		}
	} else {
		usage(stderr);
		return 2;
	}
out:
	json_decref(res);
	json_decref(body);
	curl_global_cleanup();
	return 0;
}
