/*
 * crypto.h - secret-at-rest encryption and token helpers for the store.
 *
 * Connector secrets (API keys, access tokens) are stored encrypted with
 * AES-256-GCM under a 32-byte key kept in <state_dir>/secret.key. The key
 * file is created at first start (O_EXCL, mode 0600) and refused when group
 * or world can read it. Each value gets a fresh random 12-byte nonce; the
 * sealed form is the text "v1:" + base64(nonce || ciphertext || tag), so it
 * fits any TEXT column. Optional associated data (for example
 * "connector/field") binds a value to its place: moved elsewhere it no longer
 * decrypts. API tokens are never stored; only their SHA-256 is. All
 * functions are thread-safe and keep no global state.
 */
#ifndef HUB_CRYPTO_H
#define HUB_CRYPTO_H

#include <stddef.h>

#include <hub/plugin.h>

#define CRYPTO_KEY_LEN 32
#define CRYPTO_SHA256_HEX_LEN 64

/* Loads the secret key from <state_dir>/secret.key, creating it (32 random
 * bytes, mode 0600, O_EXCL) when absent. Refuses a key file that group or
 * others may read, or whose size is not 32 bytes. Returns 0, or -1 with err
 * saying what is wrong and what to do. Any thread. */
int crypto_key_load(const char *state_dir, unsigned char key[CRYPTO_KEY_LEN],
		    struct hub_error *err);

/* Encrypts len bytes of plain under key with associated data aad (may be
 * NULL). Returns a malloc'd NUL-terminated "v1:..." string the caller
 * frees, or NULL on failure (out of memory, no randomness). */
char *crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *plain, size_t len,
		  const char *aad);

/* Decrypts a sealed "v1:..." string made with the same key and aad. Returns
 * malloc'd plaintext, NUL-terminated (its length in *out_len when not NULL),
 * or NULL with err filled when the text is malformed, was made with another
 * key or aad, or was tampered with. */
char *crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const char *sealed, const char *aad,
		  size_t *out_len, struct hub_error *err);

/* Whether text looks like a sealed value ("v1:" prefix). */
int crypto_is_sealed(const char *text);

/* Fills buf with n cryptographically random bytes. Returns 0 or -1. */
int crypto_random(void *buf, size_t n);

/* Lower-case hex SHA-256 of data into out (65 bytes with the NUL). */
void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN + 1]);

/* Makes a new API token "hub_" + 43 base64url characters (256 random bits)
 * into token (size >= 48) and its SHA-256 hex into hash. Only the hash
 * should be stored. Returns 0 or -1. */
int crypto_token_new(char *token, size_t size, char hash[CRYPTO_SHA256_HEX_LEN + 1]);

#endif
