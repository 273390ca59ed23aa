/* A schema whose default is outside its own range: rejected at load time, not at run time. */
#include "common_estimator.h"

static const sl_param_def defs[] = {
    { "scale", SL_PARAM_FLOAT, 0, "5", 0, 1, NULL, 0, 0, "A scale in [0, 1]" },
};
static const sl_estimator_vtable vt = { .struct_size = sizeof(sl_estimator_vtable),
                                        .create = test_create, .destroy = test_destroy, .delta = test_delta };
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_ESTIMATOR,
                                "bad_default", "1.0.0", "Default out of range",
                                SL_PARAM_SCHEMA(defs), &vt };
SL_PLUGIN_ENTRY(&desc)
