/*
 * plugin.c - the parts of a plugin descriptor the carrier plugins share.
 *
 * Every carrier plugin keeps a struct carrier_conn as the first member of
 * its state and describes itself in a static struct carrier_def. That is
 * enough for the callbacks that do not depend on a carrier's JSON shapes:
 * creating and destroying the state, the start of build_request (stream
 * and cursor checks), read_limits (Retry-After), and the "refresh_token"
 * action of the OAuth carriers. A plugin names these functions in its
 * descriptor directly, or calls them first from its own callback when it
 * has more to do.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#include "carrier.h"

/*
 * carrier_create - allocate a plugin state and read the common settings.
 * See carrier.h.
 */
int carrier_create(const struct carrier_def *def, size_t size, const struct hub_host *host,
		   struct hub_conn *conn, const json_t *config, void **state,
		   struct hub_error *err)
{
	struct carrier_conn *cc;
	int rc;

	*state = NULL;
	if (size < sizeof(*cc))
		size = sizeof(*cc);
	cc = calloc(1, size);
	if (!cc) {
		hub_error_set(err, NULL, "out of memory");
		return HUB_FATAL;
	}
	rc = carrier_conn_init(cc, host, conn, def, config, err);
	if (rc != HUB_OK) {
		carrier_destroy(cc);
		return rc;
	}
	*state = cc;
	return HUB_OK;
}

/*
 * carrier_destroy - release the carrier_conn and free the state.
 */
void carrier_destroy(void *state)
{
	struct carrier_conn *cc = state;

	if (!cc)
		return;
	carrier_conn_release(cc);
	free(cc);
}

/*
 * carrier_request_numbers - the stream and cursor checks of build_request.
 * See carrier.h.
 */
int carrier_request_numbers(const struct carrier_conn *cc, const char *stream,
			    const json_t *cursor, const char **numbers, size_t max, size_t *n,
			    struct hub_error *err)
{
	int rc;

	*n = 0;
	if (strcmp(stream, "tracking") != 0) {
		hub_error_set(err, "stream", "%s serves only the tracking stream, not '%s'", cc->label,
			      stream);
		return HUB_INVALID;
	}
	rc = carrier_cursor_numbers(cursor, numbers, max, n, err);
	if (rc == HUB_OK && *n == 0)
		return HUB_DONE;
	return rc;
}

/*
 * carrier_read_limits - report a Retry-After on the request's bucket.
 */
void carrier_read_limits(void *state, const char *operation, const struct hub_msg *resp,
			 struct hub_call *call)
{
	const struct carrier_conn *cc = state;
	const struct hub_host *h = cc->host;
	const char *value = h->msg_header(resp, "Retry-After");
	int64_t ms;

	if (!value || carrier_retry_after_ms(value, h->now_ms(), &ms) != 0 || ms <= 0)
		return;
	h->observe_limit(call, operation, 0, 0, 0, ms);
}

/*
 * carrier_build_action - the "refresh_token" token request. See carrier.h.
 */
int carrier_build_action(void *state, const char *action, const json_t *payload,
			 struct hub_msg *req, struct hub_error *err)
{
	const struct carrier_conn *cc = state;
	const struct carrier_def *def = cc->def;

	if (strcmp(action, "refresh_token") != 0 || !def->token_path)
		return HUB_IGNORED;
	return carrier_oauth_build(cc, req, def->token_path, def->token_style, def->token_extra,
				   err);
}

/*
 * carrier_read_action - the "refresh_token" token response. See carrier.h.
 */
int carrier_read_action(void *state, const char *action, const json_t *payload,
			const struct hub_msg *resp, struct hub_call *call, struct hub_error *err)
{
	const struct carrier_conn *cc = state;

	if (strcmp(action, "refresh_token") != 0 || !cc->def->token_path)
		return HUB_IGNORED;
	return carrier_oauth_read(cc, resp, call, err);
}
