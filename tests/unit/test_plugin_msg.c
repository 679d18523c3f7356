/*
 * test_plugin_msg.c - messages, calls and the host table without any plugin:
 * what the setters refuse (header injection, relative URLs), header lookup,
 * bodies, the outputs a call collects, and validation of emitted records
 * against the canonical schemas (field and reason).
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "host.h"
#include "jsonschema.h"
#include "msg.h"

static struct js_registry *schemas;

static int setup(void **state)
{
	struct hub_error err;

	(void)state;
	schemas = js_registry_new();
	if (!schemas || js_registry_add_builtin(schemas, &err) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	js_registry_free(schemas);
	return 0;
}

static json_t *valid_order(void)
{
	return json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:[{s:s,s:i,s:i}]}", "external_id", "1001",
			 "currency", "EUR", "total", 1990, "status", "open", "created_at",
			 "2026-01-01T10:00:00.000Z", "updated_at", "2026-01-01T10:00:00.000Z",
			 "lines", "external_id", "l1", "quantity", 1, "unit_price", 1990);
}

static void test_request_setters(void **state)
{
	struct hub_msg m;
	size_t len = 99;

	(void)state;
	msg_init(&m);
	assert_int_equal(msg_set_request(&m, "GET", "https://api.example.test/x?a=1"), 0);
	assert_string_equal(m.method, "GET");
	/* relative URLs, lower-case methods, spaces and control chars refused */
	assert_int_equal(msg_set_request(&m, "GET", "/relative"), -1);
	assert_int_equal(msg_set_request(&m, "get", "https://a.test/"), -1);
	assert_int_equal(msg_set_request(&m, "GET", "https://a.test/a b"), -1);
	assert_int_equal(msg_set_request(&m, "GET", "https://a.test/\r\nX: y"), -1);
	assert_int_equal(msg_set_request(&m, "GET", "ftp://a.test/"), -1);
	assert_int_equal(msg_set_request(&m, NULL, "https://a.test/"), -1);
	/* the failed calls left the first request in place */
	assert_string_equal(m.url, "https://api.example.test/x?a=1");

	/* header injection refused; names must be tokens */
	assert_int_equal(msg_add_header(&m, "X-Ok", "v"), 0);
	assert_int_equal(msg_add_header(&m, "X-Bad", "v\r\nX-Injected: 1"), -1);
	assert_int_equal(msg_add_header(&m, "X Bad", "v"), -1);
	assert_int_equal(msg_add_header(&m, "X-Bad:", "v"), -1);
	assert_int_equal(msg_add_header(&m, "", "v"), -1);
	assert_int_equal(m.nheaders, 1);
	assert_int_equal(msg_add_header(&m, "x-ok", "second"), 0);
	/* case-insensitive lookup returns the first value */
	assert_string_equal(msg_header(&m, "X-OK"), "v");
	assert_null(msg_header(&m, "X-Injected"));

	/* empty body: "" and length 0; bodies are NUL-terminated copies */
	assert_string_equal(msg_body(&m, &len), "");
	assert_int_equal(len, 0);
	assert_int_equal(msg_set_body(&m, "ab\0cd", 5), 0);
	assert_memory_equal(msg_body(&m, &len), "ab\0cd", 6);
	assert_int_equal(len, 5);
	assert_int_equal(msg_set_body(&m, NULL, 3), -1);

	assert_int_equal(msg_set_operation(&m, "searchOrders"), 0);
	assert_int_equal(msg_set_operation(&m, "bad op"), -1);
	assert_string_equal(m.operation, "searchOrders");
	assert_int_equal(msg_set_status(&m, 99), -1);
	assert_int_equal(msg_set_status(&m, 429), 0);
	msg_release(&m);
	assert_null(m.method);
	assert_int_equal(m.nheaders, 0);

	/* Headers added at once share one block, the same checks apply, and
	 * single adds still work around it (valgrind/ASan check the frees). */
	{
		const char *names[] = {"X-Shopify-Topic", "Bad Name", "X-Hmac", "X-Inject", "Host"};
		const char *values[] = {"orders/create", "v", "abc=", "a\r\nb", "example.test"};

		msg_init(&m);
		assert_int_equal(msg_add_header(&m, "X-First", "1"), 0);
		assert_int_equal(msg_add_headers(&m, names, values, 5), 0);
		assert_int_equal(m.nheaders, 4);
		assert_string_equal(msg_header(&m, "x-shopify-topic"), "orders/create");
		assert_string_equal(msg_header(&m, "X-HMAC"), "abc=");
		assert_string_equal(msg_header(&m, "host"), "example.test");
		assert_string_equal(msg_header(&m, "X-First"), "1");
		assert_null(msg_header(&m, "X-Inject"));
		assert_null(msg_header(&m, "Bad Name"));
		/* a second batch goes header by header */
		assert_int_equal(msg_add_headers(&m, names, values, 1), 0);
		assert_int_equal(msg_add_header(&m, "X-Last", "z"), 0);
		assert_int_equal(m.nheaders, 6);
		assert_string_equal(m.headers[5].value, "z");
		msg_release(&m);
		assert_int_equal(m.nheaders, 0);
		assert_null(m.header_block);
	}
}

static void test_msg_to_json(void **state)
{
	struct hub_msg *m = msg_new();
	json_t *j;

	(void)state;
	assert_non_null(m);
	assert_int_equal(msg_set_webhook(m, "POST", "/hooks/acme?x=1"), 0);
	assert_int_equal(msg_add_header(m, "X-Topic", "orders/create"), 0);
	assert_int_equal(msg_set_body(m, "{\"a\":1}", 7), 0);
	j = msg_to_json(m);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "url")), "/hooks/acme?x=1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "body"), "a")), 1);
	assert_string_equal(json_string_value(json_array_get(
				    json_array_get(json_object_get(j, "headers"), 0), 1)),
			    "orders/create");
	json_decref(j);
	/* a body that is not JSON is kept as text */
	assert_int_equal(msg_set_body(m, "a=1&b=2", 7), 0);
	j = msg_to_json(m);
	assert_string_equal(json_string_value(json_object_get(j, "body_text")), "a=1&b=2");
	assert_null(json_object_get(j, "body"));
	json_decref(j);
	msg_free(m);
}

static void test_host_table(void **state)
{
	const struct hub_host *h = host_table();
	unsigned char mac[32];
	struct hub_msg m;
	size_t len;

	(void)state;
	assert_int_equal(h->abi_version, HUB_ABI_VERSION);
	assert_int_equal(h->struct_size, sizeof(struct hub_host));
	/* RFC 4231 case 2 */
	assert_int_equal(h->hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac), 0);
	assert_int_equal(mac[0], 0x5b);
	assert_int_equal(mac[31], 0x43);
	assert_int_equal(h->ct_equal("abc", "abc", 3), 1);
	assert_int_equal(h->ct_equal("abc", "abd", 3), 0);

	host_clock_fix(1767225600000LL);
	assert_int_equal(h->now_ms(), 1767225600000LL);
	host_clock_fix(0);
	assert_true(h->now_ms() > 1700000000000LL);

	msg_init(&m);
	assert_int_equal(h->msg_set_request(&m, "POST", "https://a.test/x"), 0);
	assert_int_equal(h->msg_add_header(&m, "Content-Type", "application/json"), 0);
	assert_int_equal(h->msg_set_body(&m, "{}", 2), 0);
	assert_string_equal(h->msg_method(&m), "POST");
	assert_string_equal(h->msg_url(&m), "https://a.test/x");
	assert_string_equal(h->msg_header(&m, "content-type"), "application/json");
	assert_string_equal(h->msg_body(&m, &len), "{}");
	assert_int_equal(h->msg_status(&m), 0);
	/* a NULL connector or message never crashes the host */
	assert_null(h->secret(NULL, "x"));
	assert_null(h->access_token(NULL));
	assert_null(h->cursor(NULL, "orders"));
	assert_null(h->msg_header(NULL, "x"));
	msg_release(&m);
}

static void test_emit_validation(void **state)
{
	const struct hub_host *h = host_table();
	struct hub_call call;
	json_t *bad, *j;

	(void)state;
	call_init(&call, CALL_KIND_BIT(HUB_RECORD_ORDER), schemas);
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, valid_order()), 0);
	assert_int_equal(call.nrecords, 1);

	/* money as a decimal string: refused with field and reason */
	bad = valid_order();
	json_object_set_new(bad, "total", json_string("19.90"));
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, bad), 0);
	assert_int_equal(call.nrecords, 1);
	assert_int_equal(call.nrejects, 1);
	assert_string_equal(call.rejects[0].err.field, "order.total");
	assert_non_null(strstr(call.rejects[0].err.message, "integer"));

	/* a nested field is named by its path */
	bad = valid_order();
	json_object_set_new(json_array_get(json_object_get(bad, "lines"), 0), "quantity",
			    json_integer(-1));
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, bad), 0);
	assert_string_equal(call.rejects[1].err.field, "order.lines[0].quantity");

	/* a missing required field */
	bad = valid_order();
	json_object_del(bad, "currency");
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, bad), 0);
	assert_non_null(strstr(call.rejects[2].err.field, "currency"));

	/* not an object */
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, json_string("x")), 0);
	assert_int_equal(call.nrejects, 4);
	assert_string_equal(call.rejects[3].err.field, "order");

	/* a kind this callback may not emit: -1, counted as misuse */
	assert_int_equal(h->emit(&call, HUB_RECORD_SHIPMENT, json_object()), -1);
	assert_int_equal(h->emit(&call, (enum hub_record_kind)42, json_object()), -1);
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, NULL), -1);
	assert_int_equal(call.misuses, 3);

	/* the other outputs */
	assert_int_equal(h->set_cursor(&call, json_pack("{s:i}", "page", 2)), 0);
	h->set_more(&call, 7);
	h->set_delivery_id(&call, "d-1");
	h->set_topic(&call, "orders/create");
	h->set_access_token(&call, "tok", 42);
	h->observe_limit(&call, "orders", 3, 40, 2, 1500);
	assert_int_equal(h->queue_action(&call, "push_tracking", json_pack("{s:s}", "n", "1Z")), 0);
	assert_int_equal(h->queue_action(&call, "bad action", json_object()), -1);
	j = call_to_json(&call);
	assert_non_null(j);
	assert_int_equal(json_array_size(json_object_get(j, "records")), 1);
	assert_int_equal(json_array_size(json_object_get(j, "rejects")), 4);
	assert_true(json_is_true(json_object_get(j, "more")));
	assert_string_equal(json_string_value(json_object_get(j, "delivery_id")), "d-1");
	assert_string_equal(json_string_value(json_object_get(j, "access_token")), "tok");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "cursor"), "page")), 2);
	assert_int_equal(json_array_size(json_object_get(j, "limits")), 1);
	assert_int_equal(json_array_size(json_object_get(j, "actions")), 1);
	json_decref(j);

	/* release keeps the kind mask and schemas for reuse */
	call_release(&call);
	assert_int_equal(call.nrecords, 0);
	assert_null(call.cursor);
	assert_int_equal(h->emit(&call, HUB_RECORD_ORDER, valid_order()), 0);
	assert_int_equal(call.nrecords, 1);
	call_release(&call);
}

static void test_tracking_record(void **state)
{
	struct hub_error err;
	json_t *rec;

	(void)state;
	rec = json_pack("{s:s,s:s,s:s,s:[{s:s,s:s,s:s}]}", "carrier", "ups", "tracking_number",
			"1Z999", "status", "in_transit", "events", "occurred_at",
			"2026-01-01T10:00:00.000Z", "status", "in_transit", "description",
			"Departed");
	assert_int_equal(host_validate_record(schemas, HUB_RECORD_TRACKING, rec, &err), 0);
	json_object_set_new(json_array_get(json_object_get(rec, "events"), 0), "status",
			    json_string("teleported"));
	assert_int_equal(host_validate_record(schemas, HUB_RECORD_TRACKING, rec, &err), -1);
	assert_string_equal(err.field, "tracking.events[0].status");
	json_decref(rec);
}

static void test_names(void **state)
{
	int st = -1;

	(void)state;
	assert_string_equal(host_status_name(HUB_NOT_FOUND), "HUB_NOT_FOUND");
	assert_null(host_status_name(99));
	assert_int_equal(host_status_parse("HUB_UNAUTHORIZED", &st), 0);
	assert_int_equal(st, HUB_UNAUTHORIZED);
	assert_int_equal(host_status_parse("DONE", &st), 0);
	assert_int_equal(st, HUB_DONE);
	assert_int_equal(host_status_parse("HUB_NOPE", &st), -1);
	assert_int_equal(call_kind_parse("shipment"), HUB_RECORD_SHIPMENT);
	assert_int_equal(call_kind_parse("nope"), 0);
	assert_string_equal(call_kind_name(HUB_RECORD_TRACKING), "tracking");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_setters),
		cmocka_unit_test(test_msg_to_json),
		cmocka_unit_test(test_host_table),
		cmocka_unit_test(test_emit_validation),
		cmocka_unit_test(test_tracking_record),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
