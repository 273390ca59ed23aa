/* tests/test_unet.c — the conditional UNet (steinlab/unet.h): backward against central
 * finite differences for the input and for elements of every parameter tensor (each kind:
 * convs, norms, attention, time MLP, class and view tables), the input-only VJP, thread-count
 * determinism, and its files: a round trip with metadata, and the refusal (with the reason)
 * of a file that is not a UNet file, declares an invalid configuration, or whose tensors
 * contradict the configuration it declares.
 *
 * Tolerances as tests/test_nn.c (float forward passes): L = <r, eps> in double, central
 * differences with h = 1e-2 on up to NPICK elements per tensor,
 *     |fd - g| <= ATOL_REL max|g| + RTOL |g|,  ATOL_REL = 2e-3, RTOL = 1e-2,
 * and max|g| >= 1e-3 asserted so no check passes on a vanishing gradient. */
#include <check.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "steinlab/safetensors.h"
#include "steinlab/unet.h"
#include "support/fd_check.h"

enum { NPICK = 6, B = 3 };
static const double H_FD = 1e-2, ATOL_REL = 2e-3, RTOL = 1e-2, GMIN = 1e-3;

static float *randn(size_t n, uint32_t stream, float scale)
{
    float *v = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(v);
    sl_rng_key k = { 4321, 0, stream, 0 };
    sl_rng_normal(k, 0, n, v);
    for (size_t i = 0; i < n; i++)
        v[i] *= scale;
    return v;
}

static void tiny_config(sl_unet_config *c)
{
    sl_unet_config_default(c);
    c->image_size = 8;
    c->base_channels = 8;
    c->groups = 4;
    c->classes = 2;
}

typedef struct fixture {
    sl_unet *u;
    sl_unet_ctx *ctx;
    float *x, *r, *eps;   /* (B, S, S, C) */
    float t[B];
    int cls[B], view[B];
    size_t nx;
} fixture;

static void fixture_create(fixture *f)
{
    sl_error err;
    sl_unet_config c;
    tiny_config(&c);
    ck_assert_int_eq(sl_unet_create(&c, &f->u, &err), SL_OK);
    sl_nn_params *p = sl_unet_params(f->u);
    sl_rng_key k = { 7, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(p, k);
    /* Off the init values (unit norm scales, zero biases) so every gradient is generic. */
    float *pert = randn(p->total, 1, 0.2f);
    for (size_t i = 0; i < p->total; i++)
        p->data[i] += pert[i];
    free(pert);
    ck_assert_int_eq(sl_unet_ctx_create(f->u, B, &f->ctx, &err), SL_OK);
    f->nx = (size_t)B * 8 * 8 * 3;
    f->x = randn(f->nx, 2, 1.0f);
    f->r = randn(f->nx, 3, 1.0f);
    f->eps = calloc(f->nx, sizeof(float));
    const float ts[B] = { 12.0f, 400.0f, 977.0f };
    const int cs[B] = { 0, 1, 2 /* null */ }, vs[B] = { 3, 4 /* null */, 0 };
    memcpy(f->t, ts, sizeof ts);
    memcpy(f->cls, cs, sizeof cs);
    memcpy(f->view, vs, sizeof vs);
}

static void fixture_destroy(fixture *f)
{
    sl_unet_ctx_destroy(f->ctx);
    sl_unet_destroy(f->u);
    free(f->x), free(f->r), free(f->eps);
}

static double loss(fixture *f)
{
    sl_error err;
    ck_assert_int_eq(sl_unet_forward(f->u, f->ctx, f->eps, f->x, f->t, f->cls, f->view, &err),
                     SL_OK);
    double s = 0.0;
    for (size_t i = 0; i < f->nx; i++)
        s += (double)f->r[i] * f->eps[i];
    return s;
}

static double fixture_loss(void *f)
{
    return loss(f);
}

static void check_grad(fixture *f, const char *name, float *v, const float *g, size_t n)
{
    static const fd_options fd = { NPICK, H_FD, ATOL_REL, RTOL, GMIN };
    fd_check(name, fixture_loss, f, v, g, n, &fd);
}

START_TEST(test_gradients)
{
    fixture f;
    fixture_create(&f);
    sl_error err;
    float *dx = calloc(f.nx, sizeof(float));
    loss(&f);
    sl_nn_params *p = sl_unet_params(f.u);
    sl_nn_params_zero_grad(p);
    ck_assert_int_eq(sl_unet_backward(f.u, f.ctx, dx, f.r, 1, &err), SL_OK);
    /* Copy the gradients: the FD forwards below reuse the context. */
    float *g = malloc(p->total * sizeof(float));
    memcpy(g, p->grad, p->total * sizeof(float));
    check_grad(&f, "x", f.x, dx, f.nx);
    for (size_t i = 0; i < p->n; i++) {
        const sl_nn_tensor *t = &p->tensors[i];
        check_grad(&f, t->name, p->data + t->offset, g + t->offset, t->numel);
    }
    /* The tensor kinds the model must have. */
    const char *kinds[] = { "conv_in.weight", "down.1.attn.0.to_qkv.weight",
                            "down.0.downsample.weight", "mid.attn.to_out.weight",
                            "up.1.upsample.conv.weight", "up.0.res.1.conv_shortcut.weight",
                            "norm_out.weight", "class_embedding.weight",
                            "view_embedding.weight", "time_embedding.linear_1.weight" };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        ck_assert_msg(sl_nn_params_find(p, kinds[i]) >= 0, "no tensor %s", kinds[i]);
    free(dx), free(g);
    fixture_destroy(&f);
}
END_TEST

/* param_grads = 0: the same dx, and no parameter gradient touched. */
START_TEST(test_input_only_vjp)
{
    fixture f;
    fixture_create(&f);
    sl_error err;
    sl_nn_params *p = sl_unet_params(f.u);
    float *dx1 = calloc(f.nx, sizeof(float)), *dx0 = calloc(f.nx, sizeof(float));
    loss(&f);
    sl_nn_params_zero_grad(p);
    ck_assert_int_eq(sl_unet_backward(f.u, f.ctx, dx1, f.r, 1, &err), SL_OK);
    sl_nn_params_zero_grad(p);
    ck_assert_int_eq(sl_unet_backward(f.u, f.ctx, dx0, f.r, 0, &err), SL_OK);
    ck_assert(memcmp(dx0, dx1, f.nx * sizeof(float)) == 0);
    for (size_t i = 0; i < p->total; i++)
        ck_assert_msg(p->grad[i] == 0.0f, "frozen backward wrote grad[%zu]", i);
    free(dx1), free(dx0);
    fixture_destroy(&f);
}
END_TEST

static float *run_threads(int threads, size_t *len)
{
    omp_set_num_threads(threads);
    fixture f;
    fixture_create(&f);
    sl_error err;
    sl_nn_params *p = sl_unet_params(f.u);
    float *dx = calloc(f.nx, sizeof(float));
    loss(&f);
    sl_nn_params_zero_grad(p);
    ck_assert_int_eq(sl_unet_backward(f.u, f.ctx, dx, f.r, 1, &err), SL_OK);
    *len = 2 * f.nx + p->total;
    float *all = malloc(*len * sizeof(float));
    memcpy(all, f.eps, f.nx * sizeof(float));
    memcpy(all + f.nx, dx, f.nx * sizeof(float));
    memcpy(all + 2 * f.nx, p->grad, p->total * sizeof(float));
    free(dx);
    fixture_destroy(&f);
    return all;
}

START_TEST(test_thread_determinism)
{
    const int keep = omp_get_max_threads();
    size_t n1, n2, n3;
    float *a = run_threads(1, &n1), *b = run_threads(2, &n2), *c = run_threads(3, &n3);
    omp_set_num_threads(keep);
    ck_assert_uint_eq(n1, n2);
    ck_assert_uint_eq(n1, n3);
    ck_assert_msg(memcmp(a, b, n1 * sizeof(float)) == 0, "1 and 2 threads differ");
    ck_assert_msg(memcmp(a, c, n1 * sizeof(float)) == 0, "1 and 3 threads differ");
    free(a), free(b), free(c);
}
END_TEST

START_TEST(test_bad_ids_and_config)
{
    fixture f;
    fixture_create(&f);
    sl_error err;
    f.cls[1] = 3;   /* classes = 2: ids 0..2 */
    ck_assert_int_eq(sl_unet_forward(f.u, f.ctx, f.eps, f.x, f.t, f.cls, f.view, &err),
                     SL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 3"));
    fixture_destroy(&f);
    sl_unet_config c;
    tiny_config(&c);
    c.heads = 3;
    sl_unet *u = NULL;
    ck_assert_int_eq(sl_unet_create(&c, &u, &err), SL_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(err.msg, "heads 3"));
    ck_assert_ptr_null(u);
}
END_TEST

static char tmp_path[256];

static const char *tmp_file(const char *name)
{
    snprintf(tmp_path, sizeof tmp_path, "%s/test_unet_%d_%s",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid(), name);
    return tmp_path;
}

START_TEST(test_file_round_trip)
{
    fixture f;
    fixture_create(&f);
    sl_error err;
    const char *keys[] = { "classes.0", "classes.1" }, *vals[] = { "a red sphere", "a blue box" };
    const char *path = tmp_file("rt.safetensors");
    ck_assert_int_eq(sl_unet_save(f.u, path, keys, vals, 2, &err), SL_OK);
    sl_safetensors *st = NULL;
    ck_assert_int_eq(sl_safetensors_open(path, &st, &err), SL_OK);
    ck_assert_str_eq(sl_safetensors_meta_get(st, "classes.1"), "a blue box");
    sl_unet *v = NULL;
    ck_assert_int_eq(sl_unet_load(st, &v, &err), SL_OK);
    sl_safetensors_close(st);
    char why[128];
    ck_assert(sl_unet_config_equal(sl_unet_config_of(f.u), sl_unet_config_of(v), why,
                                   sizeof why));
    const sl_nn_params *p = sl_unet_params(f.u), *q = sl_unet_params(v);
    ck_assert_uint_eq(p->n, q->n);
    for (size_t i = 0; i < p->n; i++)
        ck_assert(memcmp(sl_nn_param(p, i), sl_nn_param(q, i),
                         p->tensors[i].numel * sizeof(float)) == 0);
    /* The same predictions. */
    float *e1 = calloc(f.nx, sizeof(float)), *e2 = calloc(f.nx, sizeof(float));
    sl_unet_ctx *cv = NULL;
    ck_assert_int_eq(sl_unet_ctx_create(v, B, &cv, &err), SL_OK);
    ck_assert_int_eq(sl_unet_forward(f.u, f.ctx, e1, f.x, f.t, f.cls, f.view, &err), SL_OK);
    ck_assert_int_eq(sl_unet_forward(v, cv, e2, f.x, f.t, f.cls, f.view, &err), SL_OK);
    ck_assert(memcmp(e1, e2, f.nx * sizeof(float)) == 0);
    sl_unet_ctx_destroy(cv);
    sl_unet_destroy(v);
    unlink(path);
    free(e1), free(e2);
    fixture_destroy(&f);
}
END_TEST

/* A file written with the metadata of `declared` and the tensors of model u. */
static void write_mixed(const sl_unet_config *declared, const sl_unet *u, int with_format,
                        const char *path)
{
    sl_error err;
    sl_st_writer *w = NULL;
    ck_assert_int_eq(sl_st_writer_create(&w, &err), SL_OK);
    if (with_format)
        ck_assert_int_eq(sl_unet_write_meta(declared, w, &err), SL_OK);
    const sl_nn_params *p = sl_unet_params_const(u);
    for (size_t i = 0; i < p->n; i++)
        ck_assert_int_eq(sl_st_writer_add(w, p->tensors[i].name, p->tensors[i].ndim,
                                          p->tensors[i].shape, p->data + p->tensors[i].offset,
                                          &err), SL_OK);
    ck_assert_int_eq(sl_st_writer_write(w, path, &err), SL_OK);
    sl_st_writer_destroy(w);
}

static sl_status load_path(const char *path, sl_error *err)
{
    sl_safetensors *st = NULL;
    sl_status s = sl_safetensors_open(path, &st, err);
    ck_assert_int_eq(s, SL_OK);
    sl_unet *u = NULL;
    s = sl_unet_load(st, &u, err);
    ck_assert(s == SL_OK || u == NULL);
    sl_unet_destroy(u);
    sl_safetensors_close(st);
    return s;
}

START_TEST(test_file_refusals)
{
    sl_error err;
    sl_unet_config c, wider;
    tiny_config(&c);
    sl_unet *u = NULL;
    ck_assert_int_eq(sl_unet_create(&c, &u, &err), SL_OK);
    const char *path = tmp_file("bad.safetensors");

    /* Declares 16 base channels, holds an 8-channel model: the shapes contradict it. */
    wider = c;
    wider.base_channels = 16;
    write_mixed(&wider, u, 1, path);
    ck_assert_int_eq(load_path(path, &err), SL_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "do not match the configuration") &&
                  strstr(err.msg, "time_embedding.linear_1.weight' has shape [32, 8], "
                                  "expected [64, 16]"), "%s", err.msg);

    /* Declares more classes: the class table is the one that differs. */
    wider = c;
    wider.classes = 5;
    write_mixed(&wider, u, 1, path);
    ck_assert_int_eq(load_path(path, &err), SL_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "class_embedding.weight") != NULL, "%s", err.msg);

    /* No metadata: not a UNet file. */
    write_mixed(&c, u, 0, path);
    ck_assert_int_eq(load_path(path, &err), SL_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "not a steinlab UNet file") != NULL, "%s", err.msg);

    /* An invalid declared configuration. */
    wider = c;
    wider.groups = 3;
    write_mixed(&wider, u, 1, path);
    ck_assert_int_eq(load_path(path, &err), SL_ERR_FORMAT);
    ck_assert_msg(strstr(err.msg, "invalid configuration") && strstr(err.msg, "groups 3"),
                  "%s", err.msg);

    /* Configurations compared field by field (resuming a training with another model). */
    char why[128];
    ck_assert(!sl_unet_config_equal(&c, &wider, why, sizeof why));
    ck_assert_str_eq(why, "groups 4 differs from 3");
    unlink(path);
    sl_unet_destroy(u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unet");
    TCase *tc = tcase_create("unet");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_gradients);
    tcase_add_test(tc, test_input_only_vjp);
    tcase_add_test(tc, test_thread_determinism);
    tcase_add_test(tc, test_bad_ids_and_config);
    tcase_add_test(tc, test_file_round_trip);
    tcase_add_test(tc, test_file_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    const int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
