#!/usr/bin/env bash
# bench/scale/run.sh - 10,000 connectors in one hubd (issue 5): resident
# memory (VmRSS, and the peak VmHWM, from /proc/PID/status) and idle CPU
# (utime+stime from /proc/PID/stat over a quiet window). The peer, in the
# same run: the same hubd with no connectors.
#
# Two shapes of 10,000 Shopify connectors, each its own shop, token and
# webhook secret, declared in the config file:
#   paused  - "enabled": false: instances and schedules exist, nothing polls;
#   active  - enabled, poll_interval_s 3600, api_base pointing at shopstub
#             (bench/scale/shopstub.c, an empty order list on loopback): every
#             connector makes its first sync at start, then waits an hour.
# The idle window starts once the first syncs are over.
#
#   bench/scale/run.sh [--builddir DIR] [--connectors 10000] [--idle-seconds 60]
#       [--store sqlite|postgresql] [--shapes "paused active"]
#
# Target (issue 5): at most 100 MB RSS and at most 5% of one core at idle.
. "$(dirname "$0")/../lib.sh"

N=10000
IDLE=60
STORE=sqlite
SHAPES="paused active"
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) BUILDDIR=$2; shift ;;
	--connectors) N=$2; shift ;;
	--idle-seconds) IDLE=$2; shift ;;
	--store) STORE=$2; shift ;;
	--shapes) SHAPES=$2; shift ;;
	*) die "unknown option $1 (see the header of $0)" ;;
	esac
	shift
done
case $STORE in sqlite | postgresql) ;; *) die "--store sqlite|postgresql" ;; esac

bench_setup
machine_facts
echo "command: $0 --connectors $N --idle-seconds $IDLE --store $STORE --shapes \"$SHAPES\""
HZ=$(getconf CLK_TCK)
if [ "$STORE" = postgresql ]; then
	pg_start
	pg_facts
fi

# connectors_json COUNT SHAPE STUB_PORT: the "connectors" member.
connectors_json() {
	local n=$1 shape=$2 stub=$3
	awk -v n="$n" -v shape="$shape" -v stub="$stub" 'BEGIN {
		printf "\"connectors\": ["
		for (i = 0; i < n; i++) {
			printf "%s\n {\"name\": \"shop%05d\", \"plugin\": \"shopify\", \"merchant\": \"m%05d\", ", i ? "," : "", i, i
			if (shape == "paused")
				printf "\"enabled\": false, "
			else
				printf "\"poll_interval_s\": 3600, "
			printf "\"config\": {\"shop\": \"shop%05d.myshopify.com\", \"access_token\": \"shpat_%05d_bench\", ", i, i
			printf "\"webhook_secret\": \"whsec_%05d_bench\", \"api_base\": \"http://127.0.0.1:%d\"}}", i, stub
		}
		printf "]"
	}'
}

ROWS=()
# measure NAME COUNT SHAPE
measure() {
	local name=$1 n=$2 shape=$3 state=$BENCH_TMP/state-$1 port stub_port=9 stub_pid= t0 t1 i
	local url c0 c1 rss hwm req0=0 req1=0 started ready_s synced_s=-
	mkdir -p "$state"
	if [ "$STORE" = postgresql ]; then
		# a fresh database per measurement
		"$PG_BINDIR/psql" -q "${PG_URL/postgresql:\/\/\/postgres/postgresql:///postgres}" \
			-c "DROP DATABASE IF EXISTS scale_$name" -c "CREATE DATABASE scale_$name" >/dev/null
		url=${PG_URL/postgresql:\/\/\/postgres/postgresql:///scale_$name}
	else
		url=sqlite:$state/hub.db
	fi
	if [ "$shape" = active ]; then
		stub_port=$(free_port)
		"$BENCHBIN/scale/shopstub" --port "$stub_port" --max-seconds $((IDLE + 900)) 2>"$BENCH_TMP/stub-$name.log" &
		stub_pid=$!
		BENCH_PIDS+=("$stub_pid")
	fi
	port=$(free_port)
	hubd_config "$BENCH_TMP/$name.json" "$port" "$state" "$url" "$(connectors_json "$n" "$shape" "$stub_port")"
	started=$(date +%s.%N)
	HUBD_START_TIMEOUT_S=600 hubd_start "$BENCH_TMP/$name.json" "$BENCH_TMP/$name.log" "$port" "$state"
	ready_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
	if [ "$shape" = active ]; then
		# first syncs: wait (bounded) until every connector has asked once
		for ((i = 0; i < 6000; i++)); do
			req0=$(curl -fsS --max-time 5 "http://127.0.0.1:$stub_port/stats" | sed 's/[^0-9]//g')
			[ "$req0" -ge "$n" ] && break
			sleep 0.1
		done
		synced_s=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
		[ "$req0" -ge "$n" ] || echo "$name: only $req0 of $n first syncs after 600 s" >&2
	fi
	nap 10 # let start-up work (store writes, timers) settle
	[ "$shape" = active ] && req0=$(curl -fsS --max-time 5 "http://127.0.0.1:$stub_port/stats" | sed 's/[^0-9]//g')
	c0=$(cpu_ticks "$HUB_PID")
	t0=$(date +%s.%N)
	nap "$IDLE"
	c1=$(cpu_ticks "$HUB_PID")
	t1=$(date +%s.%N)
	rss=$(rss_kb "$HUB_PID")
	hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$HUB_PID/status")
	[ "$shape" = active ] && req1=$(curl -fsS --max-time 5 "http://127.0.0.1:$stub_port/stats" | sed 's/[^0-9]//g')
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
		"upstream_requests_in_window=$((req1 - req0))"
	local verdict=-
	if [ "$n" -gt 0 ]; then
		verdict=$(awk -v m="$mb" -v c="$cpu_pct" 'BEGIN {print (m <= 100 && c <= 5) ? "met" : "missed"}')
	fi
	ROWS+=("| $STORE | $n | $shape | $ready_s | $synced_s | $mb | $hwm_mb | $cpu_pct | $((req1 - req0)) | $verdict |")
}

say "peer: no connectors (idle ${IDLE}s)"
measure none 0 paused
for shape in $SHAPES; do
	say "$N connectors, $shape (idle ${IDLE}s)"
	measure "$shape" "$N" "$shape"
done

echo
echo "| store | connectors | shape | ready after s | first syncs done after s | RSS MB | peak RSS MB | idle CPU % of a core | upstream requests in idle window | target (<= 100 MB, <= 5%) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
