#!/usr/bin/env bash
# bench/sandbox/run.sh - requests per second hub-sandbox serves, per API,
# so that the sandbox is never the bottleneck of a hub bench (issue 7: at
# least 3x what any bench asks of it; polling benches ask ~2,000 req/s, so
# the polling scenarios must reach 6,000 req/s).
#
#   bench/sandbox/run.sh [--builddir DIR] [--seconds N] [--connections C]
#       [--shops N] [--orders N]
#
# One hub-sandbox (rate limits raised out of the way, simulated clock at
# real speed) and wrk on loopback (one thread each, sharing this machine's
# cores). Scenarios, each rotating over every store or shipment:
#   shopify-poll   GET orders.json?status=any&updated_at_min=<10 min ago>&limit=250
#   shopify-page   GET orders.json?status=any&limit=50 (a full page, ~0.5 MB)
#   woo-poll       GET /wp-json/wc/v3/orders?modified_after=<10 min ago>&per_page=100 (Basic)
#   amazon-search  GET searchOrders?lastUpdatedAfter=<1 h ago>&includedData=...
#   ups-track      GET /api/track/v1/details/<n> (Bearer)
#   usps-track     GET /tracking/v3/tracking/<n>?expand=DETAIL (Bearer)
#   dhl-track      GET /track/shipments?trackingNumber=<n> (DHL-API-Key)
# Prints one RESULT line per scenario and a verdict for the polling ones.
. "$(dirname "$0")/../lib.sh"

SECS=10
CONNS=32
SHOPS=100
ORDERS=50
while [ $# -gt 0 ]; do
	case $1 in
	--builddir) BUILDDIR=$2; shift ;;
	--seconds) SECS=$2; shift ;;
	--connections) CONNS=$2; shift ;;
	--shops) SHOPS=$2; shift ;;
	--orders) ORDERS=$2; shift ;;
	*) die "unknown option $1 (see the header of $0)" ;;
	esac
	shift
done
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
if [ -z "$BUILDDIR" ]; then
	[ -x ./hub-sandbox ] && BUILDDIR=$PWD || die "pass --builddir DIR (an out-of-tree build)"
fi
BUILDDIR=$(cd "$BUILDDIR" && pwd)
say "building hub-sandbox in $BUILDDIR"
make -s -C "$BUILDDIR" hub-sandbox >/dev/null
SANDBOX=$BUILDDIR/hub-sandbox
BENCH_TMP=$(mktemp -d /tmp/sbbench.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
cat >"$BENCH_TMP/sandbox.json" <<JSON
{"seed": 1, "orders": $ORDERS, "shops": $SHOPS, "speed": 1, "quiet": true,
 "shopify": {"bucket_size": 1e12},
 "amazon": {"search_orders_rate": 1e12, "search_orders_burst": 1e12},
 "carriers": {"ups": {"rate": 1e12, "burst": 1e12}, "fedex": {"rate": 1e12, "burst": 1e12},
              "usps": {"rate": 1e12, "burst": 1e12}, "dhl": {"rate": 1e12, "burst": 1e12}}}
JSON
T0=$(date +%s%N)
"$SANDBOX" --listen "127.0.0.1:$PORT" --config "$BENCH_TMP/sandbox.json" >"$BENCH_TMP/sandbox.log" 2>&1 &
SB_PID=$!
BENCH_PIDS+=("$SB_PID")
for ((i = 0; i < 300; i++)); do
	curl -fsS -o /dev/null --max-time 1 "$URL/_sandbox/health" 2>/dev/null && break
	kill -0 "$SB_PID" 2>/dev/null || { cat "$BENCH_TMP/sandbox.log" >&2; die "hub-sandbox exited"; }
	sleep 0.1
done
START_MS=$((($(date +%s%N) - T0) / 1000000))

machine_facts
echo "command: $0 --seconds $SECS --connections $CONNS --shops $SHOPS --orders $ORDERS"
echo "sandbox: $SHOPS stores per marketplace, $ORDERS initial orders each, ready in ${START_MS} ms"

# Simulated "now" minus an offset, as the APIs take it.
sim_now() { curl -fsS "$URL/_sandbox/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["now"])'; }
ago() { python3 -c "import datetime,sys; t=datetime.datetime.strptime('$1','%Y-%m-%dT%H:%M:%SZ'); print((t-datetime.timedelta(seconds=$2)).strftime('%Y-%m-%dT%H:%M:%S') + '$3')"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

NOW=$(sim_now)
MIN10Z=$(ago "$NOW" 600 Z)
MIN10=$(ago "$NOW" 600 "")
HOUR1Z=$(ago "$NOW" 3600 Z)
CREDS=$(curl -fsS "$URL/_sandbox/credentials")

R=$BENCH_TMP/requests
mkdir -p "$R"
for ((i = 1; i <= SHOPS; i++)); do
	printf 'GET\t/shops/shop-%d.myshopify.com/admin/api/2026-07/orders.json?status=any&updated_at_min=%s&limit=250\tX-Shopify-Access-Token: shpat_sandbox_%d\n' \
		"$i" "$MIN10Z" "$i" >>"$R/shopify-poll"
	printf 'GET\t/shops/shop-%d.myshopify.com/admin/api/2026-07/orders.json?status=any&limit=50\tX-Shopify-Access-Token: shpat_sandbox_%d\n' \
		"$i" "$i" >>"$R/shopify-page"
	printf 'GET\t/stores/woo-%d.example.com/wp-json/wc/v3/orders?modified_after=%s&dates_are_gmt=true&per_page=100\tAuthorization: Basic %s\n' \
		"$i" "$MIN10" "$(printf 'ck_sandbox_%d:cs_sandbox_%d' "$i" "$i" | base64 -w0)" >>"$R/woo-poll"
done
LWA_ID=$(echo "$CREDS" | json_get 'd["amazon"]["client_id"]')
LWA_SECRET=$(echo "$CREDS" | json_get 'd["amazon"]["client_secret"]')
for ((i = 1; i <= SHOPS; i++)); do
	tok=$(curl -fsS -d "grant_type=refresh_token&refresh_token=Atzr%7Csandbox-refresh-$i&client_id=$LWA_ID&client_secret=$LWA_SECRET" \
		"$URL/auth/o2/token" | json_get 'd["access_token"]')
	printf 'GET\t/orders/2026-01-01/orders?lastUpdatedAfter=%s&includedData=BUYER,RECIPIENT,FULFILLMENT,PACKAGES&maxResultsPerPage=100\tx-amz-access-token: %s\n' \
		"$HOUR1Z" "$tok" >>"$R/amazon-search"
done
UPS_TOK=$(curl -fsS -u ups-sandbox-client:ups-sandbox-secret -d grant_type=client_credentials \
	"$URL/security/v1/oauth/token" | json_get 'd["access_token"]')
USPS_TOK=$(curl -fsS -H 'Content-Type: application/json' \
	-d '{"grant_type":"client_credentials","client_id":"usps-sandbox-client","client_secret":"usps-sandbox-secret"}' \
	"$URL/oauth2/v3/token" | json_get 'd["access_token"]')
curl -fsS "$URL/_sandbox/truth/ups/shipments" |
	json_get '"\n".join(s["trackResponse"]["shipment"][0]["inquiryNumber"] for s in d["shipments"][:500])' |
	while read -r n; do
		printf 'GET\t/api/track/v1/details/%s\tAuthorization: Bearer %s\ttransId: bench\ttransactionSrc: hub-bench\n' \
			"$n" "$UPS_TOK"
	done >"$R/ups-track"
curl -fsS "$URL/_sandbox/truth/usps/shipments" |
	json_get '"\n".join(s["trackingNumber"] for s in d["shipments"][:500])' |
	while read -r n; do
		printf 'GET\t/tracking/v3/tracking/%s?expand=DETAIL\tAuthorization: Bearer %s\n' "$n" "$USPS_TOK"
	done >"$R/usps-track"
curl -fsS "$URL/_sandbox/truth/dhl/shipments" |
	json_get '"\n".join(s["shipments"][0]["id"] for s in d["shipments"][:500])' |
	while read -r n; do
		printf 'GET\t/track/shipments?trackingNumber=%s\tDHL-API-Key: dhl-sandbox-key\n' "$n"
	done >"$R/dhl-track"

POLL_MIN=0
for sc in shopify-poll shopify-page woo-poll amazon-search ups-track usps-track dhl-track; do
	[ -s "$R/$sc" ] || die "no requests for $sc"
	# warm the render caches, then measure
	SB_REQUESTS=$R/$sc wrk -t1 -c"$CONNS" -d1s -s "$BENCH_SRCDIR/sandbox/rotate.lua" "$URL" >/dev/null
	out=$(SB_REQUESTS=$R/$sc wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$BENCH_SRCDIR/sandbox/rotate.lua" "$URL" |
		sed -n 's/^RESULT //p')
	rss=$(rss_kb "$SB_PID")
	echo "RESULT scenario=$sc $out sandbox_rss_kb=$rss"
	rps=$(echo "$out" | sed -n 's/.*rps=\([0-9]*\).*/\1/p')
	case $sc in
	*-poll) if [ "$POLL_MIN" = 0 ] || [ "$rps" -lt "$POLL_MIN" ]; then POLL_MIN=$rps; fi ;;
	esac
done
errors=$(curl -fsS "$URL/_sandbox/stats" | json_get 'sum(v["status"]["5xx"] + v["status"]["4xx"] for v in d["apis"].values())')
echo "sandbox 4xx+5xx answers during the run: $errors"
if [ "$POLL_MIN" -ge 6000 ]; then
	echo "VERDICT ok: polling scenarios >= $POLL_MIN req/s (target >= 6,000 = 3x the ~2,000 req/s hub polling benches need)"
else
	echo "VERDICT short: polling scenarios reach only $POLL_MIN req/s (target >= 6,000)"
	exit 1
fi
