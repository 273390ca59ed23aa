/* tests/test_loader.c — the plugin registry: in-tree plugins load; each way of breaking
 * the contract is rejected with the file's path and the reason. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader.h"

static char plugin_dir[4096], test_plugin_dir[4096];

static void setup_dirs(void)
{
    const char *build = getenv("STEINLAB_BUILD_ROOT");
    ck_assert_msg(build != NULL, "STEINLAB_BUILD_ROOT is not set (run through meson test)");
    snprintf(plugin_dir, sizeof plugin_dir, "%s/plugins", build);
    snprintf(test_plugin_dir, sizeof test_plugin_dir, "%s/tests/plugins", build);
}

static sl_registry *fresh(void)
{
    sl_registry *r = NULL;
    sl_error err;
    ck_assert_int_eq(sl_registry_create(&r, &err), SL_OK);
    return r;
}

/* Loads `file` from the test plugin directory, expecting failure with a message that
 * contains the path and each of the given fragments. */
static void expect_rejected(sl_registry *r, const char *file, const char *f1, const char *f2)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", test_plugin_dir, file);
    sl_error err = { "" };
    sl_status st = sl_registry_load_file(r, path, &err);
    ck_assert_int_eq(st, SL_ERR_PLUGIN);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message lacks the path: %s", err.msg);
    ck_assert_msg(strstr(err.msg, f1) != NULL, "message lacks '%s': %s", f1, err.msg);
    if (f2)
        ck_assert_msg(strstr(err.msg, f2) != NULL, "message lacks '%s': %s", f2, err.msg);
}

START_TEST(in_tree_plugins_load)
{
    setup_dirs();
    sl_registry *r = fresh();
    sl_error err = { "" };
    ck_assert_msg(sl_registry_load_dir(r, plugin_dir, 1, &err) == SL_OK, "%s", err.msg);
    struct { const char *name; sl_plugin_kind kind; } want[] = {
        { "image2d", SL_KIND_REPRESENTATION }, { "image", SL_KIND_PRIOR },
        { "sds", SL_KIND_ESTIMATOR }, { "constant", SL_KIND_BASELINE },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const char *path = NULL;
        const sl_plugin *d = sl_registry_find(r, want[i].kind, want[i].name, &path);
        ck_assert_msg(d != NULL, "plugin %s not found", want[i].name);
        ck_assert_ptr_nonnull(path);
        ck_assert_ptr_null(sl_registry_find(r, want[i].kind == SL_KIND_PRIOR
                                                   ? SL_KIND_ESTIMATOR : SL_KIND_PRIOR,
                                            want[i].name, NULL));
    }
    /* Loading the same directory again is a no-op, not a duplicate. */
    size_t n = sl_registry_count(r);
    ck_assert_int_eq(sl_registry_load_dir(r, plugin_dir, 1, &err), SL_OK);
    ck_assert_uint_eq(sl_registry_count(r), n);
    sl_registry_destroy(r);
}
END_TEST

START_TEST(abi_mismatch_rejected)
{
    setup_dirs();
    sl_registry *r = fresh();
    char want[64];
    snprintf(want, sizeof want, "(plugin: %u, host: %u)", SL_ABI_VERSION + 1, SL_ABI_VERSION);
    expect_rejected(r, "bad_abi.so", "incompatible ABI version", want);
    ck_assert_uint_eq(sl_registry_count(r), 0);
    sl_registry_destroy(r);
}
END_TEST

START_TEST(missing_member_rejected)
{
    setup_dirs();
    sl_registry *r = fresh();
    expect_rejected(r, "missing_member.so", "plugin 'no_delta' (estimator)",
                    "missing required member 'delta'");
    sl_registry_destroy(r);
}
END_TEST

START_TEST(duplicate_name_rejected)
{
    setup_dirs();
    sl_registry *r = fresh();
    sl_error err = { "" };
    ck_assert_int_eq(sl_registry_load_dir(r, plugin_dir, 1, &err), SL_OK);
    char sds_path[4200];
    snprintf(sds_path, sizeof sds_path, "%s/sds.so", plugin_dir);
    expect_rejected(r, "duplicate_name.so", "plugin name 'sds' is already provided by",
                    sds_path);
    /* The original stays registered. */
    const sl_plugin *d = sl_registry_find(r, SL_KIND_ESTIMATOR, "sds", NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_str_ne(d->version, "9.9.9");
    sl_registry_destroy(r);
}
END_TEST

START_TEST(bad_default_rejected)
{
    setup_dirs();
    sl_registry *r = fresh();
    expect_rejected(r, "bad_default.so", "invalid default", "scale");
    sl_registry_destroy(r);
}
END_TEST

START_TEST(non_plugin_library_rejected)
{
    setup_dirs();
    sl_registry *r = fresh();
    char lib[4200];
    snprintf(lib, sizeof lib, "%s/core/libsteinlab.so", getenv("STEINLAB_BUILD_ROOT"));
    sl_error err = { "" };
    ck_assert_int_eq(sl_registry_load_file(r, lib, &err), SL_ERR_PLUGIN);
    ck_assert_msg(strstr(err.msg, "not a steinlab plugin") != NULL, "%s", err.msg);
    ck_assert_int_eq(sl_registry_load_file(r, "/nonexistent/x.so", &err), SL_ERR_PLUGIN);
    ck_assert_str_eq(err.msg, "/nonexistent/x.so: no such plugin file");
    ck_assert_int_eq(sl_registry_load_dir(r, "/nonexistent", 1, &err), SL_ERR_PLUGIN);
    ck_assert_int_eq(sl_registry_load_dir(r, "/nonexistent", 0, &err), SL_OK);
    sl_registry_destroy(r);
}
END_TEST

START_TEST(search_path_order)
{
    setup_dirs();
    /* The environment variable comes before the default directory; a spec path before
     * both. The default directory is the build tree's, since this test runs from it. */
    ck_assert_str_eq(sl_registry_default_dir(), plugin_dir);
    char env[4200];
    snprintf(env, sizeof env, "%s/nan_at_step.so", test_plugin_dir);
    setenv("STEINLAB_PLUGIN_PATH", env, 1);
    sl_registry *r = fresh();
    sl_error err = { "" };
    ck_assert_msg(sl_registry_load_search_path(r, NULL, 0, &err) == SL_OK, "%s", err.msg);
    ck_assert_ptr_eq(sl_registry_at(r, 0, NULL), sl_registry_find(r, 0, "nan_at_step", NULL));
    ck_assert_ptr_nonnull(sl_registry_find(r, SL_KIND_ESTIMATOR, "sds", NULL));
    sl_registry_destroy(r);

    /* A missing entry named explicitly is an error that says where it came from. */
    setenv("STEINLAB_PLUGIN_PATH", "/nonexistent/plugins", 1);
    r = fresh();
    ck_assert_int_eq(sl_registry_load_search_path(r, NULL, 0, &err), SL_ERR_PLUGIN);
    ck_assert_str_eq(err.msg,
                     "STEINLAB_PLUGIN_PATH: /nonexistent/plugins: plugin path does not exist");
    sl_registry_destroy(r);

    /* A broken plugin anywhere on the path stops loading, with its reason. */
    char bad[4200];
    snprintf(bad, sizeof bad, "%s/bad_abi.so", test_plugin_dir);
    const char *spec_paths[] = { bad };
    unsetenv("STEINLAB_PLUGIN_PATH");
    r = fresh();
    ck_assert_int_eq(sl_registry_load_search_path(r, spec_paths, 1, &err), SL_ERR_PLUGIN);
    ck_assert_msg(strstr(err.msg, "incompatible ABI version") != NULL, "%s", err.msg);
    sl_registry_destroy(r);
}
END_TEST

/* Plugins other users could have replaced are refused (the file, or its directory
 * without the sticky bit); a sticky world-writable directory like /tmp is fine. */
START_TEST(loose_permissions_rejected)
{
    setup_dirs();
    char dir[] = "/tmp/steinlab-trust-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char src[4200], dst[4200], cmd[9000];
    snprintf(src, sizeof src, "%s/sds.so", plugin_dir);
    snprintf(dst, sizeof dst, "%s/sds.so", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", src, dst);
    ck_assert_int_eq(system(cmd), 0);
    sl_error err = { "" };

    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(chmod(dst, 0666), 0);
    sl_registry *r = fresh();
    ck_assert_int_eq(sl_registry_load_file(r, dst, &err), SL_ERR_PLUGIN);
    ck_assert_msg(strstr(err.msg, "refusing to load a plugin that other users can write "
                                  "(mode 0666)") != NULL, "%s", err.msg);
    sl_registry_destroy(r);

    ck_assert_int_eq(chmod(dst, 0755), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    r = fresh();
    ck_assert_int_eq(sl_registry_load_file(r, dst, &err), SL_ERR_PLUGIN);
    ck_assert_msg(strstr(err.msg, "without the sticky bit") != NULL, "%s", err.msg);
    sl_registry_destroy(r);

    ck_assert_int_eq(chmod(dir, 01777), 0);
    r = fresh();
    ck_assert_msg(sl_registry_load_file(r, dst, &err) == SL_OK, "%s", err.msg);
    sl_registry_destroy(r);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("loader");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, in_tree_plugins_load);
    tcase_add_test(tc, abi_mismatch_rejected);
    tcase_add_test(tc, missing_member_rejected);
    tcase_add_test(tc, duplicate_name_rejected);
    tcase_add_test(tc, bad_default_rejected);
    tcase_add_test(tc, non_plugin_library_rejected);
    tcase_add_test(tc, search_path_order);
    tcase_add_test(tc, loose_permissions_rejected);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
