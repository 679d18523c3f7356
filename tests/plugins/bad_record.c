/*
 * bad_record.c - loads fine, but its orders stream emits an order whose
 * total is a decimal string instead of minor units. The host must refuse the
 * record, and hub-plugin-kit must fail naming order.total and the reason.
 *
 * Built with -DBAD_LEAK it is bad_leak.so: the same plugin, except that
 * every instance leaks 256 bytes (destroy() frees the state but not its
 * buffer). The kit's load/unload cycles must notice the heap growing in
 * both halves of the run.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "minimal.h"

#ifdef BAD_LEAK
#define BAD_NAME "bad_leak"
#else
#define BAD_NAME "bad_record"
#endif

struct bad {
	const struct hub_host *host;
	char *scratch; /* bad_leak: never freed */
};

static int bad_create(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		      void **state, struct hub_error *err)
{
	struct bad *b = calloc(1, sizeof(*b));

	(void)conn;
	(void)config;
	if (!b) {
		snprintf(err->message, sizeof(err->message), "out of memory");
		return HUB_FATAL;
	}
	b->host = host;
#ifdef BAD_LEAK
	b->scratch = malloc(256);
	if (b->scratch)
		memset(b->scratch, 1, 256);
#endif
	*state = b;
	return HUB_OK;
}

static int build_request(void *state, const char *stream, const json_t *cursor,
			 struct hub_msg *req, struct hub_error *err)
{
	struct bad *b = state;

	(void)stream;
	(void)cursor;
	(void)err;
	b->host->msg_set_request(req, "GET", "https://api.example.test/orders");
	return HUB_OK;
}

static int read_response(void *state, const char *stream, const json_t *cursor,
			 const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	struct bad *b = state;

	(void)stream;
	(void)cursor;
	(void)resp;
	(void)err;
	b->host->emit(call, HUB_RECORD_ORDER,
		      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:[]}", "external_id", "1001",
				"currency", "EUR", "total", "19.90", "status", "open",
				"created_at", "2026-01-01T00:00:00.000Z", "updated_at",
				"2026-01-01T00:00:00.000Z", "lines"));
	b->host->set_cursor(call, json_null());
	b->host->set_more(call, 0);
	return HUB_OK;
}

static const struct hub_stream_def streams[] = {
	{.name = "orders", .record_kinds = 1u << HUB_RECORD_ORDER, .default_interval_s = 60},
	{.name = NULL},
};

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = BAD_NAME,
	.version = "1.0.0",
	.capabilities = HUB_CAP_ORDERS,
	.config_schema = MINIMAL_SCHEMA,
	.streams = streams,
	.create = bad_create,
	.destroy = minimal_destroy,
	.build_request = build_request,
	.read_response = read_response,
};
