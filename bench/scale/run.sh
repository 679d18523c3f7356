#!/usr/bin/env bash
# bench/scale/run.sh - 10,000 connectors in one hubd (issue 5): resident
# memory (VmRSS, and the peak VmHWM, from /proc/PID/status) and idle CPU
# (utime+stime from /proc/PID/stat over a quiet window). The peer, in the
# same run: the same hubd with no connectors.
#
# Shapes of 10,000 Shopify connectors, each its own shop, token and webhook
# secret, declared in the config file:
#   paused  - "enabled": false: instances and schedules exist, nothing polls;
#   active  - enabled, poll_interval_s 3600, api_base pointing at shopstub
#             (bench/scale/shopstub.c, an empty order list on loopback): every
#             connector makes its first sync, spread over the first
#             --spread-seconds (sync.start_spread_s; hubd's default is 900),
#             then waits an hour;
#   burst   - active with sync.start_spread_s 0: all first syncs due at once,
#             paced only by outbound.max_in_flight (the worst case);
#   restart - active, measured on its second start on the same state (the
#             connectors are then also stored, with cursors and tokens: what
#             every restart after the first looks like).
# Each shop is its own host (shopNNNNN.localhost, loopback as libcurl
# resolves it), so every connector has its own connection, as real shops
# do; --one-host puts them all behind 127.0.0.1 (one host, like SP-API).
# The idle window starts once the first syncs are over.
#
#   bench/scale/run.sh [--builddir DIR] [--connectors 10000] [--idle-seconds 60]
#       [--store sqlite|postgresql] [--shapes "paused active burst restart"]
#       [--spread-seconds 60] [--one-host]
#
# Target (issue 5): at most 100 MB RSS and at most 5% of one core at idle.
. "$(dirname "$0")/../lib.sh"

N=10000
IDLE=60
STORE=sqlite
SHAPES="paused active burst restart"
SPREAD=60
ONE_HOST=0
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) BUILDDIR=$2; shift ;;
	--connectors) N=$2; shift ;;
	--idle-seconds) IDLE=$2; shift ;;
	--store) STORE=$2; shift ;;
	--shapes) SHAPES=$2; shift ;;
	--spread-seconds) SPREAD=$2; shift ;;
	--one-host) ONE_HOST=1; shift; continue ;;
	*) die "unknown option $1 (see the header of $0)" ;;
	esac
	shift
done
case $STORE in sqlite | postgresql) ;; *) die "--store sqlite|postgresql" ;; esac

bench_setup
machine_facts
echo "command: $0 --connectors $N --idle-seconds $IDLE --store $STORE --shapes \"$SHAPES\"" \
	"--spread-seconds $SPREAD$([ "$ONE_HOST" = 1 ] && echo " --one-host")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
HZ=$(getconf CLK_TCK)
if [ "$STORE" = postgresql ]; then
	pg_start
	pg_facts
fi

# connectors_json COUNT SHAPE STUB_PORT: the "sync" and "connectors" members.
connectors_json() {
	local n=$1 shape=$2 stub=$3 spread=$SPREAD
	[ "$shape" = burst ] && spread=0
	awk -v n="$n" -v shape="$shape" -v stub="$stub" -v spread="$spread" -v one="$ONE_HOST" 'BEGIN {
		printf "\"sync\": {\"start_spread_s\": %d},\n\"connectors\": [", spread
		for (i = 0; i < n; i++) {
			printf "%s\n {\"name\": \"shop%05d\", \"plugin\": \"shopify\", \"merchant\": \"m%05d\", ", i ? "," : "", i, i
			if (shape == "paused")
				printf "\"enabled\": false, "
			else
				printf "\"poll_interval_s\": 3600, "
			printf "\"config\": {\"shop\": \"shop%05d.myshopify.com\", \"access_token\": \"shpat_%05d_bench\", ", i, i
			if (one)
				printf "\"webhook_secret\": \"whsec_%05d_bench\", \"api_base\": \"http://127.0.0.1:%d\"}}", i, stub
			else
				printf "\"webhook_secret\": \"whsec_%05d_bench\", \"api_base\": \"http://shop%05d.localhost:%d\"}}", i, i, stub
		}
		printf "]"
	}'
}

# stub_requests PORT: requests shopstub has answered.
stub_requests() {
	curl -fsS --max-time 5 "http://127.0.0.1:$1/stats" | sed 's/[^0-9]//g'
}

# wait_first_syncs PORT FROM N: waits (bounded) until the stub counted N
# more requests than FROM; prints the count.
wait_first_syncs() {
	local port=$1 from=$2 n=$3 got i limit=$((SPREAD + 600))
	for ((i = 0; i < limit * 10; i++)); do
		got=$(stub_requests "$port")
		[ $((got - from)) -ge "$n" ] && break
		sleep 0.1
	done
	[ $((got - from)) -ge "$n" ] || echo "only $((got - from)) of $n first syncs after $limit s" >&2
	echo "$got"
}

ROWS=()
# measure NAME COUNT SHAPE
measure() {
	local name=$1 n=$2 shape=$3 state=$BENCH_TMP/state-$1 port stub_port=9 stub_pid= t0 t1
	local url c0 c1 rss hwm req0=0 req1=0 started ready_s synced_s=- peak=- fds
	mkdir -p "$state"
	if [ "$STORE" = postgresql ]; then
		# a fresh database per measurement
		"$PG_BINDIR/psql" -q "${PG_URL/postgresql:\/\/\/postgres/postgresql:///postgres}" \
			-c "DROP DATABASE IF EXISTS scale_$name" -c "CREATE DATABASE scale_$name" >/dev/null
		url=${PG_URL/postgresql:\/\/\/postgres/postgresql:///scale_$name}
	else
		url=sqlite:$state/hub.db
	fi
	if [ "$shape" != paused ]; then
		stub_port=$(free_port)
		"$BENCHBIN/scale/shopstub" --port "$stub_port" --max-seconds $((IDLE + SPREAD + 1800)) \
			2>"$BENCH_TMP/stub-$name.log" &
		stub_pid=$!
		BENCH_PIDS+=("$stub_pid")
	fi
	port=$(free_port)
	hubd_config "$BENCH_TMP/$name.json" "$port" "$state" "$url" "$(connectors_json "$n" "$shape" "$stub_port")"
	if [ "$shape" = restart ]; then
		# the first start fills the store (connectors, cursors); not measured
		HUBD_START_TIMEOUT_S=600 hubd_start "$BENCH_TMP/$name.json" "$BENCH_TMP/$name-first.log" "$port" "$state"
		req0=$(wait_first_syncs "$stub_port" 0 "$n")
		nap 5
		hubd_stop "$HUB_PID"
	fi
	started=$(date +%s.%N)
	HUBD_START_TIMEOUT_S=600 hubd_start "$BENCH_TMP/$name.json" "$BENCH_TMP/$name.log" "$port" "$state"
	ready_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
	if [ "$shape" != paused ]; then
		# first syncs: wait (bounded) until every connector has asked once
		req0=$(wait_first_syncs "$stub_port" "$req0" "$n")
		synced_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
	fi
	nap 10 # let start-up work (store writes, timers) settle
	[ "$shape" != paused ] && req0=$(stub_requests "$stub_port")
	c0=$(cpu_ticks "$HUB_PID")
	t0=$(date +%s.%N)
	nap "$IDLE"
	c1=$(cpu_ticks "$HUB_PID")
	t1=$(date +%s.%N)
	rss=$(rss_kb "$HUB_PID")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$HUB_PID/status")
	fds=$(ls "/proc/$HUB_PID/fd" | wc -l)
	if [ "$shape" != paused ]; then
		req1=$(stub_requests "$stub_port")
		peak=$(metric hub_upstream_in_flight_peak)
	fi
	local listed
	listed=$(api GET "/v1/connectors" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["connectors"]))')
	hubd_stop "$HUB_PID"
	if [ -n "$stub_pid" ]; then
		stop_pid "$stub_pid" 10 || true
		forget_pid "$stub_pid"
	fi
	local cpu_pct mb hwm_mb
	cpu_pct=$(awk -v c=$((c1 - c0)) -v hz="$HZ" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", 100 * c / hz / (b - a)}')
	mb=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
	hwm_mb=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
	echo "$name: connectors=$n (listed $listed) shape=$shape ready_after_s=$ready_s first_syncs_done_after_s=$synced_s" \
		"rss_mb=$mb peak_rss_mb=$hwm_mb idle_cpu_pct=$cpu_pct ($((c1 - c0)) ticks in ${IDLE}s)" \
		"upstream_requests_in_window=$((req1 - req0)) in_flight_peak=$peak open_fds=$fds" \
		"load=$(cut -d' ' -f1-3 /proc/loadavg)"
	local verdict=-
	if [ "$n" -gt 0 ]; then
		verdict=$(awk -v m="$mb" -v c="$cpu_pct" 'BEGIN {print (m <= 100 && c <= 5) ? "met" : "missed"}')
	fi
	ROWS+=("| $STORE | $n | $shape | $ready_s | $synced_s | $mb | $hwm_mb | $cpu_pct | $((req1 - req0)) | $peak | $fds | $verdict |")
}

say "peer: no connectors (idle ${IDLE}s)"
measure none 0 paused
for shape in $SHAPES; do
	case $shape in paused | active | burst | restart) ;; *) die "unknown shape $shape" ;; esac
	say "$N connectors, $shape (idle ${IDLE}s)"
	measure "$shape" "$N" "$shape"
done

echo
echo "| store | connectors | shape | ready after s | first syncs done after s | RSS MB | peak RSS MB | idle CPU % of a core | upstream requests in idle window | in flight peak | open fds | target (<= 100 MB, <= 5%) |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
