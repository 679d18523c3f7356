/*
 * storedb.c - a fresh SQLite file or PostgreSQL database per store test
 * (see storedb.h).
 */
#include "config.h"
#include "storedb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "pgserver.h"
#include "proc.h"

int storedb_server_start(struct pgserver *pg)
{
	char err[256];

	if (!pg)
		return 0;
	pgserver_init(pg);
	if (pgserver_start(pg, err, sizeof(err)) < 0) {
		fprintf(stderr, "cannot start PostgreSQL: %s\n", err);
		return -1;
	}
	return 0;
}

void storedb_server_stop(struct pgserver *pg)
{
	if (pg)
		pgserver_stop(pg);
}

int storedb_pg_admin(const struct pgserver *pg, const char *sql, char *err, size_t size)
{
	PGconn *c = PQconnectdb(pg->url);
	PGresult *r = NULL;
	int rc = -1;

	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(err, size, "%s: %s", pg->url, PQerrorMessage(c));
		goto out;
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, size, "%s: %s", sql, PQerrorMessage(c));
		goto out;
	}
	rc = 0;
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

int storedb_make(struct storedb *d, struct pgserver *pg, const char *tag)
{
	static int made;
	char sql[128], err[512];

	memset(d, 0, sizeof(*d));
	snprintf(d->dir, sizeof(d->dir), "/tmp/hub-%s-test.XXXXXX", tag);
	if (!mkdtemp(d->dir)) {
		perror(d->dir);
		d->dir[0] = '\0';
		return -1;
	}
	made++;
	if (!pg) {
		snprintf(d->url, sizeof(d->url), "sqlite:%s/hub.db", d->dir);
		return 0;
	}
	snprintf(d->db, sizeof(d->db), "%s%d_%ld", tag, made, (long)getpid());
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", d->db);
	if (storedb_pg_admin(pg, sql, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		proc_rmtree(d->dir);
		memset(d, 0, sizeof(*d));
		return -1;
	}
	d->pg = pg;
	snprintf(d->url, sizeof(d->url), "postgresql:///%s?host=%s&port=%d&user=postgres", d->db, pg->dir,
		 pg->port);
	return 0;
}

int storedb_remove(struct storedb *d)
{
	char sql[128], err[512];
	int rc = 0;

	if (d->pg && d->db[0] && d->pg->running) {
		snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", d->db);
		if (storedb_pg_admin(d->pg, sql, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			rc = -1;
		}
	}
	if (d->dir[0])
		proc_rmtree(d->dir);
	memset(d, 0, sizeof(*d));
	return rc;
}
