#!/bin/sh
# test.sh [--sanitizers] - installs the packages, builds the hub and runs
# the whole test suite (make check). PostgreSQL and Redis are started by the
# tests themselves, on loopback, and stopped afterwards. The last line is
# "N passed, N failed"; the exit status is non-zero when anything failed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
if [ "${1:-}" = "--sanitizers" ]; then
	build=$top/build-sanitizers
	# Same scenarios, fewer shops: ASan makes every process several times slower.
	HUB_E2E_SHOPS=${HUB_E2E_SHOPS:-200}
	export HUB_E2E_SHOPS
	"$top/scripts/build.sh" "$build" --enable-sanitizers
else
	build=$top/build
	"$top/scripts/build.sh" "$build"
fi
cd "$build"
status=0
make -j"$(nproc)" check HUB_FIXTURES="${HUB_FIXTURES:-$top/../shared/fixtures}" >check.out 2>&1 || status=$?
grep -E '^(PASS|FAIL|XFAIL|XPASS|ERROR|SKIP):' check.out || true
if [ "$status" -ne 0 ]; then
	# Show the logs of what failed, so CI output says why.
	for trs in $(grep -rl ':test-result: \(FAIL\|ERROR\|XPASS\)' --include='*.trs' . || true); do
		echo "==== ${trs%.trs}.log"
		tail -n 60 "${trs%.trs}.log"
	done
	tail -n 20 check.out
fi
"$top/scripts/summary.sh" "$build"
[ "$status" -eq 0 ]
