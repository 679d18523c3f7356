#!/usr/bin/env bash
# bench/webhooks/run.sh - durable webhooks per second and their latency
# (issue 6): wrk on loopback posts signed Shopify order webhooks of about
# 3 KB, each with its own order id and webhook id, to one hubd, on SQLite
# and on PostgreSQL (fsync on). In the same run, the ceiling and the peer:
# the same wrk against GET /healthz of the same hubd (no store, no body),
# and the same signed payloads to a route that answers 404 (body read,
# nothing verified or stored). Afterwards it checks that the store holds
# exactly what was acknowledged.
#
#   bench/webhooks/run.sh [--builddir DIR] [--store sqlite|postgresql|both]
#       [--seconds N] [--connections C] [--threads T] [--budget R] [--perf]
#       [--workers W] [--store-connections N] [--pg-as-installed]
#
# --seconds: length of the durable run (the ceiling runs take half each);
# --budget: deliveries generated per second of run (each is sent at most
# once: the run is bounded in count as well as in time; if a wrk thread runs
# out, the RESULT line says so); --perf: record a CPU profile of hubd during
# the durable run (perf, cpu-clock) and print where the time goes;
# --workers: hubd's http.webhook_workers (default: hubd's own choice, one
# on a machine with two or more CPUs); --store-connections: hubd's
# store_connections (PostgreSQL only; default: hubd's, 2);
# --pg-as-installed: PostgreSQL with its stock settings on a fresh cluster
# (default: the settings
# docs/configuration.md recommends for hubd, and a warm-up that leaves the
# cluster in the steady state of a running server; fsync, synchronous_commit
# and full_page_writes are on either way).
# Target (issue 6): >= 15,000 webhooks/s with p99 <= 10 ms on this machine,
# load generator included.
. "$(dirname "$0")/../lib.sh"

STORES=both
SECONDS_RUN=20
CONNS=48
THREADS=1
BUDGET=24000
PERF=0
WORKERS=
STORE_CONNS=
PG_TUNED=1
PG_TUNED_CONF='shared_buffers = 2GB
wal_buffers = 64MB
max_wal_size = 16GB
min_wal_size = 2GB
checkpoint_timeout = 30min'
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) BUILDDIR=$2; shift ;;
	--store) STORES=$2; shift ;;
	--seconds) SECONDS_RUN=$2; shift ;;
	--connections) CONNS=$2; shift ;;
	--threads) THREADS=$2; shift ;;
	--budget) BUDGET=$2; shift ;;
	--perf) PERF=1 ;;
	--workers) WORKERS=$2; shift ;;
	--store-connections) STORE_CONNS=$2; shift ;;
	--pg-as-installed) PG_TUNED=0 ;;
	*) die "unknown option $1 (see the header of $0)" ;;
	esac
	shift
done
case $STORES in
sqlite | postgresql) ;;
both) STORES="sqlite postgresql" ;;
*) die "--store sqlite|postgresql|both" ;;
esac
command -v wrk >/dev/null || die "wrk is not installed"

bench_setup
SECRET=bench-webhook-secret
LUA=$BENCH_SRCDIR/webhooks/post.lua
COUNT=$((SECONDS_RUN * BUDGET))
CEIL_S=$(((SECONDS_RUN + 1) / 2))

machine_facts
echo "command: $0 --store ${STORES// /+} --seconds $SECONDS_RUN --connections $CONNS --threads $THREADS --budget $BUDGET${WORKERS:+ --workers $WORKERS}${STORE_CONNS:+ --store-connections $STORE_CONNS}$([ "$PG_TUNED" = 0 ] && echo " --pg-as-installed")"
say "generating $COUNT signed deliveries"
"$BENCHBIN/webhooks/hookgen" --fixtures "$FIXTURES" --secret "$SECRET" --count "$COUNT" \
	--parts "$THREADS" --out "$BENCH_TMP/req" --run "$(date +%s)"

# Machine CPU from /proc/stat: "busy iowait idle steal" in ticks
# (busy: user, nice, system, irq, softirq).
sys_cpu() {
	awk '/^cpu / {print $2 + $3 + $4 + $7 + $8, $6, $5, $9}' /proc/stat
}

# CPU ticks of hubd: "loop-thread other-threads" (the others: the webhook
# worker, the store thread and SQLite's checkpointer).
hub_threads() {
	local t main=$1 loop=0 other=0 v
	for t in /proc/"$main"/task/*; do
		v=$(awk '{print $14 + $15}' "$t/stat" 2>/dev/null || echo 0)
		if [ "${t##*/}" = "$main" ]; then loop=$v; else other=$((other + v)); fi
	done
	echo "$loop $other"
}

# wrk_start NAME URL SECONDS [env...]: starts wrk in the background
# (bounded by -d and by timeout); WRK_JOB is its job's PID.
wrk_start() {
	local name=$1 url=$2 secs=$3
	shift 3
	env "$@" timeout $((secs + 120)) wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 10s -s "$LUA" "$url" \
		>"$BENCH_TMP/$name.wrk" 2>&1 &
	WRK_JOB=$!
	BENCH_PIDS+=("$WRK_JOB")
}

# wrk_wait NAME: waits for it; WRK_RESULT is its RESULT line (fields).
wrk_wait() {
	local name=$1
	wait "$WRK_JOB" || { cat "$BENCH_TMP/$name.wrk" >&2; die "wrk failed ($name)"; }
	forget_pid "$WRK_JOB"
	WRK_RESULT=$(sed -n 's/^RESULT //p' "$BENCH_TMP/$name.wrk")
}

wrk_run() {
	wrk_start "$@"
	wrk_wait "$1"
}

field() { # field NAME LINE
	echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"
}

fmt_ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us / 1000}'; }

SUMMARY=()
for store in $STORES; do
	state=$BENCH_TMP/state-$store
	mkdir -p "$state"
	if [ "$store" = postgresql ]; then
		# A server configured for a write-heavy hub and in its steady
		# state (docs/configuration.md, "PostgreSQL for hubd"): room for
		# the table in shared_buffers, no checkpoint inside the run,
		# WAL segments recycled rather than created. --pg-as-installed
		# measures a fresh cluster with the stock settings instead.
		if [ "$PG_TUNED" = 1 ]; then
			HUB_PG_CONF="$PG_TUNED_CONF${HUB_PG_CONF:+
$HUB_PG_CONF}" pg_start
			pg_facts
			echo "postgresql settings: $(printf '%s\n' "$PG_TUNED_CONF" ${HUB_PG_CONF:+"$HUB_PG_CONF"} | paste -sd ';' | sed 's/;/; /g')"
			pg_warm 2000
		else
			pg_start
			pg_facts
		fi
		url=$PG_URL
	else
		url=sqlite:$state/hub.db
		echo "sqlite: WAL, synchronous=FULL (hubd's setting), file on $(findmnt -n -o FSTYPE -T "$state") ($(findmnt -n -o SOURCE -T "$state"))"
	fi
	port=$(free_port)
	# One Shopify connector, declared paused: webhooks are accepted while
	# paused, and the sync hint they raise starts no polling.
	hubd_config "$BENCH_TMP/hubd-$store.json" "$port" "$state" "$url" \
		"${STORE_CONNS:+\"store_connections\": $STORE_CONNS, }\"connectors\": [{\"name\": \"bench\", \"plugin\": \"shopify\", \"merchant\": \"bench\",
		  \"enabled\": false, \"config\": {\"shop\": \"bench.myshopify.com\", \"access_token\": \"shpat_bench\",
		  \"webhook_secret\": \"$SECRET\", \"api_base\": \"http://127.0.0.1:9\"}}]"
	if [ -n "$WORKERS" ]; then
		sed -i "s/\"burst\": 10000000}/\"burst\": 10000000, \"webhook_workers\": $WORKERS}/" \
			"$BENCH_TMP/hubd-$store.json"
		grep -q "\"webhook_workers\": $WORKERS" "$BENCH_TMP/hubd-$store.json" ||
			die "--workers: could not set http.webhook_workers"
	fi
	hubd_start "$BENCH_TMP/hubd-$store.json" "$BENCH_TMP/hubd-$store.log" "$port" "$state"
	say "$store: ceiling GET /healthz (${CEIL_S}s)"
	wrk_run healthz "$HUB_URL/healthz" "$CEIL_S"
	ceil=$WRK_RESULT
	echo "$store healthz $ceil"
	say "$store: peer, same payloads to a 404 route (${CEIL_S}s)"
	wrk_run notfound "$HUB_URL/hooks/no_such_connector" "$CEIL_S" HOOK_PREFIX="$BENCH_TMP/req" HOOK_CYCLE=1
	peer=$WRK_RESULT
	echo "$store notfound $peer"

	say "$store: durable webhooks (${SECONDS_RUN}s, $CONNS connections)"
	wrk_start webhooks "$HUB_URL/hooks/bench" "$SECONDS_RUN" HOOK_PREFIX="$BENCH_TMP/req"
	# The CPU window starts once deliveries flow (wrk first loads its
	# share of them) and ends before wrk stops.
	for ((i = 0; i < 1200; i++)); do
		[ "$(metric 'hub_webhooks_total{connector="bench",result="stored"}')" != 0 ] && break
		sleep 0.1
	done
	wrk_pid=$(pgrep -P "$WRK_JOB" -x wrk || true)
	window=$((SECONDS_RUN * 6 / 10))
	[ "$window" -ge 1 ] || window=1
	if [ "$PERF" = 1 ]; then
		timeout $((window + 30)) perf record -q -e cpu-clock -F 499 --call-graph dwarf,16384 \
			-p "$HUB_PID" -o "$BENCH_TMP/perf-$store.data" -- sleep "$window" 2>/dev/null &
		perf_job=$!
	fi
	c0=$(sys_cpu)
	h0=$(hub_threads "$HUB_PID")
	k0=$(cpu_ticks "$wrk_pid" 2>/dev/null || echo 0)
	g0=$(pg_ticks)
	s0=$(metric 'hub_webhooks_total{connector="bench",result="stored"}')
	STORE_KEYS="hub_store_batches_total hub_store_items_total hub_store_batch_seconds_total hub_store_batch_seconds_max hub_store_syncs_total hub_store_sync_seconds_total hub_store_sync_seconds_max hub_store_batches_overlapped_total"
	read -r sb0 si0 ss0 _ sy0 syt0 _ so0 <<<"$(metrics $STORE_KEYS)"
	nap "$window"
	c1=$(sys_cpu)
	h1=$(hub_threads "$HUB_PID")
	k1=$(cpu_ticks "$wrk_pid" 2>/dev/null || echo 0)
	g1=$(pg_ticks)
	read -r sb1 si1 ss1 smax sy1 syt1 symax so1 <<<"$(metrics $STORE_KEYS)"
	s1=$(metric 'hub_webhooks_total{connector="bench",result="stored"}')
	wrk_wait webhooks
	run=$WRK_RESULT
	# (a bare "wait" would wait for hubd as well)
	[ "$PERF" = 1 ] && { wait "$perf_job" || true; }
	echo "$store webhooks $run"

	# What was acknowledged, what the store says, what hubd counted.
	req=$(field requests "$run")
	non2xx=$(field non2xx "$run")
	acked=$((req - non2xx))
	sleep 1 # the last commits' callbacks
	stored=$(metric 'hub_webhooks_total{connector="bench",result="stored"}')
	dup=$(metric 'hub_webhooks_total{connector="bench",result="duplicate"}')
	failed=$(metric 'hub_webhooks_total{connector="bench",result="failed"}')
	unavail=$(metric 'hub_webhooks_total{connector="bench",result="unavailable"}')
	# Counted in the database itself (hub_store_orders is PostgreSQL's
	# estimate there).
	if [ "$store" = postgresql ]; then
		rows=$(pg_sql "SELECT COUNT(*) FROM orders")
	else
		rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM orders").fetchone()[0])' "$state/hub.db")
	fi
	listed=$(api GET "/v1/orders?connector=bench&limit=1" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d.get("orders", [])))')
	verdict_store=ok
	# Requests still in flight when wrk stops are committed but never
	# acknowledged: at most one per connection.
	if [ "$rows" != "$stored" ] || [ "$stored" -lt "$acked" ] || [ "$stored" -gt $((acked + CONNS)) ] ||
		[ "$dup" != 0 ] || [ "$failed" != 0 ] || [ "$unavail" != 0 ] || [ "$listed" != 1 ]; then
		verdict_store=MISMATCH
	fi
	echo "$store verify: acknowledged=$acked stored(metric)=$stored rows(SELECT COUNT(*))=$rows" \
		"in-flight-at-stop=$((stored - acked)) duplicate=$dup failed=$failed unavailable=$unavail -> $verdict_store"
	# Where the machine's CPU went in the window (100% = one core): hubd's
	# loop thread, its other threads (the store), wrk, and everything else
	# (kernel threads, softirq not charged to a process, other processes),
	# and PostgreSQL's processes when it is the store.
	read -r b0 w0 i0 t0 <<<"$c0"
	read -r b1 w1 i1 t1 <<<"$c1"
	read -r l0 o0 <<<"$h0"
	read -r l1 o1 <<<"$h1"
	awk -v b=$((b1 - b0)) -v w=$((w1 - w0)) -v i=$((i1 - i0)) -v t=$((t1 - t0)) -v l=$((l1 - l0)) \
		-v o=$((o1 - o0)) -v k=$((k1 - k0)) -v g=$((g1 - g0)) -v n=$((s1 - s0)) -v hz="$(getconf CLK_TCK)" -v s="$window" \
		-v st_name="$store" -v load="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
		f = 100 / hz / s
		printf "%s cpu over %ds (%% of one core; %d cores): hubd loop thread %.0f%% (%.0f us/webhook),", st_name, s, (b + w + i + t) * f / 100 + 0.5, l * f, l / hz / n * 1e6
		printf " hubd other threads (worker, store) %.0f%% (%.0f us/webhook),", o * f, o / hz / n * 1e6
		if (g) printf " postgres %.0f%% (%.0f us/webhook),", g * f, g / hz / n * 1e6
		printf " wrk %.0f%%, everything else %.0f%%, iowait %.0f%%, idle %.0f%%, steal %.0f%%;",
			k * f, (b - l - o - k - g) * f, w * f, i * f, t * f
		printf " %.0f webhooks/s in the window; load average %s\n", n / s, load }'
	# What the store thread did in the window (its own counters).
	awk -v b=$((sb1 - sb0)) -v i=$((si1 - si0)) -v t="$ss0" -v u="$ss1" -v m="$smax" -v st_name="$store" \
		-v y=$((sy1 - sy0)) -v yt="$syt0" -v yu="$syt1" -v ym="$symax" -v o=$((${so1:-0} - ${so0:-0})) 'BEGIN {
		if (b > 0) printf "%s store over the window: %d batches, %.1f items per batch, %.2f ms per batch, longest %.1f ms",
			st_name, b, i / b, (u - t) * 1000 / b, m * 1000
		if (o > 0) printf " (%d ran beside another on the second connection)", o
		if (y > 0) printf "; the store synced the WAL %d times, %.2f ms each, longest %.1f ms", y, (yu - yt) * 1000 / y, ym * 1000
		if (b > 0) printf "\n" }'
	rate=$(awk -v n="$acked" -v d="$(field duration_us "$run")" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
	p50=$(fmt_ms "$(field p50_us "$run")")
	p99=$(fmt_ms "$(field p99_us "$run")")
	verdict=$(awk -v r="$rate" -v p="$p99" 'BEGIN {print (r >= 15000 && p <= 10) ? "met" : "missed"}')
	ceil_rate=$(awk -v n="$(field requests "$ceil")" -v d="$(field duration_us "$ceil")" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
	peer_rate=$(awk -v n="$(field requests "$peer")" -v d="$(field duration_us "$peer")" 'BEGIN {printf "%.0f", n / (d / 1e6)}')
	SUMMARY+=("| $store | $CONNS | $rate | $p50 | $p99 | $(fmt_ms "$(field max_us "$run")") | $ceil_rate (p99 $(fmt_ms "$(field p99_us "$ceil")")) | $peer_rate (p99 $(fmt_ms "$(field p99_us "$peer")")) | $verdict_store | $verdict |")
	if [ "$(field exhausted_threads "$run")" != 0 ]; then
		echo "$store: a wrk thread ran out of deliveries; the rate is a lower bound (raise --budget)"
	fi
	if [ "$PERF" = 1 ]; then
		say "$store: where hubd's CPU went (perf, self time by library, then top symbols)"
		perf report -i "$BENCH_TMP/perf-$store.data" --no-children --sort dso --stdio -g none 2>/dev/null |
			grep '%' | head -12
		perf report -i "$BENCH_TMP/perf-$store.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
			grep '%' | head -25
	fi
	hubd_stop "$HUB_PID"
	[ "$store" = postgresql ] && pg_stop
done

echo
echo "| store | connections | durable webhooks/s | p50 ms | p99 ms | max ms | ceiling GET /healthz req/s | peer 404 same payload req/s | store check | target (>= 15,000/s, p99 <= 10 ms) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${SUMMARY[@]}"
