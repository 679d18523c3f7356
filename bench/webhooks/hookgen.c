/*
 * hookgen.c - writes signed Shopify order webhooks for wrk, which cannot
 * compute an HMAC in its Lua scripts. Each delivery has its own order id
 * and webhook id; they are dealt round-robin into PREFIX.0 .. PREFIX.<P-1>,
 * one file per wrk thread, so no two threads ever send the same delivery.
 * A line is "<webhook id> TAB <base64 HMAC> TAB <compact JSON body>".
 *
 *   hookgen --fixtures DIR --secret S --count N --parts P --out PREFIX
 *           [--bytes 3072] [--run TAG]
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookbody.h"

static void usage(void)
{
	fprintf(stderr, "usage: hookgen --fixtures DIR --secret S --count N --parts P --out PREFIX "
			"[--bytes 3072] [--run TAG]\n");
}

static int parse_ll(const char *s, long long min, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	const char *fixtures = NULL, *secret = NULL, *prefix = NULL, *run = "r";
	long long count = 0, parts = 1, bytes = 3072, total = 0;
	struct hookbody hb;
	FILE **out = NULL;
	char err[1200], path[1100];
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			usage();
			return 2;
		}
		if (strcmp(a, "--fixtures") == 0)
			fixtures = v;
		else if (strcmp(a, "--secret") == 0)
			secret = v;
		else if (strcmp(a, "--out") == 0)
			prefix = v;
		else if (strcmp(a, "--run") == 0)
			run = v;
		else if ((strcmp(a, "--count") == 0 && parse_ll(v, 1, &count) == 0) ||
			 (strcmp(a, "--parts") == 0 && parse_ll(v, 1, &parts) == 0) ||
			 (strcmp(a, "--bytes") == 0 && parse_ll(v, 64, &bytes) == 0))
			;
		else {
			usage();
			return 2;
		}
		i++;
	}
	if (!fixtures || !secret || !prefix || count < 1 || parts > 64) {
		usage();
		return 2;
	}
	if (hookbody_init(&hb, fixtures, (size_t)bytes, run, err, sizeof(err)) < 0) {
		fprintf(stderr, "hookgen: %s\n", err);
		return 1;
	}
	out = calloc((size_t)parts, sizeof(*out));
	if (!out)
		goto out;
	for (long long p = 0; p < parts; p++) {
		snprintf(path, sizeof(path), "%s.%lld", prefix, p);
		out[p] = fopen(path, "w");
		if (!out[p]) {
			fprintf(stderr, "hookgen: cannot write %s: %s\n", path, strerror(errno));
			goto out;
		}
	}
	for (long long i = 0; i < count; i++) {
		char wid[64], sig[64];
		size_t len;
		char *body = hookbody_make(&hb, i, &len);

		if (!body || hookbody_sign(secret, body, len, sig, sizeof(sig)) < 0) {
			fprintf(stderr, "hookgen: out of memory at delivery %lld\n", i);
			free(body);
			goto out;
		}
		hookbody_webhook_id(&hb, i, wid, sizeof(wid));
		fprintf(out[i % parts], "%s\t%s\t%s\n", wid, sig, body);
		total += (long long)len;
		free(body);
	}
	for (long long p = 0; p < parts; p++) {
		if (fclose(out[p]) != 0) {
			fprintf(stderr, "hookgen: write error: %s\n", strerror(errno));
			out[p] = NULL;
			goto out;
		}
		out[p] = NULL;
	}
	printf("hookgen: %lld deliveries in %lld part(s), body %lld bytes on average\n", count, parts,
	       total / count);
	rc = 0;
out:
	for (long long p = 0; out && p < parts; p++)
		if (out[p])
			fclose(out[p]);
	free(out);
	hookbody_release(&hb);
	return rc;
}
