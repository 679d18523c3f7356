#!/bin/sh
# kit.sh - runs hub-plugin-kit on each carrier plugin that was built (ups,
# fedex, usps, dhl) with its kit cases from plugins/carriers/<name>/cases:
# once natively with the kit's 1,000 load/unload cycles, and once more under
# valgrind when it is installed, cases only (--cycles 0: valgrind's own
# mappings make the kit's mapping count unreliable), where any invalid
# access or definite leak fails the run. Exit 77 (skip) when no carrier
# plugin or no kit was built; 1 when any run fails.
set -u
build=${HUB_BUILDDIR:-$(pwd)}
src=${HUB_SRCDIR:-${srcdir:-.}}
HUB_FIXTURES=${HUB_FIXTURES:-$src/../shared/fixtures}
export HUB_FIXTURES
kit=$build/hub-plugin-kit
[ -x "$kit" ] || { echo "hub-plugin-kit not built: skipped"; exit 77; }
have_valgrind=
command -v valgrind >/dev/null 2>&1 && have_valgrind=yes
# valgrind cannot run an AddressSanitizer build.
[ -n "${HUB_SANITIZERS:-}" ] && have_valgrind=

ran=0
status=0
for name in ups fedex usps dhl; do
	so=$build/.libs/$name.so
	cases=$src/plugins/carriers/$name/cases
	[ -f "$so" ] || { echo "$name.so not built (configure --disable-$name?): skipped"; continue; }
	ran=$((ran + 1))
	echo "=== $name"
	# libtool's wrapper lets the uninstalled kit find libhubsdk.
	if ! "$build/libtool" --mode=execute "$kit" "$so" "$cases"; then
		echo "=== $name: FAILED"
		status=1
	fi
	if [ -n "$have_valgrind" ]; then
		echo "=== $name under valgrind"
		if ! "$build/libtool" --mode=execute valgrind -q --error-exitcode=99 \
			--leak-check=full --errors-for-leak-kinds=definite \
			"$kit" --cycles 0 "$so" "$cases"; then
			echo "=== $name under valgrind: FAILED"
			status=1
		fi
	fi
done
[ "$ran" -gt 0 ] || exit 77
exit $status
