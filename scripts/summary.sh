#!/bin/sh
# summary.sh BUILD_DIR - counts test cases after "make check": cmocka
# programs count each case (from their PASSED/FAILED lines), other tests
# count one each. Prints "N passed, N failed" as its last line.
set -eu
cd "$1"
passed=0
failed=0
for trs in $(find . -name '*.trs' | sort); do
	log=${trs%.trs}.log
	res=$(sed -n 's/^:test-result: //p' "$trs" | head -n 1)
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" 2>/dev/null | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" 2>/dev/null | awk '{s+=$1} END {print s+0}')
	case "$res" in
	PASS|XFAIL) passed=$((passed + (p > 0 ? p : 1))) ;;
	SKIP) ;;
	*) passed=$((passed + p)); failed=$((failed + (f > 0 ? f : 1))) ;;
	esac
done
echo "$passed passed, $failed failed"
