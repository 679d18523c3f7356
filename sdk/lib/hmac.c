/*
 * hmac.c - HMAC-SHA256 (through OpenSSL's one-shot HMAC()), base64 and hex
 * encodings, and the constant-time comparison webhook checks rely on.
 *
 * Shopify and WooCommerce sign the raw webhook body with base64(HMAC-SHA256);
 * OAuth 1.0a and several carrier APIs use hex. The comparison never exits
 * early on the first differing byte, so the time taken reveals nothing about
 * how much of a forged signature was right.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <hub/sdk.h>

#define MAC_LEN 32

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Raw HMAC-SHA256 into mac (32 bytes); 0 or -1. */
static int hmac_raw(const void *key, size_t key_len, const void *data, size_t len,
		    unsigned char mac[MAC_LEN])
{
	static const unsigned char empty = 0;
	unsigned int mac_len = 0;

	if (key_len > INT32_MAX)
		return -1;
	/* OpenSSL refuses a NULL key even of length 0. */
	if (key == NULL)
		key = &empty;
	if (data == NULL)
		data = &empty;
	if (HMAC(EVP_sha256(), key, (int)key_len, data, len, mac, &mac_len) == NULL ||
	    mac_len != MAC_LEN)
		return -1;
	return 0;
}

/* Base64 of len bytes into out (4 * ceil(len / 3) + 1 bytes). */
static void b64_write(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = i + 1 < len ? b64_alphabet[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
	}
	out[o] = '\0';
}

int hub_hmac_sha256_base64(const void *key, size_t key_len, const void *data, size_t len,
			   char *buf, size_t size)
{
	unsigned char mac[MAC_LEN];

	if (buf == NULL || size < 45 || hmac_raw(key, key_len, data, len, mac) < 0)
		return -1;
	b64_write(mac, MAC_LEN, buf);
	return 0;
}

int hub_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
			char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char mac[MAC_LEN];

	if (buf == NULL || size < 2 * MAC_LEN + 1 || hmac_raw(key, key_len, data, len, mac) < 0)
		return -1;
	for (size_t i = 0; i < MAC_LEN; i++) {
		buf[2 * i] = hex[mac[i] >> 4];
		buf[2 * i + 1] = hex[mac[i] & 15];
	}
	buf[2 * MAC_LEN] = '\0';
	return 0;
}

int hub_ct_equal(const void *a, size_t a_len, const void *b, size_t b_len)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;

	if (a_len != b_len)
		return 0;
	if (a_len == 0)
		return 1;
	if (a == NULL || b == NULL)
		return 0;
	for (size_t i = 0; i < a_len; i++)
		diff |= x[i] ^ y[i];
	return diff == 0;
}

int hub_hmac_verify_base64(const char *secret, const void *body, size_t len,
			   const char *signature_b64)
{
	unsigned char mac[MAC_LEN];
	unsigned char *sig;
	size_t sig_len = 0;
	int ok;

	if (secret == NULL || signature_b64 == NULL)
		return 0;
	sig = hub_base64_decode(signature_b64, &sig_len);
	if (sig == NULL)
		return 0;
	ok = hmac_raw(secret, strlen(secret), body, len, mac) == 0 &&
	     hub_ct_equal(mac, MAC_LEN, sig, sig_len);
	free(sig);
	return ok;
}

char *hub_base64_encode(const void *data, size_t len)
{
	char *out;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	out = malloc((len + 2) / 3 * 4 + 1);
	if (out == NULL)
		return NULL;
	b64_write(data, len, out);
	return out;
}

/* Value of a base64 character, or -1. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

unsigned char *hub_base64_decode(const char *text, size_t *out_len)
{
	size_t n, pad = 0, o = 0;
	unsigned char *out;
	uint32_t acc = 0;
	int bits = 0;

	if (text == NULL)
		return NULL;
	n = strlen(text);
	while (pad < n && pad < 2 && text[n - 1 - pad] == '=')
		pad++;
	n -= pad;
	/* One leftover character cannot encode a byte; padding must complete
	 * the last quantum when it is present. */
	if (n % 4 == 1 || (pad > 0 && (n + pad) % 4 != 0))
		return NULL;
	out = malloc(n / 4 * 3 + 3);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int v = b64_value((unsigned char)text[i]);

		if (v < 0) {
			free(out);
			return NULL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits & 0xff);
		}
	}
	if (out_len != NULL)
		*out_len = o;
	return out;
}
