/*
 * retry.c - failure classification, backoff with full jitter, Retry-After
 * parsing and the per-connector circuit breaker (see retry.h). Pure
 * computation: the caller owns every struct and passes the time in.
 */
#include "config.h"
#include "retry.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_BASE_MS 500
#define DEFAULT_CAP_MS 300000
#define DEFAULT_MAX_ATTEMPTS 8
#define DEFAULT_MAX_AGE_MS (24LL * 3600 * 1000)
#define RETRY_AFTER_MAX_MS (24LL * 3600 * 1000)

#define DEFAULT_FAILURE_THRESHOLD 5
#define DEFAULT_AUTH_THRESHOLD 2
#define DEFAULT_COOLDOWN_MS 30000
#define DEFAULT_MAX_COOLDOWN_MS 600000

enum retry_verdict retry_classify(int status, bool transport_transient)
{
	if (status <= 0)
		return transport_transient ? RETRY_TRANSIENT : RETRY_PERMANENT;
	if (status < 400)
		return RETRY_OK;
	if (status == 408 || status == 429 || (status >= 500 && status <= 599))
		return RETRY_TRANSIENT;
	if (status == 401 || status == 403)
		return RETRY_AUTH;
	return RETRY_PERMANENT;
}

const char *retry_verdict_name(enum retry_verdict verdict)
{
	switch (verdict) {
	case RETRY_OK:
		return "ok";
	case RETRY_TRANSIENT:
		return "transient";
	case RETRY_PERMANENT:
		return "permanent";
	case RETRY_AUTH:
		return "auth";
	}
	return "unknown";
}

/* xorshift64*: fast, good enough for jitter, never used for secrets. */
static uint64_t default_rng(void *arg)
{
	static _Thread_local uint64_t s;
	(void)arg;

	if (s == 0) {
		if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
			s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		if (s == 0)
			s = 0x9e3779b97f4a7c15ULL;
	}
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545f4914f6cdd1dULL;
}

int64_t retry_backoff_ms(const struct retry_policy *policy, unsigned attempt, int64_t retry_after_ms)
{
	int64_t base = policy->base_ms > 0 ? policy->base_ms : DEFAULT_BASE_MS;
	int64_t cap = policy->cap_ms > 0 ? policy->cap_ms : DEFAULT_CAP_MS;
	retry_rng_fn rng = policy->rng != NULL ? policy->rng : default_rng;
	int64_t window = base < cap ? base : cap;
	int64_t delay;

	/* Doubling with a check instead of a shift: no overflow for any attempt. */
	for (unsigned i = 1; i < attempt && window < cap; i++)
		window = window > cap / 2 ? cap : window * 2;
	delay = (int64_t)(rng(policy->rng_arg) % ((uint64_t)window + 1));
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	return delay;
}

bool retry_exhausted(const struct retry_policy *policy, unsigned attempts, int64_t first_failure_ms,
		     int64_t next_attempt_ms)
{
	unsigned max_attempts = policy->max_attempts > 0 ? policy->max_attempts : DEFAULT_MAX_ATTEMPTS;
	int64_t max_age = policy->max_age_ms > 0 ? policy->max_age_ms : DEFAULT_MAX_AGE_MS;

	return attempts >= max_attempts || next_attempt_ms - first_failure_ms > max_age;
}

/* ---- Retry-After --------------------------------------------------------- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static const char *skip_spaces(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Reads exactly `n` digits. Returns the position after them or NULL. */
static const char *read_digits(const char *p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!is_digit(p[i]))
			return NULL;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return p + n;
}

/* Reads 1 or 2 digits (asctime pads days with a space). */
static const char *read_day(const char *p, int *out)
{
	if (!is_digit(p[0]))
		return NULL;
	if (is_digit(p[1]))
		return read_digits(p, 2, out);
	return read_digits(p, 1, out);
}

static const char *read_month(const char *p, int *month)
{
	static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++) {
		if (strncmp(p, names + 3 * i, 3) == 0) {
			*month = i + 1;
			return p + 3;
		}
	}
	return NULL;
}

/* "HH:MM:SS" */
static const char *read_clock(const char *p, int *h, int *m, int *s)
{
	if ((p = read_digits(p, 2, h)) == NULL || *p++ != ':')
		return NULL;
	if ((p = read_digits(p, 2, m)) == NULL || *p++ != ':')
		return NULL;
	if ((p = read_digits(p, 2, s)) == NULL)
		return NULL;
	return *h <= 23 && *m <= 59 && *s <= 60 ? p : NULL;
}

/* Days from 1970-01-01 to the given proleptic Gregorian date. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Parses the three HTTP-date forms into ms since the epoch. */
static int parse_http_date(const char *p, int64_t *epoch_ms)
{
	int day, month, year, h, m, s;
	const char *q = p;

	/* Day name, then "," for IMF-fixdate and RFC 850, or a space for asctime. */
	while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
		q++;
	if (q == p)
		return -1;
	if (*q == ',') {
		q = skip_spaces(q + 1);
		if ((q = read_digits(q, 2, &day)) == NULL)
			return -1;
		if (*q == ' ') { /* IMF-fixdate: 06 Nov 1994 */
			if ((q = read_month(q + 1, &month)) == NULL || *q++ != ' ')
				return -1;
			if ((q = read_digits(q, 4, &year)) == NULL)
				return -1;
		} else if (*q == '-') { /* RFC 850: 06-Nov-94 */
			if ((q = read_month(q + 1, &month)) == NULL || *q++ != '-')
				return -1;
			if ((q = read_digits(q, 2, &year)) == NULL)
				return -1;
			year += year < 70 ? 2000 : 1900;
		} else {
			return -1;
		}
		if (*q++ != ' ' || (q = read_clock(q, &h, &m, &s)) == NULL)
			return -1;
		q = skip_spaces(q);
		if (strncmp(q, "GMT", 3) != 0)
			return -1;
		q += 3;
	} else if (*q == ' ') { /* asctime: Nov  6 08:49:37 1994 */
		if ((q = read_month(q + 1, &month)) == NULL)
			return -1;
		q = skip_spaces(q);
		if ((q = read_day(q, &day)) == NULL || *q++ != ' ')
			return -1;
		if ((q = read_clock(q, &h, &m, &s)) == NULL || *q++ != ' ')
			return -1;
		if ((q = read_digits(q, 4, &year)) == NULL)
			return -1;
	} else {
		return -1;
	}
	if (*skip_spaces(q) != '\0' || day < 1 || day > 31)
		return -1;
	*epoch_ms = ((days_from_civil(year, month, day) * 24 + h) * 60 + m) * 60000LL + s * 1000LL;
	return 0;
}

/* Parses delta-seconds with an optional fraction into ms, rounding up. */
static int parse_delta(const char *p, int64_t *ms)
{
	int64_t secs = 0, frac = 0, scale = 1000;
	bool round_up = false;

	if (!is_digit(*p))
		return -1;
	for (; is_digit(*p); p++) {
		if (secs <= RETRY_AFTER_MAX_MS / 1000)
			secs = secs * 10 + (*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return -1;
		for (; is_digit(*p); p++) {
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			} else if (*p != '0') {
				round_up = true; /* never retry earlier than asked */
			}
		}
	}
	if (*skip_spaces(p) != '\0')
		return -1;
	if (secs > RETRY_AFTER_MAX_MS / 1000)
		*ms = RETRY_AFTER_MAX_MS;
	else
		*ms = secs * 1000 + frac + (round_up ? 1 : 0);
	return 0;
}

int retry_after_parse(const char *value, int64_t now_ms, int64_t *delay_ms)
{
	int64_t v;

	if (value == NULL)
		return -1;
	value = skip_spaces(value);
	if (is_digit(*value)) {
		if (parse_delta(value, &v) != 0)
			return -1;
	} else {
		if (parse_http_date(value, &v) != 0)
			return -1;
		v -= now_ms;
		if (v < 0)
			v = 0;
	}
	*delay_ms = v > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : v;
	return 0;
}

/* ---- circuit breaker ------------------------------------------------------ */

void retry_circuit_init(struct retry_circuit *c, const struct retry_circuit_opts *opts)
{
	memset(c, 0, sizeof(*c));
	if (opts != NULL)
		c->opts = *opts;
	if (c->opts.failure_threshold == 0)
		c->opts.failure_threshold = DEFAULT_FAILURE_THRESHOLD;
	if (c->opts.auth_failure_threshold == 0)
		c->opts.auth_failure_threshold = DEFAULT_AUTH_THRESHOLD;
	if (c->opts.cooldown_ms <= 0)
		c->opts.cooldown_ms = DEFAULT_COOLDOWN_MS;
	if (c->opts.max_cooldown_ms < c->opts.cooldown_ms)
		c->opts.max_cooldown_ms = c->opts.cooldown_ms > DEFAULT_MAX_COOLDOWN_MS
						  ? c->opts.cooldown_ms
						  : DEFAULT_MAX_COOLDOWN_MS;
	c->state = RETRY_CIRCUIT_CLOSED;
	c->cooldown_ms = c->opts.cooldown_ms;
}

bool retry_circuit_allow(struct retry_circuit *c, int64_t now_ms)
{
	switch (c->state) {
	case RETRY_CIRCUIT_CLOSED:
		return true;
	case RETRY_CIRCUIT_OPEN:
		if (now_ms < c->probe_at_ms)
			return false;
		c->state = RETRY_CIRCUIT_HALF_OPEN;
		return true;
	case RETRY_CIRCUIT_HALF_OPEN:
		return false;
	}
	return false;
}

int64_t retry_circuit_wait_ms(const struct retry_circuit *c, int64_t now_ms)
{
	switch (c->state) {
	case RETRY_CIRCUIT_CLOSED:
		return 0;
	case RETRY_CIRCUIT_OPEN:
		return c->probe_at_ms > now_ms ? c->probe_at_ms - now_ms : 0;
	case RETRY_CIRCUIT_HALF_OPEN:
		return -1;
	}
	return -1;
}

void retry_circuit_success(struct retry_circuit *c)
{
	c->state = RETRY_CIRCUIT_CLOSED;
	c->failures = 0;
	c->auth_failures = 0;
	c->opens = 0;
	c->cooldown_ms = c->opts.cooldown_ms;
	c->probe_at_ms = 0;
	c->reason[0] = '\0';
}

static void circuit_open(struct retry_circuit *c, const char *why, const char *what, int64_t now_ms)
{
	c->state = RETRY_CIRCUIT_OPEN;
	c->opened_at_ms = now_ms;
	c->probe_at_ms = now_ms + c->cooldown_ms;
	c->opens++;
	snprintf(c->reason, sizeof(c->reason), "%s; last: %s; next probe in %lld s", why,
		 what != NULL && *what != '\0' ? what : "unknown error",
		 (long long)((c->cooldown_ms + 999) / 1000));
}

bool retry_circuit_failure(struct retry_circuit *c, enum retry_verdict verdict, const char *what,
			   int64_t now_ms)
{
	char why[96];

	if (verdict == RETRY_OK) {
		retry_circuit_success(c);
		return false;
	}
	if (verdict == RETRY_PERMANENT) {
		/* The upstream answered: no evidence about its health either way.
		 * A probe that gets one counts as alive, though. */
		if (c->state == RETRY_CIRCUIT_HALF_OPEN)
			retry_circuit_success(c);
		return false;
	}
	if (verdict == RETRY_AUTH) {
		c->auth_failures++;
		c->failures = 0;
	} else {
		c->failures++;
		c->auth_failures = 0;
	}

	if (c->state == RETRY_CIRCUIT_HALF_OPEN) {
		/* The probe failed: wait longer before the next one. */
		c->cooldown_ms = c->cooldown_ms > c->opts.max_cooldown_ms / 2 ? c->opts.max_cooldown_ms
									  : c->cooldown_ms * 2;
		snprintf(why, sizeof(why), "probe failed (%s)", verdict == RETRY_AUTH ? "credentials refused"
										     : "still failing");
		circuit_open(c, why, what, now_ms);
		return false;
	}
	if (c->state == RETRY_CIRCUIT_OPEN)
		return false; /* a late result of an attempt started before it opened */

	if (c->auth_failures >= c->opts.auth_failure_threshold) {
		snprintf(why, sizeof(why), "credentials refused %u times in a row", c->auth_failures);
		circuit_open(c, why, what, now_ms);
		return true;
	}
	if (c->failures >= c->opts.failure_threshold) {
		snprintf(why, sizeof(why), "%u consecutive failures", c->failures);
		circuit_open(c, why, what, now_ms);
		return true;
	}
	return false;
}

enum retry_circuit_state retry_circuit_state(const struct retry_circuit *c)
{
	return c->state;
}

const char *retry_circuit_reason(const struct retry_circuit *c)
{
	return c->reason;
}

const char *retry_circuit_state_name(enum retry_circuit_state state)
{
	switch (state) {
	case RETRY_CIRCUIT_CLOSED:
		return "closed";
	case RETRY_CIRCUIT_OPEN:
		return "open";
	case RETRY_CIRCUIT_HALF_OPEN:
		return "half_open";
	}
	return "unknown";
}
