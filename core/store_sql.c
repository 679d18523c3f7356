/*
 * store_sql.c - the SQL shared by both store backends: the statement texts,
 * the numbered migrations, scripts (statement lists with their parameters
 * in an arena) and small helpers (see store_sql.h).
 *
 * Dialect notes. Both SQLite (>= 3.35) and PostgreSQL accept INSERT ... ON
 * CONFLICT ... DO UPDATE ... WHERE, RETURNING, row values and CAST, so most
 * statements are shared. They differ on JSON: lines, tracking numbers and
 * tracking events are expanded from the stored JSON by the database itself
 * (json_each in SQLite, json_array_elements in PostgreSQL), which is what
 * lets a unit's statements run without the client inspecting results in
 * between. Identity columns and transaction start differ too.
 *
 * An upsert writes the dependent rows (an order's lines, a shipment's
 * tracking numbers) only when it actually wrote, i.e. when it returned the
 * row's id; an upsert that lost to a newer or equal version returns
 * nothing. PostgreSQL writes an order or a shipment in two pipelined
 * statements: the upsert, marking the rows it writes, then the dependent
 * rows of the rows so marked (see SQL_ORDERS_BULK_PG for why). SQLite,
 * in-process, runs the dependent statements flagged SQL_STMT_DEPENDENT:
 * skipped when the upsert returned no row, else bound to its id - no
 * lookup, no JSON to parse.
 */
#include "config.h"
#include "store_sql.h"

#include <hub/sdk.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- statements ------------------------------------------------------------ */

/* The upserts, in parts shared by the SQLite statements and the
 * PostgreSQL ones, which also mark the row they write. An older or equal
 * updated_at changes nothing (and returns no row). */
#define ORDER_UPSERT                                                                       \
	"INSERT INTO orders (merchant, connector, external_id, number, name, status, "         \
	"financial_status, fulfillment_status, currency, total, created_at_ms, updated_at_ms, " \
	"record, stored_at_ms) "                                                                \
	"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) " ORDER_CONFLICT

#define ORDER_CONFLICT ORDER_SET ORDER_NEWER

#define ORDER_SET                                                                          \
	"ON CONFLICT (connector, external_id, merchant) DO UPDATE SET "                        \
	"number = excluded.number, name = excluded.name, status = excluded.status, "           \
	"financial_status = excluded.financial_status, "                                       \
	"fulfillment_status = excluded.fulfillment_status, currency = excluded.currency, "     \
	"total = excluded.total, created_at_ms = excluded.created_at_ms, "                     \
	"updated_at_ms = excluded.updated_at_ms, record = excluded.record, "                   \
	"stored_at_ms = excluded.stored_at_ms"

#define ORDER_NEWER " WHERE orders.updated_at_ms < excluded.updated_at_ms"

/* PostgreSQL: the upsert also marks the row it writes with the writing
 * transaction (written_xid = txid_current(): 64 bits, never reused) and a
 * number the store draws for the statement (written_seq: unique within the
 * transaction, which may write one order in two chunks or two units). The
 * statement that then replaces the lines finds its orders by that mark. */
#define ORDER_CONFLICT_PG                                                                  \
	ORDER_SET ", written_xid = excluded.written_xid, written_seq = excluded.written_seq"    \
	ORDER_NEWER

#define SHIPMENT_UPSERT                                                                    \
	SHIPMENT_INSERT ") VALUES (" SHIPMENT_VALUES ") " SHIPMENT_SET SHIPMENT_NEWER

#define SHIPMENT_INSERT                                                                    \
	"INSERT INTO shipments (merchant, connector, external_id, order_external_id, carrier, " \
	"status, shipped_at_ms, estimated_delivery_ms, delivered_ms, created_at_ms, "          \
	"updated_at_ms, record, stored_at_ms"

#define SHIPMENT_VALUES "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13"

/* What tracking learnt (tracking_status set) wins over the marketplace's
 * status; dates are only ever filled, never cleared. */
#define SHIPMENT_SET                                                                       \
	"ON CONFLICT (connector, external_id, merchant) DO UPDATE SET "                        \
	"order_external_id = excluded.order_external_id, carrier = excluded.carrier, "         \
	"status = CASE WHEN shipments.tracking_status IS NULL THEN excluded.status "           \
	"ELSE shipments.status END, "                                                           \
	"shipped_at_ms = excluded.shipped_at_ms, "                                              \
	"estimated_delivery_ms = COALESCE(excluded.estimated_delivery_ms, "                    \
	"shipments.estimated_delivery_ms), "                                                    \
	"delivered_ms = COALESCE(excluded.delivered_ms, shipments.delivered_ms), "             \
	"created_at_ms = excluded.created_at_ms, updated_at_ms = excluded.updated_at_ms, "     \
	"record = excluded.record, stored_at_ms = excluded.stored_at_ms"

#define SHIPMENT_NEWER " WHERE shipments.updated_at_ms < excluded.updated_at_ms"


#define DEF(s, text) [s] = {s, text, NULL}
#define DEF2(s, text, pg) [s] = {s, text, pg}

const struct sql_def sql_defs[SQL_SLOT_COUNT] = {
	DEF2(SQL_BEGIN, "BEGIN IMMEDIATE", "BEGIN"),
	DEF(SQL_COMMIT, "COMMIT"),
	DEF(SQL_ROLLBACK, "ROLLBACK"),
	DEF(SQL_SAVEPOINT, "SAVEPOINT unit"),
	DEF(SQL_RELEASE, "RELEASE SAVEPOINT unit"),
	DEF(SQL_ROLLBACK_TO, "ROLLBACK TO SAVEPOINT unit"),
	DEF(SQL_FAULT, "INSERT INTO hub_injected_fault VALUES (1)"),

	DEF(SQL_RECEIPT_INSERT,
	    "INSERT INTO webhook_receipts (connector, delivery_id, received_at_ms, expires_at_ms) "
	    "VALUES ($1, $2, $3, $4)"),

	DEF(SQL_ORDER_UPSERT, ORDER_UPSERT " RETURNING id"),
	/* SQLite, SQL_STMT_DEPENDENT on the upsert: $1 is its id. */
	DEF(SQL_ORDER_LINES_DELETE, "DELETE FROM order_lines WHERE order_id = $1"),
	DEF(SQL_ORDER_LINE_INSERT,
	    "INSERT INTO order_lines (order_id, line_no, external_id, sku, title, quantity, "
	    "unit_price) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
	/*
	 * PostgreSQL writes an order in two statements, pipelined one after
	 * the other in the same transaction: the upsert, then the replacement
	 * of the lines of the orders it wrote. One statement would not do
	 * (READ COMMITTED): when another transaction writes the same order at
	 * the same time, the upsert waits for that row (or, for a new order, on
	 * the unique index) and then sees the other's committed row, but the
	 * DELETE of the lines runs on the snapshot the statement took before
	 * the other committed - it misses the other's new lines, and the order
	 * keeps both sets. The second statement takes a fresh snapshot, and by
	 * then this transaction holds the row of every order it wrote, so every
	 * earlier writer of those orders has committed and its lines are
	 * visible. Being pipelined, it cannot use the first one's results: it
	 * finds the orders written by that very statement by their keys and the
	 * mark the upsert left (written_xid = this transaction, written_seq =
	 * the number the store gave both statements). The DELETE and the
	 * INSERT of the second statement share a snapshot: the DELETE sees
	 * only the lines that were there before.
	 */
	/* PostgreSQL, the optimistic path of a batch: the orders of many units
	 * in one statement. The columns come as binary arrays ($1-$13, one
	 * element per order, keys unique), $19 is the statement's written_seq.
	 * The folded webhook receipts come as arrays too ($15-$17), and $18
	 * gives each order the 1-based position of the receipt that gates it
	 * (0: none). Returns (0, position) per written order and (1, position)
	 * per receipt that was new. SQL_ORDERS_BULK_LINES_PG follows it. */
	DEF2(SQL_ORDERS_BULK_PG, NULL,
	     "WITH rcp AS (SELECT * FROM unnest(CAST($15 AS text[]), CAST($16 AS text[]), "
	     "CAST($17 AS bigint[])) WITH ORDINALITY AS r(connector, delivery_id, expires_at_ms, pos)), "
	     "ins AS (INSERT INTO webhook_receipts (connector, delivery_id, received_at_ms, "
	     "expires_at_ms) SELECT connector, delivery_id, $14, expires_at_ms FROM rcp "
	     "ON CONFLICT DO NOTHING RETURNING connector, delivery_id), "
	     "fresh AS (SELECT rcp.pos FROM rcp JOIN ins ON ins.connector = rcp.connector "
	     "AND ins.delivery_id = rcp.delivery_id), "
	     "src AS (SELECT * FROM unnest(CAST($1 AS text[]), CAST($2 AS text[]), "
	     "CAST($3 AS text[]), CAST($4 AS text[]), CAST($5 AS text[]), CAST($6 AS text[]), "
	     "CAST($7 AS text[]), CAST($8 AS text[]), CAST($9 AS text[]), CAST($10 AS bigint[]), "
	     "CAST($11 AS bigint[]), CAST($12 AS bigint[]), CAST($13 AS text[]), "
	     "CAST($18 AS bigint[])) WITH ORDINALITY "
	     "AS s(merchant, connector, external_id, number, name, status, financial_status, "
	     "fulfillment_status, currency, total, created_at_ms, updated_at_ms, record, gate, ord) "
	     "WHERE gate = 0 OR gate IN (SELECT pos FROM fresh)), "
	     "up AS (INSERT INTO orders (merchant, connector, external_id, number, name, status, "
	     "financial_status, fulfillment_status, currency, total, created_at_ms, updated_at_ms, "
	     "record, stored_at_ms, written_xid, written_seq) "
	     "SELECT merchant, connector, external_id, number, name, status, financial_status, "
	     "fulfillment_status, currency, total, created_at_ms, updated_at_ms, record, $14, "
	     "txid_current(), $19 FROM src " ORDER_CONFLICT_PG
	     " RETURNING merchant, connector, external_id) "
	     "SELECT 0, src.ord FROM up JOIN src ON src.connector = up.connector "
	     "AND src.external_id = up.external_id AND src.merchant = up.merchant "
	     "UNION ALL SELECT 1, pos FROM fresh"),
	/* Right after SQL_ORDERS_BULK_PG: the keys of its orders ($1-$3, the
	 * same positions), its written_seq ($4), the lines ($5-$11, $5 the
	 * 1-based position of their order). Replaces the lines of the orders
	 * that statement wrote. */
	DEF2(SQL_ORDERS_BULK_LINES_PG, NULL,
	     "WITH w AS (SELECT o.id, k.ord FROM unnest(CAST($1 AS text[]), CAST($2 AS text[]), "
	     "CAST($3 AS text[])) WITH ORDINALITY AS k(merchant, connector, external_id, ord) "
	     "JOIN orders o ON o.connector = k.connector AND o.external_id = k.external_id "
	     "AND o.merchant = k.merchant "
	     "WHERE o.written_xid = txid_current() AND o.written_seq = $4), "
	     "gone AS (DELETE FROM order_lines WHERE order_id = ANY (ARRAY(SELECT id FROM w))) "
	     "INSERT INTO order_lines (order_id, line_no, external_id, sku, title, "
	     "quantity, unit_price) "
	     "SELECT w.id, l.line_no, l.external_id, l.sku, l.title, l.quantity, l.unit_price "
	     "FROM w JOIN unnest(CAST($5 AS bigint[]), CAST($6 AS bigint[]), "
	     "CAST($7 AS text[]), CAST($8 AS text[]), CAST($9 AS text[]), "
	     "CAST($10 AS bigint[]), CAST($11 AS bigint[])) "
	     "AS l(ord, line_no, external_id, sku, title, quantity, unit_price) ON l.ord = w.ord"),
	/* PostgreSQL, one order (the per-unit path): the upsert, $15 its
	 * written_seq; SQL_ORDER_LINES_PG follows it. */
	DEF2(SQL_ORDER_WRITE_PG, NULL,
	     "INSERT INTO orders (merchant, connector, external_id, number, name, status, "
	     "financial_status, fulfillment_status, currency, total, created_at_ms, updated_at_ms, "
	     "record, stored_at_ms, written_xid, written_seq) "
	     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, txid_current(), "
	     "$15) " ORDER_CONFLICT_PG " RETURNING id"),
	/* Right after SQL_ORDER_WRITE_PG: its key ($1-$3) and written_seq ($4),
	 * the columns of the lines as a JSON array ($5). Replaces the lines of
	 * the order when that statement wrote it. */
	DEF2(SQL_ORDER_LINES_PG, NULL,
	     "WITH w AS (SELECT id FROM orders WHERE connector = $2 AND external_id = $3 "
	     "AND merchant = $1 AND written_xid = txid_current() AND written_seq = $4), "
	     "gone AS (DELETE FROM order_lines WHERE order_id IN (SELECT id FROM w)) "
	     "INSERT INTO order_lines (order_id, line_no, external_id, sku, title, quantity, "
	     "unit_price) "
	     "SELECT w.id, l.n - 1, l.external_id, l.sku, l.title, l.quantity, l.unit_price "
	     "FROM w CROSS JOIN ROWS FROM (json_to_recordset(CAST($5 AS json)) AS "
	     "(external_id text, sku text, title text, quantity bigint, unit_price bigint)) "
	     "WITH ORDINALITY AS l(external_id, sku, title, quantity, unit_price, n)"),

	DEF(SQL_SHIPMENT_UPSERT, SHIPMENT_UPSERT " RETURNING id"),
	/* SQLite, SQL_STMT_DEPENDENT on the upsert: $1 is its id. Numbers still
	 * held keep their check schedule. */
	DEF(SQL_SHIPMENT_TRACKING_DELETE,
	    "DELETE FROM shipment_tracking WHERE shipment_id = $1 "
	    "AND NOT (carrier = $2 AND tracking_number IN (SELECT value FROM json_each($3)))"),
	DEF(SQL_SHIPMENT_TRACKING_INSERT,
	    "INSERT INTO shipment_tracking (shipment_id, carrier, tracking_number, "
	    "not_found_count, next_check_ms) VALUES ($1, $2, $3, 0, 0) "
	    "ON CONFLICT (shipment_id, carrier, tracking_number) DO NOTHING"),
	/* PostgreSQL writes a shipment as it writes an order (see
	 * SQL_ORDERS_BULK_PG for why), in two statements pipelined one after the
	 * other: the upsert, marking the row it writes (written_xid, and $14 its
	 * written_seq), then SQL_SHIPMENT_TRACKING_PG. */
	DEF2(SQL_SHIPMENT_WRITE_PG, NULL,
	     SHIPMENT_INSERT ", written_xid, written_seq) VALUES (" SHIPMENT_VALUES
	     ", txid_current(), $14) " SHIPMENT_SET
	     ", written_xid = excluded.written_xid, written_seq = excluded.written_seq"
	     SHIPMENT_NEWER " RETURNING id"),
	/* Right after SQL_SHIPMENT_WRITE_PG: its key ($1-$3) and written_seq
	 * ($4), the carrier ($5) and the tracking numbers as a JSON array ($6).
	 * Replaces the tracking numbers of the shipment when that statement
	 * wrote it, on a snapshot taken once this transaction holds the row, so
	 * the numbers of an earlier concurrent writer are seen and dropped.
	 * Numbers still held keep their check schedule: the DELETE (same
	 * snapshot as the INSERT) spares them, the INSERT leaves them be. */
	DEF2(SQL_SHIPMENT_TRACKING_PG, NULL,
	     "WITH w AS (SELECT id FROM shipments WHERE connector = $2 AND external_id = $3 "
	     "AND merchant = $1 AND written_xid = txid_current() AND written_seq = $4), "
	     "gone AS (DELETE FROM shipment_tracking WHERE shipment_id IN (SELECT id FROM w) "
	     "AND NOT (carrier = $5 AND tracking_number IN "
	     "(SELECT json_array_elements_text(CAST($6 AS json))))) "
	     "INSERT INTO shipment_tracking (shipment_id, carrier, tracking_number, "
	     "not_found_count, next_check_ms) "
	     "SELECT w.id, $5, t.v, 0, 0 FROM w "
	     "CROSS JOIN json_array_elements_text(CAST($6 AS json)) AS t(v) "
	     "ON CONFLICT (shipment_id, carrier, tracking_number) DO NOTHING"),

	DEF2(SQL_TRACKING_EVENTS_INSERT,
	     "INSERT INTO tracking_events (shipment_id, occurred_at, carrier_code, description, "
	     "status, event) "
	     "SELECT st.shipment_id, json_extract(e.value, '$.occurred_at'), "
	     "COALESCE(json_extract(e.value, '$.carrier_code'), ''), "
	     "json_extract(e.value, '$.description'), json_extract(e.value, '$.status'), e.value "
	     "FROM shipment_tracking st JOIN shipments s ON s.id = st.shipment_id "
	     "CROSS JOIN json_each($3) e "
	     "WHERE st.carrier = $1 AND st.tracking_number = $2 AND s.merchant = $4 "
	     "ON CONFLICT (shipment_id, occurred_at, carrier_code, description) DO NOTHING",
	     "INSERT INTO tracking_events (shipment_id, occurred_at, carrier_code, description, "
	     "status, event) "
	     "SELECT st.shipment_id, e.v ->> 'occurred_at', COALESCE(e.v ->> 'carrier_code', ''), "
	     "e.v ->> 'description', e.v ->> 'status', CAST(e.v AS text) "
	     "FROM shipment_tracking st JOIN shipments s ON s.id = st.shipment_id "
	     "CROSS JOIN json_array_elements(CAST($3 AS json)) AS e(v) "
	     "WHERE st.carrier = $1 AND st.tracking_number = $2 AND s.merchant = $4 "
	     "ON CONFLICT (shipment_id, occurred_at, carrier_code, description) DO NOTHING"),
	/* Before the status update: a shipment whose carrier status becomes
	 * delivered or exception gets one "push_status" job for the marketplace
	 * connector it came from (outbox, same transaction). The transition is
	 * judged on the carrier's own status (tracking_status), not on what the
	 * marketplace said, and the dedupe key makes it once per shipment and
	 * status, whatever the replays. $1 carrier, $2
	 * number, $3 the record's status, $4 now, $5 merchant. */
#define PUSH_JOBS_FROM                                                                     \
	"FROM (SELECT s.id, s.connector, s.order_external_id, s.external_id, "                   \
	"COALESCE(s.tracking_status, '') AS old, "                                               \
	"COALESCE((SELECT te.status FROM tracking_events te WHERE te.shipment_id = s.id "        \
	"ORDER BY te.occurred_at DESC, te.id DESC LIMIT 1), $3) AS st, "                        \
	"(SELECT te.occurred_at FROM tracking_events te WHERE te.shipment_id = s.id "            \
	"ORDER BY te.occurred_at DESC, te.id DESC LIMIT 1) AS at "                               \
	"FROM shipments s WHERE s.merchant = $5 AND s.id IN (SELECT shipment_id "                \
	"FROM shipment_tracking WHERE carrier = $1 AND tracking_number = $2)) x "                \
	"WHERE x.st IN ('delivered', 'exception') AND x.st <> x.old "                            \
	"ON CONFLICT (dedupe_key) DO NOTHING"
	DEF2(SQL_TRACKING_PUSH_JOBS,
	     "INSERT INTO jobs (connector, action, payload, attempts, next_run_ms, state, "
	     "created_at_ms, dedupe_key) SELECT x.connector, 'push_status', "
	     "json_object('order_external_id', x.order_external_id, 'fulfillment_id', x.external_id, "
	     "'status', x.st, 'happened_at', x.at, 'carrier', $1, 'tracking_number', $2, "
	     "'message', 'Reported by the hub from ' || $1 || ' tracking ' || $2), "
	     "0, $4, 'queued', $4, 'push_status:' || x.id || ':' || x.st " PUSH_JOBS_FROM,
	     "INSERT INTO jobs (connector, action, payload, attempts, next_run_ms, state, "
	     "created_at_ms, dedupe_key) SELECT x.connector, 'push_status', "
	     "CAST(json_build_object('order_external_id', x.order_external_id, 'fulfillment_id', "
	     "x.external_id, 'status', x.st, 'happened_at', x.at, 'carrier', CAST($1 AS text), "
	     "'tracking_number', CAST($2 AS text), 'message', "
	     "'Reported by the hub from ' || CAST($1 AS text) || ' tracking ' || CAST($2 AS text)) AS text), "
	     "0, $4, 'queued', $4, 'push_status:' || x.id || ':' || x.st " PUSH_JOBS_FROM),
	DEF(SQL_TRACKING_SHIPMENTS_UPDATE,
	    "UPDATE shipments SET status = COALESCE((SELECT te.status FROM tracking_events te "
	    "WHERE te.shipment_id = shipments.id ORDER BY te.occurred_at DESC, te.id DESC LIMIT 1), "
	    "$3), tracking_status = $3, "
	    "estimated_delivery_ms = COALESCE($4, estimated_delivery_ms), "
	    "delivered_ms = COALESCE($5, delivered_ms), tracking_updated_ms = $6 "
	    "WHERE merchant = $7 AND id IN (SELECT shipment_id FROM shipment_tracking "
	    "WHERE carrier = $1 AND tracking_number = $2) "
	    "RETURNING id"),
	DEF(SQL_TRACKING_STATE_UPDATE,
	    "UPDATE shipment_tracking SET not_found_count = 0, last_checked_ms = $3, "
	    "next_check_ms = $4 WHERE carrier = $1 AND tracking_number = $2 "
	    "AND shipment_id IN (SELECT id FROM shipments WHERE merchant = $5)"),
	DEF(SQL_TRACKING_NOT_FOUND_UPDATE,
	    "UPDATE shipment_tracking SET not_found_count = not_found_count + 1, "
	    "last_checked_ms = $3, next_check_ms = $4 WHERE carrier = $1 AND tracking_number = $2 "
	    "AND shipment_id IN (SELECT id FROM shipments WHERE merchant = $5)"),
	/* Gives back a lease early: only ever moves the next check closer. */
	DEF(SQL_TRACKING_RELEASE,
	    "UPDATE shipment_tracking SET next_check_ms = $3 "
	    "WHERE carrier = $1 AND tracking_number = $2 AND next_check_ms > $3 "
	    "RETURNING tracking_number"),

	DEF(SQL_CURSOR_UPSERT,
	    "INSERT INTO cursors (connector, stream, cursor, updated_at_ms) VALUES ($1, $2, $3, $4) "
	    "ON CONFLICT (connector, stream) DO UPDATE SET cursor = excluded.cursor, "
	    "updated_at_ms = excluded.updated_at_ms"),
	DEF(SQL_CURSOR_DELETE, "DELETE FROM cursors WHERE connector = $1 AND stream = $2"),
	DEF(SQL_CURSORS_GET,
	    "SELECT stream, cursor, updated_at_ms FROM cursors WHERE connector = $1 ORDER BY stream"),

	DEF(SQL_JOB_INSERT,
	    "INSERT INTO jobs (connector, action, payload, attempts, next_run_ms, state, "
	    "created_at_ms, dedupe_key) VALUES ($1, $2, $3, 0, $4, 'queued', $5, $6) "
	    "ON CONFLICT (dedupe_key) DO NOTHING"),
	DEF(SQL_JOB_DELETE, "DELETE FROM jobs WHERE id = $1 RETURNING id"),
	DEF(SQL_JOB_DEAD_INSERT,
	    "INSERT INTO dead_letters (merchant, connector, kind, payload, reason, field, "
	    "upstream_status, created_at_ms) "
	    "SELECT (SELECT merchant FROM connectors c WHERE c.name = jobs.connector), connector, "
	    "'job:' || action, payload, $2, NULL, $3, $4 FROM jobs WHERE id = $1"),
	DEF(SQL_JOB_RETRY,
	    "UPDATE jobs SET state = 'queued', next_run_ms = $2, last_error = $3, "
	    "claimed_by = NULL, claim_expires_ms = NULL WHERE id = $1 RETURNING id"),

	DEF(SQL_DEAD_LETTER_INSERT,
	    "INSERT INTO dead_letters (merchant, connector, kind, payload, reason, field, "
	    "upstream_status, created_at_ms, dedupe_key) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (dedupe_key) DO NOTHING"),
	DEF(SQL_DEAD_LETTER_REPLAYED,
	    "UPDATE dead_letters SET replayed_at_ms = $2 WHERE id = $1 AND replayed_at_ms IS NULL "
	    "RETURNING id, merchant, connector, kind, payload, reason, field, upstream_status, "
	    "created_at_ms, replayed_at_ms"),

	DEF(SQL_CONNECTOR_TOKEN_UPDATE,
	    "UPDATE connectors SET access_token = $2, access_token_expires_ms = $3, "
	    "updated_at_ms = $4 WHERE name = $1"),
	DEF(SQL_CONNECTOR_GET,
	    "SELECT name, plugin, merchant, config, secret_keys, paused, access_token, "
	    "access_token_expires_ms, created_at_ms, updated_at_ms FROM connectors WHERE name = $1"),
	DEF(SQL_CONNECTOR_UPSERT,
	    "INSERT INTO connectors (name, plugin, merchant, config, secret_keys, paused, "
	    "created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) "
	    "ON CONFLICT (name) DO UPDATE SET plugin = excluded.plugin, "
	    "merchant = excluded.merchant, config = excluded.config, "
	    "secret_keys = excluded.secret_keys, paused = excluded.paused, "
	    "updated_at_ms = excluded.updated_at_ms"),
	DEF(SQL_CONNECTOR_DELETE, "DELETE FROM connectors WHERE name = $1 RETURNING name"),
	DEF(SQL_CONNECTOR_CURSORS_DELETE, "DELETE FROM cursors WHERE connector = $1"),
	DEF(SQL_CONNECTOR_RECEIPTS_DELETE, "DELETE FROM webhook_receipts WHERE connector = $1"),
	/* Its polling lease (migration 2), whoever holds it: no row outlives
	 * the connector. */
	DEF(SQL_CONNECTOR_LEASE_DELETE, "DELETE FROM connector_leases WHERE connector = $1"),
	DEF(SQL_CONNECTOR_PAUSE,
	    "UPDATE connectors SET paused = $2, updated_at_ms = $3 WHERE name = $1 RETURNING name"),
	DEF(SQL_MERCHANT_ENSURE,
	    "INSERT INTO merchants (id, name, created_at_ms) VALUES ($1, NULL, $2) "
	    "ON CONFLICT (id) DO NOTHING"),
	DEF(SQL_MERCHANT_PUT,
	    "INSERT INTO merchants (id, name, created_at_ms) VALUES ($1, $2, $3) "
	    "ON CONFLICT (id) DO UPDATE SET name = excluded.name"),
	DEF(SQL_MERCHANTS_LIST, "SELECT id, name, created_at_ms FROM merchants ORDER BY id"),

	DEF(SQL_TOKEN_INSERT,
	    "INSERT INTO api_tokens (name, token_hash, role, merchant, created_at_ms) "
	    "VALUES ($1, $2, $3, $4, $5) RETURNING id"),
	DEF(SQL_TOKEN_TOUCH,
	    "UPDATE api_tokens SET last_used_ms = $2 WHERE token_hash = $1 "
	    "AND revoked_at_ms IS NULL AND (last_used_ms IS NULL OR last_used_ms < $3)"),
	DEF(SQL_TOKEN_GET,
	    "SELECT id, name, role, merchant, created_at_ms, last_used_ms FROM api_tokens "
	    "WHERE token_hash = $1 AND revoked_at_ms IS NULL"),
	DEF(SQL_TOKEN_REVOKE,
	    "UPDATE api_tokens SET revoked_at_ms = $2 WHERE name = $1 AND revoked_at_ms IS NULL "
	    "RETURNING id"),
	DEF(SQL_TOKENS_LIST,
	    "SELECT id, name, role, merchant, created_at_ms, last_used_ms, revoked_at_ms "
	    "FROM api_tokens ORDER BY id"),
	DEF(SQL_AUDIT_INSERT,
	    "INSERT INTO audit_log (at_ms, token_name, action, target, detail) "
	    "VALUES ($1, $2, $3, $4, $5) RETURNING id"),

	DEF(SQL_ORDER_BY_ID,
	    "SELECT id, merchant, connector, external_id, record, stored_at_ms FROM orders "
	    "WHERE id = $1"),
	DEF(SQL_ORDER_BY_KEY,
	    "SELECT id, merchant, connector, external_id, record, stored_at_ms FROM orders "
	    "WHERE connector = $1 AND external_id = $2"),
	DEF(SQL_ORDER_LINES_GET,
	    "SELECT line_no, external_id, sku, title, quantity, unit_price FROM order_lines "
	    "WHERE order_id = $1 ORDER BY line_no"),
	DEF(SQL_ORDER_SHIPMENTS_GET,
	    "SELECT id, merchant, connector, record, status, estimated_delivery_ms, delivered_ms, "
	    "tracking_status FROM shipments WHERE connector = $2 AND order_external_id = $3 "
	    "AND merchant = $1 ORDER BY id"),
	DEF(SQL_SHIPMENT_BY_ID,
	    "SELECT id, merchant, connector, record, status, estimated_delivery_ms, delivered_ms, "
	    "tracking_status FROM shipments WHERE id = $1"),
	DEF(SQL_SHIPMENT_BY_KEY,
	    "SELECT id, merchant, connector, record, status, estimated_delivery_ms, delivered_ms, "
	    "tracking_status FROM shipments WHERE connector = $1 AND external_id = $2"),
	DEF(SQL_SHIPMENT_EVENTS_GET,
	    "SELECT event FROM tracking_events WHERE shipment_id = $1 "
	    "ORDER BY occurred_at DESC, id DESC"),
	DEF(SQL_RECEIPTS_PRUNE,
	    "DELETE FROM webhook_receipts WHERE expires_at_ms < $1 RETURNING connector"),
};

const char *sql_def_text(const struct sql_def *def, enum sql_dialect dialect)
{
	if (dialect == SQL_PG && def->sql_pg)
		return def->sql_pg;
	return def->sql;
}

const struct sql_backend *sql_backend_for(const char *url)
{
	if (strncmp(url, "sqlite:", 7) == 0)
		return &sql_sqlite_backend;
	if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
		return &sql_pg_backend;
	return NULL;
}

/* ---- migrations ---------------------------------------------------------------- */

/* "@ID@" stands for an auto-assigned 64-bit primary key, "@C@" for the
 * byte-order collation of key columns (PostgreSQL; SQLite compares bytes
 * anyway), "@WIDE@" for the PostgreSQL storage option that keeps records of
 * up to 8 KB inline and uncompressed (compressing every 2 KB order cost more
 * than it saved). Each entry is one statement; a migration is a
 * NULL-terminated list. Never edit a released migration: add a new one. */
static const char *const migration_1[] = {
	"CREATE TABLE merchants (id TEXT PRIMARY KEY, name TEXT, created_at_ms BIGINT NOT NULL)",
	"CREATE TABLE connectors (name TEXT PRIMARY KEY, plugin TEXT NOT NULL, "
	"merchant TEXT@C@ NOT NULL, config TEXT NOT NULL, secret_keys TEXT NOT NULL, "
	"paused INTEGER NOT NULL DEFAULT 0, access_token TEXT, access_token_expires_ms BIGINT, "
	"created_at_ms BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL)",
	"CREATE INDEX connectors_merchant ON connectors (merchant)",

	"CREATE TABLE orders (id @ID@, merchant TEXT@C@ NOT NULL, connector TEXT@C@ NOT NULL, "
	"external_id TEXT@C@ NOT NULL, number TEXT, name TEXT, status TEXT NOT NULL, "
	"financial_status TEXT, fulfillment_status TEXT, currency TEXT NOT NULL, "
	"total BIGINT NOT NULL, created_at_ms BIGINT NOT NULL, updated_at_ms BIGINT NOT NULL, "
	"record TEXT NOT NULL, stored_at_ms BIGINT NOT NULL, "
	"UNIQUE (connector, external_id, merchant))@WIDE@",
	"CREATE INDEX orders_updated ON orders (updated_at_ms, id)",
	"CREATE INDEX orders_merchant_updated ON orders (merchant, updated_at_ms, id)",
	/* No surrogate key: lines are only ever read by order or by SKU, and a
	 * key would cost one more index insert per line. */
	"CREATE TABLE order_lines (order_id BIGINT NOT NULL, line_no INTEGER NOT NULL, "
	"external_id TEXT@C@ NOT NULL, sku TEXT@C@, title TEXT, quantity BIGINT NOT NULL, "
	"unit_price BIGINT NOT NULL)",
	"CREATE INDEX order_lines_order ON order_lines (order_id)",
	"CREATE INDEX order_lines_sku ON order_lines (sku)",

	"CREATE TABLE shipments (id @ID@, merchant TEXT@C@ NOT NULL, connector TEXT@C@ NOT NULL, "
	"external_id TEXT@C@ NOT NULL, order_external_id TEXT@C@ NOT NULL, carrier TEXT@C@ NOT NULL, "
	"status TEXT NOT NULL, tracking_status TEXT, shipped_at_ms BIGINT, "
	"estimated_delivery_ms BIGINT, delivered_ms BIGINT, created_at_ms BIGINT NOT NULL, "
	"updated_at_ms BIGINT NOT NULL, tracking_updated_ms BIGINT, record TEXT NOT NULL, "
	"stored_at_ms BIGINT NOT NULL, "
	"UNIQUE (connector, external_id, merchant))@WIDE@",
	"CREATE INDEX shipments_updated ON shipments (updated_at_ms, id)",
	"CREATE INDEX shipments_merchant_updated ON shipments (merchant, updated_at_ms, id)",
	"CREATE INDEX shipments_order ON shipments (connector, order_external_id)",
	"CREATE TABLE shipment_tracking (shipment_id BIGINT NOT NULL, carrier TEXT@C@ NOT NULL, "
	"tracking_number TEXT@C@ NOT NULL, not_found_count INTEGER NOT NULL DEFAULT 0, "
	"next_check_ms BIGINT NOT NULL DEFAULT 0, last_checked_ms BIGINT, "
	"PRIMARY KEY (shipment_id, carrier, tracking_number))",
	"CREATE INDEX shipment_tracking_number ON shipment_tracking (carrier, tracking_number)",
	"CREATE INDEX shipment_tracking_due ON shipment_tracking (carrier, next_check_ms)",
	"CREATE TABLE tracking_events (id @ID@, shipment_id BIGINT NOT NULL, "
	"occurred_at TEXT NOT NULL, carrier_code TEXT NOT NULL, description TEXT NOT NULL, "
	"status TEXT NOT NULL, event TEXT NOT NULL, "
	"UNIQUE (shipment_id, occurred_at, carrier_code, description))",

	"CREATE TABLE cursors (connector TEXT@C@ NOT NULL, stream TEXT@C@ NOT NULL, "
	"cursor TEXT NOT NULL, updated_at_ms BIGINT NOT NULL, PRIMARY KEY (connector, stream))",
	"CREATE TABLE webhook_receipts (connector TEXT@C@ NOT NULL, delivery_id TEXT@C@ NOT NULL, "
	"received_at_ms BIGINT NOT NULL, expires_at_ms BIGINT NOT NULL, "
	"PRIMARY KEY (connector, delivery_id))",
	"CREATE INDEX webhook_receipts_expiry ON webhook_receipts (expires_at_ms)",
	"CREATE TABLE jobs (id @ID@, connector TEXT@C@ NOT NULL, action TEXT NOT NULL, "
	"payload TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_run_ms BIGINT NOT NULL, "
	"last_error TEXT, state TEXT NOT NULL CHECK (state IN ('queued', 'running')), "
	"created_at_ms BIGINT NOT NULL, claimed_by TEXT, claim_expires_ms BIGINT, "
	"dedupe_key TEXT UNIQUE)",
	"CREATE INDEX jobs_due ON jobs (state, next_run_ms)",
	"CREATE TABLE dead_letters (id @ID@, merchant TEXT, connector TEXT@C@ NOT NULL, "
	"kind TEXT NOT NULL, payload TEXT, reason TEXT NOT NULL, field TEXT, "
	"upstream_status INTEGER NOT NULL DEFAULT 0, created_at_ms BIGINT NOT NULL, "
	"replayed_at_ms BIGINT, dedupe_key TEXT UNIQUE)",
	"CREATE INDEX dead_letters_connector ON dead_letters (connector, id)",
	"CREATE TABLE api_tokens (id @ID@, name TEXT NOT NULL UNIQUE, "
	"token_hash TEXT NOT NULL UNIQUE, "
	"role TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')), merchant TEXT, "
	"created_at_ms BIGINT NOT NULL, last_used_ms BIGINT, revoked_at_ms BIGINT)",
	"CREATE TABLE audit_log (id @ID@, at_ms BIGINT NOT NULL, token_name TEXT, "
	"action TEXT NOT NULL, target TEXT, detail TEXT)",
	NULL,
};

/* Polling leases for several hubd on one database (core/lease.c): one row
 * per connector names the process that polls it until expires_at_ms; each
 * live process keeps a row in hub_instances, so that each can compute its
 * fair share of the connectors. */
static const char *const migration_2[] = {
	"CREATE TABLE connector_leases (connector TEXT@C@ PRIMARY KEY, owner TEXT NOT NULL, "
	"expires_at_ms BIGINT NOT NULL, acquired_at_ms BIGINT NOT NULL)",
	"CREATE INDEX connector_leases_owner ON connector_leases (owner)",
	"CREATE TABLE hub_instances (id TEXT@C@ PRIMARY KEY, expires_at_ms BIGINT NOT NULL, "
	"started_at_ms BIGINT NOT NULL)",
	NULL,
};

/* The mark of the PostgreSQL order and shipment upserts (see
 * SQL_ORDERS_BULK_PG): which transaction, and which statement of it, last
 * wrote the row. SQLite, whose single writer needs no mark, leaves them
 * NULL. */
static const char *const migration_3[] = {
	"ALTER TABLE orders ADD COLUMN written_xid BIGINT",
	"ALTER TABLE orders ADD COLUMN written_seq BIGINT",
	"ALTER TABLE shipments ADD COLUMN written_xid BIGINT",
	"ALTER TABLE shipments ADD COLUMN written_seq BIGINT",
	NULL,
};

static const char *const *const migrations[] = {
	migration_1,
	migration_2,
	migration_3,
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

int sql_schema_latest(void)
{
	return MIGRATION_COUNT;
}

/* Expands the @TOKENS@ of a migration statement for the dialect. Returns
 * malloc'd text or NULL. */
static char *ddl_expand(const char *text, enum sql_dialect dialect)
{
	static const char *const tokens[][3] = {
		/* token, SQLite, PostgreSQL */
		{"@ID@", "INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"},
		{"@C@", "", " COLLATE \"C\""},
		{"@WIDE@", "", " WITH (toast_tuple_target = 8160)"},
	};
	size_t cap = strlen(text) * 2 + 256, len = 0;
	char *out = malloc(cap);
	const char *p = text;

	if (!out)
		return NULL;
	while (*p) {
		const char *rep = NULL;
		size_t skip = 1, n;

		for (size_t t = 0; t < sizeof(tokens) / sizeof(tokens[0]); t++) {
			n = strlen(tokens[t][0]);
			if (strncmp(p, tokens[t][0], n) == 0) {
				rep = tokens[t][dialect == SQL_PG ? 2 : 1];
				skip = n;
				break;
			}
		}
		n = rep ? strlen(rep) : 1;
		if (len + n + 1 > cap) {
			char *bigger = realloc(out, cap = (len + n + 1) * 2);
			if (!bigger) {
				free(out);
				return NULL;
			}
			out = bigger;
		}
		memcpy(out + len, rep ? rep : p, n);
		len += n;
		p += skip;
	}
	out[len] = '\0';
	return out;
}

static int read_version(void *ctx, const struct sql_row *row)
{
	*(int64_t *)ctx = sql_col_int(row, 0);
	return 0;
}

/* Runs one statement without parameters (or with the given ones). */
static int run_one(const struct sql_backend *be, struct sql_conn *c, const char *text,
		   struct sql_val *params, unsigned nparams, sql_row_fn fn, void *ctx,
		   struct hub_error *err)
{
	struct sql_stmt st = {0};
	struct sql_fail fail;

	st.text = text;
	st.params = params;
	st.nparams = nparams;
	st.on_row = fn;
	st.ctx = ctx;
	if (be->run(c, &st, 1, &fail) == 0)
		return 0;
	hub_error_set(err, NULL, "store: %s (while running: %.80s)", fail.message, text);
	return -1;
}

int sql_migrate(const struct sql_backend *be, struct sql_conn *c, int *version,
		struct hub_error *err)
{
	struct sql_val params[2];
	struct sql_stmt st = {0};
	struct sql_fail fail;
	int64_t current = 0;
	char *ddl = NULL;
	int rc = -1, in_txn = 0;

	st.def = SQL_DEF(SQL_BEGIN);
	if (be->run(c, &st, 1, &fail) < 0) {
		hub_error_set(err, NULL, "store: cannot start the migration transaction: %s",
			       fail.message);
		return -1;
	}
	in_txn = 1;
	/* Two hubd starting together must not both migrate. */
	if (be->dialect == SQL_PG &&
	    run_one(be, c, "SELECT pg_advisory_xact_lock(7412001)", NULL, 0, NULL, NULL, err) < 0)
		goto out;
	if (run_one(be, c, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
			   "applied_at_ms BIGINT NOT NULL)", NULL, 0, NULL, NULL, err) < 0 ||
	    run_one(be, c, "SELECT COALESCE(MAX(version), 0) FROM schema_version", NULL, 0,
		    read_version, &current, err) < 0)
		goto out;
	if (current > MIGRATION_COUNT) {
		hub_error_set(err, NULL, "store: the database schema is version %lld but this hubd knows "
				    "versions up to %d: it was written by a newer hubd; run that "
				    "version (or newer) against this database, or point the store "
				    "URL at another database",
			       (long long)current, MIGRATION_COUNT);
		goto out;
	}
	for (int v = (int)current + 1; v <= MIGRATION_COUNT; v++) {
		struct timespec ts;

		for (const char *const *s = migrations[v - 1]; *s; s++) {
			ddl = ddl_expand(*s, be->dialect);
			if (!ddl) {
				hub_error_set(err, NULL, "store: out of memory during migration %d", v);
				goto out;
			}
			if (run_one(be, c, ddl, NULL, 0, NULL, NULL, err) < 0)
				goto out;
			free(ddl);
			ddl = NULL;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		params[0] = (struct sql_val){SQL_INT, v, NULL};
		params[1] = (struct sql_val){SQL_INT, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
					     NULL};
		if (run_one(be, c, "INSERT INTO schema_version (version, applied_at_ms) VALUES ($1, $2)",
			    params, 2, NULL, NULL, err) < 0)
			goto out;
	}
	st.def = SQL_DEF(SQL_COMMIT);
	if (be->run(c, &st, 1, &fail) < 0) {
		hub_error_set(err, NULL, "store: cannot commit the migrations: %s", fail.message);
		goto out;
	}
	in_txn = 0;
	*version = MIGRATION_COUNT;
	rc = 0;
out:
	free(ddl);
	if (in_txn) {
		st.def = SQL_DEF(SQL_ROLLBACK);
		be->run(c, &st, 1, &fail);
	}
	return rc;
}

/* ---- arena and scripts ------------------------------------------------------------- */

struct sql_arena_chunk {
	struct sql_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

#define ARENA_CHUNK (64 * 1024)

void *sql_arena_alloc(struct sql_arena *a, size_t n)
{
	struct sql_arena_chunk *c = a->head;
	size_t align = sizeof(max_align_t);

	n = (n + align - 1) / align * align;
	if (!c || c->cap - c->used < n) {
		size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	c->used += n;
	return (char *)c->data + c->used - n;
}

char *sql_arena_strdup(struct sql_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = sql_arena_alloc(a, n);

	if (p)
		memcpy(p, s, n);
	return p;
}

char *sql_arena_printf(struct sql_arena *a, const char *fmt, ...)
{
	va_list ap;
	char *p;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	p = sql_arena_alloc(a, (size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void sql_arena_release(struct sql_arena *a)
{
	struct sql_arena_chunk *c = a->head, *next;

	/* Keep one chunk for reuse: most scripts fit in it. */
	if (c) {
		for (next = c->next; next; next = c) {
			c = next->next;
			free(next);
		}
		a->head->next = NULL;
		a->head->used = 0;
	}
}

static void arena_free_all(struct sql_arena *a)
{
	struct sql_arena_chunk *c = a->head, *next;

	for (; c; c = next) {
		next = c->next;
		free(c);
	}
	a->head = NULL;
}

void sql_script_init(struct sql_script *s)
{
	memset(s, 0, sizeof(*s));
}

void sql_script_clear(struct sql_script *s)
{
	s->n = 0;
	s->bytes = 0;
	s->oom = 0;
	sql_arena_release(&s->arena);
}

void sql_script_release(struct sql_script *s)
{
	free(s->stmts);
	arena_free_all(&s->arena);
	memset(s, 0, sizeof(*s));
}

static struct sql_stmt *script_push(struct sql_script *s, unsigned nparams, unsigned item)
{
	struct sql_stmt *st;

	if (s->oom)
		return NULL;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct sql_stmt *bigger = realloc(s->stmts, cap * sizeof(*bigger));
		if (!bigger) {
			s->oom = 1;
			return NULL;
		}
		s->stmts = bigger;
		s->cap = cap;
	}
	st = &s->stmts[s->n];
	memset(st, 0, sizeof(*st));
	st->item = item;
	st->nparams = nparams;
	if (nparams) {
		st->params = sql_arena_alloc(&s->arena, nparams * sizeof(*st->params));
		if (!st->params) {
			s->oom = 1;
			return NULL;
		}
		memset(st->params, 0, nparams * sizeof(*st->params));
	}
	s->n++;
	s->bytes += 16 + nparams * 8;
	return st;
}

struct sql_stmt *sql_script_add(struct sql_script *s, const struct sql_def *def,
				unsigned nparams, unsigned item)
{
	struct sql_stmt *st = script_push(s, nparams, item);

	if (st)
		st->def = def;
	return st;
}

struct sql_stmt *sql_script_add_text(struct sql_script *s, const char *text, unsigned nparams,
				     unsigned item)
{
	char *copy = sql_arena_strdup(&s->arena, text);
	struct sql_stmt *st;

	if (!copy) {
		s->oom = 1;
		return NULL;
	}
	st = script_push(s, nparams, item);
	if (st) {
		st->text = copy;
		s->bytes += strlen(copy);
	}
	return st;
}

void sql_bind_int(struct sql_script *s, struct sql_stmt *st, unsigned i, int64_t v)
{
	(void)s;
	st->params[i - 1] = (struct sql_val){SQL_INT, v, NULL};
}

void sql_bind_text(struct sql_script *s, struct sql_stmt *st, unsigned i, const char *v)
{
	if (!v) {
		sql_bind_null(st, i);
		return;
	}
	st->params[i - 1] = (struct sql_val){SQL_TEXT, -1, v};
	s->bytes += 16;
}

void sql_bind_text_len(struct sql_script *s, struct sql_stmt *st, unsigned i, const char *v,
		       size_t len)
{
	if (!v) {
		sql_bind_null(st, i);
		return;
	}
	st->params[i - 1] = (struct sql_val){SQL_TEXT, (int64_t)len, v};
	s->bytes += len;
}

void sql_bind_null(struct sql_stmt *st, unsigned i)
{
	st->params[i - 1] = (struct sql_val){SQL_NULL, 0, NULL};
}

static unsigned char *put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
	return p + 4;
}

/* Array header of PostgreSQL's binary format: ndim, has-nulls, element
 * type, then the one dimension's size and lower bound. */
static unsigned char *array_header(unsigned char *p, size_t n, int nulls, uint32_t oid)
{
	p = put32(p, 1);
	p = put32(p, nulls ? 1 : 0);
	p = put32(p, oid);
	p = put32(p, (uint32_t)n);
	return put32(p, 1);
}

#define TEXT_OID 25
#define INT8_OID 20

int sql_bind_array_text(struct sql_script *s, struct sql_stmt *st, unsigned i,
			const char *const *v, size_t n)
{
	size_t size = 20, k;
	unsigned char *buf, *p;
	int nulls = 0;

	for (k = 0; k < n; k++) {
		size += 4 + (v[k] ? strlen(v[k]) : 0);
		nulls |= !v[k];
	}
	buf = sql_arena_alloc(&s->arena, size);
	if (!buf) {
		s->oom = 1;
		return -1;
	}
	p = array_header(buf, n, nulls, TEXT_OID);
	for (k = 0; k < n; k++) {
		size_t len = v[k] ? strlen(v[k]) : 0;

		p = put32(p, v[k] ? (uint32_t)len : 0xffffffffu);
		memcpy(p, v[k] ? v[k] : "", len);
		p += len;
	}
	st->params[i - 1] = (struct sql_val){SQL_BINARY, (int64_t)size, (const char *)buf};
	s->bytes += size;
	return 0;
}

int sql_bind_array_int8(struct sql_script *s, struct sql_stmt *st, unsigned i, const int64_t *v,
			size_t n)
{
	size_t size = 20 + n * 12;
	unsigned char *buf = sql_arena_alloc(&s->arena, size), *p;

	if (!buf) {
		s->oom = 1;
		return -1;
	}
	p = array_header(buf, n, 0, INT8_OID);
	for (size_t k = 0; k < n; k++) {
		uint64_t u = (uint64_t)v[k];

		p = put32(p, 8);
		p = put32(p, (uint32_t)(u >> 32));
		p = put32(p, (uint32_t)u);
	}
	st->params[i - 1] = (struct sql_val){SQL_BINARY, (int64_t)size, (const char *)buf};
	s->bytes += size;
	return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

int64_t sql_col_int(const struct sql_row *row, unsigned i)
{
	const struct sql_val *v;

	if (i >= row->ncols)
		return 0;
	v = &row->cols[i];
	if (v->type == SQL_INT)
		return v->i;
	if (v->type == SQL_TEXT && v->s) {
		if (v->s[0] == 't' && v->s[1] == '\0')
			return 1; /* PostgreSQL boolean */
		return strtoll(v->s, NULL, 10);
	}
	return 0;
}

const char *sql_col_text(const struct sql_row *row, unsigned i)
{
	if (i >= row->ncols || row->cols[i].type != SQL_TEXT)
		return NULL;
	return row->cols[i].s;
}

int sql_col_is_null(const struct sql_row *row, unsigned i)
{
	return i >= row->ncols || row->cols[i].type == SQL_NULL;
}

char *sql_rewrite_params(const char *text)
{
	size_t n = strlen(text);
	char *out = malloc(n + 1), *o = out;
	char quote = 0;

	if (!out)
		return NULL;
	for (const char *p = text; *p; p++) {
		if (quote) {
			if (*p == quote)
				quote = 0;
		} else if (*p == '\'' || *p == '"') {
			quote = *p;
		} else if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
			*o++ = '?';
			continue;
		}
		*o++ = *p;
	}
	*o = '\0';
	return out;
}

void sql_one_line(char *text)
{
	char *o = text;

	for (const char *p = text; *p; p++) {
		char c = (*p == '\n' || *p == '\t' || *p == '\r') ? ' ' : *p;
		if (c == ' ' && o > text && o[-1] == ' ')
			continue;
		*o++ = c;
	}
	*o = '\0';
}

void sql_fail_set(struct sql_fail *fail, size_t index, enum sql_err code, const char *msg)
{
	size_t n;

	fail->index = index;
	fail->code = code;
	snprintf(fail->message, sizeof(fail->message), "%s", msg ? msg : "unknown error");
	/* Messages are embedded in sentences and log lines: one line, no
	 * trailing blanks. */
	sql_one_line(fail->message);
	n = strlen(fail->message);
	while (n && fail->message[n - 1] == ' ')
		fail->message[--n] = '\0';
}
