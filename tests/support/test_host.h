/* tests/support/test_host.h — a minimal host for unit tests that drive one plugin instance
 * directly (without the driver): logging to stderr and into a buffer the test can read,
 * 64-byte aligned zeroed allocation, series declared and recorded into a table, the prior and
 * baselines the test supplies, and remap_group on an optimiser the test supplies. A series
 * declared twice is refused (as the real host does); a series name that is not a valid name
 * of at most 63 characters fails the test. */
#ifndef STEINLAB_TEST_HOST_H
#define STEINLAB_TEST_HOST_H

#include <stddef.h>
#include <stdint.h>

#include "steinlab/steinlab.h"

enum { TEST_HOST_MAX_SERIES = 64, TEST_HOST_NAME_MAX = 64, TEST_HOST_LOG_BYTES = 1 << 16,
       TEST_HOST_MAX_GROUPS = 16 };

typedef struct test_host {
    sl_host h;                           /* first: the plugin's host pointer is this struct */
    char spec_dir[1024];
    sl_diffusion diffusion;              /* the default schedule */
    const sl_prior_ref *prior;           /* what host->prior() returns (NULL: none) */
    const sl_baseline_ref *baselines;    /* (n_baselines,) for the parameter "baselines" */
    size_t n_baselines;
    sl_log_level print_level;            /* messages at or above it go to stderr */
    char log_text[TEST_HOST_LOG_BYTES];  /* every message, "level: text\n", appended */
    char series[TEST_HOST_MAX_SERIES][TEST_HOST_NAME_MAX];   /* declared names */
    int n_series;
    char rec_name[TEST_HOST_MAX_SERIES][TEST_HOST_NAME_MAX]; /* last value per name */
    double rec_value[TEST_HOST_MAX_SERIES];
    int n_rec;
    sl_adam *adam;                       /* for remap_group (NULL: remap refused) */
    sl_param_group groups[TEST_HOST_MAX_GROUPS];   /* the optimiser's groups, in order */
    size_t n_groups;
} test_host;

/* A host for the instance `label`; spec_dir "." and every message printed. */
void test_host_init(test_host *th, const char *label, uint64_t seed, uint32_t stream_base);

/* The last value recorded under `name`; 1 when there is one. */
int test_host_recorded(const test_host *th, const char *name, double *value);
/* Forgets recorded values and captured messages. */
void test_host_clear(test_host *th);

/* A plugin's parameters from a YAML mapping (its spec section without `plugin`). A YAML or
 * schema error fails the test with the message. */
sl_params *test_host_params(const sl_plugin *p, const char *yaml);
/* The same, returning the status (for tests of invalid parameters). */
sl_status test_host_try_params(const sl_plugin *p, const char *yaml, sl_params **out,
                               sl_error *err);

#endif
