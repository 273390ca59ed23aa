/* tests/fuzz/spec_checks.c — invariants of the spec API, checked on fuzzed trees (see
 * spec_checks.h).
 *
 * The schemas are the core's own (core/sections.c) plus copies of the bundled plugins'
 * tables (image prior, image2d representation) and one made-up estimator table, so that
 * every parameter type and flag (REQUIRED, SCHEDULABLE, CHOICE, both list kinds, BOOL) is
 * validated, and the reserved-key lists are the driver's (core/driver.c). The plugin
 * tables are copied rather than linked because plugins are modules, not core sources;
 * keeping them in step with the plugins is not required for the checks to mean
 * something. */
#include "spec_checks.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sections.h"
#include "strbuf.h"

/* ---------------------------------------------------------------------------------- */
/* Schemas                                                                             */

static const char *const plugin_keys[] = { "plugin", "label", NULL };
static const char *const optimizer_reserved[] = { "groups", NULL };

/* As plugins/priors/image.c. */
static const sl_param_def prior_defs[] = {
    { "images", SL_PARAM_STRING_LIST, SL_PARAM_REQUIRED, NULL, -INFINITY, INFINITY, NULL, 1,
      0, "" },
    { "labels", SL_PARAM_STRING_LIST, 0, NULL, -INFINITY, INFINITY, NULL, 1, 0, "" },
    { "prompt", SL_PARAM_STRING, SL_PARAM_REQUIRED, NULL, -INFINITY, INFINITY, NULL, 0, 0,
      "" },
    { "resolution", SL_PARAM_INT, 0, "32", 1, 4096, NULL, 0, 0, "" },
    { "bandwidth", SL_PARAM_FLOAT, 0, "0.05", 1e-6, INFINITY, NULL, 0, 0, "" },
    { "guidance_scale", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, "7.5", 0, INFINITY, NULL, 0, 0,
      "" },
};

/* As plugins/representations/image2d.c. */
static const sl_param_def representation_defs[] = {
    { "resolution", SL_PARAM_INT, 0, "64", 1, 8192, NULL, 0, 0, "" },
    { "levels", SL_PARAM_INT, 0, "1", 1, 8, NULL, 0, 0, "" },
    { "init", SL_PARAM_CHOICE, 0, "zeros", -INFINITY, INFINITY, "zeros|random", 0, 0, "" },
    { "init_std", SL_PARAM_FLOAT, 0, "0.1", 0, INFINITY, NULL, 0, 0, "" },
};

/* Made up: the types the two tables above leave out (BOOL, schedulable FLOAT_LIST, a
 * bounded STRING_LIST, negative ranges). */
static const sl_param_def estimator_defs[] = {
    { "detach", SL_PARAM_BOOL, 0, "true", -INFINITY, INFINITY, NULL, 0, 0, "" },
    { "weights", SL_PARAM_FLOAT_LIST, SL_PARAM_SCHEDULABLE, "[1, [0, 0.5, 1, 100]]", -10, 10,
      NULL, 1, 4, "" },
    { "tags", SL_PARAM_STRING_LIST, 0, "[]", -INFINITY, INFINITY, NULL, 0, 3, "" },
    { "mode", SL_PARAM_CHOICE, 0, "a", -INFINITY, INFINITY, "a|b_c|d1", 0, 0, "" },
    { "offset", SL_PARAM_INT, 0, "-3", -1000, 1000, NULL, 0, 0, "" },
    { "scale", SL_PARAM_FLOAT, SL_PARAM_SCHEDULABLE, NULL, -INFINITY, INFINITY, NULL, 0, 0,
      "" },
};

static const sl_param_schema prior_schema = SL_PARAM_SCHEMA(prior_defs);
static const sl_param_schema representation_schema = SL_PARAM_SCHEMA(representation_defs);
static const sl_param_schema estimator_schema = SL_PARAM_SCHEMA(estimator_defs);

/* ---------------------------------------------------------------------------------- */
/* Failing loudly                                                                      */

static void fail(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "fuzz invariant broken: %s\n", what);
    if (a)
        fprintf(stderr, "--- first:\n%s\n", a);
    if (b)
        fprintf(stderr, "--- second:\n%s\n", b);
    abort();
}

/* ---------------------------------------------------------------------------------- */
/* Tree comparison                                                                     */

/* Whether a plain scalar means a string to the validator (params.c's classify): not
 * null, not a bool, and not a number (made of digits, signs, '.', 'e', 'E' and read
 * entirely by strtod). Errs towards "not a string": an out-of-range number still counts
 * as a number here. */
static bool plain_means_string(const char *t)
{
    if (t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
        strcmp(t, "true") == 0 || strcmp(t, "false") == 0)
        return false;
    if (strspn(t, "0123456789+-.eE") != strlen(t))
        return true;
    char *end;
    (void)strtod(t, &end);
    return end == t || *end != '\0';
}

/* Scalars a (original) and b (re-read) mean the same: equal text, and equal quoting,
 * except that the emitter may quote a plain scalar whose plain reading is a string
 * anyway (it quotes whatever it cannot write plain safely). */
static bool same_scalar(const sl_node *a, const sl_node *b, bool exact)
{
    if (strcmp(a->text, b->text) != 0)
        return false;
    if (a->quoted == b->quoted)
        return true;
    return !exact && !a->quoted && b->quoted && plain_means_string(a->text);
}

/* Structural equality (positions are not compared). `exact`: quoting must match too. */
static bool same_tree(const sl_node *a, const sl_node *b, bool exact)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == SL_NODE_SCALAR)
        return same_scalar(a, b, exact);
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++) {
        /* Keys are looked up by text; their quoting matters only to the emitter (an
         * empty plain key, from "? " or ":", comes back quoted). */
        if (a->kind == SL_NODE_MAP &&
            (strcmp(a->keys[i]->text, b->keys[i]->text) != 0 ||
             (exact && a->keys[i]->quoted != b->keys[i]->quoted)))
            return false;
        if (!same_tree(a->items[i], b->items[i], exact))
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------- */
/* Emit -> parse                                                                       */

static void check_emit_round_trip(const sl_node *root)
{
    char *text = sl_node_emit_yaml(root);
    if (!text)
        return;  /* out of memory: not a finding */
    sl_node *back = NULL;
    sl_error err = { { 0 } };
    sl_status st = sl_spec_parse_string(text, strlen(text), "<emitted>", &back, &err);
    if (st == SL_ERR_NOMEM) {
        free(text);
        return;
    }
    if (st != SL_OK)
        fail("emitted YAML does not parse", text, err.msg);
    if (!same_tree(root, back, false)) {
        char *again = sl_node_emit_yaml(back);
        fail("emitted YAML parses to a different tree (emitted, then re-emitted)", text,
             again);
    }
    /* The first round may change quoting (and with it list style); after that a round
     * must change nothing, quoting included. */
    char *again = sl_node_emit_yaml(back);
    sl_node *back2 = NULL;
    if (again && sl_spec_parse_string(again, strlen(again), "<emitted>", &back2, &err) == SL_OK &&
        !same_tree(back, back2, true))
        fail("a second emit -> parse round changes the tree (first and second emission)", text,
             again);
    sl_node_free(back2);
    free(again);
    sl_node_free(back);
    free(text);
}

/* ---------------------------------------------------------------------------------- */
/* Resolved values -> text -> resolved values                                          */

/* Calls every accessor the schema allows, as a plugin's create() would; the values are
 * mixed into a sink so they are really read. */
static void touch_values(const sl_params *p, const sl_param_schema *schema)
{
    volatile double sink = 0;
    for (size_t d = 0; d < schema->count; d++) {
        const sl_param_def *def = &schema->defs[d];
        if (!sl_params_has(p, def->name))
            continue;
        switch (def->type) {
        case SL_PARAM_BOOL: sink += sl_params_bool(p, def->name); break;
        case SL_PARAM_INT: sink += (double)sl_params_int(p, def->name); break;
        case SL_PARAM_FLOAT: {
            sl_schedule s = sl_params_schedule(p, def->name);
            sink += sl_params_float(p, def->name) + sl_schedule_at(&s, 0) +
                    sl_schedule_at(&s, 1000) + sl_schedule_at(&s, INT64_MAX / 2);
            break;
        }
        case SL_PARAM_STRING:
        case SL_PARAM_CHOICE: sink += (double)strlen(sl_params_string(p, def->name)); break;
        case SL_PARAM_FLOAT_LIST:
            for (size_t i = 0; i < sl_params_list_len(p, def->name); i++) {
                sl_schedule s = sl_params_list_schedule(p, def->name, i);
                sink += sl_params_list_float(p, def->name, i) + sl_schedule_at(&s, 7);
            }
            break;
        case SL_PARAM_STRING_LIST:
            for (size_t i = 0; i < sl_params_list_len(p, def->name); i++)
                sink += (double)strlen(sl_params_list_string(p, def->name, i));
            break;
        case SL_PARAM_SECTION:
            touch_values(sl_params_section(p, def->name), def->section);
            break;
        case SL_PARAM_PLUGIN_LIST:
            for (size_t i = 0; i < sl_params_list_len(p, def->name); i++)
                sink += (double)sl_params_plugin_entry(p, def->name, i)->n;
            break;
        }
    }
    (void)sink;
}

/* Writes the resolved values as "name: yaml" lines (what a run logs) and resolves that
 * text again: it must parse, validate and give the same canonical values. */
static void check_resolved_round_trip(const sl_params *p, const sl_param_schema *schema)
{
    sl_strbuf b;
    sl_strbuf_init(&b);
    for (size_t i = 0; i < sl_params_count(p); i++)
        sl_strbuf_printf(&b, "%s: %s\n", sl_params_name_at(p, i), sl_params_yaml_at(p, i));
    char *text = sl_strbuf_take(&b);
    if (!text)
        return;
    sl_node *tree = NULL;
    sl_params *again = NULL;
    sl_error err = { { 0 } };
    sl_status st = sl_spec_parse_string(text, strlen(text), "<resolved>", &tree, &err);
    if (st == SL_OK)
        st = sl_params_resolve(tree, "", schema, NULL, &again, &err);
    if (st == SL_ERR_NOMEM)
        goto done;
    if (st != SL_OK)
        fail("resolved values, written as YAML, do not resolve again", text, err.msg);
    if (sl_params_count(again) != sl_params_count(p))
        fail("resolved values, written and resolved again, change in number", text, NULL);
    for (size_t i = 0; i < sl_params_count(p); i++)
        if (strcmp(sl_params_name_at(p, i), sl_params_name_at(again, i)) != 0 ||
            strcmp(sl_params_yaml_at(p, i), sl_params_yaml_at(again, i)) != 0)
            fail("a resolved value changes when written and resolved again", text,
                 sl_params_yaml_at(again, i));
done:
    sl_params_free(again);
    sl_node_free(tree);
    free(text);
}

static void check_section(const sl_node *section, const char *key_path,
                          const sl_param_schema *schema, const char *const *reserved)
{
    sl_params *p = NULL;
    sl_error err = { { 0 } };
    if (sl_params_resolve(section, key_path, schema, reserved, &p, &err) != SL_OK)
        return;  /* rejected: fine, the message is the product here */
    touch_values(p, schema);
    check_resolved_round_trip(p, schema);
    sl_params_free(p);
}

/* Every section the driver resolves, each on its own (the driver stops at the first
 * error; here every section is tried, to reach more of the validator per input). */
static void check_validation(const sl_node *root)
{
    if (root->kind != SL_NODE_MAP) {
        check_section(root, "", &sl_schema_root, sl_root_sections);  /* an error */
        return;
    }
    check_section(root, "", &sl_schema_root, sl_root_sections);
    check_section(sl_node_get(root, "cameras"), "cameras", &sl_schema_cameras, NULL);
    check_section(sl_node_get(root, "optimizer"), "optimizer", &sl_schema_optimizer,
                  optimizer_reserved);
    check_section(sl_node_get(root, "log"), "log", &sl_schema_log, NULL);
    check_section(sl_node_get(root, "prior"), "prior", &prior_schema, plugin_keys);
    check_section(sl_node_get(root, "representation"), "representation",
                  &representation_schema, plugin_keys);

    /* The estimator section holds the plugin's keys and the core's, each resolved with the
     * other's names reserved (as resolve_estimator in core/driver.c). */
    const sl_node *est = sl_node_get(root, "estimator");
    enum { MAX_RESERVED = 32 };  /* room for both tables; the rest stays NULL */
    const char *plugin_side[MAX_RESERVED] = { "plugin", "label" };
    const char *core_side[MAX_RESERVED] = { "plugin", "label" };
    for (size_t i = 0; i < sl_schema_estimator_core.count && i + 3 < MAX_RESERVED; i++)
        plugin_side[2 + i] = sl_schema_estimator_core.defs[i].name;
    for (size_t i = 0; i < estimator_schema.count && i + 3 < MAX_RESERVED; i++)
        core_side[2 + i] = estimator_schema.defs[i].name;
    check_section(est, "estimator", &estimator_schema, plugin_side);
    check_section(est, "estimator", &sl_schema_estimator_core, core_side);

    /* optimizer.groups.<name>: one group schema per entry. */
    const sl_node *groups = sl_node_get(sl_node_get(root, "optimizer"), "groups");
    if (groups && groups->kind == SL_NODE_MAP)
        for (size_t i = 0; i < groups->n && i < 16; i++)
            check_section(groups->items[i], "optimizer.groups", &sl_schema_optimizer_group,
                          NULL);
}

void fz_check_spec_tree(const sl_node *root)
{
    sl_node *copy = sl_node_clone(root);
    if (copy && !same_tree(root, copy, true))
        fail("sl_node_clone gives a different tree", NULL, NULL);
    sl_node_free(copy);
    check_validation(root);
    check_emit_round_trip(root);
}
