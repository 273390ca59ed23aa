/* An estimator without its required delta(): the loader must name the missing member. */
#include "common_estimator.h"

static const sl_estimator_vtable vt = { .struct_size = sizeof(sl_estimator_vtable),
                                        .create = test_create, .destroy = test_destroy };
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_ESTIMATOR,
                                "no_delta", "1.0.0", "Lacks the delta member", { NULL, 0 }, &vt };
SL_PLUGIN_ENTRY(&desc)

