#!/bin/sh
# quickstart.sh - installs the packages, builds the hub, and runs hub-sandbox
# (stand-ins for Shopify, WooCommerce, Amazon, UPS, FedEx, USPS and DHL on
# 127.0.0.1:8081) with hubd (127.0.0.1:8080, embedded SQLite store, every
# connector of etc/quickstart.json pointing at the sandbox), then shows the
# orders and shipments arriving, live, until Ctrl-C stops all of it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
"$top/scripts/build.sh" "$top/build"
bin=$top/build/install/bin
cd "$top"
mkdir -p quickstart-state
"$bin/hub-sandbox" --listen 127.0.0.1:8081 --seed 42 --orders 40 --shops 2 --speed 30 \
	--config "$top/etc/sandbox-quickstart.json" >quickstart-state/sandbox.log 2>&1 &
sandbox=$!
"$bin/hubd" --config "$top/etc/quickstart.json" >quickstart-state/hubd.log 2>&1 &
hubd=$!
stop() {
	trap - INT TERM EXIT
	kill "$hubd" "$sandbox" 2>/dev/null || true
	wait "$hubd" "$sandbox" 2>/dev/null || true
	echo
	echo "quickstart: stopped (logs and the store are in quickstart-state/)"
}
trap stop INT TERM EXIT
i=0
until "$bin/hubctl" --config "$top/etc/quickstart.json" status >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -gt 100 ] || ! kill -0 "$hubd" 2>/dev/null; then
		echo "quickstart: hubd did not start; its log:" >&2
		cat quickstart-state/hubd.log >&2
		exit 1
	fi
	sleep 0.1
done
echo "quickstart: hubd on http://127.0.0.1:8080, sandbox on http://127.0.0.1:8081"
echo "quickstart: try in another terminal: $bin/hubctl --config etc/quickstart.json orders list"
sleep 1
"$bin/hubctl" --config "$top/etc/quickstart.json" watch
