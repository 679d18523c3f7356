/*
 * hookbody.c - the benchmark order webhook (see hookbody.h). The reference
 * order is 5 KB; dropping fulfillments and the customer and keeping two
 * line items brings it under 3 KB, and the note field pads it to the size
 * asked for, so every body has the same length whatever its id.
 */
#include "config.h"
#include "hookbody.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hub/sdk.h>

#define ORDER_BASE 7000000000000LL

int hookbody_init(struct hookbody *hb, const char *fixtures, size_t target, const char *run, char *err,
		  size_t size)
{
	char path[1024];
	json_error_t jerr;
	json_t *fx = NULL, *lines;
	int rc = -1;

	memset(hb, 0, sizeof(*hb));
	snprintf(path, sizeof(path), "%s/shopify/python_api_test_fixtures_order.json", fixtures);
	fx = json_load_file(path, 0, &jerr);
	if (!fx) {
		snprintf(err, size, "cannot read %s: %s (pass --fixtures DIR)", path, jerr.text);
		goto out;
	}
	hb->order = json_deep_copy(json_object_get(fx, "order"));
	if (!json_is_object(hb->order)) {
		snprintf(err, size, "%s has no \"order\" object", path);
		goto out;
	}
	json_object_del(hb->order, "fulfillments");
	json_object_del(hb->order, "customer");
	lines = json_object_get(hb->order, "line_items");
	while (json_array_size(lines) > 2)
		json_array_remove(lines, json_array_size(lines) - 1);
	hb->target = target;
	hb->base = ORDER_BASE;
	snprintf(hb->run, sizeof(hb->run), "%s", run);
	rc = 0;
out:
	json_decref(fx);
	if (rc < 0)
		hookbody_release(hb);
	return rc;
}

void hookbody_release(struct hookbody *hb)
{
	json_decref(hb->order);
	hb->order = NULL;
}

char *hookbody_make(const struct hookbody *hb, long long index, size_t *len)
{
	json_t *o = json_copy(hb->order);
	char name[32], *text = NULL, *pad = NULL;
	long long id = hb->base + index;
	size_t n;

	if (!o)
		return NULL;
	snprintf(name, sizeof(name), "#B%lld", index);
	json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "order_number", json_integer(index + 1000));
	json_object_set_new(o, "number", json_integer(index + 1));
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "note", json_string(""));
	text = json_dumps(o, JSON_COMPACT);
	if (!text)
		goto out;
	n = strlen(text);
	if (n < hb->target) {
		size_t want = hb->target - n;
		pad = malloc(want + 1);
		if (!pad)
			goto fail;
		memset(pad, 'x', want);
		pad[want] = '\0';
		json_object_set_new(o, "note", json_string(pad));
		free(text);
		text = json_dumps(o, JSON_COMPACT);
		if (!text)
			goto out;
		n = strlen(text);
	}
	*len = n;
	goto out;
fail:
	free(text);
	text = NULL;
out:
	free(pad);
	json_decref(o);
	return text;
}

void hookbody_webhook_id(const struct hookbody *hb, long long index, char *buf, size_t size)
{
	snprintf(buf, size, "bench-%s-%lld", hb->run, index);
}

int hookbody_sign(const char *secret, const char *body, size_t len, char *buf, size_t size)
{
	return hub_hmac_sha256_base64(secret, strlen(secret), body, len, buf, size) < 0 ? -1 : 0;
}
