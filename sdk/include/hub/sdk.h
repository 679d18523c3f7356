/*
 * hub/sdk.h - libhubsdk, the helper library for connector plugins.
 *
 * Small, pure functions every connector needs and gets wrong when written
 * twice: decimal money to minor units without floats, RFC 3339 times to UTC
 * milliseconds, HMAC-SHA256 in base64/hex with constant-time comparison, URL
 * and query building with escaping, `Link` header parsing, JSON getters
 * whose errors name the field, and canonical addresses. hubd uses the same
 * functions, so a plugin and the core agree on every conversion.
 *
 * Conventions: functions return 0 on success and -1 on failure; on failure
 * they fill the optional `struct hub_error *err` (may be NULL) with the field
 * and the reason. Returned heap memory is freed by the caller with free()
 * unless said otherwise. All functions are thread-safe (no global state).
 */
#ifndef HUB_SDK_H
#define HUB_SDK_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fills err (if not NULL) with field (may be NULL) and a printf-style
 * message, truncating safely. Returns -1 so callers can `return hub_error_set(...)`. */
int hub_error_set(struct hub_error *err, const char *field, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 3, 4)))
#endif
	;

/* Cuts s at its first byte that does not belong to valid UTF-8 (a text
 * truncated inside a character, a Latin-1 byte), so it can go into JSON.
 * Returns the new length. hub_error_set applies it to what it writes. */
size_t hub_utf8_trim(char *s);

/* Length (2-4) of the valid UTF-8 sequence at p, a byte >= 0x80 before end,
 * or 0 when it is not one: overlong forms, surrogates and code points past
 * U+10FFFF are refused, as JSON (and jansson) require. Added in 3:0:2. */
size_t hub_utf8_sequence(const unsigned char *p, const unsigned char *end);

/* ---- money ---------------------------------------------------------- */

/* Number of minor-unit digits of an ISO 4217 currency code: 2 for most, 0
 * for JPY, KRW, ..., 3 for BHD, KWD, OMR, TND, JOD, IQD, LYD. Returns -1 for
 * a string that is not three upper-case letters. Unknown but well-formed
 * codes get 2. */
int hub_currency_exponent(const char *currency);

/* Converts a decimal string ("12.34", "-0.5", "1000", "  7.125 ") to an
 * integer amount in the currency's minor units, without floating point.
 * Extra fraction digits are rounded half away from zero ("0.125" USD -> 13).
 * Refuses empty strings, exponents, thousands separators, several dots and
 * values that overflow int64. `field` names the value in error messages. */
int hub_money_parse(const char *decimal, const char *currency, int64_t *minor,
		    const char *field, struct hub_error *err);

/* Same for a JSON value that is a string or a number (WooCommerce sends
 * numbers). An integer is whole currency units. A real number is first
 * written as the shortest decimal (15, 16 or 17 significant digits) that
 * reads back as the same double - the text the sender most likely wrote -
 * so 19.99 gives 1999 and 1.005 gives 101 (not 100 from 1.00499999...). */
int hub_money_from_json(const json_t *value, const char *currency, int64_t *minor,
			const char *field, struct hub_error *err);

/* ---- time ----------------------------------------------------------- */

/* Parses RFC 3339 ("2026-07-01T12:30:00-04:00", "...Z", fractional seconds
 * of any length, lower-case t/z accepted) into milliseconds since the epoch,
 * UTC. A time without an offset is refused unless `assume_utc` is set (for
 * sources documented as GMT without suffix, e.g. WooCommerce *_gmt). Also
 * accepts a space instead of "T". Validates ranges (month 1-12, day of
 * month, leap years, hour < 24, offset < 24h). */
int hub_time_parse(const char *text, int assume_utc, int64_t *utc_ms, const char *field,
		   struct hub_error *err);

/* Formats milliseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into
 * buf (at least 25 bytes). Returns 0, or -1 if it does not fit. */
int hub_time_format(int64_t utc_ms, char *buf, size_t size);

/* Returns the UTC offset in minutes of an RFC 3339 time ("-04:00" -> -240,
 * "Z" -> 0) in *minutes; -1 if the text has no offset. */
int hub_time_offset(const char *text, int *minutes);

/* ---- HMAC and encodings --------------------------------------------- */

/* HMAC-SHA256 of data under key, written as base64 (44 chars + NUL, buf
 * >= 45) or lower-case hex (64 chars + NUL, buf >= 65). */
int hub_hmac_sha256_base64(const void *key, size_t key_len, const void *data, size_t len,
			   char *buf, size_t size);
int hub_hmac_sha256_hex(const void *key, size_t key_len, const void *data, size_t len,
			char *buf, size_t size);

/* Constant-time comparison: 1 when a and b have the same length and bytes,
 * else 0. Time depends only on the lengths. */
int hub_ct_equal(const void *a, size_t a_len, const void *b, size_t b_len);

/* Verifies a base64 HMAC-SHA256 signature (as Shopify and WooCommerce send)
 * of body under secret, constant-time. Returns 1 valid, 0 invalid (NULL or
 * malformed signature included). */
int hub_hmac_verify_base64(const char *secret, const void *body, size_t len,
			   const char *signature_b64);

/* Base64 (standard alphabet, padded) encoding; returns a malloc'd string. */
char *hub_base64_encode(const void *data, size_t len);
/* Decodes standard base64 (padding optional); returns malloc'd bytes and
 * their length in *out_len, or NULL when malformed. */
unsigned char *hub_base64_decode(const char *text, size_t *out_len);

/* ---- URLs ----------------------------------------------------------- */

/* Percent-encodes a string for a query value or path segment (RFC 3986
 * unreserved characters kept, everything else %XX). Returns a malloc'd
 * string, or NULL for NULL or out of memory. */
char *hub_url_escape(const char *text);

/* A URL under construction: base + path segments + query parameters. */
struct hub_url {
	char *buf;
	size_t len, cap;
	int has_query;
	int failed;
};

/* Starts a URL from an absolute base ("https://shop.example/admin"). The
 * struct is caller-owned; release it with hub_url_release(). */
void hub_url_init(struct hub_url *url, const char *base);
/* Appends a literal path ("/orders.json") - not escaped. */
void hub_url_path(struct hub_url *url, const char *path);
/* Appends one escaped path segment ("/" + escaped; no second '/' when the
 * URL already ends with one). */
void hub_url_segment(struct hub_url *url, const char *segment);
/* Appends "?k=v" or "&k=v", both escaped. A NULL value is skipped. */
void hub_url_query(struct hub_url *url, const char *key, const char *value);
void hub_url_query_int(struct hub_url *url, const char *key, long long value);
/* The URL built so far (borrowed), or NULL after an allocation failure. */
const char *hub_url_str(const struct hub_url *url);
/* Gives the buffer to the caller (free()), leaving url empty. */
char *hub_url_detach(struct hub_url *url);
void hub_url_release(struct hub_url *url);

/* Finds the URL with rel="<rel>" in an RFC 8288 `Link` header value
 * ("<https://a/b?page_info=x>; rel=\"next\", <...>; rel=\"previous\"").
 * Returns a malloc'd URL or NULL when absent or malformed. */
char *hub_link_find(const char *link_header, const char *rel);

/* Returns the value of query parameter `key` in `url`, unescaped (%XX and
 * '+' as space, as forms encode) and malloc'd, or NULL. When repeated, the
 * last value wins; "?flag" gives "". A string without "?" and without
 * "://" is read as a bare query string or form body ("webhook_id=15"). */
char *hub_url_query_get(const char *url, const char *key);

/* ---- JSON getters --------------------------------------------------- */

/* Each getter looks up `key` in `obj`. Missing or null: the `_opt` variants
 * return 0 and leave *out untouched (default kept); the plain ones fail.
 * Wrong type: fail. Error messages name `ctx.key` ("order.line_items[2].sku")
 * and the type found. `ctx` may be NULL. Strings are borrowed from obj. */
int hub_json_str(const json_t *obj, const char *key, const char **out, const char *ctx,
		 struct hub_error *err);
int hub_json_str_opt(const json_t *obj, const char *key, const char **out, const char *ctx,
		     struct hub_error *err);
/* Integer; also accepts a string of digits (ids often come as either). */
int hub_json_int(const json_t *obj, const char *key, int64_t *out, const char *ctx,
		 struct hub_error *err);
int hub_json_int_opt(const json_t *obj, const char *key, int64_t *out, const char *ctx,
		     struct hub_error *err);
int hub_json_bool_opt(const json_t *obj, const char *key, int *out, const char *ctx,
		      struct hub_error *err);
/* Object or array (borrowed). */
int hub_json_object(const json_t *obj, const char *key, json_t **out, const char *ctx,
		    struct hub_error *err);
int hub_json_object_opt(const json_t *obj, const char *key, json_t **out, const char *ctx,
			struct hub_error *err);
int hub_json_array(const json_t *obj, const char *key, json_t **out, const char *ctx,
		   struct hub_error *err);
int hub_json_array_opt(const json_t *obj, const char *key, json_t **out, const char *ctx,
		       struct hub_error *err);
/* An id that may be a JSON integer or string, as a string in buf. */
int hub_json_id(const json_t *obj, const char *key, char *buf, size_t size, const char *ctx,
		struct hub_error *err);
/* A time field (RFC 3339) converted to UTC ms; see hub_time_parse. An
 * empty string counts as missing (WooCommerce writes "" for no date). */
int hub_json_time_opt(const json_t *obj, const char *key, int assume_utc, int64_t *out,
		      const char *ctx, struct hub_error *err);

/*
 * Parses the JSON text buf (len bytes, need not be NUL-terminated) into
 * jansson values, like json_loadb(buf, len, flags, error) and accepting and
 * refusing the same texts, but several times faster: use it for payloads
 * read on every delivery or page. Handles the flags JSON_REJECT_DUPLICATES,
 * JSON_DECODE_ANY and JSON_ALLOW_NUL itself and passes any other flag on to
 * json_loadb. Returns a new reference, or NULL with *error (when not NULL)
 * giving line, column, byte position and the reason. Any thread.
 */
json_t *hub_json_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

/* Sets obj[key] to the canonical time string of utc_ms (helper for
 * building records). Returns 0 or -1. */
int hub_json_set_time(json_t *obj, const char *key, int64_t utc_ms);
/* Sets obj[key] to a copy of str, or to null when str is NULL/empty. */
int hub_json_set_str(json_t *obj, const char *key, const char *str);

/* A string field read as text that may be absent: *out is obj[key]
 * (borrowed), or NULL when it is missing, null or "" (sources write all
 * three for "none"). Unlike the _opt getters, *out is always set. A wrong
 * type fails as in hub_json_str. Since libhubsdk 3:0:2. */
int hub_json_str_or_null(const json_t *obj, const char *key, const char **out,
			 const char *ctx, struct hub_error *err);

/* ---- canonical records ---------------------------------------------- */

/* A postal address as a source gives it, for hub_address_new(). Every
 * member may be NULL; "" counts as absent. Strings are borrowed. */
struct hub_address {
	const char *name;       /* the addressee as one text */
	const char *first_name;
	const char *last_name;
	const char *company;
	const char *address1;   /* street lines */
	const char *address2;
	const char *city;
	const char *region;     /* state or province: a code ("CA", "JP13", "TH-10") or a name */
	const char *zip;
	const char *country;    /* ISO 3166-1 alpha-2 ("US") or a name */
	const char *phone;
};

/* Builds a canonical address (the "address_or_null" object of
 * sdk/schema/order.json) with all thirteen keys, absent parts null. region
 * goes to province_code when it looks like a subdivision code (1 to 10
 * characters of A-Z, 0-9 and '-'), else to province; country goes to
 * country_code when it is two upper-case letters, else to country. Lengths
 * are not checked (the host validates records against the schema). Returns
 * a new reference, or NULL when memory runs out or a part is not valid
 * UTF-8. Since libhubsdk 3:0:2. */
json_t *hub_address_new(const struct hub_address *a);

/* ---- carriers ------------------------------------------------------- */

/* Normalises a carrier name as marketplaces write it ("UPS", "United Parcel
 * Service", "FedEx Ground", "USPS", "DHL Express") to a canonical code:
 * "ups", "fedex", "usps", "dhl", or the input lower-cased with each run of
 * spaces or other characters outside [a-z0-9] replaced by one '_' ("La
 * Poste - Colissimo" -> "la_poste_colissimo"), written into buf. Returns
 * -1 when nothing is left or buf is too small. */
int hub_carrier_code(const char *name, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* HUB_SDK_H */
