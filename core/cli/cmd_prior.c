/* core/cli/cmd_prior.c — `steinlab prior train SPEC.yaml` and `steinlab prior eval SPEC.yaml`
 * (docs/prior-training.md): a conditional UNet trained by denoising score matching on the
 * views of teacher priors, its score error measured against the teachers' exact denoiser.
 *
 * One step: draw (prompt, view, t, CFG drop) per element and x_t = alpha (view + s0 n) +
 * sigma eps; loss = mean (eps_net - eps)^2; backward; global-norm clip; Adam at the step's
 * learning rate (linear warm-up, then cosine decay to lr x lr_final); EMA of the weights.
 * Every draw is keyed by (seed, step), so a resumed training (its checkpoint holds the
 * weights, the EMA, Adam's moments and count) continues exactly as if never stopped. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blas_cpu.h"
#include "cli.h"
#include "host.h"
#include "log.h"
#include "prior_setup.h"
#include "progress.h"
#include "steinlab/optim.h"
#include "steinlab/safetensors.h"

static volatile sig_atomic_t g_stop = 0;

static void on_signal(int sig)
{
    g_stop = 1;
    signal(sig, SIG_DFL);   /* a second signal ends the process at once */
}

typedef struct trainer {
    pt_setup s;
    sl_unet *net, *ema;
    sl_unet_ctx *ctx, *ectx;
    sl_adam *adam;
    sl_log *log;
    sl_log_table *steps_t, *eval_t;
    int c_step, c_loss, c_lr, c_gnorm, c_time, c_bin[PT_T_BINS];
    int e_step, e_time, e_rel[PT_T_BINS], e_mse[PT_T_BINS], e_rel_late;
    int64_t done;
    double elapsed0, start_s;
    float *x, *eps, *pred, *deps, *t;   /* (B, D) x3 and (B, D), (B,) */
    int *cls, *view;                    /* (B,) */
} trainer;

/* ------------------------------------------------------------------ helpers */

static double lr_at(const pt_setup *s, int64_t step)
{
    if (step < s->warmup)
        return s->lr * (double)(step + 1) / (double)s->warmup;
    const double span = (double)(s->steps - s->warmup);
    const double f = span > 1 ? (double)(step - s->warmup) / (span - 1) : 1.0;
    const double lo = s->lr * s->lr_final_ratio;
    return lo + 0.5 * (s->lr - lo) * (1.0 + cos(M_PI * fmin(f, 1.0)));
}

static void trainer_free(trainer *tr)
{
    sl_unet_ctx_destroy(tr->ctx), sl_unet_ctx_destroy(tr->ectx);
    sl_unet_destroy(tr->net), sl_unet_destroy(tr->ema);
    sl_adam_destroy(tr->adam);
    free(tr->x), free(tr->eps), free(tr->pred), free(tr->deps), free(tr->t);
    free(tr->cls), free(tr->view);
    pt_setup_free(&tr->s);
}

/* ------------------------------------------------------------------ log */

static sl_status log_columns(trainer *tr, int reopen, sl_error *err)
{
    char name[64], doc[200];
    sl_status st = SL_OK;
#define COL(t, nm, dc, ty, c)                                                              \
    if (st == SL_OK)                                                                       \
        st = reopen ? sl_log_table_column_open(t, nm, ty, c, err)                          \
                    : sl_log_table_column(t, nm, dc, ty, c, err)
    COL(tr->steps_t, "step", "training step (1-based)", SL_LOG_I64, &tr->c_step);
    COL(tr->steps_t, "loss", "mean squared error of the predicted noise", SL_LOG_F64,
        &tr->c_loss);
    COL(tr->steps_t, "lr", "learning rate of the step", SL_LOG_F64, &tr->c_lr);
    COL(tr->steps_t, "grad_norm", "global gradient norm before clipping", SL_LOG_F64,
        &tr->c_gnorm);
    COL(tr->steps_t, "time_s", "seconds since the start (resumes continue the clock)",
        SL_LOG_F64, &tr->c_time);
    for (int j = 0; j < PT_T_BINS; j++) {
        snprintf(name, sizeof name, "loss_t%d", j);
        snprintf(doc, sizeof doc, "loss of the step's elements with t in [%d, %d] (NaN: none)",
                 1 + 100 * j, 100 * (j + 1));
        COL(tr->steps_t, name, doc, SL_LOG_F64, &tr->c_bin[j]);
    }
    COL(tr->eval_t, "step", "steps done at the evaluation", SL_LOG_I64, &tr->e_step);
    COL(tr->eval_t, "time_s", "seconds since the start", SL_LOG_F64, &tr->e_time);
    for (int j = 0; j < PT_T_BINS; j++) {
        snprintf(name, sizeof name, "rel_score_error_t%d", j);
        snprintf(doc, sizeof doc, "EMA model: sum ||eps_net - eps_ideal||^2 / sum "
                 "||eps_ideal||^2 over the evaluation samples with t in [%d, %d]",
                 1 + 100 * j, 100 * (j + 1));
        COL(tr->eval_t, name, doc, SL_LOG_F64, &tr->e_rel[j]);
        snprintf(name, sizeof name, "score_mse_t%d", j);
        snprintf(doc, sizeof doc, "EMA model: mean over pixels of (eps_net - eps_ideal)^2 for "
                 "t in [%d, %d]", 1 + 100 * j, 100 * (j + 1));
        COL(tr->eval_t, name, doc, SL_LOG_F64, &tr->e_mse[j]);
    }
    COL(tr->eval_t, "rel_score_error_late", "relative score error over all samples with "
        "t > 200 (t >= 0.2 T)", SL_LOG_F64, &tr->e_rel_late);
#undef COL
    return st;
}

static sl_status log_open(trainer *tr, int64_t rows_steps, int64_t rows_eval, sl_error *err)
{
    const pt_setup *s = &tr->s;
    const int reopen = rows_steps >= 0;
    sl_status st = reopen ? sl_log_open_append(s->log_path, &tr->log, err)
                          : sl_log_create(s->log_path, &tr->log, err);
    if (st != SL_OK)
        return st;
    if (!reopen) {
        st = sl_log_attr_string(tr->log, "/", "name", s->name, err);
        if (st == SL_OK)
            st = sl_log_attr_string(tr->log, "/", "kind", "prior_train", err);
        if (st == SL_OK)
            st = sl_log_attr_string(tr->log, "/", "blas_core", sl_blas_core(), err);
        if (st == SL_OK)
            st = sl_log_attr_string(tr->log, "/", "spec", s->spec_text, err);
        if (st == SL_OK)
            st = sl_log_attr_int(tr->log, "/", "parameters",
                                 (int64_t)sl_unet_params(tr->net)->total, err);
        if (st == SL_OK)
            st = sl_log_table_create(tr->log, "/steps", &tr->steps_t, err);
        if (st == SL_OK)
            st = sl_log_table_create(tr->log, "/eval", &tr->eval_t, err);
    } else {
        st = sl_log_table_open(tr->log, "/steps", &tr->steps_t, err);
        if (st == SL_OK)
            st = sl_log_table_open(tr->log, "/eval", &tr->eval_t, err);
    }
    if (st == SL_OK)
        st = log_columns(tr, reopen, err);
    if (st == SL_OK && reopen)
        st = sl_log_table_truncate(tr->steps_t, rows_steps, err);
    if (st == SL_OK && reopen)
        st = sl_log_table_truncate(tr->eval_t, rows_eval, err);
    if (st == SL_OK)
        st = sl_log_start_swmr(tr->log, err);
    return st;
}

/* ------------------------------------------------------------------ checkpoints */

static sl_status ckpt_save(trainer *tr, sl_error *err)
{
    const pt_setup *s = &tr->s;
    const sl_nn_params *p = sl_unet_params(tr->net);
    const int64_t n = (int64_t)p->total;
    char buf[5][64];
    snprintf(buf[0], sizeof buf[0], "%lld", (long long)tr->done);
    snprintf(buf[1], sizeof buf[1], "%lld", (long long)sl_adam_count(tr->adam));
    snprintf(buf[2], sizeof buf[2], "%.17g", tr->elapsed0 + sl_now_s() - tr->start_s);
    snprintf(buf[3], sizeof buf[3], "%lld", (long long)sl_log_table_rows(tr->steps_t));
    snprintf(buf[4], sizeof buf[4], "%lld", (long long)sl_log_table_rows(tr->eval_t));
    sl_st_writer *w = NULL;
    sl_status st = sl_log_sync(tr->log, err);   /* the rows the checkpoint counts are on disk */
    if (st == SL_OK)
        st = sl_st_writer_create(&w, err);
    if (st == SL_OK)
        st = sl_unet_write_meta(sl_unet_config_of(tr->net), w, err);
    const char *keys[] = { "checkpoint", "spec", "steps_done", "adam_count", "elapsed_s",
                           "rows_steps", "rows_eval" };
    const char *vals[] = { "prior_train", s->spec_text, buf[0], buf[1], buf[2], buf[3], buf[4] };
    for (size_t i = 0; st == SL_OK && i < sizeof keys / sizeof keys[0]; i++)
        st = sl_st_writer_meta(w, keys[i], vals[i], err);
    if (st == SL_OK)
        st = sl_st_writer_add(w, "weights", 1, &n, p->data, err);
    if (st == SL_OK)
        st = sl_st_writer_add(w, "ema", 1, &n, sl_unet_params(tr->ema)->data, err);
    if (st == SL_OK)
        st = sl_st_writer_add(w, "adam_m", 1, &n, sl_adam_moment(tr->adam, 0, 1), err);
    if (st == SL_OK)
        st = sl_st_writer_add(w, "adam_v", 1, &n, sl_adam_moment(tr->adam, 0, 2), err);
    if (st == SL_OK)
        st = sl_st_writer_write(w, s->ckpt_path, err);
    sl_st_writer_destroy(w);
    return st;
}

static sl_status meta_i64(const sl_safetensors *st, const char *key, int64_t *out,
                          sl_error *err)
{
    const char *v = sl_safetensors_meta_get(st, key);
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || x < 0)
        return sl_error_set(err, SL_ERR_FORMAT, "checkpoint: metadata '%s' missing or not a "
                            "count", key);
    *out = x;
    return SL_OK;
}

/* Restores weights, EMA, moments and counters; opens the log at the checkpoint's rows. */
static sl_status ckpt_load(trainer *tr, sl_error *err)
{
    pt_setup *s = &tr->s;
    sl_safetensors *st = NULL;
    sl_status rc = sl_safetensors_open(s->ckpt_path, &st, err);
    if (rc != SL_OK) {
        sl_error_prefix(err, "--resume");
        return rc;
    }
    sl_unet_config c;
    char why[160];
    const char *kind = sl_safetensors_meta_get(st, "checkpoint");
    const char *spec = sl_safetensors_meta_get(st, "spec");
    int64_t count = 0, rows_s = 0, rows_e = 0;
    if (!kind || strcmp(kind, "prior_train") != 0)
        rc = sl_error_set(err, SL_ERR_FORMAT, "'%s' is not a prior-training checkpoint",
                          s->ckpt_path);
    if (rc == SL_OK)
        rc = sl_unet_read_meta(st, &c, err);
    if (rc == SL_OK && !sl_unet_config_equal(&c, &s->model, why, sizeof why))
        rc = sl_error_set(err, SL_ERR_SPEC, "--resume: the checkpoint's model differs from "
                          "the spec's: %s", why);
    if (rc == SL_OK && (!spec || strcmp(spec, s->spec_text) != 0))
        rc = sl_error_set(err, SL_ERR_SPEC, "--resume: the spec differs from the checkpoint's "
                          "in more than train.steps (%s)", s->ckpt_path);
    if (rc == SL_OK)
        rc = meta_i64(st, "steps_done", &tr->done, err);
    if (rc == SL_OK)
        rc = meta_i64(st, "adam_count", &count, err);
    if (rc == SL_OK)
        rc = meta_i64(st, "rows_steps", &rows_s, err);
    if (rc == SL_OK)
        rc = meta_i64(st, "rows_eval", &rows_e, err);
    const char *el = sl_safetensors_meta_get(st, "elapsed_s");
    tr->elapsed0 = el ? atof(el) : 0.0;
    if (rc == SL_OK && tr->done > s->steps)
        rc = sl_error_set(err, SL_ERR_SPEC, "--resume: the checkpoint has %lld steps done, more "
                          "than train.steps = %lld", (long long)tr->done, (long long)s->steps);
    const int64_t n = (int64_t)sl_unet_params(tr->net)->total;
    if (rc == SL_OK)
        rc = sl_safetensors_read_f32(st, "weights", sl_unet_params(tr->net)->data, 1, &n, err);
    if (rc == SL_OK)
        rc = sl_safetensors_read_f32(st, "ema", sl_unet_params(tr->ema)->data, 1, &n, err);
    if (rc == SL_OK)
        rc = sl_safetensors_read_f32(st, "adam_m", sl_adam_moment(tr->adam, 0, 1), 1, &n, err);
    if (rc == SL_OK)
        rc = sl_safetensors_read_f32(st, "adam_v", sl_adam_moment(tr->adam, 0, 2), 1, &n, err);
    sl_safetensors_close(st);
    if (rc != SL_OK)
        return rc;
    sl_adam_set_count(tr->adam, count);
    return log_open(tr, rows_s, rows_e, err);
}

/* ------------------------------------------------------------------ steps */

static sl_status train_step(trainer *tr, int64_t step, double *loss_out, sl_error *err)
{
    const pt_setup *s = &tr->s;
    const int B = s->batch;
    const size_t D = s->dim;
    double bin_sum[PT_T_BINS] = { 0 };
    int bin_n[PT_T_BINS] = { 0 };
    for (int b = 0; b < B; b++) {
        const pt_draw d = pt_draw_element(s, (uint32_t)step, b);
        pt_make_xt(s, &d, (uint32_t)step, b, tr->x + (size_t)b * D, tr->eps + (size_t)b * D);
        tr->t[b] = (float)d.t;
        tr->cls[b] = d.dropped ? (int)s->n_prompts : d.prompt;
        tr->view[b] = d.dropped ? SL_VIEW_BUCKETS : s->bucket[d.view];
        bin_n[pt_t_bin(d.t)]++;
    }
    sl_status st = sl_unet_forward(tr->net, tr->ctx, tr->pred, tr->x, tr->t, tr->cls,
                                   tr->view, err);
    if (st != SL_OK)
        return st;
    const double scale = 1.0 / ((double)B * (double)D);
    double loss = 0.0;
    for (int b = 0; b < B; b++) {
        double sb = 0.0;
        for (size_t i = (size_t)b * D; i < (size_t)(b + 1) * D; i++) {
            const double r = (double)tr->pred[i] - tr->eps[i];
            sb += r * r;
            tr->deps[i] = (float)(2.0 * r * scale);
        }
        loss += sb;
        bin_sum[pt_t_bin((int)tr->t[b])] += sb / (double)D;
    }
    loss *= scale;
    sl_nn_params *p = sl_unet_params(tr->net);
    sl_nn_params_zero_grad(p);
    st = sl_unet_backward(tr->net, tr->ctx, NULL, tr->deps, 1, err);
    if (st != SL_OK)
        return st;
    if (!isfinite(loss))
        return sl_error_set(err, SL_ERR_NONFINITE, "step %lld: the loss is not finite",
                            (long long)step + 1);
    const sl_param_group g = sl_nn_params_group(p, "unet");
    const double gnorm = sl_grad_norm(&g, 1);
    if (s->grad_clip > 0 && gnorm > s->grad_clip)
        sl_grad_scale(&g, 1, s->grad_clip / gnorm);
    const double lr = lr_at(s, step);
    sl_adam_set_lr(tr->adam, 0, sl_schedule_constant(lr));
    sl_adam_step(tr->adam, step);
    /* EMA, its decay warmed up so the average is not dominated by the initial weights. */
    const double k = (double)sl_adam_count(tr->adam);
    const float dec = (float)fmin(s->ema_decay, (1.0 + k) / (10.0 + k));
    float *e = sl_unet_params(tr->ema)->data;
    for (size_t i = 0; i < p->total; i++)
        e[i] = dec * e[i] + (1.0f - dec) * p->data[i];

    sl_log_table_set(tr->steps_t, tr->c_step, (double)(step + 1));
    sl_log_table_set(tr->steps_t, tr->c_loss, loss);
    sl_log_table_set(tr->steps_t, tr->c_lr, lr);
    sl_log_table_set(tr->steps_t, tr->c_gnorm, gnorm);
    sl_log_table_set(tr->steps_t, tr->c_time, tr->elapsed0 + sl_now_s() - tr->start_s);
    for (int j = 0; j < PT_T_BINS; j++)
        if (bin_n[j])
            sl_log_table_set(tr->steps_t, tr->c_bin[j], bin_sum[j] / bin_n[j]);
    *loss_out = loss;
    return sl_log_table_commit_row(tr->steps_t, err);
}

/* Prints and returns the relative score error over t > 200. */
static void report_errors(FILE *out, const pt_setup *s, const double e2[PT_T_BINS],
                          const double r2[PT_T_BINS], const int n[PT_T_BINS])
{
    double late_e = 0.0, late_r = 0.0, late_g = 0.0;
    fprintf(out, "  t-bin        samples  rel. score error  mse(eps_net - eps_ideal)  "
                 "N(0,I) yardstick\n");
    for (int j = 0; j < PT_T_BINS; j++) {
        fprintf(out, "  [%4d, %4d]  %7d  %16.4f  %24.5f  %16.4f\n", 1 + 100 * j, 100 * (j + 1),
                n[j], n[j] ? e2[j] / r2[j] : NAN, n[j] ? e2[j] / ((double)n[j] * s->dim) : NAN,
                n[j] ? s->eval_gauss_err2[j] / r2[j] : NAN);
        if (j >= 2)
            late_e += e2[j], late_r += r2[j], late_g += s->eval_gauss_err2[j];
    }
    fprintf(out, "  relative score error over t > 200: %.4f (yardstick %.4f)\n",
            late_r > 0 ? late_e / late_r : NAN, late_r > 0 ? late_g / late_r : NAN);
}

static sl_status evaluate(trainer *tr, sl_error *err)
{
    double e2[PT_T_BINS], r2[PT_T_BINS];
    int n[PT_T_BINS];
    sl_status st = pt_score_error(&tr->s, tr->ema, tr->ectx, e2, r2, n, err);
    if (st != SL_OK)
        return st;
    double late_e = 0.0, late_r = 0.0;
    sl_log_table_set(tr->eval_t, tr->e_step, (double)tr->done);
    sl_log_table_set(tr->eval_t, tr->e_time, tr->elapsed0 + sl_now_s() - tr->start_s);
    for (int j = 0; j < PT_T_BINS; j++) {
        if (!n[j])
            continue;
        sl_log_table_set(tr->eval_t, tr->e_rel[j], e2[j] / r2[j]);
        sl_log_table_set(tr->eval_t, tr->e_mse[j], e2[j] / ((double)n[j] * tr->s.dim));
        if (j >= 2)
            late_e += e2[j], late_r += r2[j];
    }
    if (late_r > 0)
        sl_log_table_set(tr->eval_t, tr->e_rel_late, late_e / late_r);
    sl_status st2 = sl_log_table_commit_row(tr->eval_t, err);
    /* Readers (h5py with swmr=True) see the rows up to each evaluation. */
    return st2 == SL_OK ? sl_log_flush(tr->log, err) : st2;
}

static sl_status save_weights(trainer *tr, sl_error *err)
{
    const pt_setup *s = &tr->s;
    const size_t n = s->n_prompts;
    char **keys = calloc(n + 3, sizeof *keys), **vals = calloc(n + 3, sizeof *vals);
    char steps[32];
    snprintf(steps, sizeof steps, "%lld", (long long)tr->done);
    sl_status st = keys && vals ? SL_OK : sl_error_set(err, SL_ERR_NOMEM, "out of memory");
    for (size_t k = 0; st == SL_OK && k < n; k++) {
        keys[k] = malloc(32);
        if (!keys[k]) {
            st = sl_error_set(err, SL_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(keys[k], 32, "classes.%zu", k);
        vals[k] = (char *)s->prompts[k];
    }
    if (st == SL_OK) {
        keys[n] = "diffusion", vals[n] = "default";
        keys[n + 1] = "steps", vals[n + 1] = steps;
        keys[n + 2] = "teacher", vals[n + 2] = (char *)s->teachers[0].plugin->name;
        st = sl_make_dirs(s->weights_path, 0, err);
        if (st == SL_OK)
            st = sl_unet_save(tr->ema, s->weights_path, (const char *const *)keys,
                              (const char *const *)vals, n + 3, err);
    }
    for (size_t k = 0; keys && k < n; k++)
        free(keys[k]);
    free(keys), free(vals);
    return st;
}

/* ------------------------------------------------------------------ commands */

static sl_status trainer_init(trainer *tr, int eval_batch, sl_error *err)
{
    const pt_setup *s = &tr->s;
    sl_status st = sl_unet_create(&s->model, &tr->net, err);
    if (st == SL_OK)
        st = sl_unet_create(&s->model, &tr->ema, err);
    if (st == SL_OK)
        st = sl_unet_ctx_create(tr->net, s->batch, &tr->ctx, err);
    if (st == SL_OK)
        st = sl_unet_ctx_create(tr->ema, eval_batch, &tr->ectx, err);
    if (st != SL_OK)
        return st;
    sl_nn_params *p = sl_unet_params(tr->net);
    const sl_rng_key key = { s->seed, 0, SL_STREAM_INIT, 0 };
    sl_nn_params_randomize(p, key);
    memcpy(sl_unet_params(tr->ema)->data, p->data, p->total * sizeof(float));
    const sl_param_group g = sl_nn_params_group(p, "unet");
    const sl_adam_config cfg = { .lr = sl_schedule_constant(s->lr), .beta1 = 0.9,
                                 .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0 };
    st = sl_adam_create(&g, &cfg, 1, &tr->adam, err);
    const size_t BD = (size_t)s->batch * s->dim;
    tr->x = malloc(BD * sizeof(float));
    tr->eps = malloc(BD * sizeof(float));
    tr->pred = malloc(BD * sizeof(float));
    tr->deps = malloc(BD * sizeof(float));
    tr->t = malloc((size_t)s->batch * sizeof(float));
    tr->cls = malloc((size_t)s->batch * sizeof(int));
    tr->view = malloc((size_t)s->batch * sizeof(int));
    if (st == SL_OK && !(tr->x && tr->eps && tr->pred && tr->deps && tr->t && tr->cls && tr->view))
        st = sl_error_set(err, SL_ERR_NOMEM, "out of memory for a batch of %d", s->batch);
    return st;
}

static sl_status train(trainer *tr, int resume, int64_t stop_at, sl_error *err)
{
    pt_setup *s = &tr->s;
    sl_status st = trainer_init(tr, s->n_eval < 32 ? s->n_eval : 32, err);
    if (st == SL_OK)
        st = sl_make_dirs(s->log_path, 0, err);
    if (st == SL_OK)
        st = resume ? ckpt_load(tr, err) : log_open(tr, -1, -1, err);
    if (st != SL_OK)
        return st;
    const sl_unet_config *c = &s->model;
    printf("prior train '%s': %zu prompts x %zu views of %dx%d, teacher '%s'; UNet %d levels "
           "of %d base channels, %zu parameters; %lld steps of %d%s\n", s->name, s->n_prompts,
           s->n_views, s->res, s->res, s->teachers[0].plugin->name, c->levels, c->base_channels,
           sl_unet_params(tr->net)->total, (long long)s->steps, s->batch,
           resume ? " (resumed)" : "");
    if (resume)
        printf("resumed at step %lld from %s\n", (long long)tr->done, s->ckpt_path);
    tr->start_s = sl_now_s();
    sl_progress prog;
    sl_progress_start(&prog, stdout, SL_PROGRESS_AUTO, tr->done, s->steps);
    void (*old_int)(int) = signal(SIGINT, on_signal);
    void (*old_term)(int) = signal(SIGTERM, on_signal);
    int stopped = 0;
    while (st == SL_OK && tr->done < s->steps) {
        double loss = 0.0;
        st = train_step(tr, tr->done, &loss, err);
        if (st != SL_OK)
            break;
        tr->done++;
        sl_progress_update(&prog, tr->done, loss);
        if (tr->done % s->eval_every == 0 || tr->done == s->steps)
            st = evaluate(tr, err);
        stopped = (g_stop || (stop_at > 0 && tr->done >= stop_at)) && tr->done < s->steps;
        if (st == SL_OK && (tr->done % s->checkpoint_every == 0 || tr->done == s->steps ||
                            stopped))
            st = ckpt_save(tr, err);
        if (stopped)
            break;
    }
    sl_progress_finish(&prog);
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    if (st == SL_OK && !stopped) {
        printf("score error of the EMA weights against the teachers' exact denoiser (%d "
               "samples):\n", s->n_eval);
        double e2[PT_T_BINS], r2[PT_T_BINS];
        int n[PT_T_BINS];
        st = pt_score_error(s, tr->ema, tr->ectx, e2, r2, n, err);
        if (st == SL_OK)
            report_errors(stdout, s, e2, r2, n);
        if (st == SL_OK)
            st = save_weights(tr, err);
        if (st == SL_OK)
            printf("weights: %s\n", s->weights_path);
    }
    char dur[32];
    sl_format_duration(tr->elapsed0 + sl_now_s() - tr->start_s, dur, sizeof dur);
    printf("%lld of %lld steps in %s%s\n", (long long)tr->done, (long long)s->steps, dur,
           stopped ? " (stopped; continue with --resume)" : "");
    sl_error cerr;
    sl_status cst = sl_log_close(tr->log, &cerr);
    tr->log = NULL;
    if (st == SL_OK && cst != SL_OK) {
        *err = cerr;
        st = cst;
    }
    printf("log: %s\n", s->log_path);
    return st == SL_OK && stopped ? SL_ERR_INTERRUPTED : st;
}

static sl_status eval_weights(trainer *tr, const char *weights, sl_error *err)
{
    pt_setup *s = &tr->s;
    const char *path = weights ? weights : s->weights_path;
    sl_safetensors *st = NULL;
    sl_status rc = sl_safetensors_open(path, &st, err);
    if (rc == SL_OK)
        rc = sl_unet_load(st, &tr->ema, err);
    if (rc == SL_OK) {
        const sl_unet_config *c = sl_unet_config_of(tr->ema);
        if (c->image_size != s->res || c->classes != (int)s->n_prompts)
            rc = sl_error_set(err, SL_ERR_FORMAT, "'%s' is a %dx%d model of %d classes; the "
                              "spec has %dx%d views of %zu prompts", path, c->image_size,
                              c->image_size, c->classes, s->res, s->res, s->n_prompts);
        for (size_t k = 0; rc == SL_OK && k < s->n_prompts; k++) {
            char key[32];
            snprintf(key, sizeof key, "classes.%zu", k);
            const char *name = sl_safetensors_meta_get(st, key);
            if (!name || strcmp(name, s->prompts[k]) != 0)
                rc = sl_error_set(err, SL_ERR_FORMAT, "'%s': class %zu is '%s', the spec's "
                                  "prompt %zu is '%s'", path, k, name ? name : "(none)", k,
                                  s->prompts[k]);
        }
    }
    sl_safetensors_close(st);
    if (rc == SL_OK)
        rc = sl_unet_ctx_create(tr->ema, s->n_eval < 32 ? s->n_eval : 32, &tr->ectx, err);
    if (rc != SL_OK)
        return rc;
    double e2[PT_T_BINS], r2[PT_T_BINS];
    int n[PT_T_BINS];
    const double t0 = sl_now_s();
    rc = pt_score_error(s, tr->ema, tr->ectx, e2, r2, n, err);
    if (rc == SL_OK) {
        printf("%s: score error against the teacher's exact denoiser (%d samples, %.2f s):\n",
               path, s->n_eval, sl_now_s() - t0);
        report_errors(stdout, s, e2, r2, n);
    }
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: steinlab prior train SPEC.yaml [key.sub=value ...] [--threads N] "
                    "[--resume] [--stop-at STEP]\n"
                    "       steinlab prior eval SPEC.yaml [key.sub=value ...] [--weights FILE] "
                    "[--threads N]\n");
    return 2;
}

int sl_cmd_prior(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "train") && strcmp(argv[1], "eval")))
        return usage();
    const int is_train = !strcmp(argv[1], "train");
    const char *spec = NULL, *weights = NULL;
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    size_t n_over = 0;
    int resume = 0;
    long long stop_at = 0;
    if (!overrides)
        return 1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (!strcmp(a, "--threads") && i + 1 < argc) {
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "steinlab prior: --threads expects an integer in [1, 1024], "
                                "found '%s'\n", argv[i]);
                free(overrides);
                return 2;
            }
            omp_set_num_threads((int)n);
        } else if (is_train && !strcmp(a, "--resume")) {
            resume = 1;
        } else if (is_train && !strcmp(a, "--stop-at") && i + 1 < argc) {
            stop_at = strtoll(argv[++i], &end, 10);
            if (*end || stop_at < 1) {
                fprintf(stderr, "steinlab prior: --stop-at expects a step >= 1, found '%s'\n",
                        argv[i]);
                free(overrides);
                return 2;
            }
        } else if (!is_train && !strcmp(a, "--weights") && i + 1 < argc) {
            weights = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "steinlab prior %s: unknown option '%s'\n", argv[1], a);
            free(overrides);
            return usage();
        } else if (!spec && !strchr(a, '=')) {
            spec = a;
        } else {
            overrides[n_over++] = a;
        }
    }
    if (!spec) {
        free(overrides);
        return usage();
    }
    trainer tr;
    memset(&tr, 0, sizeof tr);
    sl_error err = { "" };
    sl_status st = pt_setup_create(spec, overrides, n_over, &tr.s, &err);
    free(overrides);
    if (st == SL_OK)
        st = is_train ? train(&tr, resume, stop_at, &err) : eval_weights(&tr, weights, &err);
    if (st != SL_OK && st != SL_ERR_INTERRUPTED)
        fprintf(stderr, "error: %s\n", err.msg);
    sl_log_close(tr.log, NULL);
    trainer_free(&tr);
    return sl_exit_code(st);
}
