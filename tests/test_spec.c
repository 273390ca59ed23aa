/* tests/test_spec.c — YAML specs, overrides, emission and parameter validation.
 *
 * The heart of it is a table of bad specs, each with the exact message a user would see:
 * the position, the dotted key, what was expected, what was found and the suggestion are
 * the product here, so they are pinned character for character. */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

/* ---------------------------------------------------------------------------------- */
/* Schemas used throughout                                                             */

static const sl_param_def top_defs[] = {
    { "steps", SL_PARAM_INT, 0, "1000", 1, 10000000, NULL, 0, 0, "optimization steps" },
    { "seed", SL_PARAM_INT, 0, NULL, -INFINITY, INFINITY, NULL, 0, 0, "random seed" },
    { "name", SL_PARAM_STRING, 0, "run", 0, 0, NULL, 0, 0, "run name" },
    { "fp16", SL_PARAM_BOOL, 0, "false", 0, 0, NULL, 0, 0, "half precision" },
};
static const sl_param_def est_defs[] = {
    { "guidance_scale", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, "100", 0, INFINITY, NULL, 0, 0,
      "classifier-free guidance scale" },
    { "t_range", SL_PARAM_FLOAT_LIST, SL_PARAM_SCHEDULABLE, "[0.02, 0.98]", 0, 1, NULL, 2, 2,
      "diffusion time range, fractions of T" },
    { "weighting", SL_PARAM_CHOICE, 0, "sds", 0, 0, "sds|uniform|fantasia3d", 0, 0,
      "w(t) of the estimator" },
};
static const sl_param_def opt_defs[] = {
    { "lr", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, "0.01", 0, INFINITY, NULL, 0, 0,
      "learning rate" },
    { "betas", SL_PARAM_FLOAT_LIST, 0, "[0.9, 0.999]", 0, 1, NULL, 2, 2, "Adam betas" },
    { "eps", SL_PARAM_FLOAT, 0, "1e-15", 0, INFINITY, NULL, 0, 0, "Adam epsilon" },
};
static const sl_param_def prior_defs[] = {
    { "images", SL_PARAM_STRING_LIST, SL_PARAM_REQUIRED, NULL, 0, 0, NULL, 0, 0,
      "reference images" },
    { "prompt", SL_PARAM_STRING, 0, "", 0, 0, NULL, 0, 0, "text prompt" },
};

static const char *const top_reserved[] = { "estimator", "optimizer", "prior", NULL };
static const char *const plugin_reserved[] = { "plugin", "label", NULL };

/* Resolves one named section of root ("" for the root itself) with its schema. */
static sl_status resolve_section(const sl_node *root, const char *section, sl_params **out,
                                 sl_error *err)
{
    if (strcmp(section, "") == 0)
        return sl_params_resolve(root, "", &SL_PARAM_SCHEMA(top_defs), top_reserved, out, err);
    const sl_node *sec = sl_node_get(root, section);
    if (strcmp(section, "estimator") == 0)
        return sl_params_resolve(sec, section, &SL_PARAM_SCHEMA(est_defs), plugin_reserved,
                                 out, err);
    if (strcmp(section, "optimizer") == 0)
        return sl_params_resolve(sec, section, &SL_PARAM_SCHEMA(opt_defs), NULL, out, err);
    return sl_params_resolve(sec, section, &SL_PARAM_SCHEMA(prior_defs), NULL, out, err);
}

static sl_node *parse_ok(const char *yaml)
{
    sl_node *root = NULL;
    sl_error err = { { 0 } };
    sl_status st = sl_spec_parse_string(yaml, strlen(yaml), "exp.yaml", &root, &err);
    ck_assert_msg(st == SL_OK, "parse failed: %s", err.msg);
    return root;
}

/* ---------------------------------------------------------------------------------- */
/* The table of bad specs                                                              */

#define SCHED "[start_step, start_value, end_value, end_step]"

typedef struct bad_case {
    const char *yaml;
    const char *override[2];  /* applied in order; NULL: none */
    const char *section;      /* resolved after the overrides */
    const char *msg;          /* the exact error */
} bad_case;

static const bad_case bad_cases[] = {
    /* unknown key, close to a schema name */
    { "estimator:\n  plugin: sds\n  guidance_scal: 7.5\n", { NULL }, "estimator",
      "exp.yaml:3:3: estimator.guidance_scal: unknown key (expected one of: guidance_scale, "
      "t_range, weighting); did you mean 'guidance_scale'?" },
    /* unknown key, close to nothing */
    { "estimator:\n  colour: red\n", { NULL }, "estimator",
      "exp.yaml:2:3: estimator.colour: unknown key (expected one of: guidance_scale, t_range, "
      "weighting)" },
    /* unknown key, close to a reserved one */
    { "estimator:\n  plugn: sds\n", { NULL }, "estimator",
      "exp.yaml:2:3: estimator.plugn: unknown key (expected one of: guidance_scale, t_range, "
      "weighting); did you mean 'plugin'?" },
    /* unknown key at the root: no leading dot */
    { "stepz: 10\n", { NULL }, "",
      "exp.yaml:1:1: stepz: unknown key (expected one of: steps, seed, name, fp16); "
      "did you mean 'steps'?" },
    /* wrong types */
    { "steps: abc\n", { NULL }, "",
      "exp.yaml:1:8: steps: expected an integer in [1, 10000000], found 'abc'" },
    { "steps: 1e3\n", { NULL }, "",
      "exp.yaml:1:8: steps: expected an integer in [1, 10000000], found '1e3'" },
    { "optimizer:\n  lr: {a: 1}\n", { NULL }, "optimizer",
      "exp.yaml:2:7: optimizer.lr: expected a number in [0, inf] or a schedule " SCHED
      ", found a map" },
    { "name: [a, b]\n", { NULL }, "",
      "exp.yaml:1:7: name: expected a string, found a list of 2 elements" },
    { "fp16: \"true\"\n", { NULL }, "",
      "exp.yaml:1:7: fp16: expected true or false, found the string \"true\"" },
    { "fp16: yes\n", { NULL }, "", "exp.yaml:1:7: fp16: expected true or false, found 'yes'" },
    { "optimizer:\n  eps: .nan\n", { NULL }, "optimizer",
      "exp.yaml:2:8: optimizer.eps: expected a number in [0, inf], found '.nan'" },
    { "optimizer:\n  eps: 1e999\n", { NULL }, "optimizer",
      "exp.yaml:2:8: optimizer.eps: expected a number in [0, inf], found '1e999'" },
    { "estimator: sds\n", { NULL }, "estimator",
      "exp.yaml:1:12: estimator: expected a map, found 'sds'" },
    { "prior:\n  images: [a, [b]]\n", { NULL }, "prior",
      "exp.yaml:2:15: prior.images[1]: expected a string, found a list of 1 element" },
    /* out of range */
    { "steps: 0\n", { NULL }, "",
      "exp.yaml:1:8: steps: expected an integer in [1, 10000000], found '0'" },
    { "steps: 99999999999999999999\n", { NULL }, "",
      "exp.yaml:1:8: steps: expected an integer in [1, 10000000], found "
      "'99999999999999999999'" },
    { "estimator:\n  t_range: [0.02, 1.5]\n", { NULL }, "estimator",
      "exp.yaml:2:19: estimator.t_range[1]: expected a number in [0, 1], found '1.5'" },
    { "optimizer:\n  lr: -0.1\n", { NULL }, "optimizer",
      "exp.yaml:2:7: optimizer.lr: expected a number in [0, inf], found '-0.1'" },
    /* bad choice */
    { "estimator:\n  weighting: sdss\n", { NULL }, "estimator",
      "exp.yaml:2:14: estimator.weighting: expected one of sds|uniform|fantasia3d, found "
      "'sdss'; did you mean 'sds'?" },
    { "estimator:\n  weighting: linear\n", { NULL }, "estimator",
      "exp.yaml:2:14: estimator.weighting: expected one of sds|uniform|fantasia3d, found "
      "'linear'" },
    /* list length */
    { "estimator:\n  t_range: [0.5]\n", { NULL }, "estimator",
      "exp.yaml:2:12: estimator.t_range: expected a list of 2 numbers in [0, 1] (each may be "
      "a schedule " SCHED "), found a list of 1 element" },
    { "optimizer:\n  betas: [0.9, 0.99, 0.999]\n", { NULL }, "optimizer",
      "exp.yaml:2:10: optimizer.betas: expected a list of 2 numbers in [0, 1], found a list "
      "of 3 elements" },
    /* malformed schedules */
    { "optimizer:\n  lr: [0, 0.01, 100]\n", { NULL }, "optimizer",
      "exp.yaml:2:7: optimizer.lr: expected a number in [0, inf] or a schedule " SCHED
      ", found a list of 3 elements" },
    { "optimizer:\n  lr: [500, 0.01, 0.001, 100]\n", { NULL }, "optimizer",
      "exp.yaml:2:7: optimizer.lr: expected a schedule with start_step <= end_step, found "
      "start_step 500 > end_step 100" },
    { "optimizer:\n  lr: [-1, 0.01, 0.001, 100]\n", { NULL }, "optimizer",
      "exp.yaml:2:8: optimizer.lr[0]: expected a step (an integer >= 0), found '-1'" },
    { "optimizer:\n  lr: [0, 0.01, -2, 100]\n", { NULL }, "optimizer",
      "exp.yaml:2:17: optimizer.lr[2]: expected a number in [0, inf], found '-2'" },
    { "estimator:\n  t_range: [[0, 0.9, 0.5], 0.98]\n", { NULL }, "estimator",
      "exp.yaml:2:13: estimator.t_range[0]: expected a number in [0, 1] or a schedule " SCHED
      ", found a list of 3 elements" },
    /* missing required key: at the section */
    { "steps: 10\nprior:\n  prompt: a cat\n", { NULL }, "prior",
      "exp.yaml:3:3: prior.images: missing required key (expected a list of strings)" },
    { "steps: 10\n", { NULL }, "prior",
      "<spec>:0:0: prior.images: missing required key (expected a list of strings)" },
    /* parse errors */
    { "steps: 10\nseed: 1\nsteps: 20\n", { NULL }, "",
      "exp.yaml:3:1: steps: duplicate key (first given at line 1, column 1)" },
    { "estimator:\n  weighting: sds\n  weighting: uniform\n", { NULL }, "estimator",
      "exp.yaml:3:3: estimator.weighting: duplicate key (first given at line 2, column 3)" },
    { "steps: [1, 2\nseed: 3\n", { NULL }, "",
      "exp.yaml:2:5: YAML syntax error: did not find expected ',' or ']'" },
    { "steps: 10\n  seed: 3\n", { NULL }, "",
      "exp.yaml:2:7: YAML syntax error: mapping values are not allowed in this context" },
    { "base: &lr 0.01\n", { NULL }, "",
      "exp.yaml:1:7: base: anchors are not allowed (specs are plain data), found '&lr'" },
    { "optimizer:\n  lr: *lr\n", { NULL }, "optimizer",
      "exp.yaml:2:7: optimizer.lr: aliases are not allowed (specs are plain data), found '*lr'" },
    { "steps: !!int 3\n", { NULL }, "",
      "exp.yaml:1:8: steps: tags are not allowed (specs are plain data), found "
      "'tag:yaml.org,2002:int'" },
    { "steps: 1\n---\nsteps: 2\n", { NULL }, "",
      "exp.yaml:2:1: expected a single YAML document, found a second one" },
    /* override errors */
    { "steps: 10\n", { "steps" }, "",
      "<command line>:1:1: expected KEY=VALUE, found 'steps'" },
    { "steps: 10\n", { "=3" }, "",
      "<command line>:1:1: expected KEY=VALUE with a non-empty key, found '=3'" },
    { "steps: 10\n", { "estimator..plugin=vsd" }, "",
      "<command line>:1:11: expected a dotted key of non-empty names, found "
      "'estimator..plugin'" },
    { "steps: 10\n", { "steps.max=3" }, "",
      "<command line>:1:1: steps: expected a map to set 'steps.max' in, found '10' "
      "(at exp.yaml:1:8)" },
    { "optimizer:\n  lr: 0.1\n", { "optimizer.lr.value=3" }, "",
      "<command line>:1:11: optimizer.lr: expected a map to set 'optimizer.lr.value' in, "
      "found '0.1' (at exp.yaml:2:7)" },
    { "estimator:\n  plugin: sds\n", { "estimator.guidance_scale=abc" }, "estimator",
      "<command line>:1:26: estimator.guidance_scale: expected a number in [0, inf] or a "
      "schedule " SCHED ", found 'abc'" },
    { "", { "optimizer.betas=[0.9]" }, "optimizer",
      "<command line>:1:17: optimizer.betas: expected a list of 2 numbers in [0, 1], found a "
      "list of 1 element" },
    { "", { "optimizer.lr=[0, 1, 2, x]" }, "optimizer",
      "<command line>:1:24: optimizer.lr[3]: expected a step (an integer >= 0), found 'x'" },
    { "", { "name=[1, 2" }, "",
      "<command line>:1:11: YAML syntax error: did not find expected ',' or ']'" },
    { "", { "optimizer.lr=*base_lr" }, "optimizer",
      "<command line>:1:14: optimizer.lr: aliases are not allowed (specs are plain data), "
      "found '*base_lr'" },
    { "steps: \xff\n", { NULL }, "",
      "exp.yaml:1:8: YAML syntax error: invalid leading UTF-8 octet" },
    { "", { "estimator.weighting=sdss" }, "estimator",
      "<command line>:1:21: estimator.weighting: expected one of sds|uniform|fantasia3d, "
      "found 'sdss'; did you mean 'sds'?" },
};

START_TEST(test_bad_spec)
{
    const bad_case *c = &bad_cases[_i];
    sl_node *root = NULL;
    sl_params *p = NULL;
    sl_error err = { { 0 } };
    sl_status st = sl_spec_parse_string(c->yaml, strlen(c->yaml), "exp.yaml", &root, &err);
    for (size_t k = 0; st == SL_OK && k < 2 && c->override[k]; k++)
        st = sl_spec_override(root, c->override[k], &err);
    if (st == SL_OK)
        st = resolve_section(root, c->section, &p, &err);
    ck_assert_msg(st == SL_ERR_SPEC, "case %d: expected SL_ERR_SPEC, got %s", _i,
                  sl_status_name(st));
    ck_assert_msg(strcmp(err.msg, c->msg) == 0, "case %d:\n  got:      %s\n  expected: %s", _i,
                  err.msg, c->msg);
    ck_assert_ptr_null(strchr(err.msg, '\n'));
    ck_assert_ptr_null(p);
    sl_node_free(root);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Parsing                                                                             */

START_TEST(test_parse_positions)
{
    sl_node *root = parse_ok("# comment\nsteps: 10\nestimator:\n  plugin: \"sds\"\n"
                             "  t_range: [0.02, 0.98]\nlist:\n  - a\n  - {x: 1}\n");
    ck_assert_int_eq(root->kind, SL_NODE_MAP);
    ck_assert_uint_eq(root->n, 3);
    ck_assert_str_eq(root->file, "exp.yaml");
    sl_node *steps = sl_node_get(root, "steps");
    ck_assert_int_eq(steps->kind, SL_NODE_SCALAR);
    ck_assert_str_eq(steps->text, "10");
    ck_assert(!steps->quoted);
    ck_assert_int_eq(steps->line, 2);
    ck_assert_int_eq(steps->col, 8);
    ck_assert_int_eq(root->keys[0]->line, 2);
    ck_assert_int_eq(root->keys[0]->col, 1);
    sl_node *est = sl_node_get(root, "estimator");
    ck_assert_int_eq(est->kind, SL_NODE_MAP);
    ck_assert_int_eq(est->line, 4);
    ck_assert_int_eq(est->col, 3);
    sl_node *plugin = sl_node_get(est, "plugin");
    ck_assert_str_eq(plugin->text, "sds");
    ck_assert(plugin->quoted);
    ck_assert_int_eq(plugin->col, 11);
    sl_node *tr = sl_node_get(est, "t_range");
    ck_assert_int_eq(tr->kind, SL_NODE_SEQ);
    ck_assert_uint_eq(tr->n, 2);
    ck_assert_int_eq(tr->items[1]->line, 5);
    ck_assert_int_eq(tr->items[1]->col, 19);
    sl_node *list = sl_node_get(root, "list");
    ck_assert_int_eq(list->kind, SL_NODE_SEQ);
    ck_assert_int_eq(list->items[1]->kind, SL_NODE_MAP);
    ck_assert_int_eq(list->items[1]->line, 8);
    ck_assert_int_eq(list->items[1]->col, 5);
    ck_assert_ptr_null(sl_node_get(root, "missing"));
    ck_assert_ptr_null(sl_node_get(steps, "x"));
    ck_assert_ptr_null(sl_node_get(NULL, "x"));
    sl_node_free(root);
}
END_TEST

START_TEST(test_parse_empty_documents)
{
    const char *texts[] = { "", "# only a comment\n", "---\n", "{}\n", "\n\n" };
    for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
        sl_node *root = parse_ok(texts[k]);
        ck_assert_int_eq(root->kind, SL_NODE_MAP);
        ck_assert_uint_eq(root->n, 0);
        sl_node_free(root);
    }
}
END_TEST

START_TEST(test_parse_file)
{
    const char *src = getenv("STEINLAB_SOURCE_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/specs/basic.yaml", src ? src : ".");
    sl_node *root = NULL;
    sl_error err = { { 0 } };
    ck_assert_msg(sl_spec_parse_file(path, &root, &err) == SL_OK, "%s", err.msg);
    ck_assert_str_eq(root->file, path);
    sl_node *gs = sl_node_get(sl_node_get(root, "estimator"), "guidance_scale");
    ck_assert_int_eq(gs->line, 6);
    ck_assert_str_eq(gs->items[3]->file, path);

    sl_params *p = NULL;
    ck_assert_msg(resolve_section(root, "estimator", &p, &err) == SL_OK, "%s", err.msg);
    sl_schedule s = sl_params_schedule(p, "guidance_scale");
    ck_assert(s.start_step == 0 && s.start_value == 100 && s.end_value == 7.5 &&
              s.end_step == 200);
    sl_params_free(p);
    ck_assert_msg(resolve_section(root, "", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_params_int(p, "steps"), 250);
    ck_assert_str_eq(sl_params_string(p, "name"), "basic run");
    sl_params_free(p);
    sl_node_free(root);

    ck_assert_int_eq(sl_spec_parse_file("/nonexistent/spec.yaml", &root, &err), SL_ERR_IO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/spec.yaml"));
    ck_assert_ptr_null(root);
}
END_TEST

START_TEST(test_error_at)
{
    sl_error err;
    ck_assert_int_eq(sl_spec_error_at(&err, NULL, "a.b", "expected %s, found %d", "x", 3),
                     SL_ERR_SPEC);
    ck_assert_str_eq(err.msg, "<spec>:0:0: a.b: expected x, found 3");
    sl_node *root = parse_ok("a:\n  b: 1\n");
    sl_spec_error_at(&err, sl_node_get(sl_node_get(root, "a"), "b"), "a.b", "bad");
    ck_assert_str_eq(err.msg, "exp.yaml:2:6: a.b: bad");
    sl_spec_error_at(&err, root, "", "line\nbreak");
    ck_assert_str_eq(err.msg, "exp.yaml:1:1: line break");
    sl_node_free(root);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Overrides                                                                           */

START_TEST(test_override_nested)
{
    sl_node *root = parse_ok("estimator:\n  plugin: sds\nsteps: 10\n");
    sl_error err = { { 0 } };
    ck_assert_int_eq(sl_spec_override(root, "a.b.c=3", &err), SL_OK);
    sl_node *c = sl_node_get(sl_node_get(sl_node_get(root, "a"), "b"), "c");
    ck_assert_ptr_nonnull(c);
    ck_assert_str_eq(c->text, "3");
    ck_assert_str_eq(c->file, "<command line>");
    ck_assert_int_eq(c->line, 1);
    ck_assert_int_eq(c->col, 7);
    sl_node *a = sl_node_get(root, "a");
    ck_assert_int_eq(a->kind, SL_NODE_MAP);
    ck_assert_str_eq(root->keys[2]->text, "a");
    ck_assert_int_eq(a->keys[0]->col, 3);  /* "b" within the argument */

    /* replacing keeps the key's place; the value is parsed as YAML */
    ck_assert_int_eq(sl_spec_override(root, "estimator.plugin=vsd", &err), SL_OK);
    ck_assert_str_eq(sl_node_get(sl_node_get(root, "estimator"), "plugin")->text, "vsd");
    ck_assert_int_eq(sl_spec_override(root, "steps=[1, 2]", &err), SL_OK);
    sl_node *steps = sl_node_get(root, "steps");
    ck_assert_int_eq(steps->kind, SL_NODE_SEQ);
    ck_assert_int_eq(steps->items[1]->col, 11);
    ck_assert_str_eq(root->keys[1]->text, "steps");
    ck_assert_int_eq(sl_spec_override(root, "opt={lr: 0.1, betas: [0.9, 0.99]}", &err), SL_OK);
    ck_assert_str_eq(sl_node_get(sl_node_get(root, "opt"), "lr")->text, "0.1");
    ck_assert_int_eq(sl_spec_override(root, "name=\"123\"", &err), SL_OK);
    ck_assert(sl_node_get(root, "name")->quoted);
    ck_assert_int_eq(sl_spec_override(root, "empty=", &err), SL_OK);
    ck_assert_str_eq(sl_node_get(root, "empty")->text, "");
    ck_assert(!sl_node_get(root, "empty")->quoted);
    ck_assert_int_eq(sl_spec_override(root, "eq=a=b", &err), SL_OK);
    ck_assert_str_eq(sl_node_get(root, "eq")->text, "a=b");
    sl_node_free(root);
}
END_TEST

START_TEST(test_override_then_resolve)
{
    sl_node *root = parse_ok("estimator:\n  plugin: sds\n  guidance_scale: 7.5\n");
    sl_error err = { { 0 } };
    ck_assert_int_eq(sl_spec_override(root, "estimator.guidance_scale=[0, 100, 7.5, 500]", &err),
                     SL_OK);
    ck_assert_int_eq(sl_spec_override(root, "estimator.weighting=uniform", &err), SL_OK);
    sl_params *p = NULL;
    ck_assert_msg(resolve_section(root, "estimator", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert_str_eq(sl_params_string(p, "weighting"), "uniform");
    ck_assert(sl_params_float(p, "guidance_scale") == 100);
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "[0, 100, 7.5, 500]");
    sl_params_free(p);
    sl_node_free(root);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Emitting                                                                            */

static bool node_equal(const sl_node *a, const sl_node *b)
{
    if (a->kind != b->kind || a->n != b->n)
        return false;
    if (a->kind == SL_NODE_SCALAR)
        return strcmp(a->text, b->text) == 0 && a->quoted == b->quoted;
    for (size_t i = 0; i < a->n; i++) {
        if (a->kind == SL_NODE_MAP && strcmp(a->keys[i]->text, b->keys[i]->text) != 0)
            return false;
        if (!node_equal(a->items[i], b->items[i]))
            return false;
    }
    return true;
}

static const char *tricky_spec =
    "steps: 10\n"
    "lr: [0, 0.01, 0.001, 500]\n"
    "quoted_int: \"123\"\n"
    "quoted_bool: 'true'\n"
    "quoted_null: \"~\"\n"
    "quoted_empty: \"\"\n"
    "null_value:\n"
    "tilde: ~\n"
    "colon: \"a: b\"\n"
    "hash: \"x #y\"\n"
    "dash: \"- x\"\n"
    "neg: -3\n"
    "brackets: \"[1, 2]\"\n"
    "multi: \"line one\\nline two\\ttab \\\"q\\\" \\\\ \\u0085\"\n"
    "unicode: \"caf\xc3\xa9 \xe2\x86\x92\"\n"
    "literal: |\n  two\n  lines\n"
    "\"key with: colon\": 1\n"
    "\"123\": int key\n"
    "empty_map: {}\n"
    "empty_list: []\n"
    "nested:\n  a:\n    b: [x, \"y z\", \"\"]\n  list:\n    - 1\n    - {k: v, j: [1, 2]}\n"
    "    - [a, [b, c]]\n    - []\n    -\n    - - deep\n"
    "spaces: \" lead and trail \"\n"
    "dots: \"...\"\n"
    "doc: \"---\"\n";

START_TEST(test_emit_round_trip)
{
    sl_node *root = parse_ok(tricky_spec);
    char *text = sl_node_emit_yaml(root);
    ck_assert_ptr_nonnull(text);
    if (getenv("TEST_SPEC_SHOW_EMIT"))
        fputs(text, stderr);
    sl_node *back = NULL;
    sl_error err = { { 0 } };
    ck_assert_msg(sl_spec_parse_string(text, strlen(text), "emitted", &back, &err) == SL_OK,
                  "%s\n--- emitted:\n%s", err.msg, text);
    ck_assert_msg(node_equal(root, back), "round trip differs; emitted:\n%s", text);
    /* emitting again is stable */
    char *again = sl_node_emit_yaml(back);
    ck_assert_str_eq(text, again);
    free(again);
    free(text);
    sl_node_free(back);

    sl_node *copy = sl_node_clone(root);
    ck_assert(node_equal(root, copy));
    ck_assert_ptr_ne(copy->items[0], root->items[0]);
    ck_assert_str_eq(copy->items[0]->file, "exp.yaml");
    ck_assert_int_eq(copy->items[0]->line, root->items[0]->line);
    sl_node_free(copy);
    sl_node_free(root);
}
END_TEST

START_TEST(test_emit_exact)
{
    sl_node *root = parse_ok("steps: 10\nname: \"a b\"\nest:\n  lr: [0, 0.01, 0.001, 500]\n"
                             "  cams:\n  - {r: 1, e: 2}\n  - x\nempty: {}\nnull_value:\n");
    char *text = sl_node_emit_yaml(root);
    ck_assert_str_eq(text, "steps: 10\n"
                           "name: \"a b\"\n"
                           "est:\n"
                           "  lr: [0, 0.01, 0.001, 500]\n"
                           "  cams:\n"
                           "    - r: 1\n"
                           "      e: 2\n"
                           "    - x\n"
                           "empty: {}\n"
                           "null_value:\n");
    free(text);
    sl_node_free(root);
    sl_node *empty = parse_ok("");
    text = sl_node_emit_yaml(empty);
    ck_assert_str_eq(text, "{}\n");
    free(text);
    sl_node_free(empty);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Resolving                                                                           */

START_TEST(test_defaults)
{
    sl_params *p = NULL;
    sl_error err = { { 0 } };
    ck_assert_int_eq(sl_params_defaults(&SL_PARAM_SCHEMA(est_defs), &p, &err), SL_OK);
    ck_assert(sl_params_float(p, "guidance_scale") == 100);
    sl_schedule s = sl_params_schedule(p, "guidance_scale");
    ck_assert(s.start_step == 0 && s.start_value == 100 && s.end_value == 100 &&
              s.end_step == 0);
    ck_assert_uint_eq(sl_params_list_len(p, "t_range"), 2);
    ck_assert(sl_params_list_float(p, "t_range", 0) == 0.02);
    ck_assert(sl_params_list_float(p, "t_range", 1) == 0.98);
    ck_assert_str_eq(sl_params_string(p, "weighting"), "sds");
    ck_assert_uint_eq(sl_params_count(p), 3);
    ck_assert_str_eq(sl_params_name_at(p, 0), "guidance_scale");
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "100");
    ck_assert_str_eq(sl_params_name_at(p, 1), "t_range");
    ck_assert_str_eq(sl_params_yaml_at(p, 1), "[0.02, 0.98]");
    ck_assert_str_eq(sl_params_yaml_at(p, 2), "sds");
    ck_assert_uint_eq(sl_params_schema(p)->count, 3);
    ck_assert_ptr_eq(sl_params_schema(p)->defs, est_defs);
    sl_params_free(p);

    /* the optional seed is absent and skipped by the iteration */
    ck_assert_int_eq(sl_params_defaults(&SL_PARAM_SCHEMA(top_defs), &p, &err), SL_OK);
    ck_assert(!sl_params_has(p, "seed"));
    ck_assert(sl_params_has(p, "steps"));
    ck_assert_uint_eq(sl_params_count(p), 3);
    ck_assert_str_eq(sl_params_name_at(p, 0), "steps");
    ck_assert_str_eq(sl_params_name_at(p, 1), "name");
    ck_assert_str_eq(sl_params_name_at(p, 2), "fp16");
    ck_assert_str_eq(sl_params_yaml_at(p, 2), "false");
    ck_assert_int_eq(sl_params_int(p, "steps"), 1000);
    ck_assert(!sl_params_bool(p, "fp16"));
    sl_params_free(p);

    ck_assert_int_eq(sl_params_defaults(&SL_PARAM_SCHEMA(opt_defs), &p, &err), SL_OK);
    ck_assert(sl_params_float(p, "eps") == 1e-15);
    ck_assert_str_eq(sl_params_yaml_at(p, 2), "1e-15");
    ck_assert_str_eq(sl_params_yaml_at(p, 1), "[0.9, 0.999]");
    sl_params_free(p);

    /* a required key without a section */
    ck_assert_int_eq(sl_params_defaults(&SL_PARAM_SCHEMA(prior_defs), &p, &err), SL_ERR_SPEC);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_schedules)
{
    sl_node *root = parse_ok(
        "estimator:\n  guidance_scale: [100, 50, 7.5, 1000]\n"
        "  t_range: [[0, 0.98, 0.5, 500], 0.02]\n"
        "optimizer:\n  lr: [0, 0.01, 0.001, 500]\n  eps: 1\n");
    sl_error err = { { 0 } };
    sl_params *p = NULL;
    ck_assert_msg(resolve_section(root, "estimator", &p, &err) == SL_OK, "%s", err.msg);
    sl_schedule g = sl_params_schedule(p, "guidance_scale");
    ck_assert(g.start_step == 100 && g.start_value == 50 && g.end_value == 7.5 &&
              g.end_step == 1000);
    ck_assert(sl_params_float(p, "guidance_scale") == 50);
    sl_schedule t0 = sl_params_list_schedule(p, "t_range", 0);
    ck_assert(t0.start_step == 0 && t0.start_value == 0.98 && t0.end_value == 0.5 &&
              t0.end_step == 500);
    ck_assert(sl_params_list_float(p, "t_range", 0) == 0.98);
    sl_schedule t1 = sl_params_list_schedule(p, "t_range", 1);
    ck_assert(t1.start_step == 0 && t1.start_value == 0.02 && t1.end_value == 0.02 &&
              t1.end_step == 0);
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "[100, 50, 7.5, 1000]");
    ck_assert_str_eq(sl_params_yaml_at(p, 1), "[[0, 0.98, 0.5, 500], 0.02]");
    sl_params_free(p);

    ck_assert_msg(resolve_section(root, "optimizer", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert(sl_params_float(p, "lr") == 0.01);
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "[0, 0.01, 0.001, 500]");
    ck_assert(sl_params_float(p, "eps") == 1.0);  /* FLOAT accepts an integer */
    ck_assert_str_eq(sl_params_yaml_at(p, 2), "1");
    sl_params_free(p);
    sl_node_free(root);

    /* a step at 0 itself: end_value from the start (schedule.h) */
    root = parse_ok("optimizer:\n  lr: [0, 0.5, 0.25, 0]\n");
    ck_assert_msg(resolve_section(root, "optimizer", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert(sl_params_float(p, "lr") == 0.25);
    sl_params_free(p);
    sl_node_free(root);
}
END_TEST

START_TEST(test_scalar_semantics)
{
    sl_node *root = parse_ok("steps: +42\nname: 123\nfp16: true\nseed: -7\n");
    sl_error err = { { 0 } };
    sl_params *p = NULL;
    ck_assert_msg(resolve_section(root, "", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert_int_eq(sl_params_int(p, "steps"), 42);
    ck_assert_int_eq(sl_params_int(p, "seed"), -7);
    ck_assert_str_eq(sl_params_string(p, "name"), "123");
    ck_assert(sl_params_bool(p, "fp16"));
    /* schema order: steps, seed, name, fp16 */
    ck_assert_uint_eq(sl_params_count(p), 4);
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "42");
    ck_assert_str_eq(sl_params_yaml_at(p, 1), "-7");
    ck_assert_str_eq(sl_params_yaml_at(p, 2), "\"123\"");
    ck_assert_str_eq(sl_params_yaml_at(p, 3), "true");
    sl_params_free(p);
    sl_node_free(root);

    const struct { const char *yaml, *text, *canon; } strings[] = {
        { "name: a b\n", "a b", "\"a b\"" },
        { "name: hello\n", "hello", "hello" },
        { "name: run_01/x.png\n", "run_01/x.png", "run_01/x.png" },
        { "name:\n", "", "\"\"" },
        { "name: \"true\"\n", "true", "\"true\"" },
        { "name: yes\n", "yes", "\"yes\"" },
        { "name: 1e3\n", "1e3", "\"1e3\"" },
        { "name: \"say \\\"hi\\\"\"\n", "say \"hi\"", "\"say \\\"hi\\\"\"" },
    };
    for (size_t k = 0; k < sizeof strings / sizeof strings[0]; k++) {
        root = parse_ok(strings[k].yaml);
        ck_assert_msg(resolve_section(root, "", &p, &err) == SL_OK, "%s", err.msg);
        ck_assert_str_eq(sl_params_string(p, "name"), strings[k].text);
        ck_assert_str_eq(sl_params_yaml_at(p, 1), strings[k].canon);
        sl_params_free(p);
        sl_node_free(root);
    }

    root = parse_ok("prior:\n  images: [a.png, \"b c.png\", 7]\n  prompt: a cat\n");
    ck_assert_msg(resolve_section(root, "prior", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert_uint_eq(sl_params_list_len(p, "images"), 3);
    ck_assert_str_eq(sl_params_list_string(p, "images", 1), "b c.png");
    ck_assert_str_eq(sl_params_list_string(p, "images", 2), "7");
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "[a.png, \"b c.png\", \"7\"]");
    ck_assert_str_eq(sl_params_string(p, "prompt"), "a cat");
    sl_params_free(p);
    sl_node_free(root);

    /* prior's "" default is the empty string */
    root = parse_ok("prior:\n  images: []\n");
    ck_assert_msg(resolve_section(root, "prior", &p, &err) == SL_OK, "%s", err.msg);
    ck_assert_str_eq(sl_params_string(p, "prompt"), "");
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "[]");
    sl_params_free(p);
    sl_node_free(root);

    /* reserved keys are skipped, not validated */
    root = parse_ok("estimator:\n  plugin: [not, checked]\n  label: x\n");
    ck_assert_msg(resolve_section(root, "estimator", &p, &err) == SL_OK, "%s", err.msg);
    sl_params_free(p);
    sl_node_free(root);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Nearest word, descriptions, schema printing                                         */

START_TEST(test_nearest_word)
{
    const char *const keys[] = { "guidance_scale", "t_range", "weighting", "plugin" };
    ck_assert_str_eq(sl_nearest_word("guidance_scal", keys, 4), "guidance_scale");
    ck_assert_str_eq(sl_nearest_word("guidanse_scael", keys, 4), "guidance_scale");
    ck_assert_str_eq(sl_nearest_word("trange", keys, 4), "t_range");
    ck_assert_str_eq(sl_nearest_word("weighting", keys, 4), "weighting");
    ck_assert_str_eq(sl_nearest_word("plgn", keys, 4), "plugin");  /* 2 edits, short word */
    ck_assert_ptr_null(sl_nearest_word("colour", keys, 4));
    ck_assert_ptr_null(sl_nearest_word("plg", keys, 4));          /* 3 edits > max(2, 1) */
    ck_assert_ptr_null(sl_nearest_word("x", keys, 0));
    /* "ab" is 1 edit from both: the first candidate wins */
    const char *const tie[] = { "abc", "abd", "ab" };
    ck_assert_str_eq(sl_nearest_word("abx", tie, 2), "abc");
    ck_assert_str_eq(sl_nearest_word("ab", tie, 3), "ab");
    /* long word: 12 / 3 = 4 edits allowed */
    const char *const longs[] = { "noise_samples" };
    ck_assert_str_eq(sl_nearest_word("nois_smpls", longs, 1), "noise_samples");
    ck_assert_ptr_null(sl_nearest_word("n_s", longs, 1));
    const char *const choices[] = { "sds", "uniform", "fantasia3d" };
    ck_assert_str_eq(sl_nearest_word("sdss", choices, 3), "sds");
    ck_assert_str_eq(sl_nearest_word("unifrom", choices, 3), "uniform");
    ck_assert_str_eq(sl_nearest_word("fantasia", choices, 3), "fantasia3d");
}
END_TEST

START_TEST(test_describe)
{
    char buf[300];
    sl_param_describe(&est_defs[0], buf, sizeof buf);
    ck_assert_str_eq(buf, "a number in [0, inf] or a schedule " SCHED);
    sl_param_describe(&est_defs[2], buf, sizeof buf);
    ck_assert_str_eq(buf, "one of sds|uniform|fantasia3d");
    sl_param_describe(&top_defs[0], buf, sizeof buf);
    ck_assert_str_eq(buf, "an integer in [1, 10000000]");
    sl_param_describe(&top_defs[1], buf, sizeof buf);
    ck_assert_str_eq(buf, "an integer");
    sl_param_describe(&top_defs[3], buf, sizeof buf);
    ck_assert_str_eq(buf, "true or false");
    const sl_param_def lst = { "cams", SL_PARAM_STRING_LIST, 0, "[]", 0, 0, NULL, 1, 3, "" };
    sl_param_describe(&lst, buf, sizeof buf);
    ck_assert_str_eq(buf, "a list of 1 to 3 strings");
    const sl_param_def fl = { "w", SL_PARAM_FLOAT_LIST, 0, "[]", -1, 1.5, NULL, 1, 0, "" };
    sl_param_describe(&fl, buf, sizeof buf);
    ck_assert_str_eq(buf, "a list of at least 1 number in [-1, 1.5]");
}
END_TEST

static const sl_param_def print_defs[] = {
    { "lr", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, "0.01", 0, INFINITY, NULL, 0, 0,
      "learning rate" },
    { "weighting", SL_PARAM_CHOICE, 0, "sds", 0, 0, "sds|uniform", 0, 0, "w(t)" },
    { "images", SL_PARAM_STRING_LIST, SL_PARAM_REQUIRED, NULL, 0, 0, NULL, 1, 0,
      "reference images" },
    { "seed", SL_PARAM_INT, 0, NULL, -INFINITY, INFINITY, NULL, 0, 0, "" },
};

static char *print_to_string(sl_schema_format format)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    sl_schema_print(f, &SL_PARAM_SCHEMA(print_defs), format);
    fclose(f);
    return buf;
}

START_TEST(test_schema_print)
{
    char *text = print_to_string(SL_SCHEMA_TEXT);
    ck_assert_str_eq(text,
        "NAME       TYPE          DEFAULT     ACCEPTS      DESCRIPTION\n"
        "lr         float/sched   0.01        [0, inf]     learning rate\n"
        "weighting  choice        sds         sds|uniform  w(t)\n"
        "images     list[string]  (required)  length >= 1  reference images\n"
        "seed       int           (unset)     -\n");
    free(text);
    char *md = print_to_string(SL_SCHEMA_MARKDOWN);
    ck_assert_str_eq(md,
        "| Key | Type | Default | Accepts | Description |\n"
        "|-----|------|---------|---------|-------------|\n"
        "| `lr` | float/sched | `0.01` | [0, inf] | learning rate |\n"
        "| `weighting` | choice | `sds` | sds\\|uniform | w(t) |\n"
        "| `images` | list[string] | (required) | length >= 1 | reference images |\n"
        "| `seed` | int | (unset) | - |  |\n");
    free(md);
}
END_TEST

/* ---------------------------------------------------------------------------------- */
/* Accessor misuse aborts (a programming error, not an input error)                    */

static sl_params *defaults_of_top(void)
{
    sl_params *p = NULL;
    sl_error err;
    ck_assert_int_eq(sl_params_defaults(&SL_PARAM_SCHEMA(top_defs), &p, &err), SL_OK);
    return p;
}

/* ---------------------------------------------------------------------------------- */
/* Nested sections and plugin lists (the shape of an SSD estimator section)            */

static const sl_param_def mu_defs[] = {
    { .name = "shape", .type = SL_PARAM_CHOICE, .default_value = "scalar",
      .choices = "scalar|channel|pixel|tbins", .doc = "shape of mu" },
    { .name = "bins", .type = SL_PARAM_INT, .default_value = "10", .min = 1, .max = 1000,
      .doc = "t-bins" },
    { .name = "value", .type = SL_PARAM_FLOAT, .default_value = "1", .min = -INFINITY,
      .max = INFINITY, .doc = "initial mu" },
};
static const sl_param_schema mu_schema = SL_PARAM_SCHEMA(mu_defs);
static const sl_param_def ssd_defs[] = {
    { .name = "baselines", .type = SL_PARAM_PLUGIN_LIST, .default_value = "[constant]",
      .min_len = 1, .plugin_kind = 4, .doc = "Stein baselines" },
    { .name = "mu", .type = SL_PARAM_SECTION, .section = &mu_schema, .doc = "control variate weight" },
};

static sl_status resolve_ssd(const char *yaml, sl_params **p, sl_error *err)
{
    sl_node *root = NULL;
    sl_status st = sl_spec_parse_string(yaml, strlen(yaml), "ssd.yaml", &root, err);
    if (st == SL_OK)
        st = sl_params_resolve(sl_node_get(root, "estimator"), "estimator",
                               &SL_PARAM_SCHEMA(ssd_defs), plugin_reserved, p, err);
    sl_node_free(root);
    return st;
}

START_TEST(test_sections_and_plugin_lists)
{
    sl_params *p = NULL;
    sl_error err = { { 0 } };
    /* Absent: the section's defaults and the list's default entry. */
    ck_assert_int_eq(resolve_ssd("estimator: {plugin: ssd}\n", &p, &err), SL_OK);
    const sl_params *mu = sl_params_section(p, "mu");
    ck_assert_str_eq(sl_params_string(mu, "shape"), "scalar");
    ck_assert_int_eq(sl_params_int(mu, "bins"), 10);
    ck_assert_uint_eq(sl_params_list_len(p, "baselines"), 1);
    ck_assert_str_eq(sl_node_get(sl_params_plugin_entry(p, "baselines", 0), "plugin")->text,
                     "constant");
    ck_assert_str_eq(sl_params_yaml_at(p, 0), "[{plugin: constant}]");
    ck_assert_str_eq(sl_params_yaml_at(p, 1), "{shape: scalar, bins: 10, value: 1}");
    sl_params_free(p);

    /* Given: names and maps mix; the entries keep their keys and positions for the host. */
    const char *yaml = "estimator:\n"
                       "  plugin: ssd\n"
                       "  baselines: [constant, {plugin: depth, offset: 1.5, label: d1}]\n"
                       "  mu: {shape: tbins, bins: 4}\n";
    ck_assert_msg(resolve_ssd(yaml, &p, &err) == SL_OK, "%s", err.msg);
    const sl_node *e1 = sl_params_plugin_entry(p, "baselines", 1);
    ck_assert_str_eq(sl_node_get(e1, "plugin")->text, "depth");
    ck_assert_int_eq(sl_node_get(e1, "offset")->line, 3);
    ck_assert_int_eq(sl_params_plugin_entry(p, "baselines", 0)->col, 15);
    ck_assert_str_eq(sl_params_yaml_at(p, 0),
                     "[{plugin: constant}, {plugin: depth, offset: 1.5, label: d1}]");
    ck_assert_int_eq(sl_params_int(sl_params_section(p, "mu"), "bins"), 4);
    ck_assert_str_eq(sl_params_yaml_at(p, 1), "{shape: tbins, bins: 4, value: 1}");
    sl_params_free(p);

    /* Errors carry the nested dotted key. */
    static const struct { const char *yaml, *msg; } bad[] = {
        { "estimator: {mu: {shap: tbins}}\n",
          "ssd.yaml:1:18: estimator.mu.shap: unknown key (expected one of: shape, bins, "
          "value); did you mean 'shape'?" },
        { "estimator: {mu: 3}\n",
          "ssd.yaml:1:17: estimator.mu: expected a map of the keys under mu, found '3'" },
        { "estimator: {mu: {bins: 0}}\n",
          "ssd.yaml:1:24: estimator.mu.bins: expected an integer in [1, 1000], found '0'" },
        { "estimator: {baselines: []}\n",
          "ssd.yaml:1:24: estimator.baselines: expected a list of at least 1 plugin section "
          "(NAME or {plugin: NAME, ...}), found a list of 0 elements" },
        { "estimator: {baselines: [{offset: 1}]}\n",
          "ssd.yaml:1:25: estimator.baselines[0]: expected a plugin name or a map with "
          "'plugin: NAME', found a map" },
        { "estimator: {baselines: [[depth]]}\n",
          "ssd.yaml:1:25: estimator.baselines[0]: expected a plugin name or a map with "
          "'plugin: NAME', found a list of 1 element" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        p = NULL;
        ck_assert_int_eq(resolve_ssd(bad[k].yaml, &p, &err), SL_ERR_SPEC);
        ck_assert_msg(strcmp(err.msg, bad[k].msg) == 0, "case %zu:\n  got:      %s\n  "
                      "expected: %s", k, err.msg, bad[k].msg);
        ck_assert_ptr_null(p);
    }
}
END_TEST

START_TEST(test_misuse_undeclared)
{
    sl_params *p = defaults_of_top();
    sl_params_int(p, "stepz");
}
END_TEST

START_TEST(test_misuse_wrong_type)
{
    sl_params *p = defaults_of_top();
    sl_params_float(p, "steps");
}
END_TEST

START_TEST(test_misuse_absent)
{
    sl_params *p = defaults_of_top();
    sl_params_int(p, "seed");
}
END_TEST

static const sl_param_def broken_defs[] = {
    { "lr", SL_PARAM_FLOAT, 0, "fast", 0, 1, NULL, 0, 0, "" },
};

START_TEST(test_misuse_bad_default)
{
    sl_params *p = NULL;
    sl_error err;
    sl_params_defaults(&SL_PARAM_SCHEMA(broken_defs), &p, &err);
}
END_TEST

/* ---------------------------------------------------------------------------------- */

static Suite *spec_suite(void)
{
    Suite *s = suite_create("spec");
    TCase *tc = tcase_create("bad_specs");
    tcase_add_loop_test(tc, test_bad_spec, 0, (int)(sizeof bad_cases / sizeof bad_cases[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_positions);
    tcase_add_test(tc, test_parse_empty_documents);
    tcase_add_test(tc, test_parse_file);
    tcase_add_test(tc, test_error_at);
    tcase_add_test(tc, test_override_nested);
    tcase_add_test(tc, test_override_then_resolve);
    tcase_add_test(tc, test_emit_round_trip);
    tcase_add_test(tc, test_emit_exact);
    suite_add_tcase(s, tc);

    tc = tcase_create("params");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_schedules);
    tcase_add_test(tc, test_scalar_semantics);
    tcase_add_test(tc, test_nearest_word);
    tcase_add_test(tc, test_describe);
    tcase_add_test(tc, test_schema_print);
    tcase_add_test(tc, test_sections_and_plugin_lists);
    suite_add_tcase(s, tc);

    /* Abort tests need Check's fork mode; without it they would end the whole run. */
    const char *fork_env = getenv("CK_FORK");
    if (!fork_env || strcmp(fork_env, "no") != 0) {
        tc = tcase_create("misuse");
        tcase_add_test_raise_signal(tc, test_misuse_undeclared, SIGABRT);
        tcase_add_test_raise_signal(tc, test_misuse_wrong_type, SIGABRT);
        tcase_add_test_raise_signal(tc, test_misuse_absent, SIGABRT);
        tcase_add_test_raise_signal(tc, test_misuse_bad_default, SIGABRT);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spec_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
