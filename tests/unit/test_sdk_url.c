/*
 * test_sdk_url.c - libhubsdk URLs: RFC 3986 escaping, the URL builder, Link
 * header parsing as Shopify paginates (and the RFC 8288 corners: bare rel,
 * several relation types, commas inside URLs and quoted strings), and query
 * parameter lookup with the last value winning.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <hub/sdk.h>

static void check_escape(const char *in, const char *want)
{
	char *out = hub_url_escape(in);

	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

static void test_escape(void **state)
{
	(void)state;
	check_escape("", "");
	check_escape("AZaz09-._~", "AZaz09-._~");
	check_escape("a b&c=d/e?f#g+h%i", "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25i");
	check_escape("2026-07-01T12:30:00-04:00", "2026-07-01T12%3A30%3A00-04%3A00");
	check_escape("caf\xc3\xa9", "caf%C3%A9");
	assert_null(hub_url_escape(NULL));
}

static void test_builder(void **state)
{
	struct hub_url url;
	char *s;

	(void)state;
	hub_url_init(&url, "https://shop.example/admin");
	hub_url_path(&url, "/api/2026-07/orders.json");
	hub_url_query(&url, "status", "any");
	hub_url_query(&url, "updated_at_min", "2026-07-01T12:30:00+02:00");
	hub_url_query(&url, "skipped", NULL);
	hub_url_query_int(&url, "limit", 250);
	hub_url_query_int(&url, "since_id", -9007199254740993LL);
	assert_string_equal(hub_url_str(&url),
			    "https://shop.example/admin/api/2026-07/orders.json?status=any"
			    "&updated_at_min=2026-07-01T12%3A30%3A00%2B02%3A00&limit=250"
			    "&since_id=-9007199254740993");
	s = hub_url_detach(&url);
	assert_non_null(s);
	assert_null(url.buf);
	assert_int_equal(url.len, 0);
	free(s);
	hub_url_release(&url);

	/* Segments are escaped; a base that already has a query gets '&'. */
	hub_url_init(&url, "https://api.example/track");
	hub_url_segment(&url, "1Z 999/AA1");
	hub_url_segment(&url, "details");
	assert_string_equal(hub_url_str(&url), "https://api.example/track/1Z%20999%2FAA1/details");
	hub_url_release(&url);

	hub_url_init(&url, "https://api.example/v1/");
	hub_url_segment(&url, "a?b");
	hub_url_query(&url, "k y", "v&w");
	assert_string_equal(hub_url_str(&url), "https://api.example/v1/a%3Fb?k%20y=v%26w");
	hub_url_release(&url);

	hub_url_init(&url, "https://x.example/p?fixed=1");
	hub_url_query(&url, "page", "2");
	assert_string_equal(hub_url_str(&url), "https://x.example/p?fixed=1&page=2");
	hub_url_release(&url);
	assert_null(url.buf);
}

static void check_link(const char *header, const char *rel, const char *want)
{
	char *got = hub_link_find(header, rel);

	if (want == NULL) {
		if (got != NULL)
			fail_msg("rel %s in [%s]: expected nothing, got %s", rel,
				 header != NULL ? header : "(null)", got);
		return;
	}
	if (got == NULL)
		fail_msg("rel %s in [%s]: expected %s, got nothing", rel,
			 header != NULL ? header : "(null)", want);
	assert_string_equal(got, want);
	free(got);
}

static void test_link(void **state)
{
	static const char shopify[] =
		"<https://shop.example/admin/api/2026-07/orders.json?limit=250&page_info=eyJwcmV2>; "
		"rel=\"previous\", "
		"<https://shop.example/admin/api/2026-07/orders.json?limit=250&page_info=eyJuZXh0>; "
		"rel=\"next\"";

	(void)state;
	check_link(shopify, "next",
		   "https://shop.example/admin/api/2026-07/orders.json?limit=250&page_info=eyJuZXh0");
	check_link(shopify, "previous",
		   "https://shop.example/admin/api/2026-07/orders.json?limit=250&page_info=eyJwcmV2");
	check_link(shopify, "last", NULL);
	/* Only a next link; unquoted rel; case-insensitive names and values. */
	check_link("<https://a.example/o?page_info=x>; rel=next", "next", "https://a.example/o?page_info=x");
	check_link("<https://a.example/o>;REL=\"Next\"", "next", "https://a.example/o");
	/* Whitespace everywhere it may appear. */
	check_link("  <https://a.example/1> ;  rel = \"prev\" ,\t<https://a.example/2>\t;\trel=\"next\"  ",
		   "next", "https://a.example/2");
	/* Several relation types in one rel, and other parameters around it. */
	check_link("<https://a.example/z>; title=\"a, b; c\"; rel=\"last next\"; type=text/html",
		   "next", "https://a.example/z");
	/* A comma and semicolon inside the URL do not split links. */
	check_link("<https://a.example/x?a=1,2;b=3>; rel=\"next\"", "next",
		   "https://a.example/x?a=1,2;b=3");
	/* "nextpage" is not "next"; rel inside another parameter is not rel. */
	check_link("<https://a.example/1>; rel=\"nextpage\"", "next", NULL);
	check_link("<https://a.example/1>; title=\"rel=next\"", "next", NULL);
	check_link("<https://a.example/1>; anchor=\"x\"; rel=\"next\"", "next", "https://a.example/1");
	/* Escaped quote in a quoted string. */
	check_link("<https://a.example/1>; title=\"say \\\"hi\\\"\"; rel=next", "next",
		   "https://a.example/1");
	/* Malformed headers give nothing. */
	check_link("https://a.example/1; rel=\"next\"", "next", NULL);
	check_link("<https://a.example/1; rel=\"next\"", "next", NULL);
	check_link("<https://a.example/1>; rel=\"next", "next", NULL);
	check_link("<https://a.example/1> rel=\"next\"", "next", NULL);
	check_link("<https://a.example/1>; =next", "next", NULL);
	check_link("", "next", NULL);
	check_link(NULL, "next", NULL);
}

static void check_query(const char *url, const char *key, const char *want)
{
	char *got = hub_url_query_get(url, key);

	if (want == NULL) {
		assert_null(got);
		return;
	}
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void test_query_get(void **state)
{
	static const char u[] =
		"https://shop.example/wp-json/wc/v3/orders?page=1&per_page=10&page=3"
		"&after=2026-07-01T00%3A00%3A00&q=a+b%2Bc&empty=&flag&bad=%zz%4#page=9";

	(void)state;
	check_query(u, "page", "3");
	check_query(u, "per_page", "10");
	check_query(u, "after", "2026-07-01T00:00:00");
	check_query(u, "q", "a b+c");
	check_query(u, "empty", "");
	check_query(u, "flag", "");
	check_query(u, "bad", "%zz%4");
	check_query(u, "missing", NULL);
	check_query(u, "pag", NULL);
	check_query("https://shop.example/orders.json", "page", NULL);
	check_query("https://a.example/?page_info=eyJ9&limit=250", "page_info", "eyJ9");
	/* A form body or bare query string. */
	check_query("webhook_id=15", "webhook_id", "15");
	check_query("a=1&a=2", "a", "2");
	check_query(NULL, "a", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_builder),
		cmocka_unit_test(test_link),
		cmocka_unit_test(test_query_get),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
