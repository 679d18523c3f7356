/*
 * host.c - the struct hub_host table plugins call, and canonical record
 * validation.
 *
 * Each entry is a thin, defensive wrapper: plugins are partner code, so a
 * NULL argument or an output the callback may not produce is counted as a
 * misuse on the call (the kit reports it) instead of crashing the daemon.
 * emit() is where the promise "the core validates every record" is kept:
 * a record that does not match its canonical schema never joins the call's
 * records; it is kept aside with the field and the reason.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "connector.h"
#include "host.h"
#include "jsonschema.h"
#include "log.h"
#include "msg.h"

static int64_t fixed_clock_ms;
static _Thread_local int64_t thread_clock_ms;

void host_clock_fix(int64_t utc_ms)
{
	fixed_clock_ms = utc_ms;
}

void host_clock_fix_thread(int64_t utc_ms)
{
	thread_clock_ms = utc_ms;
}

int64_t host_now_ms(void)
{
	struct timespec ts;

	if (thread_clock_ms)
		return thread_clock_ms;
	if (fixed_clock_ms)
		return fixed_clock_ms;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- validation -------------------------------------------------------- */

static const char *const schema_ids[] = {
	[HUB_RECORD_ORDER] = "order.json",
	[HUB_RECORD_SHIPMENT] = "shipment.json",
	[HUB_RECORD_TRACKING] = "tracking.json",
};

int host_validate_record(const struct js_registry *schemas, enum hub_record_kind kind,
			 const json_t *record, struct hub_error *err)
{
	const char *name = call_kind_name(kind);
	struct hub_error verr;
	const json_t *schema;
	const char *field;

	memset(err, 0, sizeof(*err));
	if (!name) {
		snprintf(err->message, sizeof(err->message), "unknown record kind %d", (int)kind);
		return -1;
	}
	if (!json_is_object(record)) {
		snprintf(err->field, sizeof(err->field), "%s", name);
		snprintf(err->message, sizeof(err->message),
			 "a record must be a JSON object (see sdk/schema/%s)", schema_ids[kind]);
		return -1;
	}
	schema = schemas ? js_registry_get(schemas, schema_ids[kind]) : NULL;
	if (!schema) {
		snprintf(err->field, sizeof(err->field), "%s", name);
		snprintf(err->message, sizeof(err->message),
			 "canonical schema %s is not loaded: cannot accept the record",
			 schema_ids[kind]);
		return -1;
	}
	memset(&verr, 0, sizeof(verr));
	if (js_validate(schemas, schema, record, &verr) == 0)
		return 0;
	/* verr.field is a JSON path inside the record ("" or "$" for the root,
	 * "lines[0].sku" below it): present it under the kind's name. */
	field = verr.field;
	if (field[0] == '$')
		field++;
	if (field[0] == '.')
		field++;
	if (field[0] == '\0')
		snprintf(err->field, sizeof(err->field), "%s", name);
	else if (field[0] == '[')
		snprintf(err->field, sizeof(err->field), "%s%.100s", name, field);
	else
		snprintf(err->field, sizeof(err->field), "%s.%.100s", name, field);
	snprintf(err->message, sizeof(err->message), "%s", verr.message);
	return -1;
}

/* ---- names ------------------------------------------------------------- */

static const char *const status_names[] = {
	[HUB_OK] = "HUB_OK",
	[HUB_DONE] = "HUB_DONE",
	[HUB_RETRY] = "HUB_RETRY",
	[HUB_FATAL] = "HUB_FATAL",
	[HUB_UNAUTHORIZED] = "HUB_UNAUTHORIZED",
	[HUB_AUTH_EXPIRED] = "HUB_AUTH_EXPIRED",
	[HUB_IGNORED] = "HUB_IGNORED",
	[HUB_INVALID] = "HUB_INVALID",
	[HUB_NOT_FOUND] = "HUB_NOT_FOUND",
};

#define NSTATUS (sizeof(status_names) / sizeof(status_names[0]))

const char *host_status_name(int status)
{
	if (status < 0 || (size_t)status >= NSTATUS)
		return NULL;
	return status_names[status];
}

int host_status_parse(const char *name, int *status)
{
	size_t i;

	if (!name)
		return -1;
	for (i = 0; i < NSTATUS; i++)
		if (strcmp(status_names[i], name) == 0 ||
		    strcmp(status_names[i] + 4, name) == 0) {
			*status = (int)i;
			return 0;
		}
	return -1;
}

json_t *host_capabilities_json(uint32_t capabilities)
{
	static const struct {
		uint32_t flag;
		const char *name;
	} caps[] = {
		{HUB_CAP_ORDERS, "orders"},
		{HUB_CAP_SHIPMENTS, "shipments"},
		{HUB_CAP_TRACKING, "tracking"},
		{HUB_CAP_WEBHOOKS, "webhooks"},
		{HUB_CAP_FULFILLMENT_PUSH, "fulfillment_push"},
		{HUB_CAP_TOKEN_REFRESH, "token_refresh"},
		{HUB_CAP_WEBHOOKS_REENTRANT, "webhooks_reentrant"},
		{HUB_CAP_WEBHOOKS_SCOPED, "webhooks_scoped"},
	};
	json_t *arr = json_array();
	size_t i;

	for (i = 0; arr && i < sizeof(caps) / sizeof(caps[0]); i++)
		if (capabilities & caps[i].flag)
			json_array_append_new(arr, json_string(caps[i].name));
	return arr;
}

/* ---- the table ----------------------------------------------------------- */

static void host_log(struct hub_conn *conn, enum hub_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void host_log(struct hub_conn *conn, enum hub_log_level level, const char *fmt, ...)
{
	char line[1024];
	enum log_level lvl;
	va_list ap;

	switch (level) {
	case HUB_LOG_DEBUG: lvl = LOG_DEBUG; break;
	case HUB_LOG_INFO: lvl = LOG_INFO; break;
	case HUB_LOG_WARN: lvl = LOG_WARN; break;
	default: lvl = LOG_ERROR; break;
	}
	if (!fmt || !log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_msg(lvl, "plugin", "%s: %s", conn ? connector_name((struct connector *)conn) : "-",
		line);
}

static int host_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
			    unsigned char out[32])
{
	static const unsigned char empty = 0;
	unsigned int out_len = 0;

	if (!out || key_len > INT32_MAX || (!data && len))
		return -1;
	if (HMAC(EVP_sha256(), key ? key : &empty, (int)key_len,
		 data ? data : &empty, len, out, &out_len) == NULL || out_len != 32)
		return -1;
	return 0;
}

static int host_ct_equal(const void *a, const void *b, size_t len)
{
	if (!a || !b)
		return 0;
	return CRYPTO_memcmp(a, b, len) == 0;
}

static int64_t host_now(void)
{
	return host_now_ms();
}

static const char *host_secret(struct hub_conn *conn, const char *name)
{
	if (!conn || !name)
		return NULL;
	return connector_secret((struct connector *)conn, name);
}

static const char *host_access_token(struct hub_conn *conn)
{
	if (!conn)
		return NULL;
	return connector_access_token((struct connector *)conn);
}

static const json_t *host_cursor(struct hub_conn *conn, const char *stream)
{
	if (!conn || !stream)
		return NULL;
	return connector_cursor((struct connector *)conn, stream);
}

static const char *host_msg_header(const struct hub_msg *msg, const char *name)
{
	return msg_header(msg, name);
}

static const char *host_msg_body(const struct hub_msg *msg, size_t *len)
{
	return msg_body(msg, len);
}

static int host_msg_status(const struct hub_msg *msg)
{
	return msg ? msg->status : 0;
}

static const char *host_msg_method(const struct hub_msg *msg)
{
	return msg ? msg->method : NULL;
}

static const char *host_msg_url(const struct hub_msg *msg)
{
	return msg ? msg->url : NULL;
}

static int host_msg_set_request(struct hub_msg *msg, const char *method, const char *url)
{
	return msg_set_request(msg, method, url);
}

static int host_msg_add_header(struct hub_msg *msg, const char *name, const char *value)
{
	return msg_add_header(msg, name, value);
}

static int host_msg_set_body(struct hub_msg *msg, const void *body, size_t len)
{
	return msg_set_body(msg, body, len);
}

static int host_msg_set_operation(struct hub_msg *msg, const char *operation)
{
	return msg_set_operation(msg, operation);
}

static int host_emit(struct hub_call *call, enum hub_record_kind kind, json_t *record)
{
	struct hub_error err;

	if (!call || !record) {
		json_decref(record);
		if (call)
			call->misuses++;
		return -1;
	}
	if (!call_kind_name(kind) || !(call->kinds & CALL_KIND_BIT(kind))) {
		call->misuses++;
		json_decref(record);
		return -1;
	}
	if (call->schemas && host_validate_record(call->schemas, kind, record, &err) < 0)
		return call_add_reject(call, kind, record, &err) < 0 ? -1 : 0;
	return call_add_record(call, kind, record);
}

static int host_set_cursor(struct hub_call *call, json_t *cursor)
{
	if (!call) {
		json_decref(cursor);
		return -1;
	}
	call_set_cursor(call, cursor);
	return 0;
}

static void host_set_more(struct hub_call *call, int more)
{
	if (call)
		call->more = more ? 1 : 0;
}

static void host_set_delivery_id(struct hub_call *call, const char *id)
{
	if (call && call_set_delivery_id(call, id) < 0)
		call->misuses++;
}

static void host_set_topic(struct hub_call *call, const char *topic)
{
	if (call && call_set_topic(call, topic) < 0)
		call->misuses++;
}

static void host_set_access_token(struct hub_call *call, const char *token,
				  int64_t expires_at_ms)
{
	if (call && call_set_access_token(call, token, expires_at_ms) < 0)
		call->misuses++;
}

static void host_observe_limit(struct hub_call *call, const char *bucket, double used,
			       double capacity, double rate, int64_t retry_after_ms)
{
	if (call && call_add_limit(call, bucket, used, capacity, rate, retry_after_ms) < 0)
		call->misuses++;
}

static int host_queue_action(struct hub_call *call, const char *action, json_t *payload)
{
	if (!call) {
		json_decref(payload);
		return -1;
	}
	if (call_add_action(call, action, payload) < 0) {
		call->misuses++;
		return -1;
	}
	return 0;
}

static const struct hub_host table = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_host),
	.log = host_log,
	.hmac_sha256 = host_hmac_sha256,
	.ct_equal = host_ct_equal,
	.now_ms = host_now,
	.secret = host_secret,
	.access_token = host_access_token,
	.cursor = host_cursor,
	.msg_header = host_msg_header,
	.msg_body = host_msg_body,
	.msg_status = host_msg_status,
	.msg_method = host_msg_method,
	.msg_url = host_msg_url,
	.msg_set_request = host_msg_set_request,
	.msg_add_header = host_msg_add_header,
	.msg_set_body = host_msg_set_body,
	.msg_set_operation = host_msg_set_operation,
	.emit = host_emit,
	.set_cursor = host_set_cursor,
	.set_more = host_set_more,
	.set_delivery_id = host_set_delivery_id,
	.set_topic = host_set_topic,
	.set_access_token = host_set_access_token,
	.observe_limit = host_observe_limit,
	.queue_action = host_queue_action,
};

const struct hub_host *host_table(void)
{
	return &table;
}
