/*
 * crypto.c - AES-256-GCM sealing of secrets, the key file, and token hashes
 * (see crypto.h). OpenSSL's EVP interface does the cryptography; this file
 * only frames it: "v1:" + base64(nonce[12] || ciphertext || tag[16]).
 */
#include "config.h"
#include "crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX "v1:"
#define PREFIX_LEN 3

static int fail(struct hub_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct hub_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		err->upstream_status = 0;
		err->field[0] = '\0';
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return -1;
}

int crypto_random(void *buf, size_t n)
{
	if (n > INT_MAX)
		return -1;
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

/* Reads exactly n bytes from fd. Returns 0 or -1. */
static int read_full(int fd, unsigned char *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t w = write(fd, buf + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

/* Creates the key file with O_EXCL. Returns 0, 1 when it already exists, or
 * -1 on error. */
static int key_create(const char *path, unsigned char key[CRYPTO_KEY_LEN], struct hub_error *err)
{
	int fd, rc = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 1;
		return fail(err, "cannot create the secret key file %s: %s", path, strerror(errno));
	}
	if (crypto_random(key, CRYPTO_KEY_LEN) < 0) {
		fail(err, "no randomness available to create %s", path);
		goto out;
	}
	/* 0600 even under a permissive umask. */
	if (fchmod(fd, 0600) < 0 || write_full(fd, key, CRYPTO_KEY_LEN) < 0 || fsync(fd) < 0) {
		fail(err, "cannot write the secret key file %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	close(fd);
	if (rc < 0)
		unlink(path);
	return rc;
}

int crypto_key_load(const char *state_dir, unsigned char key[CRYPTO_KEY_LEN],
		    struct hub_error *err)
{
	char path[4096];
	struct stat sb;
	int fd, rc = -1, n;

	n = snprintf(path, sizeof(path), "%s/secret.key", state_dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return fail(err, "state_dir is too long: %s", state_dir);
	rc = key_create(path, key, err);
	if (rc <= 0)
		return rc;
	rc = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return fail(err, "cannot open the secret key file %s: %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0) {
		fail(err, "cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		fail(err, "%s is not a regular file", path);
		goto out;
	}
	if (sb.st_mode & 077) {
		fail(err, "%s may be read by group or others: run chmod 600 %s", path, path);
		goto out;
	}
	if (sb.st_size != CRYPTO_KEY_LEN || read_full(fd, key, CRYPTO_KEY_LEN) < 0) {
		fail(err, "%s must hold exactly 32 bytes; restore it from backup (secrets "
			  "sealed with another key cannot be read)", path);
		goto out;
	}
	rc = 0;
out:
	close(fd);
	return rc;
}

int crypto_is_sealed(const char *text)
{
	return text && strncmp(text, PREFIX, PREFIX_LEN) == 0;
}

char *crypto_seal(const unsigned char key[CRYPTO_KEY_LEN], const void *plain, size_t len,
		  const char *aad)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *raw = NULL;
	char *out = NULL;
	size_t raw_len;
	int n, ok = 0;

	if (len > INT_MAX - NONCE_LEN - TAG_LEN - 64)
		return NULL;
	raw_len = NONCE_LEN + len + TAG_LEN;
	raw = malloc(raw_len);
	ctx = EVP_CIPHER_CTX_new();
	if (!raw || !ctx || crypto_random(raw, NONCE_LEN) < 0)
		goto out;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, key, raw) != 1)
		goto out;
	if (aad && EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1)
		goto out;
	if (EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &n, plain, (int)len) != 1)
		goto out;
	if (EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + len) != 1)
		goto out;
	out = malloc(PREFIX_LEN + 4 * ((raw_len + 2) / 3) + 1);
	if (!out)
		goto out;
	memcpy(out, PREFIX, PREFIX_LEN);
	EVP_EncodeBlock((unsigned char *)out + PREFIX_LEN, raw, (int)raw_len);
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (raw) {
		OPENSSL_cleanse(raw, raw_len);
		free(raw);
	}
	if (!ok) {
		free(out);
		out = NULL;
	}
	return out;
}

char *crypto_open(const unsigned char key[CRYPTO_KEY_LEN], const char *sealed, const char *aad,
		  size_t *out_len, struct hub_error *err)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *raw = NULL;
	char *plain = NULL;
	size_t b64_len, raw_len, len = 0;
	int n, ok = 0;

	if (!crypto_is_sealed(sealed)) {
		fail(err, "not a sealed secret (expected the v1: prefix)");
		return NULL;
	}
	sealed += PREFIX_LEN;
	b64_len = strlen(sealed);
	if (b64_len % 4 != 0 || b64_len > INT_MAX) {
		fail(err, "sealed secret is not valid base64");
		return NULL;
	}
	raw = malloc(b64_len / 4 * 3 + 1);
	if (!raw) {
		fail(err, "out of memory");
		return NULL;
	}
	n = EVP_DecodeBlock(raw, (const unsigned char *)sealed, (int)b64_len);
	if (n < 0) {
		fail(err, "sealed secret is not valid base64");
		goto out;
	}
	/* EVP_DecodeBlock counts padding as zero bytes. */
	raw_len = (size_t)n;
	if (b64_len >= 1 && sealed[b64_len - 1] == '=')
		raw_len--;
	if (b64_len >= 2 && sealed[b64_len - 2] == '=')
		raw_len--;
	if (raw_len < NONCE_LEN + TAG_LEN) {
		fail(err, "sealed secret is truncated");
		goto out;
	}
	len = raw_len - NONCE_LEN - TAG_LEN;
	plain = malloc(len + 1);
	ctx = EVP_CIPHER_CTX_new();
	if (!plain || !ctx) {
		fail(err, "out of memory");
		goto out;
	}
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw) != 1 ||
	    (aad && EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1) ||
	    EVP_DecryptUpdate(ctx, (unsigned char *)plain, &n, raw + NONCE_LEN, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + len) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + n, &n) != 1) {
		fail(err, "sealed secret does not decrypt: wrong secret.key, or the value was "
			  "altered or moved");
		goto out;
	}
	plain[len] = '\0';
	if (out_len)
		*out_len = len;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(raw);
	if (!ok && plain) {
		OPENSSL_cleanse(plain, len);
		free(plain);
		plain = NULL;
	}
	return plain;
}

void crypto_sha256_hex(const void *data, size_t len, char out[CRYPTO_SHA256_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	for (size_t i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[CRYPTO_SHA256_HEX_LEN] = '\0';
}

int crypto_token_new(char *token, size_t size, char hash[CRYPTO_SHA256_HEX_LEN + 1])
{
	unsigned char raw[32];
	char b64[48];
	size_t j = 0;

	if (size < 48 || crypto_random(raw, sizeof(raw)) < 0)
		return -1;
	EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
	memcpy(token, "hub_", 4);
	j = 4;
	/* base64url without padding: 43 characters for 32 bytes. */
	for (size_t i = 0; i < 43; i++) {
		char c = b64[i];
		token[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	token[j] = '\0';
	OPENSSL_cleanse(raw, sizeof(raw));
	crypto_sha256_hex(token, j, hash);
	return 0;
}
