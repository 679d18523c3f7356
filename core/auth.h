/*
 * auth.h - API tokens: generation, hashing, the admin token written at
 * first start, and the server's authentication hook. Tokens are
 * "hub_" + 43 base64url characters (256 random bits); only their SHA-256
 * is stored. Lookups are cached for 30 s per hubd (revocations made through
 * this hubd take effect at once; through another one within 30 s).
 *
 * Threads: auth_bootstrap runs before the loop starts (it waits on the
 * store); everything else runs on the loop thread.
 */
#ifndef HUB_AUTH_H
#define HUB_AUTH_H

#include <stddef.h>

struct store;
struct server;
struct auth;

/* Writes <state_dir>/admin.token (0600) and registers it, unless the file
 * exists. Returns 0, or -1 with a one-line reason in err. */
int auth_bootstrap(struct store *st, const char *state_dir, char *err, size_t err_size);

/* Creates the authenticator and installs it as srv's auth hook. */
struct auth *auth_new(struct store *st, struct server *srv);
void auth_free(struct auth *a);

/* Forgets cached lookups (after a revocation). */
void auth_flush(struct auth *a);

/* Generates a new token (buf >= 64) and its SHA-256 hex (hash >= 65). */
int auth_token_new(char *buf, size_t size, char *hash, size_t hash_size);

/* SHA-256 hex of a token into hash (>= 65 bytes). */
void auth_hash(const char *token, char *hash, size_t hash_size);

/* "admin", "operator", "viewer" -> role (0 when unknown). */
int auth_role_parse(const char *name);
const char *auth_role_name(int role);

#endif
