/*
 * auth.c - bearer tokens for the admin API (see auth.h).
 */
#include "config.h"
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "log.h"
#include "server.h"
#include "store.h"

#define CACHE_SLOTS 256
#define CACHE_TTL_MS 30000

struct cache_entry {
	char hash[65];
	struct auth_info info;
	long long expires_ms;
};

struct auth {
	struct store *st;
	struct cache_entry cache[CACHE_SLOTS];
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void auth_hash(const char *token, char *hash, size_t hash_size)
{
	unsigned char md[32];
	unsigned int len = 0;

	EVP_Digest(token, strlen(token), md, &len, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32 && 2 * i + 2 < hash_size; i++)
		snprintf(hash + 2 * i, 3, "%02x", md[i]);
}

int auth_token_new(char *buf, size_t size, char *hash, size_t hash_size)
{
	static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[32];
	size_t n = 4;

	if (size < 4 + 44 || RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	memcpy(buf, "hub_", 4);
	for (size_t i = 0; i < sizeof(raw); i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (i + 1 < sizeof(raw) ? (unsigned)raw[i + 1] << 8 : 0) |
			     (i + 2 < sizeof(raw) ? raw[i + 2] : 0);
		buf[n++] = b64url[(v >> 18) & 63];
		buf[n++] = b64url[(v >> 12) & 63];
		if (i + 1 < sizeof(raw))
			buf[n++] = b64url[(v >> 6) & 63];
		if (i + 2 < sizeof(raw))
			buf[n++] = b64url[v & 63];
	}
	buf[n] = '\0';
	auth_hash(buf, hash, hash_size);
	return 0;
}

int auth_role_parse(const char *name)
{
	if (!name)
		return ROLE_NONE;
	if (strcmp(name, "admin") == 0)
		return ROLE_ADMIN;
	if (strcmp(name, "operator") == 0)
		return ROLE_OPERATOR;
	if (strcmp(name, "viewer") == 0)
		return ROLE_VIEWER;
	return ROLE_NONE;
}

const char *auth_role_name(int role)
{
	static const char *const names[] = {"none", "viewer", "operator", "admin"};

	return role >= 0 && role <= ROLE_ADMIN ? names[role] : "none";
}

int auth_bootstrap(struct store *st, const char *state_dir, char *err, size_t err_size)
{
	char path[4096], token[80], hash[65], name[64];
	struct hub_error herr;
	enum store_status s;
	int fd;

	snprintf(path, sizeof(path), "%s/admin.token", state_dir);
	if (access(path, F_OK) == 0)
		return 0;
	if (auth_token_new(token, sizeof(token), hash, sizeof(hash)) < 0) {
		snprintf(err, err_size, "cannot generate the admin token (no randomness)");
		return -1;
	}
	snprintf(name, sizeof(name), "admin");
	for (int i = 0; i < 5; i++) {
		memset(&herr, 0, sizeof(herr));
		s = store_call_sync(st, STORE_OP_TOKEN_CREATE,
				    json_pack("{s:s,s:s,s:s}", "name", name, "hash", hash, "role", "admin"), NULL,
				    &herr);
		if (s == STORE_OK)
			break;
		if (s != STORE_INVALID) {
			snprintf(err, err_size, "cannot register the admin token: %s", herr.message);
			return -1;
		}
		/* The name is taken (the file was deleted): pick a fresh one. */
		snprintf(name, sizeof(name), "admin-%lld-%d", (long long)time(NULL), i);
	}
	if (s != STORE_OK) {
		snprintf(err, err_size, "cannot register the admin token: %s", herr.message);
		return -1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, token, strlen(token)) < 0 || write(fd, "\n", 1) < 0) {
		snprintf(err, err_size, "cannot write %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		store_call_sync(st, STORE_OP_TOKEN_REVOKE, json_pack("{s:s}", "name", name), NULL, NULL);
		return -1;
	}
	close(fd);
	log_info("auth", "wrote a new admin token (%s) to %s", name, path);
	return 0;
}

static struct cache_entry *slot(struct auth *a, const char *hash)
{
	unsigned h = 0;

	for (int i = 0; i < 8; i++)
		h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
	return &a->cache[h % CACHE_SLOTS];
}

struct lookup {
	struct auth *a;
	struct server_req *r;
	char hash[65];
};

static void lookup_done(void *arg, enum store_status status, json_t *result,
			const struct hub_error *err)
{
	struct lookup *lk = arg;
	struct server_req *r = lk->r;

	if (status == STORE_OK) {
		struct cache_entry *e = slot(lk->a, lk->hash);
		const char *merchant = json_string_value(json_object_get(result, "merchant"));
		snprintf(r->auth.name, sizeof(r->auth.name), "%s",
			 json_string_value(json_object_get(result, "name")) ?: "?");
		r->auth.role = (enum role)auth_role_parse(json_string_value(json_object_get(result, "role")));
		snprintf(r->auth.merchant, sizeof(r->auth.merchant), "%s", merchant ? merchant : "");
		memcpy(e->hash, lk->hash, sizeof(e->hash));
		e->info = r->auth;
		e->expires_ms = mono_ms() + CACHE_TTL_MS;
	} else if (status == STORE_UNAVAILABLE) {
		free(lk);
		server_add_header(r, "Retry-After", "5");
		server_reply_error(r, 503, "store_unavailable",
				   "cannot check the token: the store is unavailable; retry shortly");
		return;
	}
	free(lk);
	server_dispatch(r);
}

static void auth_hook(struct server_req *r, void *arg)
{
	struct auth *a = arg;
	const char *h = server_header(r, "Authorization");
	struct cache_entry *e;
	struct lookup *lk;
	struct hub_error err;
	char hash[65];

	memset(&r->auth, 0, sizeof(r->auth));
	if (!h || strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) < 8 || strlen(h + 7) > 200) {
		server_dispatch(r); /* no token: 401 from the dispatcher */
		return;
	}
	auth_hash(h + 7, hash, sizeof(hash));
	e = slot(a, hash);
	if (e->expires_ms > mono_ms() && memcmp(e->hash, hash, 64) == 0) {
		r->auth = e->info;
		server_dispatch(r);
		return;
	}
	lk = calloc(1, sizeof(*lk));
	if (!lk) {
		server_reply_error(r, 503, "unavailable", "out of memory");
		return;
	}
	lk->a = a;
	lk->r = r;
	memcpy(lk->hash, hash, sizeof(hash));
	memset(&err, 0, sizeof(err));
	if (store_call(a->st, STORE_OP_TOKEN_LOOKUP, json_pack("{s:s}", "hash", hash), lookup_done, lk,
		       &err) < 0) {
		free(lk);
		server_add_header(r, "Retry-After", "5");
		server_reply_error(r, 503, "store_unavailable", "cannot check the token: %s", err.message);
	}
}

struct auth *auth_new(struct store *st, struct server *srv)
{
	struct auth *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->st = st;
	server_set_auth(srv, auth_hook, a);
	return a;
}

void auth_flush(struct auth *a)
{
	if (a)
		memset(a->cache, 0, sizeof(a->cache));
}

void auth_free(struct auth *a)
{
	free(a);
}
