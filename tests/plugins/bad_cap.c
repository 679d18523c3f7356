/*
 * bad_cap.c - declares HUB_CAP_WEBHOOKS but has no verify_webhook; the
 * loader must name the capability and the missing callback.
 */
#include "config.h"

#include "minimal.h"

static int read_webhook(void *state, const struct hub_msg *webhook, struct hub_call *call,
			struct hub_error *err)
{
	(void)state;
	(void)webhook;
	(void)call;
	(void)err;
	return HUB_IGNORED;
}

HUB_PLUGIN_EXPORT const struct hub_plugin hub_plugin_v1 = {
	.abi_version = HUB_ABI_VERSION,
	.struct_size = sizeof(struct hub_plugin),
	.name = "bad_cap",
	.version = "1.0.0",
	.capabilities = HUB_CAP_WEBHOOKS,
	.config_schema = MINIMAL_SCHEMA,
	.create = minimal_create,
	.destroy = minimal_destroy,
	.read_webhook = read_webhook,
};
