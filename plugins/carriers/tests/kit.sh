#!/bin/sh
# kit.sh - runs hub-plugin-kit on each carrier plugin that was built (ups,
# fedex, usps, dhl) with its kit cases from plugins/carriers/<name>/cases:
# once natively with the kit's 1,000 load/unload cycles, and once more under
# valgrind when it is installed (tests/harness/run-kit.sh says how). Exit 77
# (skip) when no carrier plugin or no kit was built; 1 when any run fails.
set -u
run=${HUB_SRCDIR:-${srcdir:-.}}/tests/harness/run-kit.sh
have_valgrind=
command -v valgrind >/dev/null 2>&1 && have_valgrind=yes
# valgrind cannot run an AddressSanitizer build.
[ -n "${HUB_SANITIZERS:-}" ] && have_valgrind=

ran=0
status=0
for name in ups fedex usps dhl; do
	cases=plugins/carriers/$name/cases
	echo "=== $name"
	sh "$run" "$name" "$cases"
	rc=$?
	[ "$rc" -eq 77 ] && continue
	ran=$((ran + 1))
	if [ "$rc" -ne 0 ]; then
		echo "=== $name: FAILED"
		status=1
	fi
	if [ -n "$have_valgrind" ]; then
		echo "=== $name under valgrind"
		if ! sh "$run" --valgrind "$name" "$cases"; then
			echo "=== $name under valgrind: FAILED"
			status=1
		fi
	fi
done
[ "$ran" -gt 0 ] || exit 77
exit $status
