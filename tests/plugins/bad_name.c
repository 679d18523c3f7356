/*
 * bad_name.c - built as bad_name.so but names itself "other"; the loader
 * must refuse the mismatch.
 */
#include "config.h"

#include "minimal.h"

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "other",
	.version = "1.0.0",
	.config_schema = MINIMAL_SCHEMA,
	.create = minimal_create,
	.destroy = minimal_destroy,
};
