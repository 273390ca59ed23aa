/* tests/support/plugin_setup.h — what any program that drives one plugin instance directly
 * needs, without Check (benchmarks link it alone; tests/support/test_host builds on it). */
#ifndef STEINLAB_TEST_PLUGIN_SETUP_H
#define STEINLAB_TEST_PLUGIN_SETUP_H

#include "steinlab/steinlab.h"

/* A minimal host for the instance `label`: the executable's messages to stderr and 64-byte
 * aligned zeroed allocation (core/host.h), series accepted and dropped, no prior, no
 * schedule, spec_dir ".", seed 0, the first plugin stream block. */
void plugin_setup_host(sl_host *h, const char *label);

/* A plugin's parameters from a YAML mapping (its spec section without `plugin`), resolved
 * against its schema; the parse or schema error in err otherwise. */
sl_status plugin_setup_params(const sl_plugin *p, const char *yaml, sl_params **out,
                              sl_error *err);

#endif
