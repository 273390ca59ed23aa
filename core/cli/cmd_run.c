/* core/cli/cmd_run.c — `steinlab run SPEC.yaml [key=value ...] [--threads N] [--dry-run]`
 * and `steinlab run --resume RUN.h5 [steps=N] [--threads N]` (continue a stopped, killed or
 * finished run from its checkpoint RUN.ckpt.h5; the driver checks the override). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "driver.h"

int sl_cmd_run(int argc, char **argv)
{
    sl_run_options opt = { .out = stdout, .handle_signals = 1 };
    const char **overrides = calloc((size_t)argc, sizeof *overrides);
    if (!overrides)
        return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 1 || n > 1024) {
                fprintf(stderr, "steinlab run: --threads expects an integer in [1, 1024], "
                                "found '%s'\n", argv[i]);
                free(overrides);
                return 2;
            }
            opt.threads = (int)n;
        } else if (!strcmp(a, "--dry-run")) {
            opt.dry_run = 1;
        } else if (!strcmp(a, "--resume") && i + 1 < argc) {
            opt.resume_path = argv[++i];
        } else if (a[0] == '-' && a[1] == '-') {
            fprintf(stderr, "steinlab run: unknown option '%s'\n", a);
            free(overrides);
            return 2;
        } else if (!opt.spec_path && !strchr(a, '=')) {
            opt.spec_path = a;
        } else {
            overrides[opt.n_overrides++] = a;
        }
    }
    if (opt.resume_path && opt.spec_path) {
        fprintf(stderr, "steinlab run: --resume continues the run with the spec stored in its "
                        "log; found a spec as well ('%s')\n", opt.spec_path);
        free(overrides);
        return 2;
    }
    if (!opt.spec_path && !opt.resume_path) {
        fprintf(stderr, "usage: steinlab run SPEC.yaml [key.sub=value ...] [--threads N] "
                        "[--dry-run]\n"
                        "       steinlab run --resume RUN.h5 [steps=N] [--threads N]\n");
        free(overrides);
        return 2;
    }
    opt.overrides = overrides;
    sl_run_result res;
    sl_error err = { "" };
    sl_status st = sl_run(&opt, &res, &err);
    free(overrides);
    if (st != SL_OK)
        fprintf(stderr, "error: %s\n", err.msg);
    if (opt.dry_run && st == SL_OK)
        printf("%s: valid\n", opt.spec_path ? opt.spec_path : opt.resume_path);
    if (res.log_path[0])
        printf("log: %s\n", res.log_path);
    return sl_exit_code(st);
}
