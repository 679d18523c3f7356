#!/bin/sh
# kit-valgrind.sh - woocommerce.so's kit cases once more under valgrind: any
# invalid access or definite leak in the plugin fails
# (tests/harness/run-kit.sh). Registered only in builds with valgrind and
# without sanitizers (the two do not mix).
exec sh "${HUB_SRCDIR:-${srcdir:-.}}/tests/harness/run-kit.sh" --valgrind woocommerce
