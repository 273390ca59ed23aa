/* tests/support/plugin_setup.c — see plugin_setup.h. */
#include "plugin_setup.h"

#include <string.h>

#include "host.h"
#include "spec.h"

static sl_status drop_declare(const sl_host *h, const char *name, const char *doc,
                              sl_error *err)
{
    (void)h, (void)name, (void)doc, (void)err;
    return SL_OK;
}

static void drop_record(const sl_host *h, const char *name, double value)
{
    (void)h, (void)name, (void)value;
}

static const sl_prior_ref *no_prior(const sl_host *h)
{
    (void)h;
    return NULL;
}

void plugin_setup_host(sl_host *h, const char *label)
{
    *h = (sl_host){
        .struct_size = sizeof(sl_host), .abi_version = SL_ABI_VERSION, .label = label,
        .seed = 0, .rng_stream_base = SL_STREAM_PLUGIN_BASE, .log = sl_host_stderr_log,
        .alloc = sl_host_aligned_alloc, .free_mem = sl_host_aligned_free,
        .declare_series = drop_declare, .record = drop_record, .prior = no_prior,
        .spec_dir = ".",
    };
}

sl_status plugin_setup_params(const sl_plugin *p, const char *yaml, sl_params **out,
                              sl_error *err)
{
    static const char *const reserved[] = { "plugin", "label", NULL };
    sl_node *root = NULL;
    *out = NULL;
    sl_status st = sl_spec_parse_string(yaml, strlen(yaml), "<test>", &root, err);
    if (st == SL_OK)
        st = sl_params_resolve(root, p->name, &p->params, reserved, out, err);
    sl_node_free(root);
    return st;
}
