/*
 * bad_schema.c - its config schema is JSON but not a schema hubd can
 * enforce (an unknown type name); the loader must refuse it and point at
 * the keyword.
 */
#include "config.h"

#include "minimal.h"

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "bad_schema",
	.version = "1.0.0",
	.config_schema = "{\"type\":\"object\",\"properties\":{\"shop\":{\"type\":\"strin\"}}}",
	.create = minimal_create,
	.destroy = minimal_destroy,
};
