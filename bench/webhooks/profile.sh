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
work=$(ir worker_main)
store=$(ir store_main)
# Each step is shown with the thread it runs on and its share of that
# thread's instructions: the loop, a webhook worker (plugins declaring
# HUB_CAP_WEBHOOKS_REENTRANT; none with http.webhook_workers 0) or the store.
printf '\n| step (inclusive) | thread | instructions per webhook | share of its thread |\n|---|---|---|---|\n'
for f in event_base_loop:loop:"loop thread, all of it (HTTP, callbacks, completions, timers)" \
	generic_cb:loop:"request handler" \
	hook:loop:"webhook route (lookup, request copy, hand-over)" \
	finish:loop:"after the plugin: answer or submit to the store" \
	on_notify:loop:"commit completions and replies" \
	store_unit_free:loop:"units freed after their commit" \
	worker_main:worker:"webhook worker, all of it" \
	hub_hmac_verify_base64:worker:"signature check (HMAC-SHA256, constant-time compare)" \
	hub_json_loadb:worker:"parse the 3 KB body (hub_json_loadb)" \
	shopify_map_order:worker:"map to the canonical order" \
	js_validate:worker:"JSON Schema validation of the record" \
	store_unit_add_record:worker:"check and serialise the record for the store" \
	json_delete:any:"jansson frees (all threads)" \
	store_main:store:"store thread: SQL and commit" \
	sq_run:store:"  of which SQLite statements"; do
	name=${f%%:*}
	rest=${f#*:}
	thread=${rest%%:*}
	what=${rest#*:}
	v=$(ir "$name")
	[ -n "$v" ] && [ "$v" != 0 ] || continue
	case $thread in
	loop) total=$loop ;;
	worker) total=${work:-0} ;;
	store) total=${store:-0} ;;
	*) total=0 ;;
	esac
	awk -v v="$v" -v n="$stored" -v t="$total" -v name="$name" -v what="$what" -v th="$thread" 'BEGIN {
		printf "| %s (`%s`) | %s | %.0fk | %s |\n", what, name, th, v / n / 1000,
			(t > 0 ? sprintf("%.0f%%", 100 * v / t) : "-") }'
done
echo
echo "(with a worker, the plugin's steps run there; with http.webhook_workers 0 they are part of the loop)"
