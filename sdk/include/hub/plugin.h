/*
 * hub/plugin.h - the connector plugin ABI, version 1.
 *
 * This is the only header a connector plugin must include. A plugin is a
 * shared object that exports exactly one symbol, `hub_plugin_v1`, a
 * `const struct hub_plugin` describing it. The plugin is a pure translator:
 * it never opens sockets, sleeps, retries or keeps timers. The host (hubd, or
 * hub-plugin-kit) asks it questions - "what request comes next for this
 * stream?", "what records does this response carry?", "is this webhook
 * authentic?" - and owns all I/O, time, limits and persistence around the
 * answers.
 *
 * Threads: every callback is called from the host's event-loop thread, one
 * call at a time per plugin generation, so a plugin needs no locks. Callbacks
 * must return in microseconds: no blocking calls. The one exception is
 * opt-in: a plugin that declares HUB_CAP_WEBHOOKS_REENTRANT lets the host run
 * its verify_webhook and read_webhook on worker threads (see the flag).
 *
 * Compatibility rules (the ABI is a contract):
 *  - struct hub_plugin and struct hub_host start with abi_version and
 *    struct_size; fields are only ever appended, never reordered or removed.
 *    A host reading a descriptor smaller than it knows treats the missing
 *    tail as NULL/0; a larger one is used up to the prefix the host knows.
 *  - enum values are never renumbered; new values are appended.
 *  - struct hub_stream_def, struct hub_bucket_def and struct hub_error are
 *    frozen for ABI v1 (they are used in arrays or by value).
 *  - Messages (requests, responses, webhooks) and calls are opaque handles
 *    accessed through the host table, so their layout may change freely.
 *
 * Records cross the boundary as jansson objects following the canonical
 * schemas installed with the SDK (order, shipment, tracking). The host
 * validates each one; a record that violates its schema is refused and sent
 * to the dead letters with the field and the reason.
 */
#ifndef HUB_PLUGIN_H
#define HUB_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI major version. A host refuses a plugin whose major differs. */
#define HUB_ABI_VERSION 1u

/* Name of the one symbol a plugin exports, for this ABI version. */
#define HUB_PLUGIN_SYMBOL "hub_plugin_v1"

/* Marks the descriptor as the plugin's only exported symbol. Build plugins
 * with -fvisibility=hidden so nothing else leaks out. */
#if defined(__GNUC__)
#define HUB_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define HUB_PLUGIN_EXPORT
#endif

/*
 * Results of plugin callbacks. Never renumbered; new values are appended.
 * A plugin classifies what happened; the host decides what to do about it.
 */
enum hub_status {
	HUB_OK = 0,           /* success */
	HUB_DONE = 1,         /* build_request: nothing to fetch now (stream caught up) */
	HUB_RETRY = 2,        /* transient failure: the host retries with backoff */
	HUB_FATAL = 3,        /* permanent failure: the host dead-letters the work */
	HUB_UNAUTHORIZED = 4, /* webhook signature wrong or missing */
	HUB_AUTH_EXPIRED = 5, /* upstream refused our credentials (401): the host
	                         refreshes the access token once, then gives up */
	HUB_IGNORED = 6,      /* webhook topic or action the plugin does not handle */
	HUB_INVALID = 7,      /* input is malformed (config, payload, response) */
	HUB_NOT_FOUND = 8,    /* the upstream object does not exist (yet) */
};

/* What a plugin can do; the loader checks the callbacks each one needs. */
enum hub_capability_flags {
	HUB_CAP_ORDERS = 1u << 0,           /* streams emitting orders: build_request, read_response */
	HUB_CAP_SHIPMENTS = 1u << 1,        /* streams emitting shipments: build_request, read_response */
	HUB_CAP_TRACKING = 1u << 2,         /* the "tracking" stream: build_request, read_response */
	HUB_CAP_WEBHOOKS = 1u << 3,         /* verify_webhook, read_webhook */
	HUB_CAP_FULFILLMENT_PUSH = 1u << 4, /* actions "push_tracking"/"push_status": build_action, read_action */
	HUB_CAP_TOKEN_REFRESH = 1u << 5,    /* action "refresh_token": build_action, read_action */
	/* verify_webhook and read_webhook are reentrant: the host may call them
	 * on threads other than its event loop, at the same time as each other
	 * and as any other callback of the same instance. They must then only
	 * read what create() set up (never change it; no static mutable state)
	 * and use only these host functions: log, hmac_sha256, ct_equal,
	 * now_ms, secret, msg_header, msg_body, msg_method, msg_url, emit,
	 * set_delivery_id and set_topic (cursor and access_token answer NULL
	 * there). Plugins without the flag keep the rule above. Added in ABI
	 * 1.x: older hosts ignore it and call from the loop. */
	HUB_CAP_WEBHOOKS_REENTRANT = 1u << 6,
	/* Nothing verify_webhook and read_webhook create outlives the call:
	 * every jansson value the plugin makes during the call (the parsed
	 * body, the records it emits, anything built on the way) is released
	 * by the plugin or handed to the host through emit before the
	 * callback returns, and the plugin keeps no reference to one
	 * afterwards (no caches filled during a call). The host may then
	 * give the call's jansson allocations a scratch region that it drops
	 * in one piece after the call. So memory jansson hands out during
	 * the call is never passed to free(): a json_dumps text made then is
	 * released with the free function json_get_alloc_funcs() returns
	 * (or use json_dumpb into your own buffer). hub-plugin-kit checks
	 * the promise.
	 * Added in ABI 1.x: older hosts ignore it. */
	HUB_CAP_WEBHOOKS_SCOPED = 1u << 7,
};

/* Kinds of canonical records a plugin emits. Never renumbered. */
enum hub_record_kind {
	HUB_RECORD_ORDER = 1,    /* sdk/schema/order.json */
	HUB_RECORD_SHIPMENT = 2, /* sdk/schema/shipment.json */
	HUB_RECORD_TRACKING = 3, /* sdk/schema/tracking.json (status + tracking_event list) */
};

/* Log levels for hub_host.log. Never renumbered. */
enum hub_log_level {
	HUB_LOG_DEBUG = 0,
	HUB_LOG_INFO = 1,
	HUB_LOG_WARN = 2,
	HUB_LOG_ERROR = 3,
};

/*
 * Error detail a callback fills when it returns something other than HUB_OK
 * or HUB_DONE. Frozen for ABI v1. `field` names the JSON path or header at
 * fault ("order.total_price", "header X-Shopify-Hmac-Sha256"), `message`
 * says what is wrong and, where it can, what to do. Strings are always
 * NUL-terminated; libhubsdk's hub_error_set() fills it safely.
 */
struct hub_error {
	int upstream_status;  /* HTTP status involved, or 0 */
	char field[120];
	char message[380];
};

/*
 * A stream a plugin serves ("orders", "fulfillments", "tracking"). Arrays of
 * these end with an entry whose name is NULL. Frozen for ABI v1.
 */
struct hub_stream_def {
	const char *name;            /* stream name, [a-z0-9_]+ */
	uint32_t record_kinds;       /* bit (1u << hub_record_kind) per kind it emits */
	uint32_t default_interval_s; /* poll interval when the config sets none */
	const char *operation;       /* rate-limit bucket its requests use */
	uint32_t reserved[4];        /* zero */
};

/*
 * A rate-limit bucket per upstream operation. GCRA on the host: `burst`
 * requests may go at once, then `rate` per second. Arrays end with a NULL
 * name. A connector's config may override them under "rate_limits". Frozen.
 */
struct hub_bucket_def {
	const char *name; /* operation name, e.g. "orders", "searchOrders" */
	double burst;     /* bucket size (requests) */
	double rate;      /* sustained requests per second */
	uint32_t reserved[4];
};

/* Opaque: a connector instance as the host knows it. */
struct hub_conn;
/* Opaque: an HTTP message - a request being built, a response, a webhook. */
struct hub_msg;
/* Opaque: the outputs of one callback (records, cursor, delivery id...). */
struct hub_call;

/*
 * The host's function table, passed to create(). Plugins call the host only
 * through it, never through linked symbols. Check `struct_size` before using
 * a field appended after ABI v1.0. All functions are called from the thread
 * running the callback: the event loop, or for a plugin declaring
 * HUB_CAP_WEBHOOKS_REENTRANT, a worker during verify_webhook/read_webhook
 * (the functions it lists are safe there). Strings returned are borrowed:
 * valid until the callback that received them returns, unless said otherwise.
 */
struct hub_host {
	uint32_t abi_version; /* HUB_ABI_VERSION */
	uint32_t struct_size; /* sizeof(struct hub_host) as the host compiled it */

	/* Logs a line tagged with the connector's name. Never log secrets. */
	void (*log)(struct hub_conn *conn, enum hub_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
		__attribute__((format(printf, 3, 4)))
#endif
		;
	/* HMAC-SHA256 of data under key into out (32 bytes). Returns 0 or -1. */
	int (*hmac_sha256)(const void *key, size_t key_len, const void *data, size_t len,
			   unsigned char out[32]);
	/* Constant-time comparison of two buffers of equal length: 1 if equal. */
	int (*ct_equal)(const void *a, const void *b, size_t len);
	/* Current wall-clock time, milliseconds since the Unix epoch (UTC). The
	 * kit drives it for reproducible cases: use it instead of time(). */
	int64_t (*now_ms)(void);

	/* A secret config field of this connector, decrypted ("access_token"),
	 * or NULL when unset or not marked "x-secret" in config_schema. Read
	 * from the config the calling instance was created with. Borrowed,
	 * valid until that instance's destroy(). */
	const char *(*secret)(struct hub_conn *conn, const char *name);
	/* The current access token obtained through the "refresh_token" action,
	 * or NULL when none has been obtained yet. Borrowed; valid until the
	 * callback returns. */
	const char *(*access_token)(struct hub_conn *conn);
	/* The persisted cursor of one of this connector's streams, or NULL.
	 * Borrowed reference. */
	const json_t *(*cursor)(struct hub_conn *conn, const char *stream);

	/* Read access to a message. Header lookup is case-insensitive and returns
	 * the first value or NULL. msg_body never returns NULL (empty body: "" and
	 * *len = 0); the body is NUL-terminated for convenience. msg_status is the
	 * HTTP status of a response, 0 otherwise. msg_method and msg_url describe
	 * a request or a webhook (url: path and query as received). */
	const char *(*msg_header)(const struct hub_msg *msg, const char *name);
	const char *(*msg_body)(const struct hub_msg *msg, size_t *len);
	int (*msg_status)(const struct hub_msg *msg);
	const char *(*msg_method)(const struct hub_msg *msg);
	const char *(*msg_url)(const struct hub_msg *msg);

	/* Building a request (build_request, build_action). The URL is absolute.
	 * Strings are copied. Each returns 0 or -1 (invalid argument). */
	int (*msg_set_request)(struct hub_msg *msg, const char *method, const char *url);
	int (*msg_add_header)(struct hub_msg *msg, const char *name, const char *value);
	int (*msg_set_body)(struct hub_msg *msg, const void *body, size_t len);
	/* The rate-limit bucket this request draws from (defaults to the
	 * stream's operation). */
	int (*msg_set_operation)(struct hub_msg *msg, const char *operation);

	/* Outputs of a call. emit() takes ownership of `record` (steals the
	 * reference, even on failure) and returns 0, or -1 when the kind is not
	 * one the callback may emit. */
	int (*emit)(struct hub_call *call, enum hub_record_kind kind, json_t *record);
	/* The stream's next cursor, committed with the records of this call.
	 * Steals the reference. */
	int (*set_cursor)(struct hub_call *call, json_t *cursor);
	/* Whether more pages follow right away (1) or the stream is caught up (0). */
	void (*set_more)(struct hub_call *call, int more);
	/* The sender's delivery id of a webhook, for deduplication (copied). */
	void (*set_delivery_id)(struct hub_call *call, const char *id);
	/* The webhook's topic or event name, for metrics and logs (copied). */
	void (*set_topic)(struct hub_call *call, const char *topic);
	/* A new access token and its expiry (ms since epoch), from the
	 * "refresh_token" action (copied; stored encrypted). */
	void (*set_access_token)(struct hub_call *call, const char *token, int64_t expires_at_ms);
	/* What a response said about a bucket: `used` of `capacity` requests,
	 * refilling at `rate` per second (<= 0: unknown), and a Retry-After in ms
	 * (<= 0: none). The host corrects its bucket from it. */
	void (*observe_limit)(struct hub_call *call, const char *bucket, double used,
			      double capacity, double rate, int64_t retry_after_ms);
	/* Queue an action as a job of this connector, committed with the call's
	 * records (outbox). Steals `payload`. Returns 0 or -1. */
	int (*queue_action)(struct hub_call *call, const char *action, json_t *payload);
};

/*
 * The descriptor a plugin exports as `hub_plugin_v1`. Unused callbacks are
 * NULL. `state` is what create() returned for one connector instance.
 */
struct hub_plugin {
	uint32_t abi_version; /* HUB_ABI_VERSION */
	uint32_t struct_size; /* sizeof(struct hub_plugin) */
	const char *name;        /* [a-z0-9_]+, equals the file name without .so */
	const char *version;     /* the plugin's own version, "1.2.0" */
	const char *description; /* one line for operators */
	uint32_t capabilities;   /* enum hub_capability_flags */
	/* JSON Schema (draft 2020-12 subset: type, properties, required,
	 * additionalProperties, enum, pattern, minimum, maximum, minLength,
	 * maxLength, items, default, format) of a connector's config. Fields
	 * holding secrets carry "x-secret": true: they are stored encrypted,
	 * never logged and never echoed back by the admin API. */
	const char *config_schema;
	const struct hub_stream_def *streams; /* NULL-name terminated */
	const struct hub_bucket_def *buckets; /* NULL-name terminated */
	/* Largest number of tracking numbers one "tracking" request carries (0: 1). */
	uint32_t tracking_batch_max;

	/* Creates one connector instance from its validated config (secrets
	 * included, decrypted). Stores what it needs in *state. `host`, `conn`
	 * and `config` (with every string borrowed from it) stay valid until
	 * destroy() of this instance. Returns HUB_OK, or HUB_INVALID with err
	 * filled when the config cannot work. */
	int (*create)(const struct hub_host *host, struct hub_conn *conn, const json_t *config,
		      void **state, struct hub_error *err);
	/* Frees an instance. Never fails. */
	void (*destroy)(void *state);

	/* Builds the next request of `stream` given its cursor (NULL: never
	 * synced; the host then passes {"since": RFC3339} when a backfill start is
	 * configured). For "tracking", the host passes {"tracking_numbers":[...]}
	 * merged into the cursor. Returns HUB_OK with `req` filled, HUB_DONE when
	 * nothing is to be fetched, or HUB_INVALID/HUB_FATAL with err. */
	int (*build_request)(void *state, const char *stream, const json_t *cursor,
			     struct hub_msg *req, struct hub_error *err);
	/* Reads the response to the request built for `cursor`: emits records,
	 * sets the next cursor and whether more pages follow. Returns HUB_OK,
	 * HUB_RETRY (transient, e.g. a truncated body), HUB_AUTH_EXPIRED (401),
	 * HUB_NOT_FOUND, or HUB_FATAL/HUB_INVALID with err. */
	int (*read_response)(void *state, const char *stream, const json_t *cursor,
			     const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);
	/* Reads rate-limit headers of any response to `operation` and reports
	 * them with host->observe_limit. Optional. */
	void (*read_limits)(void *state, const char *operation, const struct hub_msg *resp,
			    struct hub_call *call);

	/* Checks a webhook's signature over its raw body, constant-time, and
	 * reports its delivery id and topic. Must not change instance state.
	 * Returns HUB_OK or HUB_UNAUTHORIZED with err saying what was wrong. */
	int (*verify_webhook)(void *state, const struct hub_msg *webhook, struct hub_call *call,
			      struct hub_error *err);
	/* Reads an authentic webhook into records. Returns HUB_OK, HUB_IGNORED
	 * for topics it does not handle (acknowledged, counted), or
	 * HUB_INVALID with err. Must not change instance state. */
	int (*read_webhook)(void *state, const struct hub_msg *webhook, struct hub_call *call,
			    struct hub_error *err);

	/* Builds the request of an action ("push_tracking", "refresh_token",
	 * ...) from its payload. HUB_IGNORED: action unsupported. */
	int (*build_action)(void *state, const char *action, const json_t *payload,
			    struct hub_msg *req, struct hub_error *err);
	/* Reads an action's response; may emit records and set an access token.
	 * Returns like read_response. */
	int (*read_action)(void *state, const char *action, const json_t *payload,
			   const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);
};

#ifdef __cplusplus
}
#endif

#endif /* HUB_PLUGIN_H */
