/*
 * test_conf.c - hubd's config loader: every kind of bad config is refused
 * with one precise "file: path: what" line, and a good one gets defaults.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "../harness/proc.h"

static char dir[256];

static int setup(void **state)
{
	return proc_tmpdir(dir, sizeof(dir), "hubconf");
}

static int teardown(void **state)
{
	proc_rmtree(dir);
	return 0;
}

/* Appends line + newline at dst (sized by the caller); returns bytes written. */
static int append_line(char *dst, const char *line)
{
	size_t n = strlen(line);

	memcpy(dst, line, n);
	dst[n] = '\n';
	dst[n + 1] = '\0';
	return (int)n + 1;
}

/* Loads text as a config; returns the problems joined by newlines. */
static char *load(const char *text, int *rc, struct hub_config *cfg)
{
	char path[512];
	struct cfg_problems p = {0};
	size_t len = 0;
	char *all;

	snprintf(path, sizeof(path), "%s/hubd.json", dir);
	assert_int_equal(proc_write_file(path, text), 0);
	*rc = config_load(path, cfg, &p);
	for (size_t i = 0; i < p.n; i++)
		len += strlen(p.lines[i]) + 1;
	all = calloc(1, len + 1);
	len = 0;
	for (size_t i = 0; i < p.n; i++)
		len += (size_t)append_line(all + len, p.lines[i]);
	cfg_problems_release(&p);
	return all;
}

/* Asserts that text is refused with a line containing `want`. */
static void refused(const char *text, const char *want)
{
	struct hub_config cfg;
	int rc;
	char *msg = load(text, &rc, &cfg);

	if (!strstr(msg, want))
		fail_msg("expected a problem containing [%s], got [%s]", want, msg);
	assert_int_equal(rc, -1);
	assert_non_null(strstr(msg, "/hubd.json: "));
	free(msg);
	config_release(&cfg);
}

static void good_config_gets_defaults(void **state)
{
	struct hub_config cfg;
	int rc;
	char *msg = load("{\"state_dir\":\"/tmp/x\",\"listen\":\"127.0.0.1:9000\"}", &rc, &cfg);

	assert_string_equal(msg, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg.store, "sqlite:/tmp/x/hub.db");
	assert_string_equal(cfg.listen_host, "127.0.0.1");
	assert_int_equal(cfg.listen_port, 9000);
	assert_null(cfg.redis);
	assert_int_equal(cfg.log_level, LOG_INFO);
	assert_int_equal(json_array_size(cfg.connectors), 0);
	assert_true(cfg.http_max_body > 0);
	assert_int_equal(cfg.max_in_flight, 256);
	assert_int_equal(cfg.max_host_connections, 64);
	assert_int_equal(cfg.max_total_connections, 1024);
	assert_int_equal(cfg.max_total_connections_set, 0);
	assert_int_equal(cfg.start_spread_s, 900);
	assert_int_equal(cfg.leases_enabled, 1);
	assert_int_equal(cfg.lease_ttl_s, 30);
	assert_int_equal(cfg.retry_base_ms, 500);
	assert_int_equal(cfg.retry_cap_ms, 60000);
	assert_int_equal(cfg.retry_max_attempts, 8);
	free(msg);
	config_release(&cfg);
}

static void full_config_accepted(void **state)
{
	struct hub_config cfg;
	int rc;
	char *msg = load("{\"state_dir\":\"/tmp/x\",\"listen\":\"[::1]:8443\","
			 "\"store\":\"postgresql://hub@localhost/hub\",\"redis\":\"redis://127.0.0.1:6379/0\","
			 "\"plugin_dir\":\"/opt/p\",\"log\":{\"level\":\"debug\",\"format\":\"json\"},"
			 "\"http\":{\"max_body_bytes\":65536,\"timeout_s\":5,\"webhook_workers\":3},"
			 "\"outbound\":{\"timeout_ms\":2000,\"max_in_flight\":1000,\"max_host_connections\":200,"
			 "\"max_total_connections\":2000},\"sync\":{\"start_spread_s\":0},"
			 "\"leases\":{\"enabled\":false,\"ttl_s\":5},"
			 "\"retry\":{\"base_ms\":50,\"cap_ms\":2000,\"max_attempts\":3},"
			 "\"connectors\":[{\"name\":\"acme_shop\",\"plugin\":\"shopify\",\"merchant\":\"acme\","
			 "\"config\":{\"shop\":\"a.myshopify.com\"},\"poll_interval_s\":60,"
			 "\"backfill_since\":\"2026-01-01T00:00:00Z\"}]}",
			 &rc, &cfg);

	assert_string_equal(msg, "");
	assert_int_equal(rc, 0);
	assert_string_equal(cfg.listen_host, "::1");
	assert_int_equal(cfg.listen_port, 8443);
	assert_string_equal(cfg.store, "postgresql://hub@localhost/hub");
	assert_string_equal(cfg.plugin_dir, "/opt/p");
	assert_int_equal(cfg.log_level, LOG_DEBUG);
	assert_int_equal(cfg.log_format, LOG_JSON);
	assert_int_equal(cfg.http_max_body, 65536);
	assert_int_equal(cfg.webhook_workers, 3);
	assert_int_equal(cfg.request_timeout_ms, 2000);
	assert_int_equal(cfg.max_in_flight, 1000);
	assert_int_equal(cfg.max_host_connections, 200);
	assert_int_equal(cfg.max_total_connections, 2000);
	assert_int_equal(cfg.start_spread_s, 0);
	assert_int_equal(cfg.leases_enabled, 0);
	assert_int_equal(cfg.lease_ttl_s, 5);
	assert_int_equal(cfg.retry_base_ms, 50);
	assert_int_equal(cfg.retry_cap_ms, 2000);
	assert_int_equal(cfg.retry_max_attempts, 3);
	assert_int_equal(json_array_size(cfg.connectors), 1);
	free(msg);
	config_release(&cfg);
}

/* The largest policies that fit in a tracking step's lease are accepted. */
static void retry_limits_accepted(void **state)
{
	static const char *const good[] = {
		"{\"state_dir\":\"/x\",\"retry\":{\"max_attempts\":16}}",
		"{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":60000,\"cap_ms\":600000,\"max_attempts\":4}}",
		"{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":1,\"cap_ms\":1,\"max_attempts\":100}}",
		"{\"state_dir\":\"/x\",\"retry\":{\"cap_ms\":600000,\"max_attempts\":1}}",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct hub_config cfg;
		int rc;
		char *msg = load(good[i], &rc, &cfg);

		if (rc != 0)
			fail_msg("%s refused: %s", good[i], msg);
		free(msg);
		config_release(&cfg);
	}
}

/* store_connections: PostgreSQL's lanes; absent means the store's default
 * (0 here), and SQLite accepts 1 (its only writer). */
static void store_connections_accepted(void **state)
{
	static const struct {
		const char *text;
		unsigned want;
	} good[] = {
		{"{\"state_dir\":\"/x\",\"store\":\"postgresql://db/hub\"}", 0},
		{"{\"state_dir\":\"/x\",\"store\":\"postgresql://db/hub\",\"store_connections\":4}", 4},
		{"{\"state_dir\":\"/x\",\"store\":\"postgres://db/hub\",\"store_connections\":8}", 8},
		{"{\"state_dir\":\"/x\",\"store_connections\":1}", 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct hub_config cfg;
		int rc;
		char *msg = load(good[i].text, &rc, &cfg);

		if (rc != 0)
			fail_msg("%s refused: %s", good[i].text, msg);
		assert_int_equal(cfg.store_connections, good[i].want);
		free(msg);
		config_release(&cfg);
	}
}

static void bad_configs_refused(void **state)
{
	refused("{\"state_dir\":\"/x\",", "invalid JSON");
	refused("[1]", "(root): must be an object, found an array");
	refused("{}", "state_dir: required key missing");
	refused("{\"state_dir\":\"/x\",\"colour\":1}", "colour: unknown key");
	refused("{\"state_dir\":7}", "state_dir: must be a string, found an integer");
	refused("{\"state_dir\":\"/x\",\"listen\":\"8080\"}", "listen: \"8080\" is not HOST:PORT");
	refused("{\"state_dir\":\"/x\",\"listen\":\"h:99999\"}", "listen:");
	refused("{\"state_dir\":\"/x\",\"store\":\"mysql://x\"}", "store: \"mysql://x\" must be sqlite:PATH");
	refused("{\"state_dir\":\"/x\",\"store\":\"sqlite:\"}", "store: sqlite: needs a file path");
	refused("{\"state_dir\":\"/x\",\"store_connections\":2}",
		"hubd.json: store_connections: 2 connections need a PostgreSQL store: SQLite has one writer");
	refused("{\"state_dir\":\"/x\",\"store\":\"postgresql://db/hub\",\"store_connections\":9}",
		"store_connections: must be between 1 and 8, found 9");
	refused("{\"state_dir\":\"/x\",\"store\":\"postgresql://db/hub\",\"store_connections\":0}",
		"store_connections: must be between 1 and 8, found 0");
	refused("{\"state_dir\":\"/x\",\"store\":\"postgresql://db/hub\",\"store_connections\":\"2\"}",
		"store_connections: must be an integer, found a string");
	{
		/* A wrong type is one problem, not also a judgement of its value. */
		struct hub_config cfg;
		int rc;
		char *msg = load("{\"state_dir\":\"/x\",\"store_connections\":\"3\"}", &rc, &cfg);

		assert_int_equal(rc, -1);
		assert_non_null(strstr(msg, "store_connections: must be an integer, found a string"));
		assert_null(strstr(msg, "PostgreSQL"));
		free(msg);
		config_release(&cfg);
	}
	refused("{\"state_dir\":\"/x\",\"redis\":\"http://r\"}", "redis:");
	refused("{\"state_dir\":\"/x\",\"log\":{\"level\":\"loud\"}}", "log.level: \"loud\" must be one of");
	refused("{\"state_dir\":\"/x\",\"log\":{\"format\":\"xml\"}}", "log.format: \"xml\" must be text or json");
	refused("{\"state_dir\":\"/x\",\"log\":{\"colour\":true}}", "log.colour: unknown key");
	refused("{\"state_dir\":\"/x\",\"http\":{\"max_body_bytes\":1}}", "http.max_body_bytes: must be between");
	refused("{\"state_dir\":\"/x\",\"http\":{\"webhook_workers\":65}}",
		"http.webhook_workers: must be between 0 and 64");
	refused("{\"state_dir\":\"/x\",\"http\":{\"tls_cert\":\"/c.pem\"}}", "http.tls_key: TLS needs both");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"timeout_ms\":\"1s\"}}",
		"outbound.timeout_ms: must be an integer, found a string");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_in_flight\":0}}",
		"hubd.json: outbound.max_in_flight: must be between 1 and 100000, found 0");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_in_flight\":\"many\"}}",
		"outbound.max_in_flight: must be an integer, found a string");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_host_connections\":-1}}",
		"outbound.max_host_connections: must be between 1 and 10000, found -1");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_total_connections\":1000000}}",
		"outbound.max_total_connections: must be between 1 and 100000, found 1000000");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_total_connections\":32}}",
		"outbound.max_total_connections: max_total_connections (32) must be at least "
		"max_host_connections (64)");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_host_connections\":3000}}",
		"outbound.max_host_connections: max_total_connections (1024) must be at least "
		"max_host_connections (3000)");
	refused("{\"state_dir\":\"/x\",\"outbound\":{\"max_connections\":3}}",
		"outbound.max_connections: unknown key (allowed here: ca_file, proxy, timeout_ms, "
		"max_response_bytes, max_in_flight, max_host_connections, max_total_connections)");
	refused("{\"state_dir\":\"/x\",\"sync\":{\"start_spread_s\":-5}}",
		"sync.start_spread_s: must be between 0 and 86400, found -5");
	refused("{\"state_dir\":\"/x\",\"sync\":{\"spread\":1}}", "sync.spread: unknown key");
	refused("{\"state_dir\":\"/x\",\"leases\":{\"ttl_s\":1}}", "leases.ttl_s: must be between 2 and 3600");
	refused("{\"state_dir\":\"/x\",\"leases\":{\"owner\":\"me\"}}", "leases.owner: unknown key");
	refused("{\"state_dir\":\"/x\",\"retry\":3}", "retry: must be an object, found an integer");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":0}}",
		"hubd.json: retry.base_ms: must be between 1 and 60000, found 0");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":60001}}",
		"retry.base_ms: must be between 1 and 60000, found 60001");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":0.5}}",
		"retry.base_ms: must be an integer, found a number");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"cap_ms\":0}}",
		"retry.cap_ms: must be between 1 and 600000, found 0");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"cap_ms\":600001}}",
		"retry.cap_ms: must be between 1 and 600000, found 600001");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"cap_ms\":\"1m\"}}",
		"retry.cap_ms: must be an integer, found a string");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"max_attempts\":0}}",
		"retry.max_attempts: must be between 1 and 100, found 0");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"max_attempts\":101}}",
		"retry.max_attempts: must be between 1 and 100, found 101");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"max_attempts\":-3}}",
		"retry.max_attempts: must be between 1 and 100, found -3");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":1000,\"cap_ms\":500}}",
		"retry.cap_ms: cap_ms (500) must be at least base_ms (1000): raise the first or lower the second");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"cap_ms\":400}}",
		"retry.cap_ms: cap_ms (400) must be at least base_ms (500)");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"base_ms\":59000,\"cap_ms\":58000}}",
		"retry.cap_ms: cap_ms (58000) must be at least base_ms (59000)");
	/* 7 doubling windows (63.5 s) and then 60 s each: 16 attempts fit in
	 * the 10-minute tracking lease, 17 do not. */
	refused("{\"state_dir\":\"/x\",\"retry\":{\"max_attempts\":17}}",
		"retry.max_attempts: 17 attempts with base_ms 500 and cap_ms 60000 may wait up to 603500 ms in all "
		"(the sum of their backoff windows), more than the 600000 ms a tracking step holds its numbers: "
		"lower max_attempts or cap_ms");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"max_attempts\":100,\"base_ms\":1000}}",
		"retry.max_attempts: 100 attempts with base_ms 1000 and cap_ms 60000 may wait up to 5643000 ms");
	refused("{\"state_dir\":\"/x\",\"retry\":{\"attempts\":3}}",
		"retry.attempts: unknown key (allowed here: base_ms, cap_ms, max_attempts)");
	refused("{\"state_dir\":\"/x\",\"connectors\":{}}", "connectors: must be an array, found an object");
	refused("{\"state_dir\":\"/x\",\"connectors\":[3]}", "connectors[0]: must be an object");
	refused("{\"state_dir\":\"/x\",\"connectors\":[{\"name\":\"a\",\"plugin\":\"shopify\"}]}",
		"connectors[0].merchant: required key missing");
	refused("{\"state_dir\":\"/x\",\"connectors\":[{\"name\":\"A B\",\"plugin\":\"p\",\"merchant\":\"m\","
		"\"config\":{}}]}", "connectors[0]: name \"A B\" must be");
	refused("{\"state_dir\":\"/x\",\"connectors\":[{\"name\":\"a\",\"plugin\":\"../x\",\"merchant\":\"m\","
		"\"config\":{}}]}", "connectors[0]: plugin \"../x\" must be");
	refused("{\"state_dir\":\"/x\",\"connectors\":[{\"name\":\"a\",\"plugin\":\"p\",\"merchant\":\"m\","
		"\"config\":{}},{\"name\":\"a\",\"plugin\":\"p\",\"merchant\":\"m\",\"config\":{}}]}",
		"connectors[1]: name \"a\" is already used by connectors[0]");
	refused("{\"state_dir\":\"/x\",\"connectors\":[{\"name\":\"a\",\"plugin\":\"p\",\"merchant\":\"m\","
		"\"config\":{},\"backfill_since\":\"yesterday\"}]}", "connectors[0]: backfill_since:");
	refused("{\"state_dir\":\"/x\",\"connectors\":[{\"name\":\"a\",\"plugin\":\"p\",\"merchant\":\"m\","
		"\"config\":{},\"poll_interval_s\":0}]}", "poll_interval_s must be between 1 and 86400");
	refused("{\"state_dir\":\"/x\",\"state_dir\":\"/y\"}", "duplicate object key");
}

static void every_problem_reported(void **state)
{
	struct hub_config cfg;
	int rc, lines = 0;
	char *msg = load("{\"listen\":\"x\",\"bogus\":1,\"log\":{\"level\":\"loud\"}}", &rc, &cfg);

	for (char *c = msg; *c; c++)
		lines += *c == '\n';
	assert_int_equal(rc, -1);
	assert_int_equal(lines, 4); /* listen, bogus, log.level, state_dir */
	free(msg);
	config_release(&cfg);
}

static void missing_file_refused(void **state)
{
	struct hub_config cfg;
	struct cfg_problems p = {0};
	char path[512];

	snprintf(path, sizeof(path), "%s/absent.json", dir);
	assert_int_equal(config_load(path, &cfg, &p), -1);
	assert_int_equal(p.n, 1);
	assert_non_null(strstr(p.lines[0], "absent.json: (file): cannot read: No such file"));
	cfg_problems_release(&p);
	config_release(&cfg);
}

static void paths_checked(void **state)
{
	struct hub_config cfg;
	struct cfg_problems p = {0};
	char text[1024], file[512];
	int rc;
	char *msg;

	snprintf(file, sizeof(file), "%s/afile", dir);
	proc_write_file(file, "x");
	snprintf(text, sizeof(text), "{\"state_dir\":\"%s/afile/sub\",\"plugin_dir\":\"%s/nope\"}", dir, dir);
	msg = load(text, &rc, &cfg);
	assert_int_equal(rc, 0);
	free(msg);
	assert_int_equal(config_check_paths(&cfg, &p), -1);
	assert_int_equal(p.n, 2);
	assert_non_null(strstr(p.lines[0], "state_dir: cannot create"));
	assert_non_null(strstr(p.lines[1], "plugin_dir:"));
	assert_non_null(strstr(p.lines[1], "No such file or directory"));
	cfg_problems_release(&p);
	config_release(&cfg);
}

/* Checks `text` with the hard limit of open files lowered to `hard` (in a
 * child: a lowered hard limit cannot be raised again). Returns the child's
 * exit: 0 valid, 1 refused with `want` in the one problem, 2 otherwise. */
static int check_with_hard_limit(const char *text, rlim_t hard, const char *want)
{
	pid_t pid;
	int status;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct hub_config cfg;
		struct cfg_problems p = {0};
		struct rlimit rl;
		int rc;
		char *msg = load(text, &rc, &cfg);

		free(msg);
		if (rc != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
			_exit(2);
		if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > hard) {
			rl.rlim_max = hard;
			if (rl.rlim_cur > hard)
				rl.rlim_cur = hard;
			if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
				_exit(2);
		}
		rc = config_check_paths(&cfg, &p);
		if (rc == 0)
			_exit(0);
		if (p.n == 1 && strstr(p.lines[0], want))
			_exit(1);
		fprintf(stderr, "unexpected: %s\n", p.n ? p.lines[0] : "(none)");
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* A connection limit set above what the process may open is refused at
 * start; the default one is not (hubd lowers it to fit instead). */
static void connections_checked_against_open_files(void **state)
{
	char text[1024];

	snprintf(text, sizeof(text), "{\"state_dir\":\"%s/st\",\"plugin_dir\":\"%s\","
		 "\"outbound\":{\"max_total_connections\":5000}}", dir, dir);
	assert_int_equal(check_with_hard_limit(text, 1024,
					       "hubd.json: outbound.max_total_connections: 5000 connections need more "
					       "open files than this process may have (ulimit -Hn is 1024, of which "
					       "hubd keeps 128 for itself)"),
			 1);
	assert_int_equal(check_with_hard_limit(text, 8192, "-"), 0);
	snprintf(text, sizeof(text), "{\"state_dir\":\"%s/st\",\"plugin_dir\":\"%s\"}", dir, dir);
	assert_int_equal(check_with_hard_limit(text, 512, "-"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(good_config_gets_defaults),
		cmocka_unit_test(full_config_accepted),
		cmocka_unit_test(retry_limits_accepted),
		cmocka_unit_test(store_connections_accepted),
		cmocka_unit_test(bad_configs_refused),
		cmocka_unit_test(every_problem_reported),
		cmocka_unit_test(missing_file_refused),
		cmocka_unit_test(paths_checked),
		cmocka_unit_test(connections_checked_against_open_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
