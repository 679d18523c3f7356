/*
 * bad_size.c - its descriptor claims to be 16 bytes long, shorter than ABI
 * v1's struct hub_plugin; the loader must refuse it.
 */
#include "config.h"

#include "minimal.h"

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = 16,
	.name = "bad_size",
	.version = "1.0.0",
	.config_schema = MINIMAL_SCHEMA,
	.create = minimal_create,
	.destroy = minimal_destroy,
};
