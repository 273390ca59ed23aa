/* A plugin built against a future ABI: the loader must refuse it, printing both versions. */
#include "common_estimator.h"

static const sl_estimator_vtable vt = { .struct_size = sizeof(sl_estimator_vtable),
                                        .create = test_create, .destroy = test_destroy, .delta = test_delta };
static const sl_plugin desc = { SL_ABI_VERSION + 1, sizeof(sl_plugin), SL_KIND_ESTIMATOR,
                                "future_abi", "1.0.0", "Built against a newer ABI", { NULL, 0 },
                                &vt };
SL_PLUGIN_ENTRY(&desc)
