/*
 * msg.h - the host's side of the opaque plugin types struct hub_msg and
 * struct hub_call (sdk/include/hub/plugin.h).
 *
 * A struct hub_msg is one HTTP message crossing the plugin boundary: a
 * request a plugin builds (build_request, build_action), a response the core
 * hands back (read_response, read_action, read_limits) or a webhook as
 * received (verify_webhook, read_webhook). A struct hub_call collects what
 * one callback produced: records with their kinds (and the ones refused by
 * schema validation), the next cursor, "more pages", a webhook's delivery id
 * and topic, an access token, rate-limit observations and queued actions.
 * Plugins reach both only through the host table (core/host.c); the core
 * reads the fields directly. Layouts are private to the core and may change
 * freely: the ABI never exposes them.
 *
 * Threads: a message or a call belongs to one thread at a time (the
 * event-loop thread while a plugin runs); nothing here locks.
 */
#ifndef HUB_CORE_MSG_H
#define HUB_CORE_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

struct js_registry;

/* One header line; names keep the case they were given. */
struct msg_header {
	char *name;
	char *value;
};

struct hub_msg {
	char *method;             /* request or webhook, else NULL */
	char *url;                /* absolute URL (request) or path+query (webhook) */
	int status;               /* HTTP status of a response, 0 otherwise */
	struct msg_header *headers;
	size_t nheaders, cap_headers;
	char *body;               /* NUL-terminated, NULL while empty */
	size_t body_len;
	char *operation;          /* rate-limit bucket of a request, or NULL */
	char *header_block;       /* strings of headers added by msg_add_headers */
	size_t header_block_len;
};

/* Sets up an empty message in caller-owned memory. */
void msg_init(struct hub_msg *msg);
/* Frees what the message holds (not the struct) and leaves it empty. */
void msg_release(struct hub_msg *msg);
/* Allocates an empty message; NULL on allocation failure. Free with msg_free. */
struct hub_msg *msg_new(void);
void msg_free(struct hub_msg *msg);

/*
 * Setters. Strings and the body are copied. Each returns 0, or -1 when an
 * argument is invalid (NULL, empty method, method not an upper-case token,
 * request URL not absolute http(s), control characters in a URL, header name
 * not an RFC 9110 token, CR/LF/NUL in a header value) or memory runs out.
 * msg_set_request accepts an absolute URL only; msg_set_webhook takes the
 * method and the path+query as received by the inbound server.
 */
int msg_set_request(struct hub_msg *msg, const char *method, const char *url);
int msg_set_webhook(struct hub_msg *msg, const char *method, const char *path);
int msg_add_header(struct hub_msg *msg, const char *name, const char *value);
/* Adds n headers at once, their strings copied into one block (a received
 * request's or response's headers: one allocation instead of two per
 * header). Headers msg_add_header would refuse are left out. The first
 * call on a message packs; later ones add header by header. 0, or -1 when
 * memory runs out (nothing added). */
int msg_add_headers(struct hub_msg *msg, const char *const *names, const char *const *values,
		    size_t n);
int msg_set_body(struct hub_msg *msg, const void *body, size_t len);
/* Gives the message `body` (malloc'd, len bytes plus a NUL terminator) to
 * own, instead of copying it. 0, or -1 (NULL body) with body not taken. */
int msg_take_body(struct hub_msg *msg, char *body, size_t len);
int msg_set_operation(struct hub_msg *msg, const char *operation);
/* Sets the HTTP status of a response (100..599); -1 otherwise. */
int msg_set_status(struct hub_msg *msg, int status);

/* First value of header `name` (case-insensitive), borrowed, or NULL. */
const char *msg_header(const struct hub_msg *msg, const char *name);
/* The body, never NULL ("" when empty); its length in *len if len != NULL. */
const char *msg_body(const struct hub_msg *msg, size_t *len);

/*
 * A JSON description of the message, for the kit and for debugging:
 * {"method","url","status","operation","headers":[[name,value]...],
 *  "body_text": the body as a string, "body": the body parsed, when it is
 *  JSON}.
 * Contains header values and the body verbatim - credentials included - so
 * it must never be logged by hubd. New reference, NULL on allocation failure.
 */
json_t *msg_to_json(const struct hub_msg *msg);

/* ---- calls ----------------------------------------------------------- */

/* A record accepted by schema validation. */
struct call_record {
	enum hub_record_kind kind;
	json_t *record; /* owned */
};

/* A record refused by schema validation, with the field and the reason. */
struct call_reject {
	enum hub_record_kind kind;
	json_t *record; /* owned */
	struct hub_error err;
};

/* What a response said about a rate-limit bucket (host->observe_limit). */
struct call_limit {
	char *bucket;
	double used, capacity, rate;
	int64_t retry_after_ms;
};

/* An action queued for the outbox (host->queue_action). */
struct call_action {
	char *action;
	json_t *payload; /* owned, never NULL (json null when none) */
};

/* Bit of a record kind in a kind mask (as in struct hub_stream_def). */
#define CALL_KIND_BIT(kind) (1u << (unsigned)(kind))

struct hub_call {
	uint32_t kinds;                   /* mask of kinds this callback may emit */
	const struct js_registry *schemas; /* canonical schemas, NULL: no validation */

	struct call_record *records;
	size_t nrecords, cap_records;
	struct call_reject *rejects;
	size_t nrejects, cap_rejects;

	json_t *cursor; /* owned; NULL until set_cursor */
	int cursor_set;
	int more;
	char *delivery_id;
	char *topic;
	char *access_token;
	int64_t access_token_expires_ms;
	struct call_limit *limits;
	size_t nlimits, cap_limits;
	struct call_action *actions;
	size_t nactions, cap_actions;
	/* Plugin misuse noticed (a kind it may not emit, a NULL argument...):
	 * counted so the kit can report it. */
	unsigned misuses;
	int oom; /* an allocation failed: the outputs are incomplete */
};

/*
 * Sets up an empty call in caller-owned memory. `kinds` is the mask of
 * record kinds the callback may emit (CALL_KIND_BIT); `schemas` the
 * canonical schema registry used to validate each emitted record (borrowed,
 * must outlive the call; NULL disables validation).
 */
void call_init(struct hub_call *call, uint32_t kinds, const struct js_registry *schemas);
/* Frees everything the call holds and leaves it empty (kinds and schemas
 * are kept, so a call can be reused for the next callback). */
void call_release(struct hub_call *call);

/* Appends an accepted / refused record, taking ownership of `record` even
 * on failure. 0 or -1 (memory). Used by the host table. */
int call_add_record(struct hub_call *call, enum hub_record_kind kind, json_t *record);
int call_add_reject(struct hub_call *call, enum hub_record_kind kind, json_t *record,
		    const struct hub_error *err);
/* Replaces the cursor (steals the reference). */
void call_set_cursor(struct hub_call *call, json_t *cursor);
/* Copies the strings. 0 or -1 (memory or NULL). */
int call_set_delivery_id(struct hub_call *call, const char *id);
int call_set_topic(struct hub_call *call, const char *topic);
int call_set_access_token(struct hub_call *call, const char *token, int64_t expires_at_ms);
int call_add_limit(struct hub_call *call, const char *bucket, double used, double capacity,
		   double rate, int64_t retry_after_ms);
/* Steals `payload` (NULL becomes json null). 0 or -1. */
int call_add_action(struct hub_call *call, const char *action, json_t *payload);

/*
 * A JSON description of everything the call produced, used by the kit to
 * compare two runs and to print diffs:
 * {"records":[{"kind":"order","record":{...}}...], "rejects":[{"kind",
 * "record","field","reason"}...], "cursor", "more", "delivery_id", "topic",
 * "access_token", "access_token_expires_at_ms", "limits":[{"bucket","used",
 * "capacity","rate","retry_after_ms"}], "actions":[{"action","payload"}]}.
 * Holds the access token verbatim: never log it. New reference or NULL.
 */
json_t *call_to_json(const struct hub_call *call);

/* "order", "shipment", "tracking", or NULL for an unknown kind. */
const char *call_kind_name(enum hub_record_kind kind);
/* The kind named `name`, or 0 when unknown. */
enum hub_record_kind call_kind_parse(const char *name);

#endif /* HUB_CORE_MSG_H */
