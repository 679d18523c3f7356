/*
 * cases.c - replaying data-driven cases against a plugin (format in
 * docs/sdk.md, "Kit cases").
 *
 * Each case folder runs on a fresh connector created from its config (so
 * the config is validated against the plugin's schema exactly as hubd
 * would), with the host clock fixed and the cursor and access token the case
 * gives. A stream or action case builds the request, compares it with
 * request.json, feeds response.json back and compares what the plugin
 * produced with expected.json. A webhook case verifies and reads
 * webhook.json. Every case runs twice on the same instance: the two runs
 * must produce identical outputs (a plugin keeps no hidden state between
 * calls, and a webhook delivered twice is reported with the same delivery
 * id). Signed webhook cases are then replayed with a wrong secret, a
 * tampered body and no signature, each of which must be refused.
 *
 * For a plugin declaring HUB_CAP_WEBHOOKS_SCOPED, every verify_webhook and
 * read_webhook call made here runs inside a kit_scope (scope.c): once the
 * kit has released the call's outputs, no jansson block allocated during
 * the call may still be alive. For one declaring HUB_CAP_WEBHOOKS_REENTRANT,
 * every webhook delivery made here (as given and mis-signed) is kept with
 * its outcome for kit_check_reentrant, run after the last case.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <hub/sdk.h>

#include "connector.h"
#include "host.h"
#include "kit.h"
#include "msg.h"
#include "plugin.h"

/* The clock a case runs at when case.json gives no "now". */
#define KIT_DEFAULT_NOW "2026-01-01T00:00:00Z"
/* The connector name cases run as. */
#define KIT_CONNECTOR "kit_case"

enum case_type { CASE_STREAM, CASE_WEBHOOK, CASE_ACTION };

/* How a signed webhook is altered for the refusal checks. */
enum sig_variant { SIG_AS_GIVEN, SIG_WRONG_SECRET, SIG_TAMPERED_BODY, SIG_MISSING };

static const char *const variant_names[] = {
	[SIG_AS_GIVEN] = "as given",
	[SIG_WRONG_SECRET] = "signed with a wrong secret",
	[SIG_TAMPERED_BODY] = "body changed after signing",
	[SIG_MISSING] = "signature header missing",
};

/* What the cases of one plugin share: its capabilities, the deliveries
 * kept for the concurrent check and the tallies of the scoped check. */
struct run_ctx {
	uint32_t caps;
	struct kit_wcase *w;   /* deliveries for kit_check_reentrant */
	size_t nw, capw;
	unsigned webhook_cases;
	unsigned scoped_calls; /* verify/read calls checked */
	unsigned scoped_kept;  /* ... that left blocks alive */
	size_t max_blocks, max_bytes; /* the most one call allocated */
};

struct kcase {
	char dir[PATH_MAX];
	char label[PATH_MAX + 8]; /* "case <folder>" */
	enum case_type type;
	json_t *spec;     /* case.json */
	json_t *request;  /* request.json, or NULL */
	json_t *response; /* response.json, or NULL */
	json_t *webhook;  /* webhook.json, or NULL */
	json_t *expected; /* expected.json */
	struct run_ctx *ctx;
	int64_t now_ms;   /* the clock the case runs at */
	unsigned scoped_calls, scoped_kept;
	char scoped_first[300]; /* the first call that kept blocks */
};

static void kcase_release(struct kcase *k)
{
	json_decref(k->spec);
	json_decref(k->request);
	json_decref(k->response);
	json_decref(k->webhook);
	json_decref(k->expected);
}

/* Reads dir/file as JSON into *out; a missing optional file leaves NULL.
 * 0, or -1 after reporting the failure. */
static int load_json(struct kcase *k, const char *file, int required, json_t **out)
{
	char path[PATH_MAX + 32];
	json_error_t jerr;
	struct stat st;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/%s", k->dir, file);
	if (stat(path, &st) < 0) {
		if (!required && errno == ENOENT)
			return 0;
		kit_fail(k->label, "%s: %s", file, strerror(errno));
		return -1;
	}
	*out = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!*out) {
		kit_fail(k->label, "%s is not valid JSON: line %d, column %d: %s", file, jerr.line,
			 jerr.column, jerr.text);
		return -1;
	}
	return 0;
}

/* Reads a whole file into a malloc'd buffer. NULL on failure. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long size;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)size + 1))) {
		if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
			free(buf);
			buf = NULL;
		} else {
			buf[size] = '\0';
			*len = (size_t)size;
		}
	}
	fclose(f);
	return buf;
}

/*
 * The body bytes a response.json or webhook.json describes: "body" (JSON,
 * serialised compactly), "body_text" (verbatim) or "body_file" ("$FIXTURES/"
 * expands to $HUB_FIXTURES, else relative to the case folder). Returns a
 * malloc'd buffer (possibly empty) or NULL after filling why.
 */
static char *spec_body(const struct kcase *k, const json_t *spec, size_t *len, char *why,
		       size_t wsize)
{
	const json_t *body = json_object_get(spec, "body");
	const char *text = json_string_value(json_object_get(spec, "body_text"));
	const char *file = json_string_value(json_object_get(spec, "body_file"));
	char path[PATH_MAX * 2];
	char *out;

	if (body) {
		out = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
		if (out)
			*len = strlen(out);
		else
			snprintf(why, wsize, "cannot serialise \"body\"");
		return out;
	}
	if (text) {
		*len = json_string_length(json_object_get(spec, "body_text"));
		out = malloc(*len + 1);
		if (out) {
			memcpy(out, text, *len);
			out[*len] = '\0';
		}
		return out;
	}
	if (file) {
		if (strncmp(file, "$FIXTURES/", 10) == 0) {
			const char *fx = getenv("HUB_FIXTURES");

			if (!fx || !*fx) {
				snprintf(why, wsize, "body_file %s: set HUB_FIXTURES to the "
					 "fixtures directory", file);
				return NULL;
			}
			snprintf(path, sizeof(path), "%s/%s", fx, file + 10);
		} else if (file[0] == '/') {
			snprintf(path, sizeof(path), "%s", file);
		} else {
			snprintf(path, sizeof(path), "%s/%s", k->dir, file);
		}
		out = slurp(path, len);
		if (!out)
			snprintf(why, wsize, "body_file %.100s: cannot read %.300s: %s", file,
				 path, strerror(errno));
		return out;
	}
	*len = 0;
	return calloc(1, 1);
}

/* Adds the headers of a spec: {"Name": "value" | ["v1", "v2"]}. 0 or -1. */
static int spec_headers(const json_t *spec, struct hub_msg *m, char *why, size_t wsize)
{
	const json_t *headers = json_object_get(spec, "headers"), *v, *item;
	const char *name;
	size_t i;

	json_object_foreach((json_t *)headers, name, v) {
		if (json_is_string(v)) {
			if (msg_add_header(m, name, json_string_value(v)) < 0)
				goto bad;
			continue;
		}
		if (!json_is_array(v))
			goto bad;
		json_array_foreach(v, i, item)
			if (!json_is_string(item) || msg_add_header(m, name, json_string_value(item)) < 0)
				goto bad;
		continue;
bad:
		snprintf(why, wsize, "header \"%s\" must be a string (or an array of strings) "
			 "without CR/LF", name);
		return -1;
	}
	return 0;
}

/* The canned response of response.json. 0 or -1 with why. */
static int make_response(const struct kcase *k, struct hub_msg *resp, char *why, size_t wsize)
{
	const json_t *st = json_object_get(k->response, "status");
	size_t len = 0;
	char *body;
	int rc;

	if (msg_set_status(resp, st ? (int)json_integer_value(st) : 200) < 0) {
		snprintf(why, wsize, "response.json: \"status\" must be an HTTP status");
		return -1;
	}
	if (spec_headers(k->response, resp, why, wsize) < 0)
		return -1;
	body = spec_body(k, k->response, &len, why, wsize);
	if (!body)
		return -1;
	rc = msg_set_body(resp, body, len);
	free(body);
	return rc;
}

/* The webhook of webhook.json, signed (or mis-signed) as `variant` asks. */
static int make_webhook(const struct kcase *k, const json_t *config, enum sig_variant variant,
			struct hub_msg *wh, char *why, size_t wsize)
{
	const json_t *sign = json_object_get(k->webhook, "sign");
	const char *method = json_string_value(json_object_get(k->webhook, "method"));
	const char *url = json_string_value(json_object_get(k->webhook, "url"));
	size_t len = 0;
	char *body;
	int rc = -1;

	if (msg_set_webhook(wh, method ? method : "POST", url ? url : "/hooks/" KIT_CONNECTOR) < 0) {
		snprintf(why, wsize, "webhook.json: invalid method or url");
		return -1;
	}
	if (spec_headers(k->webhook, wh, why, wsize) < 0)
		return -1;
	body = spec_body(k, k->webhook, &len, why, wsize);
	if (!body)
		return -1;
	if (sign && variant != SIG_MISSING) {
		const char *header = json_string_value(json_object_get(sign, "header"));
		const char *field = json_string_value(json_object_get(sign, "secret_field"));
		const char *enc = json_string_value(json_object_get(sign, "encoding"));
		const char *secret = json_string_value(json_object_get(config, field ? field : ""));
		char sig[128], key[512];

		if (!header || !secret) {
			snprintf(why, wsize, "webhook.json: \"sign\" needs \"header\" and a "
				 "\"secret_field\" naming a string of the config");
			goto out;
		}
		snprintf(key, sizeof(key), "%s%s", secret, variant == SIG_WRONG_SECRET ? "x" : "");
		if ((enc && strcmp(enc, "hex") == 0 ?
		     hub_hmac_sha256_hex(key, strlen(key), body, len, sig, sizeof(sig)) :
		     hub_hmac_sha256_base64(key, strlen(key), body, len, sig, sizeof(sig))) < 0 ||
		    msg_add_header(wh, header, sig) < 0) {
			snprintf(why, wsize, "webhook.json: cannot sign");
			goto out;
		}
	}
	if (variant == SIG_TAMPERED_BODY) {
		/* one byte more after signing: still valid JSON, other bytes */
		char *more = realloc(body, len + 2);

		if (!more)
			goto out;
		body = more;
		body[len++] = ' ';
		body[len] = '\0';
	}
	rc = msg_set_body(wh, body, len);
out:
	free(body);
	return rc;
}

static const char *status_str(int st)
{
	const char *s = host_status_name(st);

	return s ? s : "(unknown status)";
}

json_t *kit_run_json(int verify, int status, json_t *request, const struct hub_call *call,
		     const struct hub_error *err)
{
	json_t *outputs = call_to_json(call);

	json_object_set_new(outputs, "misuses", json_integer(call->misuses));
	return json_pack("{s:s,s:s?,s:o,s:o,s:{s:s,s:s}}", "status", status_str(status), "verify",
			 verify >= 0 ? status_str(verify) : NULL, "request",
			 request ? request : json_null(), "outputs", outputs, "error", "field",
			 err->field, "message", err->message);
}

/*
 * Settles scope `s` of one `callback` call of case k (variant v) once its
 * outputs are released: counts it, and notes the first call of the case
 * that left jansson blocks alive.
 */
static void scoped_settle(struct kcase *k, enum sig_variant v, const char *callback,
			  struct kit_scope *s)
{
	struct run_ctx *ctx = k->ctx;
	size_t bytes, live = kit_scope_settle(s, &bytes);

	ctx->scoped_calls++;
	k->scoped_calls++;
	if (s->blocks > ctx->max_blocks)
		ctx->max_blocks = s->blocks;
	if (s->bytes > ctx->max_bytes)
		ctx->max_bytes = s->bytes;
	if (!live)
		return;
	ctx->scoped_kept++;
	if (k->scoped_kept++ == 0)
		snprintf(k->scoped_first, sizeof(k->scoped_first),
			 "%s (webhook %s) kept %zu of the %zu block(s) it allocated alive, %zu of "
			 "%zu bytes", callback, variant_names[v], live, s->blocks, bytes, s->bytes);
}

/*
 * Runs the case once on `inst`; returns a JSON description of everything
 * the plugin produced (new reference) or NULL after reporting why.
 */
static json_t *run_once(struct kcase *k, struct connector *c, struct conn_instance *inst,
			enum sig_variant variant)
{
	const json_t *cursor = json_object_get(k->spec, "cursor");
	const char *stream = json_string_value(json_object_get(k->spec, "stream"));
	const char *action = json_string_value(json_object_get(k->spec, "action"));
	const json_t *payload = json_object_get(k->spec, "payload");
	const struct js_registry *schemas = plugin_registry_schemas(c->reg);
	int scoped = k->type == CASE_WEBHOOK && (k->ctx->caps & HUB_CAP_WEBHOOKS_SCOPED);
	struct kit_scope sverify, sread;
	struct hub_msg req, resp;
	struct hub_call call;
	struct hub_error err;
	json_t *out = NULL, *request = NULL;
	char why[512] = "";
	int st, verify = -1, read = 0;

	if (json_is_null(cursor))
		cursor = NULL;
	msg_init(&req);
	msg_init(&resp);
	memset(&err, 0, sizeof(err));
	memset(&sverify, 0, sizeof(sverify));
	memset(&sread, 0, sizeof(sread));
	switch (k->type) {
	case CASE_STREAM:
		call_init(&call, instance_stream_kinds(inst, stream), schemas);
		st = instance_build_request(inst, stream, cursor, &req, &err);
		break;
	case CASE_ACTION:
		call_init(&call, plugin_gen_kinds(inst->gen), schemas);
		st = instance_build_action(inst, action, payload, &req, &err);
		break;
	default:
		call_init(&call, plugin_gen_kinds(inst->gen), schemas);
		if (make_webhook(k, inst->config, variant, &req, why, sizeof(why)) < 0) {
			kit_fail(k->label, "%s", why);
			goto out;
		}
		if (scoped)
			kit_scope_enter(&sverify);
		st = verify = instance_verify_webhook(inst, &req, &call, &err);
		kit_scope_leave();
		if (st == HUB_OK) {
			read = 1;
			if (scoped)
				kit_scope_enter(&sread);
			st = instance_read_webhook(inst, &req, &call, &err);
			kit_scope_leave();
		}
		break;
	}
	if (k->type != CASE_WEBHOOK) {
		if (st == HUB_OK)
			request = msg_to_json(&req);
		/* without response.json the case checks the request only */
		if (st == HUB_OK && k->response) {
			if (make_response(k, &resp, why, sizeof(why)) < 0) {
				kit_fail(k->label, "response.json: %s", why);
				goto out;
			}
			instance_read_limits(inst, req.operation, &resp, &call);
			st = k->type == CASE_STREAM ?
				     instance_read_response(inst, stream, cursor, &resp, &call, &err) :
				     instance_read_action(inst, action, payload, &resp, &call, &err);
		}
	}
	out = kit_run_json(verify, st, request, &call, &err);
	request = NULL;
	if (k->type == CASE_WEBHOOK) {
		/* keep no reference to what the plugin emitted past call_release */
		json_t *copy = json_deep_copy(out);

		json_decref(out);
		out = copy;
	}
out:
	json_decref(request);
	call_release(&call);
	msg_release(&req);
	msg_release(&resp);
	if (scoped && verify >= 0)
		scoped_settle(k, variant, "verify_webhook", &sverify);
	if (scoped && read)
		scoped_settle(k, variant, "read_webhook", &sread);
	return out;
}

/* Compares request.json with the request built. Returns failures. */
static int check_request(const struct kcase *k, const json_t *req)
{
	const json_t *want = k->request, *headers, *v, *got_headers, *pair;
	const char *name, *got;
	int fails = 0;
	size_t i;

	if (!want)
		return 0;
	if (json_is_null(req)) {
		kit_detail("request.json: no request was built");
		return 1;
	}
	if ((v = json_object_get(want, "method")) &&
	    !json_equal(v, json_object_get(req, "method"))) {
		kit_diff("request.method", v, json_object_get(req, "method"), 0, 1);
		fails++;
	}
	if ((v = json_object_get(want, "url")) && !json_equal(v, json_object_get(req, "url"))) {
		kit_diff("request.url", v, json_object_get(req, "url"), 0, 1);
		fails++;
	}
	if ((v = json_object_get(want, "operation")) &&
	    !json_equal(v, json_object_get(req, "operation"))) {
		kit_diff("request.operation", v, json_object_get(req, "operation"), 0, 1);
		fails++;
	}
	headers = json_object_get(want, "headers");
	got_headers = json_object_get(req, "headers");
	json_object_foreach((json_t *)headers, name, v) {
		got = NULL;
		json_array_foreach(got_headers, i, pair)
			if (strcasecmp(json_string_value(json_array_get(pair, 0)), name) == 0) {
				got = json_string_value(json_array_get(pair, 1));
				break;
			}
		if (json_is_null(v) ? got != NULL : !got || strcmp(got, json_string_value(v) ?
								   json_string_value(v) : "")) {
			kit_detail("request header %s: expected %s%s%s, got %s%s%s", name,
				   json_is_null(v) ? "" : "\"",
				   json_is_null(v) ? "(absent)" : json_string_value(v),
				   json_is_null(v) ? "" : "\"", got ? "\"" : "",
				   got ? got : "(absent)", got ? "\"" : "");
			fails++;
		}
	}
	if ((v = json_object_get(want, "body"))) {
		const json_t *body = json_object_get(req, "body");

		if (!body || !json_equal(v, body)) {
			if (body)
				kit_diff("request.body", v, body, 0, 10);
			else
				kit_diff("request.body", v, json_object_get(req, "body_text"), 0, 1);
			fails++;
		}
	}
	if ((v = json_object_get(want, "body_text"))) {
		const json_t *text = json_object_get(req, "body_text");

		if (!text || !json_equal(v, text)) {
			kit_diff("request.body_text", v, text, 0, 1);
			fails++;
		}
	}
	return fails;
}

/* Compares expected.json with one run. Returns the number of failures. */
static int check_expected(const struct kcase *k, const json_t *run)
{
	const json_t *exp = k->expected, *out = json_object_get(run, "outputs"), *v, *rej;
	int fails = 0;
	size_t i;

#define CHECK_EXACT(key, actual)                                                         \
	do {                                                                             \
		if ((v = json_object_get(exp, key)) && !json_equal(v, actual)) {        \
			kit_diff(key, v, actual, 0, 10);                                 \
			fails++;                                                         \
		}                                                                        \
	} while (0)

	if ((v = json_object_get(exp, "status")) && !json_equal(v, json_object_get(run, "status"))) {
		const json_t *e = json_object_get(run, "error");

		kit_diff("status", v, json_object_get(run, "status"), 0, 1);
		kit_detail("the plugin said: %s%s%s", json_string_value(json_object_get(e, "field")),
			   *json_string_value(json_object_get(e, "field")) ? ": " : "",
			   json_string_value(json_object_get(e, "message")));
		fails++;
	}
	if (k->type == CASE_WEBHOOK)
		CHECK_EXACT("verify", json_object_get(run, "verify"));
	fails += check_request(k, json_object_get(run, "request"));
	CHECK_EXACT("records", json_object_get(out, "records"));
	CHECK_EXACT("cursor", json_object_get(out, "cursor"));
	CHECK_EXACT("more", json_object_get(out, "more"));
	CHECK_EXACT("delivery_id", json_object_get(out, "delivery_id"));
	CHECK_EXACT("topic", json_object_get(out, "topic"));
	CHECK_EXACT("actions", json_object_get(out, "actions"));
	/* "access_token": "tok" or {"token": "tok", "expires_at": RFC 3339} */
	if ((v = json_object_get(exp, "access_token"))) {
		const json_t *token = json_object_get(out, "access_token");
		char when[32] = "";
		json_t *got;

		if (!json_is_object(v)) {
			CHECK_EXACT("access_token", token);
		} else {
			hub_time_format(json_integer_value(json_object_get(
						out, "access_token_expires_at_ms")),
					when, sizeof(when));
			got = json_pack("{s:O,s:s}", "token", token, "expires_at", when);
			if (!json_equal(v, got)) {
				kit_diff("access_token", v, got, 0, 2);
				fails++;
			}
			json_decref(got);
		}
	}
	if ((v = json_object_get(exp, "limits")) &&
	    !kit_json_equal(v, json_object_get(out, "limits"), 1)) {
		kit_diff("limits", v, json_object_get(out, "limits"), 1, 10);
		fails++;
	}
	if ((v = json_object_get(exp, "error_field"))) {
		const char *field = json_string_value(json_object_get(json_object_get(run, "error"),
								      "field"));

		if (!json_is_string(v) || !field || !strstr(field, json_string_value(v))) {
			kit_detail("error_field: expected a field containing \"%s\", got \"%s\"",
				   json_string_value(v) ? json_string_value(v) : "?",
				   field ? field : "");
			fails++;
		}
	}
	if ((v = json_object_get(exp, "error_message"))) {
		const char *msg = json_string_value(json_object_get(json_object_get(run, "error"),
								    "message"));

		if (!json_is_string(v) || !msg || !strstr(msg, json_string_value(v))) {
			kit_detail("error_message: expected a message containing \"%s\", got "
				   "\"%s\"", json_string_value(v) ? json_string_value(v) : "?",
				   msg ? msg : "");
			fails++;
		}
	}
	/* every emitted record must match its canonical schema */
	json_array_foreach(json_object_get(out, "rejects"), i, rej) {
		kit_detail("emitted %s violates the canonical schema: %s: %s",
			   json_string_value(json_object_get(rej, "kind")),
			   json_string_value(json_object_get(rej, "field")),
			   json_string_value(json_object_get(rej, "reason")));
		fails++;
	}
	if (json_integer_value(json_object_get(out, "misuses"))) {
		kit_detail("the plugin misused the host table %lld time(s): emitted a kind this "
			   "callback may not emit (see the stream's record_kinds), or passed "
			   "NULL/invalid arguments to a host function",
			   (long long)json_integer_value(json_object_get(out, "misuses")));
		fails++;
	}
	return fails;
#undef CHECK_EXACT
}

/* One line summarising a passing run. */
static void summarise(const struct kcase *k, const json_t *run)
{
	const json_t *out = json_object_get(run, "outputs");
	const char *did = json_string_value(json_object_get(out, "delivery_id"));

	const char *verify = json_string_value(json_object_get(run, "verify"));
	int read = verify && !strcmp(verify, "HUB_OK");

	kit_pass(k->label, "%s%s%s%s, %zu record(s)%s%s%s%s%s",
		 verify ? "verify " : "", verify ? verify : "", read ? ", read " : "",
		 !verify || read ? json_string_value(json_object_get(run, "status")) : "",
		 json_array_size(json_object_get(out, "records")),
		 json_is_null(json_object_get(out, "cursor")) ? "" : ", cursor set",
		 json_is_true(json_object_get(out, "more")) ? ", more" : "",
		 did ? ", delivery id \"" : "", did ? did : "", did ? "\"" : "");
}

/*
 * Keeps the delivery of webhook case k as `variant` signs it, with the
 * outcome of `run`, for the concurrent check of a plugin declaring
 * HUB_CAP_WEBHOOKS_REENTRANT; nothing otherwise.
 */
static void keep_delivery(struct kcase *k, struct conn_instance *inst, enum sig_variant variant,
			  const json_t *run)
{
	struct run_ctx *ctx = k->ctx;
	const json_t *config = json_object_get(k->spec, "config");
	struct kit_wcase w, *grown;
	char why[512] = "out of memory";
	size_t len;

	if (!(ctx->caps & HUB_CAP_WEBHOOKS_REENTRANT) || !run)
		return;
	memset(&w, 0, sizeof(w));
	if (ctx->nw == ctx->capw) {
		size_t cap = ctx->capw ? ctx->capw * 2 : 16;

		grown = realloc(ctx->w, cap * sizeof(*grown));
		if (!grown)
			goto fail;
		ctx->w = grown;
		ctx->capw = cap;
	}
	len = strlen(k->label) + strlen(variant_names[variant]) + 4;
	w.label = malloc(len);
	if (!w.label)
		goto fail;
	if (variant == SIG_AS_GIVEN)
		snprintf(w.label, len, "%s", k->label);
	else
		snprintf(w.label, len, "%s (%s)", k->label, variant_names[variant]);
	w.config = config ? json_incref((json_t *)config) : json_object();
	w.now_ms = k->now_ms;
	w.webhook = msg_new();
	w.outcome = kit_webhook_outcome(run);
	if (!w.config || !w.webhook || !w.outcome)
		goto fail;
	if (make_webhook(k, inst->config, variant, w.webhook, why, sizeof(why)) < 0)
		goto fail;
	ctx->w[ctx->nw++] = w;
	return;
fail:
	kit_fail(k->label, "webhooks reentrant: cannot keep the delivery (%s) for the concurrent "
		 "run: %s", variant_names[variant], why);
	kit_wcase_release(&w);
}

/* The signature refusal checks of a signed webhook case. */
static void check_signatures(struct kcase *k, struct connector *c, struct conn_instance *inst)
{
	static const enum sig_variant variants[] = {SIG_WRONG_SECRET, SIG_TAMPERED_BODY,
						    SIG_MISSING};
	size_t i;

	for (i = 0; i < sizeof(variants) / sizeof(variants[0]); i++) {
		json_t *run = run_once(k, c, inst, variants[i]);
		const char *verify = json_string_value(json_object_get(run, "verify"));
		const json_t *out = json_object_get(run, "outputs");

		if (!run)
			continue;
		if (verify && strcmp(verify, "HUB_UNAUTHORIZED") == 0 &&
		    json_array_size(json_object_get(out, "records")) == 0)
			kit_pass(k->label, "%s: refused (HUB_UNAUTHORIZED)", variant_names[variants[i]]);
		else
			kit_fail(k->label, "%s: verify_webhook returned %s, expected HUB_UNAUTHORIZED: "
				 "verify the signature over the raw body bytes, constant-time",
				 variant_names[variants[i]], verify ? verify : "?");
		keep_delivery(k, inst, variants[i], run);
		json_decref(run);
	}
}

static void run_case(struct plugin_registry *reg, const char *plugin, struct kcase *k)
{
	const json_t *spec = k->spec, *v;
	const char *type = json_string_value(json_object_get(spec, "type"));
	const char *now = json_string_value(json_object_get(spec, "now"));
	const char *token = json_string_value(json_object_get(spec, "access_token"));
	json_t *run1 = NULL, *run2 = NULL, *empty = NULL;
	const json_t *config;
	struct conn_instance *inst = NULL;
	struct connector *c = NULL;
	struct hub_error err;
	int64_t now_ms;
	int fails;

	if (!type || (strcmp(type, "stream") && strcmp(type, "webhook") && strcmp(type, "action"))) {
		kit_fail(k->label, "case.json: \"type\" must be \"stream\", \"webhook\" or \"action\"");
		return;
	}
	k->type = !strcmp(type, "stream") ? CASE_STREAM :
		  !strcmp(type, "webhook") ? CASE_WEBHOOK : CASE_ACTION;
	if (k->type == CASE_STREAM && !json_is_string(json_object_get(spec, "stream"))) {
		kit_fail(k->label, "case.json: a stream case needs \"stream\"");
		return;
	}
	if (k->type == CASE_ACTION && !json_is_string(json_object_get(spec, "action"))) {
		kit_fail(k->label, "case.json: an action case needs \"action\"");
		return;
	}
	if (k->type == CASE_WEBHOOK && !k->webhook) {
		kit_fail(k->label, "a webhook case needs webhook.json");
		return;
	}
	if (hub_time_parse(now ? now : KIT_DEFAULT_NOW, 0, &now_ms, "now", &err) < 0) {
		kit_fail(k->label, "case.json: \"now\": %s", err.message);
		return;
	}
	host_clock_fix(now_ms);
	k->now_ms = now_ms;

	config = json_object_get(spec, "config");
	if (!config)
		config = empty = json_object();
	if (connector_create(reg, KIT_CONNECTOR, "kit", plugin, config, &c, &err) < 0) {
		c = NULL;
		kit_fail(k->label, "the connector could not be created: %s", err.message);
		goto out;
	}
	if (token)
		connector_set_access_token(c, token, 0);
	if (k->type == CASE_STREAM) {
		v = json_object_get(spec, "cursor");
		if (v && !json_is_null(v))
			connector_set_cursor(c, json_string_value(json_object_get(spec, "stream")),
					     (json_t *)v);
	}
	inst = connector_acquire(c);

	run1 = run_once(k, c, inst, SIG_AS_GIVEN);
	if (!run1)
		goto out;
	fails = check_expected(k, run1);
	if (fails)
		kit_fail(k->label, "%d mismatch(es) with expected.json:", fails);
	else
		summarise(k, run1);
	if (k->type == CASE_WEBHOOK) {
		k->ctx->webhook_cases++;
		keep_delivery(k, inst, SIG_AS_GIVEN, run1);
	}

	/* the same input again, on the same instance */
	run2 = run_once(k, c, inst, SIG_AS_GIVEN);
	if (!run2)
		goto out;
	if (json_equal(run1, run2)) {
		if (k->type == CASE_WEBHOOK &&
		    json_is_string(json_object_get(json_object_get(run1, "outputs"), "delivery_id")))
			kit_pass(k->label, "idempotent; the duplicate delivery is reported with the "
				 "same delivery id");
		else
			kit_pass(k->label, "idempotent (second run identical)");
	} else {
		kit_diff("run", run1, run2, 0, 10);
		kit_fail(k->label, "not idempotent: the second run differs from the first "
			 "(the plugin keeps state between calls, or reads the real clock):");
	}

	if (k->type == CASE_WEBHOOK && json_object_get(k->webhook, "sign") &&
	    !strcmp(json_string_value(json_object_get(run1, "verify")), "HUB_OK"))
		check_signatures(k, c, inst);
	else if (k->type == CASE_WEBHOOK &&
		 !strcmp(json_string_value(json_object_get(run1, "verify")), "HUB_OK"))
		kit_skip(k->label, "bad-signature checks need a \"sign\" block in webhook.json");
out:
	if (k->scoped_kept)
		kit_fail(k->label, "webhooks scoped: %u of %u verify/read call(s) left jansson values "
			 "alive after returning and after the kit released what they emitted; the "
			 "first: %s. HUB_CAP_WEBHOOKS_SCOPED promises nothing a call creates "
			 "outlives it: release what you parse, hand records to emit, fill no cache "
			 "during a call (and free json_dumps text with jansson's free function, not "
			 "free())", k->scoped_kept, k->scoped_calls, k->scoped_first);
	json_decref(empty);
	instance_release(inst);
	if (c)
		connector_destroy(reg, KIT_CONNECTOR, &err);
	host_clock_fix(0);
	json_decref(run1);
	json_decref(run2);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the sub-directories of dir (NULL-terminated, malloc'd). */
static char **list_cases(const char *dir, size_t *n)
{
	char **names = NULL, **grown, path[PATH_MAX * 2];
	struct dirent *de;
	struct stat st;
	size_t cap = 0;
	DIR *d;

	*n = 0;
	d = opendir(dir);
	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/case.json", dir, de->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (*n + 1 >= cap) {
			cap = cap ? cap * 2 : 32;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown)
				break;
			names = grown;
		}
		names[(*n)++] = strdup(de->d_name);
		names[*n] = NULL;
	}
	closedir(d);
	if (names)
		qsort(names, *n, sizeof(*names), cmp_names);
	return names;
}

/* The summary line of the HUB_CAP_WEBHOOKS_SCOPED check, after the cases. */
static void scoped_summary(const struct run_ctx *ctx)
{
	if (!(ctx->caps & HUB_CAP_WEBHOOKS_SCOPED))
		kit_info("webhooks scoped", "HUB_CAP_WEBHOOKS_SCOPED not declared: not checked");
	else if (ctx->scoped_calls == 0)
		kit_skip("webhooks scoped", "HUB_CAP_WEBHOOKS_SCOPED declared, but no webhook case "
			 "called verify_webhook or read_webhook: add webhook cases");
	else if (ctx->scoped_kept)
		kit_fail("webhooks scoped", "%u of %u verify/read call(s) kept jansson values past "
			 "the call (cases above)", ctx->scoped_kept, ctx->scoped_calls);
	else
		kit_pass("webhooks scoped", "%u verify/read call(s) in %u webhook case(s): nothing "
			 "allocated during a call outlived it (the largest call: %zu block(s), %zu "
			 "bytes)", ctx->scoped_calls, ctx->webhook_cases, ctx->max_blocks,
			 ctx->max_bytes);
}

int kit_run_cases(struct plugin_registry *reg, const char *name, const char *dir,
		  const struct kit_opts *opts)
{
	const struct plugin *p = plugin_find(reg, name);
	struct run_ctx ctx;
	size_t n, i;
	char **names = list_cases(dir, &n);

	memset(&ctx, 0, sizeof(ctx));
	ctx.caps = p && p->cur ? p->cur->desc.capabilities : 0;

	for (i = 0; i < n; i++) {
		struct kcase k;

		memset(&k, 0, sizeof(k));
		snprintf(k.dir, sizeof(k.dir), "%s/%s", dir, names[i]);
		snprintf(k.label, sizeof(k.label), "case %s", names[i]);
		k.ctx = &ctx;
		if (load_json(&k, "case.json", 1, &k.spec) == 0 &&
		    load_json(&k, "expected.json", 1, &k.expected) == 0 &&
		    load_json(&k, "request.json", 0, &k.request) == 0 &&
		    load_json(&k, "response.json", 0, &k.response) == 0 &&
		    load_json(&k, "webhook.json", 0, &k.webhook) == 0)
			run_case(reg, name, &k);
		kcase_release(&k);
		free(names[i]);
	}
	free(names);
	if (n && (ctx.caps & HUB_CAP_WEBHOOKS)) {
		scoped_summary(&ctx);
		if (ctx.caps & HUB_CAP_WEBHOOKS_REENTRANT)
			kit_check_reentrant(reg, name, ctx.w, ctx.nw, opts);
		else
			kit_info("webhooks reentrant", "HUB_CAP_WEBHOOKS_REENTRANT not declared: not "
				 "checked");
	}
	for (i = 0; i < ctx.nw; i++)
		kit_wcase_release(&ctx.w[i]);
	free(ctx.w);
	return (int)n;
}

json_t *kit_first_config(const char *dir)
{
	size_t n, i;
	char **names = list_cases(dir, &n), path[PATH_MAX * 2];
	json_t *config = NULL, *spec;

	for (i = 0; i < n; i++) {
		if (!config) {
			snprintf(path, sizeof(path), "%s/%s/case.json", dir, names[i]);
			spec = json_load_file(path, 0, NULL);
			config = json_incref(json_object_get(spec, "config"));
			json_decref(spec);
		}
		free(names[i]);
	}
	free(names);
	return config;
}
