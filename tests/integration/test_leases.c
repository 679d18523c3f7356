/*
 * test_leases.c - two hubd on one PostgreSQL (tests/harness/pgserver) poll
 * six Shopify shops of hub-sandbox through polling leases (core/lease.h)
 * with a 2 s lease time.
 *
 * While both run, the lease table and each hubd's per-connector request
 * counters (/metrics) are sampled: a connector whose lease stayed with one
 * hubd over a whole sampling window got no request from the other in that
 * window; both hubd end up polling (the second one to start gets
 * connectors handed over); the store equals the sandbox's truth. One hubd
 * is frozen (SIGSTOP) past the lease time: the other takes everything
 * over, and the thawed one sends no request for a connector it no longer
 * holds, although its timers are overdue. Then the sandbox's clock moves
 * on and one hubd is killed with SIGKILL: the other
 * holds every lease within the lease time plus one renewal (plus a margin
 * for a loaded machine), and the store again equals the truth - the
 * orders of the dead hubd's shops that changed after its death included.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include <hub/sdk.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/pgserver.h"
#include "../harness/proc.h"
#include "../harness/truth.h"

#define SHOPS 6
#define TTL_S 2

struct hubd {
	struct proc p;
	int port;
	char state[300];
	char cfg[320];
	char token[128];
	char owner_tag[48]; /* ":<instance id>", the end of its lease owner name */
};

static char dir[256], hubd_bin[512];
static int sb_port;
static struct proc sandbox;
static struct pgserver pg;
static struct hubd hubs[2];

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int copy_file(const char *from, const char *to)
{
	char buf[256];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
	int rc = in && out ? 0 : -1;

	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		rc = -1;
	return rc;
}

static int start_hub(struct hubd *h)
{
	char logp[400], url[128], path[400], *t;
	char *argv[] = { hubd_bin, "--config", h->cfg, NULL };

	snprintf(logp, sizeof(logp), "%s.log", h->state);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", h->port);
	if (hubt_start_ready(&h->p, argv, logp, url, 60000) < 0 ||
	    hubt_admin_token(h->state, h->token, sizeof(h->token)) < 0)
		return -1;
	/* The owner name is "<host>:<instance id>", the id from the state dir,
	 * the same across restarts. */
	snprintf(path, sizeof(path), "%s/instance.id", h->state);
	t = proc_read_file(path);
	if (t == NULL || strlen(t) < 9) {
		free(t);
		return -1;
	}
	t[strcspn(t, "\n")] = '\0';
	snprintf(h->owner_tag, sizeof(h->owner_tag), ":%s", t);
	free(t);
	return 0;
}

static int setup(void **state)
{
	char err[512], sbcfg[600], logp[600], url[160], port_s[32], plugins[512], sandbox_bin[512], cfg[8192];
	char *argv[] = { sandbox_bin, "--listen", port_s, "--seed", "5", "--orders", "20", "--shops", "6", "--speed",
			 "0", "--quiet", "--config", sbcfg, NULL };
	(void)state;

	proc_build_path(hubd_bin, sizeof(hubd_bin), "hubd");
	proc_build_path(sandbox_bin, sizeof(sandbox_bin), "hub-sandbox");
	proc_build_path(plugins, sizeof(plugins), ".libs");
	if (proc_tmpdir(dir, sizeof(dir), "hublease") < 0)
		return -1;
	pgserver_init(&pg);
	if (pgserver_start(&pg, err, sizeof(err)) < 0) {
		fprintf(stderr, "cannot start PostgreSQL: %s\n", err);
		return -1;
	}
	sb_port = proc_free_port();
	snprintf(port_s, sizeof(port_s), "127.0.0.1:%d", sb_port);
	snprintf(sbcfg, sizeof(sbcfg), "%s/sandbox.json", dir);
	proc_write_file(sbcfg, "{\"order_interval_s\":600}");
	snprintf(logp, sizeof(logp), "%s/sandbox.log", dir);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/health", sb_port);
	if (hubt_start_ready(&sandbox, argv, logp, url, 30000) < 0)
		return -1;

	for (int k = 0; k < 2; k++) {
		struct hubd *h = &hubs[k];
		size_t len;

		h->port = proc_free_port();
		snprintf(h->state, sizeof(h->state), "%s/state%d", dir, k);
		len = (size_t)snprintf(cfg, sizeof(cfg),
				       "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s\",\"plugin_dir\":\"%s\","
				       "\"store\":\"%s\",\"leases\":{\"ttl_s\":%d},\"log\":{\"level\":\"info\"},"
				       "\"connectors\":[",
				       h->port, h->state, plugins, pg.url, TTL_S);
		for (int i = 1; i <= SHOPS; i++)
			len += (size_t)snprintf(cfg + len, sizeof(cfg) - len,
						"%s{\"name\":\"s%d\",\"plugin\":\"shopify\",\"merchant\":\"m%d\","
						"\"poll_interval_s\":1,\"config\":{\"shop\":\"shop-%d.myshopify.com\","
						"\"access_token\":\"shpat_sandbox_%d\",\"webhook_secret\":\"shopify-secret-%d\","
						"\"api_base\":\"http://127.0.0.1:%d/shops/shop-%d.myshopify.com\"}}",
						i > 1 ? "," : "", i, i, i, i, i, sb_port, i);
		snprintf(cfg + len, sizeof(cfg) - len, "]}");
		snprintf(h->cfg, sizeof(h->cfg), "%s/hubd%d.json", dir, k);
		proc_write_file(h->cfg, cfg);
	}
	/* Both hubd must unseal the same secrets: the second gets the first's key. */
	if (start_hub(&hubs[0]) < 0)
		return -1;
	{
		char from[400], to[400];
		snprintf(from, sizeof(from), "%s/secret.key", hubs[0].state);
		snprintf(to, sizeof(to), "%s/secret.key", hubs[1].state);
		if (mkdir(hubs[1].state, 0700) != 0 || copy_file(from, to) != 0 || chmod(to, 0600) != 0)
			return -1;
	}
	return start_hub(&hubs[1]);
}

static int teardown(void **state)
{
	(void)state;
	for (int k = 0; k < 2; k++)
		proc_stop(&hubs[k].p, SIGTERM, 15000, NULL);
	proc_stop(&sandbox, SIGTERM, 5000, NULL);
	pgserver_stop(&pg);
	proc_rmtree(dir);
	return 0;
}

/* ---- observations ----------------------------------------------------------------- */

struct lease_row {
	int owner;            /* index into hubs, -1 nobody or unknown */
	int64_t acquired_ms;
	int64_t expires_ms;
};

/* Reads the lease table into rows[1..SHOPS]. */
static void read_leases(struct lease_row rows[SHOPS + 1])
{
	PGconn *c = PQconnectdb(pg.url);
	PGresult *r;

	for (int i = 0; i <= SHOPS; i++)
		rows[i] = (struct lease_row){ -1, 0, 0 };
	assert_int_equal(PQstatus(c), CONNECTION_OK);
	r = PQexec(c, "SELECT connector, owner, acquired_at_ms, expires_at_ms FROM connector_leases");
	assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
	for (int k = 0; k < PQntuples(r); k++) {
		long i = strtol(PQgetvalue(r, k, 0) + 1, NULL, 10);
		const char *owner = PQgetvalue(r, k, 1);
		if (i < 1 || i > SHOPS)
			continue;
		for (int h = 0; h < 2; h++)
			if (strstr(owner, hubs[h].owner_tag) != NULL)
				rows[i].owner = h;
		rows[i].acquired_ms = strtoll(PQgetvalue(r, k, 2), NULL, 10);
		rows[i].expires_ms = strtoll(PQgetvalue(r, k, 3), NULL, 10);
	}
	PQclear(r);
	PQfinish(c);
}

/* Upstream requests hubd h made per connector (its /metrics), into n[1..SHOPS]. */
static void read_requests(int h, double n[SHOPS + 1])
{
	struct th_response r;
	char url[128];
	const char *p;

	for (int i = 0; i <= SHOPS; i++)
		n[i] = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", hubs[h].port);
	assert_int_equal(th_http("GET", url, NULL, NULL, 0, &r), 0);
	for (p = r.body; p != NULL && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		const char *key = "hub_upstream_requests_total{connector=\"s";
		if (strncmp(p, key, strlen(key)) == 0) {
			long i = strtol(p + strlen(key), NULL, 10);
			const char *sp = strchr(p, '}');
			if (i >= 1 && i <= SHOPS && sp != NULL)
				n[i] += strtod(sp + 1, NULL);
		}
	}
	th_response_release(&r);
}

/* When hubd h last sent a request for shop i's orders (its status API),
 * in ms since the epoch; 0 when never. */
static int64_t last_attempt(int h, int i)
{
	char url[160];
	json_t *st, *sr;
	size_t k;
	int64_t ms = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/connectors/s%d/status", hubs[h].port, i);
	st = th_get_json(url, hubs[h].token);
	assert_non_null(st);
	json_array_foreach(json_object_get(st, "streams"), k, sr) {
		const char *t = json_string_value(json_object_get(sr, "last_attempt"));
		if (t != NULL)
			hub_time_parse(t, 0, &ms, "last_attempt", NULL);
	}
	json_decref(st);
	return ms;
}

/* Waits (bounded) until hubd 1 stores every shop's orders with the truth's
 * updated_at (tests/harness/truth); fails with the first difference. */
static void converge(int timeout_s)
{
	char why[1024];
	const struct truth_check tc = { .sandbox_port = sb_port, .hub_port = hubs[1].port, .token = hubs[1].token,
					.fields = TRUTH_UPDATED_AT, .shops = SHOPS, .poll_ms = 300 };

	if (truth_converge(&tc, timeout_s, why, sizeof(why)) != 0)
		fail_msg("%s", why);
}

/* ---- the test ------------------------------------------------------------------------ */

/*
 * Samples the lease table and both hubd's request counters every 400 ms,
 * `samples` times. A connector whose lease stayed with one hubd over a
 * whole window, taken at least a second before it began (so a request of
 * an earlier holding has long completed), must get no request from the
 * other hubd in that window. Returns the number of such windows; sets bit i
 * of polled_by[h] when hubd h polled shop i in one of them.
 */
static int sample_exclusive(int samples, int polled_by[2])
{
	struct lease_row prev[SHOPS + 1], cur[SHOPS + 1];
	double req_prev[2][SHOPS + 1], req_cur[2][SHOPS + 1];
	int64_t t_prev, t_cur;
	int windows = 0;

	read_leases(prev);
	read_requests(0, req_prev[0]);
	read_requests(1, req_prev[1]);
	t_prev = wall_ms();
	for (int s = 0; s < samples; s++) {
		usleep(400000);
		read_requests(0, req_cur[0]);
		read_requests(1, req_cur[1]);
		read_leases(cur);
		t_cur = wall_ms();
		for (int i = 1; i <= SHOPS; i++) {
			int o = cur[i].owner;
			if (o < 0 || prev[i].owner != o || prev[i].acquired_ms != cur[i].acquired_ms ||
			    cur[i].acquired_ms > t_prev - 1000)
				continue;
			if (req_cur[1 - o][i] != req_prev[1 - o][i])
				fail_msg("s%d: leased to hubd %d all along, yet hubd %d polled it (%.0f -> %.0f requests)", i,
					 o, 1 - o, req_prev[1 - o][i], req_cur[1 - o][i]);
			windows++;
			if (req_cur[o][i] > req_prev[o][i])
				polled_by[o] |= 1 << i;
		}
		memcpy(prev, cur, sizeof(prev));
		memcpy(req_prev, req_cur, sizeof(req_prev));
		t_prev = t_cur;
	}
	return windows;
}

static void one_poller_per_connector_and_takeover(void **state)
{
	struct lease_row cur[SHOPS + 1];
	int64_t killed_ms, took_ms = -1;
	int windows, polled_by[2] = { 0, 0 };
	(void)state;

	/* Ten seconds of both running. */
	windows = sample_exclusive(25, polled_by);
	printf("%d exclusive windows checked; hubd 0 polled shops 0x%x, hubd 1 0x%x\n", windows, polled_by[0],
	       polled_by[1]);
	assert_true(windows >= 60);
	/* Both hubd took part: the second one got connectors handed over. */
	assert_true(polled_by[0] != 0 && polled_by[1] != 0);
	converge(30);

	/* hubd 0 freezes (a stalled host) past its lease time: hubd 1 takes its
	 * connectors over. When hubd 0 runs again its overdue timers fire at
	 * once, but its leases are older than it may trust: it must not poll
	 * what hubd 1 now holds (later it gets its share back). */
	{
		int64_t t_stop, t_cont;
		struct lease_row taken[SHOPS + 1];

		t_stop = wall_ms();
		kill(hubs[0].p.pid, SIGSTOP);
		/* Expiry, then hubd 1's next renewal: TTL and a third, with room
		 * for a loaded machine (the bound of the kill -9 case below). */
		usleep((TTL_S * 1000 + 1500) * 1000);
		for (;;) {
			int all = 1;
			read_leases(taken);
			for (int i = 1; i <= SHOPS; i++)
				all &= taken[i].owner == 1;
			if (all)
				break;
			if (wall_ms() - t_stop > 3 * TTL_S * 1000 + 3000) {
				kill(hubs[0].p.pid, SIGCONT);
				fail_msg("hubd 1 did not take the frozen hubd 0's leases within %d ms",
					 3 * TTL_S * 1000 + 3000);
			}
			usleep(100000);
		}
		sleep(1);
		t_cont = wall_ms();
		kill(hubs[0].p.pid, SIGCONT);
		/* Its timers were overdue and have fired by now; a request sent
		 * after t_stop for a connector hubd 1 still holds is a violation
		 * (its view of the lease must have lapsed). */
		usleep(400000);
		read_leases(cur);
		for (int i = 1; i <= SHOPS; i++) {
			int64_t last = last_attempt(0, i);
			if (cur[i].owner == 1 && cur[i].acquired_ms == taken[i].acquired_ms && last > t_stop)
				fail_msg("s%d: hubd 0 sent a request %lld ms after it was thawed, while hubd 1 held the "
					 "lease", i, (long long)(last - t_cont));
		}
	}
	memset(polled_by, 0, sizeof(polled_by));
	windows = sample_exclusive(15, polled_by);
	printf("after the freeze: %d exclusive windows; hubd 0 polled 0x%x, hubd 1 0x%x\n", windows, polled_by[0],
	       polled_by[1]);
	assert_true(windows >= 30);

	/* New data, then hubd 0 dies: hubd 1 takes its connectors over. */
	assert_int_equal(hubt_tick(sb_port, 3600), 200);
	{
		int status;
		proc_stop(&hubs[0].p, SIGKILL, 5000, &status);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	killed_ms = wall_ms();
	for (;;) {
		int mine = 0;
		read_leases(cur);
		for (int i = 1; i <= SHOPS; i++)
			mine += cur[i].owner == 1 && cur[i].expires_ms > wall_ms();
		if (mine == SHOPS) {
			took_ms = wall_ms() - killed_ms;
			break;
		}
		if (wall_ms() - killed_ms > 3 * TTL_S * 1000 + 3000)
			break;
		usleep(100000);
	}
	printf("hubd 1 held every lease %lld ms after hubd 0 was killed (lease time %d s)\n", (long long)took_ms,
	       TTL_S);
	/* Within the lease time plus a renewal (a third of it), with room for a
	 * loaded machine; -1 means never. */
	assert_true(took_ms >= 0);
	assert_true(took_ms <= 3 * TTL_S * 1000 + 3000);
	converge(30);

	/* hubd 1 dies and comes straight back on its state dir: the same owner
	 * name (the state dir's instance id), so it renews the leases it held
	 * rather than waiting for them to expire, and catches up. */
	{
		char before[sizeof(hubs[1].owner_tag)];
		int64_t restarted_ms;
		snprintf(before, sizeof(before), "%s", hubs[1].owner_tag);
		proc_stop(&hubs[1].p, SIGKILL, 5000, NULL);
		assert_int_equal(start_hub(&hubs[1]), 0);
		restarted_ms = wall_ms();
		assert_string_equal(hubs[1].owner_tag, before);
		for (took_ms = -1; wall_ms() - restarted_ms <= 3 * TTL_S * 1000 + 3000; usleep(100000)) {
			int mine = 0;
			read_leases(cur);
			for (int i = 1; i <= SHOPS; i++)
				mine += cur[i].owner == 1 && cur[i].expires_ms > wall_ms();
			if (mine == SHOPS) {
				took_ms = wall_ms() - restarted_ms;
				break;
			}
		}
		printf("restarted hubd 1 held every lease again %lld ms after it was ready\n", (long long)took_ms);
		assert_true(took_ms >= 0);
		assert_int_equal(hubt_tick(sb_port, 3600), 200);
		converge(30);
	}

	/* A clean stop: exit 0 (with the sanitizers: nothing leaked), and the
	 * leases of idle connectors handed back rather than left to expire. */
	{
		int status, left = 0;
		assert_int_equal(proc_stop(&hubs[1].p, SIGTERM, 15000, &status), 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		read_leases(cur);
		for (int i = 1; i <= SHOPS; i++)
			left += cur[i].owner == 1;
		printf("%d of %d leases left to expire after a clean stop\n", left, SHOPS);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_poller_per_connector_and_takeover),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
