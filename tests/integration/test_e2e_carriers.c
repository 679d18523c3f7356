/*
 * test_e2e_carriers.c - shipments followed to delivery: hub-sandbox's
 * Shopify shops create fulfillments with UPS, FedEx, USPS and DHL tracking
 * numbers; hubd syncs them from Shopify, its four carrier connectors track
 * them (faults on: 429s and 5xx on every API), and the simulated clock
 * moves the parcels to delivered. Every shipment's status and number of
 * tracking events must equal the carriers' truth, and each delivered
 * shipment must have been reported back to Shopify exactly once (a
 * fulfillment event posted by the hub).
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "../harness/http.h"
#include "../harness/hub.h"
#include "../harness/proc.h"

#define SHOPS 3
static const char *const carriers[] = {"ups", "fedex", "usps", "dhl"};

static struct hubt_env env;

/* GET url with one extra header (Shopify's token): the 200 body, or NULL. */
static json_t *get_json_hdr(const char *url, const char *hdr)
{
	struct th_response r;
	const char *h[] = {hdr, NULL};
	json_t *j = NULL;

	if (th_http("GET", url, h, NULL, 0, &r) == 0 && r.status == 200)
		j = json_loads(r.body, 0, NULL);
	th_response_release(&r);
	return j;
}

static json_t *hub_get(const char *path)
{
	char url[512];

	return th_get_json(hubt_url(url, sizeof(url), env.hub_port, path), env.token);
}

static int setup(void **state)
{
	char url[160], *cfg;
	const char *store = getenv("HUB_TEST_STORE_URL");
	size_t cap = 1 << 16, len;

	*state = &env;
	/* Shopify shops only: every parcel the carriers carry then belongs to
	 * a shop the hub syncs. */
	if (hubt_env_start_sandbox(&env, "hubcarriers", 11, 6, SHOPS) < 0)
		return -1;

	cfg = malloc(cap);
	len = (size_t)snprintf(cfg, cap,
			       "{\"listen\":\"127.0.0.1:%d\",\"state_dir\":\"%s/state\",\"plugin_dir\":\"%s\"%s%s%s,"
			       "\"log\":{\"level\":\"%s\"},\"connectors\":[",
			       env.hub_port, env.dir, env.plugins, store && *store ? ",\"store\":\"" : "",
			       store && *store ? store : "", store && *store ? "\"" : "",
			       hubt_log_level());
	for (int i = 1; i <= SHOPS; i++)
		len += (size_t)snprintf(cfg + len, cap - len,
					"{\"name\":\"s%d\",\"plugin\":\"shopify\",\"merchant\":\"m\",\"poll_interval_s\":2,"
					"\"config\":{\"shop\":\"shop-%d.myshopify.com\",\"access_token\":\"shpat_sandbox_%d\","
					"\"api_base\":\"http://127.0.0.1:%d/shops/shop-%d.myshopify.com\"}},",
					i, i, i, env.sb_port, i);
	len += (size_t)snprintf(cfg + len, cap - len,
				"{\"name\":\"ups\",\"plugin\":\"ups\",\"merchant\":\"m\",\"poll_interval_s\":2,"
				"\"rate_limits\":{\"track\":{\"burst\":20,\"rate\":20},\"oauth\":{\"burst\":5,\"rate\":5}},"
				"\"config\":{\"client_id\":\"ups-sandbox-client\",\"client_secret\":\"ups-sandbox-secret\","
				"\"api_base\":\"http://127.0.0.1:%d\"}},"
				"{\"name\":\"fedex\",\"plugin\":\"fedex\",\"merchant\":\"m\",\"poll_interval_s\":2,"
				"\"rate_limits\":{\"track\":{\"burst\":20,\"rate\":20}},"
				"\"config\":{\"client_id\":\"fedex-sandbox-key\",\"client_secret\":\"fedex-sandbox-secret\","
				"\"api_base\":\"http://127.0.0.1:%d\"}},"
				"{\"name\":\"usps\",\"plugin\":\"usps\",\"merchant\":\"m\",\"poll_interval_s\":2,"
				"\"rate_limits\":{\"track\":{\"burst\":20,\"rate\":20},\"oauth\":{\"burst\":5,\"rate\":5}},"
				"\"config\":{\"client_id\":\"usps-sandbox-client\",\"client_secret\":\"usps-sandbox-secret\","
				"\"api_base\":\"http://127.0.0.1:%d\"}},"
				"{\"name\":\"dhl\",\"plugin\":\"dhl\",\"merchant\":\"m\",\"poll_interval_s\":2,"
				"\"rate_limits\":{\"track\":{\"burst\":20,\"rate\":20}},"
				"\"config\":{\"api_key\":\"dhl-sandbox-key\",\"api_base\":\"http://127.0.0.1:%d\"}}]}",
				env.sb_port, env.sb_port, env.sb_port, env.sb_port);
	if (proc_write_file(env.cfg_path, cfg) < 0) {
		free(cfg);
		return -1;
	}
	free(cfg);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/faults", env.sb_port);
	/* Faults on everywhere: 10% 429s and 10% 5xx on Shopify, 5% each on the
	 * carriers (whose circuit breakers would otherwise spend the test in
	 * cool-downs). The hub honours a carrier 503's Retry-After for the whole
	 * stream; 3 s instead of the sandbox's 30 keeps the rounds short (USPS
	 * tracks one number per request, some 80 requests a round). */
	if (th_post_json(url, NULL,
		 "[{\"api\":\"shopify\",\"rate_429\":0.1,\"rate_5xx\":0.1},"
		 "{\"api\":\"ups\",\"rate_429\":0.05,\"rate_5xx\":0.05,\"retry_after_s\":3},"
		 "{\"api\":\"fedex\",\"rate_429\":0.05,\"rate_5xx\":0.05,\"retry_after_s\":3},"
		 "{\"api\":\"usps\",\"rate_429\":0.05,\"rate_5xx\":0.05,\"retry_after_s\":3},"
		 "{\"api\":\"dhl\",\"rate_429\":0.05,\"rate_5xx\":0.05,\"retry_after_s\":3}]") != 200)
		return -1;
	return hubt_env_start_hubd(&env);
}

/* Truth per tracking number: delivered? and its scan events, as a sorted
 * list of "carrier code|description" lines. */
struct truth {
	char number[64];
	char carrier[8];
	int delivered;
	size_t events;
	char *scans;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Joins "code|description" of every event of `events`, sorted; code and
 * description are read at the given paths (a '.' descends one object). A
 * remark at extra_path (FedEx's exception, DHL's remark) that differs from
 * the description is appended as " - remark", as the plugins document. */
static char *scan_list(const json_t *events, const char *code_path, const char *desc_path,
		       const char *extra_path)
{
	size_t n = json_array_size(events), len = 1, i;
	char **lines = calloc(n + 1, sizeof(*lines)), *out;
	const char *paths[3] = {code_path, desc_path, extra_path};

	assert_non_null(lines);
	for (i = 0; i < n; i++) {
		const char *v[3] = {"", "", ""};
		for (int k = 0; k < 3 && paths[k]; k++) {
			const json_t *j = json_array_get(events, i);
			char key[64];
			const char *p = paths[k], *dot;
			while ((dot = strchr(p, '.'))) {
				snprintf(key, sizeof(key), "%.*s", (int)(dot - p), p);
				j = json_object_get(j, key);
				p = dot + 1;
			}
			v[k] = json_string_value(json_object_get(j, p)) ?: "";
		}
		int extra = v[2][0] && strcmp(v[1], v[2]) != 0;
		size_t sz = strlen(v[0]) + strlen(v[1]) + strlen(v[2]) + 5;
		lines[i] = malloc(sz);
		assert_non_null(lines[i]);
		snprintf(lines[i], sz, "%s|%s%s%s", v[0], v[1], extra ? " - " : "", extra ? v[2] : "");
		len += sz;
	}
	qsort(lines, n, sizeof(*lines), cmp_str);
	out = calloc(1, len);
	assert_non_null(out);
	for (i = 0, len = 0; i < n; i++) {
		size_t l = strlen(lines[i]);
		memcpy(out + len, lines[i], l);
		out[len + l] = '\n';
		len += l + 1;
		free(lines[i]);
	}
	free(lines);
	return out;
}

static size_t load_truth(struct truth *t, size_t max)
{
	size_t n = 0;

	for (size_t c = 0; c < 4; c++) {
		char url[160];
		json_t *all, *s;
		size_t i;
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/_sandbox/truth/%s/shipments", env.sb_port, carriers[c]);
		all = th_get_json(url, NULL);
		assert_non_null(all);
		json_array_foreach(json_object_get(all, "shipments"), i, s) {
			const char *num = NULL;
			int delivered = 0;
			size_t events = 0;
			char *scans = NULL;
			if (c == 0) {
				json_t *p = json_array_get(json_object_get(json_array_get(json_object_get(
					json_object_get(s, "trackResponse"), "shipment"), 0), "package"), 0);
				num = json_string_value(json_object_get(p, "trackingNumber"));
				delivered = strcmp(json_string_value(json_object_get(json_object_get(p, "currentStatus"),
										     "type")) ?: "", "D") == 0;
				events = json_array_size(json_object_get(p, "activity"));
				scans = scan_list(json_object_get(p, "activity"), "status.statusCode", "status.description", NULL);
			} else if (c == 1) {
				json_t *r = json_array_get(json_object_get(json_array_get(json_object_get(
					json_object_get(s, "output"), "completeTrackResults"), 0), "trackResults"), 0);
				num = json_string_value(json_object_get(json_object_get(r, "trackingNumberInfo"),
									"trackingNumber"));
				delivered = strcmp(json_string_value(json_object_get(json_object_get(r, "latestStatusDetail"),
										     "code")) ?: "", "DL") == 0;
				events = json_array_size(json_object_get(r, "scanEvents"));
				scans = scan_list(json_object_get(r, "scanEvents"), "eventType", "eventDescription",
						  "exceptionDescription");
			} else if (c == 2) {
				num = json_string_value(json_object_get(s, "trackingNumber"));
				delivered = strcmp(json_string_value(json_object_get(s, "statusCategory")) ?: "",
						   "Delivered") == 0;
				events = json_array_size(json_object_get(s, "trackingEvents"));
				scans = scan_list(json_object_get(s, "trackingEvents"), "eventCode", "eventType", NULL);
			} else {
				json_t *d = json_array_get(json_object_get(s, "shipments"), 0);
				num = json_string_value(json_object_get(d, "id"));
				delivered = strcmp(json_string_value(json_object_get(json_object_get(d, "status"),
										     "statusCode")) ?: "", "delivered") == 0;
				events = json_array_size(json_object_get(d, "events"));
				scans = scan_list(json_object_get(d, "events"), "statusCode", "description", "remark");
			}
			if (!num || n == max) {
				free(scans);
				continue;
			}
			snprintf(t[n].number, sizeof(t[n].number), "%s", num);
			snprintf(t[n].carrier, sizeof(t[n].carrier), "%s", carriers[c]);
			t[n].delivered = delivered;
			t[n].events = events;
			t[n].scans = scans;
			n++;
		}
		json_decref(all);
	}
	return n;
}

static const struct truth *truth_of(const struct truth *t, size_t n, const char *number)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].number, number) == 0)
			return &t[i];
	return NULL;
}

/* Compares every hub shipment with the carriers' truth; returns the number
 * of differences (first described in why) and counts delivered ones. */
static int compare(size_t *delivered, char *why, size_t size)
{
	static struct truth t[4096];
	size_t nt = load_truth(t, 4096), i, matched = 0;
	json_t *list = hub_get("/v1/shipments?limit=500"), *s;
	int diffs = 0;

	*delivered = 0;
	assert_non_null(list);
	/* All in one page: the test's shops make a few hundred shipments. */
	assert_true(json_is_null(json_object_get(list, "next")));
	if (json_array_size(json_object_get(list, "shipments")) == 0) {
		snprintf(why, size, "no shipments in the hub yet");
		json_decref(list);
		return 1;
	}
	json_array_foreach(json_object_get(list, "shipments"), i, s) {
		const char *num = json_string_value(json_array_get(json_object_get(s, "tracking_numbers"), 0));
		const struct truth *tr = num ? truth_of(t, nt, num) : NULL;
		char path[64];
		json_t *one;
		size_t events;
		if (!tr)
			continue; /* a number the carriers do not know (yet) */
		snprintf(path, sizeof(path), "/v1/shipments/%lld", (long long)json_integer_value(json_object_get(s, "id")));
		one = hub_get(path);
		assert_non_null(one);
		events = json_array_size(json_object_get(one, "events"));
		char *scans = scan_list(json_object_get(one, "events"), "carrier_code", "description", NULL);
		const char *status = json_string_value(json_object_get(json_object_get(one, "shipment"), "status"));
		if (!status)
			status = json_string_value(json_object_get(s, "status"));
		if (events != tr->events || (strcmp(status ?: "", "delivered") == 0) != tr->delivered) {
			if (!diffs++)
				snprintf(why, size, "%s %s: hub %s with %zu events, truth %s with %zu events", tr->carrier,
					 num, status, events, tr->delivered ? "delivered" : "not delivered", tr->events);
		} else if (strcmp(scans, tr->scans) != 0) {
			if (!diffs++)
				snprintf(why, size, "%s %s: events differ: hub\n%struth\n%s", tr->carrier, num, scans,
					 tr->scans);
		}
		free(scans);
		if (tr->delivered)
			(*delivered)++;
		matched++;
		json_decref(one);
	}
	json_decref(list);
	for (i = 0; i < nt; i++)
		free(t[i].scans);
	/* Every parcel the carriers carry came from the shops: none missing. */
	if (matched != nt && !diffs++)
		snprintf(why, size, "the hub follows %zu of the carriers' %zu shipments", matched, nt);
	return diffs;
}

/* Syncs every Shopify connector now and waits until each sync is done. */
static void sync_shops(void)
{
	char url[160], path[64];
	time_t deadline = time(NULL) + 120;

	for (int i = 1; i <= SHOPS; i++) {
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/connectors/s%d/sync", env.hub_port, i);
		assert_int_equal(th_post_json(url, env.token, "{}"), 202);
	}
	for (int i = 1; i <= SHOPS; i++) {
		for (;;) {
			json_t *st;
			int done;
			snprintf(path, sizeof(path), "/v1/connectors/s%d/status", i);
			st = hub_get(path);
			done = st && strcmp(json_string_value(json_object_get(json_object_get(st, "sync"), "state")) ?: "",
					    "running") != 0;
			json_decref(st);
			if (done)
				break;
			if (time(NULL) > deadline)
				fail_msg("Shopify connector s%d did not finish its sync", i);
			usleep(200000);
		}
	}
}

static void resync_carriers(void)
{
	for (size_t c = 0; c < 4; c++) {
		char url[160];
		snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/connectors/%s/sync", env.hub_port, carriers[c]);
		assert_int_equal(th_post_json(url, env.token, "{}"), 202);
	}
}

/* Counts the delivered fulfillment events the hub posted to Shopify, per
 * fulfillment; fails if any delivered shipment has none or more than one. */
static void check_pushed(void)
{
	size_t i, k, pushed = 0, delivered_ships = 0;
	json_t *list = hub_get("/v1/shipments?status=delivered&limit=500"), *s, *e;

	json_array_foreach(json_object_get(list, "shipments"), i, s) {
		const char *conn = json_string_value(json_object_get(s, "connector"));
		char url[400], auth[100];
		json_t *events;
		int n = 0;
		if (!conn || conn[0] != 's')
			continue;
		delivered_ships++;
		snprintf(url, sizeof(url),
			 "http://127.0.0.1:%d/shops/shop-%s.myshopify.com/admin/api/2026-07/orders/%s/fulfillments/%s/events.json",
			 env.sb_port, conn + 1, json_string_value(json_object_get(s, "order_external_id")),
			 json_string_value(json_object_get(s, "external_id")));
		snprintf(auth, sizeof(auth), "X-Shopify-Access-Token: shpat_sandbox_%s", conn + 1);
		/* The check reads through the shop's own leaky bucket (40, 2/s):
		 * when refused, wait for it to drain a little. */
		events = NULL;
		for (int a = 0; a < 30 && !events; a++) {
			events = get_json_hdr(url, auth);
			if (!events)
				usleep(700000);
		}
		assert_non_null(events);
		json_array_foreach(json_object_get(events, "fulfillment_events"), k, e) {
			const char *msg = json_string_value(json_object_get(e, "message"));
			if (msg && strncmp(msg, "Reported by the hub", 19) == 0 &&
			    strcmp(json_string_value(json_object_get(e, "status")) ?: "", "delivered") == 0)
				n++;
		}
		if (n != 1)
			fail_msg("shipment %s of %s: %d delivered reports from the hub, expected exactly 1",
				 json_string_value(json_object_get(s, "external_id")), conn, n);
		pushed++;
		json_decref(events);
	}
	json_decref(list);
	printf("%zu delivered shipments, each reported to Shopify exactly once\n", pushed);
	assert_true(delivered_ships > 0);
}

static void followed_to_delivery(void **state)
{
	char why[4096] = "";
	size_t delivered = 0;
	int diffs = 1;

	/* Let the parcels travel: each tick moves scans on; after each, every
	 * carrier rechecks all its active numbers and we compare. */
	for (int round = 0; round < 6; round++) {
		time_t deadline;
		assert_int_equal(hubt_tick(env.sb_port, 86400), 200);
		sync_shops(); /* new fulfillments reach the hub first */
		resync_carriers();
		/* Room for a circuit that opens under the injected faults (30 s
		 * cool-down) and the retries around it. */
		deadline = time(NULL) + 150;
		do {
			sleep(1);
			diffs = compare(&delivered, why, sizeof(why));
		} while (diffs && time(NULL) < deadline);
		printf("round %d: %s after %lds\n", round, diffs ? "differs" : "matches",
		       (long)(time(NULL) - (deadline - 150)));
		if (diffs) {
			for (size_t c = 0; c < 4; c++) {
				char p[64];
				snprintf(p, sizeof(p), "/v1/connectors/%s/status", carriers[c]);
				json_t *st = hub_get(p);
				char *text = json_dumps(st, JSON_COMPACT);
				fprintf(stderr, "%s\n", text ? text : "?");
				free(text);
				json_decref(st);
			}
			fail_msg("round %d: tracking differs from the carriers' truth: %s", round, why);
		}
	}
	printf("%zu shipments delivered, all matching the carriers' truth\n", delivered);
	assert_true(delivered > 0);
	/* Jobs push the delivered states back to Shopify. */
	{
		time_t deadline = time(NULL) + 60;
		json_t *m;
		for (;;) {
			char murl[128];
			struct th_response r;
			snprintf(murl, sizeof(murl), "http://127.0.0.1:%d/metrics", env.hub_port);
			th_http("GET", murl, NULL, NULL, 0, &r);
			int idle = strstr(r.body, "\nhub_jobs_queued 0\n") != NULL;
			th_response_release(&r);
			if (idle || time(NULL) > deadline)
				break;
			sleep(1);
		}
		m = hub_get("/v1/dead-letters");
		if (json_array_size(json_object_get(m, "dead_letters")) > 0) {
			char *text = json_dumps(json_object_get(m, "dead_letters"), 0);
			fail_msg("dead letters: %.600s", text);
		}
		json_decref(m);
	}
	/* Our own verification reads go without injected faults. */
	{
		struct th_response r;
		char furl[128];
		snprintf(furl, sizeof(furl), "http://127.0.0.1:%d/_sandbox/faults", env.sb_port);
		th_http("DELETE", furl, NULL, NULL, 0, &r);
		th_response_release(&r);
	}
	check_pushed();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(followed_to_delivery),
	};
	return cmocka_run_group_tests(tests, setup, hubt_env_teardown);
}
