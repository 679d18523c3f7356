#!/bin/sh
# kit.sh - runs hub-plugin-kit on shopify.so with its cases from
# plugins/shopify/cases, including the kit's 1,000 load/unload cycles.
# HUB_FIXTURES (the shared real payloads the cases read as $FIXTURES/...)
# comes from tests/local.am's AM_TESTS_ENVIRONMENT. Exit 77 (skip) when the
# plugin or the kit was not built; 1 when a check fails.
set -u
build=${HUB_BUILDDIR:-$(pwd)}
src=${HUB_SRCDIR:-${srcdir:-.}}
HUB_FIXTURES=${HUB_FIXTURES:-$src/../shared/fixtures}
export HUB_FIXTURES
[ -x "$build/hub-plugin-kit" ] || { echo "hub-plugin-kit not built: skipped"; exit 77; }
[ -f "$build/.libs/shopify.so" ] || { echo "shopify.so not built (configure --disable-shopify?): skipped"; exit 77; }
# libtool's wrapper lets the uninstalled kit find libhubsdk.
exec "$build/libtool" --mode=execute "$build/hub-plugin-kit" "$build/.libs/shopify.so" \
	"$src/plugins/shopify/cases"
