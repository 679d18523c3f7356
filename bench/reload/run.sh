#!/usr/bin/env bash
# bench/reload/run.sh - hot reload under traffic (issue 3): 100 reloads of
# the Shopify plugin (POST /v1/plugins/shopify/reload, one after the other)
# while signed order webhooks flow at a fixed rate (2,000/s) into one hubd.
# The peer, in the same run and the same hubd: the same paced load without
# reloads. Figures: failed webhooks (target 0), failed reloads, and the p99
# latency of the webhooks in flight during a reload against the p99 of the
# run without reloads (target: under 5 ms added).
#
#   bench/reload/run.sh [--builddir DIR] [--store sqlite|postgresql|both]
#       [--rate 2000] [--seconds 25] [--connections 64] [--reloads 100]
#       [--gap-ms 150]
#
# hubpace (bench/reload/hubpace.c) is the paced client: latency counts from
# the moment each webhook was due, so time spent waiting behind a stalled
# server is not hidden. "During reloads" are the webhooks that fell due
# from 10 ms before a reload request to 10 ms after its answer; they are
# compared with the run without reloads and with the other webhooks of the
# same run (same database size, same moment).
. "$(dirname "$0")/../lib.sh"

STORES=both
RATE=2000
SECS=25
CONNS=64
RELOADS=100
GAP=150
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) BUILDDIR=$2; shift ;;
	--store) STORES=$2; shift ;;
	--rate) RATE=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	--connections) CONNS=$2; shift ;;
	--reloads) RELOADS=$2; shift ;;
	--gap-ms) GAP=$2; shift ;;
	*) die "unknown option $1 (see the header of $0)" ;;
	esac
	shift
done
case $STORES in
sqlite | postgresql) ;;
both) STORES="postgresql sqlite" ;;
*) die "--store sqlite|postgresql|both" ;;
esac

bench_setup
SECRET=bench-webhook-secret
machine_facts
echo "command: $0 --store ${STORES// /+} --rate $RATE --seconds $SECS --connections $CONNS --reloads $RELOADS --gap-ms $GAP"

field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# pace NAME FIRST [extra hubpace options]: one bounded paced run.
pace() {
	local name=$1 first=$2
	shift 2
	timeout $((SECS + 120)) "$BENCHBIN/reload/hubpace" --url "$HUB_URL" --fixtures "$FIXTURES" \
		--secret "$SECRET" --rate "$RATE" --seconds "$SECS" --connections "$CONNS" \
		--first "$first" --run "$name$(date +%s)" "$@" >"$BENCH_TMP/$name.out" ||
		die "hubpace failed ($name)"
	sed -n 's/^RESULT //p' "$BENCH_TMP/$name.out"
}

ROWS=()
for STORE in $STORES; do
	state=$BENCH_TMP/state-$STORE
	mkdir -p "$state"
	if [ "$STORE" = postgresql ]; then
		pg_start
		pg_facts
		url=$PG_URL
	else
		url=sqlite:$state/hub.db
		echo "sqlite: WAL, synchronous=FULL, file on $(findmnt -n -o FSTYPE -T "$state") ($(findmnt -n -o SOURCE -T "$state"))"
	fi
	port=$(free_port)
	hubd_config "$BENCH_TMP/hubd-$STORE.json" "$port" "$state" "$url" \
		"\"connectors\": [{\"name\": \"bench\", \"plugin\": \"shopify\", \"merchant\": \"bench\",
		  \"enabled\": false, \"config\": {\"shop\": \"bench.myshopify.com\", \"access_token\": \"shpat_bench\",
		  \"webhook_secret\": \"$SECRET\", \"api_base\": \"http://127.0.0.1:9\"}}]"
	hubd_start "$BENCH_TMP/hubd-$STORE.json" "$BENCH_TMP/hubd-$STORE.log" "$port" "$state"

	say "$STORE: peer, $RATE webhooks/s for ${SECS}s, no reloads"
	base=$(pace "base-$STORE" 0)
	echo "$STORE no-reloads $base"
	gen0=$(grep -c 'reloaded shopify' "$BENCH_TMP/hubd-$STORE.log" || true)
	say "$STORE: $RELOADS reloads of shopify while $RATE webhooks/s flow (${SECS}s)"
	rel=$(pace "reload-$STORE" $((RATE * SECS)) --reloads "$RELOADS" --token "$HUB_TOKEN" --plugin shopify \
		--reload-gap-ms "$GAP" --warmup-s 3)
	echo "$STORE reloads $rel"
	gen1=$(grep -c 'reloaded shopify' "$BENCH_TMP/hubd-$STORE.log" || true)

	stored=$(metric 'hub_webhooks_total{connector="bench",result="stored"}')
	ok=$(($(field ok "$base") + $(field ok "$rel")))
	echo "$STORE verify: acknowledged=$ok stored(metric)=$stored reloads logged by hubd=$((gen1 - gen0))" \
		"$([ "$stored" = "$ok" ] && echo '-> ok' || echo '-> MISMATCH')"
	hubd_stop "$HUB_PID"
	[ "$STORE" = postgresql ] && pg_stop

	failed=$(($(field failed "$rel") + $(field unanswered "$rel")))
	added=$(awk -v a="$(field in_reload_p99_ms "$rel")" -v b="$(field p99_ms "$base")" 'BEGIN {printf "%.2f", a - b}')
	added_same=$(awk -v a="$(field in_reload_p99_ms "$rel")" -v b="$(field outside_p99_ms "$rel")" 'BEGIN {printf "%.2f", a - b}')
	verdict=$(awk -v f="$failed" -v a="$added" -v r="$(field reloads "$rel")" -v want="$RELOADS" \
		-v rf="$(field reload_failed "$rel")" 'BEGIN {print (f == 0 && rf == 0 && r == want && a < 5) ? "met" : "missed"}')
	ROWS+=("| $STORE | $RATE ($(field rate_achieved "$base") / $(field rate_achieved "$rel")) | $(field reloads "$rel") ($(field reload_failed "$rel")) | $(field reload_p50_ms "$rel") / $(field reload_max_ms "$rel") | $failed | $(field p50_ms "$base") / $(field p99_ms "$base") | $(field in_reload_p50_ms "$rel") / $(field in_reload_p99_ms "$rel") ($(field in_reload_n "$rel")) | $(field outside_p99_ms "$rel") | $added ($added_same) | $verdict |")
done

echo
echo "| store | rate/s (achieved: peer / reloads) | reloads done (failed) | reload time p50 / max ms | failed webhooks | no reloads p50 / p99 ms | around reloads p50 / p99 ms (n) | same run, away from reloads p99 ms | p99 added ms vs no-reload run (vs same run) | target (0 failed, < 5 ms added) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
