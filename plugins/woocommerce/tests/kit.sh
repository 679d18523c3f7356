#!/bin/sh
# kit.sh - runs hub-plugin-kit on woocommerce.so with its cases from
# plugins/woocommerce/cases, including the kit's 1,000 load/unload cycles
# (tests/harness/run-kit.sh). Exit 77 (skip) when the plugin or the kit was
# not built; 1 when a check fails.
exec sh "${HUB_SRCDIR:-${srcdir:-.}}/tests/harness/run-kit.sh" woocommerce
