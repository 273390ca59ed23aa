/* core/cli/main.c — the steinlab executable: dispatch to subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas_cpu.h"
#include "cli.h"
#include "sl_build_config.h"   /* first: SL_HAVE_CUDA decides the next include */
#if SL_HAVE_CUDA
#include "cuda_info.h"
#endif
#include "sl_git_describe.h"
#include "steinlab/status.h"
#include "steinlab/version.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: steinlab COMMAND [ARGS]\n"
            "\n"
            "  run SPEC.yaml [key.sub=value ...] [--threads N] [--dry-run]\n"
            "                      run an experiment; the last line printed is 'log: PATH'\n"
            "  run --resume RUN.h5 [steps=N]\n"
            "                      continue a run from its checkpoint RUN.ckpt.h5\n"
            "  sweep SPEC.yaml [key=value ...] [--jobs N] [--out DIR] [--threads-per-job T] [--dry-run]\n"
            "                      run a spec's sweep grid in parallel; the last line is 'index: PATH'\n"
            "  sweep SPEC.yaml --slurm [--partition P] [--time T] [--cpus-per-task C] [--mem M]\n"
            "                      write (and submit) a Slurm job array of the unfinished cells\n"
            "  plugins [NAME]      list plugins, or show one plugin's parameters\n"
            "  plugins --markdown  print the spec reference (docs/spec-reference.md)\n"
            "  inspect RUN.h5      summarise a run's log (also while it is being written)\n"
            "  export RUN.h5 --mesh OUT.obj|OUT.ply [--resolution N] [--threshold X]\n"
            "                      write the run's mesh (or re-extract it from the checkpoint)\n"
            "  export RUN.h5 --video OUT.mp4 [--frames N] [--resolution R] [--fps F]\n"
            "                      a turntable of the trained representation (ffmpeg, else PNGs)\n"
            "  render --representation gaussians --ply IN.ply --eye X,Y,Z --target X,Y,Z --up X,Y,Z\n"
            "         --fovy DEG --size WxH [--background R,G,B] OUT.png   one view of a splat file\n"
            "  prior train SPEC.yaml [key=value ...] [--threads N] [--resume] [--stop-at STEP]\n"
            "                      train a UNet prior on a teacher prior's views (docs/prior-training.md)\n"
            "  prior eval SPEC.yaml [--weights FILE]\n"
            "                      its score error against the teacher's exact denoiser\n"
            "  world list | show PROMPT | render PROMPT --out FILE.png\n"
            "                      the world prior's scenes (docs/world.md)\n"
            "  version             print the version and build configuration\n"
            "\n"
            "Plugins are searched in the spec's plugin_paths, STEINLAB_PLUGIN_PATH, then the\n"
            "build tree or the install prefix. Documentation: docs/user-guide.md.\n");
}

int sl_exit_code(int status)
{
    switch ((sl_status)status) {
    case SL_OK: return 0;
    case SL_ERR_SPEC:
    case SL_ERR_INVALID_ARG: return 2;
    case SL_ERR_INTERRUPTED: return 130;
    default: return 1;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return sl_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "plugins"))
        return sl_cmd_plugins(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect"))
        return sl_cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "world"))
        return sl_cmd_world(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep"))
        return sl_cmd_sweep(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return sl_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "render"))
        return sl_cmd_render(argc - 1, argv + 1);
    if (!strcmp(cmd, "prior"))
        return sl_cmd_prior(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        const char *forced = getenv("OPENBLAS_CORETYPE");
        printf("steinlab %s (%s)\nlibrary %s\nblas: OpenBLAS, %s kernels%s%s%s\n",
               SL_VERSION_STRING, SL_GIT_DESCRIBE, sl_version(), sl_blas_core(),
               forced ? " (OPENBLAS_CORETYPE=" : " (detected)", forced ? forced : "",
               forced ? ")" : "");
#if SL_HAVE_CUDA
        int runtime = 0;
        char device[256];
        int n = sl_cuda_probe(&runtime, device, sizeof device);
        printf("cuda: built (runtime %d.%d), %d device%s%s%s\n", runtime / 1000,
               (runtime % 1000) / 10, n, n == 1 ? "" : "s", n ? ": " : "", n ? device : "");
#else
        printf("cuda: not built\n");
#endif
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "steinlab: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
