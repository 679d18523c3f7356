#!/usr/bin/env bash
# bench/webhooks/profile.sh - where hubd's time goes per webhook: hubd runs
# under valgrind's callgrind (instruction counts, exact and repeatable,
# unlike timings on a shared machine) on SQLite while wrk posts N signed
# deliveries (each once, 8 connections); then the inclusive cost per
# webhook of the steps of the path, in instructions, and their share of the
# loop thread's. The deliveries come from bench/reload/hubpace at a slow
# fixed rate (50/s, 8 connections) so the run ends when they are answered.
#
#   bench/webhooks/profile.sh [--builddir DIR] [--count 3000] [--keep]
#
# --keep leaves the callgrind file (for callgrind_annotate or kcachegrind)
# in the printed directory.
. "$(dirname "$0")/../lib.sh"

COUNT=3000
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) BUILDDIR=$2; shift ;;
	--count) COUNT=$2; shift ;;
	--keep) BENCH_KEEP=1 ;;
	*) die "unknown option $1 (see the header of $0)" ;;
	esac
	shift
done
command -v valgrind >/dev/null || die "valgrind is not installed"
bench_setup
SECRET=bench-webhook-secret
machine_facts
echo "command: $0 --count $COUNT"

state=$BENCH_TMP/state
mkdir -p "$state"
port=$(free_port)
hubd_config "$BENCH_TMP/hubd.json" "$port" "$state" "sqlite:$state/hub.db" \
	"\"connectors\": [{\"name\": \"bench\", \"plugin\": \"shopify\", \"merchant\": \"bench\",
	  \"enabled\": false, \"config\": {\"shop\": \"bench.myshopify.com\", \"access_token\": \"shpat_bench\",
	  \"webhook_secret\": \"$SECRET\", \"api_base\": \"http://127.0.0.1:9\"}}]"
# hubd is a libtool wrapper: run the real binary under callgrind.
real=$BUILDDIR/.libs/hubd
[ -x "$BUILDDIR/.libs/lt-hubd" ] && real=$BUILDDIR/.libs/lt-hubd
HUB_URL=http://127.0.0.1:$port
LD_LIBRARY_PATH=$BUILDDIR/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
	valgrind --tool=callgrind --callgrind-out-file="$BENCH_TMP/callgrind.out" "$real" \
	--config "$BENCH_TMP/hubd.json" >"$BENCH_TMP/hubd.log" 2>&1 &
HUB_PID=$!
BENCH_PIDS+=("$HUB_PID")
for ((i = 0; i < 1200; i++)); do
	curl -fsS -o /dev/null --max-time 2 "$HUB_URL/readyz" 2>/dev/null && break
	kill -0 "$HUB_PID" 2>/dev/null || { cat "$BENCH_TMP/hubd.log" >&2; die "hubd exited"; }
	sleep 0.1
done
say "posting $COUNT deliveries to hubd under callgrind (50/s)"
timeout $((COUNT / 50 + 120)) "$BENCHBIN/reload/hubpace" --url "$HUB_URL" --fixtures "$FIXTURES" \
	--secret "$SECRET" --rate 50 --seconds $(((COUNT + 49) / 50)) --connections 8 \
	--run "prof$(date +%s)" | sed -n 's/^RESULT /hubpace: /p'
stored=$(metric 'hub_webhooks_total{connector="bench",result="stored"}')
echo "stored: $stored of $COUNT"
hubd_stop "$HUB_PID"

callgrind_annotate --inclusive=yes "$BENCH_TMP/callgrind.out" 2>/dev/null >"$BENCH_TMP/inclusive.txt"
# Inclusive Ir of the first line naming each function.
ir() {
	{ grep -m1 -E "[:/ ]$1( |$|\\[)" "$BENCH_TMP/inclusive.txt" || true; } | awk '{gsub(/,/, "", $1); print $1 + 0}'
}
loop=$(ir event_base_loop)
printf '\n| step (inclusive) | instructions per webhook | share of the loop thread |\n|---|---|---|\n'
for f in event_base_loop:"loop thread, all of it (HTTP parsing, callbacks, timers)" \
	generic_cb:"request handler (all below)" \
	hook:"webhook route" \
	hub_hmac_verify_base64:"signature check (HMAC-SHA256, constant-time compare)" \
	instance_read_webhook:"plugin reads the delivery (all below)" \
	json_loadb:"parse the 3 KB body (jansson)" \
	shopify_map_order:"map to the canonical order" \
	js_validate:"JSON Schema validation of the record" \
	store_unit_add_record:"serialize the record for the store" \
	on_notify:"commit completions and replies" \
	store_main:"store thread (other thread): SQL and commit" \
	sq_run:"  of which SQLite statements"; do
	name=${f%%:*}
	what=${f#*:}
	v=$(ir "$name")
	[ -n "$v" ] && [ "$v" != 0 ] || continue
	awk -v v="$v" -v n="$stored" -v l="$loop" -v name="$name" -v what="$what" 'BEGIN {
		printf "| %s (`%s`) | %.0fk | %s |\n", what, name, v / n / 1000,
			(name == "store_main" || name == "sq_run") ? "-" : sprintf("%.0f%%", 100 * v / l) }'
done
echo
echo "(json_loadb is called by the plugin; a webhook's jansson work also includes json_dumps and frees inside the steps above)"
