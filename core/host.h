/*
 * host.h - the host function table handed to plugins (struct hub_host of
 * sdk/include/hub/plugin.h) and the checks the core applies to what they
 * emit.
 *
 * Plugins call back into the core only through host_table(): logging tagged
 * with the connector, HMAC and constant-time compare, the clock, secrets,
 * the access token and cursors of their connector, message accessors and
 * call outputs. Every record a plugin emits is validated here against its
 * canonical schema (sdk/schema/) before it can reach the store; a record
 * that fails is kept aside with the JSON path of the field and the reason,
 * for the dead letters.
 *
 * Threads: the table's functions run on the thread that called the plugin
 * (the event loop in hubd). host_clock_fix is for tools and tests.
 */
#ifndef HUB_CORE_HOST_H
#define HUB_CORE_HOST_H

#include <stdint.h>
#include <jansson.h>

#include <hub/plugin.h>

struct js_registry;

/* The one host table, valid for the life of the process. */
const struct hub_host *host_table(void);

/*
 * Fixes the clock plugins see through host->now_ms to `utc_ms` (the kit
 * replays cases at the time they were recorded); 0 returns to the real
 * clock. Process-wide, not thread-safe: tools and tests only.
 */
void host_clock_fix(int64_t utc_ms);

/*
 * Fixes the clock plugins see on the calling thread only to `utc_ms`,
 * ahead of host_clock_fix's; 0 removes the override. The kit's concurrent
 * webhook check runs cases recorded at different times on several threads
 * at once. Tools and tests only.
 */
void host_clock_fix_thread(int64_t utc_ms);

/* The time host->now_ms returns: the calling thread's fixed clock, else the
 * process-wide one, else CLOCK_REALTIME in ms. */
int64_t host_now_ms(void);

/*
 * Validates one record of `kind` against its canonical schema in `schemas`
 * (a registry holding the built-in schemas). Returns 0 when valid, -1 with
 * err->field set to the JSON path of the offending field, prefixed by the
 * kind ("order.lines[0].unit_price"), and err->message to the reason.
 */
int host_validate_record(const struct js_registry *schemas, enum hub_record_kind kind,
			 const json_t *record, struct hub_error *err);

/* "HUB_OK", "HUB_DONE", ... for a status; NULL when not a known value. */
const char *host_status_name(int status);
/* The status named `name` ("HUB_OK" or "OK"); 0 success, -1 unknown. */
int host_status_parse(const char *name, int *status);

/* "orders", "shipments", "tracking", "webhooks", "fulfillment_push",
 * "token_refresh" as a JSON array of the capability flags set. New ref. */
json_t *host_capabilities_json(uint32_t capabilities);

#endif /* HUB_CORE_HOST_H */
