/*
 * carrier.h - what the UPS, FedEx, USPS and DHL tracking plugins share.
 *
 * The four carrier plugins differ in URLs and JSON shapes but agree on
 * everything around them: one canonical status vocabulary with a documented
 * mapping table per carrier (status_map.c), tracking records built the same
 * way (track.c: times, events, latest-event status, not-found records),
 * the same HTTP conventions (http.c: status classification, OAuth client
 * credentials, Retry-After), and the descriptor callbacks that need none of
 * a carrier's JSON (plugin.c: create/destroy, the start of build_request,
 * read_limits, the "refresh_token" action), driven by a static struct
 * carrier_def per plugin. These sources are compiled into each plugin
 * (hidden visibility), not copied and not exported: every plugin still
 * exports only its descriptor.
 *
 * Threads: like every plugin callback, these run on the host's event-loop
 * thread and keep no global mutable state.
 */
#ifndef CARRIER_H
#define CARRIER_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

/* ---- canonical statuses and mapping tables (status_map.c) ------------- */

/*
 * The canonical vocabulary of sdk/schema/shipment_status.json, plus
 * CARRIER_DEFER, which only appears in mapping tables: the code is
 * informational (a request, a photo, an updated date) and the status is taken
 * from the carrier's companion code for the same scan (UPS activity type,
 * FedEx derived status code). Never renumbered within a build only; values
 * are not persisted (the names are).
 */
enum carrier_status {
	CARRIER_UNKNOWN = 0,
	CARRIER_PRE_TRANSIT,
	CARRIER_IN_TRANSIT,
	CARRIER_OUT_FOR_DELIVERY,
	CARRIER_DELIVERED,
	CARRIER_AVAILABLE_FOR_PICKUP,
	CARRIER_DELIVERY_FAILED,
	CARRIER_EXCEPTION,
	CARRIER_RETURN_TO_SENDER,
	CARRIER_CANCELLED,
	CARRIER_DEFER,
};

/* The canonical name of a status ("in_transit"); "defer" for CARRIER_DEFER. */
const char *carrier_status_name(enum carrier_status status);

/* One row of a carrier's mapping table: its official code, the canonical
 * status, and the carrier's own description of the code (for the docs). */
struct carrier_code_map {
	const char *code;
	enum carrier_status status;
	const char *text;
};

/* A mapping table with its provenance, for lookups and docs/carriers.md. */
struct carrier_table {
	const char *name;   /* "ups_status_codes" */
	const char *source; /* where the codes and their meaning come from */
	int nocase;         /* codes compare case-insensitively */
	const struct carrier_code_map *rows; /* ends with a NULL code */
};

extern const struct carrier_table carrier_ups_status_codes;  /* status.statusCode */
extern const struct carrier_table carrier_ups_activity_types; /* status.type */
extern const struct carrier_table carrier_fedex_event_codes; /* eventType, derivedStatusCode */
extern const struct carrier_table carrier_usps_event_codes;  /* trackingEvents[].eventCode */
extern const struct carrier_table carrier_usps_categories;   /* statusCategory */
extern const struct carrier_table carrier_dhl_status_codes;  /* statusCode */

/* Every table above, NULL-terminated (tests and docs walk them). */
extern const struct carrier_table *const carrier_tables[];

/* Looks `code` up in `table`. Returns 1 and sets *status when the code is
 * listed, 0 when it is not (or code is NULL or empty). */
int carrier_table_find(const struct carrier_table *table, const char *code,
		       enum carrier_status *status);

/* ---- a connector instance (track.c) ----------------------------------- */

/* Which credentials carrier_conn_init() requires (flags). */
enum carrier_need {
	CARRIER_NEED_OAUTH = 1u << 0,   /* client_id and client_secret */
	CARRIER_NEED_API_KEY = 1u << 1, /* api_key */
};

/* How an OAuth client-credentials request authenticates the client. */
enum carrier_oauth_style {
	CARRIER_OAUTH_BASIC, /* Authorization: Basic base64(id:secret) (UPS) */
	CARRIER_OAUTH_FORM,  /* client_id and client_secret in the form (FedEx, USPS) */
};

/* What a carrier plugin declares once, as a static const: its names, its
 * default API root, the credentials it needs and, for OAuth carriers, the
 * token request of its "refresh_token" action. */
struct carrier_def {
	const char *carrier;      /* canonical carrier code: "ups" */
	const char *label;        /* for messages: "UPS" */
	const char *default_base; /* api_base when the config sets none */
	unsigned need;            /* enum carrier_need flags */
	const char *token_path;   /* token URL path under api_base; NULL: no token action */
	enum carrier_oauth_style token_style;
	const char *token_extra;  /* more form pairs, already encoded ("scope=tracking"), or NULL */
};

/* What every carrier plugin keeps per connector; plugins embed it first in
 * their own state (so the shared callbacks below can take their state as a
 * carrier_conn). Strings are heap copies owned by the struct. */
struct carrier_conn {
	const struct hub_host *host;
	struct hub_conn *conn;
	const struct carrier_def *def; /* static, borrowed */
	const char *carrier; /* def->carrier */
	const char *label;   /* def->label */
	char *api_base;      /* scheme://host[/prefix], no trailing '/' */
	char *client_id;     /* OAuth carriers */
	char *client_secret; /* OAuth carriers (secret) */
	char *api_key;       /* DHL (secret) */
};

/* Fills cc from config: api_base (default def->default_base, trailing '/'
 * removed, must start with http:// or https://) and, for each of
 * "client_id", "client_secret", "api_key" whose flag is set in def->need,
 * the required non-empty string. Returns HUB_OK or HUB_INVALID with err
 * naming the field. Call carrier_conn_release() in both cases. */
int carrier_conn_init(struct carrier_conn *cc, const struct hub_host *host, struct hub_conn *conn,
		      const struct carrier_def *def, const json_t *config, struct hub_error *err);
/* Frees the strings, wiping the secrets first. */
void carrier_conn_release(struct carrier_conn *cc);

/* Copies config[key] (a string) into *out, or `def` (may be NULL) when the
 * key is absent. Returns HUB_OK or HUB_INVALID (wrong type, empty when
 * `required`). */
int carrier_conf_str(const json_t *config, const char *key, int required, const char *def,
		     char **out, struct hub_error *err);

/* Logs through the host, tagged with the carrier label. Never pass secrets. */
void carrier_log(const struct carrier_conn *cc, enum hub_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Maps `code` through `table`. A listed code returns its status (which may
 * be CARRIER_DEFER); an unlisted one returns CARRIER_UNKNOWN and logs a
 * warning "unknown <carrier> <what> '<code>' ..." that the host counts. NULL
 * or empty codes return CARRIER_UNKNOWN silently. */
enum carrier_status carrier_map(const struct carrier_conn *cc, const struct carrier_table *table,
				const char *what, const char *code, const char *number);

/* ---- JSON conveniences (track.c) -------------------------------------- */

/* obj[key] when it is a non-empty string (borrowed), else NULL. obj may be
 * NULL or not an object. */
const char *carrier_jstr(const json_t *obj, const char *key);
/* obj[key] when it is an object / an array (borrowed), else NULL. */
json_t *carrier_jobj(const json_t *obj, const char *key);
json_t *carrier_jarr(const json_t *obj, const char *key);

/* ---- times (track.c) -------------------------------------------------- */

/* A carrier timestamp: UTC milliseconds and, when the carrier gave one, the
 * zone it was reported in. */
struct carrier_time {
	int64_t utc_ms;
	int has_offset;
	int offset_min; /* minutes east of UTC, when has_offset */
};

/* Parses an RFC 3339 / ISO 8601 date-time. With an offset ("-07:00", "Z")
 * the time is converted to UTC and the offset kept; without one (local
 * wall-clock time, as FedEx and DHL sometimes send) it is taken as UTC and
 * has_offset is 0. Returns 0 or -1. */
int carrier_time_iso(const char *text, struct carrier_time *t);

/* Parses UPS-style compact local fields, "YYYYMMDD" and "HHMMSS" (a time
 * shorter than 6 digits is left-padded: "74700" is 07:47:00; NULL or "" is
 * midnight), as a wall-clock time taken as UTC. Returns 0 or -1. */
int carrier_time_compact(const char *date8, const char *time6, int64_t *utc_ms);

/* Parses a UTC offset "-05:00", "-7:00", "+0530", "+05" or "Z" into minutes
 * east of UTC. Returns 0 or -1 (malformed or beyond +-18:00). */
int carrier_offset_parse(const char *text, int *minutes);

/* ---- events and records (track.c) ------------------------------------- */

/* Where a scan happened; NULL or empty members become JSON null, and a
 * location whose members are all empty becomes null. */
struct carrier_loc {
	const char *city;
	const char *state;
	const char *postal_code;
	const char *country_code; /* dropped (null) when longer than 3 chars */
};

/* Builds a canonical tracking_event (new reference, or NULL on allocation
 * failure). `description` NULL becomes "". */
json_t *carrier_event_new(const struct carrier_time *t, enum carrier_status status,
			  const char *carrier_code, const char *carrier_status,
			  const char *description, const struct carrier_loc *loc);

/* A tracking record being built for one tracking number. */
struct carrier_record {
	json_t *obj;    /* the record (owned until emitted) */
	json_t *events; /* borrowed from obj */
	int have_latest;
	int64_t latest_ms;
	enum carrier_status latest_status;
	int have_delivered;
	int64_t delivered_ms; /* latest event mapped to delivered */
	int failed; /* a setter or add ran out of memory: emit refuses the record */
};

/* Starts a record with every optional key present and null, not_found
 * false, status "unknown" and no events. Returns 0 or -1 (allocation). */
int carrier_record_init(struct carrier_record *r, const char *carrier, const char *number);
/* carrier_record_init for cc's carrier, with the error a plugin returns:
 * HUB_OK, or HUB_FATAL with err "out of memory building a <label> tracking
 * record" (nothing to release then). */
int carrier_record_start(const struct carrier_conn *cc, struct carrier_record *r,
			 const char *number, struct hub_error *err);
/* Appends an event built by carrier_event_new (steals it) that occurred at
 * utc_ms with `status`. The latest event wins the record status; on equal
 * times the one added first wins (carriers list newest first). */
int carrier_record_add_event(struct carrier_record *r, json_t *event, int64_t utc_ms,
			     enum carrier_status status);
/* carrier_event_new + carrier_record_add_event for one scan of a plugin
 * (arguments as theirs). Returns HUB_OK, or HUB_FATAL with err "out of
 * memory building a <label> tracking event"; the record stays the
 * caller's to release or emit. */
int carrier_record_add_scan(const struct carrier_conn *cc, struct carrier_record *r,
			    const struct carrier_time *t, enum carrier_status status,
			    const char *carrier_code, const char *carrier_status,
			    const char *description, const struct carrier_loc *loc,
			    struct hub_error *err);
/* The setters return 0 or -1 (out of memory); a failure also marks the
 * record failed, so a plugin may set all it has and let
 * carrier_record_emit() report it. */
/* Sets a string field ("service", "signed_by"); NULL/empty leaves null. */
int carrier_record_set_str(struct carrier_record *r, const char *key, const char *value);
/* Sets a time field ("estimated_delivery_at", "delivered_at"). */
int carrier_record_set_time(struct carrier_record *r, const char *key, int64_t utc_ms);
/* Marks the record as a number the carrier does not know (yet). */
int carrier_record_set_not_found(struct carrier_record *r);
/* Frees the record if it was not emitted. */
void carrier_record_release(struct carrier_record *r);

/* Finishes and emits the record: status = the latest event's status, or
 * `block_status` (the carrier's current-status block) when there is no
 * event or the latest one is unknown; delivered_at, when not set from an
 * explicit carrier field, becomes the time of the latest delivered event if
 * the record status is delivered. Returns HUB_OK, or HUB_FATAL when the
 * record is marked failed, memory runs out ("out of memory building a
 * <label> tracking record") or the host refuses it. The record is consumed
 * either way. */
int carrier_record_emit(const struct carrier_conn *cc, struct hub_call *call,
			struct carrier_record *r, enum carrier_status block_status,
			struct hub_error *err);

/* Emits {"not_found": true, "status": "unknown", "events": []} for number. */
int carrier_emit_not_found(const struct carrier_conn *cc, struct hub_call *call,
			   const char *number, struct hub_error *err);

/* Joins a scan's two texts (a description and a remark or exception):
 * "first - second" when both are given and differ, else the one given, or
 * NULL. Returns first, second or buf (cut to size). */
const char *carrier_join_text(const char *first, const char *second, char *buf, size_t size);

/* ---- the tracking stream cursor (track.c) ----------------------------- */

/* Reads cursor.tracking_numbers (strings, borrowed) into out[0..max). Sets
 * *n (0: nothing to fetch). Returns HUB_OK, or HUB_INVALID when the list is
 * malformed or longer than max (the plugin's tracking_batch_max). */
int carrier_cursor_numbers(const json_t *cursor, const char **out, size_t max, size_t *n,
			   struct hub_error *err);

/* Whether `number` is one of numbers[0..n). */
int carrier_numbers_has(const char *const *numbers, size_t n, const char *number);

/* ---- HTTP conventions (http.c) ---------------------------------------- */

/* Classifies a non-2xx response: 401 HUB_AUTH_EXPIRED; 408, 429 and 5xx
 * HUB_RETRY; anything else HUB_FATAL. Fills err with the status, the field
 * "status" and "<label> <what> failed with HTTP <n>: <body excerpt>". */
int carrier_http_error(const struct carrier_conn *cc, const struct hub_msg *resp,
		       const char *what, struct hub_error *err);

/* Fills err for a response that refuses the connector's credentials:
 * field `field`, the upstream status and "<label> refused <what> (<label>
 * <request> failed with HTTP <n>: <body excerpt>)"; `what` says what to
 * check ("the API key: check api_key in the connector config"). */
void carrier_http_refused(const struct carrier_conn *cc, const struct hub_msg *resp,
			  const char *request, const char *field, const char *what,
			  struct hub_error *err);

/* The response body as JSON (new reference), or NULL when it is not JSON:
 * for a look at an error envelope (is a 404 "no such number"?). */
json_t *carrier_body_peek(const struct carrier_conn *cc, const struct hub_msg *resp);

/* Parses a response body as JSON (new reference in *out). A body that is
 * not JSON returns HUB_RETRY (truncated or a proxy's page; the host retries
 * with backoff) with err filled. */
int carrier_parse_json(const struct carrier_conn *cc, const struct hub_msg *resp,
		       const char *what, json_t **out, struct hub_error *err);

/* Starts a request: method, absolute url (NULL: an allocation failed while
 * building it), Accept: application/json, and the rate-limit bucket.
 * Returns HUB_OK or HUB_FATAL with err filled. */
int carrier_request(const struct carrier_conn *cc, struct hub_msg *req, const char *method,
		    const char *url, const char *operation, struct hub_error *err);

/* Adds "Authorization: Bearer <access token>". Returns HUB_OK, or
 * HUB_AUTH_EXPIRED when the host holds no token yet: the host runs the
 * "refresh_token" action before polling an OAuth carrier and once more on
 * HUB_AUTH_EXPIRED. */
int carrier_add_bearer(const struct carrier_conn *cc, struct hub_msg *req, struct hub_error *err);

/* Builds the "refresh_token" action request: POST api_base + path,
 * form-encoded grant_type=client_credentials (+ `extra`, already encoded,
 * e.g. "scope=tracking"), on bucket "oauth". Returns HUB_OK or HUB_FATAL. */
int carrier_oauth_build(const struct carrier_conn *cc, struct hub_msg *req, const char *path,
			enum carrier_oauth_style style, const char *extra, struct hub_error *err);

/* Reads the token response: {"access_token": ..., "expires_in": seconds (a
 * number or a string of digits)} -> host->set_access_token(token, now +
 * expires_in). 400/401/403 are refused credentials: HUB_FATAL naming
 * client_id/client_secret; 429/5xx HUB_RETRY. */
int carrier_oauth_read(const struct carrier_conn *cc, const struct hub_msg *resp,
		       struct hub_call *call, struct hub_error *err);

/* Parses a Retry-After value, delta-seconds (fractions accepted) or an
 * IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT"), into milliseconds from
 * now_ms (never negative). Returns 0 or -1. */
int carrier_retry_after_ms(const char *value, int64_t now_ms, int64_t *out);

/* ---- the descriptor's shared parts (plugin.c) ------------------------- */

/* Pieces of a carrier's config_schema for what carrier_conn_init() reads,
 * so that the schema the host validates and the code agree: the OAuth
 * client credentials, the DHL-style API key and api_base (its pattern is
 * the scheme check of carrier_conn_init). Arguments are string literals
 * (JSON-escaped). No trailing comma. */
#define CARRIER_SCHEMA_OAUTH(id_text, secret_text) \
	"\"client_id\":{\"type\":\"string\",\"minLength\":1," \
	"\"description\":\"" id_text "\"}," \
	"\"client_secret\":{\"type\":\"string\",\"minLength\":1,\"x-secret\":true," \
	"\"description\":\"" secret_text "\"}"
#define CARRIER_SCHEMA_API_KEY(text) \
	"\"api_key\":{\"type\":\"string\",\"minLength\":1,\"x-secret\":true," \
	"\"description\":\"" text "\"}"
#define CARRIER_SCHEMA_API_BASE(default_base, text) \
	"\"api_base\":{\"type\":\"string\",\"pattern\":\"^https?://\"," \
	"\"default\":\"" default_base "\"," \
	"\"description\":\"" text "\"}"

/* The start of every carrier's create callback: allocates a zeroed state
 * of `size` bytes (the plugin's struct, whose first member is its
 * carrier_conn) and fills that carrier_conn from config per def. Returns
 * HUB_OK with *state set, HUB_FATAL (out of memory) or HUB_INVALID with err
 * naming the field, *state NULL. A plugin reading more settings frees the
 * state with its own destroy when they fail. */
int carrier_create(const struct carrier_def *def, size_t size, const struct hub_host *host,
		   struct hub_conn *conn, const json_t *config, void **state,
		   struct hub_error *err);

/* destroy callback for a state made by carrier_create(): releases its
 * carrier_conn and frees it. Plugins with more heap members free those
 * first, then call it. NULL is ignored. */
void carrier_destroy(void *state);

/* The start of every carrier's build_request: `stream` must be "tracking"
 * and the cursor's tracking numbers are read into numbers[0..max). Returns
 * HUB_OK with *n >= 1, HUB_DONE when the cursor names no number, or
 * HUB_INVALID with err (another stream, a malformed cursor). */
int carrier_request_numbers(const struct carrier_conn *cc, const char *stream,
			    const json_t *cursor, const char **numbers, size_t max, size_t *n,
			    struct hub_error *err);

/* read_limits callback of every carrier (state: a carrier_conn first):
 * reports a Retry-After on bucket `operation`. None of the four APIs sends
 * usage counters. */
void carrier_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			 struct hub_call *call);

/* build_action and read_action callbacks of the OAuth carriers: the
 * "refresh_token" action per def->token_path, token_style and token_extra
 * (carrier_oauth_build, carrier_oauth_read); HUB_IGNORED for any other
 * action or when def has no token_path. */
int carrier_build_action(void *state, const char *action, const json_t *payload,
			 struct hub_msg *req, struct hub_error *err);
int carrier_read_action(void *state, const char *action, const json_t *payload,
			const struct hub_msg *resp, struct hub_call *call, struct hub_error *err);

#endif /* CARRIER_H */
