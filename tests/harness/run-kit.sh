#!/bin/sh
# run-kit.sh - runs hub-plugin-kit on one plugin that make built, with its
# kit cases: the test behind every plugin's tests/kit.sh and
# tests/kit-valgrind.sh, which only name their plugin.
#
#   run-kit.sh [--valgrind] NAME [CASES]
#
# NAME is the plugin ($HUB_BUILDDIR/.libs/NAME.so); CASES its case folders,
# relative to the source tree (default plugins/NAME/cases). Natively the
# kit also runs its 1,000 load/unload cycles. --valgrind runs the cases once
# more under valgrind, where any invalid access or definite leak in the
# plugin fails; with --cycles 0, because valgrind's own mappings make the
# kit's mapping count unreliable and the native run does the cycles, and
# with 4 rounds of the concurrent webhook check (valgrind runs one thread
# at a time, 50 to 100 times slower: the native run does the 100 rounds).
# HUB_FIXTURES (the shared real payloads the cases read as $FIXTURES/...)
# comes from tests/local.am's AM_TESTS_ENVIRONMENT. Exit 77 (skip) when the
# plugin or the kit was not built; the kit's status otherwise (1: a check
# failed).
set -u
valgrind=
if [ "${1:-}" = --valgrind ]; then
	valgrind=yes
	shift
fi
name=${1:?usage: run-kit.sh [--valgrind] NAME [CASES]}
build=${HUB_BUILDDIR:-$(pwd)}
src=${HUB_SRCDIR:-${srcdir:-.}}
cases=$src/${2:-plugins/$name/cases}
so=$build/.libs/$name.so
HUB_FIXTURES=${HUB_FIXTURES:-$src/../shared/fixtures}
export HUB_FIXTURES
[ -x "$build/hub-plugin-kit" ] || { echo "hub-plugin-kit not built: skipped"; exit 77; }
[ -f "$so" ] || { echo "$name.so not built (configure --disable-$name?): skipped"; exit 77; }
# libtool's wrapper lets the uninstalled kit find libhubsdk.
if [ -n "$valgrind" ]; then
	exec "$build/libtool" --mode=execute valgrind -q --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite "$build/hub-plugin-kit" --cycles 0 --rounds 4 \
		"$so" "$cases"
fi
exec "$build/libtool" --mode=execute "$build/hub-plugin-kit" "$so" "$cases"
