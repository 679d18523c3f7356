/*
 * sandbox.h - internals of hub-sandbox, the local stand-in for the upstream
 * APIs (Shopify Admin REST, WooCommerce REST v3, Amazon SP-API, UPS, FedEx,
 * USPS and DHL tracking).
 *
 * The sandbox is one process and one libevent loop. A "world" holds stores
 * (Shopify shops, WooCommerce sites, Amazon sellers), their orders and the
 * carriers' shipments. Everything is generated deterministically from the
 * seed and changes along a simulated clock: events (new orders, payments,
 * edits, cancellations, fulfillments, carrier scans) sit in a heap ordered by
 * (simulated time, sequence) and are applied when the clock passes them. The
 * API modules render the same world in each provider's own JSON shape. Not
 * installed, not a public interface: every function here is called from the
 * loop thread only.
 */
#ifndef HUB_SANDBOX_H
#define HUB_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

/* ---- APIs ----------------------------------------------------------- */

enum sb_api {
	SB_SHOPIFY = 0,
	SB_WOO = 1,
	SB_AMAZON = 2,
	SB_UPS = 3,
	SB_FEDEX = 4,
	SB_USPS = 5,
	SB_DHL = 6,
	SB_API_COUNT = 7
};

/* Carriers are numbered like their API minus SB_UPS. */
enum sb_carrier { SB_CARRIER_UPS = 0, SB_CARRIER_FEDEX, SB_CARRIER_USPS, SB_CARRIER_DHL,
		  SB_CARRIER_COUNT };

/* Short lower-case name ("shopify", "woocommerce", "amazon", "ups", ...). */
const char *sb_api_name(int api);
/* Parses such a name (also "woo"); returns the api or -1. */
int sb_api_parse(const char *name);
/* "ups", "fedex", "usps", "dhl". */
const char *sb_carrier_code(int carrier);
/* Carrier from a marketplace's company name ("UPS", "FedEx Ground",
 * "DHL Express", "usps"); -1 when it is none of the four. */
int sb_carrier_from_name(const char *name);

/* ---- deterministic randomness (xoshiro256** seeded by splitmix64) --- */

struct sb_rng {
	uint64_t s[4];
};

/* Seeds a stream: the same (seed, stream) always gives the same numbers. */
void sb_rng_seed(struct sb_rng *r, uint64_t seed, uint64_t stream);
uint64_t sb_rng_next(struct sb_rng *r);
/* Uniform in [0, 1). */
double sb_rng_unit(struct sb_rng *r);
/* Uniform in [0, n) (n > 0), without modulo bias. */
uint64_t sb_rng_below(struct sb_rng *r, uint64_t n);
/* Uniform in [lo, hi] inclusive. */
int64_t sb_rng_range(struct sb_rng *r, int64_t lo, int64_t hi);
/* 1 with probability p. */
int sb_rng_chance(struct sb_rng *r, double p);
/* FNV-1a 64 of a string, for deriving stream numbers from names. */
uint64_t sb_hash_str(const char *s);

/* ---- static data tables (data.c) ------------------------------------ */

struct sb_country {
	const char *code;      /* ISO 3166 alpha-2 */
	const char *name;      /* English name, as Shopify writes it */
	const char *currency;  /* ISO 4217 */
	int exponent;          /* minor-unit digits (JPY 0) */
	int tax_bp;            /* default tax rate, basis points */
	int taxes_included;    /* VAT included in prices */
	int locale;            /* index into the name/street tables */
	const char *phone_cc;  /* "+1" */
	const char *marketplace_id, *marketplace_name; /* Amazon */
	const char *tax_title;
};

struct sb_city {
	const char *country;   /* alpha-2 */
	const char *city, *province, *province_code, *zip;
	double lat, lon;
	int tz_min;            /* UTC offset in minutes (no DST in the sandbox) */
	int tax_bp;            /* 0: country default */
};

enum sb_variant_kind { SB_VAR_NONE, SB_VAR_SIZE, SB_VAR_COLOR, SB_VAR_SIZE_COLOR, SB_VAR_SHOE,
		       SB_VAR_SCENT };

struct sb_product {
	const char *title, *product_type, *vendor, *code;
	int usd_cents;
	int grams;
	int variants;          /* enum sb_variant_kind */
};

extern const struct sb_country sb_countries[];
extern const int sb_ncountries;
extern const struct sb_city sb_cities[];
extern const int sb_ncities;
extern const struct sb_product sb_products[];
extern const int sb_nproducts;

/* Index of a country by code, or -1. */
int sb_country_find(const char *code);
/* A random city of a country (index into sb_cities). */
int sb_city_pick(struct sb_rng *r, const char *country);
/* Random first/last name and street for a locale (borrowed strings). */
const char *sb_first_name(struct sb_rng *r, int locale);
const char *sb_last_name(struct sb_rng *r, int locale);
const char *sb_street(struct sb_rng *r, int locale);
/* Number of variants of a product and the variant's title ("M / Black",
 * NULL for the default variant) and SKU suffix ("M-BLK", "" default). */
int sb_variant_count(int kind);
const char *sb_variant_title(int kind, int v, char *buf, size_t size);
const char *sb_variant_code(int kind, int v, char *buf, size_t size);
/* Unit price of a product variant in a currency, in minor units, with the
 * usual retail endings (x.99, x.95, 2980 yen). */
int64_t sb_product_price(int product, int variant, const char *currency);
/* ASCII e-mail local part from UTF-8 names ("müller" -> "mueller"). */
void sb_ascii_fold(const char *in, char *out, size_t size);

/* ---- time and money formatting (fmt.c) ------------------------------ */

/* Times are int64 milliseconds since the epoch, UTC. */
/* "2026-03-01T10:00:00-05:00" (Shopify, FedEx): local time with offset. */
void sb_fmt_time_offset(int64_t ms, int tz_min, char *buf, size_t size);
/* "2026-03-01T15:00:00Z". */
void sb_fmt_time_z(int64_t ms, char *buf, size_t size);
/* "2026-03-01T10:00:00": local (tz_min) time without offset. */
void sb_fmt_time_local(int64_t ms, int tz_min, char *buf, size_t size);
/* strftime-like pieces for UPS: "20260301" and "100000" (local). */
void sb_fmt_date_compact(int64_t ms, int tz_min, char *buf, size_t size);
void sb_fmt_hms_compact(int64_t ms, int tz_min, char *buf, size_t size);
/* "2026-03-01" (local). */
void sb_fmt_date(int64_t ms, int tz_min, char *buf, size_t size);
/* Parses RFC 3339 / ISO 8601 ("2026-03-01T10:00:00-05:00", "...Z",
 * "2026-03-01 10:00:00", "2026-03-01"); without an offset the time is read
 * in default_tz_min. Fractional seconds are accepted. 0 or -1. */
int sb_parse_time(const char *text, int default_tz_min, int64_t *ms);
/* Whether text carries an explicit offset (Z or +hh:mm). */
int sb_time_has_offset(const char *text);
/* "12.34" / "2980" for an amount in minor units. */
void sb_fmt_money(int64_t minor, int exponent, char *buf, size_t size);
/* Amount as a JSON number (WooCommerce's line item price). */
double sb_money_double(int64_t minor, int exponent);

/* JSON values: a string (NULL -> null), a string or null when empty, an
 * amount "12.34", a time with offset / with Z / local without offset (0 ms
 * -> null). New references. */
json_t *sb_jstr(const char *s);
json_t *sb_jstr0(const char *s);
json_t *sb_jmoney(int64_t minor, int exponent);
json_t *sb_jtime(int64_t ms, int tz_min);
json_t *sb_jtime_z(int64_t ms);
json_t *sb_jtime_local(int64_t ms, int tz_min);

/* ---- small hash map from strings to pointers (map.c) ----------------- */

struct sb_map {
	struct sb_map_slot *slots;
	size_t cap, count;
};

void sb_map_init(struct sb_map *m);
void sb_map_release(struct sb_map *m);       /* frees keys, not values */
void *sb_map_get(const struct sb_map *m, const char *key);
/* Inserts or replaces; the key is copied. 0 or -1 (out of memory). */
int sb_map_put(struct sb_map *m, const char *key, void *value);
/* Removes; returns the old value or NULL. */
void *sb_map_del(struct sb_map *m, const char *key);
/* Iteration: returns the next slot index >= *pos holding an entry, or -1. */
long sb_map_next(const struct sb_map *m, size_t *pos, const char **key, void **value);

/* ---- configuration (config.c) --------------------------------------- */

enum sb_fault_kind { SB_FAULT_NONE = 0, SB_FAULT_429, SB_FAULT_5XX, SB_FAULT_DROP,
		     SB_FAULT_TIMEOUT, SB_FAULT_TRUNCATE, SB_FAULT_MALFORMED,
		     SB_FAULT_EXPIRED, SB_FAULT_KINDS };
/* Names used in stats and config ("rate_429", "drop", ...). */
const char *sb_fault_name(int kind);

struct sb_faults {
	double rate_429, rate_5xx, drop, timeout, truncate, malformed;
	double expire;        /* share answered with an expired-token error */
	double slow;          /* share of responses delayed by slow_ms */
	int slow_ms;
	int timeout_ms;       /* how long a "timeout" holds the request */
	int retry_after_s;    /* Retry-After of an injected 503 (carrier APIs) */
};

struct sb_config {
	uint64_t seed;
	int orders;           /* initial orders per store */
	int shops[3];         /* stores per marketplace api */
	double speed;         /* simulated seconds per real second (0 frozen) */
	int64_t start_ms;     /* simulated clock at startup */
	int history_days;     /* initial orders spread over this many days */
	double order_interval_s; /* mean simulated seconds between new orders per store */
	double auto_fulfill[3]; /* share of paid orders the simulation fulfils itself */
	double transit_factor; /* scales carrier transit times */
	int limits_sim_clock; /* rate limits follow the simulated clock */
	char public_base[256]; /* overrides http://<Host> in Shopify Link URLs */
	char api_version[16]; /* Shopify version for webhooks */
	/* Shopify */
	double shopify_bucket, shopify_leak;
	/* Amazon */
	double amz_search_rate, amz_search_burst, amz_get_rate, amz_get_burst;
	double amz_confirm_rate, amz_confirm_burst;
	int amz_token_ttl_s;
	/* carriers */
	double carrier_rate[SB_CARRIER_COUNT], carrier_burst[SB_CARRIER_COUNT];
	int carrier_token_ttl_s[SB_CARRIER_COUNT];
	/* webhooks */
	char hook_url[3][512];  /* per marketplace api; empty: none */
	double hook_duplicate, hook_out_of_order;
	int hook_retries, hook_retry_ms, hook_reorder_ms, hook_timeout_s;
	int hook_conns;         /* connections per destination (1..16) */
	/* faults per api (also settable at run time) */
	struct sb_faults faults[SB_API_COUNT];
	int quiet;
};

/* Defaults (documented in docs/sandbox.md). */
void sb_config_defaults(struct sb_config *c);
/* Applies a JSON config object on top; err gets a message on failure. */
int sb_config_apply(struct sb_config *c, const json_t *j, char *err, size_t errsz);
/* Applies one fault object {"api":"shopify"|"*", "rate_429":..}; 0 or -1. */
int sb_faults_apply(struct sb_config *c, const json_t *j, char *err, size_t errsz);
/* Sets one API's faults back to none, with the default durations. */
void sb_faults_reset(struct sb_faults *f);
json_t *sb_faults_json(const struct sb_config *c);

/* ---- the world (world.c) --------------------------------------------- */

#define SB_MAX_LINES 6
#define SB_MAX_SCANS 14

enum sb_pay { SB_PAY_PENDING, SB_PAY_PAID, SB_PAY_REFUNDED, SB_PAY_VOIDED };

enum sb_stage { SB_STAGE_LABEL, SB_STAGE_PICKUP, SB_STAGE_DEPART, SB_STAGE_ARRIVE,
		SB_STAGE_OUT, SB_STAGE_ATTEMPT, SB_STAGE_DELIVERED };

/* Shopify fulfillment shipment_status values, in the order they progress. */
enum sb_ship_status { SB_SS_NONE = 0, SB_SS_LABEL_PRINTED, SB_SS_CONFIRMED, SB_SS_IN_TRANSIT,
		      SB_SS_OUT_FOR_DELIVERY, SB_SS_ATTEMPTED, SB_SS_DELIVERED, SB_SS_FAILURE };
const char *sb_ship_status_name(int s);
int sb_ship_status_parse(const char *s);

struct sb_address {
	char first[40], last[40], company[48];
	char address1[80], address2[40];
	char city[48], province[48], province_code[12], zip[16];
	char country[32], country_code[3];
	char phone[32];
	double lat, lon;
	int tz_min;
};

struct sb_line {
	int64_t id;
	int64_t fo_line_id;     /* Shopify fulfillment order line */
	char item_id[16];       /* Amazon orderItemId */
	int product, variant;
	int quantity, fulfilled;
	int64_t price;          /* unit price, minor units */
	int64_t discount;       /* allocated to the whole line */
	int64_t tax;            /* of the whole line */
};

struct sb_scan {
	int64_t at;
	int stage;
	int where;              /* 0 origin, 1.. hubs, 9 destination */
};

struct sb_shipment;

struct sb_fevent {             /* Shopify fulfillment event */
	int64_t id;
	int status;             /* enum sb_ship_status */
	int64_t at;
	char message[64];
};

struct sb_fulfillment {
	int64_t id;
	struct sb_order *order;
	int seq;                /* "#1001.<seq>" */
	int64_t created, updated;
	int cancelled;
	int shipment_status;    /* enum sb_ship_status */
	char company[32], number[40], url[200];
	struct sb_shipment *shipment;
	int nlines;
	int line_idx[SB_MAX_LINES];
	int line_qty[SB_MAX_LINES];
	struct sb_fevent *events;
	int nevents, capevents;
	char package_ref[24];   /* Amazon packageReferenceId */
	char service[40];
};

struct sb_store;

struct sb_order {
	struct sb_store *store;
	int64_t id;             /* Shopify / WooCommerce numeric id */
	char amz_id[24];        /* Amazon "123-1234567-1234567" */
	int number;
	int64_t created, updated, paid_at, cancelled_at, closed_at, completed_at;
	uint64_t upd_seq;
	int pay;                /* enum sb_pay */
	int cancel_reason;      /* index into a reason table */
	int64_t customer_id;
	char email[96], phone[32], ip[16];
	char note[128], tags[96];
	char token[33], cart_token[33], checkout_token[33], order_key[24];
	int64_t checkout_id;
	struct sb_address ship, bill;
	int nlines;
	struct sb_line lines[SB_MAX_LINES];
	int64_t shipping;       /* shipping price, minor */
	int ship_method;
	int tax_bp, taxes_included;
	int discount_kind;      /* 0 none, 1 percent 10, 2 percent 15, 3 fixed */
	int64_t discount_total;
	int payment_method;
	int64_t fo_id;          /* Shopify fulfillment order */
	int64_t fo_updated;
	struct sb_fulfillment **fuls;
	int nfuls, capfuls;
	int edits;
	struct sb_rng rng;      /* this order's own stream (its lifecycle) */
	char *cache;            /* rendered JSON of the store's api, or NULL */
	size_t cache_len;
};

struct sb_leaky {
	double level;
	int64_t last_us;
};

struct sb_tbucket {
	double tokens;
	int64_t last_us;
	int init;
};

struct sb_webhook_sub {             /* registered through POST /webhooks.json */
	int64_t id;
	char topic[40];
	char address[400];
	int64_t created;
};

struct sb_store {
	int api;                /* SB_SHOPIFY, SB_WOO or SB_AMAZON */
	int index;              /* 1-based within its api */
	char name[80];          /* shop domain / site host / seller id */
	char connector[80];     /* name used in webhook URL templates */
	int country;            /* index into sb_countries */
	int city;               /* warehouse city */
	int tz_min;
	char token[80];         /* Shopify access token / Woo consumer key */
	char secret[80];        /* Woo consumer secret / Amazon refresh token */
	char hook_secret[80];   /* webhook signing secret */
	int64_t shop_id, location_id;
	int64_t next_order_id, next_line_id, next_ful_id, next_misc_id, next_customer_id;
	int next_number;
	struct sb_rng rng;      /* arrivals and order contents */
	struct sb_order **orders; /* creation order == id order */
	int norders, caporders;
	struct sb_leaky bucket; /* Shopify leaky bucket */
	struct sb_tbucket tb[3]; /* Amazon: search, get, confirm */
	struct sb_webhook_sub *subs;
	int nsubs, capsubs;
	int hook_failures;      /* WooCommerce consecutive delivery failures */
	int hook_disabled;
	long requests, throttled;
	char site_url[160];     /* WooCommerce home URL */
};

struct sb_shipment {
	int carrier;
	char number[40];
	int64_t created;
	struct sb_address from, to;
	int hub_city[3];
	int nhubs;
	int service;
	int weight_g;
	int nscans;
	struct sb_scan scans[SB_MAX_SCANS];
	struct sb_fulfillment *ful;   /* NULL for numbers created outside a store */
	char reference[32];
	char *cache;                  /* last rendered tracking body, or NULL */
	size_t cache_len;
	int cache_n, cache_api;       /* visible scans and api it was rendered for */
};

/* An event in the simulation heap. */
enum sb_ev_kind { SB_EV_ARRIVAL, SB_EV_PAY, SB_EV_EDIT, SB_EV_CANCEL, SB_EV_FULFILL,
		  SB_EV_SCAN, SB_EV_EXPIRE_UNPAID };

struct sb_event {
	int64_t at;
	uint64_t seq;
	int kind;
	int arg;
	void *target;
};

struct sb_world;

/* Change notifications (webhook triggers), called synchronously. */
enum sb_topic { SB_TOPIC_ORDER_CREATE, SB_TOPIC_ORDER_UPDATE, SB_TOPIC_ORDER_CANCEL,
		SB_TOPIC_FUL_CREATE, SB_TOPIC_FUL_UPDATE };
typedef void (*sb_notify_fn)(struct sb_world *w, int topic, struct sb_order *o,
			     struct sb_fulfillment *f, void *arg);

struct sb_world {
	const struct sb_config *cfg;
	int64_t now;            /* simulated ms up to which events were applied */
	struct sb_store **stores;
	int nstores;
	int first[3], count[3]; /* index range of each marketplace api's stores */
	struct sb_map by_name;  /* "<api>:<name>" -> store */
	struct sb_map shipments; /* tracking number -> shipment */
	struct sb_shipment **ships; /* creation order */
	int nships, capships;
	struct sb_event *heap;
	size_t nheap, capheap;
	uint64_t seq;
	uint64_t upd_seq;
	struct sb_rng misc;     /* shipments created outside stores */
	sb_notify_fn notify;
	void *notify_arg;
	long events_applied;
};

/* Builds the world: stores, catalogs, initial orders with their history up
 * to cfg->start_ms. Returns NULL on allocation failure. */
struct sb_world *sb_world_new(const struct sb_config *cfg);
void sb_world_free(struct sb_world *w);
/* Applies every event due at or before now_ms; returns how many. */
long sb_world_advance(struct sb_world *w, int64_t now_ms);
/* Store lookups. */
struct sb_store *sb_world_store(struct sb_world *w, int api, const char *name);
struct sb_order *sb_store_order(struct sb_store *s, int64_t id);
struct sb_order *sb_store_order_amz(struct sb_store *s, const char *amz_id);
struct sb_shipment *sb_world_shipment(struct sb_world *w, const char *number);
/* Marks an order changed at the world's current time: updated_at moves,
 * the cached rendering is dropped, orders/updated is signalled. */
void sb_order_touch(struct sb_world *w, struct sb_order *o);
/* Fulfils quantities of an order (line index -> qty; qty -1 = all left)
 * with a tracking number; creates the carrier shipment when the carrier is
 * one of the four (number NULL: generated). Returns the fulfillment or NULL
 * (nothing left to fulfil). Signals fulfillments/create and orders/updated. */
struct sb_fulfillment *sb_order_fulfill(struct sb_world *w, struct sb_order *o, int nidx,
					const int *idx, const int *qty, const char *company,
					const char *number, const char *url);
/* Cancels an unfulfilled order (refund or void); -1 when it cannot be. */
int sb_order_cancel(struct sb_world *w, struct sb_order *o, int reason);
/* Marks a pending order paid (and plans its fulfillment); -1 if not pending. */
int sb_order_mark_paid(struct sb_world *w, struct sb_order *o);
/* Points a fulfillment at a new tracking number (update_tracking). */
void sb_fulfillment_retrack(struct sb_world *w, struct sb_fulfillment *f, const char *company,
			    const char *number, const char *url);
/* Adds a Shopify fulfillment event and moves shipment_status. */
struct sb_fevent *sb_fulfillment_add_event(struct sb_world *w, struct sb_fulfillment *f,
					   int status, int64_t at, const char *message);
/* Creates a carrier shipment (number NULL: generated) not tied to a store. */
struct sb_shipment *sb_world_new_shipment(struct sb_world *w, int carrier, const char *number,
					  int64_t created);
/* Scans visible at time now (count of leading scans with at <= now). */
int sb_shipment_visible(const struct sb_shipment *s, int64_t now);
/* Tracking URL on the carrier's site. */
void sb_tracking_url(int carrier, const char *number, char *buf, size_t size);
/* Order totals. */
int64_t sb_order_line_total(const struct sb_order *o);   /* sum price*qty */
int64_t sb_order_tax(const struct sb_order *o);
int64_t sb_order_total(const struct sb_order *o);
int sb_order_fulfilled_qty(const struct sb_order *o);
int sb_order_total_qty(const struct sb_order *o);
/* Cancel reason name ("customer", ...). */
const char *sb_cancel_reason(int r);
/* Store's currency exponent / code. */
int sb_store_exp(const struct sb_store *s);
const char *sb_store_currency(const struct sb_store *s);
/* The carrier a store uses by default for a destination. */
int sb_store_pick_carrier(struct sb_store *s, struct sb_rng *r, const struct sb_address *to);

/* ---- limits (limits.c) ----------------------------------------------- */

/* Leaky bucket (Shopify): a request adds 1; the level leaks at leak/s. On
 * success returns 1 and *used is the level after the request; when full
 * returns 0 and *retry_after_s says when one request will fit. */
int sb_leaky_take(struct sb_leaky *b, double size, double leak, int64_t now_us, double *used,
		  double *retry_after_s);
/* Token bucket (Amazon, carriers): starts full at burst, refills at rate/s.
 * Returns 1 when a token was taken, else 0 with *wait_s until one exists. */
int sb_tbucket_take(struct sb_tbucket *b, double rate, double burst, int64_t now_us,
		    double *wait_s);

/* ---- the server (server.c) ------------------------------------------- */

struct sb_token {
	int api;
	struct sb_store *store;   /* Amazon seller; NULL for carriers */
	int64_t expires;          /* simulated ms */
	uint64_t generation;
};

struct sb_stats {
	long requests[SB_API_COUNT];
	long status[SB_API_COUNT][6];     /* by class 1xx..5xx, [0] other */
	long throttled[SB_API_COUNT];     /* 429 from rate limits */
	long faults[SB_API_COUNT][SB_FAULT_KINDS];
	long slowed[SB_API_COUNT];
	long control;
	long hooks_sent, hooks_ok, hooks_failed, hooks_duplicates, hooks_delayed, hooks_retries,
		hooks_dropped, hooks_pings;
};

struct sb_hooks;

struct sb_server {
	struct event_base *base;
	struct evhttp *http;
	struct sb_config cfg;
	struct sb_world *world;
	struct sb_hooks *hooks;
	/* simulated clock */
	int64_t clock_base_ms;    /* simulated time at clock_real0 */
	int64_t clock_real0_us;   /* monotonic real time of the last rebase */
	double speed;
	int64_t tick_offset_ms;
	struct event *timer;
	/* credentials */
	struct sb_map tokens;     /* access token -> struct sb_token */
	uint64_t token_gen[SB_API_COUNT]; /* bumped by expire_tokens */
	struct sb_map nonces;     /* WooCommerce "<key>:<nonce>" -> (void*)timestamp */
	struct sb_tbucket carrier_tb[SB_CARRIER_COUNT];
	struct sb_rng fault_rng[SB_API_COUNT];
	struct sb_rng token_rng;
	uint64_t request_seq;
	struct sb_stats stats;
	int port;
	char ups_id[64], ups_secret[64], fedex_id[64], fedex_secret[64], usps_id[64],
		usps_secret[64], dhl_key[64], lwa_id[96], lwa_secret[64];
};

/* Simulated "now" in ms (also applies due world events). */
int64_t sb_now(struct sb_server *srv);
/* Clock for rate limits, in microseconds (real monotonic or simulated). */
int64_t sb_limits_now_us(struct sb_server *srv);
/* Real monotonic microseconds. */
int64_t sb_real_us(void);

/* One request being handled. */
struct sb_req {
	struct sb_server *srv;
	struct evhttp_request *req;
	int method;               /* EVHTTP_REQ_* */
	int api;                  /* enum sb_api, or -1 for control */
	char *path;               /* decoded path below the store prefix */
	char *full_path;          /* decoded request path as sent */
	char *raw_path;           /* request path as sent, not decoded */
	char *raw_query;          /* raw query string (may be NULL) */
	int nq;
	char **qk, **qv;          /* decoded query pairs in order */
	char host[256];           /* Host header */
	char prefix[256];         /* "/shops/<domain>" or "" */
	struct sb_store *store;
	unsigned char *body;
	size_t body_len;
	int fault;                /* decided SB_FAULT_* */
	int slow;                 /* delay the reply */
};

/* Last value of a query parameter (repeated: last wins), or NULL. */
const char *sb_q(const struct sb_req *r, const char *key);
/* Whether a parameter is present at all. */
int sb_q_has(const struct sb_req *r, const char *key);
/* A request header, or NULL. */
const char *sb_header(const struct sb_req *r, const char *name);
/* Adds a response header. */
void sb_set_header(struct sb_req *r, const char *name, const char *value);
/* Sends a reply with body (NUL-terminated or len bytes), content type
 * defaulting to application/json, applying the request's decided faults
 * (truncation, malformed body, delays, dropped connections). */
void sb_reply(struct sb_req *r, int status, const char *body, size_t len);
/* Same with a JSON value (the reference is stolen). */
void sb_reply_json(struct sb_req *r, int status, json_t *j);
/* Same with an evbuffer whose contents are moved out. */
void sb_reply_buf(struct sb_req *r, int status, struct evbuffer *buf);
/* Parses the request body as JSON, or as a form when form_ok; NULL when
 * neither parses. The returned object is a new reference. */
json_t *sb_body_json(struct sb_req *r, int form_ok);
/* Issues an access token for api (store may be NULL) valid ttl_s simulated
 * seconds; writes it into buf. */
void sb_token_issue(struct sb_server *srv, int api, struct sb_store *store, int ttl_s,
		    const char *prefix, char *buf, size_t size);
/* Looks a token up: 1 valid, 0 unknown, -1 expired. */
int sb_token_check(struct sb_server *srv, int api, const char *token, struct sb_store **store);
/* Deterministic request id ("a1b2c3d4-...") into buf (>= 37 bytes). */
void sb_request_id(struct sb_server *srv, char *buf, size_t size);
/* Constant-time string equality. */
int sb_ct_streq(const char *a, const char *b);
/* HMAC-SHA256 in base64 (buf >= 45). */
void sb_hmac_b64(const char *key, size_t key_len, const void *data, size_t len, char *buf,
		 size_t size);
/* Raw HMAC (SHA-256, or SHA-1 when sha1) into out (>= SB_MAX_MAC bytes). */
#define SB_MAX_MAC 64
void sb_hmac_raw(int sha1, const void *key, size_t key_len, const void *data, size_t len,
		 unsigned char *out, unsigned int *out_len);
/* Base64 (standard) and base64url encodings; malloc'd. */
char *sb_b64(const void *data, size_t len, int url);
unsigned char *sb_unb64(const char *text, size_t *len, int url);
/* Percent-decoding (returns malloc'd) and RFC 3986 encoding (malloc'd). */
char *sb_urldecode(const char *s, size_t len, int plus_space);
char *sb_urlencode(const char *s);

/* Credentials of an "Authorization: Basic" header into user/pass; 0 or -1. */
int sb_basic_auth(const struct sb_req *r, char *user, size_t usz, char *pass, size_t psz);
/* Bearer token of an "Authorization: Bearer" header (borrowed) or NULL. */
const char *sb_bearer(const struct sb_req *r);

/* ---- API handlers: each returns 1 when it handled the request -------- */

int sb_shopify_handle(struct sb_req *r);
int sb_woo_handle(struct sb_req *r);
int sb_amazon_handle(struct sb_req *r);
int sb_carrier_handle(struct sb_req *r, int api);
void sb_control_handle(struct sb_req *r);
/* Each API's own error body for an injected 429 or 500/503. */
void sb_shopify_fault(struct sb_req *r, int status);
void sb_woo_fault(struct sb_req *r, int status);
void sb_amazon_fault(struct sb_req *r, int status);
void sb_carrier_fault(struct sb_req *r, int api, int status);

/* Renderers shared with the truth endpoints and webhooks. All return new
 * references. */
json_t *sb_shopify_order_json(struct sb_server *srv, struct sb_order *o);
json_t *sb_shopify_fulfillment_json(struct sb_server *srv, struct sb_fulfillment *f);
json_t *sb_woo_order_json(struct sb_server *srv, struct sb_order *o);
json_t *sb_amazon_order_json(struct sb_server *srv, struct sb_order *o, unsigned include);
#define SB_AMZ_ALL 0xffffu
json_t *sb_carrier_track_json(struct sb_server *srv, int api, struct sb_shipment *s,
			      int64_t now);
/* A cached compact rendering of an order in its store's API shape
 * (borrowed; valid until the order changes). */
const char *sb_order_cached(struct sb_server *srv, struct sb_order *o, size_t *len);

/* ---- webhooks (hooks.c) ---------------------------------------------- */

struct sb_hooks *sb_hooks_new(struct sb_server *srv);
void sb_hooks_free(struct sb_hooks *h);
/* World notification callback: queues deliveries. */
void sb_hooks_notify(struct sb_world *w, int topic, struct sb_order *o,
		     struct sb_fulfillment *f, void *arg);
/* Sends the WooCommerce pings (called once after startup). */
void sb_hooks_ping(struct sb_hooks *h);
/* Deliveries waiting or in flight. */
long sb_hooks_pending(const struct sb_hooks *h);

/* ---- logging --------------------------------------------------------- */

void sb_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int sb_quiet;

#endif /* HUB_SANDBOX_H */
