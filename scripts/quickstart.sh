#!/bin/sh
# quickstart.sh - installs the packages, builds the hub and runs hubd on the
# embedded SQLite store with etc/quickstart.json, in the foreground, until
# Ctrl-C. State goes to ./quickstart-state.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh"
"$top/scripts/build.sh" "$top/build"
cd "$top"
echo "quickstart: hubd on http://127.0.0.1:8080 (Ctrl-C to stop)"
exec "$top/build/hubd" --config "$top/etc/quickstart.json"
