/*
 * store_pg.c - the PostgreSQL backend of the store, on libpq (see
 * store_sql.h for the vtable it implements).
 *
 * URL: "postgresql://user:pass@host:port/db?..." or "postgres://...",
 * anything libpq accepts. Defaults the URL may override: connect_timeout=5,
 * TCP keepalives (a dead peer is noticed in about a minute),
 * application_name=hubd.
 *
 * run() uses pipeline mode (libpq >= 14): every statement of the chunk is
 * sent, then one Sync, then the results are read in order. A chunk of a
 * thousand statements thus costs one round trip. After a failing statement
 * the server skips the rest until the Sync (PGRES_PIPELINE_ABORTED), which
 * is exactly run()'s contract: the statements after the failure did not
 * run. The socket is in non-blocking mode and input is consumed while
 * output is flushed, so large results can never deadlock against a large
 * batch. Fixed statements are prepared once per connection (in the same
 * pipeline, just before their first use).
 *
 * Every wait is bounded (IO_TIMEOUT_MS); a server that stops answering is
 * treated as a lost connection, which the store thread turns into a
 * reconnect and a retry of the batch.
 */
#include "config.h"
#include "store_sql.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <hub/sdk.h>

#include "log.h"

#define IO_TIMEOUT_MS 60000
#define MAX_PARAMS 32

/*
 * A generic plan made while the tables are empty can pick any index that
 * matches (every estimate is "one row") or a sequential scan, and that plan
 * would stay until autovacuum analyzes the table: a scan per lookup, ever
 * slower as the table grows. So the statements are prepared again once the
 * connection has written (or read) 1000 rows, then each time that count
 * doubled, up to REPLAN_LAST: the plans are always made on tables at least
 * half their current size, and past that autovacuum's ANALYZE invalidates
 * them as the tables keep growing.
 */
#define REPLAN_FIRST 1000
#define REPLAN_LAST (1 << 22)

struct sql_conn {
	PGconn *pg;
	unsigned char prepared[SQL_SLOT_COUNT];
	uint64_t rows, replan_at; /* rows seen on this connection; see REPLAN_FIRST */
	/* what each sent message expects back, for the current run */
	struct sent {
		size_t stmt;
		int prepare; /* 1: a Parse for stmt's def, 0: the statement itself,
		                2: our own DEALLOCATE ALL */
	} *sent;
	size_t sent_cap;
};

static void pg_disconnect(struct sql_conn *c)
{
	if (!c)
		return;
	PQfinish(c->pg);
	free(c->sent);
	free(c);
}

/* Server notices ("relation already exists, skipping") go to the debug log,
 * not to stderr. */
static void on_notice(void *arg, const char *message)
{
	(void)arg;
	log_debug("store", "postgresql: %.*s", (int)strcspn(message, "\n"), message);
}

static int pg_connect(struct sql_conn **out, const char *url, struct hub_error *err)
{
	/* Keywords before "dbname" are defaults the URL may override. */
	const char *keys[] = {"connect_timeout", "application_name", "keepalives",
			      "keepalives_idle", "keepalives_interval", "keepalives_count",
			      "dbname", "client_encoding", NULL};
	const char *vals[] = {"5", "hubd", "1", "30", "10", "3", url, "UTF8", NULL};
	struct sql_conn *c = calloc(1, sizeof(*c));
	PGresult *res;

	if (!c)
		return hub_error_set(err, NULL, "store: out of memory");
	c->replan_at = REPLAN_FIRST;
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (!c->pg || PQstatus(c->pg) != CONNECTION_OK) {
		hub_error_set(err, NULL, "store: cannot connect to PostgreSQL: %s",
			      c->pg ? PQerrorMessage(c->pg) : "out of memory");
		goto fail;
	}
	PQsetNoticeProcessor(c->pg, on_notice, NULL);
	/* Our fixed statements are key lookups whose best plan does not depend
	 * on the values: plan them once per preparation instead of at every
	 * execution (custom plans, which PostgreSQL keeps choosing on young
	 * tables, cost more than running these statements). See REPLAN_FIRST
	 * for plans made while the tables were still empty. */
	res = PQexec(c->pg, "SET plan_cache_mode = force_generic_plan");
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		hub_error_set(err, NULL, "store: cannot configure the PostgreSQL session: %s",
			      PQerrorMessage(c->pg));
		PQclear(res);
		goto fail;
	}
	PQclear(res);
	if (PQsetnonblocking(c->pg, 1) != 0 || PQenterPipelineMode(c->pg) != 1) {
		hub_error_set(err, NULL, "store: cannot set up the PostgreSQL connection: %s",
			      PQerrorMessage(c->pg));
		goto fail;
	}
	*out = c;
	return 0;
fail:
	/* libpq's messages span lines; ours are one line. */
	if (err) {
		size_t n;

		sql_one_line(err->message);
		n = strlen(err->message);
		while (n && err->message[n - 1] == ' ')
			err->message[--n] = '\0';
	}
	pg_disconnect(c);
	return -1;
}

static enum sql_err classify(const PGconn *pg, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(pg) != CONNECTION_OK)
		return SQL_ERR_CONN;
	if (!state)
		return SQL_ERR_OTHER;
	if (strcmp(state, "23505") == 0)
		return SQL_ERR_UNIQUE;
	if (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0)
		return SQL_ERR_CONSTRAINT;
	if (strcmp(state, "53100") == 0)
		return SQL_ERR_FULL;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
	    strcmp(state, "53300") == 0)
		return SQL_ERR_CONN;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
	    strcmp(state, "55P03") == 0)
		return SQL_ERR_BUSY;
	return SQL_ERR_OTHER;
}

/* Waits for the socket. Returns 0, or -1 on timeout or error. */
static int wait_socket(PGconn *pg, short events)
{
	struct pollfd p = {PQsocket(pg), events, 0};
	int rc;

	if (p.fd < 0)
		return -1;
	do
		rc = poll(&p, 1, IO_TIMEOUT_MS);
	while (rc < 0 && errno == EINTR);
	return rc > 0 ? 0 : -1;
}

/* Sends everything buffered, reading input meanwhile. 0 or -1. */
static int flush_all(PGconn *pg)
{
	int rc;

	while ((rc = PQflush(pg)) == 1) {
		if (wait_socket(pg, POLLOUT | POLLIN) < 0)
			return -1;
		if (PQconsumeInput(pg) != 1)
			return -1;
	}
	return rc == 0 ? 0 : -1;
}

/* The next result, waiting for input as needed. *dead is set when the
 * connection failed. */
static PGresult *next_result(PGconn *pg, int *dead)
{
	while (PQisBusy(pg)) {
		if (wait_socket(pg, POLLIN) < 0 || PQconsumeInput(pg) != 1) {
			*dead = 1;
			return NULL;
		}
	}
	return PQgetResult(pg);
}

static int push_sent(struct sql_conn *c, size_t *nsent, size_t stmt, int prepare)
{
	if (*nsent == c->sent_cap) {
		size_t cap = c->sent_cap ? c->sent_cap * 2 : 512;
		struct sent *bigger = realloc(c->sent, cap * sizeof(*bigger));
		if (!bigger)
			return -1;
		c->sent = bigger;
		c->sent_cap = cap;
	}
	c->sent[*nsent].stmt = stmt;
	c->sent[*nsent].prepare = prepare;
	(*nsent)++;
	return 0;
}

static void fail_conn(struct sql_fail *fail, size_t index, PGconn *pg, const char *what)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "%s: %s", what,
		 PQerrorMessage(pg)[0] ? PQerrorMessage(pg) : "the server does not answer");
	sql_fail_set(fail, index, SQL_ERR_CONN, msg);
}

/* Queues one statement (and its Parse when first used). 0 or -1. */
static int send_stmt(struct sql_conn *c, size_t k, const struct sql_stmt *st, size_t *nsent)
{
	const char *values[MAX_PARAMS];
	int lengths[MAX_PARAMS], formats[MAX_PARAMS], binary = 0;
	char ints[MAX_PARAMS][24];
	char name[32];

	if (st->nparams > MAX_PARAMS)
		return -1;
	for (unsigned i = 0; i < st->nparams; i++) {
		const struct sql_val *v = &st->params[i];

		lengths[i] = 0;
		formats[i] = 0;
		if (v->type == SQL_INT) {
			snprintf(ints[i], sizeof(ints[i]), "%" PRId64, v->i);
			values[i] = ints[i];
		} else if (v->type == SQL_BINARY) {
			values[i] = v->s;
			lengths[i] = (int)v->i;
			formats[i] = 1;
			binary = 1;
		} else {
			values[i] = v->type == SQL_TEXT ? v->s : NULL;
		}
	}
	if (!st->def) {
		if (!PQsendQueryParams(c->pg, st->text, (int)st->nparams, NULL, values,
				       binary ? lengths : NULL, binary ? formats : NULL, 0))
			return -1;
		return push_sent(c, nsent, k, 0);
	}
	snprintf(name, sizeof(name), "hub_s%d", st->def->slot);
	if (!c->prepared[st->def->slot]) {
		if (!PQsendPrepare(c->pg, name, sql_def_text(st->def, SQL_PG), 0, NULL) ||
		    push_sent(c, nsent, k, 1) < 0)
			return -1;
		c->prepared[st->def->slot] = 1;
	}
	if (!PQsendQueryPrepared(c->pg, name, (int)st->nparams, values, binary ? lengths : NULL,
				 binary ? formats : NULL, 0))
		return -1;
	return push_sent(c, nsent, k, 0);
}

/* Calls the row callback for each row of res. 0 or -1. */
static int deliver_rows(const struct sql_stmt *st, const PGresult *res)
{
	struct sql_val cols[MAX_PARAMS];
	struct sql_row row = {0, cols};
	int ncols = PQnfields(res), nrows = PQntuples(res);

	if (ncols > MAX_PARAMS)
		ncols = MAX_PARAMS;
	row.ncols = (unsigned)ncols;
	for (int r = 0; r < nrows; r++) {
		for (int i = 0; i < ncols; i++) {
			if (PQgetisnull(res, r, i))
				cols[i] = (struct sql_val){SQL_NULL, 0, NULL};
			else
				cols[i] = (struct sql_val){SQL_TEXT, -1, PQgetvalue(res, r, i)};
		}
		if (st->on_row(st->ctx, &row) < 0)
			return -1;
	}
	return 0;
}

static int pg_run(struct sql_conn *c, struct sql_stmt *stmts, size_t n, struct sql_fail *fail)
{
	size_t nsent = 0, failed = n;
	int dead = 0;
	PGresult *res;

	fail->code = SQL_ERR_NONE;
	if (PQstatus(c->pg) != CONNECTION_OK) {
		fail_conn(fail, 0, c->pg, "connection lost");
		return -1;
	}
	if (c->rows >= c->replan_at && c->replan_at <= REPLAN_LAST) {
		if (!PQsendQueryParams(c->pg, "DEALLOCATE ALL", 0, NULL, NULL, NULL, NULL, 0) ||
		    push_sent(c, &nsent, 0, 2) < 0) {
			fail_conn(fail, 0, c->pg, "sending a statement");
			return -1;
		}
		memset(c->prepared, 0, sizeof(c->prepared));
		c->replan_at = c->rows * 2;
	}
	for (size_t k = 0; k < n; k++) {
		if (send_stmt(c, k, &stmts[k], &nsent) < 0) {
			if (PQstatus(c->pg) != CONNECTION_OK) {
				fail_conn(fail, k, c->pg, "sending a statement");
			} else {
				/* Should not happen: drop the connection to get a clean state. */
				sql_fail_set(fail, k, SQL_ERR_CONN, PQerrorMessage(c->pg));
			}
			memset(c->prepared, 0, sizeof(c->prepared));
			return -1;
		}
	}
	if (PQpipelineSync(c->pg) != 1 || flush_all(c->pg) < 0) {
		fail_conn(fail, 0, c->pg, "sending the batch");
		return -1;
	}
	for (size_t e = 0; e < nsent; e++) {
		struct sent *s = &c->sent[e];
		struct sql_stmt *st = &stmts[s->stmt];

		while ((res = next_result(c->pg, &dead)) != NULL) {
			if (s->prepare == 2) {
				/* DEALLOCATE ALL cannot fail; if it did, the statements
				 * after it were skipped and are reported below. */
				PQclear(res);
				continue;
			}
			switch (PQresultStatus(res)) {
			case PGRES_TUPLES_OK:
				if (!s->prepare && failed == n && st->on_row &&
				    deliver_rows(st, res) < 0) {
					sql_fail_set(fail, s->stmt, SQL_ERR_CLIENT,
						     "out of memory reading a result");
					failed = s->stmt;
				}
				if (!s->prepare) {
					st->changes = PQntuples(res);
					c->rows += (uint64_t)st->changes + 1;
				}
				break;
			case PGRES_COMMAND_OK:
				if (!s->prepare) {
					st->changes = strtoll(PQcmdTuples(res), NULL, 10);
					c->rows += (uint64_t)st->changes + 1;
				}
				break;
			case PGRES_PIPELINE_ABORTED:
				if (s->prepare)
					c->prepared[st->def->slot] = 0;
				break;
			default:
				if (s->prepare)
					c->prepared[st->def->slot] = 0;
				if (failed == n) {
					const char *msg = PQresultErrorField(res,
							PG_DIAG_MESSAGE_PRIMARY);
					/* The primary message only: DETAIL may quote row
					 * values. */
					sql_fail_set(fail, s->stmt, classify(c->pg, res),
						     msg ? msg : PQresultErrorMessage(res));
					failed = s->stmt;
				}
			}
			PQclear(res);
		}
		if (dead)
			break;
	}
	if (!dead) {
		/* The Sync's own result. */
		res = next_result(c->pg, &dead);
		if (res && PQresultStatus(res) != PGRES_PIPELINE_SYNC)
			dead = 1;
		PQclear(res);
	}
	if (dead || PQstatus(c->pg) != CONNECTION_OK) {
		memset(c->prepared, 0, sizeof(c->prepared));
		fail_conn(fail, failed < n ? failed : 0, c->pg, "reading results");
		return -1;
	}
	return failed < n ? -1 : 0;
}

static int pg_in_txn(struct sql_conn *c)
{
	PGTransactionStatusType t = PQtransactionStatus(c->pg);

	return t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

const struct sql_backend sql_pg_backend = {
	.name = "postgresql",
	.dialect = SQL_PG,
	.connect = pg_connect,
	.disconnect = pg_disconnect,
	.run = pg_run,
	.in_txn = pg_in_txn,
};
