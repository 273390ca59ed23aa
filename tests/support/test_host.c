/* tests/support/test_host.c — see test_host.h. */
#include "test_host.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"
#include "plugin_setup.h"

static void host_log(const sl_host *h, sl_log_level level, const char *fmt, ...)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };
    test_host *th = (test_host *)h;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level >= th->print_level)
        fprintf(stderr, "[%s] %s: %s\n", h->label, names[level], msg);
    size_t used = strlen(th->log_text);
    snprintf(th->log_text + used, sizeof th->log_text - used, "%s: %s\n", names[level], msg);
}

static sl_status host_declare_series(const sl_host *h, const char *name, const char *doc,
                                     sl_error *err)
{
    (void)doc;
    test_host *th = (test_host *)h;
    ck_assert_msg(sl_valid_name(name) && strlen(name) < TEST_HOST_NAME_MAX,
                  "series name '%s'", name);
    for (int i = 0; i < th->n_series; i++)
        if (!strcmp(th->series[i], name))
            return sl_error_set(err, SL_ERR_INVALID_ARG, "duplicate series '%s'", name);
    ck_assert_int_lt(th->n_series, TEST_HOST_MAX_SERIES);
    snprintf(th->series[th->n_series++], TEST_HOST_NAME_MAX, "%s", name);
    return SL_OK;
}

static void host_record(const sl_host *h, const char *name, double value)
{
    test_host *th = (test_host *)h;
    for (int i = 0; i < th->n_rec; i++)
        if (!strcmp(th->rec_name[i], name)) {
            th->rec_value[i] = value;
            return;
        }
    ck_assert_int_lt(th->n_rec, TEST_HOST_MAX_SERIES);
    snprintf(th->rec_name[th->n_rec], TEST_HOST_NAME_MAX, "%s", name);
    th->rec_value[th->n_rec++] = value;
}

static const sl_prior_ref *host_prior(const sl_host *h) { return ((const test_host *)h)->prior; }

static size_t host_baselines(const sl_host *h, const char *param, const sl_baseline_ref **out)
{
    const test_host *th = (const test_host *)h;
    *out = NULL;
    if (!param || strcmp(param, "baselines") != 0)
        return 0;
    *out = th->baselines;
    return th->n_baselines;
}

static sl_status host_remap(const sl_host *h, const char *group, const int64_t *src,
                            size_t new_n, float *new_data, float *new_grad, sl_error *err)
{
    test_host *th = (test_host *)h;
    if (!th->adam)
        return sl_error_set(err, SL_ERR_INVALID_ARG, "test host: no optimiser to remap");
    for (size_t g = 0; g < th->n_groups; g++)
        if (!strcmp(th->groups[g].name, group)) {
            sl_status st = sl_adam_remap(th->adam, g, src, new_n, new_data, new_grad, err);
            if (st == SL_OK)
                th->groups[g] = (sl_param_group){ th->groups[g].name, new_data, new_grad, new_n };
            return st;
        }
    return sl_error_set(err, SL_ERR_INVALID_ARG, "test host: no group '%s'", group);
}

void test_host_init(test_host *th, const char *label, uint64_t seed, uint32_t stream_base)
{
    memset(th, 0, sizeof *th);
    snprintf(th->spec_dir, sizeof th->spec_dir, ".");
    sl_diffusion_default(&th->diffusion);
    th->print_level = SL_LOG_DEBUG;
    th->h = (sl_host){
        .struct_size = sizeof(sl_host), .abi_version = SL_ABI_VERSION, .label = label,
        .seed = seed, .rng_stream_base = stream_base, .log = host_log,
        .alloc = sl_host_aligned_alloc, .free_mem = sl_host_aligned_free,
        .declare_series = host_declare_series, .record = host_record, .prior = host_prior, .diffusion = &th->diffusion, .spec_dir = th->spec_dir,
        .baselines = host_baselines, .remap_group = host_remap,
    };
}

int test_host_recorded(const test_host *th, const char *name, double *value)
{
    for (int i = 0; i < th->n_rec; i++)
        if (!strcmp(th->rec_name[i], name)) {
            *value = th->rec_value[i];
            return 1;
        }
    return 0;
}

void test_host_clear(test_host *th)
{
    th->n_rec = 0;
    th->log_text[0] = '\0';
}

sl_status test_host_try_params(const sl_plugin *p, const char *yaml, sl_params **out,
                               sl_error *err)
{
    return plugin_setup_params(p, yaml, out, err);
}

sl_params *test_host_params(const sl_plugin *p, const char *yaml)
{
    sl_error err = { "" };
    sl_params *out = NULL;
    sl_status st = test_host_try_params(p, yaml, &out, &err);
    ck_assert_msg(st == SL_OK, "parameters of %s: %s", p->name, err.msg);
    return out;
}
