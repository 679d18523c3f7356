/*
 * minimal.h - the parts every purpose-built bad plugin shares: a create()
 * and destroy() that do nothing wrong, and the schema of an empty config.
 * Each bad_*.c file then breaks exactly one rule of ABI v1, so the test
 * that loads it can assert the one refusal message it must produce.
 */
#ifndef TEST_PLUGINS_MINIMAL_H
#define TEST_PLUGINS_MINIMAL_H

#include <stdlib.h>

#include <hub/plugin.h>

#define MINIMAL_SCHEMA "{\"type\":\"object\"}"

__attribute__((unused)) static int minimal_create(const struct hub_host *host, struct hub_conn *conn,
			  const json_t *config, void **state, struct hub_error *err)
{
	(void)host;
	(void)conn;
	(void)config;
	(void)err;
	*state = NULL;
	return HUB_OK;
}

__attribute__((unused)) static void minimal_destroy(void *state)
{
	free(state);
}

#endif
