/*
 * msg.c - HTTP messages and callback outputs exchanged with plugins.
 *
 * Everything a plugin hands the core goes through these setters first, so
 * they refuse what would be unsafe further on: header names that are not
 * tokens and values with CR/LF (header injection into curl), request URLs
 * that are not absolute http(s), control characters in URLs. Growth is
 * geometric; every failure leaves the message or call consistent.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg.h"

/* Grows an array of `size`-byte items so that one more fits. 0 or -1. */
static int grow(void **items, size_t *cap, size_t count, size_t size)
{
	size_t ncap;
	void *p;

	if (count < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > SIZE_MAX / size)
		return -1;
	p = realloc(*items, ncap * size);
	if (!p)
		return -1;
	*items = p;
	*cap = ncap;
	return 0;
}

/* Replaces *dst with a copy of src. 0 or -1 (memory). */
static int set_str(char **dst, const char *src)
{
	char *copy = strdup(src);

	if (!copy)
		return -1;
	free(*dst);
	*dst = copy;
	return 0;
}

/* RFC 9110 tchar. */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_token(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return 0;
	return 1;
}

/* No control characters, no spaces: what may appear in a request line. */
static int is_url_text(const char *s)
{
	if (!s || !*s)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

static int is_method(const char *s)
{
	if (!s || !*s || strlen(s) > 16)
		return 0;
	for (; *s; s++)
		if (*s < 'A' || *s > 'Z')
			return 0;
	return 1;
}

/* Whether s lives in the message's header block. */
static int in_block(const struct hub_msg *msg, const char *s)
{
	return msg->header_block && s >= msg->header_block &&
	       s < msg->header_block + msg->header_block_len;
}

void msg_init(struct hub_msg *msg)
{
	memset(msg, 0, sizeof(*msg));
}

void msg_release(struct hub_msg *msg)
{
	size_t i;

	for (i = 0; i < msg->nheaders; i++) {
		if (!in_block(msg, msg->headers[i].name))
			free(msg->headers[i].name);
		if (!in_block(msg, msg->headers[i].value))
			free(msg->headers[i].value);
	}
	free(msg->headers);
	free(msg->header_block);
	free(msg->method);
	free(msg->url);
	free(msg->body);
	free(msg->operation);
	msg_init(msg);
}

struct hub_msg *msg_new(void)
{
	return calloc(1, sizeof(struct hub_msg));
}

void msg_free(struct hub_msg *msg)
{
	if (!msg)
		return;
	msg_release(msg);
	free(msg);
}

int msg_set_request(struct hub_msg *msg, const char *method, const char *url)
{
	if (!msg || !is_method(method) || !is_url_text(url))
		return -1;
	if (strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0)
		return -1;
	if (set_str(&msg->method, method) < 0 || set_str(&msg->url, url) < 0)
		return -1;
	return 0;
}

int msg_set_webhook(struct hub_msg *msg, const char *method, const char *path)
{
	if (!msg || !is_method(method) || !is_url_text(path))
		return -1;
	if (set_str(&msg->method, method) < 0 || set_str(&msg->url, path) < 0)
		return -1;
	return 0;
}

/* Whether name: value may be a header. */
static int header_ok(const char *name, const char *value)
{
	if (!is_token(name) || !value)
		return 0;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return 0;
	return 1;
}

int msg_add_headers(struct hub_msg *msg, const char *const *names, const char *const *values,
		    size_t n)
{
	size_t bytes = 0, keep = 0, cap;
	struct msg_header *arr;
	char *block, *at;

	if (!msg)
		return -1;
	if (msg->header_block) {
		for (size_t i = 0; i < n; i++)
			if (header_ok(names[i], values[i]) &&
			    msg_add_header(msg, names[i], values[i]) < 0)
				return -1;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (header_ok(names[i], values[i])) {
			bytes += strlen(names[i]) + strlen(values[i]) + 2;
			keep++;
		}
	}
	if (keep == 0)
		return 0;
	cap = msg->nheaders + keep;
	block = malloc(bytes);
	arr = cap > msg->cap_headers ? realloc(msg->headers, cap * sizeof(*arr)) : msg->headers;
	if (!block || !arr) {
		free(block);
		return -1;
	}
	if (cap > msg->cap_headers) {
		msg->headers = arr;
		msg->cap_headers = cap;
	}
	at = block;
	for (size_t i = 0; i < n; i++) {
		struct msg_header *h = &msg->headers[msg->nheaders];
		size_t a, b;

		if (!header_ok(names[i], values[i]))
			continue;
		a = strlen(names[i]) + 1;
		b = strlen(values[i]) + 1;
		h->name = memcpy(at, names[i], a);
		h->value = memcpy(at + a, values[i], b);
		at += a + b;
		msg->nheaders++;
	}
	msg->header_block = block;
	msg->header_block_len = bytes;
	return 0;
}

int msg_add_header(struct hub_msg *msg, const char *name, const char *value)
{
	struct msg_header *h;

	if (!msg || !header_ok(name, value))
		return -1;
	if (grow((void **)&msg->headers, &msg->cap_headers, msg->nheaders, sizeof(*h)) < 0)
		return -1;
	h = &msg->headers[msg->nheaders];
	h->name = strdup(name);
	h->value = strdup(value);
	if (!h->name || !h->value) {
		free(h->name);
		free(h->value);
		return -1;
	}
	msg->nheaders++;
	return 0;
}

int msg_set_body(struct hub_msg *msg, const void *body, size_t len)
{
	char *copy;

	if (!msg || (!body && len))
		return -1;
	if (len == SIZE_MAX)
		return -1;
	copy = malloc(len + 1);
	if (!copy)
		return -1;
	if (len)
		memcpy(copy, body, len);
	copy[len] = '\0';
	free(msg->body);
	msg->body = copy;
	msg->body_len = len;
	return 0;
}

int msg_take_body(struct hub_msg *msg, char *body, size_t len)
{
	if (!msg || !body)
		return -1;
	free(msg->body);
	msg->body = body;
	msg->body_len = len;
	return 0;
}

int msg_set_operation(struct hub_msg *msg, const char *operation)
{
	if (!msg || !is_token(operation))
		return -1;
	return set_str(&msg->operation, operation);
}

int msg_set_status(struct hub_msg *msg, int status)
{
	if (!msg || status < 100 || status > 599)
		return -1;
	msg->status = status;
	return 0;
}

const char *msg_header(const struct hub_msg *msg, const char *name)
{
	size_t i;

	if (!msg || !name)
		return NULL;
	for (i = 0; i < msg->nheaders; i++)
		if (strcasecmp(msg->headers[i].name, name) == 0)
			return msg->headers[i].value;
	return NULL;
}

const char *msg_body(const struct hub_msg *msg, size_t *len)
{
	if (!msg || !msg->body) {
		if (len)
			*len = 0;
		return "";
	}
	if (len)
		*len = msg->body_len;
	return msg->body;
}

/* Adds key: string or null. 0 or -1. */
static int set_str_or_null(json_t *obj, const char *key, const char *value)
{
	return json_object_set_new(obj, key, value ? json_string(value) : json_null());
}

json_t *msg_to_json(const struct hub_msg *msg)
{
	json_t *out, *headers, *body;
	size_t i;
	int bad = 0;

	out = json_object();
	headers = json_array();
	if (!out || !headers)
		goto fail;
	bad |= set_str_or_null(out, "method", msg->method);
	bad |= set_str_or_null(out, "url", msg->url);
	bad |= json_object_set_new(out, "status", json_integer(msg->status));
	bad |= set_str_or_null(out, "operation", msg->operation);
	for (i = 0; i < msg->nheaders; i++)
		bad |= json_array_append_new(headers, json_pack("[ss]", msg->headers[i].name,
								  msg->headers[i].value));
	bad |= json_object_set_new(out, "headers", headers);
	headers = NULL;
	body = msg->body_len ? json_loadb(msg->body, msg->body_len, JSON_DECODE_ANY, NULL) : NULL;
	if (body)
		bad |= json_object_set_new(out, "body", body);
	if ((body = json_stringn(msg_body(msg, NULL), msg->body_len)))
		bad |= json_object_set_new(out, "body_text", body);
	else /* not UTF-8: say so rather than emit invalid JSON */
		bad |= json_object_set_new(out, "body_text",
					   json_sprintf("<%zu bytes, not UTF-8>", msg->body_len));
	if (bad)
		goto fail;
	return out;
fail:
	json_decref(headers);
	json_decref(out);
	return NULL;
}

/* ---- calls ----------------------------------------------------------- */

void call_init(struct hub_call *call, uint32_t kinds, const struct js_registry *schemas)
{
	memset(call, 0, sizeof(*call));
	call->kinds = kinds;
	call->schemas = schemas;
}

void call_release(struct hub_call *call)
{
	uint32_t kinds = call->kinds;
	const struct js_registry *schemas = call->schemas;
	size_t i;

	for (i = 0; i < call->nrecords; i++)
		json_decref(call->records[i].record);
	for (i = 0; i < call->nrejects; i++)
		json_decref(call->rejects[i].record);
	for (i = 0; i < call->nlimits; i++)
		free(call->limits[i].bucket);
	for (i = 0; i < call->nactions; i++) {
		free(call->actions[i].action);
		json_decref(call->actions[i].payload);
	}
	free(call->records);
	free(call->rejects);
	free(call->limits);
	free(call->actions);
	json_decref(call->cursor);
	free(call->delivery_id);
	free(call->topic);
	if (call->access_token) {
		/* a credential: do not leave it in freed heap memory */
		memset(call->access_token, 0, strlen(call->access_token));
		free(call->access_token);
	}
	call_init(call, kinds, schemas);
}

int call_add_record(struct hub_call *call, enum hub_record_kind kind, json_t *record)
{
	if (grow((void **)&call->records, &call->cap_records, call->nrecords,
		 sizeof(*call->records)) < 0) {
		json_decref(record);
		call->oom = 1;
		return -1;
	}
	call->records[call->nrecords].kind = kind;
	call->records[call->nrecords].record = record;
	call->nrecords++;
	return 0;
}

int call_add_reject(struct hub_call *call, enum hub_record_kind kind, json_t *record,
		    const struct hub_error *err)
{
	struct call_reject *r;

	if (grow((void **)&call->rejects, &call->cap_rejects, call->nrejects,
		 sizeof(*call->rejects)) < 0) {
		json_decref(record);
		call->oom = 1;
		return -1;
	}
	r = &call->rejects[call->nrejects++];
	r->kind = kind;
	r->record = record;
	r->err = *err;
	r->err.field[sizeof(r->err.field) - 1] = '\0';
	r->err.message[sizeof(r->err.message) - 1] = '\0';
	return 0;
}

void call_set_cursor(struct hub_call *call, json_t *cursor)
{
	json_decref(call->cursor);
	call->cursor = cursor;
	call->cursor_set = 1;
}

int call_set_delivery_id(struct hub_call *call, const char *id)
{
	if (!id)
		return -1;
	return set_str(&call->delivery_id, id);
}

int call_set_topic(struct hub_call *call, const char *topic)
{
	if (!topic)
		return -1;
	return set_str(&call->topic, topic);
}

int call_set_access_token(struct hub_call *call, const char *token, int64_t expires_at_ms)
{
	char *copy;

	if (!token || !*token)
		return -1;
	copy = strdup(token);
	if (!copy)
		return -1;
	if (call->access_token) {
		memset(call->access_token, 0, strlen(call->access_token));
		free(call->access_token);
	}
	call->access_token = copy;
	call->access_token_expires_ms = expires_at_ms;
	return 0;
}

int call_add_limit(struct hub_call *call, const char *bucket, double used, double capacity,
		   double rate, int64_t retry_after_ms)
{
	struct call_limit *l;
	char *name;

	if (!bucket || !*bucket)
		return -1;
	if (grow((void **)&call->limits, &call->cap_limits, call->nlimits, sizeof(*l)) < 0)
		return -1;
	name = strdup(bucket);
	if (!name)
		return -1;
	l = &call->limits[call->nlimits++];
	l->bucket = name;
	l->used = used;
	l->capacity = capacity;
	l->rate = rate;
	l->retry_after_ms = retry_after_ms;
	return 0;
}

int call_add_action(struct hub_call *call, const char *action, json_t *payload)
{
	struct call_action *a;
	char *name;

	if (!action || !is_token(action)) {
		json_decref(payload);
		return -1;
	}
	if (!payload)
		payload = json_null();
	if (grow((void **)&call->actions, &call->cap_actions, call->nactions, sizeof(*a)) < 0 ||
	    !(name = strdup(action))) {
		json_decref(payload);
		call->oom = 1;
		return -1;
	}
	a = &call->actions[call->nactions++];
	a->action = name;
	a->payload = payload;
	return 0;
}

static const char *const kind_names[] = {
	[HUB_RECORD_ORDER] = "order",
	[HUB_RECORD_SHIPMENT] = "shipment",
	[HUB_RECORD_TRACKING] = "tracking",
};

const char *call_kind_name(enum hub_record_kind kind)
{
	if ((unsigned)kind >= sizeof(kind_names) / sizeof(kind_names[0]))
		return NULL;
	return kind_names[kind];
}

enum hub_record_kind call_kind_parse(const char *name)
{
	size_t i;

	if (!name)
		return 0;
	for (i = 1; i < sizeof(kind_names) / sizeof(kind_names[0]); i++)
		if (kind_names[i] && strcmp(kind_names[i], name) == 0)
			return (enum hub_record_kind)i;
	return 0;
}

json_t *call_to_json(const struct hub_call *call)
{
	json_t *out, *arr;
	const char *kind;
	size_t i;
	int bad = 0;

	out = json_object();
	if (!out)
		return NULL;

	arr = json_array();
	for (i = 0; arr && i < call->nrecords; i++) {
		kind = call_kind_name(call->records[i].kind);
		bad |= json_array_append_new(arr, json_pack("{s:s?,s:O}", "kind", kind, "record",
							    call->records[i].record));
	}
	bad |= json_object_set_new(out, "records", arr);

	arr = json_array();
	for (i = 0; arr && i < call->nrejects; i++) {
		const struct call_reject *r = &call->rejects[i];

		bad |= json_array_append_new(arr, json_pack("{s:s?,s:O,s:s,s:s}", "kind",
							    call_kind_name(r->kind), "record",
							    r->record, "field", r->err.field,
							    "reason", r->err.message));
	}
	bad |= json_object_set_new(out, "rejects", arr);

	bad |= json_object_set_new(out, "cursor",
				   call->cursor ? json_incref(call->cursor) : json_null());
	bad |= json_object_set_new(out, "more", json_boolean(call->more));
	bad |= set_str_or_null(out, "delivery_id", call->delivery_id);
	bad |= set_str_or_null(out, "topic", call->topic);
	bad |= set_str_or_null(out, "access_token", call->access_token);
	bad |= json_object_set_new(out, "access_token_expires_at_ms",
				   json_integer(call->access_token_expires_ms));

	arr = json_array();
	for (i = 0; arr && i < call->nlimits; i++) {
		const struct call_limit *l = &call->limits[i];

		bad |= json_array_append_new(arr, json_pack("{s:s,s:f,s:f,s:f,s:I}", "bucket",
							    l->bucket, "used", l->used,
							    "capacity", l->capacity, "rate",
							    l->rate, "retry_after_ms",
							    (json_int_t)l->retry_after_ms));
	}
	bad |= json_object_set_new(out, "limits", arr);

	arr = json_array();
	for (i = 0; arr && i < call->nactions; i++)
		bad |= json_array_append_new(arr, json_pack("{s:s,s:O}", "action",
							    call->actions[i].action, "payload",
							    call->actions[i].payload));
	bad |= json_object_set_new(out, "actions", arr);

	if (bad) {
		json_decref(out);
		return NULL;
	}
	return out;
}
