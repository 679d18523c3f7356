/*
 * world.c - the sandbox's simulated world: stores (Shopify shops,
 * WooCommerce sites, Amazon sellers) with their orders, fulfillments and the
 * carriers' shipments, and the event heap that moves them along the
 * simulated clock.
 *
 * Determinism: each store has its own random stream (arrivals and order
 * contents) and each order gets its own stream at creation, from which its
 * whole lifecycle is drawn (payment, edits, cancellation, fulfillment,
 * carrier scans). Events are ordered by (time, sequence number), so the same
 * seed and configuration always give the same world at the same simulated
 * time, and a client's actions on one order never shift another's numbers.
 * Record timestamps have whole-second precision, as the providers show them.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

#define SEC 1000LL
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

static const char *const api_names[SB_API_COUNT] = {
	"shopify", "woocommerce", "amazon", "ups", "fedex", "usps", "dhl",
};

const char *sb_api_name(int api)
{
	return api >= 0 && api < SB_API_COUNT ? api_names[api] : "?";
}

int sb_api_parse(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < SB_API_COUNT; i++)
		if (strcmp(name, api_names[i]) == 0)
			return i;
	if (strcmp(name, "woo") == 0)
		return SB_WOO;
	return -1;
}

const char *sb_carrier_code(int carrier)
{
	return sb_api_name(SB_UPS + carrier);
}

int sb_carrier_from_name(const char *name)
{
	char low[64];
	size_t i = 0;
	if (!name)
		return -1;
	for (; name[i] && i + 1 < sizeof(low); i++)
		low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
	low[i] = '\0';
	if (strncmp(low, "ups", 3) == 0 || strstr(low, "united parcel"))
		return SB_CARRIER_UPS;
	if (strncmp(low, "fedex", 5) == 0 || strncmp(low, "fdx", 3) == 0 ||
	    strstr(low, "federal express"))
		return SB_CARRIER_FEDEX;
	if (strncmp(low, "usps", 4) == 0 || strstr(low, "postal service"))
		return SB_CARRIER_USPS;
	if (strncmp(low, "dhl", 3) == 0)
		return SB_CARRIER_DHL;
	return -1;
}

static const char *const ss_names[] = {
	NULL, "label_printed", "confirmed", "in_transit", "out_for_delivery",
	"attempted_delivery", "delivered", "failure",
};

const char *sb_ship_status_name(int s)
{
	return s > 0 && s < (int)(sizeof(ss_names) / sizeof(ss_names[0])) ? ss_names[s] : NULL;
}

int sb_ship_status_parse(const char *s)
{
	if (!s)
		return -1;
	for (int i = 1; i < (int)(sizeof(ss_names) / sizeof(ss_names[0])); i++)
		if (strcmp(s, ss_names[i]) == 0)
			return i;
	if (strcmp(s, "label_purchased") == 0)
		return SB_SS_LABEL_PRINTED;
	if (strcmp(s, "ready_for_pickup") == 0)
		return SB_SS_OUT_FOR_DELIVERY;
	return -1;
}

static const char *const cancel_reasons[] = { "customer", "inventory", "fraud", "declined",
					      "other" };

const char *sb_cancel_reason(int r)
{
	return r >= 0 && r < 5 ? cancel_reasons[r] : "other";
}

int sb_store_exp(const struct sb_store *s)
{
	return sb_countries[s->country].exponent;
}

const char *sb_store_currency(const struct sb_store *s)
{
	return sb_countries[s->country].currency;
}

/* ---- event heap -------------------------------------------------------- */

static int ev_less(const struct sb_event *a, const struct sb_event *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static int schedule(struct sb_world *w, int64_t at, int kind, void *target, int arg)
{
	if (w->nheap == w->capheap) {
		size_t ncap = w->capheap ? w->capheap * 2 : 1024;
		struct sb_event *nh = realloc(w->heap, ncap * sizeof(*nh));
		if (!nh)
			return -1;
		w->heap = nh;
		w->capheap = ncap;
	}
	struct sb_event e = { at, ++w->seq, kind, arg, target };
	size_t i = w->nheap++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!ev_less(&e, &w->heap[p]))
			break;
		w->heap[i] = w->heap[p];
		i = p;
	}
	w->heap[i] = e;
	return 0;
}

static void heap_pop(struct sb_world *w, struct sb_event *out)
{
	*out = w->heap[0];
	size_t n = --w->nheap;
	if (n == 0)
		return;
	struct sb_event last = w->heap[n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1;
		if (l >= n)
			break;
		size_t m = l;
		if (l + 1 < n && ev_less(&w->heap[l + 1], &w->heap[l]))
			m = l + 1;
		if (!ev_less(&w->heap[m], &last))
			break;
		w->heap[i] = w->heap[m];
		i = m;
	}
	w->heap[i] = last;
}

/* Record timestamps: whole seconds of the current simulated time. */
static int64_t stamp(const struct sb_world *w)
{
	return w->now / SEC * SEC;
}

static int64_t scaled(const struct sb_world *w, int64_t d)
{
	double f = w->cfg->transit_factor;
	int64_t v = (int64_t)((double)d * f);
	return v / SEC * SEC;
}

/* ---- helpers ------------------------------------------------------------ */

static void hex_token(struct sb_rng *r, char *buf, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i + 1 < n; i++)
		buf[i] = hex[sb_rng_below(r, 16)];
	buf[n - 1] = '\0';
}

static void digits_str(struct sb_rng *r, char *buf, int n)
{
	for (int i = 0; i < n; i++)
		buf[i] = (char)('0' + sb_rng_below(r, 10));
	buf[n] = '\0';
}

static void notify(struct sb_world *w, int topic, struct sb_order *o, struct sb_fulfillment *f)
{
	if (w->notify && w->now >= w->cfg->start_ms)
		w->notify(w, topic, o, f, w->notify_arg);
}

void sb_order_touch(struct sb_world *w, struct sb_order *o)
{
	o->updated = stamp(w);
	o->upd_seq = ++w->upd_seq;
	free(o->cache);
	o->cache = NULL;
	o->cache_len = 0;
	notify(w, SB_TOPIC_ORDER_UPDATE, o, NULL);
}

int64_t sb_order_line_total(const struct sb_order *o)
{
	int64_t t = 0;
	for (int i = 0; i < o->nlines; i++)
		t += o->lines[i].price * o->lines[i].quantity;
	return t;
}

int64_t sb_order_tax(const struct sb_order *o)
{
	int64_t t = 0;
	for (int i = 0; i < o->nlines; i++)
		t += o->lines[i].tax;
	return t;
}

int64_t sb_order_total(const struct sb_order *o)
{
	int64_t t = sb_order_line_total(o) - o->discount_total + o->shipping;
	if (!o->taxes_included)
		t += sb_order_tax(o);
	return t;
}

int sb_order_fulfilled_qty(const struct sb_order *o)
{
	int n = 0;
	for (int i = 0; i < o->nlines; i++)
		n += o->lines[i].fulfilled;
	return n;
}

int sb_order_total_qty(const struct sb_order *o)
{
	int n = 0;
	for (int i = 0; i < o->nlines; i++)
		n += o->lines[i].quantity;
	return n;
}

/* ---- tracking numbers --------------------------------------------------- */

static int ups_char_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	return (c - 'A' + 2) % 10;
}

/* 1Z + 6 shipper chars + 2 service digits + 7 package digits + check digit. */
static void gen_ups(struct sb_rng *r, char *buf)
{
	static const char alnum[] = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ";
	char body[16];
	for (int i = 0; i < 6; i++)
		body[i] = alnum[sb_rng_below(r, sizeof(alnum) - 1)];
	body[6] = '0';
	body[7] = (char)('1' + sb_rng_below(r, 3)); /* 01 next day, 02 2nd day, 03 ground */
	for (int i = 8; i < 15; i++)
		body[i] = (char)('0' + sb_rng_below(r, 10));
	body[15] = '\0';
	int sum = 0;
	for (int i = 0; i < 15; i++) {
		int v = ups_char_value(body[i]);
		sum += (i % 2) ? v * 2 : v;
	}
	int check = (10 - sum % 10) % 10;
	snprintf(buf, 40, "1Z%s%d", body, check);
}

/* 12 digits, the last a mod-11 check over weights 1,3,7. */
static void gen_fedex(struct sb_rng *r, char *buf)
{
	static const int weights[] = { 1, 3, 7 };
	char d[13];
	d[0] = (char)('1' + sb_rng_below(r, 9));
	for (int i = 1; i < 11; i++)
		d[i] = (char)('0' + sb_rng_below(r, 10));
	int sum = 0;
	for (int i = 10, k = 0; i >= 0; i--, k++)
		sum += (d[i] - '0') * weights[k % 3];
	d[11] = (char)('0' + (sum % 11) % 10);
	d[12] = '\0';
	snprintf(buf, 40, "%s", d);
}

/* 22 digits: "9400" (Ground Advantage) or "9405" (Priority), the last a
 * mod-10 check with weights 3,1 from the right. */
static void gen_usps(struct sb_rng *r, char *buf)
{
	char d[23];
	memcpy(d, sb_rng_chance(r, 0.7) ? "94001" : "94055", 5);
	for (int i = 5; i < 21; i++)
		d[i] = (char)('0' + sb_rng_below(r, 10));
	int sum = 0;
	for (int i = 20, k = 0; i >= 0; i--, k++)
		sum += (d[i] - '0') * ((k % 2 == 0) ? 3 : 1);
	d[21] = (char)('0' + (10 - sum % 10) % 10);
	d[22] = '\0';
	snprintf(buf, 40, "%s", d);
}

/* 10 digits (DHL Express waybill), the last the mod-7 check of the rest. */
static void gen_dhl(struct sb_rng *r, char *buf)
{
	char d[11];
	d[0] = (char)('1' + sb_rng_below(r, 9));
	int64_t v = d[0] - '0';
	for (int i = 1; i < 9; i++) {
		d[i] = (char)('0' + sb_rng_below(r, 10));
		v = v * 10 + (d[i] - '0');
	}
	d[9] = (char)('0' + v % 7);
	d[10] = '\0';
	snprintf(buf, 40, "%s", d);
}

static void gen_tracking(int carrier, struct sb_rng *r, char *buf)
{
	switch (carrier) {
	case SB_CARRIER_UPS:
		gen_ups(r, buf);
		break;
	case SB_CARRIER_FEDEX:
		gen_fedex(r, buf);
		break;
	case SB_CARRIER_USPS:
		gen_usps(r, buf);
		break;
	default:
		gen_dhl(r, buf);
		break;
	}
}

void sb_tracking_url(int carrier, const char *number, char *buf, size_t size)
{
	switch (carrier) {
	case SB_CARRIER_UPS:
		snprintf(buf, size, "https://www.ups.com/track?loc=en_US&tracknum=%s", number);
		break;
	case SB_CARRIER_FEDEX:
		snprintf(buf, size, "https://www.fedex.com/fedextrack/?trknbr=%s", number);
		break;
	case SB_CARRIER_USPS:
		snprintf(buf, size, "https://tools.usps.com/go/TrackConfirmAction?tLabels=%s",
			 number);
		break;
	case SB_CARRIER_DHL:
		snprintf(buf, size,
			 "https://www.dhl.com/en/express/tracking.html?AWB=%s&brand=DHL", number);
		break;
	default:
		buf[0] = '\0';
	}
}

static const char *const company_names[SB_CARRIER_COUNT] = { "UPS", "FedEx", "USPS",
							      "DHL Express" };
static const char *const service_names[SB_CARRIER_COUNT] = {
	"UPS Ground", "FedEx Home Delivery", "USPS Ground Advantage", "DHL Express Worldwide",
};

/* ---- addresses ---------------------------------------------------------- */

static void make_address(struct sb_rng *r, const char *country, const char *first,
			 const char *last, struct sb_address *a)
{
	int ci = sb_country_find(country);
	const struct sb_country *c = &sb_countries[ci < 0 ? 0 : ci];
	const struct sb_city *city = &sb_cities[sb_city_pick(r, country)];
	memset(a, 0, sizeof(*a));
	snprintf(a->first, sizeof(a->first), "%s", first);
	snprintf(a->last, sizeof(a->last), "%s", last);
	if (sb_rng_chance(r, 0.12)) {
		static const char *const companies[] = {
			"Acme Corp", "Globex GmbH", "Initech Ltd", "Umbrella Trading",
			"Stark Industries", "Wayne Enterprises", "Hooli Inc.", "Vandelay Imports",
		};
		snprintf(a->company, sizeof(a->company), "%s", companies[sb_rng_below(r, 8)]);
	}
	const char *street = sb_street(r, c->locale);
	int num = (int)sb_rng_range(r, 1, 2400);
	switch (c->locale) {
	case 1: /* de */
	case 3: /* nl */
		snprintf(a->address1, sizeof(a->address1), "%s %d", street, num % 180 + 1);
		break;
	case 4: /* ja */
		snprintf(a->address1, sizeof(a->address1), "%d-%d-%d %s", num % 9 + 1,
			 num % 23 + 1, num % 31 + 1, street);
		break;
	case 2: /* fr */
		snprintf(a->address1, sizeof(a->address1), "%d %s", num % 120 + 1, street);
		break;
	default:
		snprintf(a->address1, sizeof(a->address1), "%d %s", num, street);
	}
	if (sb_rng_chance(r, 0.2))
		snprintf(a->address2, sizeof(a->address2), "%s %d",
			 c->locale == 0 ? "Apt" : (c->locale == 1 ? "Etage" : "#"),
			 (int)sb_rng_range(r, 1, 40));
	snprintf(a->city, sizeof(a->city), "%s", city->city);
	if (city->province)
		snprintf(a->province, sizeof(a->province), "%s", city->province);
	if (city->province_code)
		snprintf(a->province_code, sizeof(a->province_code), "%s", city->province_code);
	snprintf(a->zip, sizeof(a->zip), "%s", city->zip);
	snprintf(a->country, sizeof(a->country), "%s", c->name);
	snprintf(a->country_code, sizeof(a->country_code), "%s", c->code);
	char d[12];
	digits_str(r, d, 8);
	if (strcmp(c->phone_cc, "+1") == 0)
		snprintf(a->phone, sizeof(a->phone), "+1 %c%c%c-555-01%c%c", '2' + d[0] % 8, d[1],
			 d[2], d[3], d[4]);
	else
		snprintf(a->phone, sizeof(a->phone), "%s %c%c %c%c%c%c %c%c%c", c->phone_cc,
			 '1' + d[0] % 9, d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[0]);
	a->lat = city->lat + (sb_rng_unit(r) - 0.5) * 0.05;
	a->lon = city->lon + (sb_rng_unit(r) - 0.5) * 0.05;
	a->lat = round(a->lat * 1e5) / 1e5;
	a->lon = round(a->lon * 1e5) / 1e5;
	a->tz_min = city->tz_min;
}

static void warehouse_address(const struct sb_store *s, struct sb_address *a)
{
	const struct sb_city *city = &sb_cities[s->city];
	const struct sb_country *c = &sb_countries[s->country];
	memset(a, 0, sizeof(*a));
	snprintf(a->company, sizeof(a->company), "%s Warehouse",
		 s->api == SB_AMAZON ? "Seller" : "Main");
	snprintf(a->first, sizeof(a->first), "Shipping");
	snprintf(a->last, sizeof(a->last), "Dept");
	snprintf(a->address1, sizeof(a->address1), "%d Commerce Way",
		 100 + s->index % 800);
	snprintf(a->city, sizeof(a->city), "%s", city->city);
	if (city->province)
		snprintf(a->province, sizeof(a->province), "%s", city->province);
	if (city->province_code)
		snprintf(a->province_code, sizeof(a->province_code), "%s", city->province_code);
	snprintf(a->zip, sizeof(a->zip), "%s", city->zip);
	snprintf(a->country, sizeof(a->country), "%s", c->name);
	snprintf(a->country_code, sizeof(a->country_code), "%s", c->code);
	snprintf(a->phone, sizeof(a->phone), "%s 555 0100", c->phone_cc);
	a->lat = city->lat;
	a->lon = city->lon;
	a->tz_min = city->tz_min;
}

/* ---- shipments ---------------------------------------------------------- */

static int add_shipment(struct sb_world *w, struct sb_shipment *s)
{
	if (w->nships == w->capships) {
		int ncap = w->capships ? w->capships * 2 : 256;
		struct sb_shipment **n = realloc(w->ships, (size_t)ncap * sizeof(*n));
		if (!n)
			return -1;
		w->ships = n;
		w->capships = ncap;
	}
	if (sb_map_put(&w->shipments, s->number, s))
		return -1;
	w->ships[w->nships++] = s;
	return 0;
}

/* Draws the scan timeline of a shipment labelled at `created`. */
static void plan_scans(struct sb_world *w, struct sb_shipment *s, struct sb_rng *r)
{
	int64_t t = s->created;
	int n = 0;
	s->scans[n++] = (struct sb_scan){ t, SB_STAGE_LABEL, 0 };
	t += scaled(w, sb_rng_range(r, 1 * HOUR, 10 * HOUR));
	s->scans[n++] = (struct sb_scan){ t, SB_STAGE_PICKUP, 0 };
	t += scaled(w, sb_rng_range(r, 2 * HOUR, 8 * HOUR));
	s->scans[n++] = (struct sb_scan){ t, SB_STAGE_DEPART, 0 };
	for (int h = 0; h < s->nhubs; h++) {
		t += scaled(w, sb_rng_range(r, 4 * HOUR, 20 * HOUR));
		s->scans[n++] = (struct sb_scan){ t, SB_STAGE_ARRIVE, 1 + h };
		t += scaled(w, sb_rng_range(r, 1 * HOUR, 6 * HOUR));
		s->scans[n++] = (struct sb_scan){ t, SB_STAGE_DEPART, 1 + h };
	}
	t += scaled(w, sb_rng_range(r, 3 * HOUR, 12 * HOUR));
	s->scans[n++] = (struct sb_scan){ t, SB_STAGE_ARRIVE, 9 };
	t += scaled(w, sb_rng_range(r, 2 * HOUR, 10 * HOUR));
	s->scans[n++] = (struct sb_scan){ t, SB_STAGE_OUT, 9 };
	if (sb_rng_chance(r, 0.06)) {
		t += scaled(w, sb_rng_range(r, 2 * HOUR, 8 * HOUR));
		s->scans[n++] = (struct sb_scan){ t, SB_STAGE_ATTEMPT, 9 };
		t += scaled(w, sb_rng_range(r, 16 * HOUR, 24 * HOUR));
		s->scans[n++] = (struct sb_scan){ t, SB_STAGE_OUT, 9 };
	}
	t += scaled(w, sb_rng_range(r, 1 * HOUR, 7 * HOUR));
	s->scans[n++] = (struct sb_scan){ t, SB_STAGE_DELIVERED, 9 };
	s->nscans = n;
}

static struct sb_shipment *make_shipment(struct sb_world *w, int carrier, const char *number,
					 int64_t created, const struct sb_address *from,
					 const struct sb_address *to, int weight_g,
					 struct sb_rng *r)
{
	struct sb_shipment *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->carrier = carrier;
	s->created = created;
	if (number && *number) {
		snprintf(s->number, sizeof(s->number), "%s", number);
	} else {
		do
			gen_tracking(carrier, r, s->number);
		while (sb_map_get(&w->shipments, s->number));
	}
	s->from = *from;
	s->to = *to;
	s->weight_g = weight_g;
	s->service = (int)sb_rng_below(r, 3);
	s->nhubs = (int)sb_rng_range(r, 1, 3);
	for (int i = 0; i < s->nhubs; i++)
		s->hub_city[i] = sb_city_pick(r, i == s->nhubs - 1 ? to->country_code
								    : from->country_code);
	snprintf(s->reference, sizeof(s->reference), "REF%06d", (int)sb_rng_below(r, 1000000));
	plan_scans(w, s, r);
	if (add_shipment(w, s)) {
		free(s);
		return NULL;
	}
	return s;
}

struct sb_shipment *sb_world_new_shipment(struct sb_world *w, int carrier, const char *number,
					  int64_t created)
{
	struct sb_address from, to;
	struct sb_rng *r = &w->misc;
	const char *cc = carrier == SB_CARRIER_USPS ? "US" : sb_countries[sb_rng_below(r, 6)].code;
	make_address(r, cc, "Shipping", "Dept", &from);
	snprintf(from.company, sizeof(from.company), "Sandbox Fulfillment");
	int ci = sb_country_find(cc);
	int loc = sb_countries[ci].locale;
	make_address(r, cc, sb_first_name(r, loc), sb_last_name(r, loc), &to);
	return make_shipment(w, carrier, number, created / SEC * SEC, &from, &to,
			     (int)sb_rng_range(r, 200, 5000), r);
}

struct sb_shipment *sb_world_shipment(struct sb_world *w, const char *number)
{
	return sb_map_get(&w->shipments, number);
}

int sb_shipment_visible(const struct sb_shipment *s, int64_t now)
{
	int n = 0;
	while (n < s->nscans && s->scans[n].at <= now)
		n++;
	return n;
}

int sb_store_pick_carrier(struct sb_store *s, struct sb_rng *r, const struct sb_address *to)
{
	const char *home = sb_countries[s->country].code;
	double u = sb_rng_unit(r);
	if (strcmp(to->country_code, home) != 0)
		return u < 0.5 ? SB_CARRIER_DHL : (u < 0.75 ? SB_CARRIER_UPS : SB_CARRIER_FEDEX);
	if (strcmp(home, "US") == 0)
		return u < 0.35 ? SB_CARRIER_UPS
				: (u < 0.6 ? SB_CARRIER_FEDEX : (u < 0.9 ? SB_CARRIER_USPS
									  : SB_CARRIER_DHL));
	return u < 0.35 ? SB_CARRIER_UPS : (u < 0.65 ? SB_CARRIER_FEDEX : SB_CARRIER_DHL);
}

/* ---- fulfillment -------------------------------------------------------- */

static int push_ful(struct sb_order *o, struct sb_fulfillment *f)
{
	if (o->nfuls == o->capfuls) {
		int ncap = o->capfuls ? o->capfuls * 2 : 2;
		struct sb_fulfillment **n = realloc(o->fuls, (size_t)ncap * sizeof(*n));
		if (!n)
			return -1;
		o->fuls = n;
		o->capfuls = ncap;
	}
	o->fuls[o->nfuls++] = f;
	return 0;
}

static void schedule_scan_effects(struct sb_world *w, struct sb_shipment *s)
{
	for (int i = 0; i < s->nscans; i++) {
		int st = s->scans[i].stage;
		if (st == SB_STAGE_PICKUP || st == SB_STAGE_OUT || st == SB_STAGE_ATTEMPT ||
		    st == SB_STAGE_DELIVERED)
			schedule(w, s->scans[i].at, SB_EV_SCAN, s, i);
	}
}

static void link_shipment(struct sb_world *w, struct sb_fulfillment *f, int carrier,
			  const char *number, struct sb_rng *r)
{
	struct sb_order *o = f->order;
	struct sb_shipment *s = number && *number ? sb_world_shipment(w, number) : NULL;
	if (!s && carrier >= 0) {
		struct sb_address from;
		int grams = 150;
		warehouse_address(o->store, &from);
		for (int i = 0; i < f->nlines; i++) {
			const struct sb_line *l = &o->lines[f->line_idx[i]];
			grams += sb_products[l->product].grams * f->line_qty[i];
		}
		s = make_shipment(w, carrier, number, f->created, &from, &o->ship, grams, r);
		if (s && !s->ful) {
			s->ful = f;
			schedule_scan_effects(w, s);
		}
	} else if (s && !s->ful) {
		s->ful = f;
		schedule_scan_effects(w, s);
	}
	f->shipment = s;
	if (s)
		snprintf(f->number, sizeof(f->number), "%s", s->number);
}

struct sb_fulfillment *sb_order_fulfill(struct sb_world *w, struct sb_order *o, int nidx,
					const int *idx, const int *qty, const char *company,
					const char *number, const char *url)
{
	struct sb_store *st = o->store;
	struct sb_fulfillment *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->order = o;
	for (int i = 0; i < nidx && f->nlines < SB_MAX_LINES; i++) {
		if (idx[i] < 0 || idx[i] >= o->nlines)
			continue;
		struct sb_line *l = &o->lines[idx[i]];
		int left = l->quantity - l->fulfilled;
		int q = qty[i] < 0 ? left : (qty[i] > left ? left : qty[i]);
		if (q <= 0)
			continue;
		int dup = -1;
		for (int k = 0; k < f->nlines; k++)
			if (f->line_idx[k] == idx[i])
				dup = k;
		if (dup >= 0) {
			int more = left - f->line_qty[dup];
			f->line_qty[dup] += q > more ? more : q;
			continue;
		}
		f->line_idx[f->nlines] = idx[i];
		f->line_qty[f->nlines] = q;
		f->nlines++;
	}
	if (f->nlines == 0) {
		free(f);
		return NULL;
	}
	for (int i = 0; i < f->nlines; i++)
		o->lines[f->line_idx[i]].fulfilled += f->line_qty[i];
	st->next_ful_id += sb_rng_range(&st->rng, 1, 900);
	f->id = st->next_ful_id;
	f->seq = o->nfuls + 1;
	f->created = f->updated = stamp(w);
	int carrier = company ? sb_carrier_from_name(company)
			      : sb_store_pick_carrier(st, &o->rng, &o->ship);
	if (company && *company)
		snprintf(f->company, sizeof(f->company), "%s", company);
	else if (carrier >= 0)
		snprintf(f->company, sizeof(f->company), "%s", company_names[carrier]);
	if (carrier >= 0)
		snprintf(f->service, sizeof(f->service), "%s", service_names[carrier]);
	else
		snprintf(f->service, sizeof(f->service), "Standard");
	snprintf(f->package_ref, sizeof(f->package_ref), "%lld",
		 (long long)(f->id % 100000000));
	link_shipment(w, f, carrier, number, &o->rng);
	if (!f->shipment && number)
		snprintf(f->number, sizeof(f->number), "%s", number);
	if (url && *url)
		snprintf(f->url, sizeof(f->url), "%s", url);
	else if (carrier >= 0 && f->number[0])
		sb_tracking_url(carrier, f->number, f->url, sizeof(f->url));
	if (push_ful(o, f)) {
		free(f);
		return NULL;
	}
	o->fo_updated = stamp(w);
	if (sb_order_fulfilled_qty(o) == sb_order_total_qty(o)) {
		o->completed_at = stamp(w);
		if (o->pay == SB_PAY_PAID && st->api == SB_SHOPIFY)
			o->closed_at = stamp(w);
	}
	sb_order_touch(w, o);
	notify(w, SB_TOPIC_FUL_CREATE, o, f);
	return f;
}

void sb_fulfillment_retrack(struct sb_world *w, struct sb_fulfillment *f, const char *company,
			    const char *number, const char *url)
{
	int carrier = sb_carrier_from_name(company ? company : f->company);
	if (company && *company)
		snprintf(f->company, sizeof(f->company), "%s", company);
	if (f->shipment && f->shipment->ful == f)
		f->shipment->ful = NULL;
	f->shipment = NULL;
	f->number[0] = '\0';
	if (number && *number) {
		link_shipment(w, f, carrier, number, &f->order->rng);
		if (!f->shipment)
			snprintf(f->number, sizeof(f->number), "%s", number);
	}
	if (url && *url)
		snprintf(f->url, sizeof(f->url), "%s", url);
	else if (carrier >= 0 && f->number[0])
		sb_tracking_url(carrier, f->number, f->url, sizeof(f->url));
	else
		f->url[0] = '\0';
	f->updated = stamp(w);
	sb_order_touch(w, f->order);
	notify(w, SB_TOPIC_FUL_UPDATE, f->order, f);
}

struct sb_fevent *sb_fulfillment_add_event(struct sb_world *w, struct sb_fulfillment *f,
					   int status, int64_t at, const char *message)
{
	if (f->nevents == f->capevents) {
		int ncap = f->capevents ? f->capevents * 2 : 4;
		struct sb_fevent *n = realloc(f->events, (size_t)ncap * sizeof(*n));
		if (!n)
			return NULL;
		f->events = n;
		f->capevents = ncap;
	}
	struct sb_store *st = f->order->store;
	struct sb_fevent *e = &f->events[f->nevents++];
	memset(e, 0, sizeof(*e));
	st->next_misc_id += sb_rng_range(&st->rng, 1, 500);
	e->id = st->next_misc_id;
	e->status = status;
	e->at = at;
	if (message)
		snprintf(e->message, sizeof(e->message), "%s", message);
	f->shipment_status = status;
	f->updated = stamp(w);
	sb_order_touch(w, f->order);
	return e;
}

/* ---- orders ------------------------------------------------------------- */

static int64_t shipping_price(const struct sb_store *s, int method, int64_t subtotal)
{
	const char *cur = sb_store_currency(s);
	int exp = sb_store_exp(s);
	int64_t unit = exp ? 100 : 1;
	int64_t free_over = strcmp(cur, "JPY") == 0 ? 10000 : 75 * unit;
	if (method == 0 && subtotal >= free_over)
		return 0;
	if (strcmp(cur, "JPY") == 0)
		return method ? 1200 : 600;
	if (strcmp(cur, "CAD") == 0)
		return method ? 1999 : 999;
	if (strcmp(cur, "GBP") == 0)
		return method ? 799 : 399;
	if (strcmp(cur, "EUR") == 0)
		return method ? 990 : 490;
	return method ? 1499 : 599;
}

static void compute_money(struct sb_order *o)
{
	const struct sb_store *s = o->store;
	int64_t lines = sb_order_line_total(o);
	int exp = sb_store_exp(s);
	int64_t unit = exp ? 100 : 1;
	switch (o->discount_kind) {
	case 1:
		o->discount_total = (lines * 10 + 50) / 100;
		break;
	case 2:
		o->discount_total = (lines * 15 + 50) / 100;
		break;
	case 3:
		o->discount_total = strcmp(sb_store_currency(s), "JPY") == 0 ? 1000 : 10 * unit;
		if (o->discount_total > lines)
			o->discount_total = lines;
		break;
	default:
		o->discount_total = 0;
	}
	/* allocate the discount over lines, remainder on the last */
	int64_t left = o->discount_total;
	for (int i = 0; i < o->nlines; i++) {
		struct sb_line *l = &o->lines[i];
		int64_t lt = l->price * l->quantity;
		int64_t d = (i == o->nlines - 1) ? left : (lines ? o->discount_total * lt / lines : 0);
		if (d > lt)
			d = lt;
		l->discount = d;
		left -= d;
	}
	for (int i = 0; i < o->nlines; i++) {
		struct sb_line *l = &o->lines[i];
		int64_t base = l->price * l->quantity - l->discount;
		if (o->taxes_included)
			l->tax = base - (base * 10000 + (10000 + o->tax_bp) / 2) /
						(10000 + o->tax_bp);
		else
			l->tax = (base * o->tax_bp + 5000) / 10000;
	}
	o->shipping = shipping_price(s, o->ship_method, lines - o->discount_total);
}

static struct sb_order *order_alloc(struct sb_store *s)
{
	if (s->norders == s->caporders) {
		int ncap = s->caporders ? s->caporders * 2 : 64;
		struct sb_order **n = realloc(s->orders, (size_t)ncap * sizeof(*n));
		if (!n)
			return NULL;
		s->orders = n;
		s->caporders = ncap;
	}
	struct sb_order *o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	s->orders[s->norders++] = o;
	o->store = s;
	return o;
}

static void plan_lifecycle(struct sb_world *w, struct sb_order *o);

static struct sb_order *create_order(struct sb_world *w, struct sb_store *s)
{
	struct sb_rng *r = &s->rng;
	struct sb_order *o = order_alloc(s);
	if (!o)
		return NULL;
	const struct sb_country *home = &sb_countries[s->country];
	sb_rng_seed(&o->rng, sb_rng_next(r), 7);
	if (s->api == SB_WOO)
		s->next_order_id += sb_rng_range(r, 1, 6);
	else
		s->next_order_id += sb_rng_range(r, 1000, 250000);
	o->id = s->next_order_id;
	o->number = s->next_number++;
	snprintf(o->amz_id, sizeof(o->amz_id), "%03d-%07d-%07d",
		 (int)sb_rng_range(r, 111, 799), (int)sb_rng_below(r, 10000000),
		 (int)sb_rng_below(r, 10000000));
	o->created = o->updated = stamp(w);
	o->upd_seq = ++w->upd_seq;

	/* customer and addresses: mostly domestic */
	const char *cc = home->code;
	if (s->api != SB_AMAZON && sb_rng_chance(r, 0.12))
		cc = sb_countries[sb_rng_below(r, (uint64_t)sb_ncountries)].code;
	int loc = sb_countries[sb_country_find(cc)].locale;
	const char *first = sb_first_name(r, loc), *last = sb_last_name(r, loc);
	make_address(r, cc, first, last, &o->ship);
	if (sb_rng_chance(r, 0.8))
		o->bill = o->ship;
	else
		make_address(r, cc, first, last, &o->bill);
	s->next_customer_id += sb_rng_range(r, 1, 4000);
	o->customer_id = s->next_customer_id;
	char f1[32], l1[32];
	sb_ascii_fold(first, f1, sizeof(f1));
	sb_ascii_fold(last, l1, sizeof(l1));
	static const char *const domains[] = { "example.com", "example.net", "example.org",
					       "mail.example.com" };
	if (s->api == SB_AMAZON) {
		char rnd[17];
		hex_token(r, rnd, sizeof(rnd));
		snprintf(o->email, sizeof(o->email), "%s@marketplace.amazon.com", rnd);
	} else if (f1[0] && l1[0]) {
		snprintf(o->email, sizeof(o->email), "%s.%s%s@%s", f1, l1,
			 sb_rng_chance(r, 0.3) ? "+shop" : "", domains[sb_rng_below(r, 4)]);
	} else {
		snprintf(o->email, sizeof(o->email), "customer%lld@%s",
			 (long long)o->customer_id, domains[sb_rng_below(r, 4)]);
	}
	{
		const char *p = o->ship.phone;
		size_t k = 0;
		for (; *p && k + 1 < sizeof(o->phone); p++)
			if ((*p >= '0' && *p <= '9') || (*p == '+' && k == 0))
				o->phone[k++] = *p;
		o->phone[k] = '\0';
	}
	snprintf(o->ip, sizeof(o->ip), "%d.%d.%d.%d", (int)sb_rng_range(r, 11, 223),
		 (int)sb_rng_below(r, 256), (int)sb_rng_below(r, 256),
		 (int)sb_rng_range(r, 1, 254));
	hex_token(r, o->token, sizeof(o->token));
	hex_token(r, o->cart_token, sizeof(o->cart_token));
	hex_token(r, o->checkout_token, sizeof(o->checkout_token));
	{
		char k[14];
		hex_token(r, k, sizeof(k));
		snprintf(o->order_key, sizeof(o->order_key), "wc_order_%s", k);
	}
	s->next_misc_id += sb_rng_range(r, 1, 1000);
	o->checkout_id = s->next_misc_id;
	s->next_misc_id += sb_rng_range(r, 1, 1000);
	o->fo_id = s->next_misc_id;
	o->fo_updated = o->created;

	/* lines */
	double u = sb_rng_unit(r);
	int n = u < 0.5 ? 1 : u < 0.75 ? 2 : u < 0.9 ? 3 : u < 0.97 ? 4 : (int)sb_rng_range(r, 5, 6);
	int used[SB_MAX_LINES];
	for (int i = 0; i < n; i++) {
		struct sb_line *l = &o->lines[o->nlines];
		int p, again;
		do {
			p = (int)sb_rng_below(r, (uint64_t)sb_nproducts);
			again = 0;
			for (int k = 0; k < i; k++)
				if (used[k] == p)
					again = 1;
		} while (again);
		used[i] = p;
		l->product = p;
		l->variant = (int)sb_rng_below(r, (uint64_t)sb_variant_count(sb_products[p].variants));
		double q = sb_rng_unit(r);
		l->quantity = q < 0.75 ? 1 : q < 0.93 ? 2 : q < 0.98 ? 3 : (int)sb_rng_range(r, 4, 5);
		l->price = sb_product_price(p, l->variant, home->currency);
		s->next_line_id += sb_rng_range(r, 1, s->api == SB_WOO ? 3 : 5000);
		l->id = s->next_line_id;
		s->next_misc_id += sb_rng_range(r, 1, 1000);
		l->fo_line_id = s->next_misc_id;
		char d[15];
		digits_str(r, d, 14);
		snprintf(l->item_id, sizeof(l->item_id), "%s", d);
		o->nlines++;
	}
	o->ship_method = sb_rng_chance(r, 0.2) ? 1 : 0;
	if (strcmp(cc, home->code) == 0) {
		int city_tax = 0;
		for (int i = 0; i < sb_ncities; i++)
			if (strcmp(sb_cities[i].city, o->ship.city) == 0 &&
			    strcmp(sb_cities[i].country, cc) == 0)
				city_tax = sb_cities[i].tax_bp;
		o->tax_bp = city_tax ? city_tax : home->tax_bp;
		if (strcmp(home->code, "US") == 0 && city_tax == 0)
			o->tax_bp = 0; /* Oregon: no sales tax */
	} else {
		o->tax_bp = 0; /* export */
	}
	o->taxes_included = home->taxes_included;
	double dk = sb_rng_unit(r);
	o->discount_kind = dk < 0.10 ? 1 : dk < 0.15 ? 2 : dk < 0.19 ? 3 : 0;
	o->payment_method = (int)sb_rng_below(r, 100);
	compute_money(o);
	if (sb_rng_chance(r, 0.15))
		snprintf(o->note, sizeof(o->note), "%s",
			 sb_rng_chance(r, 0.5) ? "Please leave at the back door."
					       : "Gift - no invoice in the box, please.");
	if (s->api == SB_AMAZON) {
		o->pay = SB_PAY_PENDING; /* payment authorization takes minutes */
	} else {
		o->pay = sb_rng_chance(r, 0.85) ? SB_PAY_PAID : SB_PAY_PENDING;
		if (o->pay == SB_PAY_PAID)
			o->paid_at = o->created;
	}
	plan_lifecycle(w, o);
	notify(w, SB_TOPIC_ORDER_CREATE, o, NULL);
	notify(w, SB_TOPIC_ORDER_UPDATE, o, NULL);
	return o;
}

static void plan_fulfillment(struct sb_world *w, struct sb_order *o)
{
	struct sb_rng *r = &o->rng;
	if (!sb_rng_chance(r, w->cfg->auto_fulfill[o->store->api]))
		return;
	int64_t at = stamp(w) + sb_rng_range(r, 2 * HOUR, 60 * HOUR);
	if (o->nlines > 1 && sb_rng_chance(r, 0.3)) {
		schedule(w, at, SB_EV_FULFILL, o, 1);
		at += sb_rng_range(r, 12 * HOUR, 72 * HOUR);
	}
	schedule(w, at, SB_EV_FULFILL, o, 0);
}

static void plan_lifecycle(struct sb_world *w, struct sb_order *o)
{
	struct sb_rng *r = &o->rng;
	int64_t now = stamp(w);
	if (o->pay == SB_PAY_PENDING) {
		if (o->store->api == SB_AMAZON || sb_rng_chance(r, 0.85))
			schedule(w,
				 now + (o->store->api == SB_AMAZON
						? sb_rng_range(r, 1 * MIN, 30 * MIN)
						: sb_rng_range(r, 20 * MIN, 30 * HOUR)),
				 SB_EV_PAY, o, 0);
		else
			schedule(w, now + sb_rng_range(r, 48 * HOUR, 72 * HOUR), SB_EV_EXPIRE_UNPAID,
				 o, 0);
	} else {
		plan_fulfillment(w, o);
	}
	if (sb_rng_chance(r, 0.25))
		schedule(w, now + sb_rng_range(r, 10 * MIN, 36 * HOUR), SB_EV_EDIT, o, 0);
	if (sb_rng_chance(r, 0.04))
		schedule(w, now + sb_rng_range(r, 20 * MIN, 20 * HOUR), SB_EV_CANCEL, o, 0);
}

int sb_order_cancel(struct sb_world *w, struct sb_order *o, int reason)
{
	if (o->cancelled_at || o->nfuls > 0)
		return -1;
	o->cancelled_at = stamp(w);
	o->closed_at = stamp(w);
	o->cancel_reason = reason;
	o->pay = o->pay == SB_PAY_PAID ? SB_PAY_REFUNDED : SB_PAY_VOIDED;
	o->fo_updated = stamp(w);
	sb_order_touch(w, o);
	notify(w, SB_TOPIC_ORDER_CANCEL, o, NULL);
	return 0;
}

int sb_order_mark_paid(struct sb_world *w, struct sb_order *o)
{
	if (o->cancelled_at || o->pay != SB_PAY_PENDING)
		return -1;
	o->pay = SB_PAY_PAID;
	o->paid_at = stamp(w);
	sb_order_touch(w, o);
	plan_fulfillment(w, o);
	return 0;
}

static void edit_order(struct sb_world *w, struct sb_order *o)
{
	struct sb_rng *r = &o->rng;
	static const char *const tags[] = { "VIP", "wholesale", "repeat-customer", "gift",
					    "priority" };
	o->edits++;
	switch (sb_rng_below(r, 3)) {
	case 0:
		snprintf(o->note, sizeof(o->note), "Customer called: %s",
			 sb_rng_chance(r, 0.5) ? "deliver after 5pm" : "ring the bell twice");
		break;
	case 1:
		if (o->tags[0])
			snprintf(o->tags + strlen(o->tags), sizeof(o->tags) - strlen(o->tags),
				 ", %s", tags[sb_rng_below(r, 5)]);
		else
			snprintf(o->tags, sizeof(o->tags), "%s", tags[sb_rng_below(r, 5)]);
		break;
	default:
		snprintf(o->ship.address2, sizeof(o->ship.address2), "Unit %d",
			 (int)sb_rng_range(r, 1, 99));
		break;
	}
	sb_order_touch(w, o);
}

static void fulfill_planned(struct sb_world *w, struct sb_order *o, int partial)
{
	if (o->cancelled_at || o->pay != SB_PAY_PAID)
		return;
	int idx[SB_MAX_LINES], qty[SB_MAX_LINES], n = 0;
	for (int i = 0; i < o->nlines; i++) {
		if (o->lines[i].fulfilled >= o->lines[i].quantity)
			continue;
		idx[n] = i;
		qty[n] = -1;
		n++;
		if (partial && n * 2 >= o->nlines)
			break;
	}
	if (n == 0)
		return;
	sb_order_fulfill(w, o, n, idx, qty, NULL, NULL, NULL);
}

static void apply_scan(struct sb_world *w, struct sb_shipment *s, int i)
{
	struct sb_fulfillment *f = s->ful;
	if (!f || f->cancelled || f->shipment != s)
		return;
	int status;
	const char *msg = NULL;
	switch (s->scans[i].stage) {
	case SB_STAGE_PICKUP:
		status = SB_SS_IN_TRANSIT;
		msg = "Picked up by carrier";
		break;
	case SB_STAGE_OUT:
		status = SB_SS_OUT_FOR_DELIVERY;
		msg = "Out for delivery";
		break;
	case SB_STAGE_ATTEMPT:
		status = SB_SS_ATTEMPTED;
		msg = "Delivery attempted";
		break;
	case SB_STAGE_DELIVERED:
		status = SB_SS_DELIVERED;
		msg = "Delivered";
		break;
	default:
		return;
	}
	if (f->shipment_status == status)
		return;
	if (f->order->store->api == SB_WOO) {
		/* WooCommerce orders do not show carrier progress */
		f->shipment_status = status;
		return;
	}
	sb_fulfillment_add_event(w, f, status, s->scans[i].at, msg);
}

static void live_arrival(struct sb_world *w, struct sb_store *s)
{
	double mean = w->cfg->order_interval_s;
	if (mean <= 0)
		return;
	/* exponential inter-arrival, at least one second */
	double u = sb_rng_unit(&s->rng);
	double dt = -log(1.0 - u) * mean;
	int64_t d = (int64_t)(dt * 1000.0) / SEC * SEC;
	if (d < SEC)
		d = SEC;
	schedule(w, w->now + d, SB_EV_ARRIVAL, s, 1);
}

static void apply(struct sb_world *w, const struct sb_event *e)
{
	switch (e->kind) {
	case SB_EV_ARRIVAL: {
		struct sb_store *s = e->target;
		create_order(w, s);
		if (e->arg == 1)
			live_arrival(w, s);
		break;
	}
	case SB_EV_PAY:
		sb_order_mark_paid(w, e->target);
		break;
	case SB_EV_EXPIRE_UNPAID: {
		struct sb_order *o = e->target;
		if (o->pay == SB_PAY_PENDING)
			sb_order_cancel(w, o, 3);
		break;
	}
	case SB_EV_EDIT:
		edit_order(w, e->target);
		break;
	case SB_EV_CANCEL:
		sb_order_cancel(w, e->target, 0);
		break;
	case SB_EV_FULFILL:
		fulfill_planned(w, e->target, e->arg);
		break;
	case SB_EV_SCAN:
		apply_scan(w, e->target, e->arg);
		break;
	default:
		break;
	}
}

long sb_world_advance(struct sb_world *w, int64_t now_ms)
{
	long n = 0;
	while (w->nheap && w->heap[0].at <= now_ms) {
		struct sb_event e;
		heap_pop(w, &e);
		if (e.at > w->now)
			w->now = e.at;
		apply(w, &e);
		n++;
	}
	if (now_ms > w->now)
		w->now = now_ms;
	w->events_applied += n;
	return n;
}

/* ---- stores ------------------------------------------------------------- */

static struct sb_store *make_store(struct sb_world *w, int api, int index)
{
	struct sb_store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	const struct sb_config *c = w->cfg;
	s->api = api;
	s->index = index;
	sb_rng_seed(&s->rng, c->seed, (uint64_t)api * 1000003u + (uint64_t)index);
	/* country rotation differs per marketplace so every currency shows up */
	static const int rot[3][7] = {
		{ 0, 1, 2, 3, 6, 4, 5 }, /* shopify: US CA GB DE JP FR NL */
		{ 0, 3, 2, 4, 5, 1, 6 }, /* woo: US DE GB FR NL CA JP */
		{ 0, 2, 3, 6, 1, 4, 5 }, /* amazon: US GB DE JP CA FR NL */
	};
	s->country = rot[api][(index - 1) % 7];
	const struct sb_country *ct = &sb_countries[s->country];
	s->city = sb_city_pick(&s->rng, ct->code);
	s->tz_min = sb_cities[s->city].tz_min;
	switch (api) {
	case SB_SHOPIFY:
		snprintf(s->name, sizeof(s->name), "shop-%d.myshopify.com", index);
		snprintf(s->connector, sizeof(s->connector), "shopify-%d", index);
		snprintf(s->token, sizeof(s->token), "shpat_sandbox_%d", index);
		snprintf(s->hook_secret, sizeof(s->hook_secret), "shopify-secret-%d", index);
		s->next_order_id = 5000000000000LL + (int64_t)index * 10000000000LL;
		s->next_line_id = 13000000000000LL + (int64_t)index * 10000000000LL;
		s->next_ful_id = 4000000000000LL + (int64_t)index * 10000000000LL;
		s->next_misc_id = 6000000000000LL + (int64_t)index * 10000000000LL;
		s->next_customer_id = 7000000000000LL + (int64_t)index * 10000000000LL;
		s->shop_id = 60000000000LL + index * 1000;
		s->location_id = 70000000000LL + index * 1000;
		s->next_number = 1001;
		break;
	case SB_WOO:
		snprintf(s->name, sizeof(s->name), "woo-%d.example.com", index);
		snprintf(s->connector, sizeof(s->connector), "woocommerce-%d", index);
		snprintf(s->token, sizeof(s->token), "ck_sandbox_%d", index);
		snprintf(s->secret, sizeof(s->secret), "cs_sandbox_%d", index);
		snprintf(s->hook_secret, sizeof(s->hook_secret), "woo-secret-%d", index);
		snprintf(s->site_url, sizeof(s->site_url), "http://%s", s->name);
		s->next_order_id = 100 + index;
		s->next_line_id = 10 + index;
		s->next_ful_id = 1000;
		s->next_misc_id = 5000;
		s->next_customer_id = 1;
		s->next_number = 1;
		break;
	default:
		snprintf(s->name, sizeof(s->name), "A1SANDBOXSELLER%d", index);
		snprintf(s->connector, sizeof(s->connector), "amazon-%d", index);
		snprintf(s->secret, sizeof(s->secret), "Atzr|sandbox-refresh-%d", index);
		s->next_ful_id = 100000;
		s->next_misc_id = 100000;
		s->next_customer_id = 1;
		s->next_number = 1;
		break;
	}
	return s;
}

struct sb_store *sb_world_store(struct sb_world *w, int api, const char *name)
{
	char key[200];
	snprintf(key, sizeof(key), "%d:%s", api, name);
	return sb_map_get(&w->by_name, key);
}

struct sb_order *sb_store_order(struct sb_store *s, int64_t id)
{
	int lo = 0, hi = s->norders - 1;
	while (lo <= hi) {
		int mid = (lo + hi) / 2;
		int64_t v = s->orders[mid]->id;
		if (v == id)
			return s->orders[mid];
		if (v < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

struct sb_order *sb_store_order_amz(struct sb_store *s, const char *amz_id)
{
	for (int i = 0; i < s->norders; i++)
		if (strcmp(s->orders[i]->amz_id, amz_id) == 0)
			return s->orders[i];
	return NULL;
}

struct sb_world *sb_world_new(const struct sb_config *cfg)
{
	struct sb_world *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->cfg = cfg;
	sb_map_init(&w->by_name);
	sb_map_init(&w->shipments);
	sb_rng_seed(&w->misc, cfg->seed, 999331);
	int total = cfg->shops[0] + cfg->shops[1] + cfg->shops[2];
	w->stores = calloc((size_t)(total ? total : 1), sizeof(*w->stores));
	if (!w->stores)
		goto fail;
	int64_t hist = (int64_t)cfg->history_days * DAY;
	w->now = cfg->start_ms - hist - 1;
	for (int api = 0; api < 3; api++) {
		w->first[api] = w->nstores;
		w->count[api] = cfg->shops[api];
		for (int i = 1; i <= cfg->shops[api]; i++) {
			struct sb_store *s = make_store(w, api, i);
			if (!s)
				goto fail;
			w->stores[w->nstores++] = s;
			char key[200];
			snprintf(key, sizeof(key), "%d:%s", api, s->name);
			if (sb_map_put(&w->by_name, key, s))
				goto fail;
			/* initial orders spread over the history window, in order */
			int n = cfg->orders;
			for (int k = 0; k < n; k++) {
				int64_t slot = hist / (n + 1);
				int64_t at = cfg->start_ms - hist + slot * (k + 1);
				at += sb_rng_range(&s->rng, -slot / 3, slot / 3);
				at = at / SEC * SEC;
				if (at >= cfg->start_ms)
					at = cfg->start_ms - SEC;
				if (schedule(w, at, SB_EV_ARRIVAL, s, 0))
					goto fail;
			}
		}
	}
	/* replay the history up to the start of the simulated clock */
	sb_world_advance(w, cfg->start_ms - 1);
	w->now = cfg->start_ms;
	for (int i = 0; i < w->nstores; i++)
		live_arrival(w, w->stores[i]);
	return w;
fail:
	sb_world_free(w);
	return NULL;
}

void sb_world_free(struct sb_world *w)
{
	if (!w)
		return;
	for (int i = 0; i < w->nstores; i++) {
		struct sb_store *s = w->stores[i];
		if (!s)
			continue;
		for (int k = 0; k < s->norders; k++) {
			struct sb_order *o = s->orders[k];
			for (int f = 0; f < o->nfuls; f++) {
				free(o->fuls[f]->events);
				free(o->fuls[f]);
			}
			free(o->fuls);
			free(o->cache);
			free(o);
		}
		free(s->orders);
		free(s->subs);
		free(s);
	}
	for (int i = 0; i < w->nships; i++) {
		free(w->ships[i]->cache);
		free(w->ships[i]);
	}
	free(w->ships);
	free(w->stores);
	free(w->heap);
	sb_map_release(&w->by_name);
	sb_map_release(&w->shipments);
	free(w);
}
