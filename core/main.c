/*
 * main.c - hubd's command line: --config, --check-config, --version,
 * --help. Everything else lives in daemon.c.
 */
#include "config.h"
#include "hub.h"
#include "jarena.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/plugin.h>

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: hubd [--config FILE] [--check-config]\n"
		"\n"
		"The integration hub daemon: syncs orders and shipments from marketplace and\n"
		"carrier connectors into one store, receives webhooks, serves the admin API.\n"
		"\n"
		"  -c, --config FILE    configuration file (default %s/hubd.json)\n"
		"      --check-config   validate the configuration and exit: 0 when valid,\n"
		"                       1 with one line per problem otherwise\n"
		"      --print-routes   print every HTTP route hubd serves and exit\n"
		"  -V, --version        print the version and exit\n"
		"  -h, --help           print this help and exit\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop gracefully, SIGHUP re-reads the configuration.\n",
		HUB_SYSCONF_DIR);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 'C'},
		{"print-routes", no_argument, NULL, 'R'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = HUB_SYSCONF_DIR "/hubd.json";
	int check_only = 0, opt, rc;
	struct hub hub;

	/* Before any thread or JSON value: webhook calls of plugins declaring
	 * HUB_CAP_WEBHOOKS_SCOPED allocate from per-thread scratch regions. */
	jarena_install();
	while ((opt = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			check_only = 1;
			break;
		case 'R':
			hub_print_routes(stdout);
			return 0;
		case 'V':
			printf("hubd %s (plugin ABI v%u)\n", PACKAGE_VERSION, HUB_ABI_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "hubd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check_only) {
		struct hub_config cfg;
		struct cfg_problems problems = {0};
		rc = config_load(config_path, &cfg, &problems);
		if (rc == 0)
			rc = config_check_paths(&cfg, &problems);
		for (size_t i = 0; i < problems.n; i++)
			fprintf(stderr, "%s\n", problems.lines[i]);
		if (rc == 0)
			printf("%s: configuration is valid\n", config_path);
		cfg_problems_release(&problems);
		config_release(&cfg);
		return rc == 0 ? 0 : 1;
	}
	if (hub_start(&hub, config_path) < 0) {
		hub_release(&hub);
		return 1;
	}
	rc = hub_run(&hub);
	hub_release(&hub);
	return rc;
}
