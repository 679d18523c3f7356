/*
 * test_e2e_tracking_retry.c - a carrier tracking step that spends its
 * retries gives its leased numbers back. hub-sandbox's Shopify shop hands
 * hubd shipments; the DHL connector (one number per request) starts paused.
 * With every DHL request failing (5xx) and a small retry policy (2 attempts,
 * 20-100 ms windows), resuming it runs one round: exactly two requests, then
 * the step gives up and its number is due again at once in the store
 * (TRACKING_RELEASE) instead of leased for 10 minutes. Once DHL works again
 * the next regular round (poll interval 8 s, not an on-demand sync, which
 * would recheck leased numbers too) checks every DHL number. The assertions
 * read the store's own tables (shipment_tracking, tracking_events) through a
 * read-only SQLite connection.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

/* DHL's tracking round after the failed one comes this long later. */
#define DHL_INTERVAL_S 8

static struct hubt_env env;

static int64_t wall_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void sb_url(char *buf, size_t size, const char *path)
{
	hubt_url(buf, size, env.sb_port, path);
}

static void hub_url(char *buf, size_t size, const char *path)
{
	hubt_url(buf, size, env.hub_port, path);
}

static int setup(void **state)
{
	char url[160], cfg[4096];

	*state = &env;
	if (hubt_env_start_sandbox(&env, "hubtrackretry", 5, 12, 1) < 0)
		return -1;
	/* Every DHL request fails; 503s say Retry-After: 0, so the policy's
	 * own windows decide the waits. */
	sb_url(url, sizeof(url), "/_sandbox/faults");
	if (th_post_json(url, NULL, "{\"api\":\"dhl\",\"rate_5xx\":1,\"retry_after_s\":0}") != 200)
		return -1;

	snprintf(cfg, sizeof(cfg),
		 "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\","
		 "\"log\":{\"level\":\"%s\"},\"sync\":{\"start_spread_s\":0},"
		 "\"retry\":{\"base_ms\":20,\"cap_ms\":100,\"max_attempts\":2},\"connectors\":["
		 "{\"name\":\"s1\",\"plugin\":\"shopify\",\"merchant\":\"m\",\"poll_interval_s\":3600,"
		 "\"config\":{\"shop\":\"shop-1.myshopify.com\",\"access_token\":\"shpat_sandbox_1\","
		 "\"api_base\":\"http://127.0.0.1:%d/shops/shop-1.myshopify.com\"}},"
		 "{\"name\":\"dhl\",\"plugin\":\"dhl\",\"merchant\":\"m\",\"enabled\":false,\"poll_interval_s\":%d,"
		 "\"rate_limits\":{\"track\":{\"burst\":20,\"rate\":20}},"
		 "\"config\":{\"api_key\":\"dhl-sandbox-key\",\"api_base\":\"http://127.0.0.1:%d\"}}]}",
		 env.hub_port, env.dir, env.plugins, hubt_log_level(), env.sb_port, DHL_INTERVAL_S, env.sb_port);
	if (proc_write_file(env.cfg_path, cfg) < 0)
		return -1;
	return hubt_env_start_hubd(&env);
}

/* What the store holds about the DHL numbers: their shipment_tracking rows
 * (one per shipment and number). */
struct dhl_rows {
	int total;
	int numbers;       /* distinct tracking numbers */
	int checked;       /* last_checked_ms set */
	int due;           /* next_check_ms <= now: not leased */
	int64_t max_next;  /* the latest next_check_ms */
	int events;        /* tracking events of their shipments */
};

/* Reads the store's tables with a connection of our own (read only; WAL
 * lets it read beside hubd's writer). */
static void read_dhl(struct dhl_rows *r, int64_t now)
{
	char path[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/state/hub.db", env.dir);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT COUNT(*), COUNT(last_checked_ms), "
					    "COALESCE(SUM(next_check_ms <= ?1), 0), COALESCE(MAX(next_check_ms), 0), "
					    "(SELECT COUNT(*) FROM tracking_events WHERE shipment_id IN "
					    "(SELECT shipment_id FROM shipment_tracking WHERE carrier = 'dhl')), "
					    "COUNT(DISTINCT tracking_number) "
					    "FROM shipment_tracking WHERE carrier = 'dhl'",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(st, 1, now);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	r->total = sqlite3_column_int(st, 0);
	r->checked = sqlite3_column_int(st, 1);
	r->due = sqlite3_column_int(st, 2);
	r->max_next = sqlite3_column_int64(st, 3);
	r->events = sqlite3_column_int(st, 4);
	r->numbers = sqlite3_column_int(st, 5);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Requests the sandbox's DHL API received since the last stats reset. */
static long long dhl_requests(void)
{
	long long n = hubt_sandbox_requests(&env, "dhl");

	assert_true(n >= 0);
	return n;
}

/* Syncs the shop now and waits until the sync is done. */
static void sync_shop(void)
{
	char state[128];

	if (hubt_env_sync(&env, "s1", 30000, state, sizeof(state)) < 0 || strcmp(state, "done") != 0)
		fail_msg("the shop's sync: %s", state);
}

static void spent_retries_release_numbers(void **state)
{
	struct dhl_rows r;
	char url[160];
	int64_t deadline;
	long long requests = 0;
	struct th_response resp;

	(void)state;
	/* Parcels leave: the shop's fulfillments carry their tracking numbers. */
	sb_url(url, sizeof(url), "/_sandbox/tick");
	assert_int_equal(th_post_json(url, NULL, "{\"seconds\":86400}"), 200);
	sync_shop();
	read_dhl(&r, wall_ms());
	printf("%d DHL tracking rows, %d numbers\n", r.total, r.numbers);
	assert_true(r.total > 0);
	assert_int_equal(r.checked, 0);
	assert_int_equal(r.due, r.total);

	/* One round, every request failing: the first attempt and one retry. */
	assert_int_equal(hubt_sandbox_stats_reset(&env), 200);
	hub_url(url, sizeof(url), "/v1/connectors/dhl/resume");
	assert_int_equal(th_post_json(url, env.token, "{}"), 200);
	deadline = wall_ms() + 10000;
	while ((requests = dhl_requests()) < 2 && wall_ms() < deadline)
		usleep(20000);
	assert_int_equal(requests, 2);
	/* Its number was leased before the first request went out. Given back,
	 * every DHL number is due now; kept, one would be due in 10 minutes. */
	do {
		int64_t now = wall_ms();
		read_dhl(&r, now);
		if (r.due == r.total)
			break;
		usleep(50000);
	} while (wall_ms() < deadline);
	if (r.due != r.total)
		fail_msg("%d of %d DHL tracking rows still leased (next check up to %lld ms from now) after the "
			 "step gave up", r.total - r.due, r.total, (long long)(r.max_next - wall_ms()));
	assert_int_equal(r.checked, 0);
	/* No third attempt: the round is over. */
	usleep(500000);
	assert_int_equal(dhl_requests(), 2);

	/* DHL works again: the next regular round checks every number,
	 * the one given back included. */
	sb_url(url, sizeof(url), "/_sandbox/faults");
	assert_int_equal(th_http("DELETE", url, NULL, NULL, 0, &resp), 0);
	assert_int_equal(resp.status, 200);
	th_response_release(&resp);
	deadline = wall_ms() + (DHL_INTERVAL_S + 20) * 1000;
	do {
		usleep(200000);
		read_dhl(&r, wall_ms());
	} while (r.checked < r.total && wall_ms() < deadline);
	printf("%d of %d DHL tracking rows checked in the next round, %d tracking events stored\n", r.checked, r.total,
	       r.events);
	assert_int_equal(r.checked, r.total);
	assert_true(r.events > 0);
	/* One request per number (DHL tracks one at a time) besides the two. */
	assert_true(dhl_requests() >= 2 + r.numbers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spent_retries_release_numbers),
	};

	return cmocka_run_group_tests(tests, setup, hubt_env_teardown);
}
