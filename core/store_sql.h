/*
 * store_sql.h - the store's SQL layer, internal to the store module.
 *
 * The backends (store_sqlite.c, store_pg.c) implement one small vtable,
 * struct sql_backend: connect, disconnect, run a list of statements, tell
 * whether a transaction is open. Everything else - schema, migrations, the
 * statements themselves, the group-commit logic - is written once against
 * it. Statements are parameterised only: SQL text is fixed (struct sql_def,
 * prepared once per connection and cached by slot) or assembled from fixed
 * fragments (dynamic text, e.g. optional filters); values always travel as
 * parameters $1..$n. SQLite receives $n rewritten as ?n.
 *
 * run() executes statements in order and stops at the first failure, which
 * it reports with its index and a classified error. The PostgreSQL backend
 * pipelines them (libpq pipeline mode): one round trip per chunk instead of
 * one per statement; SQLite runs them in-process. Because no statement of a
 * unit needs the client to look at an earlier result, a whole batch can be
 * sent at once: the conditions (was this order written? is this tracking
 * number on a shipment?) are evaluated by the database.
 */
#ifndef HUB_STORE_SQL_H
#define HUB_STORE_SQL_H

#include <stddef.h>
#include <stdint.h>

#include <hub/plugin.h>

enum sql_dialect { SQL_SQLITE = 0, SQL_PG = 1 };

/* SQL_BINARY: a parameter in PostgreSQL's binary format (an array built
 * by sql_bind_array_*), len bytes at s. PostgreSQL only. */
enum sql_type { SQL_NULL = 0, SQL_INT = 1, SQL_TEXT = 2, SQL_BINARY = 3 };

/* A parameter or a column value. Text is NUL-terminated and borrowed. */
struct sql_val {
	enum sql_type type;
	int64_t i;   /* SQL_INT value; SQL_BINARY length; SQL_TEXT length or -1 */
	const char *s;
};

/* One result row, valid during the row callback only. */
struct sql_row {
	unsigned ncols;
	const struct sql_val *cols;
};

/* Called for each row; returns 0, or -1 to stop with SQL_ERR_CLIENT. */
typedef int (*sql_row_fn)(void *ctx, const struct sql_row *row);

enum sql_err {
	SQL_ERR_NONE = 0,
	SQL_ERR_UNIQUE = 1,     /* unique or primary key violation */
	SQL_ERR_CONSTRAINT = 2, /* other constraint or bad value */
	SQL_ERR_FULL = 3,       /* disk or database full */
	SQL_ERR_CONN = 4,       /* connection lost: reconnect, run the batch again */
	SQL_ERR_BUSY = 5,       /* locked, serialization failure, deadlock: run again */
	SQL_ERR_CLIENT = 6,     /* a row callback failed (out of memory) */
	SQL_ERR_OTHER = 7,      /* anything else */
};

struct sql_fail {
	size_t index;   /* statement that failed */
	enum sql_err code;
	char message[320];
};

/* A fixed statement: `sql` is the shared text, `sql_pg` the PostgreSQL text
 * where the dialects disagree (NULL: shared). `slot` indexes the backends'
 * prepared-statement caches. */
struct sql_def {
	int slot;
	const char *sql;
	const char *sql_pg;
};

enum sql_stmt_flags {
	SQL_STMT_DUPLICATE = 1u << 0, /* a unique violation here means "duplicate delivery" */
	SQL_STMT_FAULT = 1u << 1,     /* injected fault */
	/* SQLite only: runs only if the last statement without this flag
	 * returned a row, with $1 bound to that row's first column (the id an
	 * upsert returned); else skipped. */
	SQL_STMT_DEPENDENT = 1u << 2,
};

/* The `item` of a statement that carries the data of several items (the
 * bulk order upsert): a failure there cannot be pinned on one item. */
#define SQL_ITEM_MANY 0xffffffffu

/* A statement to run: a fixed def, or dynamic text (def NULL). */
struct sql_stmt {
	const struct sql_def *def;
	const char *text;
	struct sql_val *params;
	unsigned nparams;
	unsigned flags;
	unsigned item;    /* index of the batch item it belongs to */
	sql_row_fn on_row;
	void *ctx;
	int64_t changes;  /* rows inserted/updated/deleted, set by run() */
};

struct sql_conn;

struct sql_backend {
	const char *name;
	enum sql_dialect dialect;
	/* Connects and configures the session. Returns 0 or -1 with err. */
	int (*connect)(struct sql_conn **out, const char *url, struct hub_error *err);
	void (*disconnect)(struct sql_conn *c);
	/* Runs stmts[0..n) in order. Returns 0, or -1 with fail filled: the
	 * statements before fail->index completed, the others did not run. */
	int (*run)(struct sql_conn *c, struct sql_stmt *stmts, size_t n, struct sql_fail *fail);
	/* Whether a transaction is open (after an error: whether it survived). */
	int (*in_txn)(struct sql_conn *c);
	/* Optional: a descriptor whose fdatasync makes every committed
	 * transaction durable, when commits do not sync by themselves (the
	 * store then syncs it, off the store thread, before it reports a
	 * batch done); -1 or NULL when a commit is durable when it returns. */
	int (*durable_fd)(struct sql_conn *c);
};

extern const struct sql_backend sql_sqlite_backend;
extern const struct sql_backend sql_pg_backend;

/* Picks the backend for a store URL; returns NULL for an unknown scheme. */
const struct sql_backend *sql_backend_for(const char *url);

/* The text of def for a dialect. */
const char *sql_def_text(const struct sql_def *def, enum sql_dialect dialect);

/* ---- fixed statements ---------------------------------------------------- */

enum sql_slot {
	SQL_BEGIN, SQL_COMMIT, SQL_ROLLBACK, SQL_SAVEPOINT, SQL_RELEASE, SQL_ROLLBACK_TO,
	SQL_FAULT,
	SQL_RECEIPT_INSERT,
	SQL_ORDER_UPSERT, SQL_ORDER_LINES_DELETE, SQL_ORDER_LINE_INSERT, SQL_ORDER_WRITE_PG,
	SQL_ORDER_LINES_PG, SQL_ORDERS_BULK_PG, SQL_ORDERS_BULK_LINES_PG,
	SQL_SHIPMENT_UPSERT, SQL_SHIPMENT_TRACKING_DELETE, SQL_SHIPMENT_TRACKING_INSERT,
	SQL_SHIPMENT_WRITE_PG, SQL_SHIPMENT_TRACKING_PG,
	SQL_TRACKING_EVENTS_INSERT, SQL_TRACKING_PUSH_JOBS, SQL_TRACKING_SHIPMENTS_UPDATE, SQL_TRACKING_STATE_UPDATE,
	SQL_TRACKING_NOT_FOUND_UPDATE, SQL_TRACKING_RELEASE,
	SQL_CURSOR_UPSERT, SQL_CURSOR_DELETE, SQL_CURSORS_GET,
	SQL_JOB_INSERT, SQL_JOB_DELETE, SQL_JOB_DEAD_INSERT, SQL_JOB_RETRY,
	SQL_DEAD_LETTER_INSERT, SQL_DEAD_LETTER_REPLAYED,
	SQL_CONNECTOR_TOKEN_UPDATE,
	SQL_CONNECTOR_GET, SQL_CONNECTOR_UPSERT, SQL_CONNECTOR_DELETE, SQL_CONNECTOR_CURSORS_DELETE,
	SQL_CONNECTOR_RECEIPTS_DELETE, SQL_CONNECTOR_LEASE_DELETE, SQL_CONNECTOR_PAUSE, SQL_MERCHANT_ENSURE,
	SQL_MERCHANT_PUT, SQL_MERCHANTS_LIST,
	SQL_TOKEN_INSERT, SQL_TOKEN_TOUCH, SQL_TOKEN_GET, SQL_TOKEN_REVOKE, SQL_TOKENS_LIST,
	SQL_AUDIT_INSERT,
	SQL_ORDER_BY_ID, SQL_ORDER_BY_KEY, SQL_ORDER_LINES_GET, SQL_ORDER_SHIPMENTS_GET,
	SQL_SHIPMENT_BY_ID, SQL_SHIPMENT_BY_KEY, SQL_SHIPMENT_EVENTS_GET,
	SQL_RECEIPTS_PRUNE,
	SQL_SLOT_COUNT
};

extern const struct sql_def sql_defs[SQL_SLOT_COUNT];

#define SQL_DEF(slot) (&sql_defs[(slot)])

/* ---- migrations ---------------------------------------------------------- */

/* The newest schema version this binary knows. */
int sql_schema_latest(void);

/*
 * Brings the schema to the latest version in one transaction, recording each
 * migration in schema_version. Refuses (-1, err) a database whose version is
 * newer than this binary's. *version gets the resulting version. Call on a
 * fresh connection with no transaction open.
 */
int sql_migrate(const struct sql_backend *be, struct sql_conn *c, int *version,
		struct hub_error *err);

/* ---- scripts: statements under construction ----------------------------- */

struct sql_arena_chunk;

/* A bump allocator freed all at once. */
struct sql_arena {
	struct sql_arena_chunk *head;
};

/* Allocates n bytes (aligned for any scalar) that live until
 * sql_arena_release. Returns NULL when out of memory. */
void *sql_arena_alloc(struct sql_arena *a, size_t n);
char *sql_arena_strdup(struct sql_arena *a, const char *s);
/* printf into the arena. */
char *sql_arena_printf(struct sql_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sql_arena_release(struct sql_arena *a);

/* A growing list of statements plus the arena holding their parameters. */
struct sql_script {
	struct sql_stmt *stmts;
	size_t n, cap;
	size_t bytes;   /* rough size of the parameters, for chunking */
	int oom;        /* an allocation failed: the script is unusable */
	struct sql_arena arena;
};

void sql_script_init(struct sql_script *s);
/* Empties the list and the arena for reuse. */
void sql_script_clear(struct sql_script *s);
void sql_script_release(struct sql_script *s);

/* Appends a statement with nparams parameters (all NULL), owned by batch
 * item `item`. Returns it, or NULL (and sets s->oom) when out of memory.
 * The pointer is valid until the next sql_script_add. */
struct sql_stmt *sql_script_add(struct sql_script *s, const struct sql_def *def,
				unsigned nparams, unsigned item);
/* Same with dynamic text (copied into the arena). */
struct sql_stmt *sql_script_add_text(struct sql_script *s, const char *text, unsigned nparams,
				     unsigned item);

/* Parameter setters; i is 1-based like $i. Text is borrowed: it must live
 * until the script is cleared (use sql_arena_strdup for temporaries). */
void sql_bind_int(struct sql_script *s, struct sql_stmt *st, unsigned i, int64_t v);
void sql_bind_text(struct sql_script *s, struct sql_stmt *st, unsigned i, const char *v);
/* Same with the length known (large values: it also sizes chunks). */
void sql_bind_text_len(struct sql_script *s, struct sql_stmt *st, unsigned i, const char *v,
		       size_t len);
void sql_bind_null(struct sql_stmt *st, unsigned i);
/* Binds a one-dimensional PostgreSQL array in binary format, built in the
 * script's arena from n values (text: NULL pointers are SQL NULLs). Returns
 * 0, or -1 when out of memory (s->oom set). */
int sql_bind_array_text(struct sql_script *s, struct sql_stmt *st, unsigned i,
			const char *const *v, size_t n);
int sql_bind_array_int8(struct sql_script *s, struct sql_stmt *st, unsigned i, const int64_t *v,
			size_t n);

/* ---- helpers ------------------------------------------------------------- */

/* Column accessors tolerant of both backends' representations (PostgreSQL
 * returns text). NULL reads as 0 / NULL. */
int64_t sql_col_int(const struct sql_row *row, unsigned i);
const char *sql_col_text(const struct sql_row *row, unsigned i);
int sql_col_is_null(const struct sql_row *row, unsigned i);

/* Copies $n placeholders of text to ?n for SQLite (outside quotes).
 * Returns malloc'd text or NULL. */
char *sql_rewrite_params(const char *text);

/* Turns newlines and tabs into single spaces, in place. */
void sql_one_line(char *text);

/* Copies a message into fail, classifying it. */
void sql_fail_set(struct sql_fail *fail, size_t index, enum sql_err code, const char *msg);

#endif
