/*
 * store_sqlite.c - the embedded SQLite backend of the store (see
 * store_sql.h for the vtable it implements).
 *
 * URL: "sqlite:/path/hub.db" (also "sqlite:///path/hub.db" and relative
 * paths), with optional query parameters cache_mb (the page cache of the
 * store's connection, default 64), busy_timeout_ms (default 5000),
 * max_page_count (caps the file size: a full database then fails cleanly
 * with SQLITE_FULL, used to test the disk-full path) and synchronous
 * ("full", the default, or "normal"). A bad value or an unknown option
 * fails the open, naming the option.
 *
 * Durability: journal_mode=WAL with synchronous=FULL: the WAL is fsynced at
 * every commit, so a commit the store acknowledged survives a power cut.
 * Group commit amortises that fsync over a whole batch. synchronous=NORMAL
 * would keep the database consistent but could lose the last commits on
 * power loss, which would break "200 only after commit" for webhooks.
 *
 * Checkpoints (copying the WAL back into the database file, and fsyncing
 * it) run on a background thread with its own connection once the WAL
 * holds CKPT_PAGES, so the store thread never waits for them; past
 * CKPT_RESTART the store thread copies the last few frames itself so that
 * the WAL starts over (see on_wal_commit), and only if the checkpointer
 * falls far behind (CKPT_BACKSTOP) does a commit checkpoint everything
 * inline. The WAL file keeps its size when it starts over: it is only cut
 * back (journal_size_limit) after growing past WAL_SIZE_LIMIT.
 *
 * Fixed statements are prepared once and cached by slot; dynamic ones are
 * prepared per run. Only the store thread uses the connection (and the
 * thread that opens the store, before the store thread starts).
 */
#include "config.h"
#include "store_sql.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include <hub/sdk.h>

#include "log.h"

#define CKPT_PAGES 4096     /* 32 MB of 8 KB pages: wake the checkpointer */
#define CKPT_RESTART 8192   /* 64 MB: from here on, bring the WAL back to its start */
#define CKPT_TAIL 512       /* 4 MB: how far behind the checkpointer may be (see on_wal_commit) */
#define CKPT_BACKSTOP 65536 /* 512 MB: the checkpointer fell behind, checkpoint inline */
/* The WAL file is truncated back to this size only after it grew past it
 * (a checkpoint held up, e.g. by a long read). Truncating on every restart
 * cost stalls of 150-220 ms: the file system discards the freed blocks and
 * then allocates them again as the WAL grows back. */
#define WAL_SIZE_LIMIT "268435456"

struct sql_conn {
	sqlite3 *db;
	sqlite3_stmt *cache[SQL_SLOT_COUNT];
	/* the background checkpointer */
	char path[4096];
	int full;
	int wal_fd;       /* synchronous "full": the WAL, synced by the store's
	                     syncer after commits instead of inside them; -1 when
	                     SQLite syncs at commit itself */
	pthread_t ckpt;
	int ckpt_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int ckpt_wanted, stopping;
	int signalled_at; /* WAL size when the checkpointer was last woken */
	int last_pages;   /* WAL size at the previous commit */
	/* under mu: what the checkpointer's last pass saw (frames in the WAL,
	 * frames copied) and in which cycle of the WAL (the store thread counts
	 * restarts); a pass from an earlier cycle is ignored */
	unsigned cycle;
	unsigned done_cycle;
	int done_log, done_ckpt;
};

static void sq_disconnect(struct sql_conn *c)
{
	if (!c)
		return;
	if (c->ckpt_started) {
		pthread_mutex_lock(&c->mu);
		c->stopping = 1;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->ckpt, NULL);
	}
	for (int i = 0; i < SQL_SLOT_COUNT; i++)
		sqlite3_finalize(c->cache[i]);
	/* The last connection to close checkpoints what is left. */
	sqlite3_close_v2(c->db);
	if (c->wal_fd >= 0)
		close(c->wal_fd);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

static void wake_checkpointer(struct sql_conn *c)
{
	pthread_mutex_lock(&c->mu);
	c->ckpt_wanted = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/*
 * Called on the store thread after every commit with the number of pages
 * in the WAL.
 *
 * The WAL goes back to its start only when a write transaction begins with
 * every frame already copied to the database, which a checkpointer running
 * beside a busy writer almost never sees: it finishes a pass, and the
 * writer has appended more. So once the WAL is CKPT_RESTART pages long the
 * checkpointer is kept going, and when its last pass got to within
 * CKPT_TAIL frames of the previous commit, the store thread copies the rest
 * (that and its own commit's frames) itself, between its commit and its
 * next transaction, which then restarts the WAL. That costs a short pause
 * (about one commit's worth to copy and sync; under 1.5 ms measured with
 * webhook batches) about every CKPT_RESTART pages instead of a WAL that
 * grows until the backstop.
 */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct sql_conn *c = arg;
	int log = 0, ckpt = 0, usable, before = c->last_pages;

	/* The WAL restarted from its beginning after a complete checkpoint. */
	if (pages < c->last_pages) {
		c->signalled_at = 0;
		before = 0;
		pthread_mutex_lock(&c->mu);
		c->cycle++;
		pthread_mutex_unlock(&c->mu);
	}
	c->last_pages = pages;
	if (pages >= CKPT_BACKSTOP) {
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	if (pages >= CKPT_RESTART && c->ckpt_started) {
		pthread_mutex_lock(&c->mu);
		usable = c->done_cycle == c->cycle && c->done_log <= pages && c->done_ckpt == c->done_log;
		ckpt = c->done_ckpt;
		pthread_mutex_unlock(&c->mu);
		/* Left to copy: this commit's frames (the checkpointer could
		 * not have them yet) and at most CKPT_TAIL more. */
		if (usable && ckpt >= before - CKPT_TAIL) {
			/* PASSIVE: SQLITE_BUSY while the checkpointer runs; then
			 * the next commit tries again. */
			if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log,
						      &ckpt) == SQLITE_OK &&
			    ckpt == log)
				return SQLITE_OK;
		}
		wake_checkpointer(c);
		return SQLITE_OK;
	}
	if (pages >= c->signalled_at + CKPT_PAGES) {
		/* Once per CKPT_PAGES of new WAL, not at every commit: each
		 * checkpoint fsyncs the database file. */
		c->signalled_at = pages;
		wake_checkpointer(c);
	}
	return SQLITE_OK;
}

static void *checkpointer(void *arg)
{
	struct sql_conn *c = arg;
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(c->path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
	    SQLITE_OK) {
		log_warn("store", "sqlite: no background checkpoints (%s); commits will do them",
			 db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close_v2(db);
		sqlite3_wal_autocheckpoint(c->db, CKPT_PAGES);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_exec(db, c->full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL,
		     NULL, NULL);
	sqlite3_exec(db, "PRAGMA journal_size_limit=" WAL_SIZE_LIMIT, NULL, NULL, NULL);
	for (;;) {
		int rc, log = 0, done = 0;
		unsigned cycle;

		pthread_mutex_lock(&c->mu);
		while (!c->ckpt_wanted && !c->stopping)
			pthread_cond_wait(&c->cv, &c->mu);
		c->ckpt_wanted = 0;
		if (c->stopping) {
			pthread_mutex_unlock(&c->mu);
			break;
		}
		cycle = c->cycle;
		pthread_mutex_unlock(&c->mu);
		/* PASSIVE: copies what it can without blocking the writer. */
		rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("store", "sqlite: checkpoint failed: %s", sqlite3_errmsg(db));
		pthread_mutex_lock(&c->mu);
		if (rc == SQLITE_OK) {
			c->done_cycle = cycle;
			c->done_log = log;
			c->done_ckpt = done;
		}
		pthread_mutex_unlock(&c->mu);
	}
	sqlite3_close_v2(db);
	return NULL;
}

/* The options a sqlite: URL may carry after "?", "name=value" joined by "&". */
struct sq_opts {
	long busy_ms;   /* busy_timeout_ms */
	long max_pages; /* max_page_count, 0: none */
	long cache_mb;  /* cache_mb: the page cache of the store's connection */
	int full;       /* synchronous: 1 full, 0 normal */
};

/* Parses `value` of option `name` as an integer in [lo, hi]. 0 or -1 with err. */
static int opt_long(const char *name, const char *value, long lo, long hi, long *out, struct hub_error *err)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno || end == value || *end || v < lo || v > hi)
		return hub_error_set(err, NULL, "store: sqlite: URL option %s=\"%s\" must be an integer from %ld "
					       "to %ld", name, value, lo, hi);
	*out = v;
	return 0;
}

/* Reads the query part of the URL (NULL: none) into o, defaults first.
 * Unknown options are refused, so that a misspelt one is not ignored. */
static int parse_opts(const char *query, struct sq_opts *o, struct hub_error *err)
{
	const char *p = query;

	o->busy_ms = 5000;
	o->max_pages = 0;
	o->cache_mb = 64;
	o->full = 1;
	while (p && *p) {
		const char *end = strchr(p, '&'), *eq;
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[32], value[64];

		eq = memchr(p, '=', len);
		if (!eq || eq == p || (size_t)(eq - p) >= sizeof(name) || len - (size_t)(eq - p) - 1 >= sizeof(value))
			return hub_error_set(err, NULL, "store: sqlite: URL option \"%.*s\" is not name=value",
					     (int)(len > 64 ? 64 : len), p);
		snprintf(name, sizeof(name), "%.*s", (int)(eq - p), p);
		snprintf(value, sizeof(value), "%.*s", (int)(len - (size_t)(eq - p) - 1), eq + 1);
		if (strcmp(name, "busy_timeout_ms") == 0) {
			if (opt_long(name, value, 0, 3600000, &o->busy_ms, err) < 0)
				return -1;
		} else if (strcmp(name, "max_page_count") == 0) {
			if (opt_long(name, value, 1, 2147483647L, &o->max_pages, err) < 0)
				return -1;
		} else if (strcmp(name, "cache_mb") == 0) {
			if (opt_long(name, value, 1, 65536, &o->cache_mb, err) < 0)
				return -1;
		} else if (strcmp(name, "synchronous") == 0) {
			if (strcmp(value, "full") != 0 && strcmp(value, "normal") != 0)
				return hub_error_set(err, NULL, "store: sqlite: URL option synchronous=\"%s\" must be "
							       "full or normal", value);
			o->full = strcmp(value, "full") == 0;
		} else {
			return hub_error_set(err, NULL, "store: sqlite: unknown URL option \"%s\" (known: "
						       "busy_timeout_ms, cache_mb, max_page_count, synchronous)", name);
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static int exec_simple(sqlite3 *db, const char *sql, struct hub_error *err)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		hub_error_set(err, NULL, "store: sqlite: %s failed: %s", sql,
			      msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

static int journal_is_wal(void *ctx, int ncols, char **vals, char **names)
{
	(void)names;
	*(int *)ctx = ncols > 0 && vals[0] && strcmp(vals[0], "wal") == 0;
	return 0;
}

/* Process-wide SQLite settings, before its first use: no memory statistics
 * (they take a global mutex around every SQLite malloc and free). */
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static void configure_sqlite(void)
{
	/* SQLITE_MISUSE when SQLite is already initialised (a test that
	 * opened a database first): the default then stays. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int sq_connect(struct sql_conn **out, const char *url, struct hub_error *err)
{
	struct sql_conn *c = NULL;
	char path[4096], pragma[128];
	const char *p = url + strlen("sqlite:"), *q;
	struct sq_opts o;
	int wal = 0;

	if (strncmp(p, "//", 2) == 0)
		p += 2;
	q = strchr(p, '?');
	snprintf(path, sizeof(path), "%.*s", (int)(q ? (size_t)(q - p) : strlen(p)), p);
	if (!path[0])
		return hub_error_set(err, NULL, "store: the SQLite URL has no file path "
						"(expected sqlite:/path/to/hub.db)");
	if (parse_opts(q ? q + 1 : NULL, &o, err) < 0)
		return -1;

	(void)pthread_once(&config_once, configure_sqlite);
	c = calloc(1, sizeof(*c));
	if (!c)
		return hub_error_set(err, NULL, "store: out of memory");
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	snprintf(c->path, sizeof(c->path), "%s", path);
	c->full = o.full;
	c->wal_fd = -1;
	if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				  SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		hub_error_set(err, NULL, "store: cannot open the SQLite database %s: %s", path,
			      c->db ? sqlite3_errmsg(c->db) : "out of memory");
		goto fail;
	}
	sqlite3_extended_result_codes(c->db, 1);
	/* Room for the small allocations of a batch's statements without
	 * malloc (a webhook made ~90 mallocs in SQLite with the default 100
	 * slots). */
	(void)sqlite3_db_config(c->db, SQLITE_DBCONFIG_LOOKASIDE, NULL, 1024, 1024);
	sqlite3_busy_timeout(c->db, (int)o.busy_ms);
	/* 8 KB pages hold three 2 KB orders where 4 KB pages hold one (the
	 * rest of each page wasted, and written to the WAL at every commit).
	 * Only takes effect when the file is created. */
	if (exec_simple(c->db, "PRAGMA page_size=8192", err) < 0)
		goto fail;
	if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", journal_is_wal, &wal, NULL) != SQLITE_OK ||
	    !wal) {
		hub_error_set(err, NULL, "store: cannot switch %s to WAL mode: %s (is the directory "
					 "writable, and the file system local?)", path,
			      sqlite3_errmsg(c->db));
		goto fail;
	}
	/* Negative: a size in KiB rather than in pages. */
	snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%ld", o.cache_mb * 1024);
	if (exec_simple(c->db, o.full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
			err) < 0 ||
	    exec_simple(c->db, "PRAGMA foreign_keys=OFF", err) < 0 ||
	    exec_simple(c->db, pragma, err) < 0 ||
	    exec_simple(c->db, "PRAGMA journal_size_limit=" WAL_SIZE_LIMIT, err) < 0 ||
	    exec_simple(c->db, "PRAGMA temp_store=MEMORY", err) < 0)
		goto fail;
	/* Replaces SQLite's own checkpoint-on-commit. */
	sqlite3_wal_hook(c->db, on_wal_commit, c);
	if (pthread_create(&c->ckpt, NULL, checkpointer, c) == 0)
		c->ckpt_started = 1;
	else
		sqlite3_wal_autocheckpoint(c->db, CKPT_PAGES);
	if (o.max_pages > 0) {
		snprintf(pragma, sizeof(pragma), "PRAGMA max_page_count=%ld", o.max_pages);
		if (exec_simple(c->db, pragma, err) < 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	sq_disconnect(c);
	return -1;
}

static enum sql_err classify(int code)
{
	switch (code) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return SQL_ERR_UNIQUE;
	case SQLITE_FULL:
		return SQL_ERR_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return SQL_ERR_BUSY;
	}
	switch (code & 0xff) {
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG:
		return SQL_ERR_CONSTRAINT;
	case SQLITE_FULL:
		return SQL_ERR_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return SQL_ERR_BUSY;
	}
	return SQL_ERR_OTHER;
}

static sqlite3_stmt *prepare(struct sql_conn *c, const struct sql_stmt *st, int *code)
{
	const char *text = st->def ? sql_def_text(st->def, SQL_SQLITE) : st->text;
	sqlite3_stmt *ps = NULL;
	char *rewritten;

	if (st->def && c->cache[st->def->slot])
		return c->cache[st->def->slot];
	rewritten = sql_rewrite_params(text);
	if (!rewritten) {
		*code = SQLITE_NOMEM;
		return NULL;
	}
	*code = sqlite3_prepare_v3(c->db, rewritten, -1, st->def ? SQLITE_PREPARE_PERSISTENT : 0,
				   &ps, NULL);
	free(rewritten);
	if (*code != SQLITE_OK) {
		sqlite3_finalize(ps);
		return NULL;
	}
	if (st->def)
		c->cache[st->def->slot] = ps;
	return ps;
}

#define MAX_COLS 32

static int sq_run(struct sql_conn *c, struct sql_stmt *stmts, size_t n, struct sql_fail *fail)
{
	struct sql_val cols[MAX_COLS];
	struct sql_row row = {0, cols};
	int64_t anchor_id = 0;
	int anchor_row = 0;

	for (size_t k = 0; k < n; k++) {
		struct sql_stmt *st = &stmts[k];
		int dependent = (st->flags & SQL_STMT_DEPENDENT) != 0;
		sqlite3_stmt *ps;
		int code = SQLITE_OK, rc, first = 1;

		if (dependent && !anchor_row) {
			st->changes = 0;
			continue;
		}
		if (!dependent)
			anchor_row = 0;
		ps = prepare(c, st, &code);
		if (!ps) {
			sql_fail_set(fail, k, classify(code), sqlite3_errmsg(c->db));
			return -1;
		}
		for (unsigned i = 0; i < st->nparams; i++) {
			const struct sql_val *v = &st->params[i];
			if (v->type == SQL_INT)
				rc = sqlite3_bind_int64(ps, (int)i + 1, v->i);
			else if (v->type == SQL_TEXT)
				rc = sqlite3_bind_text(ps, (int)i + 1, v->s,
						       v->i >= 0 && v->i <= INT32_MAX ? (int)v->i : -1,
						       SQLITE_STATIC);
			else
				rc = sqlite3_bind_null(ps, (int)i + 1);
			if (rc != SQLITE_OK) {
				sql_fail_set(fail, k, SQL_ERR_OTHER, sqlite3_errmsg(c->db));
				goto stmt_fail;
			}
		}
		if (dependent && sqlite3_bind_int64(ps, 1, anchor_id) != SQLITE_OK) {
			sql_fail_set(fail, k, SQL_ERR_OTHER, sqlite3_errmsg(c->db));
			goto stmt_fail;
		}
		while ((rc = sqlite3_step(ps)) == SQLITE_ROW) {
			int ncols = sqlite3_column_count(ps);
			if (!dependent && first) {
				anchor_row = 1;
				anchor_id = sqlite3_column_int64(ps, 0);
			}
			first = 0;
			if (!st->on_row)
				continue;
			if (ncols > MAX_COLS)
				ncols = MAX_COLS;
			for (int i = 0; i < ncols; i++) {
				switch (sqlite3_column_type(ps, i)) {
				case SQLITE_INTEGER:
					cols[i] = (struct sql_val){SQL_INT, sqlite3_column_int64(ps, i), NULL};
					break;
				case SQLITE_FLOAT:
					cols[i] = (struct sql_val){SQL_INT,
								   (int64_t)sqlite3_column_double(ps, i), NULL};
					break;
				case SQLITE_NULL:
					cols[i] = (struct sql_val){SQL_NULL, 0, NULL};
					break;
				default:
					cols[i] = (struct sql_val){SQL_TEXT, -1,
								   (const char *)sqlite3_column_text(ps, i)};
				}
			}
			row.ncols = (unsigned)ncols;
			if (st->on_row(st->ctx, &row) < 0) {
				sql_fail_set(fail, k, SQL_ERR_CLIENT, "out of memory reading a result");
				goto stmt_fail;
			}
		}
		if (rc != SQLITE_DONE) {
			sql_fail_set(fail, k, classify(rc), sqlite3_errmsg(c->db));
			goto stmt_fail;
		}
		st->changes = sqlite3_changes64(c->db);
		if (st->def) {
			sqlite3_reset(ps);
			sqlite3_clear_bindings(ps);
		} else {
			sqlite3_finalize(ps);
		}
		continue;
stmt_fail:
		if (st->def) {
			sqlite3_reset(ps);
			sqlite3_clear_bindings(ps);
		} else {
			sqlite3_finalize(ps);
		}
		return -1;
	}
	return 0;
}

static int sq_in_txn(struct sql_conn *c)
{
	return !sqlite3_get_autocommit(c->db);
}

/*
 * "full": every acknowledged commit must be on disk. SQLite's
 * synchronous=FULL syncs the WAL inside each COMMIT, so the store thread
 * waits for the disk before it can start the next batch. Once the WAL's
 * descriptor is ours, the connection runs NORMAL instead (SQLite still
 * syncs the WAL before checkpoints and when it starts over, the database
 * file after checkpoints), and the store's syncer syncs the WAL after each
 * commit, reporting the batch only then, while the next batch already runs
 * (core/store.c). The same guarantee for what is acknowledged. Until the
 * WAL exists (a new database before its first write), FULL as before.
 * Called on the connection's thread.
 */
static int sq_durable_fd(struct sql_conn *c)
{
	char wal_path[sizeof(c->path) + 8];
	struct hub_error err;
	int fd;

	if (!c->full || c->wal_fd >= 0)
		return c->wal_fd;
	/* A read opens (creates) the WAL of a database in WAL mode. */
	sqlite3_exec(c->db, "SELECT 1 FROM sqlite_master LIMIT 1", NULL, NULL, NULL);
	snprintf(wal_path, sizeof(wal_path), "%s-wal", c->path);
	fd = open(wal_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (exec_simple(c->db, "PRAGMA synchronous=NORMAL", &err) < 0) {
		close(fd);
		return -1;
	}
	c->wal_fd = fd;
	return fd;
}

const struct sql_backend sql_sqlite_backend = {
	.name = "sqlite",
	.dialect = SQL_SQLITE,
	.connect = sq_connect,
	.disconnect = sq_disconnect,
	.run = sq_run,
	.in_txn = sq_in_txn,
	.durable_fd = sq_durable_fd,
};
