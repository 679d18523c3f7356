/*
 * plugin.c - loading, checking, reloading and unloading connector plugins.
 *
 * Opening a generation: resolve `<plugin_dir>/<name>.so` and refuse anything
 * that ends up outside plugin_dir; copy the file (hashing it on the way) to
 * a private 0700 directory under a name never used before; dlopen the copy
 * once with RTLD_NOW so an unresolved symbol is refused now rather than
 * crashing a callback later; open it through libltdl (which then shares that
 * handle); unlink the copy; check the descriptor. Every refusal closes what
 * was opened and explains in err->message what is wrong and how to fix it;
 * err->field names the file.
 *
 * The registry outlives its generations: if it is freed while instances are
 * still in flight, it lingers until the last generation closes, and only
 * then calls lt_dlexit and removes its directory.
 */
#include "config.h"

#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ltdl.h>
#include <openssl/evp.h>

#include "connector.h"
#include "host.h"
#include "jsonschema.h"
#include "log.h"
#include "msg.h"
#include "plugin.h"

/* Size of struct hub_plugin in ABI v1.0: a shorter descriptor is refused. */
#define PLUGIN_V1_SIZE \
	(offsetof(struct hub_plugin, read_action) + sizeof(((struct hub_plugin *)0)->read_action))

enum reload_state { RELOAD_IDLE = 0, RELOAD_PENDING, RELOAD_RUNNING };

struct reload_waiter {
	plugin_done_fn fn;
	void *arg;
	struct reload_waiter *next;
};

/* A deferred reload run; it finds its plugin again by name when it runs. */
struct reload_ticket {
	struct plugin_registry *reg; /* NULL once the registry is gone */
	char name[PLUGIN_NAME_MAX + 1];
	struct reload_ticket *prev, *next;
};

struct conn_entry {
	struct connector *c;
	struct conn_entry *next;
};

struct plugin_registry {
	char *dir;                 /* realpath of plugin_dir */
	char *gen_dir;             /* private directory of generation copies */
	const struct js_registry *schemas;
	struct plugin *plugins;
	struct conn_entry **index; /* connectors by name */
	size_t nindex, nconns;
	uint64_t copy_seq;
	unsigned live_gens;
	int freeing;               /* plugin_registry_free called */
	plugin_defer_fn defer;
	void *defer_ctx;
	struct reload_ticket *tickets;
};

/* ---- errors ------------------------------------------------------------ */

static void seterr(struct hub_error *err, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(struct hub_error *err, const char *field, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	memset(err, 0, sizeof(*err));
	snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
}

/* ---- names ------------------------------------------------------------- */

int plugin_name_valid(const char *name)
{
	size_t n = 0;

	if (!name || !*name)
		return 0;
	for (; name[n]; n++) {
		char ch = name[n];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
			return 0;
		if (n >= PLUGIN_NAME_MAX)
			return 0;
	}
	return 1;
}

/* ---- registry ---------------------------------------------------------- */

/*
 * Removes empty "plugins.gen.*" directories left in `base` by processes that
 * died. rmdir only removes empty directories, and a live registry recreates
 * its own directory when it finds it gone (gen_open), so this is safe even
 * when another hubd shares the state directory.
 */
static void remove_stale_dirs(const char *base)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(base);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "plugins.gen.", 12) == 0) {
			int n = snprintf(path, sizeof(path), "%s/%s", base, de->d_name);

			if (n > 0 && (size_t)n < sizeof(path))
				rmdir(path);
		}
	closedir(d);
}

struct plugin_registry *plugin_registry_new(const char *plugin_dir, const char *state_dir,
					    const struct js_registry *schemas,
					    struct hub_error *err)
{
	struct plugin_registry *reg = NULL;
	char tmpl[PATH_MAX];
	const char *base = state_dir;
	struct stat st;
	int n;

	if (!plugin_dir) {
		seterr(err, "plugin_dir", "no plugin directory given");
		return NULL;
	}
	reg = calloc(1, sizeof(*reg));
	if (!reg)
		goto oom;
	reg->schemas = schemas;
	reg->dir = realpath(plugin_dir, NULL);
	if (!reg->dir || stat(reg->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		seterr(err, plugin_dir, "plugin directory %s: %s; create it or fix plugin_dir",
		       plugin_dir, reg->dir ? "not a directory" : strerror(errno));
		goto fail;
	}
	if (!base)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	n = snprintf(tmpl, sizeof(tmpl), "%s/plugins.gen.XXXXXX", base);
	if (n < 0 || (size_t)n >= sizeof(tmpl)) {
		seterr(err, base, "state directory path too long");
		goto fail;
	}
	remove_stale_dirs(base);
	if (!mkdtemp(tmpl)) {
		seterr(err, base, "cannot create a private directory for plugin copies in %s: %s",
		       base, strerror(errno));
		goto fail;
	}
	reg->gen_dir = strdup(tmpl);
	if (!reg->gen_dir) {
		rmdir(tmpl);
		goto oom;
	}
	reg->nindex = 64;
	reg->index = calloc(reg->nindex, sizeof(*reg->index));
	if (!reg->index)
		goto oom;
	if (lt_dlinit() != 0) {
		seterr(err, "libltdl", "lt_dlinit failed: %s", lt_dlerror());
		goto fail;
	}
	return reg;
oom:
	seterr(err, NULL, "out of memory");
fail:
	if (reg) {
		if (reg->gen_dir)
			rmdir(reg->gen_dir);
		free(reg->gen_dir);
		free(reg->index);
		free(reg->dir);
		free(reg);
	}
	return NULL;
}

/* Frees the registry once nothing refers to it any more. */
static void registry_finish(struct plugin_registry *reg)
{
	struct reload_ticket *t;

	if (!reg->freeing || reg->live_gens)
		return;
	for (t = reg->tickets; t; t = t->next)
		t->reg = NULL;
	lt_dlexit();
	rmdir(reg->gen_dir);
	free(reg->gen_dir);
	free(reg->index);
	free(reg->dir);
	free(reg);
}

static void plugin_free(struct plugin *p);

void plugin_registry_free(struct plugin_registry *reg)
{
	size_t i;

	if (!reg || reg->freeing)
		return;
	/* connectors first: they hold instances of the generations */
	for (i = 0; i < reg->nindex; i++) {
		while (reg->index[i]) {
			struct connector *c = reg->index[i]->c;

			connector_teardown(c);
		}
	}
	while (reg->plugins) {
		struct plugin *p = reg->plugins;

		reg->plugins = p->next;
		plugin_free(p);
	}
	if (reg->live_gens)
		log_warn("plugin", "registry freed with %u generations still in use: "
			 "closing them when released", reg->live_gens);
	reg->freeing = 1;
	registry_finish(reg);
}

void plugin_registry_set_defer(struct plugin_registry *reg, plugin_defer_fn defer, void *ctx)
{
	reg->defer = defer;
	reg->defer_ctx = ctx;
}

const struct js_registry *plugin_registry_schemas(const struct plugin_registry *reg)
{
	return reg->schemas;
}

const char *plugin_registry_dir(const struct plugin_registry *reg)
{
	return reg->dir;
}

const char *plugin_registry_gen_dir(const struct plugin_registry *reg)
{
	return reg->gen_dir;
}

unsigned plugin_registry_live_generations(const struct plugin_registry *reg)
{
	return reg->live_gens;
}

/* ---- connector index --------------------------------------------------- */

static size_t hash_name(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)(h % n);
}

static int index_grow(struct plugin_registry *reg)
{
	size_t n = reg->nindex * 2, i;
	struct conn_entry **idx = calloc(n, sizeof(*idx));

	if (!idx)
		return -1;
	for (i = 0; i < reg->nindex; i++) {
		struct conn_entry *e = reg->index[i], *next;

		for (; e; e = next) {
			size_t h = hash_name(e->c->name, n);

			next = e->next;
			e->next = idx[h];
			idx[h] = e;
		}
	}
	free(reg->index);
	reg->index = idx;
	reg->nindex = n;
	return 0;
}

struct connector *plugin_registry_connector(struct plugin_registry *reg, const char *name)
{
	struct conn_entry *e;

	if (!name)
		return NULL;
	for (e = reg->index[hash_name(name, reg->nindex)]; e; e = e->next)
		if (strcmp(e->c->name, name) == 0)
			return e->c;
	return NULL;
}

void plugin_registry_foreach_connector(struct plugin_registry *reg,
				       void (*fn)(struct connector *c, void *arg), void *arg)
{
	size_t i;
	struct conn_entry *e;

	for (i = 0; i < reg->nindex; i++)
		for (e = reg->index[i]; e; e = e->next)
			fn(e->c, arg);
}

int plugin_attach_connector(struct plugin *p, struct connector *c, struct hub_error *err)
{
	struct plugin_registry *reg = c->reg;
	struct conn_entry *e;
	size_t h;

	if (plugin_registry_connector(reg, c->name)) {
		seterr(err, "name", "connector %s already exists: pick another name or update it",
		       c->name);
		return -1;
	}
	if (reg->nconns + 1 > reg->nindex && index_grow(reg) < 0)
		goto oom;
	if (p->nconns == p->cap_conns) {
		size_t ncap = p->cap_conns ? p->cap_conns * 2 : 8;
		struct connector **v = realloc(p->conns, ncap * sizeof(*v));

		if (!v)
			goto oom;
		p->conns = v;
		p->cap_conns = ncap;
	}
	e = malloc(sizeof(*e));
	if (!e)
		goto oom;
	h = hash_name(c->name, reg->nindex);
	e->c = c;
	e->next = reg->index[h];
	reg->index[h] = e;
	reg->nconns++;
	p->conns[p->nconns++] = c;
	return 0;
oom:
	seterr(err, NULL, "out of memory");
	return -1;
}

void plugin_detach_connector(struct plugin *p, struct connector *c)
{
	struct plugin_registry *reg = c->reg;
	struct conn_entry **pe, *e;
	size_t i;

	for (pe = &reg->index[hash_name(c->name, reg->nindex)]; (e = *pe); pe = &e->next)
		if (e->c == c) {
			*pe = e->next;
			free(e);
			reg->nconns--;
			break;
		}
	for (i = 0; i < p->nconns; i++)
		if (p->conns[i] == c) {
			p->conns[i] = p->conns[--p->nconns];
			break;
		}
}

/* ---- generations ------------------------------------------------------- */

void plugin_gen_acquire(struct plugin_gen *gen)
{
	gen->refs++;
}

static void gen_free(struct plugin_gen *gen)
{
	struct plugin_registry *reg = gen->reg;
	size_t i;

	if (gen->handle && lt_dlclose((lt_dlhandle)gen->handle) != 0)
		log_warn("plugin", "%s generation %llu: lt_dlclose: %s", gen->name,
			 (unsigned long long)gen->id, lt_dlerror());
	json_decref(gen->config_schema);
	for (i = 0; i < gen->nsecret_fields; i++)
		free(gen->secret_fields[i]);
	free(gen->secret_fields);
	free(gen->name);
	free(gen);
	if (reg) {
		reg->live_gens--;
		registry_finish(reg);
	}
}

void plugin_gen_release(struct plugin_gen *gen)
{
	if (!gen)
		return;
	if (--gen->refs == 0) {
		log_debug("plugin", "%s generation %llu closed", gen->name,
			  (unsigned long long)gen->id);
		gen_free(gen);
	}
}

const struct hub_stream_def *plugin_gen_stream(const struct plugin_gen *gen, const char *stream)
{
	const struct hub_stream_def *s;

	if (!stream || !gen->desc.streams)
		return NULL;
	for (s = gen->desc.streams; s->name; s++)
		if (strcmp(s->name, stream) == 0)
			return s;
	return NULL;
}

uint32_t plugin_gen_kinds(const struct plugin_gen *gen)
{
	const struct hub_stream_def *s;
	uint32_t kinds = 0;

	if (gen->desc.capabilities & HUB_CAP_ORDERS)
		kinds |= CALL_KIND_BIT(HUB_RECORD_ORDER);
	if (gen->desc.capabilities & (HUB_CAP_SHIPMENTS | HUB_CAP_FULFILLMENT_PUSH))
		kinds |= CALL_KIND_BIT(HUB_RECORD_SHIPMENT);
	if (gen->desc.capabilities & HUB_CAP_TRACKING)
		kinds |= CALL_KIND_BIT(HUB_RECORD_TRACKING);
	for (s = gen->desc.streams; s && s->name; s++)
		kinds |= s->record_kinds;
	return kinds;
}

int plugin_gen_is_secret(const struct plugin_gen *gen, const char *field)
{
	size_t i;

	for (i = 0; field && i < gen->nsecret_fields; i++)
		if (strcmp(gen->secret_fields[i], field) == 0)
			return 1;
	return 0;
}

/*
 * Copies `src` to a new file `dst` (O_EXCL, mode 0700), hashing it into
 * hex. 0 or -1 with err.
 */
static int copy_file(const char *src, const char *dst, char hex[65], struct hub_error *err)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = NULL;
	int in = -1, out = -1, rc = -1;
	struct stat st;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0 || fstat(in, &st) < 0) {
		seterr(err, src, "%s: cannot open: %s", src, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, src, "%s: not a regular file: install the plugin as a plain file", src);
		goto out;
	}
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0700);
	if (out < 0) {
		seterr(err, src, "%s: cannot create the private copy %s: %s", src, dst,
		       strerror(errno));
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		seterr(err, src, "%s: cannot hash: out of memory", src);
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		unsigned char *p = buf;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			seterr(err, src, "%s: read failed: %s", src, strerror(errno));
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		while (n > 0) {
			ssize_t w = write(out, p, (size_t)n);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				seterr(err, src, "%s: writing the private copy %s failed: %s", src,
				       dst, strerror(errno));
				goto out;
			}
			p += w;
			n -= w;
		}
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (i = 0; i < mdlen && i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * i] = '\0';
	rc = 0;
out:
	EVP_MD_CTX_free(ctx);
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && rc == 0) {
		seterr(err, src, "%s: writing the private copy failed: %s", src, strerror(errno));
		rc = -1;
	}
	if (rc < 0 && out >= 0)
		unlink(dst);
	return rc;
}

/* Resolves <dir>/<name>.so into *real (malloc'd), refusing anything that
 * resolves outside the plugin directory. `path` receives the unresolved
 * path for messages. 0 or -1 with err. */
static int resolve(struct plugin_registry *reg, const char *name, char *path, size_t size,
		   char **real, struct hub_error *err)
{
	size_t dlen = strlen(reg->dir);
	struct stat st;
	int n;

	*real = NULL;
	if (!plugin_name_valid(name)) {
		seterr(err, name ? name : "",
		       "invalid plugin name \"%s\": use 1 to %d lower-case letters, digits or '_'; "
		       "the plugin is loaded from <plugin_dir>/<name>.so",
		       name ? name : "(null)", PLUGIN_NAME_MAX);
		return -1;
	}
	n = snprintf(path, size, "%s/%s.so", reg->dir, name);
	if (n < 0 || (size_t)n >= size) {
		seterr(err, name, "plugin path too long");
		return -1;
	}
	if (lstat(path, &st) < 0) {
		seterr(err, path, "%s: %s; install %s.so in the plugin directory %s", path,
		       strerror(errno), name, reg->dir);
		return -1;
	}
	*real = realpath(path, NULL);
	if (!*real) {
		seterr(err, path, "%s: %s (a dangling symbolic link?); install %s.so in %s", path,
		       strerror(errno), name, reg->dir);
		return -1;
	}
	if (strncmp(*real, reg->dir, dlen) != 0 || (*real)[dlen] != '/') {
		seterr(err, path, "%s resolves to %s, outside the plugin directory %s: copy the "
		       "plugin into the plugin directory instead of linking to it", path, *real,
		       reg->dir);
		goto fail;
	}
	if (stat(*real, &st) < 0 || !S_ISREG(st.st_mode)) {
		seterr(err, path, "%s: not a regular file: install the plugin as a plain file",
		       path);
		goto fail;
	}
	return 0;
fail:
	free(*real);
	*real = NULL;
	return -1;
}

/* Collects top-level properties marked "x-secret": true. 0 or -1. */
static int collect_secrets(struct plugin_gen *gen, const char *path, struct hub_error *err)
{
	json_t *props = json_object_get(gen->config_schema, "properties"), *def, *flag;
	const char *key;

	if (!props)
		return 0;
	gen->secret_fields = calloc(json_object_size(props) + 1, sizeof(char *));
	if (!gen->secret_fields) {
		seterr(err, path, "out of memory");
		return -1;
	}
	json_object_foreach(props, key, def) {
		flag = json_object_get(def, "x-secret");
		if (!flag)
			continue;
		if (!json_is_boolean(flag)) {
			seterr(err, path, "%s: config_schema property \"%s\" has a non-boolean "
			       "\"x-secret\": write \"x-secret\": true", path, key);
			return -1;
		}
		if (!json_is_true(flag))
			continue;
		gen->secret_fields[gen->nsecret_fields] = strdup(key);
		if (!gen->secret_fields[gen->nsecret_fields]) {
			seterr(err, path, "out of memory");
			return -1;
		}
		gen->nsecret_fields++;
	}
	return 0;
}

/* Checks the descriptor copy in gen->desc. 0 or -1 with err. */
static int check_desc(struct plugin_gen *gen, const char *path, const char *name,
		      struct hub_error *err)
{
	const struct hub_plugin *d = &gen->desc;
	const struct hub_stream_def *s;
	const struct hub_bucket_def *b;
	uint32_t caps = d->capabilities, known;
	json_error_t jerr;
	struct hub_error serr;

	if (!d->name) {
		seterr(err, path, "%s: the descriptor has no name: set .name = \"%s\"", path, name);
		return -1;
	}
	if (strcmp(d->name, name) != 0) {
		seterr(err, path, "%s: the descriptor's name \"%.64s\" differs from the file "
		       "name: rename the file to %.64s.so or set .name = \"%s\"", path, d->name,
		       d->name, name);
		return -1;
	}
	if (!d->version || !*d->version) {
		seterr(err, path, "%s: the descriptor has no version: set .version (e.g. "
		       "\"1.0.0\")", path);
		return -1;
	}
	if (!d->create || !d->destroy) {
		seterr(err, path, "%s: missing callback %s: every plugin needs create and "
		       "destroy", path, d->create ? "destroy" : "create");
		return -1;
	}
	known = HUB_CAP_ORDERS | HUB_CAP_SHIPMENTS | HUB_CAP_TRACKING | HUB_CAP_WEBHOOKS |
		HUB_CAP_FULFILLMENT_PUSH | HUB_CAP_TOKEN_REFRESH | HUB_CAP_WEBHOOKS_REENTRANT |
		HUB_CAP_WEBHOOKS_SCOPED;
	if (caps & ~known)
		log_warn("plugin", "%s: unknown capability bits 0x%x ignored (this host speaks "
			 "ABI %u)", path, caps & ~known, HUB_ABI_VERSION);

#define NEED(cap, cb, capname)                                                              \
	do {                                                                                 \
		if ((caps & (cap)) && !d->cb) {                                              \
			seterr(err, path, "%s: declares capability %s but its callback " #cb \
			       " is NULL: implement " #cb " or drop " #cap " from "           \
			       ".capabilities", path, capname);                              \
			return -1;                                                           \
		}                                                                            \
	} while (0)
	NEED(HUB_CAP_ORDERS, build_request, "HUB_CAP_ORDERS");
	NEED(HUB_CAP_ORDERS, read_response, "HUB_CAP_ORDERS");
	NEED(HUB_CAP_SHIPMENTS, build_request, "HUB_CAP_SHIPMENTS");
	NEED(HUB_CAP_SHIPMENTS, read_response, "HUB_CAP_SHIPMENTS");
	NEED(HUB_CAP_TRACKING, build_request, "HUB_CAP_TRACKING");
	NEED(HUB_CAP_TRACKING, read_response, "HUB_CAP_TRACKING");
	NEED(HUB_CAP_WEBHOOKS, verify_webhook, "HUB_CAP_WEBHOOKS");
	NEED(HUB_CAP_WEBHOOKS, read_webhook, "HUB_CAP_WEBHOOKS");
	NEED(HUB_CAP_FULFILLMENT_PUSH, build_action, "HUB_CAP_FULFILLMENT_PUSH");
	NEED(HUB_CAP_FULFILLMENT_PUSH, read_action, "HUB_CAP_FULFILLMENT_PUSH");
	NEED(HUB_CAP_TOKEN_REFRESH, build_action, "HUB_CAP_TOKEN_REFRESH");
	NEED(HUB_CAP_TOKEN_REFRESH, read_action, "HUB_CAP_TOKEN_REFRESH");
#undef NEED

	for (b = d->buckets; b && b->name; b++) {
		if (!plugin_name_valid(b->name) && !strchr(b->name, '.')) {
			/* operation names may be camelCase ("searchOrders") */
			const char *c;

			for (c = b->name; *c; c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				      (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
					break;
			if (*c || c == b->name) {
				seterr(err, path, "%s: bucket name \"%.64s\" is not a word: use "
				       "letters, digits, '_' or '-'", path, b->name);
				return -1;
			}
		}
		if (!(b->burst >= 1) || !(b->rate > 0)) {
			seterr(err, path, "%s: bucket \"%.64s\" needs burst >= 1 and rate > 0 "
			       "(got burst %g, rate %g)", path, b->name, b->burst, b->rate);
			return -1;
		}
	}
	if ((caps & (HUB_CAP_ORDERS | HUB_CAP_SHIPMENTS | HUB_CAP_TRACKING)) &&
	    (!d->streams || !d->streams->name)) {
		seterr(err, path, "%s: declares a stream capability but .streams is empty: "
		       "list its streams (NULL-name terminated)", path);
		return -1;
	}
	for (s = d->streams; s && s->name; s++) {
		if (!plugin_name_valid(s->name)) {
			seterr(err, path, "%s: stream name \"%.64s\" is invalid: use lower-case "
			       "letters, digits and '_'", path, s->name);
			return -1;
		}
		if (s->operation) {
			for (b = d->buckets; b && b->name; b++)
				if (strcmp(b->name, s->operation) == 0)
					break;
			if (!b || !b->name) {
				seterr(err, path, "%s: stream \"%s\" uses operation \"%.64s\" which "
				       "is not in .buckets: declare that bucket", path, s->name,
				       s->operation);
				return -1;
			}
		}
	}
	if ((caps & HUB_CAP_TRACKING) && !plugin_gen_stream(gen, "tracking")) {
		seterr(err, path, "%s: declares HUB_CAP_TRACKING but has no stream named "
		       "\"tracking\": add it to .streams", path);
		return -1;
	}

	if (!d->config_schema) {
		seterr(err, path, "%s: config_schema is NULL: describe the connector config as "
		       "a JSON Schema (at least {\"type\":\"object\"})", path);
		return -1;
	}
	gen->config_schema = json_loads(d->config_schema, JSON_REJECT_DUPLICATES, &jerr);
	if (!gen->config_schema) {
		seterr(err, path, "%s: invalid config schema: not JSON (line %d, column %d: %s): "
		       "fix the config_schema string", path, jerr.line, jerr.column, jerr.text);
		return -1;
	}
	memset(&serr, 0, sizeof(serr));
	if (js_check_schema(gen->config_schema, &serr) < 0) {
		seterr(err, path, "%s: invalid config schema at %s: %s", path,
		       serr.field[0] ? serr.field : "(root)", serr.message);
		return -1;
	}
	if (!json_is_object(gen->config_schema) ||
	    !json_is_string(json_object_get(gen->config_schema, "type")) ||
	    strcmp(json_string_value(json_object_get(gen->config_schema, "type")), "object")) {
		seterr(err, path, "%s: invalid config schema: its root must be {\"type\": "
		       "\"object\", ...}: a connector config is a JSON object", path);
		return -1;
	}
	return collect_secrets(gen, path, err);
}

/*
 * Opens a new generation of plugin `name`, numbered `id`. Returns it with one
 * reference, or NULL with err.
 */
static struct plugin_gen *gen_open(struct plugin_registry *reg, const char *name, uint64_t id,
				   struct hub_error *err)
{
	char path[PATH_MAX], copy[PATH_MAX];
	struct plugin_gen *gen = NULL;
	char *real = NULL;
	void *raw = NULL, *sym;
	lt_dladvise advise;
	const struct hub_plugin *d;
	const ElfW(Sym) *esym = NULL;
	Dl_info info;
	size_t symsize, take;
	int n, copied = 0;

	if (resolve(reg, name, path, sizeof(path), &real, err) < 0)
		return NULL;
	gen = calloc(1, sizeof(*gen));
	if (!gen || !(gen->name = strdup(name))) {
		seterr(err, path, "out of memory");
		goto fail;
	}
	gen->refs = 1;
	gen->id = id;
	gen->reg = reg;
	reg->live_gens++;

	n = snprintf(copy, sizeof(copy), "%s/%s.%llu.so", reg->gen_dir, name,
		     (unsigned long long)++reg->copy_seq);
	if (n < 0 || (size_t)n >= sizeof(copy)) {
		seterr(err, path, "%s: private copy path too long", path);
		goto fail;
	}
	/* the private directory may have been removed as stale: recreate it */
	if (mkdir(reg->gen_dir, 0700) < 0 && errno != EEXIST) {
		seterr(err, path, "%s: cannot create %s: %s", path, reg->gen_dir, strerror(errno));
		goto fail;
	}
	if (copy_file(real, copy, gen->sha256, err) < 0)
		goto fail;
	copied = 1;

	/* RTLD_NOW first: refuse unresolved symbols now, not mid-callback. */
	raw = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
	if (!raw) {
		const char *why = dlerror();
		size_t clen = strlen(copy);

		/* dlerror names the private copy: say it about the real file */
		if (why && strncmp(why, copy, clen) == 0 && why[clen] == ':')
			why += clen + 1 + (why[clen + 1] == ' ');
		seterr(err, path, "%s: cannot be loaded: %s; %s", path, why ? why : "?",
		       why && strstr(why, "undefined symbol") ?
			       "link it with -no-undefined against libraries installed here" :
			       "it must be a shared object built for this platform");
		goto fail;
	}
	if (lt_dladvise_init(&advise) != 0) {
		seterr(err, path, "%s: lt_dladvise_init: %s", path, lt_dlerror());
		goto fail;
	}
	lt_dladvise_local(&advise);
	gen->handle = lt_dlopenadvise(copy, advise);
	lt_dladvise_destroy(&advise);
	dlclose(raw);
	raw = NULL;
	unlink(copy);
	copied = 0;
	if (!gen->handle) {
		seterr(err, path, "%s: cannot be loaded: %s", path, lt_dlerror());
		goto fail;
	}

	sym = lt_dlsym((lt_dlhandle)gen->handle, HUB_PLUGIN_SYMBOL);
	if (!sym) {
		seterr(err, path, "%s: missing symbol %s: export `HUB_PLUGIN_EXPORT const struct "
		       "hub_plugin %s` built against hub/plugin.h (ABI %u)", path,
		       HUB_PLUGIN_SYMBOL, HUB_PLUGIN_SYMBOL, HUB_ABI_VERSION);
		goto fail;
	}
	/* Never read past the symbol: its ELF size bounds what we may copy. */
	if (!dladdr1(sym, &info, (void **)&esym, RTLD_DL_SYMENT) || !esym) {
		seterr(err, path, "%s: %s has no symbol table entry", path, HUB_PLUGIN_SYMBOL);
		goto fail;
	}
	if (ELF64_ST_TYPE(esym->st_info) != STT_OBJECT) {
		seterr(err, path, "%s: %s is not a data object: define it as `const struct "
		       "hub_plugin %s = {...}`", path, HUB_PLUGIN_SYMBOL, HUB_PLUGIN_SYMBOL);
		goto fail;
	}
	symsize = esym->st_size;
	if (symsize < 2 * sizeof(uint32_t)) {
		seterr(err, path, "%s: %s is %zu bytes, too small for a descriptor", path,
		       HUB_PLUGIN_SYMBOL, symsize);
		goto fail;
	}
	d = sym;
	if (d->abi_version != HUB_ABI_VERSION) {
		seterr(err, path, "%s: wrong ABI major: the plugin was built for ABI %u, this host "
		       "speaks ABI %u: rebuild it against hub/plugin.h of ABI %u", path,
		       d->abi_version, HUB_ABI_VERSION, HUB_ABI_VERSION);
		goto fail;
	}
	if (d->struct_size < PLUGIN_V1_SIZE) {
		seterr(err, path, "%s: descriptor too short: struct_size is %u bytes, ABI %u needs "
		       "at least %zu: set .struct_size = sizeof(struct hub_plugin) and rebuild",
		       path, d->struct_size, HUB_ABI_VERSION, (size_t)PLUGIN_V1_SIZE);
		goto fail;
	}
	if (d->struct_size > symsize) {
		seterr(err, path, "%s: struct_size says %u bytes but %s is only %zu: set "
		       ".struct_size = sizeof(struct hub_plugin)", path, d->struct_size,
		       HUB_PLUGIN_SYMBOL, symsize);
		goto fail;
	}
	/* Known prefix only; a newer plugin's extra fields are ignored. */
	take = d->struct_size < sizeof(gen->desc) ? d->struct_size : sizeof(gen->desc);
	memcpy(&gen->desc, d, take);
	if (check_desc(gen, path, name, err) < 0)
		goto fail;
	gen->loaded_at = time(NULL);
	free(real);
	return gen;
fail:
	if (raw)
		dlclose(raw);
	if (copied)
		unlink(copy);
	free(real);
	if (gen) {
		gen->refs = 0;
		gen_free(gen);
	}
	return NULL;
}

/* ---- plugins ----------------------------------------------------------- */

struct plugin *plugin_find(struct plugin_registry *reg, const char *name)
{
	struct plugin *p;

	if (!name)
		return NULL;
	for (p = reg->plugins; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static void notify_waiters(struct reload_waiter *w, int rc, const struct hub_error *err)
{
	struct reload_waiter *next;

	for (; w; w = next) {
		next = w->next;
		if (w->fn)
			w->fn(w->arg, rc, rc ? err : NULL);
		free(w);
	}
}

static void plugin_free(struct plugin *p)
{
	struct hub_error err;
	struct reload_waiter *w = p->waiters;

	p->waiters = NULL;
	seterr(&err, p->name, "plugin %s was unloaded before its reload ran", p->name);
	notify_waiters(w, -1, &err);
	plugin_gen_release(p->cur);
	free(p->conns);
	free(p->name);
	free(p);
}

int plugin_load(struct plugin_registry *reg, const char *name, struct hub_error *err)
{
	struct plugin *p;
	struct plugin_gen *gen;

	if ((p = plugin_find(reg, name))) {
		seterr(err, name, "plugin %s is already loaded (generation %llu): use reload to "
		       "replace it", name, (unsigned long long)p->cur->id);
		return -1;
	}
	gen = gen_open(reg, name, 1, err);
	if (!gen) {
		log_warn("plugin", "refused: %s", err ? err->message : name);
		return -1;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->name = strdup(name))) {
		free(p);
		plugin_gen_release(gen);
		seterr(err, name, "out of memory");
		return -1;
	}
	p->cur = gen;
	p->next_gen = 2;
	p->next = reg->plugins;
	reg->plugins = p;
	log_info("plugin", "loaded %s %s (generation 1, sha256 %.12s)", name, gen->desc.version,
		 gen->sha256);
	return 0;
}

int plugin_load_all(struct plugin_registry *reg)
{
	struct hub_error err;
	struct dirent *de;
	int refused = 0;
	DIR *dir;

	dir = opendir(reg->dir);
	if (!dir) {
		log_error("plugin", "cannot list %s: %s", reg->dir, strerror(errno));
		return 1;
	}
	while ((de = readdir(dir))) {
		char name[PLUGIN_NAME_MAX + 1];
		size_t len = strlen(de->d_name);

		if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0 ||
		    len - 3 > PLUGIN_NAME_MAX)
			continue;
		memcpy(name, de->d_name, len - 3);
		name[len - 3] = '\0';
		if (!plugin_name_valid(name) || plugin_find(reg, name))
			continue;
		if (plugin_load(reg, name, &err) < 0)
			refused++;
	}
	closedir(dir);
	return refused;
}

/* One reload of p: new generation, new instances, swap. 0 or -1 with err. */
static int reload_once(struct plugin_registry *reg, struct plugin *p, struct hub_error *err)
{
	struct conn_instance **insts = NULL;
	struct plugin_gen *gen, *old;
	size_t i, made = 0, n = p->nconns;
	int rc = -1;

	gen = gen_open(reg, p->name, p->next_gen++, err);
	if (!gen)
		goto out;
	if (n && !(insts = calloc(n, sizeof(*insts)))) {
		seterr(err, p->name, "out of memory");
		goto out;
	}
	for (made = 0; made < n; made++)
		if (connector_instance_new(p->conns[made], gen, NULL, &insts[made], err) < 0)
			goto out;
	/* Point of no return: every connector swaps between two steps. */
	for (i = 0; i < n; i++) {
		connector_swap(p->conns[i], insts[i]);
		insts[i] = NULL;
	}
	old = p->cur;
	p->cur = gen;
	gen = NULL;
	plugin_gen_release(old);
	rc = 0;
out:
	for (i = 0; insts && i < made; i++)
		instance_release(insts[i]);
	free(insts);
	plugin_gen_release(gen);
	return rc;
}

static void schedule_run(struct plugin_registry *reg, struct plugin *p);

/* Runs a reload of p serving the waiters queued so far; returns its result.
 * p may be freed by a waiter's callback when this returns. */
static int reload_run(struct plugin_registry *reg, struct plugin *p, struct hub_error *err)
{
	struct reload_waiter *w = p->waiters;
	char name[PLUGIN_NAME_MAX + 1];
	struct hub_error e;
	int rc;

	snprintf(name, sizeof(name), "%s", p->name);
	p->waiters = NULL;
	p->reload_state = RELOAD_RUNNING;
	p->reload_again = 0;
	memset(&e, 0, sizeof(e));
	rc = reload_once(reg, p, &e);
	p->reloads++;
	p->last_reload_rc = rc;
	p->last_reload_error = e;
	if (rc < 0) {
		p->reload_failures++;
		log_error("plugin", "reload of %s failed, generation %llu keeps serving: %s", name,
			  (unsigned long long)p->cur->id, e.message);
	} else {
		log_info("plugin", "reloaded %s: generation %llu (%s, sha256 %.12s), %zu "
			 "connectors swapped", name, (unsigned long long)p->cur->id,
			 p->cur->desc.version, p->cur->sha256, p->nconns);
	}
	notify_waiters(w, rc, &e);
	/* a callback may have unloaded the plugin or asked again */
	p = plugin_find(reg, name);
	if (p) {
		if (p->reload_again || p->waiters) {
			p->reload_state = RELOAD_PENDING;
			schedule_run(reg, p);
		} else {
			p->reload_state = RELOAD_IDLE;
		}
	}
	if (err)
		*err = e;
	return rc;
}

static void ticket_run(void *arg)
{
	struct reload_ticket *t = arg;
	struct plugin_registry *reg = t->reg;
	struct plugin *p;

	if (reg) {
		if (t->prev)
			t->prev->next = t->next;
		else
			reg->tickets = t->next;
		if (t->next)
			t->next->prev = t->prev;
		p = plugin_find(reg, t->name);
		if (p && p->reload_state == RELOAD_PENDING)
			reload_run(reg, p, NULL);
	}
	free(t);
}

static void schedule_run(struct plugin_registry *reg, struct plugin *p)
{
	struct reload_ticket *t;

	if (reg->defer && (t = calloc(1, sizeof(*t)))) {
		t->reg = reg;
		snprintf(t->name, sizeof(t->name), "%s", p->name);
		t->next = reg->tickets;
		if (t->next)
			t->next->prev = t;
		reg->tickets = t;
		if (reg->defer(reg->defer_ctx, ticket_run, t) == 0)
			return;
		reg->tickets = t->next;
		if (t->next)
			t->next->prev = NULL;
		free(t);
	}
	reload_run(reg, p, NULL);
}

int plugin_reload(struct plugin_registry *reg, const char *name, struct hub_error *err)
{
	struct plugin *p = plugin_find(reg, name);

	if (!p) {
		seterr(err, name ? name : "", "plugin %s is not loaded: load it first",
		       name ? name : "(null)");
		return -1;
	}
	if (p->reload_state == RELOAD_RUNNING) {
		p->reload_again = 1;
		return 0;
	}
	return reload_run(reg, p, err);
}

int plugin_reload_request(struct plugin_registry *reg, const char *name, plugin_done_fn done,
			  void *arg, struct hub_error *err)
{
	struct plugin *p = plugin_find(reg, name);
	struct reload_waiter *w, **tail;

	if (!p) {
		seterr(err, name ? name : "", "plugin %s is not loaded: load it first",
		       name ? name : "(null)");
		return -1;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		seterr(err, name, "out of memory");
		return -1;
	}
	w->fn = done;
	w->arg = arg;
	for (tail = &p->waiters; *tail; tail = &(*tail)->next)
		;
	*tail = w;
	switch (p->reload_state) {
	case RELOAD_IDLE:
		p->reload_state = RELOAD_PENDING;
		schedule_run(reg, p);
		break;
	case RELOAD_PENDING:
		break; /* coalesced with the run already scheduled */
	default:
		p->reload_again = 1; /* one more run after this one */
		break;
	}
	return 0;
}

int plugin_unload(struct plugin_registry *reg, const char *name, struct hub_error *err)
{
	struct plugin **pp, *p;
	char names[200];
	size_t i, off = 0;

	for (pp = &reg->plugins; (p = *pp); pp = &p->next)
		if (strcmp(p->name, name ? name : "") == 0)
			break;
	if (!p) {
		seterr(err, name ? name : "", "plugin %s is not loaded", name ? name : "(null)");
		return -1;
	}
	if (p->nconns) {
		names[0] = '\0';
		for (i = 0; i < p->nconns && off < sizeof(names) - 1; i++) {
			int n = snprintf(names + off, sizeof(names) - off, "%s%s", i ? ", " : "",
					 p->conns[i]->name);

			if (n < 0)
				break;
			off += (size_t)n;
		}
		seterr(err, name, "plugin %s is in use by %zu connector%s (%s): destroy them "
		       "first", name, p->nconns, p->nconns == 1 ? "" : "s", names);
		return -1;
	}
	if (p->reload_state == RELOAD_RUNNING) {
		seterr(err, name, "plugin %s is being reloaded: retry when the reload is done",
		       name);
		return -1;
	}
	*pp = p->next;
	log_info("plugin", "unloaded %s (generation %llu)", name,
		 (unsigned long long)p->cur->id);
	plugin_free(p);
	return 0;
}

json_t *plugin_to_json(const struct plugin *p)
{
	const struct plugin_gen *g = p->cur;
	const struct hub_stream_def *s;
	const struct hub_bucket_def *b;
	json_t *out, *streams, *buckets, *secrets;
	char when[32];
	struct tm tm;
	size_t i;

	streams = json_array();
	for (s = g->desc.streams; streams && s && s->name; s++) {
		json_t *kinds = json_array();
		unsigned k;

		for (k = HUB_RECORD_ORDER; k <= HUB_RECORD_TRACKING; k++)
			if (s->record_kinds & CALL_KIND_BIT(k))
				json_array_append_new(kinds, json_string(call_kind_name(k)));
		json_array_append_new(streams, json_pack("{s:s,s:o,s:i,s:s?}", "name", s->name,
							 "records", kinds, "default_interval_s",
							 (int)s->default_interval_s, "operation",
							 s->operation));
	}
	buckets = json_array();
	for (b = g->desc.buckets; buckets && b && b->name; b++)
		json_array_append_new(buckets, json_pack("{s:s,s:f,s:f}", "name", b->name, "burst",
							 b->burst, "rate", b->rate));
	secrets = json_array();
	for (i = 0; secrets && i < g->nsecret_fields; i++)
		json_array_append_new(secrets, json_string(g->secret_fields[i]));
	gmtime_r(&g->loaded_at, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	out = json_pack("{s:s,s:s,s:s?,s:I,s:o,s:o,s:o,s:o,s:O,s:i,s:I,s:s,s:s,s:i,s:i}",
			"name", p->name, "version", g->desc.version, "description",
			g->desc.description, "generation", (json_int_t)g->id, "capabilities",
			host_capabilities_json(g->desc.capabilities), "streams", streams,
			"buckets", buckets, "secret_fields", secrets, "config_schema",
			g->config_schema, "tracking_batch_max", (int)g->desc.tracking_batch_max,
			"connectors", (json_int_t)p->nconns, "sha256", g->sha256, "loaded_at",
			when, "reloads", (int)p->reloads, "reload_failures",
			(int)p->reload_failures);
	if (out && p->reload_failures && p->last_reload_rc < 0)
		json_object_set_new(out, "last_reload_error",
				    json_string(p->last_reload_error.message));
	if (out)
		json_object_set_new(out, "reload_pending",
				    json_boolean(p->reload_state != RELOAD_IDLE));
	return out;
}

static int cmp_plugin(const void *a, const void *b)
{
	const struct plugin *const *pa = a, *const *pb = b;

	return strcmp((*pa)->name, (*pb)->name);
}

json_t *plugin_list(struct plugin_registry *reg)
{
	struct plugin *p, **v;
	size_t n = 0, i;
	json_t *arr;

	for (p = reg->plugins; p; p = p->next)
		n++;
	arr = json_array();
	v = calloc(n ? n : 1, sizeof(*v));
	if (!arr || !v) {
		json_decref(arr);
		free(v);
		return NULL;
	}
	for (i = 0, p = reg->plugins; p; p = p->next)
		v[i++] = p;
	qsort(v, n, sizeof(*v), cmp_plugin);
	for (i = 0; i < n; i++)
		if (json_array_append_new(arr, plugin_to_json(v[i])) < 0) {
			json_decref(arr);
			arr = NULL;
			break;
		}
	free(v);
	return arr;
}
