/*
 * bad_exports.c - a valid plugin that leaks a helper function into its
 * dynamic symbol table (built without hidden visibility or an export
 * list). hubd loads it; hub-plugin-kit must fail its export check.
 */
#include "config.h"

#include "minimal.h"

int bad_exports_helper(void);

int bad_exports_helper(void)
{
	return 42;
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "bad_exports",
	.version = "1.0.0",
	.config_schema = MINIMAL_SCHEMA,
	.create = minimal_create,
	.destroy = minimal_destroy,
};
