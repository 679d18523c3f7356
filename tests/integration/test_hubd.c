/*
 * test_hubd.c - hubd as users run it: a process started with a config
 * file. Bad input at start (missing or malformed config, port in use,
 * unwritable state dir) gives one clear line, a non-zero exit and nothing
 * created; a good start serves /healthz, /readyz and /metrics; SIGHUP
 * re-reads the config (a bad one is refused and the daemon keeps serving);
 * SIGTERM stops it with exit 0 within 10 s.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "../harness/http.h"
#include "../harness/proc.h"

static char dir[256], hubd[512];

static int setup(void **state)
{
	proc_build_path(hubd, sizeof(hubd), "hubd");
	return proc_tmpdir(dir, sizeof(dir), "hubd-test");
}

static int teardown(void **state)
{
	proc_rmtree(dir);
	return 0;
}

/* Writes a config with the given listen port and state dir; returns its path. */
static const char *write_config(const char *name, int port, const char *state, const char *extra)
{
	static char path[512];
	char text[2048];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(text, sizeof(text),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s\",\"plugin_dir\":\"%s\"%s}", port,
		 state, dir, extra ? extra : "");
	assert_int_equal(proc_write_file(path, text), 0);
	return path;
}

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int atoi_ok(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *end ? -1 : (int)v;
}

static void count_lines(const char *text, int *lines)
{
	*lines = 0;
	for (; *text; text++)
		*lines += *text == '\n';
}

static void version_and_help(void **state)
{
	char *out;
	char *v[] = {hubd, "--version", NULL}, *h[] = {hubd, "--help", NULL}, *bad[] = {hubd, "--bogus", NULL};

	assert_int_equal(proc_run(v, &out, 5000), 0);
	assert_non_null(strstr(out, "hubd " PACKAGE_VERSION));
	assert_non_null(strstr(out, "ABI v1"));
	free(out);
	assert_int_equal(proc_run(h, &out, 5000), 0);
	assert_non_null(strstr(out, "--check-config"));
	free(out);
	assert_int_equal(proc_run(bad, &out, 5000), 2);
	assert_non_null(strstr(out, "Usage: hubd"));
	free(out);
}

static void check_config_reports_each_problem(void **state)
{
	char path[512], *out;
	char *argv[] = {hubd, "--check-config", "--config", path, NULL};
	int lines;

	snprintf(path, sizeof(path), "%s/bad.json", dir);
	proc_write_file(path, "{\"listen\":\"nope\",\"state_dir\":\"/tmp/x\",\"extra\":true,"
			      "\"connectors\":[{\"name\":\"a\",\"plugin\":\"p\",\"config\":{}}]}");
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	count_lines(out, &lines);
	assert_int_equal(lines, 3);
	assert_non_null(strstr(out, "bad.json: listen: \"nope\" is not HOST:PORT"));
	assert_non_null(strstr(out, "bad.json: extra: unknown key"));
	assert_non_null(strstr(out, "bad.json: connectors[0].merchant: required key missing"));
	free(out);

	/* The retry policy: each key named with its range, nothing else. */
	proc_write_file(path, "{\"state_dir\":\"/tmp/x\",\"retry\":{\"base_ms\":0,\"cap_ms\":700000,"
			      "\"max_attempts\":\"8\"}}");
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	count_lines(out, &lines);
	assert_int_equal(lines, 3);
	assert_non_null(strstr(out, "bad.json: retry.base_ms: must be between 1 and 60000, found 0"));
	assert_non_null(strstr(out, "bad.json: retry.cap_ms: must be between 1 and 600000, found 700000"));
	assert_non_null(strstr(out, "bad.json: retry.max_attempts: must be an integer, found a string"));
	free(out);

	snprintf(path, sizeof(path), "%s", write_config("good.json", 8080, "/tmp/hubd-never-created", NULL));
	assert_int_equal(proc_run(argv, &out, 5000), 0);
	assert_non_null(strstr(out, "configuration is valid"));
	assert_false(exists("/tmp/hubd-never-created"));
	free(out);
}

static void bad_start_inputs(void **state)
{
	char state_dir[512], path[512], *out;
	char *argv[] = {hubd, "--config", path, NULL};
	int lines, fd, port = proc_free_port();
	struct sockaddr_in sa;

	snprintf(state_dir, sizeof(state_dir), "%s/state-bad", dir);

	/* Missing config file. */
	snprintf(path, sizeof(path), "%s/absent.json", dir);
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	assert_non_null(strstr(out, "absent.json: (file): cannot read: No such file or directory"));
	free(out);

	/* Malformed JSON. */
	snprintf(path, sizeof(path), "%s/broken.json", dir);
	proc_write_file(path, "{\"state_dir\": \"x\"");
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	assert_non_null(strstr(out, "broken.json: (file): line 1"));
	free(out);

	/* Port in use: one line, exit 1, state dir not created. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	snprintf(path, sizeof(path), "%s", write_config("busy.json", port, state_dir, NULL));
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	count_lines(out, &lines);
	assert_int_equal(lines, 1);
	assert_non_null(strstr(out, "busy.json: listen: cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(out, "Address already in use"));
	assert_false(exists(state_dir));
	free(out);
	close(fd);

	/* Unreachable store: one clear line, exit 1, the state dir it would
	 * have created is gone again. */
	snprintf(path, sizeof(path), "%s",
		 write_config("nostore.json", proc_free_port(), state_dir,
			      ",\"store\":\"postgresql://hub@127.0.0.1:1/hub?connect_timeout=2\""));
	assert_int_equal(proc_run(argv, &out, 20000), 1);
	count_lines(out, &lines);
	assert_non_null(strstr(out, "nostore.json: store: "));
	assert_non_null(strstr(out, "127.0.0.1"));
	assert_false(exists(state_dir));
	free(out);

	/* A bad SQLite URL option: one line naming it, exit 1, no state dir. */
	{
		char store[700];

		snprintf(store, sizeof(store), ",\"store\":\"sqlite:%s/hub.db?cache_mb=0\"", state_dir);
		snprintf(path, sizeof(path), "%s", write_config("badcache.json", proc_free_port(), state_dir, store));
	}
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	count_lines(out, &lines);
	assert_int_equal(lines, 1);
	assert_non_null(strstr(out, "badcache.json: store: sqlite: URL option cache_mb=\"0\" must be an integer "
				    "from 1 to 65536"));
	assert_false(exists(state_dir));
	free(out);

	/* State dir under a file: cannot be created. */
	char file[512], under[600];
	snprintf(file, sizeof(file), "%s/plainfile", dir);
	proc_write_file(file, "x");
	snprintf(under, sizeof(under), "%s/state", file);
	snprintf(path, sizeof(path), "%s", write_config("unwritable.json", proc_free_port(), under, NULL));
	assert_int_equal(proc_run(argv, &out, 5000), 1);
	assert_non_null(strstr(out, "unwritable.json: state_dir: cannot create"));
	free(out);
}

static void serves_and_stops_gracefully(void **state)
{
	char state_dir[512], url[256], logp[512], buf[64], path[512];
	struct proc p;
	struct th_response r;
	int port = proc_free_port(), status;
	char *argv[] = {hubd, "--config", path, NULL};
	char *log;

	snprintf(state_dir, sizeof(state_dir), "%s/state-ok", dir);
	snprintf(path, sizeof(path), "%s", write_config("run.json", port, state_dir, NULL));
	snprintf(logp, sizeof(logp), "%s/run.log", dir);
	assert_int_equal(proc_start(&p, argv, logp), 0);
	assert_int_equal(proc_wait_port(port, 10000), 0);

	/* The listener is bound early in start-up (the kernel accepts before
	 * the loop runs); an answer means hubd has finished starting. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_true(exists(state_dir));
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "\"ok\""));
	assert_non_null(th_header(&r, "Content-Type", buf, sizeof(buf)));
	assert_string_equal(buf, "application/json");
	th_response_release(&r);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	th_response_release(&r);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "# TYPE hub_uptime_seconds gauge"));
	th_response_release(&r);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/no/such/route", port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 404);
	assert_non_null(strstr(r.body, "{\"error\":{\"code\":\"not_found\""));
	th_response_release(&r);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	assert_int_equal(th_http("DELETE", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 405);
	assert_non_null(strstr(r.body, "method_not_allowed"));
	th_response_release(&r);

	/* A second hubd on the same state dir (another port): refused in one
	 * line naming the first one's PID; the first keeps serving and its
	 * state dir keeps its instance id. */
	{
		char path2[512], idpath[600], *id1, *id2, pidtext[32];
		char *argv2[] = {hubd, "--config", path2, NULL};
		int lines;
		snprintf(idpath, sizeof(idpath), "%s/instance.id", state_dir);
		id1 = proc_read_file(idpath);
		assert_non_null(id1);
		assert_int_equal(strlen(id1), 17); /* 16 hex digits and a newline */
		snprintf(path2, sizeof(path2), "%s", write_config("second.json", proc_free_port(), state_dir, NULL));
		assert_int_equal(proc_run(argv2, &log, 10000), 1);
		count_lines(log, &lines);
		assert_int_equal(lines, 1);
		assert_non_null(strstr(log, "second.json: state_dir: "));
		assert_non_null(strstr(log, "is in use by another hubd"));
		snprintf(pidtext, sizeof(pidtext), "(pid %ld)", (long)p.pid);
		assert_non_null(strstr(log, pidtext));
		free(log);
		id2 = proc_read_file(idpath);
		assert_string_equal(id1, id2);
		free(id1);
		free(id2);
		assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
		assert_int_equal(r.status, 200);
		th_response_release(&r);
	}

	/* SIGHUP with a broken config: refused, still serving. */
	proc_write_file(path, "{\"state_dir\":");
	kill(p.pid, SIGHUP);
	usleep(300000);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	th_response_release(&r);
	log = proc_read_file(logp);
	assert_non_null(strstr(log, "config not reloaded"));
	free(log);

	/* SIGHUP with a good config (log level debug): taken. */
	write_config("run.json", port, state_dir, ",\"log\":{\"level\":\"debug\",\"format\":\"json\"}");
	kill(p.pid, SIGHUP);
	usleep(300000);
	log = proc_read_file(logp);
	assert_non_null(strstr(log, "config reloaded"));
	free(log);

	assert_int_equal(proc_stop(&p, SIGTERM, 10000, &status), 0);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	log = proc_read_file(logp);
	assert_non_null(strstr(log, "\"msg\":\"stopped\""));
	free(log);
}

/* Writes a self-signed certificate for IP 127.0.0.1 and its key. */
static void make_cert(const char *cert_path, const char *key_path)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	FILE *f;

	assert_non_null(key);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	f = fopen(cert_path, "w");
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void serves_tls_when_configured(void **state)
{
	char cert[512], key[512], extra[1200], state_dir[512], path[512], logp[512], url[256];
	struct proc p;
	struct th_response r;
	int port = proc_free_port();
	char *argv[] = {hubd, "--config", path, NULL};

	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	make_cert(cert, key);
	snprintf(extra, sizeof(extra), ",\"http\":{\"tls_cert\":\"%s\",\"tls_key\":\"%s\"}", cert, key);
	snprintf(state_dir, sizeof(state_dir), "%s/state-tls", dir);
	snprintf(path, sizeof(path), "%s", write_config("tls.json", port, state_dir, extra));
	snprintf(logp, sizeof(logp), "%s/tls.log", dir);
	assert_int_equal(proc_start(&p, argv, logp), 0);
	assert_int_equal(proc_wait_port(port, 10000), 0);
	th_http_cainfo = cert;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/readyz", port);
	assert_int_equal(th_wait_ok(url, 10000), 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/healthz", port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	th_response_release(&r);
	th_http_cainfo = NULL;
	/* Plain HTTP to the TLS port gets no HTTP answer. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	th_http("GET", url, NULL, NULL, 0, &r);
	assert_true(r.status != 200);
	th_response_release(&r);
	assert_int_equal(proc_stop(&p, SIGTERM, 10000, NULL), 0);
}

/* Per-source inbound limit: over the rate, 429 with Retry-After; the
 * daemon keeps serving once the bucket refills. */
static void per_source_rate_limit(void **state)
{
	char state_dir[512], path[512], logp[512], url[256], ra[32];
	struct proc p;
	struct th_response r;
	int port = proc_free_port(), limited = 0, ok = 0;
	char *argv[] = {hubd, "--config", path, NULL};

	snprintf(state_dir, sizeof(state_dir), "%s/state-rl", dir);
	snprintf(path, sizeof(path), "%s",
		 write_config("rl.json", port, state_dir, ",\"http\":{\"rate_per_s\":2,\"burst\":5}"));
	snprintf(logp, sizeof(logp), "%s/rl.log", dir);
	assert_int_equal(proc_start(&p, argv, logp), 0);
	assert_int_equal(proc_wait_port(port, 10000), 0);
	usleep(500000);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/healthz", port);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
		if (r.status == 429) {
			limited++;
			assert_non_null(th_header(&r, "Retry-After", ra, sizeof(ra)));
			assert_true(atoi_ok(ra) >= 1);
			assert_non_null(strstr(r.body, "rate_limited"));
		} else if (r.status == 200) {
			ok++;
		}
		th_response_release(&r);
	}
	assert_true(ok >= 5 && ok <= 7);
	assert_true(limited >= 13);
	sleep(2);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.status, 200);
	th_response_release(&r);
	assert_int_equal(proc_stop(&p, SIGTERM, 10000, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(version_and_help),
		cmocka_unit_test(check_config_reports_each_problem),
		cmocka_unit_test(bad_start_inputs),
		cmocka_unit_test(serves_and_stops_gracefully),
		cmocka_unit_test(serves_tls_when_configured),
		cmocka_unit_test(per_source_rate_limit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
