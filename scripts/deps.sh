#!/bin/sh
# deps.sh - installs the Debian 12 packages the hub needs to build, test and
# run (as root, or through sudo). Safe to run again: apt-get skips what is
# already installed.
set -eu
PKGS="build-essential autoconf automake libtool pkg-config
libevent-dev libcurl4-openssl-dev libjansson-dev libssl-dev libltdl-dev
libpq-dev libhiredis-dev libsqlite3-dev libcmocka-dev
postgresql redis-server nginx openssl valgrind curl ca-certificates procps"

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "deps: installing:$missing"
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
