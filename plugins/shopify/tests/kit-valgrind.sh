#!/bin/sh
# kit-valgrind.sh - shopify.so's kit cases once more under valgrind: any
# invalid access or definite leak in the plugin fails. --cycles 0:
# valgrind's own mappings make the kit's mapping count unreliable, and
# kit.sh already runs the cycles. Registered only in builds with valgrind
# and without sanitizers (the two do not mix).
set -u
build=${HUB_BUILDDIR:-$(pwd)}
src=${HUB_SRCDIR:-${srcdir:-.}}
HUB_FIXTURES=${HUB_FIXTURES:-$src/../shared/fixtures}
export HUB_FIXTURES
[ -x "$build/hub-plugin-kit" ] || { echo "hub-plugin-kit not built: skipped"; exit 77; }
[ -f "$build/.libs/shopify.so" ] || { echo "shopify.so not built (configure --disable-shopify?): skipped"; exit 77; }
exec "$build/libtool" --mode=execute valgrind -q --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite "$build/hub-plugin-kit" --cycles 0 \
	"$build/.libs/shopify.so" "$src/plugins/shopify/cases"
