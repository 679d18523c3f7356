/*
 * test_plugin.c - the plugin loader, connectors and hot reload, driven with
 * the purpose-built plugins of tests/plugins (built as real shared objects
 * and loaded through libltdl, nothing mocked).
 *
 * Covers: each ABI refusal and its message; names and paths outside the
 * plugin directory; connectors (config validation, defaults, secrets kept
 * out of the admin view, update); reload while steps are in flight (they
 * finish on their generation, which closes after); reload to a broken
 * version and to a version whose instances cannot be created (the old one
 * keeps serving, the partial instances are destroyed); unload refused while
 * in use; coalesced reload requests; webhooks interleaved with reloads with
 * zero failures; 1,000 load/unload cycles leaving nothing open.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <hub/sdk.h>

#include "connector.h"
#include "host.h"
#include "jsonschema.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"

#ifndef TEST_PLUGIN_BUILD_DIR
#error TEST_PLUGIN_BUILD_DIR must name tests/plugins/.libs of the build tree
#endif

struct fixture {
	char dir[PATH_MAX];   /* a fresh plugin_dir */
	char state[PATH_MAX]; /* a fresh state_dir */
	struct js_registry *schemas;
	struct plugin_registry *reg;
};

/* Copies built plugin `from` into the fixture's plugin dir as `to`.so. */
static void install(struct fixture *f, const char *from, const char *to)
{
	char src[PATH_MAX], dst[PATH_MAX + 80], tmp[PATH_MAX + 88], buf[65536];
	int in, out;
	ssize_t n;

	snprintf(src, sizeof(src), "%s/%s.so", TEST_PLUGIN_BUILD_DIR, from);
	snprintf(dst, sizeof(dst), "%s/%s.so", f->dir, to);
	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	in = open(src, O_RDONLY);
	assert_true(in >= 0);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	/* replace atomically, as an operator deploying a new version would */
	assert_int_equal(rename(tmp, dst), 0);
}

static void rm_tree(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) < 0 && errno == EISDIR)
			rm_tree(path);
	}
	closedir(d);
	rmdir(dir);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct hub_error err;
	const char *tmp = getenv("TMPDIR");

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/test_plugin.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	snprintf(f->state, sizeof(f->state), "%s/test_plugin_state.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir) || !mkdtemp(f->state))
		return -1;
	f->schemas = js_registry_new();
	if (!f->schemas || js_registry_add_builtin(f->schemas, &err) < 0)
		return -1;
	f->reg = plugin_registry_new(f->dir, f->state, f->schemas, &err);
	if (!f->reg)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d;
	int empty = 1;
	struct dirent *de;

	plugin_registry_free(f->reg);
	js_registry_free(f->schemas);
	/* the registry removed its private directory of copies */
	d = opendir(f->state);
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = 0;
	if (d)
		closedir(d);
	rm_tree(f->dir);
	rm_tree(f->state);
	free(f);
	return empty ? 0 : -1;
}

static json_t *good_config(void)
{
	return json_pack("{s:s,s:s,s:s}", "base_url", "https://api.example.test", "api_key",
			 "k-123", "webhook_secret", "whsec");
}

/* Loads a refused plugin and checks the message contains `want`. */
static void expect_refusal(struct fixture *f, const char *name, const char *want)
{
	unsigned live = plugin_registry_live_generations(f->reg);
	struct hub_error err;

	memset(&err, 0, sizeof(err));
	assert_int_equal(plugin_load(f->reg, name, &err), -1);
	if (!strstr(err.message, want))
		fail_msg("refusal of %s: \"%s\" does not contain \"%s\"", name, err.message, want);
	/* nothing stays open */
	assert_int_equal(plugin_registry_live_generations(f->reg), live);
}

static void test_refusals(void **state)
{
	struct fixture *f = *state;
	struct hub_error err;
	char path[PATH_MAX + 16];

	install(f, "bad_nosym", "bad_nosym");
	expect_refusal(f, "bad_nosym", "missing symbol hub_plugin_v1");
	/* the message and the field name the file */
	memset(&err, 0, sizeof(err));
	plugin_load(f->reg, "bad_nosym", &err);
	assert_non_null(strstr(err.message, "bad_nosym.so"));
	assert_non_null(strstr(err.field, "bad_nosym.so"));

	install(f, "bad_abi", "bad_abi");
	expect_refusal(f, "bad_abi", "wrong ABI major: the plugin was built for ABI 2, this host "
				     "speaks ABI 1");
	install(f, "bad_size", "bad_size");
	expect_refusal(f, "bad_size", "descriptor too short: struct_size is 16 bytes");
	install(f, "bad_cap", "bad_cap");
	expect_refusal(f, "bad_cap", "declares capability HUB_CAP_WEBHOOKS but its callback "
				     "verify_webhook is NULL");
	install(f, "bad_schema", "bad_schema");
	expect_refusal(f, "bad_schema", "invalid config schema at /properties/shop/type");
	install(f, "bad_name", "bad_name");
	expect_refusal(f, "bad_name", "the descriptor's name \"other\" differs from the file name");
	install(f, "good_broken", "good");
	expect_refusal(f, "good", "declares capability HUB_CAP_WEBHOOKS but its callback "
				  "read_webhook is NULL");

	/* names and paths */
	expect_refusal(f, "../good", "invalid plugin name");
	expect_refusal(f, "Good", "invalid plugin name");
	expect_refusal(f, "good.so", "invalid plugin name");
	expect_refusal(f, "", "invalid plugin name");
	expect_refusal(f, "absent", "No such file or directory");
	/* a symlink leaving plugin_dir is refused, one staying inside is fine */
	snprintf(path, sizeof(path), "%s/outside.so", f->dir);
	assert_int_equal(symlink(TEST_PLUGIN_BUILD_DIR "/good.so", path), 0);
	expect_refusal(f, "outside", "outside the plugin directory");
	install(f, "good", "real_good");
	snprintf(path, sizeof(path), "%s/good.so", f->dir);
	unlink(path);
	assert_int_equal(symlink("real_good.so", path), 0);
	memset(&err, 0, sizeof(err));
	if (plugin_load(f->reg, "good", &err) != 0)
		fail_msg("symlink inside plugin_dir refused: %s", err.message);
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
	/* a dangling link */
	snprintf(path, sizeof(path), "%s/dangling.so", f->dir);
	assert_int_equal(symlink("nowhere.so", path), 0);
	expect_refusal(f, "dangling", "dangling");
	assert_null(plugin_find(f->reg, "dangling"));
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
}

static void test_load_and_list(void **state)
{
	struct fixture *f = *state;
	struct hub_error err;
	json_t *list, *p;

	install(f, "good", "good");
	install(f, "bad_abi", "bad_abi");
	/* load_all loads what it can and counts refusals */
	assert_int_equal(plugin_load_all(f->reg), 1);
	assert_non_null(plugin_find(f->reg, "good"));
	assert_int_equal(plugin_load(f->reg, "good", &err), -1);
	assert_non_null(strstr(err.message, "already loaded"));

	list = plugin_list(f->reg);
	assert_int_equal(json_array_size(list), 1);
	p = json_array_get(list, 0);
	assert_string_equal(json_string_value(json_object_get(p, "name")), "good");
	assert_string_equal(json_string_value(json_object_get(p, "version")), "1.0.0");
	assert_int_equal(json_integer_value(json_object_get(p, "generation")), 1);
	assert_int_equal(json_string_length(json_object_get(p, "sha256")), 64);
	assert_int_equal(json_array_size(json_object_get(p, "secret_fields")), 2);
	assert_string_equal(json_string_value(json_array_get(json_object_get(p, "capabilities"), 0)),
			    "orders");
	json_decref(list);
}

static void test_connectors(void **state)
{
	struct fixture *f = *state;
	const struct hub_host *h = host_table();
	struct connector *c;
	struct conn_instance *inst;
	struct hub_error err;
	struct hub_msg req;
	json_t *cfg, *j;

	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);

	/* config validated against the plugin's schema, field named */
	cfg = json_pack("{s:s}", "base_url", "https://api.example.test");
	assert_int_equal(connector_create(f->reg, "acme", "m1", "good", cfg, &c, &err), -1);
	assert_string_equal(err.field, "config.api_key");
	json_decref(cfg);
	cfg = good_config();
	json_object_set_new(cfg, "page_size", json_string("ten"));
	assert_int_equal(connector_create(f->reg, "acme", "m1", "good", cfg, &c, &err), -1);
	assert_string_equal(err.field, "config.page_size");
	json_decref(cfg);
	assert_int_equal(connector_create(f->reg, "Acme!", "m1", "good", NULL, &c, &err), -1);
	assert_int_equal(connector_create(f->reg, "acme", "m1", "nope", NULL, &c, &err), -1);
	assert_non_null(strstr(err.message, "not loaded"));

	cfg = good_config();
	assert_int_equal(connector_create(f->reg, "acme", "m1", "good", cfg, &c, &err), 0);
	assert_int_equal(connector_create(f->reg, "acme", "m2", "good", cfg, NULL, &err), -1);
	assert_non_null(strstr(err.message, "already exists"));
	json_decref(cfg);
	assert_ptr_equal(connector_find(f->reg, "acme"), c);

	/* secrets reach the plugin, not the admin view */
	assert_string_equal(h->secret((struct hub_conn *)c, "api_key"), "k-123");
	assert_null(h->secret((struct hub_conn *)c, "base_url")); /* not marked x-secret */
	j = connector_to_json(c);
	assert_null(json_object_get(json_object_get(j, "config"), "api_key"));
	assert_null(json_object_get(json_object_get(j, "config"), "webhook_secret"));
	assert_int_equal(json_array_size(json_object_get(j, "secrets_set")), 2);
	{
		char *text = json_dumps(j, 0);

		assert_null(strstr(text, "k-123"));
		assert_null(strstr(text, "whsec"));
		free(text);
	}
	json_decref(j);

	/* defaults applied: page_size 2 appears in the request */
	inst = connector_acquire(c);
	msg_init(&req);
	assert_int_equal(instance_build_request(inst, "orders", NULL, &req, &err), HUB_OK);
	assert_non_null(strstr(req.url, "limit=2"));
	assert_string_equal(msg_header(&req, "Authorization"), "Bearer k-123");
	assert_string_equal(req.operation, "orders"); /* the stream's bucket */
	msg_release(&req);
	assert_int_equal(instance_build_request(inst, "nope", NULL, &req, &err), HUB_FATAL);
	assert_non_null(strstr(err.message, "no stream \"nope\""));
	msg_release(&req);
	instance_release(inst);

	/* update: new instance, cursor kept, secrets kept when not resent */
	json_t *cur = json_pack("{s:s}", "since", "2026-01-01T00:00:00Z");

	assert_int_equal(connector_set_cursor(c, "orders", cur), 0);
	json_decref(cur);
	cfg = json_pack("{s:s,s:i}", "base_url", "https://api2.example.test", "page_size", 50);
	assert_int_equal(connector_update(c, cfg, &err), 0);
	json_decref(cfg);
	assert_int_equal(c->swaps, 1);
	assert_string_equal(h->secret((struct hub_conn *)c, "api_key"), "k-123");
	assert_string_equal(json_string_value(json_object_get(h->cursor((struct hub_conn *)c,
									 "orders"), "since")),
			    "2026-01-01T00:00:00Z");
	inst = connector_acquire(c);
	msg_init(&req);
	assert_int_equal(instance_build_request(inst, "orders", NULL, &req, &err), HUB_OK);
	assert_non_null(strstr(req.url, "https://api2.example.test/orders?"));
	assert_non_null(strstr(req.url, "limit=50"));
	msg_release(&req);
	instance_release(inst);
	/* an invalid update leaves everything as it was */
	cfg = json_pack("{s:s,s:i}", "base_url", "ftp://x", "page_size", 50);
	assert_int_equal(connector_update(c, cfg, &err), -1);
	assert_string_equal(err.field, "config.base_url");
	json_decref(cfg);
	assert_int_equal(c->swaps, 1);

	assert_int_equal(connector_destroy(f->reg, "acme", &err), 0);
	assert_null(connector_find(f->reg, "acme"));
	assert_int_equal(connector_destroy(f->reg, "acme", &err), -1);
}

/* Feeds `inst` a page of two orders; returns the status. */
static int read_page(struct fixture *f, struct conn_instance *inst, struct hub_call *call)
{
	static const char body[] =
		"{\"orders\":[{\"id\":\"1\",\"currency\":\"EUR\",\"total_cents\":1990,"
		"\"created_at\":\"2026-01-01T10:00:00.000Z\",\"updated_at\":\"2026-01-01T10:00:00.000Z\"},"
		"{\"id\":\"2\",\"currency\":\"EUR\",\"total_cents\":500,"
		"\"created_at\":\"2026-01-01T11:00:00.000Z\",\"updated_at\":\"2026-01-01T11:00:00.000Z\"}],"
		"\"next_page\":null}";
	struct hub_error err;
	struct hub_msg resp;
	int st;

	msg_init(&resp);
	msg_set_status(&resp, 200);
	msg_add_header(&resp, "X-Limit", "3/40");
	msg_set_body(&resp, body, strlen(body));
	call_init(call, instance_stream_kinds(inst, "orders"), plugin_registry_schemas(f->reg));
	instance_read_limits(inst, "orders", &resp, call);
	st = instance_read_response(inst, "orders", NULL, &resp, call, &err);
	msg_release(&resp);
	return st;
}

/* Header `name` of the request `inst` builds (static buffer). */
static const char *req_header(struct conn_instance *inst, const char *name)
{
	static char value[128];
	struct hub_error err;
	struct hub_msg req;

	msg_init(&req);
	assert_int_equal(instance_build_request(inst, "orders", NULL, &req, &err), HUB_OK);
	snprintf(value, sizeof(value), "%s", msg_header(&req, name));
	msg_release(&req);
	return value;
}

static const char *req_version(struct conn_instance *inst)
{
	return req_header(inst, "X-Plugin-Version");
}

static void test_reload_in_flight(void **state)
{
	struct fixture *f = *state;
	struct connector *c1, *c2;
	struct conn_instance *old, *cur;
	struct hub_error err;
	struct hub_call call;
	json_t *cfg = good_config(), *cursor;

	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(connector_create(f->reg, "c1", "m", "good", cfg, &c1, &err), 0);
	assert_int_equal(connector_create(f->reg, "c2", "m", "good", cfg, &c2, &err), 0);
	json_decref(cfg);
	cursor = json_pack("{s:s,s:i}", "since", "2026-01-01T00:00:00Z", "page", 3);
	connector_set_cursor(c1, "orders", cursor);

	/* a step starts on generation 1 ... */
	old = connector_acquire(c1);
	assert_string_equal(req_version(old), "1.0.0");

	/* ... the operator deploys 2.0.0 and reloads meanwhile */
	install(f, "good_v2", "good");
	assert_int_equal(plugin_reload(f->reg, "good", &err), 0);
	assert_int_equal(plugin_find(f->reg, "good")->cur->id, 2);
	assert_int_equal(plugin_registry_live_generations(f->reg), 2);
	assert_int_equal(c1->swaps, 1);
	assert_int_equal(c2->swaps, 1);

	/* new steps use generation 2, the cursor is untouched */
	cur = connector_acquire(c1);
	assert_string_equal(req_version(cur), "2.0.0");
	assert_true(json_equal((json_t *)connector_cursor(c1, "orders"), cursor));
	instance_release(cur);
	cur = connector_acquire(c2);
	assert_string_equal(req_version(cur), "2.0.0");
	instance_release(cur);

	/* the step in flight finishes on generation 1, records validated */
	assert_int_equal(read_page(f, old, &call), HUB_OK);
	assert_int_equal(call.nrecords, 2);
	assert_int_equal(call.nrejects, 0);
	assert_int_equal(call.nlimits, 1);
	assert_true(call.limits[0].used == 3 && call.limits[0].capacity == 40);
	assert_string_equal(json_string_value(json_object_get(call.cursor, "since")),
			    "2026-01-01T11:00:00.000Z");
	call_release(&call);
	assert_string_equal(old->gen->desc.version, "1.0.0");
	instance_release(old);
	/* and generation 1 closes with its last instance */
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
	json_decref(cursor);
}

static void test_reload_broken_keeps_old(void **state)
{
	struct fixture *f = *state;
	struct connector *c;
	struct conn_instance *inst;
	struct hub_error err;
	json_t *cfg = good_config(), *list;

	install(f, "good_v2", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(connector_create(f->reg, "c1", "m", "good", cfg, &c, &err), 0);
	assert_int_equal(connector_create(f->reg, "c2", "m", "good", cfg, NULL, &err), 0);
	json_decref(cfg);

	/* a version the loader refuses */
	install(f, "good_broken", "good");
	assert_int_equal(plugin_reload(f->reg, "good", &err), -1);
	assert_non_null(strstr(err.message, "read_webhook is NULL"));
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
	assert_int_equal(c->swaps, 0);
	inst = connector_acquire(c);
	assert_string_equal(req_version(inst), "2.0.0");
	instance_release(inst);

	/* a version that loads but cannot create instances: the partial new
	 * instances are destroyed and its generation closed */
	install(f, "good_badcreate", "good");
	assert_int_equal(plugin_reload(f->reg, "good", &err), -1);
	assert_non_null(strstr(err.message, "create() returned HUB_INVALID"));
	assert_non_null(strstr(err.message, "this build refuses every config"));
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
	assert_int_equal(c->swaps, 0);
	inst = connector_acquire(c);
	assert_string_equal(req_version(inst), "2.0.0");
	instance_release(inst);

	list = plugin_list(f->reg);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0),
							   "reload_failures")), 2);
	assert_non_null(strstr(json_string_value(json_object_get(json_array_get(list, 0),
								"last_reload_error")),
			       "refuses every config"));
	json_decref(list);

	/* fixed version: the reload goes through */
	install(f, "good", "good");
	assert_int_equal(plugin_reload(f->reg, "good", &err), 0);
	inst = connector_acquire(c);
	assert_string_equal(req_version(inst), "1.0.0");
	instance_release(inst);
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
}

static void test_unload(void **state)
{
	struct fixture *f = *state;
	struct connector *c;
	struct conn_instance *inst;
	struct hub_error err;
	const struct hub_host *h = host_table();
	json_t *cfg = good_config();

	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(connector_create(f->reg, "c1", "m", "good", cfg, &c, &err), 0);
	assert_int_equal(connector_create(f->reg, "c2", "m", "good", cfg, NULL, &err), 0);
	json_decref(cfg);

	assert_int_equal(plugin_unload(f->reg, "good", &err), -1);
	assert_non_null(strstr(err.message, "in use by 2 connectors"));
	assert_non_null(strstr(err.message, "c1"));
	assert_non_null(strstr(err.message, "c2"));
	assert_non_null(plugin_find(f->reg, "good"));

	/* a step in flight survives destroying its connector and unloading */
	inst = connector_acquire(c);
	assert_int_equal(connector_destroy(f->reg, "c1", &err), 0);
	assert_int_equal(connector_destroy(f->reg, "c2", &err), 0);
	assert_null(connector_acquire(c));
	assert_int_equal(plugin_unload(f->reg, "good", &err), 0);
	assert_null(plugin_find(f->reg, "good"));
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
	assert_string_equal(req_version(inst), "1.0.0");
	/* its callbacks still see their connector's secrets */
	assert_string_equal(req_header(inst, "Authorization"), "Bearer k-123");
	assert_null(h->secret((struct hub_conn *)inst->conn, "api_key")); /* outside a callback */
	instance_release(inst);
	assert_int_equal(plugin_registry_live_generations(f->reg), 0);
	assert_int_equal(plugin_unload(f->reg, "good", &err), -1);
}

/* A defer hook that queues the work until the test runs it. */
struct queue {
	void (*fn[8])(void *);
	void *arg[8];
	int n;
};

static int defer_queue(void *ctx, void (*fn)(void *), void *arg)
{
	struct queue *q = ctx;

	if (q->n == 8)
		return -1;
	q->fn[q->n] = fn;
	q->arg[q->n] = arg;
	q->n++;
	return 0;
}

static void run_queue(struct queue *q)
{
	while (q->n) {
		void (*fn)(void *) = q->fn[0];
		void *arg = q->arg[0];

		memmove(q->fn, q->fn + 1, (size_t)(q->n - 1) * sizeof(q->fn[0]));
		memmove(q->arg, q->arg + 1, (size_t)(q->n - 1) * sizeof(q->arg[0]));
		q->n--;
		fn(arg);
	}
}

struct done_ctx {
	int calls, ok, failed;
	struct plugin_registry *reg;
	int ask_again; /* ask for another reload from within the callback */
};

static void on_done(void *arg, int rc, const struct hub_error *err)
{
	struct done_ctx *d = arg;

	d->calls++;
	if (rc == 0)
		d->ok++;
	else
		d->failed++;
	assert_true(rc == 0 ? err == NULL : err != NULL);
	if (d->ask_again) {
		d->ask_again = 0;
		assert_int_equal(plugin_reload_request(d->reg, "good", on_done, d, NULL), 0);
	}
}

static void test_reload_coalesces(void **state)
{
	struct fixture *f = *state;
	struct queue q = {0};
	struct done_ctx d = {0};
	struct hub_error err;
	struct plugin *p;
	json_t *cfg = good_config();

	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(connector_create(f->reg, "c1", "m", "good", cfg, NULL, &err), 0);
	json_decref(cfg);
	plugin_registry_set_defer(f->reg, defer_queue, &q);
	p = plugin_find(f->reg, "good");

	/* three requests before the loop runs: one reload serves them all */
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	assert_int_equal(q.n, 1);
	assert_int_equal(p->reloads, 0);
	run_queue(&q);
	assert_int_equal(p->reloads, 1);
	assert_int_equal(d.calls, 3);
	assert_int_equal(d.ok, 3);
	assert_int_equal(p->cur->id, 2);

	/* a request made while a reload runs causes exactly one more run */
	d = (struct done_ctx){.reg = f->reg, .ask_again = 1};
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	run_queue(&q);
	assert_int_equal(p->reloads, 3);
	assert_int_equal(d.calls, 3);
	assert_int_equal(p->cur->id, 4);

	/* a synchronous reload serves pending requests too */
	d = (struct done_ctx){0};
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	assert_int_equal(plugin_reload(f->reg, "good", &err), 0);
	assert_int_equal(d.calls, 1);
	run_queue(&q); /* the stale ticket finds nothing to do */
	assert_int_equal(p->reloads, 4);

	/* unknown plugin: refused at once, no callback */
	assert_int_equal(plugin_reload_request(f->reg, "nope", on_done, &d, &err), -1);
	assert_int_equal(d.calls, 1);

	/* pending requests are answered if the plugin goes away first */
	assert_int_equal(plugin_reload_request(f->reg, "good", on_done, &d, &err), 0);
	assert_int_equal(connector_destroy(f->reg, "c1", &err), 0);
	assert_int_equal(plugin_unload(f->reg, "good", &err), 0);
	assert_int_equal(d.calls, 2);
	assert_int_equal(d.failed, 1);
	run_queue(&q);
	assert_int_equal(plugin_registry_live_generations(f->reg), 0);
}

/* Webhooks keep flowing through reloads: every one is verified and read,
 * none fails, whichever generation serves it. */
static void test_webhooks_during_reloads(void **state)
{
	struct fixture *f = *state;
	struct connector *c;
	struct hub_error err;
	json_t *cfg = good_config();
	int i, failures = 0, served_v2 = 0;

	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(connector_create(f->reg, "c1", "m", "good", cfg, &c, &err), 0);
	json_decref(cfg);

	for (i = 0; i < 400; i++) {
		char body[256], sig[65], id[32];
		struct conn_instance *inst = connector_acquire(c);
		struct hub_msg wh;
		struct hub_call call;
		int st;

		snprintf(body, sizeof(body),
			 "{\"order\":{\"id\":\"%d\",\"currency\":\"EUR\",\"total_cents\":%d,"
			 "\"created_at\":\"2026-01-01T10:00:00.000Z\","
			 "\"updated_at\":\"2026-01-01T10:00:00.000Z\"}}", i, i * 10);
		hub_hmac_sha256_hex("whsec", 5, body, strlen(body), sig, sizeof(sig));
		snprintf(id, sizeof(id), "d-%d", i);
		msg_init(&wh);
		msg_set_webhook(&wh, "POST", "/hooks/c1");
		msg_add_header(&wh, "X-Good-Signature", sig);
		msg_add_header(&wh, "X-Good-Delivery", id);
		msg_set_body(&wh, body, strlen(body));
		call_init(&call, plugin_gen_kinds(inst->gen), plugin_registry_schemas(f->reg));
		/* a reload lands between two webhooks, or between verify and
		 * read of one: the held instance keeps serving */
		if (i % 10 == 5) {
			install(f, i % 20 == 5 ? "good_v2" : "good", "good");
			if (plugin_reload(f->reg, "good", &err) < 0)
				failures++;
		}
		st = instance_verify_webhook(inst, &wh, &call, &err);
		if (i % 10 == 7) {
			install(f, "good_broken", "good");
			assert_int_equal(plugin_reload(f->reg, "good", &err), -1);
		}
		if (st == HUB_OK)
			st = instance_read_webhook(inst, &wh, &call, &err);
		if (st != HUB_OK || call.nrecords != 1 || call.nrejects ||
		    strcmp(call.delivery_id, id) != 0)
			failures++;
		if (!strcmp(inst->gen->desc.version, "2.0.0"))
			served_v2++;
		call_release(&call);
		msg_release(&wh);
		instance_release(inst);
	}
	assert_int_equal(failures, 0);
	assert_true(served_v2 > 0 && served_v2 < 400);
	assert_int_equal(plugin_find(f->reg, "good")->reload_failures, 40);
	assert_int_equal(plugin_registry_live_generations(f->reg), 1);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Empty copy directories of dead processes are removed at start; a live
 * registry whose directory vanished recreates it. */
static void test_stale_copy_dirs(void **state)
{
	struct fixture *f = *state;
	struct plugin_registry *other;
	struct hub_error err;
	char stale[PATH_MAX + 32];
	struct stat st;

	snprintf(stale, sizeof(stale), "%s/plugins.gen.dead01", f->state);
	assert_int_equal(mkdir(stale, 0700), 0);
	other = plugin_registry_new(f->dir, f->state, f->schemas, &err);
	assert_non_null(other);
	assert_int_equal(stat(stale, &st), -1);
	/* the fixture's registry lost its (empty) directory too, and copes */
	assert_int_equal(stat(plugin_registry_gen_dir(f->reg), &st), -1);
	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(plugin_load(other, "good", &err), 0);
	assert_int_equal(plugin_unload(f->reg, "good", &err), 0);
	assert_int_equal(plugin_unload(other, "good", &err), 0);
	plugin_registry_free(other);
}

static void test_load_unload_cycles(void **state)
{
	struct fixture *f = *state;
	struct hub_error err;
	json_t *cfg = good_config();
	int i, fds;
	const char *env = getenv("HUB_TEST_CYCLES");
	long cycles = env ? strtol(env, NULL, 10) : 1000;

	install(f, "good", "good");
	assert_int_equal(plugin_load(f->reg, "good", &err), 0);
	assert_int_equal(plugin_unload(f->reg, "good", &err), 0);
	fds = count_fds();
	for (i = 0; i < cycles; i++) {
		assert_int_equal(plugin_load(f->reg, "good", &err), 0);
		assert_int_equal(connector_create(f->reg, "c", "m", "good", cfg, NULL, &err), 0);
		assert_int_equal(connector_destroy(f->reg, "c", &err), 0);
		assert_int_equal(plugin_unload(f->reg, "good", &err), 0);
	}
	json_decref(cfg);
	assert_int_equal(plugin_registry_live_generations(f->reg), 0);
	assert_int_equal(count_fds(), fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_and_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connectors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_broken_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_coalesces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_webhooks_during_reloads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_copy_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_unload_cycles, setup, teardown),
	};

	log_setup(getenv("HUB_TEST_VERBOSE") ? LOG_DEBUG : (enum log_level)(LOG_ERROR + 1), LOG_TEXT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
