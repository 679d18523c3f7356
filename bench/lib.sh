# bench/lib.sh - sourced by the bench scripts (bash): finding the build,
# starting and stopping hubd and a throwaway PostgreSQL by PID, reading
# /metrics, and the machine facts every figure is recorded with. Everything
# listens on loopback; every wait is bounded; only processes started here
# are ever stopped (by their PID), and an EXIT trap stops what is left.

set -euo pipefail

BENCH_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_SRCDIR=$(cd "$BENCH_SRCDIR/.." && pwd)
BUILDDIR=${HUB_BUILDDIR:-}
FIXTURES=${HUB_FIXTURES:-}
BENCH_TMP=
BENCH_PIDS=()
PG_DIR=
PG_URL=

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
say() { echo "== $*" >&2; }

# Finds the build directory (--builddir, $HUB_BUILDDIR, or the current
# directory when it holds hubd) and the fixtures, and builds what the
# benches run ("make bench"). Sets HUBD, PLUGINS, BENCHBIN.
bench_setup() {
	if [ -z "$BUILDDIR" ]; then
		if [ -x ./hubd ]; then BUILDDIR=$PWD; else
			die "no build directory: pass --builddir DIR (an out-of-tree build of $TOP_SRCDIR)"
		fi
	fi
	BUILDDIR=$(cd "$BUILDDIR" && pwd)
	[ -f "$BUILDDIR/Makefile" ] || die "$BUILDDIR has no Makefile: run $TOP_SRCDIR/configure there first"
	say "building hubd, plugins and bench tools in $BUILDDIR (make bench)"
	make -s -C "$BUILDDIR" bench >/dev/null
	HUBD=$BUILDDIR/hubd
	PLUGINS=$BUILDDIR/.libs
	BENCHBIN=$BUILDDIR/bench
	if [ -z "$FIXTURES" ]; then
		FIXTURES=$(sed -n 's/^HUB_FIXTURES_DIR = //p' "$BUILDDIR/Makefile" | head -1)
		FIXTURES=${FIXTURES//\$(abs_top_srcdir)/$TOP_SRCDIR}
	fi
	[ -f "$FIXTURES/shopify/python_api_test_fixtures_order.json" ] ||
		die "no fixtures in '$FIXTURES': set HUB_FIXTURES"
	BENCH_TMP=$(mktemp -d /tmp/hubbench.XXXXXX)
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# Stops every process this script started (by PID), PostgreSQL, and removes
# the temporary directory unless BENCH_KEEP=1.
bench_cleanup() {
	local pid
	for pid in "${BENCH_PIDS[@]}"; do
		stop_pid "$pid" 10
	done
	BENCH_PIDS=()
	pg_stop
	if [ -n "$BENCH_TMP" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
		rm -rf "$BENCH_TMP"
	elif [ -n "$BENCH_TMP" ]; then
		echo "kept $BENCH_TMP" >&2
	fi
}

# Sleeps N seconds in a way a signal interrupts at once (bash runs a trap
# only after the foreground command ends; "wait" ends on a signal), so a
# stopped bench cleans up without waiting for a long sleep.
nap() {
	sleep "$1" &
	wait $! || true
}

# SIGTERM to pid, then SIGKILL after timeout_s seconds. Returns 0 when it
# exited on SIGTERM.
stop_pid() {
	local pid=$1 timeout_s=${2:-20} i
	kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < timeout_s * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
		sleep 0.1
	done
	echo "pid $pid ignored SIGTERM for ${timeout_s}s: SIGKILL" >&2
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	return 1
}

forget_pid() {
	local pid=$1 p keep=()
	for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
	BENCH_PIDS=("${keep[@]}")
}

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Machine facts, one line each.
machine_facts() {
	echo "machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)," \
		"$(awk '/MemTotal/ {printf "%.1f GB RAM", $2/1048576}' /proc/meminfo)," \
		"$(uname -sr), $(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	local dirty=
	[ -n "$(git -C "$TOP_SRCDIR" status --porcelain -- core plugins sdk 2>/dev/null)" ] &&
		dirty=" + uncommitted core/plugin/sdk changes"
	echo "build: $(git -C "$TOP_SRCDIR" rev-parse --short HEAD 2>/dev/null || echo '?')$dirty," \
		"CFLAGS: $(sed -n 's/^CFLAGS = //p' "$BUILDDIR/Makefile" | head -1)"
}

# Starts hubd with config file $1, log $2; waits (bounded) for /readyz on
# port $3. Sets HUB_PID, HUB_URL, HUB_TOKEN (the admin token of state dir $4).
hubd_start() {
	local cfg=$1 log=$2 port=$3 state=$4 i
	HUB_URL=http://127.0.0.1:$port
	"$HUBD" --config "$cfg" >"$log" 2>&1 &
	HUB_PID=$!
	BENCH_PIDS+=("$HUB_PID")
	for ((i = 0; i < ${HUBD_START_TIMEOUT_S:-60} * 10; i++)); do
		if ! kill -0 "$HUB_PID" 2>/dev/null; then
			cat "$log" >&2
			die "hubd exited during start (log above)"
		fi
		if curl -fsS -o /dev/null --max-time 2 "$HUB_URL/readyz" 2>/dev/null; then
			HUB_TOKEN=$(head -1 "$state/admin.token")
			return 0
		fi
		sleep 0.1
	done
	tail -20 "$log" >&2
	die "hubd not ready after ${HUBD_START_TIMEOUT_S:-60}s"
}

hubd_stop() {
	local pid=$1
	stop_pid "$pid" 30 || echo "hubd $pid had to be killed" >&2
	forget_pid "$pid"
}

# Admin API call: api METHOD PATH [JSON]; prints the body, fails on >= 400.
api() {
	local method=$1 path=$2 body=${3:-}
	if [ -n "$body" ]; then
		curl -fsS --max-time 30 -X "$method" -H "Authorization: Bearer $HUB_TOKEN" \
			-H 'Content-Type: application/json' --data-binary "$body" "$HUB_URL$path"
	else
		curl -fsS --max-time 30 -X "$method" -H "Authorization: Bearer $HUB_TOKEN" "$HUB_URL$path"
	fi
}

# The value of one /metrics sample (exact name with labels), 0 when absent.
metric() {
	curl -fsS --max-time 10 "$HUB_URL/metrics" | awk -v k="$1" '$1 == k {v = $2} END {print v + 0}'
}

# metrics NAME...: the values of several metrics from one scrape, in order.
metrics() {
	curl -fsS --max-time 10 "$HUB_URL/metrics" |
		awk -v keys="$*" 'BEGIN {n = split(keys, k, " ")} {v[$1] = $2}
			END {for (i = 1; i <= n; i++) printf "%s%s", v[k[i]] + 0, (i < n ? " " : "\n")}'
}

# Writes a hubd config: hubd_config FILE PORT STATE_DIR STORE_URL [EXTRA_JSON_MEMBERS].
# The per-source inbound limit is raised far above any bench rate (it would
# otherwise answer 429 to a loopback load generator, which is one source).
hubd_config() {
	local file=$1 port=$2 state=$3 store=$4 extra=${5:-}
	cat >"$file" <<-EOF
	{"listen": "127.0.0.1:$port", "state_dir": "$state", "store": "$store",
	 "plugin_dir": "$PLUGINS", "log": {"level": "info"},
	 "http": {"max_body_bytes": 1048576, "timeout_s": 30, "rate_per_s": 10000000, "burst": 10000000}${extra:+,
	 $extra}}
	EOF
}

# Starts a throwaway PostgreSQL 15 on a unix socket under BENCH_TMP, with
# fsync and synchronous_commit on (durable commits). Sets PG_URL.
# $HUB_PG_CONF: more postgresql.conf lines (to try server settings; the
# figures in docs/benchmarks.md say which were used).
pg_start() {
	local bindir=${HUB_PG_BINDIR:-/usr/lib/postgresql/15/bin} port as=()
	[ -x "$bindir/initdb" ] || die "no PostgreSQL server in $bindir (set HUB_PG_BINDIR)"
	PG_DIR=$BENCH_TMP/pg
	mkdir -p "$PG_DIR"
	chmod 0755 "$BENCH_TMP"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$PG_DIR"
		as=(/usr/sbin/runuser -u postgres --)
	fi
	port=$(free_port)
	"${as[@]}" "$bindir/initdb" -D "$PG_DIR/data" -A trust -U postgres >"$BENCH_TMP/initdb.log" 2>&1 ||
		{ cat "$BENCH_TMP/initdb.log" >&2; die "initdb failed"; }
	cat >>"$PG_DIR/data/postgresql.conf" <<-EOF
	listen_addresses = ''
	port = $port
	unix_socket_directories = '$PG_DIR'
	max_connections = 40
	shared_buffers = 256MB
	fsync = on
	synchronous_commit = on
	full_page_writes = on
	logging_collector = off
	log_min_messages = warning
	${HUB_PG_CONF:-}
	EOF
	"${as[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 60 -s start ||
		{ cat "$PG_DIR/log" >&2; die "PostgreSQL did not start"; }
	PG_BINDIR=$bindir
	PG_URL="postgresql:///postgres?host=$PG_DIR&port=$port&user=postgres"
}

# pg_sql QUERY: the one value QUERY returns, from the throwaway cluster.
pg_sql() {
	local as=()
	[ "$(id -u)" = 0 ] && as=(/usr/sbin/runuser -u postgres --)
	"${as[@]}" "$PG_BINDIR/psql" -X -A -t -c "$1" "$PG_URL"
}

# pg_warm MB: brings the throwaway cluster to the steady state of a server
# that has been running: about MB of WAL is written and checkpointed, so
# that the segments are recycled (renamed, not created and zero-filled)
# when the measured load needs them (keep min_wal_size >= MB), and
# shared_buffers' memory has been touched (a plain INSERT, not CREATE TABLE
# AS, whose bulk writes go through a 16 MB ring: the first run then paid a
# page fault and a zeroed page for every buffer it used).
pg_warm() {
	local mb=$1 as=() t0
	[ "$(id -u)" = 0 ] && as=(/usr/sbin/runuser -u postgres --)
	t0=$(date +%s)
	"${as[@]}" "$PG_BINDIR/psql" -q -X -v ON_ERROR_STOP=1 "$PG_URL" >/dev/null <<-EOF ||
	CREATE TABLE bench_warm (g integer, filler text);
	INSERT INTO bench_warm SELECT g, repeat('w', 900) FROM generate_series(1, $((mb * 1000))) g;
	DROP TABLE bench_warm;
	CHECKPOINT;
	EOF
		die "pg_warm failed"
	say "postgresql: warmed (about $mb MB of WAL written and checkpointed in $(($(date +%s) - t0)) s)"
}

pg_stop() {
	local as=()
	[ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
	[ "$(id -u)" = 0 ] && as=(/usr/sbin/runuser -u postgres --)
	"${as[@]}" "$PG_BINDIR/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 -s stop || true
	PG_DIR=
}

# CPU ticks of this cluster's processes (postmaster and its children).
pg_ticks() {
	local pm p sum=0
	[ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] || { echo 0; return; }
	pm=$(head -1 "$PG_DIR/data/postmaster.pid")
	for p in "$pm" $(pgrep -P "$pm"); do
		sum=$((sum + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
	done
	echo "$sum"
}

# The PostgreSQL server's version and durability settings, one line.
pg_facts() {
	echo "postgresql: $("$PG_BINDIR/postgres" --version | sed 's/.*) //'), fsync=on, synchronous_commit=on," \
		"full_page_writes=on, shared_buffers=256MB, unix socket"
}

# CPU time (utime+stime, in clock ticks) of a process.
cpu_ticks() {
	awk '{print $14 + $15}' "/proc/$1/stat"
}

# VmRSS of a process in kB.
rss_kb() {
	awk '/^VmRSS:/ {print $2}' "/proc/$1/status"
}
