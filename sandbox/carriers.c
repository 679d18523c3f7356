/*
 * carriers.c - the carriers' tracking APIs: UPS (OAuth client credentials
 * with HTTP Basic at /security/v1/oauth/token, GET
 * /api/track/v1/details/{n} with transId and transactionSrc headers),
 * FedEx (POST /oauth/token, POST /track/v1/trackingnumbers with up to 30
 * numbers), USPS v3 (POST /oauth2/v3/token, GET
 * /tracking/v3/tracking/{n}?expand=DETAIL) and DHL Shipment Tracking -
 * Unified (GET /track/shipments?trackingNumber=..., DHL-API-Key header,
 * application/problem+json errors).
 *
 * Every carrier renders the same shipment timeline (label, pickup, facility
 * scans, out for delivery, delivery attempts, delivery) with its own codes
 * and shapes (UPS and FedEx after the reference payloads in
 * ../shared/fixtures/ups and ../shared/fixtures/fedex). Only scans whose
 * simulated time has passed are shown. Each carrier has one token bucket
 * (the sandbox is one account per carrier); 429 carries Retry-After.
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

/* ---- scan locations ----------------------------------------------------- */

struct place {
	const char *city, *state, *zip, *cc, *country;
	int tz;
};

static void place_of(const struct sb_shipment *s, int where, struct place *p)
{
	const struct sb_address *a = where == 0 ? &s->from : where == 9 ? &s->to : NULL;
	if (a) {
		p->city = a->city;
		p->state = a->province_code[0] ? a->province_code : a->province;
		p->zip = a->zip;
		p->cc = a->country_code;
		p->country = a->country;
		p->tz = a->tz_min;
		return;
	}
	int idx = where - 1;
	if (idx < 0 || idx >= s->nhubs)
		idx = 0;
	const struct sb_city *c = &sb_cities[s->hub_city[idx]];
	int ci = sb_country_find(c->country);
	p->city = c->city;
	p->state = c->province_code ? c->province_code : (c->province ? c->province : "");
	p->zip = c->zip;
	p->cc = c->country;
	p->country = ci >= 0 ? sb_countries[ci].name : c->country;
	p->tz = c->tz_min;
}

static void upper(const char *in, char *out, size_t size)
{
	size_t i = 0;
	for (; in[i] && i + 1 < size; i++)
		out[i] = (char)((in[i] >= 'a' && in[i] <= 'z') ? in[i] - 'a' + 'A' : in[i]);
	out[i] = '\0';
}

static int delivered(const struct sb_shipment *s, int n)
{
	return n > 0 && s->scans[n - 1].stage == SB_STAGE_DELIVERED;
}

static int64_t estimated_delivery(const struct sb_shipment *s)
{
	return s->scans[s->nscans - 1].at;
}

/* Replies with a tracking body, rendered again only when another scan has
 * become visible (the body depends on nothing else). */
static void reply_cached(struct sb_req *r, int api, struct sb_shipment *s,
			 json_t *(*render)(const struct sb_shipment *, int64_t))
{
	int64_t now = sb_now(r->srv);
	int n = sb_shipment_visible(s, now);
	if (!s->cache || s->cache_n != n || s->cache_api != api) {
		free(s->cache);
		json_t *j = render(s, now);
		s->cache = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		s->cache_len = s->cache ? strlen(s->cache) : 0;
		s->cache_n = n;
		s->cache_api = api;
	}
	if (!s->cache) {
		sb_reply(r, 500, "{}", 2);
		return;
	}
	sb_reply(r, 200, s->cache, s->cache_len);
}

/* ---- common errors and limits ------------------------------------------- */

static void ups_error(struct sb_req *r, int status, const char *code, const char *msg)
{
	sb_reply_json(r, status, json_pack("{s:{s:[{s:s,s:s}]}}", "response", "errors", "code",
					   code, "message", msg));
}

static void fedex_error(struct sb_req *r, int status, const char *code, const char *msg)
{
	char tid[40];
	sb_request_id(r->srv, tid, sizeof(tid));
	sb_reply_json(r, status, json_pack("{s:s,s:[{s:s,s:s}]}", "transactionId", tid, "errors",
					   "code", code, "message", msg));
}

static void usps_error(struct sb_req *r, int status, const char *code, const char *title,
		       const char *detail)
{
	char st[8];
	snprintf(st, sizeof(st), "%d", status);
	sb_reply_json(r, status,
		      json_pack("{s:s,s:{s:s,s:s,s:[{s:s,s:s,s:s,s:s}]}}", "apiVersion", "3.2.4",
				"error", "code", st, "message", title, "errors", "status", st, "code",
				code, "title", title, "detail", detail));
}

static void problem(struct sb_req *r, int status, const char *title, const char *detail,
		    const char *instance)
{
	sb_set_header(r, "Content-Type", "application/problem+json");
	json_t *j = json_pack("{s:s,s:i,s:s}", "title", title, "status", status, "detail", detail);
	if (instance)
		json_object_set_new(j, "instance", json_string(instance));
	sb_reply_json(r, status, j);
}

void sb_carrier_fault(struct sb_req *r, int api, int status)
{
	int is429 = status == 429;
	if (is429) {
		sb_set_header(r, "Retry-After", "1");
	} else if (status == 503) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", r->srv->cfg.faults[api].retry_after_s);
		sb_set_header(r, "Retry-After", ra);
	}
	switch (api) {
	case SB_UPS:
		ups_error(r, status, is429 ? "10429" : status == 503 ? "10503" : "10500",
			  is429 ? "Too Many Requests" : status == 503 ? "Service Unavailable"
								  : "Internal Server Error");
		break;
	case SB_FEDEX:
		fedex_error(r, status,
			    is429 ? "RATE.LIMIT.EXCEEDED"
			    : status == 503 ? "SERVICE.UNAVAILABLE.ERROR"
					    : "INTERNAL.SERVER.ERROR",
			    is429 ? "We have received too many requests in a short duration. Please wait a while to try again."
			    : status == 503
				    ? "The service is currently unavailable and we are working to resolve the issue. We apologize for any inconvenience. Please check back at a later time."
				    : "We encountered an unexpected error and are working to resolve the issue. We apologize for any inconvenience. Please check back at a later time.");
		break;
	case SB_USPS:
		usps_error(r, status, is429 ? "429" : status == 503 ? "503" : "500",
			   is429 ? "Too Many Requests" : status == 503 ? "Service Unavailable"
								   : "Internal Server Error",
			   is429 ? "Too many requests have been received from client in a short amount of time."
				 : "An unexpected error occurred. Retry the request later.");
		break;
	default:
		problem(r, status,
			is429 ? "Too many requests" : status == 503 ? "Service Unavailable"
								  : "Internal Server Error",
			is429 ? "Rate limit quota violation. Quota limit exceeded."
			      : "The service encountered an error. Retry the request later.",
			NULL);
		break;
	}
}

/* 1 when a token was available; otherwise replies 429 in the API's shape. */
static int carrier_limit(struct sb_req *r, int api)
{
	struct sb_server *srv = r->srv;
	int c = api - SB_UPS;
	double wait;
	if (sb_tbucket_take(&srv->carrier_tb[c], srv->cfg.carrier_rate[c], srv->cfg.carrier_burst[c],
			    sb_limits_now_us(srv), &wait))
		return 1;
	srv->stats.throttled[api]++;
	char ra[32];
	snprintf(ra, sizeof(ra), "%d", (int)ceil(wait < 1 ? 1 : wait));
	sb_carrier_fault(r, api, 429);
	sb_set_header(r, "Retry-After", ra);
	return 0;
}

/* ---- UPS ---------------------------------------------------------------- */

struct ups_code {
	const char *type, *code, *status_code, *desc, *simple;
};

static void ups_status(int stage, struct ups_code *u)
{
	switch (stage) {
	case SB_STAGE_LABEL:
		*u = (struct ups_code){ "M", "MP", "003",
					"Shipper created a label, UPS has not received the package yet.",
					"Label Created" };
		break;
	case SB_STAGE_PICKUP:
		*u = (struct ups_code){ "P", "PU", "038", "Pickup Scan", "Picked Up" };
		break;
	case SB_STAGE_DEPART:
		*u = (struct ups_code){ "I", "DP", "005", "Departed from Facility", "On the Way" };
		break;
	case SB_STAGE_ARRIVE:
		*u = (struct ups_code){ "I", "AR", "005", "Arrived at Facility", "On the Way" };
		break;
	case SB_STAGE_OUT:
		*u = (struct ups_code){ "I", "OT", "021", "Out For Delivery Today",
					"Out for Delivery" };
		break;
	case SB_STAGE_ATTEMPT:
		*u = (struct ups_code){ "X", "48", "060",
					"The receiver was not available for delivery. We'll make a second attempt the next business day.",
					"Delivery Attempted" };
		break;
	default:
		*u = (struct ups_code){ "D", "KB", "011", "DELIVERED", "Delivered" };
		break;
	}
}

static json_t *ups_status_json(int stage)
{
	struct ups_code u;
	ups_status(stage, &u);
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "type", u.type, "description", u.desc, "code",
			 u.code, "statusCode", u.status_code, "simplifiedTextDescription", u.simple);
}

static json_t *ups_address(const struct place *p)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "city", p->city, "stateProvince",
			 p->state ? p->state : "", "postalCode", p->zip, "country", p->cc,
			 "countryCode", p->cc);
}

static json_t *ups_track(const struct sb_shipment *s, int64_t now)
{
	int n = sb_shipment_visible(s, now);
	char d[16], t[16], w[16];
	json_t *acts = json_array();
	for (int i = n - 1; i >= 0; i--) {
		struct place p;
		place_of(s, s->scans[i].where, &p);
		sb_fmt_date_compact(s->scans[i].at, p.tz, d, sizeof(d));
		sb_fmt_hms_compact(s->scans[i].at, p.tz, t, sizeof(t));
		json_t *loc = json_pack("{s:o,s:s}", "address", ups_address(&p), "slic", "8566");
		json_array_append_new(acts, json_pack("{s:o,s:o,s:s,s:s}", "location", loc, "status",
						      ups_status_json(s->scans[i].stage), "date", d,
						      "time", t));
	}
	int last = n ? s->scans[n - 1].stage : SB_STAGE_LABEL;
	struct ups_code cur;
	ups_status(last, &cur);
	json_t *pkg = json_object();
	json_object_set_new(pkg, "trackingNumber", json_string(s->number));
	int del = delivered(s, n);
	int64_t eta = del ? s->scans[n - 1].at : estimated_delivery(s);
	sb_fmt_date_compact(eta, s->to.tz_min, d, sizeof(d));
	json_object_set_new(pkg, "deliveryDate",
			    json_pack("[{s:s,s:s}]", "type", del ? "DEL" : "SDD", "date", d));
	sb_fmt_hms_compact(eta, s->to.tz_min, t, sizeof(t));
	json_object_set_new(pkg, "deliveryTime",
			    json_pack("{s:s,s:s,s:s}", "type", del ? "DEL" : "EOD", "startTime", "",
				      "endTime", del ? t : "230000"));
	json_object_set_new(pkg, "activity", acts);
	json_object_set_new(pkg, "currentStatus", ups_status_json(last));
	struct place o, dst;
	place_of(s, 0, &o);
	place_of(s, 9, &dst);
	json_t *pa = json_array();
	json_array_append_new(pa, json_pack("{s:s,s:s,s:o}", "type", "ORIGIN", "name",
					    s->from.company[0] ? s->from.company : "Shipper",
					    "address", ups_address(&o)));
	char name[100];
	snprintf(name, sizeof(name), "%s %s", s->to.first, s->to.last);
	json_array_append_new(pa, json_pack("{s:s,s:s,s:o}", "type", "DESTINATION", "name", name,
					    "address", ups_address(&dst)));
	json_object_set_new(pkg, "packageAddress", pa);
	snprintf(w, sizeof(w), "%.2f", s->weight_g / 453.592);
	json_object_set_new(pkg, "weight",
			    json_pack("{s:s,s:s}", "unitOfMeasurement", "LBS", "weight", w));
	static const char *const svc[][2] = { { "003", "UPS Ground" },
					      { "002", "UPS 2nd Day Air" },
					      { "001", "UPS Next Day Air" } };
	json_object_set_new(pkg, "service", json_pack("{s:s,s:s}", "code", svc[s->service % 3][0],
						      "description", svc[s->service % 3][1]));
	json_object_set_new(pkg, "referenceNumber",
			    json_pack("[{s:s,s:s}]", "type", "SHIPMENT", "number", s->reference));
	json_object_set_new(pkg, "packageCount", json_integer(1));
	json_object_set_new(pkg, "statusCode", json_string(cur.status_code));
	json_object_set_new(pkg, "statusDescription", json_string(cur.simple));
	if (del)
		json_object_set_new(pkg, "deliveryInformation",
				    json_pack("{s:s,s:s}", "location", "Front Door", "receivedBy",
					      s->to.last));
	json_t *shipment = json_pack("{s:s,s:[o]}", "inquiryNumber", s->number, "package", pkg);
	return json_pack("{s:{s:[o]}}", "trackResponse", "shipment", shipment);
}

static void ups_token(struct sb_req *r)
{
	char user[128], pass[128];
	json_t *b = sb_body_json(r, 1);
	const char *gt = json_string_value(json_object_get(b, "grant_type"));
	if (sb_basic_auth(r, user, sizeof(user), pass, sizeof(pass)) ||
	    !sb_ct_streq(user, r->srv->ups_id) || !sb_ct_streq(pass, r->srv->ups_secret)) {
		json_decref(b);
		ups_error(r, 401, "10401", "ClientId is Invalid");
		return;
	}
	if (!gt || strcmp(gt, "client_credentials")) {
		json_decref(b);
		ups_error(r, 400, "10400", "Invalid/Missing Grant Type");
		return;
	}
	json_decref(b);
	int ttl = r->srv->cfg.carrier_token_ttl_s[SB_CARRIER_UPS];
	char tok[128], issued[32], exp[16];
	sb_token_issue(r->srv, SB_UPS, NULL, ttl, "eyJraWQiOiJ", tok, sizeof(tok));
	snprintf(issued, sizeof(issued), "%lld", (long long)sb_now(r->srv));
	snprintf(exp, sizeof(exp), "%d", ttl);
	sb_reply_json(r, 200,
		      json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "token_type", "Bearer",
				"issued_at", issued, "client_id", r->srv->ups_id, "access_token", tok,
				"scope", "", "expires_in", exp, "refresh_count", "0", "status",
				"approved"));
}

static void ups_handle(struct sb_req *r, const char *p)
{
	if (!strcmp(p, "/security/v1/oauth/token") && r->method == EVHTTP_REQ_POST) {
		ups_token(r);
		return;
	}
	const char *prefix = "/api/track/v1/details/";
	if (strncmp(p, prefix, strlen(prefix)) || r->method != EVHTTP_REQ_GET) {
		ups_error(r, 404, "10404", "Resource not found");
		return;
	}
	int v = sb_token_check(r->srv, SB_UPS, sb_bearer(r), NULL);
	if (v != 1 || r->fault == SB_FAULT_EXPIRED) {
		ups_error(r, 401, "250002", "Invalid Authentication Information.");
		return;
	}
	if (!carrier_limit(r, SB_UPS))
		return;
	if (!sb_header(r, "transId") || !sb_header(r, "transactionSrc")) {
		ups_error(r, 400, "TV0002", "Missing or invalid transId or transactionSrc header");
		return;
	}
	const char *num = p + strlen(prefix);
	struct sb_shipment *s = sb_world_shipment(r->srv->world, num);
	if (!s || s->carrier != SB_CARRIER_UPS) {
		sb_reply_json(r, 404,
			      json_pack("{s:{s:[{s:[{s:s,s:s}]}]}}", "trackResponse", "shipment",
					"warnings", "code", "TW0001", "message",
					"Tracking Information Not Found"));
		return;
	}
	reply_cached(r, SB_UPS, s, ups_track);
}

/* ---- FedEx -------------------------------------------------------------- */

struct fx_code {
	const char *event, *desc, *derived, *derived_desc;
};

static void fx_status(int stage, struct fx_code *f)
{
	switch (stage) {
	case SB_STAGE_LABEL:
		*f = (struct fx_code){ "OC", "Shipment information sent to FedEx", "IN", "Label created" };
		break;
	case SB_STAGE_PICKUP:
		*f = (struct fx_code){ "PU", "Picked up", "PU", "Picked up" };
		break;
	case SB_STAGE_DEPART:
		*f = (struct fx_code){ "DP", "Departed FedEx location", "IT", "In transit" };
		break;
	case SB_STAGE_ARRIVE:
		*f = (struct fx_code){ "AR", "Arrived at FedEx location", "IT", "In transit" };
		break;
	case SB_STAGE_OUT:
		*f = (struct fx_code){ "OD", "On FedEx vehicle for delivery", "OD", "Out for delivery" };
		break;
	case SB_STAGE_ATTEMPT:
		*f = (struct fx_code){ "DE", "Delivery exception", "DE", "Delivery exception" };
		break;
	default:
		*f = (struct fx_code){ "DL", "Delivered", "DL", "Delivered" };
		break;
	}
}

static json_t *fx_address(const struct place *p, const char *street)
{
	char city[64];
	upper(p->city, city, sizeof(city));
	json_t *lines = json_array();
	json_array_append_new(lines, sb_jstr(street ? street : ""));
	return json_pack("{s:s,s:b,s:o,s:s,s:s,s:s,s:s,s:s}", "addressClassification",
			 street ? "RESIDENTIAL" : "BUSINESS", "residential", street != NULL,
			 "streetLines", lines, "city", city, "stateOrProvinceCode",
			 p->state ? p->state : "", "postalCode", p->zip, "countryCode", p->cc,
			 "countryName", p->country);
}

static json_t *fx_result(const struct sb_shipment *s, int64_t now)
{
	int n = sb_shipment_visible(s, now);
	char ts[40], uid[64];
	int last = n ? s->scans[n - 1].stage : SB_STAGE_LABEL;
	struct fx_code cur;
	fx_status(last, &cur);
	struct place orig, dest, lastp;
	place_of(s, 0, &orig);
	place_of(s, 9, &dest);
	place_of(s, n ? s->scans[n - 1].where : 0, &lastp);
	int express = s->service == 2;
	json_t *j = json_object();
	snprintf(uid, sizeof(uid), "2458~%s~%s", s->number, express ? "FDEG" : "FDEG");
	json_object_set_new(j, "trackingNumberInfo",
			    json_pack("{s:s,s:s,s:s}", "trackingNumber", s->number, "carrierCode",
				      express ? "FDXE" : "FDXG", "trackingNumberUniqueId", uid));
	json_object_set_new(j, "additionalTrackingInfo",
			    json_pack("{s:b,s:s,s:[{s:s,s:s,s:s}],s:s}", "hasAssociatedShipments", 0,
				      "nickname", "", "packageIdentifiers", "type",
				      "SHIPPER_REFERENCE", "value", s->reference,
				      "trackingNumberUniqueId", uid, "shipmentNotes", ""));
	json_object_set_new(j, "shipperInformation",
			    json_pack("{s:{},s:o}", "contact", "address", fx_address(&orig, NULL)));
	json_object_set_new(j, "recipientInformation",
			    json_pack("{s:{},s:o}", "contact", "address", fx_address(&dest, NULL)));
	json_t *lsd = json_object();
	json_object_set_new(lsd, "scanLocation", fx_address(&lastp, NULL));
	/* a new label reads code OC (order created), derived IN (initiated) */
	json_object_set_new(lsd, "code", json_string(last == SB_STAGE_LABEL ? cur.event : cur.derived));
	json_object_set_new(lsd, "derivedCode", json_string(cur.derived));
	json_object_set_new(lsd, "statusByLocale", json_string(cur.derived_desc));
	json_object_set_new(lsd, "description", json_string(cur.derived_desc));
	json_object_set_new(j, "latestStatusDetail", lsd);
	json_t *dt = json_array();
	sb_fmt_time_offset(s->created, orig.tz, ts, sizeof(ts));
	json_array_append_new(dt, json_pack("{s:s,s:s}", "dateTime", ts, "type", "SHIP"));
	if (n > 1) {
		sb_fmt_time_offset(s->scans[1].at, orig.tz, ts, sizeof(ts));
		json_array_append_new(dt, json_pack("{s:s,s:s}", "dateTime", ts, "type",
						    "ACTUAL_PICKUP"));
	}
	int del = delivered(s, n);
	sb_fmt_time_offset(del ? s->scans[n - 1].at : estimated_delivery(s), dest.tz, ts,
			   sizeof(ts));
	json_array_append_new(dt, json_pack("{s:s,s:s}", "dateTime", ts, "type",
					    del ? "ACTUAL_DELIVERY" : "ESTIMATED_DELIVERY"));
	json_object_set_new(j, "dateAndTimes", dt);
	json_object_set_new(j, "availableImages", json_array());
	json_object_set_new(j, "specialHandlings",
			    json_pack("[{s:s,s:s,s:s}]", "description", "Deliver Weekday", "type",
				      "DELIVER_WEEKDAY", "paymentType", "OTHER"));
	char lb[16], kg[16];
	snprintf(lb, sizeof(lb), "%.1f", s->weight_g / 453.592);
	snprintf(kg, sizeof(kg), "%.1f", s->weight_g / 1000.0);
	json_t *weights = json_pack("[{s:s,s:s},{s:s,s:s}]", "unit", "LB", "value", lb, "unit", "KG",
				    "value", kg);
	json_object_set_new(
		j, "packageDetails",
		json_pack("{s:{s:s,s:s},s:s,s:s,s:s,s:{s:O},s:[]}", "packagingDescription", "type",
			  "YOUR_PACKAGING", "description", "Your Packaging", "physicalPackagingType",
			  "PACKAGE", "sequenceNumber", "1", "count", "1", "weightAndDimensions",
			  "weight", weights, "packageContent"));
	json_object_set_new(j, "shipmentDetails",
			    json_pack("{s:b,s:o}", "beforePossessionStatus", n < 2, "weight",
				      weights));
	json_t *scans = json_array();
	for (int i = n - 1; i >= 0; i--) {
		struct fx_code f;
		struct place p;
		fx_status(s->scans[i].stage, &f);
		place_of(s, s->scans[i].where, &p);
		sb_fmt_time_offset(s->scans[i].at, p.tz, ts, sizeof(ts));
		char loc_id[8];
		upper(p.city, loc_id, 4);
		json_t *e = json_object();
		json_object_set_new(e, "date", json_string(ts));
		json_object_set_new(e, "eventType", json_string(f.event));
		json_object_set_new(e, "eventDescription", json_string(f.desc));
		json_object_set_new(e, "exceptionCode",
				    json_string(s->scans[i].stage == SB_STAGE_ATTEMPT ? "08" : ""));
		json_object_set_new(e, "exceptionDescription",
				    json_string(s->scans[i].stage == SB_STAGE_ATTEMPT
							? "Recipient not in"
							: ""));
		json_object_set_new(e, "scanLocation", fx_address(&p, NULL));
		json_object_set_new(e, "locationId", json_string(loc_id));
		json_object_set_new(e, "locationType",
				    json_string(s->scans[i].where == 9 ? "DELIVERY_LOCATION"
						: s->scans[i].where == 0 ? "PICKUP_LOCATION"
									 : "FEDEX_FACILITY"));
		json_object_set_new(e, "derivedStatusCode", json_string(f.derived));
		json_object_set_new(e, "derivedStatus", json_string(f.derived_desc));
		json_array_append_new(scans, e);
	}
	json_object_set_new(j, "scanEvents", scans);
	json_object_set_new(j, "availableNotifications",
			    json_pack("[s,s]", "ON_DELIVERY", "ON_EXCEPTION"));
	json_t *dd = json_object();
	int attempts = 0;
	for (int i = 0; i < n; i++)
		if (s->scans[i].stage == SB_STAGE_ATTEMPT || s->scans[i].stage == SB_STAGE_DELIVERED)
			attempts++;
	char at[16];
	snprintf(at, sizeof(at), "%d", attempts);
	if (del) {
		char rcv[48];
		upper(s->to.last, rcv, sizeof(rcv));
		json_object_set_new(dd, "actualDeliveryAddress", fx_address(&dest, NULL));
		json_object_set_new(dd, "locationDescription", json_string("Front porch"));
		json_object_set_new(dd, "receivedByName", json_string(rcv));
	}
	json_object_set_new(dd, "deliveryAttempts", json_string(at));
	json_object_set_new(dd, "deliveryOptionEligibilityDetails",
			    json_pack("[{s:s,s:s}]", "option", "INDIRECT_SIGNATURE_RELEASE",
				      "eligibility", "INELIGIBLE"));
	json_object_set_new(j, "deliveryDetails", dd);
	json_object_set_new(j, "originLocation",
			    json_pack("{s:{s:o}}", "locationContactAndAddress", "address",
				      fx_address(&orig, NULL)));
	json_object_set_new(j, "destinationLocation",
			    json_pack("{s:{s:o}}", "locationContactAndAddress", "address",
				      fx_address(&dest, NULL)));
	json_object_set_new(j, "lastUpdatedDestinationAddress", fx_address(&dest, NULL));
	json_object_set_new(j, "serviceDetail",
			    json_pack("{s:s,s:s,s:s}", "description",
				      express ? "FedEx Priority Overnight" : "FedEx Ground",
				      "shortDescription", express ? "PO" : "FG", "type",
				      express ? "PRIORITY_OVERNIGHT" : "FEDEX_GROUND"));
	if (!del) {
		sb_fmt_time_offset(estimated_delivery(s), dest.tz, ts, sizeof(ts));
		json_object_set_new(j, "estimatedDeliveryTimeWindow",
				    json_pack("{s:s,s:{s:s},s:s}", "description", "",
					      "window", "ends", ts, "type", "ESTIMATED_DELIVERY"));
	}
	json_object_set_new(j, "goodsClassificationCode", json_string(""));
	json_object_set_new(j, "returnDetail", json_object());
	return j;
}

static json_t *fx_not_found(const char *num)
{
	return json_pack("{s:s,s:[{s:{s:s,s:s,s:s},s:{s:s,s:s}}]}", "trackingNumber", num,
			 "trackResults", "trackingNumberInfo", "trackingNumber", num,
			 "trackingNumberUniqueId", "", "carrierCode", "", "error", "code",
			 "TRACKING.TRACKINGNUMBER.NOTFOUND", "message",
			 "Tracking number cannot be found. Please correct the tracking number and try again.");
}

static void fedex_token(struct sb_req *r)
{
	json_t *b = sb_body_json(r, 1);
	const char *gt = json_string_value(json_object_get(b, "grant_type"));
	const char *id = json_string_value(json_object_get(b, "client_id"));
	const char *sec = json_string_value(json_object_get(b, "client_secret"));
	if (!gt || strcmp(gt, "client_credentials")) {
		json_decref(b);
		fedex_error(r, 400, "BAD.REQUEST.ERROR",
			    "The given grant_type is not supported. Please modify your request and try again.");
		return;
	}
	if (!id || !sec || !sb_ct_streq(id, r->srv->fedex_id) ||
	    !sb_ct_streq(sec, r->srv->fedex_secret)) {
		json_decref(b);
		fedex_error(r, 401, "NOT.AUTHORIZED.ERROR",
			    "The given client credentials were not valid. Please modify your request and try again.");
		return;
	}
	json_decref(b);
	int ttl = r->srv->cfg.carrier_token_ttl_s[SB_CARRIER_FEDEX];
	char tok[128];
	sb_token_issue(r->srv, SB_FEDEX, NULL, ttl, "eyJhbGciOiJSUzI1NiJ9.", tok, sizeof(tok));
	sb_reply_json(r, 200, json_pack("{s:s,s:s,s:i,s:s}", "access_token", tok, "token_type",
					"bearer", "expires_in", ttl, "scope", "CXS"));
}

static void fedex_handle(struct sb_req *r, const char *p)
{
	if (!strcmp(p, "/oauth/token") && r->method == EVHTTP_REQ_POST) {
		fedex_token(r);
		return;
	}
	if (strcmp(p, "/track/v1/trackingnumbers") || r->method != EVHTTP_REQ_POST) {
		fedex_error(r, 404, "NOT.FOUND.ERROR", "The resource you requested is no longer available. Please modify your request and try again.");
		return;
	}
	int v = sb_token_check(r->srv, SB_FEDEX, sb_bearer(r), NULL);
	if (v != 1 || r->fault == SB_FAULT_EXPIRED) {
		fedex_error(r, 401, "NOT.AUTHORIZED.ERROR",
			    v == -1 || r->fault == SB_FAULT_EXPIRED
				    ? "Access token expired. Please modify your request and try again."
				    : "Access token is invalid. Please modify your request and try again.");
		return;
	}
	if (!carrier_limit(r, SB_FEDEX))
		return;
	json_t *b = sb_body_json(r, 0);
	const json_t *info = json_object_get(b, "trackingInfo");
	if (!json_is_array(info) || json_array_size(info) == 0) {
		json_decref(b);
		fedex_error(r, 400, "TRACKING.TRACKINGNUMBER.EMPTY", "Please provide tracking number.");
		return;
	}
	if (json_array_size(info) > 30) {
		json_decref(b);
		fedex_error(r, 400, "TRACKING.TRACKINGNUMBER.LIMITEXCEEDED",
			    "Please limit your request to 30 tracking numbers.");
		return;
	}
	int64_t now = sb_now(r->srv);
	json_t *results = json_array();
	int missing = 0;
	size_t i;
	const json_t *e;
	json_array_foreach(info, i, e) {
		const char *num = json_string_value(
			json_object_get(json_object_get(e, "trackingNumberInfo"), "trackingNumber"));
		if (!num || !*num) {
			json_decref(results);
			json_decref(b);
			fedex_error(r, 400, "TRACKING.TRACKINGNUMBER.EMPTY",
				    "Please provide tracking number.");
			return;
		}
		struct sb_shipment *s = sb_world_shipment(r->srv->world, num);
		if (!s || s->carrier != SB_CARRIER_FEDEX) {
			json_array_append_new(results, fx_not_found(num));
			missing++;
			continue;
		}
		json_array_append_new(results, json_pack("{s:s,s:[o]}", "trackingNumber", num,
							 "trackResults", fx_result(s, now)));
	}
	char tid[40];
	sb_request_id(r->srv, tid, sizeof(tid));
	json_t *out = json_pack("{s:o}", "completeTrackResults", results);
	if (missing)
		json_object_set_new(out, "alerts",
				    json_string("TRACKING.DATA.NOTFOUND -  Tracking data unavailable"));
	json_t *resp = json_pack("{s:s,s:o}", "transactionId", tid, "output", out);
	const char *ctid = json_string_value(json_object_get(b, "customerTransactionId"));
	if (!ctid)
		ctid = sb_header(r, "x-customer-transaction-id");
	if (ctid)
		json_object_set_new(resp, "customerTransactionId", json_string(ctid));
	json_decref(b);
	sb_reply_json(r, 200, resp);
}

/* ---- USPS --------------------------------------------------------------- */

struct usps_code {
	const char *event, *code, *category, *status;
};

static void usps_status(int stage, struct usps_code *u)
{
	switch (stage) {
	case SB_STAGE_LABEL:
		*u = (struct usps_code){ "Shipping Label Created, USPS Awaiting Item", "GX",
					 "Pre-Shipment", "Label Created, not yet in system" };
		break;
	case SB_STAGE_PICKUP:
		*u = (struct usps_code){ "USPS in possession of item", "03", "Accepted",
					 "USPS in possession of item" };
		break;
	case SB_STAGE_DEPART:
		*u = (struct usps_code){ "Departed USPS Regional Facility", "T1", "In Transit",
					 "In Transit to Next Facility" };
		break;
	case SB_STAGE_ARRIVE:
		*u = (struct usps_code){ "Arrived at USPS Regional Facility", "10", "In Transit",
					 "Arrived at USPS Regional Facility" };
		break;
	case SB_STAGE_OUT:
		*u = (struct usps_code){ "Out for Delivery", "OF", "Out for Delivery",
					 "Out for Delivery" };
		break;
	case SB_STAGE_ATTEMPT:
		*u = (struct usps_code){ "Notice Left (No Authorized Recipient Available)", "02",
					 "Alert", "Notice Left (No Authorized Recipient Available)" };
		break;
	default:
		*u = (struct usps_code){ "Delivered, In/At Mailbox", "01", "Delivered",
					 "Delivered, In/At Mailbox" };
		break;
	}
}

static json_t *usps_track(const struct sb_shipment *s, int64_t now, int detail)
{
	int n = sb_shipment_visible(s, now);
	int last = n ? s->scans[n - 1].stage : SB_STAGE_LABEL;
	struct usps_code cur;
	usps_status(last, &cur);
	char ts[40], gmt[40], off[16], buf[256], dcity[64], ocity[64];
	struct place dest, orig;
	place_of(s, 9, &dest);
	place_of(s, 0, &orig);
	upper(dest.city, dcity, sizeof(dcity));
	upper(orig.city, ocity, sizeof(ocity));
	int del = delivered(s, n);
	if (del) {
		sb_fmt_time_local(s->scans[n - 1].at, dest.tz, ts, sizeof(ts));
		snprintf(buf, sizeof(buf), "Your item was delivered in or at the mailbox at %.16s in %s, %s %s.",
			 ts, dcity, dest.state, dest.zip);
	} else {
		struct place lp;
		place_of(s, n ? s->scans[n - 1].where : 0, &lp);
		char lc[64];
		upper(lp.city, lc, sizeof(lc));
		snprintf(buf, sizeof(buf), "%s, %s %s. Your item is moving within the USPS network.",
			 cur.event, lc, lp.state);
	}
	json_t *j = json_object();
	json_object_set_new(j, "trackingNumber", json_string(s->number));
	if (!detail) {
		json_t *sums = json_array();
		for (int i = n - 1; i >= 0; i--) {
			struct usps_code u;
			struct place p;
			char line[256], c[64];
			usps_status(s->scans[i].stage, &u);
			place_of(s, s->scans[i].where, &p);
			upper(p.city, c, sizeof(c));
			sb_fmt_time_local(s->scans[i].at, p.tz, ts, sizeof(ts));
			snprintf(line, sizeof(line), "%s, %.10s %.5s, %s, %s %s", u.event, ts, ts + 11,
				 c, p.state, p.zip);
			json_array_append_new(sums, sb_jstr(line));
		}
		json_object_set_new(j, "statusSummary", sb_jstr(buf));
		json_object_set_new(j, "eventSummaries", sums);
		return j;
	}
	json_object_set_new(j, "additionalInfo", json_string(""));
	json_object_set_new(j, "carrierRelease", json_false());
	json_object_set_new(j, "mailClass", json_string(s->service == 2 ? "PRIORITY_MAIL"
									  : "USPS_GROUND_ADVANTAGE"));
	json_object_set_new(j, "destinationCity", json_string(dcity));
	json_object_set_new(j, "destinationCountryCode", json_string(dest.cc));
	json_object_set_new(j, "destinationState", sb_jstr(dest.state));
	json_object_set_new(j, "destinationZIP", json_string(dest.zip));
	json_object_set_new(j, "emailEnabled", json_true());
	json_object_set_new(j, "eSOFEligible", json_false());
	if (!del) {
		sb_fmt_time_local(estimated_delivery(s), dest.tz, ts, sizeof(ts));
		json_object_set_new(j, "expectedDeliveryTimeStamp", json_string(ts));
		json_object_set_new(j, "expectedDeliveryType", json_string("Expected Delivery By"));
	}
	json_object_set_new(j, "itemShape", json_string("PARCEL"));
	json_object_set_new(j, "kahalaIndicator", json_false());
	json_object_set_new(j, "mailType", json_string("DOMESTIC_MAIL"));
	sb_fmt_time_z(s->created, ts, sizeof(ts));
	json_object_set_new(j, "mailPieceIntakeDate", json_string(ts));
	snprintf(buf + 200, 40, "%09lld", (long long)(sb_hash_str(s->number) % 1000000000ULL));
	json_object_set_new(j, "uniqueMailPieceId", json_string(buf + 200));
	json_object_set_new(j, "onTime", json_true());
	json_object_set_new(j, "originCity", json_string(ocity));
	json_object_set_new(j, "originCountry", json_string(orig.cc));
	json_object_set_new(j, "originState", sb_jstr(orig.state));
	json_object_set_new(j, "originZIP", json_string(orig.zip));
	json_object_set_new(j, "proofOfDeliveryEnabled", json_boolean(del));
	json_object_set_new(j, "redeliveryEnabled", json_boolean(last == SB_STAGE_ATTEMPT));
	json_object_set_new(j, "restoreEnabled", json_false());
	json_object_set_new(j, "RRAMenabled", json_false());
	json_object_set_new(j, "RREEnabled", json_false());
	json_object_set_new(j, "services", json_pack("[s,s]", "USPS Tracking<SUP>&#174;</SUP>",
						     "Up to $100 insurance included"));
	json_object_set_new(j, "serviceTypeCode", json_string(s->service == 2 ? "055" : "001"));
	json_object_set_new(j, "status", json_string(cur.status));
	json_object_set_new(j, "statusCategory", json_string(cur.category));
	json_object_set_new(j, "statusSummary", sb_jstr(buf));
	json_object_set_new(j, "tableCode", json_string("T"));
	json_t *evs = json_array();
	for (int i = n - 1; i >= 0; i--) {
		struct usps_code u;
		struct place p;
		char c[64];
		usps_status(s->scans[i].stage, &u);
		place_of(s, s->scans[i].where, &p);
		upper(p.city, c, sizeof(c));
		sb_fmt_time_local(s->scans[i].at, p.tz, ts, sizeof(ts));
		sb_fmt_time_z(s->scans[i].at, gmt, sizeof(gmt));
		snprintf(off, sizeof(off), "%c%02d:%02d", p.tz < 0 ? '-' : '+', abs(p.tz) / 60,
			 abs(p.tz) % 60);
		int hub = s->scans[i].where > 0 && s->scans[i].where < 9;
		json_t *e = json_object();
		json_object_set_new(e, "eventType", json_string(u.event));
		json_object_set_new(e, "eventTimestamp", json_string(ts));
		json_object_set_new(e, "GMTTimestamp", json_string(gmt));
		json_object_set_new(e, "GMTOffset", json_string(off));
		json_object_set_new(e, "eventCountry", strcmp(p.cc, "US") ? json_string(p.cc)
									  : json_null());
		if (hub) {
			char fac[96];
			snprintf(fac, sizeof(fac), "%s %s DISTRIBUTION CENTER", c, p.state);
			json_object_set_new(e, "eventCity", json_string(fac));
			json_object_set_new(e, "eventState", json_null());
			json_object_set_new(e, "eventZIP", json_null());
		} else {
			json_object_set_new(e, "eventCity", json_string(c));
			json_object_set_new(e, "eventState", sb_jstr0(p.state));
			json_object_set_new(e, "eventZIP", json_string(p.zip));
		}
		json_object_set_new(e, "firm", json_null());
		json_object_set_new(e, "name", json_null());
		json_object_set_new(e, "authorizedAgent", json_false());
		json_object_set_new(e, "eventCode", json_string(u.code));
		json_array_append_new(evs, e);
	}
	json_object_set_new(j, "trackingEvents", evs);
	return j;
}

static json_t *usps_detail(const struct sb_shipment *s, int64_t now)
{
	return usps_track(s, now, 1);
}

static void usps_token(struct sb_req *r)
{
	json_t *b = sb_body_json(r, 1);
	const char *gt = json_string_value(json_object_get(b, "grant_type"));
	const char *id = json_string_value(json_object_get(b, "client_id"));
	const char *sec = json_string_value(json_object_get(b, "client_secret"));
	if (!gt || strcmp(gt, "client_credentials")) {
		json_decref(b);
		sb_reply_json(r, 400, json_pack("{s:s,s:s}", "error", "unsupported_grant_type",
						"error_description",
						"The authorization grant type is not supported."));
		return;
	}
	if (!id || !sec || !sb_ct_streq(id, r->srv->usps_id) ||
	    !sb_ct_streq(sec, r->srv->usps_secret)) {
		json_decref(b);
		sb_reply_json(r, 401, json_pack("{s:s,s:s,s:s}", "error", "invalid_client",
						"error_description", "Client authentication failed.",
						"error_uri",
						"https://datatracker.ietf.org/doc/html/rfc6749#page-45"));
		return;
	}
	json_decref(b);
	int ttl = r->srv->cfg.carrier_token_ttl_s[SB_CARRIER_USPS];
	char tok[128], issued[32], exp[16];
	sb_token_issue(r->srv, SB_USPS, NULL, ttl, "eyJ", tok, sizeof(tok));
	snprintf(issued, sizeof(issued), "%lld", (long long)sb_now(r->srv));
	snprintf(exp, sizeof(exp), "%d", ttl);
	sb_reply_json(r, 200, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "access_token", tok,
					"token_type", "Bearer", "issued_at", issued, "expires_in",
					exp, "status", "approved", "scope", "tracking", "issuer",
					"api.usps.com", "client_id", r->srv->usps_id,
					"application_name", "hub-sandbox"));
}

static void usps_handle(struct sb_req *r, const char *p)
{
	if (!strcmp(p, "/oauth2/v3/token") && r->method == EVHTTP_REQ_POST) {
		usps_token(r);
		return;
	}
	const char *prefix = "/tracking/v3/tracking/";
	if (strncmp(p, prefix, strlen(prefix)) || r->method != EVHTTP_REQ_GET ||
	    strchr(p + strlen(prefix), '/')) {
		usps_error(r, 404, "404", "Not Found", "The requested resource was not found.");
		return;
	}
	int v = sb_token_check(r->srv, SB_USPS, sb_bearer(r), NULL);
	if (v != 1 || r->fault == SB_FAULT_EXPIRED) {
		sb_set_header(r, "WWW-Authenticate", "Bearer realm=\"https://api.usps.com\"");
		usps_error(r, 401, "401", "Unauthorized",
			   v == -1 || r->fault == SB_FAULT_EXPIRED ? "The access token expired."
								   : "Invalid access token.");
		return;
	}
	if (!carrier_limit(r, SB_USPS))
		return;
	const char *num = p + strlen(prefix);
	struct sb_shipment *s = sb_world_shipment(r->srv->world, num);
	if (!s || s->carrier != SB_CARRIER_USPS) {
		usps_error(r, 404, "1603", "Not Found",
			   "The tracking number may be incorrect or the status update is not yet available. Please verify your tracking number and try again later.");
		return;
	}
	const char *ex = sb_q(r, "expand");
	if (ex && !strcmp(ex, "DETAIL"))
		reply_cached(r, SB_USPS, s, usps_detail);
	else
		sb_reply_json(r, 200, usps_track(s, sb_now(r->srv), 0));
}

/* ---- DHL ---------------------------------------------------------------- */

struct dhl_code {
	const char *code, *status, *desc;
};

static void dhl_status(int stage, struct dhl_code *d)
{
	switch (stage) {
	case SB_STAGE_LABEL:
		*d = (struct dhl_code){ "pre-transit", "SHIPMENT INFORMATION RECEIVED",
					"Shipment information received" };
		break;
	case SB_STAGE_PICKUP:
		*d = (struct dhl_code){ "transit", "PICKED UP", "Shipment picked up" };
		break;
	case SB_STAGE_DEPART:
		*d = (struct dhl_code){ "transit", "DEPARTED FACILITY", "Departed Facility" };
		break;
	case SB_STAGE_ARRIVE:
		*d = (struct dhl_code){ "transit", "ARRIVED AT SORT FACILITY",
					"Arrived at DHL Sort Facility" };
		break;
	case SB_STAGE_OUT:
		*d = (struct dhl_code){ "transit", "WITH DELIVERY COURIER", "With delivery courier" };
		break;
	case SB_STAGE_ATTEMPT:
		*d = (struct dhl_code){ "failure", "DELIVERY ATTEMPTED",
					"Delivery attempted; recipient not home" };
		break;
	default:
		*d = (struct dhl_code){ "delivered", "DELIVERED", "Delivered" };
		break;
	}
}

static json_t *dhl_loc(const struct place *p)
{
	char loc[96], city[64];
	upper(p->city, city, sizeof(city));
	snprintf(loc, sizeof(loc), "%s - %s", city, p->country);
	return json_pack("{s:{s:s,s:s,s:s}}", "address", "countryCode", p->cc, "postalCode",
			 p->zip, "addressLocality", loc);
}

static json_t *dhl_track(const struct sb_shipment *s, int64_t now)
{
	int n = sb_shipment_visible(s, now);
	int last = n ? s->scans[n - 1].stage : SB_STAGE_LABEL;
	struct place orig, dest, lp;
	place_of(s, 0, &orig);
	place_of(s, 9, &dest);
	place_of(s, n ? s->scans[n - 1].where : 0, &lp);
	struct dhl_code cur;
	dhl_status(last, &cur);
	char ts[40];
	json_t *sh = json_object();
	json_object_set_new(sh, "id", json_string(s->number));
	json_object_set_new(sh, "service", json_string("express"));
	json_object_set_new(sh, "origin", dhl_loc(&orig));
	json_object_set_new(sh, "destination", dhl_loc(&dest));
	sb_fmt_time_z(n ? s->scans[n - 1].at : s->created, ts, sizeof(ts));
	json_object_set_new(sh, "status",
			    json_pack("{s:s,s:o,s:s,s:s,s:s}", "timestamp", ts, "location",
				      dhl_loc(&lp), "statusCode", cur.code, "status", cur.status,
				      "description", cur.desc));
	int del = delivered(s, n);
	if (!del) {
		sb_fmt_time_z(estimated_delivery(s), ts, sizeof(ts));
		json_object_set_new(sh, "estimatedTimeOfDelivery", json_string(ts));
	}
	json_t *det = json_object();
	json_object_set_new(det, "carrier", json_pack("{s:s,s:s}", "@type", "Organization",
						       "organizationName", "DHL"));
	json_object_set_new(det, "product", json_pack("{s:s}", "productName", "EXPRESS WORLDWIDE"));
	if (del) {
		char name[100];
		snprintf(name, sizeof(name), "%s %s", s->to.first, s->to.last);
		sb_fmt_time_z(s->scans[n - 1].at, ts, sizeof(ts));
		json_object_set_new(det, "proofOfDelivery",
				    json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s}}", "timestamp", ts,
					      "documentUrl",
					      "https://webpod.dhl.com/webPOD/DHLePODRequest", "signed",
					      "@type", "Person", "familyName", s->to.last, "givenName",
					      s->to.first, "name", name));
	}
	json_object_set_new(det, "totalNumberOfPieces", json_integer(1));
	char piece[64];
	snprintf(piece, sizeof(piece), "JD01460000%s", s->number);
	json_object_set_new(det, "pieceIds", json_pack("[s]", piece));
	json_object_set_new(det, "weight", json_pack("{s:f,s:s}", "value",
						     round(s->weight_g / 100.0) / 10.0, "unitText",
						     "kg"));
	json_object_set_new(det, "references",
			    json_pack("{s:s,s:s}", "number", s->reference, "type", "customer-reference"));
	json_object_set_new(sh, "details", det);
	json_t *evs = json_array();
	for (int i = n - 1; i >= 0; i--) {
		struct dhl_code d;
		struct place p;
		dhl_status(s->scans[i].stage, &d);
		place_of(s, s->scans[i].where, &p);
		sb_fmt_time_local(s->scans[i].at, p.tz, ts, sizeof(ts));
		json_array_append_new(evs, json_pack("{s:s,s:o,s:s,s:s,s:s}", "timestamp", ts,
						     "location", dhl_loc(&p), "statusCode", d.code,
						     "status", d.status, "description", d.desc));
	}
	json_object_set_new(sh, "events", evs);
	return json_pack("{s:[o],s:[]}", "shipments", sh, "possibleAdditionalShipmentsUrl");
}

static void dhl_handle(struct sb_req *r, const char *p)
{
	if (strcmp(p, "/track/shipments") || r->method != EVHTTP_REQ_GET) {
		problem(r, 404, "Not Found", "The requested resource does not exist.", p);
		return;
	}
	const char *key = sb_header(r, "DHL-API-Key");
	if (!key || !sb_ct_streq(key, r->srv->dhl_key) || r->fault == SB_FAULT_EXPIRED) {
		problem(r, 401, "Unauthorized", "Invalid API key.", NULL);
		return;
	}
	if (!carrier_limit(r, SB_DHL))
		return;
	const char *num = sb_q(r, "trackingNumber");
	if (!num || !*num) {
		problem(r, 400, "Bad Request", "trackingNumber is required.", NULL);
		return;
	}
	struct sb_shipment *s = sb_world_shipment(r->srv->world, num);
	if (!s || s->carrier != SB_CARRIER_DHL) {
		char inst[96];
		snprintf(inst, sizeof(inst), "/shipment/%s", num);
		problem(r, 404, "No result found", "No shipment with given tracking number found.",
			inst);
		return;
	}
	reply_cached(r, SB_DHL, s, dhl_track);
}

/* ---- entry points ------------------------------------------------------- */

json_t *sb_carrier_track_json(struct sb_server *srv, int api, struct sb_shipment *s, int64_t now)
{
	switch (api) {
	case SB_UPS:
		return ups_track(s, now);
	case SB_FEDEX: {
		char tid[40];
		sb_request_id(srv, tid, sizeof(tid));
		return json_pack("{s:s,s:{s:[{s:s,s:[o]}]}}", "transactionId", tid, "output",
				 "completeTrackResults", "trackingNumber", s->number, "trackResults",
				 fx_result(s, now));
	}
	case SB_USPS:
		return usps_track(s, now, 1);
	default:
		return dhl_track(s, now);
	}
}

int sb_carrier_handle(struct sb_req *r, int api)
{
	const char *p = r->path;
	switch (api) {
	case SB_UPS:
		ups_handle(r, p);
		break;
	case SB_FEDEX:
		fedex_handle(r, p);
		break;
	case SB_USPS:
		usps_handle(r, p);
		break;
	default:
		dhl_handle(r, p);
		break;
	}
	return 1;
}
