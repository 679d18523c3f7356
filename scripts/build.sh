#!/bin/sh
# build.sh [BUILD_DIR] [configure options...] - bootstraps autotools, builds
# the hub out of tree (default ./build) and installs it under
# BUILD_DIR/install (programs, plugins, headers), where the quick start
# runs it from. Idempotent.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build}
[ $# -gt 0 ] && shift
cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$top/configure" -nt Makefile ]; then
	"$top/configure" -q --prefix="$build/install" "$@"
fi
make -j"$(nproc)" >/dev/null || make
make install >/dev/null
echo "build: $build is up to date (installed in $build/install)"
