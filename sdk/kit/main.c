/*
 * main.c - hub-plugin-kit PLUGIN.so [CASES_DIR]: a partner's conformance run.
 *
 * Order of checks: the ABI (hubd's own loader: descriptor, version, size,
 * callbacks per capability, config schema, name), the exported symbols, the
 * config schema summary, the data-driven cases (with the webhook promises
 * HUB_CAP_WEBHOOKS_SCOPED and HUB_CAP_WEBHOOKS_REENTRANT when declared:
 * cases.c, scope.c, reentrant.c), then N load/unload cycles
 * (default 1,000) that must leave no file descriptor, mapping, generation or
 * heap growth behind. Run it under valgrind --leak-check=full to see leaks
 * inside the plugin itself. Exit status: 0 when every check passed, 1 when
 * one failed, 2 on a usage error.
 */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "connector.h"
#include "host.h"
#include "jsonschema.h"
#include "kit.h"
#include "log.h"
#include "plugin.h"

/* Defaults of the concurrent webhook check (HUB_CAP_WEBHOOKS_REENTRANT). */
#define KIT_THREADS 4
#define KIT_ROUNDS 100
#define KIT_REENTRANT_SECONDS 60.0

static void usage(FILE *out)
{
	fprintf(out,
		"usage: hub-plugin-kit [--cycles N] [--threads N] [--rounds N] [--verbose]\n"
		"                      PLUGIN.so [CASES_DIR]\n"
		"\n"
		"Checks a connector plugin against plugin ABI v1: the descriptor, that the\n"
		".so exports only hub_plugin_v1, the config schema, every case folder of\n"
		"CASES_DIR (each run twice; signed webhooks also with a wrong signature),\n"
		"the webhook promises the plugin declares (HUB_CAP_WEBHOOKS_SCOPED: no value\n"
		"a call allocates outlives it; HUB_CAP_WEBHOOKS_REENTRANT: every webhook\n"
		"delivery of the cases again from --threads threads at once (default %d),\n"
		"--rounds times each (default %d), answering as it did alone), and N\n"
		"load/unload cycles (default 1000). One line per check; exit status 0 when\n"
		"all pass, 1 otherwise. Case format: docs/sdk.md. Environment:\n"
		"HUB_FIXTURES expands \"$FIXTURES/\" in body_file paths.\n",
		KIT_THREADS, KIT_ROUNDS);
}

/* A non-negative integer option value into *out. 0, or -1 when invalid. */
static int parse_count(const char *text, long max, long *out)
{
	char *end;
	long v = strtol(text, &end, 10);

	if (!*text || *end || v < 0 || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Number of open file descriptors. */
static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	long n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Number of memory mappings of files under `dir` (the generation copies,
 * which stay mapped - as deleted files - while a library is open). */
static long count_maps_under(const char *dir)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 256];
	long n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, dir))
			n++;
	fclose(f);
	return n;
}

static size_t heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

/* One load (+ a connector when a config is known) and unload. 0 or -1. */
static int cycle(struct plugin_registry *reg, const char *name, const json_t *config,
		 struct hub_error *err)
{
	if (plugin_load(reg, name, err) < 0)
		return -1;
	if (config) {
		if (connector_create(reg, "kit_cycle", "kit", name, config, NULL, err) < 0)
			return -1;
		if (connector_destroy(reg, "kit_cycle", err) < 0)
			return -1;
	}
	return plugin_unload(reg, name, err);
}

static void check_cycles(struct plugin_registry *reg, const char *name, const char *cases,
			 long cycles)
{
	json_t *config = cases ? kit_first_config(cases) : NULL;
	const char *gen_dir = plugin_registry_gen_dir(reg);
	long fds0, fds1, maps1, i, warm = cycles < 10 ? cycles : 10;
	struct hub_error err;
	size_t heap0, heapm, heap1;
	char what[64];
	long growth, first, second, half;

	snprintf(what, sizeof(what), "load/unload x%ld", cycles);
	/* a connector per cycle too, when the first case's config creates one */
	if (config) {
		if (plugin_load(reg, name, &err) == 0 &&
		    connector_create(reg, "kit_cycle", "kit", name, config, NULL, &err) == 0)
			connector_destroy(reg, "kit_cycle", &err);
		else {
			json_decref(config);
			config = NULL;
		}
		plugin_unload(reg, name, &err);
	}
	/* warm up: the first cycles fill caches (libltdl, glibc's dl state) */
	for (i = 0; i < warm; i++)
		if (cycle(reg, name, config, &err) < 0)
			goto failed;
	fds0 = count_fds();
	heap0 = heap_in_use();
	half = warm + (cycles - warm) / 2;
	heapm = heap0;
	for (i = warm; i < cycles; i++) {
		if (i == half)
			heapm = heap_in_use();
		if (cycle(reg, name, config, &err) < 0)
			goto failed;
	}
	fds1 = count_fds();
	maps1 = count_maps_under(gen_dir);
	heap1 = heap_in_use();
	growth = (long)heap1 - (long)heap0;
	first = (long)heapm - (long)heap0;
	second = (long)heap1 - (long)heapm;
	json_decref(config);

	if (plugin_registry_live_generations(reg) != 0) {
		kit_fail(what, "%u generation(s) still open after unloading",
			 plugin_registry_live_generations(reg));
		return;
	}
	if (fds1 > fds0) {
		kit_fail(what, "%ld file descriptor(s) leaked: close what create() opens in "
			 "destroy() (plugins should open nothing)", fds1 - fds0);
		return;
	}
	if (maps1 > 0) {
		kit_fail(what, "%ld mapping(s) of closed generations remain: the library is "
			 "never unloaded (STB_GNU_UNIQUE symbols from C++, -z nodelete, or a "
			 "thread it started?)", maps1);
		return;
	}
	/* A leak per cycle grows the heap in both halves of the run; the
	 * allocator's noise is a one-off jump in one of them. */
	if (first > 32 * 1024 && second > 32 * 1024 && growth > (cycles - warm) * 16) {
		kit_fail(what, "heap grew by %ld bytes (%ld per cycle): destroy() must free "
			 "everything create() allocated; run the kit under valgrind "
			 "--leak-check=full to find it", growth, growth / (cycles - warm));
		return;
	}
	kit_pass(what, "%s; heap %+ld bytes, fds %+ld, no mapping left",
		 config ? "with a connector each time" : "without connector", growth,
		 fds1 - fds0);
	return;
failed:
	kit_fail(what, "cycle %ld failed: %s", i + 1, err.message);
	json_decref(config);
}

static void describe(const struct plugin *p)
{
	const struct plugin_gen *g = p->cur;
	const struct hub_stream_def *s;
	json_t *caps = host_capabilities_json(g->desc.capabilities);
	char *capstr = json_dumps(caps, JSON_COMPACT);
	char secrets[256] = "";
	size_t i, off = 0;
	int nstreams = 0;

	for (s = g->desc.streams; s && s->name; s++)
		nstreams++;
	kit_pass("abi", "%s %s loads: ABI %u, struct_size %u, capabilities %s, %d stream(s)",
		 g->desc.name, g->desc.version, g->desc.abi_version, g->desc.struct_size,
		 capstr ? capstr : "?", nstreams);
	free(capstr);
	json_decref(caps);
	for (i = 0; i < g->nsecret_fields && off < sizeof(secrets); i++) {
		int n = snprintf(secrets + off, sizeof(secrets) - off, "%s%s", i ? ", " : "",
				 g->secret_fields[i]);

		if (n < 0)
			break;
		off += (size_t)n;
	}
	kit_pass("config schema", "valid JSON Schema; %zu propert%s; secret fields: %s",
		 json_object_size(json_object_get(g->config_schema, "properties")),
		 json_object_size(json_object_get(g->config_schema, "properties")) == 1 ? "y" : "ies",
		 g->nsecret_fields ? secrets : "none (mark credentials with \"x-secret\": true)");
}

int main(int argc, char **argv)
{
	const char *so = NULL, *cases = NULL, *why = NULL;
	char *real = NULL, *dir, *base, name[PLUGIN_NAME_MAX + 8];
	struct plugin_registry *reg = NULL;
	struct js_registry *schemas = NULL;
	struct kit_opts opts = {KIT_THREADS, KIT_ROUNDS, KIT_REENTRANT_SECONDS};
	struct hub_error err;
	long cycles = 1000, v;
	json_t *extra;
	int i, verbose = 0, rc;
	size_t len;

	/* before any JSON value exists: the scoped check's allocator */
	kit_scope_install();
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cycles") && i + 1 < argc) {
			if (parse_count(argv[++i], LONG_MAX, &cycles) < 0) {
				usage(stderr);
				return 2;
			}
		} else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
			if (parse_count(argv[++i], 64, &v) < 0) {
				usage(stderr);
				return 2;
			}
			opts.threads = (unsigned)v;
		} else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			if (parse_count(argv[++i], 1000000, &v) < 0) {
				usage(stderr);
				return 2;
			}
			opts.rounds = (unsigned)v;
		} else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
			verbose = 1;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			usage(stderr);
			return 2;
		} else if (!so) {
			so = argv[i];
		} else if (!cases) {
			cases = argv[i];
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!so) {
		usage(stderr);
		return 2;
	}
	/* plugin logs (host->log) stay visible from warnings up */
	log_setup(verbose ? LOG_DEBUG : LOG_WARN, LOG_TEXT);

	printf("hub-plugin-kit: %s%s%s\n", so, cases ? " with cases from " : "",
	       cases ? cases : "");
	real = realpath(so, NULL);
	if (!real) {
		kit_fail("abi", "%s: cannot resolve the path", so);
		return kit_summary();
	}
	base = strrchr(real, '/');
	*base++ = '\0';
	dir = real;
	len = strlen(base);
	if (len < 4 || strcmp(base + len - 3, ".so") || len - 3 > PLUGIN_NAME_MAX) {
		kit_fail("abi", "%s: a plugin file is named <name>.so", so);
		goto out;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(len - 3), base);
	if (!plugin_name_valid(name)) {
		kit_fail("abi", "%s: the file name must be <name>.so with a name of lower-case "
			 "letters, digits and '_' (the name hubd loads it by)", so);
		goto out;
	}

	schemas = js_registry_new();
	if (!schemas || js_registry_add_builtin(schemas, &err) < 0) {
		kit_fail("abi", "cannot load the canonical schemas: %s", schemas ? err.message : "");
		goto out;
	}
	reg = plugin_registry_new(dir, NULL, schemas, &err);
	if (!reg) {
		kit_fail("abi", "%s", err.message);
		goto out;
	}

	/* 1. the ABI, through hubd's own loader */
	if (plugin_load(reg, name, &err) < 0) {
		kit_fail("abi", "%s", err.message);
		goto out;
	}
	describe(plugin_find(reg, name));

	/* 2. nothing but the descriptor exported */
	{
		char path[PATH_MAX + PLUGIN_NAME_MAX + 8];

		snprintf(path, sizeof(path), "%s/%s", dir, base);
		extra = kit_extra_exports(path, HUB_PLUGIN_SYMBOL, &why);
	}
	if (!extra) {
		kit_fail("exports", "cannot read the dynamic symbol table: %s", why);
	} else if (json_array_size(extra)) {
		char *list = json_dumps(extra, JSON_COMPACT);

		kit_fail("exports", "exports %zu symbol(s) besides %s: %s; build with "
			 "-fvisibility=hidden and export only %s (libtool: -export-symbols-regex "
			 "'^%s$', or a linker version script)", json_array_size(extra),
			 HUB_PLUGIN_SYMBOL, list ? list : "?", HUB_PLUGIN_SYMBOL,
			 HUB_PLUGIN_SYMBOL);
		free(list);
	} else {
		kit_pass("exports", "only %s", HUB_PLUGIN_SYMBOL);
	}
	json_decref(extra);

	/* 3. the cases */
	if (cases) {
		struct stat st;

		if (stat(cases, &st) < 0 || !S_ISDIR(st.st_mode))
			kit_fail("cases", "%s is not a directory", cases);
		else if (kit_run_cases(reg, name, cases, &opts) == 0)
			kit_fail("cases", "no case folder (a directory with case.json) in %s", cases);
	} else {
		kit_skip("cases", "no CASES_DIR given");
	}

	/* 4. load/unload cycles */
	plugin_unload(reg, name, &err);
	if (cycles > 0)
		check_cycles(reg, name, cases, cycles);
out:
	rc = kit_summary();
	plugin_registry_free(reg);
	js_registry_free(schemas);
	free(real);
	return rc;
}
