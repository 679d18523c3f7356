/*
 * test_sdk_hmac.c - libhubsdk HMAC-SHA256 against RFC 4231 vectors, webhook
 * signature checks the way Shopify and WooCommerce sign (base64 of the raw
 * body), the constant-time comparison and the base64 codec.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

static void test_rfc4231(void **state)
{
	unsigned char key20[20], key131[131], data50[50];
	char hex[65], b64[45];
	static const char case6[] = "Test Using Larger Than Block-Size Key - Hash Key First";

	(void)state;
	memset(key20, 0x0b, sizeof(key20));
	assert_int_equal(hub_hmac_sha256_hex(key20, 20, "Hi There", 8, hex, sizeof(hex)), 0);
	assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	assert_int_equal(hub_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28,
					     hex, sizeof(hex)), 0);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	assert_int_equal(hub_hmac_sha256_base64("Jefe", 4, "what do ya want for nothing?", 28,
						b64, sizeof(b64)), 0);
	assert_string_equal(b64, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");

	memset(key20, 0xaa, sizeof(key20));
	memset(data50, 0xdd, sizeof(data50));
	assert_int_equal(hub_hmac_sha256_hex(key20, 20, data50, 50, hex, sizeof(hex)), 0);
	assert_string_equal(hex, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

	memset(key131, 0xaa, sizeof(key131));
	assert_int_equal(hub_hmac_sha256_hex(key131, 131, case6, strlen(case6), hex, sizeof(hex)), 0);
	assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

	/* Empty key and data are legal. */
	assert_int_equal(hub_hmac_sha256_hex(NULL, 0, NULL, 0, hex, sizeof(hex)), 0);
	assert_string_equal(hex, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");

	/* Buffers one byte short are refused, not overrun. */
	assert_int_equal(hub_hmac_sha256_hex("k", 1, "d", 1, hex, 64), -1);
	assert_int_equal(hub_hmac_sha256_base64("k", 1, "d", 1, b64, 44), -1);
}

/* A Shopify-style delivery: the signature is over the raw bytes, UTF-8 included. */
static const char body[] = "{\"id\":820982911946154508,\"email\":\"jon@example.com\","
			   "\"total_price\":\"19.99\",\"note\":\"caf\xc3\xa9\"}";
static const char body_sig[] = "xLtCQUqHQCnnf7+/C0EwdscxHr+G0VBaFWI1CxZRS+4=";

static void test_webhook_verify(void **state)
{
	char tampered[sizeof(body)];
	char sig[64];

	(void)state;
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), body_sig), 1);
	/* Padding is optional in the signature. */
	snprintf(sig, sizeof(sig), "%.43s", body_sig);
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), sig), 1);

	assert_int_equal(hub_hmac_verify_base64("hush!", body, strlen(body), body_sig), 0);
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body) - 1, body_sig), 0);
	memcpy(tampered, body, sizeof(body));
	tampered[strlen("{\"id\":8")] = '9';
	assert_int_equal(hub_hmac_verify_base64("hush", tampered, strlen(tampered), body_sig), 0);
	/* One flipped signature character. */
	snprintf(sig, sizeof(sig), "%s", body_sig);
	sig[10] = sig[10] == 'A' ? 'B' : 'A';
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), sig), 0);
	/* Malformed, truncated, hex instead of base64, empty, NULL. */
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), "not base64!"), 0);
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), "xLtCQUqHQCnn"), 0);
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body),
		"c4bb42414a874029e77fbfbf0b413076c7311ebf86d1505a1562350b16514bee"), 0);
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), ""), 0);
	assert_int_equal(hub_hmac_verify_base64("hush", body, strlen(body), NULL), 0);
	assert_int_equal(hub_hmac_verify_base64(NULL, body, strlen(body), body_sig), 0);
}

static void test_ct_equal(void **state)
{
	(void)state;
	assert_int_equal(hub_ct_equal("abc", 3, "abc", 3), 1);
	assert_int_equal(hub_ct_equal("abc", 3, "abd", 3), 0);
	assert_int_equal(hub_ct_equal("xbc", 3, "abc", 3), 0);
	assert_int_equal(hub_ct_equal("abc", 3, "abcd", 4), 0);
	assert_int_equal(hub_ct_equal("a\0b", 3, "a\0c", 3), 0);
	assert_int_equal(hub_ct_equal("", 0, "", 0), 1);
	assert_int_equal(hub_ct_equal(NULL, 0, NULL, 0), 1);
	assert_int_equal(hub_ct_equal(NULL, 3, "abc", 3), 0);
}

static void test_base64(void **state)
{
	static const struct {
		const char *plain, *coded;
	} rfc4648[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	unsigned char bin[256];
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		char *enc = hub_base64_encode(rfc4648[i].plain, strlen(rfc4648[i].plain));
		unsigned char *dec = hub_base64_decode(rfc4648[i].coded, &len);

		assert_non_null(enc);
		assert_string_equal(enc, rfc4648[i].coded);
		assert_non_null(dec);
		assert_int_equal(len, strlen(rfc4648[i].plain));
		assert_memory_equal(dec, rfc4648[i].plain, len);
		free(enc);
		free(dec);
	}
	/* Unpadded input decodes too. */
	unsigned char *dec = hub_base64_decode("Zm9vYg", &len);
	assert_non_null(dec);
	assert_int_equal(len, 4);
	assert_memory_equal(dec, "foob", 4);
	free(dec);

	/* Every byte value survives a round trip. */
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(255 - i);
	char *enc = hub_base64_encode(bin, sizeof(bin));
	assert_non_null(enc);
	dec = hub_base64_decode(enc, &len);
	assert_non_null(dec);
	assert_int_equal(len, sizeof(bin));
	assert_memory_equal(dec, bin, sizeof(bin));
	free(enc);
	free(dec);

	assert_null(hub_base64_decode("Zm9v!", &len));
	assert_null(hub_base64_decode("Z", &len));
	assert_null(hub_base64_decode("Zm9vY", &len));
	assert_null(hub_base64_decode("Zg=", &len));
	assert_null(hub_base64_decode("Zm 9v", &len));
	assert_null(hub_base64_decode("Zm9v-_", &len));
	assert_null(hub_base64_decode(NULL, &len));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4231),
		cmocka_unit_test(test_webhook_verify),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
