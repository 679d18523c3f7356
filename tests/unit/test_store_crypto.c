/*
 * test_store_crypto.c - secret sealing for the store (core/crypto.c): the
 * key file is created once, 0600, and refused when others may read it or
 * when it is damaged; sealed values round-trip, differ every time, and
 * refuse another key, another place (associated data) or any altered byte;
 * tokens are random and only their hash is meant to be kept.
 */
#include "config.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "crypto.h"

static char dir[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/hub-crypto-test.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char path[256];

	(void)state;
	snprintf(path, sizeof(path), "%s/secret.key", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

static void test_key_file(void **state)
{
	unsigned char k1[CRYPTO_KEY_LEN], k2[CRYPTO_KEY_LEN];
	struct hub_error err = {0};
	char path[256];
	struct stat sb;
	int fd;

	(void)state;
	umask(022);
	assert_int_equal(crypto_key_load(dir, k1, &err), 0);
	snprintf(path, sizeof(path), "%s/secret.key", dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(sb.st_size, CRYPTO_KEY_LEN);
	/* Loaded again, not replaced. */
	assert_int_equal(crypto_key_load(dir, k2, &err), 0);
	assert_memory_equal(k1, k2, CRYPTO_KEY_LEN);

	chmod(path, 0640);
	assert_int_equal(crypto_key_load(dir, k2, &err), -1);
	assert_non_null(strstr(err.message, "chmod 600"));
	chmod(path, 0600);

	/* A truncated key is refused, never silently regenerated. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "short", 5), 5);
	close(fd);
	assert_int_equal(crypto_key_load(dir, k2, &err), -1);
	assert_non_null(strstr(err.message, "32 bytes"));
}

static void test_seal_open(void **state)
{
	unsigned char key[CRYPTO_KEY_LEN], other[CRYPTO_KEY_LEN];
	const char *secret = "shpat_0123456789abcdef";
	struct hub_error err = {0};
	char *a, *b, *plain;
	size_t len = 0;

	(void)state;
	assert_int_equal(crypto_random(key, sizeof(key)), 0);
	assert_int_equal(crypto_random(other, sizeof(other)), 0);
	a = crypto_seal(key, secret, strlen(secret), "shop/access_token");
	b = crypto_seal(key, secret, strlen(secret), "shop/access_token");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(crypto_is_sealed(a));
	assert_string_not_equal(a, b); /* fresh nonce each time */
	assert_null(strstr(a, "shpat"));

	plain = crypto_open(key, a, "shop/access_token", &len, &err);
	assert_non_null(plain);
	assert_string_equal(plain, secret);
	assert_int_equal(len, strlen(secret));
	free(plain);

	assert_null(crypto_open(other, a, "shop/access_token", NULL, &err));
	assert_non_null(strstr(err.message, "does not decrypt"));
	/* Moved to another connector or field: refused. */
	assert_null(crypto_open(key, a, "other/access_token", NULL, &err));
	/* Any altered character: refused. */
	for (size_t i = 3; i < strlen(a) - 2; i += 7) {
		char saved = a[i];

		a[i] = a[i] == 'A' ? 'B' : 'A';
		assert_null(crypto_open(key, a, "shop/access_token", NULL, &err));
		a[i] = saved;
	}
	assert_null(crypto_open(key, "v1:%%%%", "shop/access_token", NULL, &err));
	assert_null(crypto_open(key, "plain text", NULL, NULL, &err));
	assert_non_null(strstr(err.message, "v1:"));
	assert_null(crypto_open(key, "v1:AAAA", NULL, NULL, &err));
	free(a);
	free(b);

	/* Empty and binary values round-trip too. */
	a = crypto_seal(key, "", 0, NULL);
	plain = crypto_open(key, a, NULL, &len, &err);
	assert_non_null(plain);
	assert_int_equal(len, 0);
	free(plain);
	free(a);
}

static void test_tokens(void **state)
{
	char t1[64], t2[64], h1[CRYPTO_SHA256_HEX_LEN + 1], h2[CRYPTO_SHA256_HEX_LEN + 1];
	char again[CRYPTO_SHA256_HEX_LEN + 1];

	(void)state;
	assert_int_equal(crypto_token_new(t1, sizeof(t1), h1), 0);
	assert_int_equal(crypto_token_new(t2, sizeof(t2), h2), 0);
	assert_int_equal(strlen(t1), 4 + 43);
	assert_int_equal(strncmp(t1, "hub_", 4), 0);
	assert_null(strpbrk(t1 + 4, "+/="));
	assert_string_not_equal(t1, t2);
	assert_string_not_equal(h1, h2);
	crypto_sha256_hex(t1, strlen(t1), again);
	assert_string_equal(again, h1);
	crypto_sha256_hex("abc", 3, again);
	assert_string_equal(again,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(crypto_token_new(t1, 10, h1), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_tokens),
	};

	return cmocka_run_group_tests_name("store crypto", tests, NULL, NULL);
}
