/*
 * bad_nosym.c - exports its descriptor under the wrong name (hub_plugin_v0),
 * so the loader finds no hub_plugin_v1 and must say so.
 */
#include "config.h"

#include "minimal.h"

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v0 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "bad_nosym",
	.version = "1.0.0",
	.config_schema = MINIMAL_SCHEMA,
	.create = minimal_create,
	.destroy = minimal_destroy,
};
