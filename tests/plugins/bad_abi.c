/*
 * bad_abi.c - claims ABI major 2; the loader must refuse it naming both
 * versions.
 */
#include "config.h"

#include "minimal.h"

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = 2,
	.struct_size = sizeof(struct hub_plugin),
	.name = "bad_abi",
	.version = "1.0.0",
	.config_schema = MINIMAL_SCHEMA,
	.create = minimal_create,
	.destroy = minimal_destroy,
};
