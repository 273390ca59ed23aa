/* A second plugin called 'sds': loading it next to the in-tree one must fail, naming both
 * files. */
#include "common_estimator.h"

static const sl_estimator_vtable vt = { .struct_size = sizeof(sl_estimator_vtable),
                                        .create = test_create, .destroy = test_destroy, .delta = test_delta };
static const sl_plugin desc = { SL_ABI_VERSION, sizeof(sl_plugin), SL_KIND_ESTIMATOR, "sds",
                                "9.9.9", "An impostor", { NULL, 0 }, &vt };
SL_PLUGIN_ENTRY(&desc)
