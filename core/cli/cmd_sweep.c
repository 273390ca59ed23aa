/* core/cli/cmd_sweep.c — `steinlab sweep SPEC.yaml [key=value ...] [--jobs N] [--out DIR]
 * [--threads-per-job T] [--dry-run]` runs a spec's grid (core/sweep.h) in parallel child
 * processes of this executable, with one combined progress view, and writes the sweep
 * index; `--slurm [--partition P] [--time T] [--cpus-per-task C] [--mem M]` writes a Slurm
 * job-array script instead and submits it when sbatch exists. The last line printed is
 * `index: PATH`. Documentation: docs/sweeps.md. */
#define _GNU_SOURCE   /* prctl's PR_SET_PDEATHSIG */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "progress.h"
#include "sweep.h"

typedef struct sweep_args {
    const char *spec;
    const char **overrides;
    size_t n_overrides;
    const char *out;
    int jobs, threads, dry_run;
    int slurm, cpus_per_task;
    const char *partition, *time, *mem;
} sweep_args;

typedef struct cell_run {
    size_t cell;
    pid_t pid;
    double start_s;
    int resumed;
} cell_run;

static volatile sig_atomic_t g_signals;   /* SIGINT/SIGTERM received so far */
static volatile sig_atomic_t g_last_signal;

static void on_signal(int sig)
{
    g_signals++;
    g_last_signal = sig;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: steinlab sweep SPEC.yaml [key.sub=value ...] [--jobs N] [--out DIR]\n"
               "                      [--threads-per-job T] [--dry-run]\n"
               "       steinlab sweep SPEC.yaml [key.sub=value ...] --slurm [--out DIR]\n"
               "                      [--partition P] [--time T] [--cpus-per-task C] [--mem M]"
               " [--jobs N]\n");
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) {
        fprintf(stderr, "steinlab sweep: %s expects an integer in [%d, %d], found '%s'\n", opt,
                lo, hi, v);
        return 0;
    }
    *out = (int)n;
    return 1;
}

static int parse_args(int argc, char **argv, sweep_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--jobs") && next) {
            if (!parse_int(s, argv[++i], 1, 4096, &a->jobs))
                return 0;
        } else if (!strcmp(s, "--threads-per-job") && next) {
            if (!parse_int(s, argv[++i], 1, 1024, &a->threads))
                return 0;
        } else if (!strcmp(s, "--cpus-per-task") && next) {
            if (!parse_int(s, argv[++i], 1, 1024, &a->cpus_per_task))
                return 0;
        } else if (!strcmp(s, "--out") && next) {
            a->out = argv[++i];
        } else if (!strcmp(s, "--partition") && next) {
            a->partition = argv[++i];
        } else if (!strcmp(s, "--time") && next) {
            a->time = argv[++i];
        } else if (!strcmp(s, "--mem") && next) {
            a->mem = argv[++i];
        } else if (!strcmp(s, "--slurm")) {
            a->slurm = 1;
        } else if (!strcmp(s, "--dry-run")) {
            a->dry_run = 1;
        } else if (s[0] == '-' && s[1] == '-') {
            fprintf(stderr, "steinlab sweep: unknown option '%s' (or it lacks its value)\n", s);
            return 0;
        } else if (!a->spec && !strchr(s, '=')) {
            a->spec = s;
        } else {
            a->overrides[a->n_overrides++] = s;
        }
    }
    if (!a->spec) {
        usage(stderr);
        return 0;
    }
    if (!a->slurm && (a->partition || a->time || a->mem || a->cpus_per_task)) {
        fprintf(stderr, "steinlab sweep: --partition, --time, --mem and --cpus-per-task go "
                        "with --slurm\n");
        return 0;
    }
    return 1;
}

static long cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* ---- child processes ----------------------------------------------------------------------- */

/* Starts `steinlab run` for one cell: this very executable (/proc/self/exe, so a sweep never
 * mixes builds), its output in the cell directory. */
static pid_t spawn_cell(const char *abs_dir, size_t cell, int resume, int threads)
{
    char spec[PATH_MAX], log[PATH_MAX], out[PATH_MAX], errf[PATH_MAX], th[16];
    if (!sl_sweep_cell_path(abs_dir, cell, SL_CELL_SPEC_FILE, spec, sizeof spec) ||
        !sl_sweep_cell_path(abs_dir, cell, SL_CELL_LOG_FILE, log, sizeof log) ||
        !sl_sweep_cell_path(abs_dir, cell, SL_CELL_STDOUT_FILE, out, sizeof out) ||
        !sl_sweep_cell_path(abs_dir, cell, SL_CELL_STDERR_FILE, errf, sizeof errf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    snprintf(th, sizeof th, "%d", threads);
    char *argv_fresh[] = { "steinlab", "run", spec, "--threads", th, NULL };
    char *argv_resume[] = { "steinlab", "run", "--resume", log, "--threads", th, NULL };
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    /* The child. If the sweep dies (even by SIGKILL), its runs get SIGTERM: they write a
     * checkpoint and stop, so a re-run of the sweep resumes them instead of racing them. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(130);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    int e = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (in < 0 || o < 0 || e < 0 || dup2(in, 0) < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
        _exit(126);
    /* Cells run side by side: OpenMP threads that spin while they wait would take the cores
     * of the other cells (a run several times slower), so they sleep unless the user chose. */
    if (!getenv("OMP_WAIT_POLICY"))
        setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", resume ? argv_resume : argv_fresh);
    dprintf(2, "steinlab sweep: cannot execute /proc/self/exe: %s\n", strerror(errno));
    _exit(127);
}

/* The last "step N/M ... loss L" progress line of a cell's stdout (the run prints one every
 * tenth of the run when its output is a file). */
static int cell_progress(const char *abs_dir, size_t cell, long long *done, long long *total,
                         double *loss)
{
    char path[PATH_MAX], buf[4097];
    if (!sl_sweep_cell_path(abs_dir, cell, SL_CELL_STDOUT_FILE, path, sizeof path))
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
    size_t n = fread(buf, 1, 4096, f);
    fclose(f);
    buf[n] = '\0';
    int found = 0;
    for (char *p = buf; (p = strstr(p, "step ")) != NULL; p += 5) {
        long long d, t;
        double l = 0;
        if (sscanf(p, "step %lld/%lld", &d, &t) == 2) {
            char *lp = strstr(p, "loss ");
            char *nl = strchr(p, '\n');
            if (lp && (!nl || lp < nl))
                sscanf(lp, "loss %lf", &l);
            *done = d;
            *total = t;
            *loss = l;
            found = 1;
        }
    }
    return found;
}

/* The last non-empty line of a failed cell's stderr (its error message), into buf. */
static void last_error_line(const char *abs_dir, size_t cell, char *buf, size_t size)
{
    char path[PATH_MAX], text[2049];
    buf[0] = '\0';
    if (!sl_sweep_cell_path(abs_dir, cell, SL_CELL_STDERR_FILE, path, sizeof path))
        return;
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, n > 2048 ? n - 2048 : 0, SEEK_SET);
    size_t got = fread(text, 1, 2048, f);
    fclose(f);
    text[got] = '\0';
    while (got && (text[got - 1] == '\n' || text[got - 1] == '\r'))
        text[--got] = '\0';
    char *line = strrchr(text, '\n');
    line = line ? line + 1 : text;
    size_t len = strlen(line) < size ? strlen(line) : size - 1;
    memcpy(buf, line, len);
    buf[len] = '\0';
}

/* ---- the progress view ---------------------------------------------------------------------- */

typedef struct view {
    int tty;
    int lines_drawn;       /* TTY: lines of the block currently on screen */
    double last_draw_s;
    double start_s;
} view;

static void view_clear(view *v)
{
    if (v->tty && v->lines_drawn) {
        printf("\033[%dA\033[J", v->lines_drawn);
        v->lines_drawn = 0;
    }
}

/* An event line (a cell started, finished, failed): above the block on a terminal. */
static void view_event(view *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void view_event(view *v, const char *fmt, ...)
{
    view_clear(v);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void view_draw(view *v, const sl_sweep *sw, const char *abs_dir, const cell_run *running,
                      size_t n_running, size_t done, size_t failed, size_t todo, int force)
{
    double now = sl_now_s();
    double every = v->tty ? 0.5 : 10.0;
    if (!force && now - v->last_draw_s < every)
        return;
    v->last_draw_s = now;
    char elapsed[32];
    sl_format_duration(now - v->start_s, elapsed, sizeof elapsed);
    if (v->tty) {
        view_clear(v);
        printf("sweep %s: %zu/%zu done, %zu running, %zu failed, %zu to run  [%s]\n",
               sl_sweep_name(sw), done, sl_sweep_n_cells(sw), n_running, failed, todo, elapsed);
        v->lines_drawn = 1;
        for (size_t i = 0; i < n_running; i++) {
            char name[32], dir[PATH_MAX], desc[160];
            sl_sweep_cell_name(running[i].cell, name, sizeof name);
            sl_sweep_cell_path(abs_dir, running[i].cell, NULL, dir, sizeof dir);
            sl_sweep_describe_cell(sw, running[i].cell, desc, sizeof desc);
            long long d = 0, t = 0;
            double loss = 0;
            if (cell_progress(abs_dir, running[i].cell, &d, &t, &loss))
                printf("  %s  %-56.56s  %lld/%lld  loss %.4g\033[K\n", name, desc, d, t, loss);
            else
                printf("  %s  %-56.56s  %s\033[K\n", name, desc,
                       running[i].resumed ? "resuming" : "starting");
            v->lines_drawn++;
        }
    } else if (n_running) {
        printf("sweep %s: %zu/%zu done, %zu running, %zu failed, %zu to run [%s]:", sl_sweep_name(sw),
               done, sl_sweep_n_cells(sw), n_running, failed, todo, elapsed);
        for (size_t i = 0; i < n_running; i++) {
            char name[32], dir[PATH_MAX];
            sl_sweep_cell_name(running[i].cell, name, sizeof name);
            sl_sweep_cell_path(abs_dir, running[i].cell, NULL, dir, sizeof dir);
            long long d = 0, t = 0;
            double loss = 0;
            if (cell_progress(abs_dir, running[i].cell, &d, &t, &loss))
                printf(" %s %lld/%lld", name, d, t);
            else
                printf(" %s", name);
        }
        printf("\n");
    }
    fflush(stdout);
}

/* ---- local runs ------------------------------------------------------------------------------ */

static int run_local(const sl_sweep *sw, const char *abs_dir, const sweep_args *a)
{
    size_t n = sl_sweep_n_cells(sw);
    size_t *queue = calloc(n, sizeof *queue);
    int *resume = calloc(n, sizeof *resume);
    cell_run *running = calloc(n, sizeof *running);
    if (!queue || !resume || !running) {
        free(queue);
        free(resume);
        free(running);
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    size_t n_queue = 0, skipped = 0, done = 0, failed = 0, interrupted = 0;
    for (size_t c = 0; c < n; c++) {
        char name[32], dir[PATH_MAX];
        sl_sweep_cell_name(c, name, sizeof name);
        sl_sweep_cell_path(abs_dir, c, NULL, dir, sizeof dir);
        sl_cell_state s = sl_sweep_cell_state(dir, NULL);
        if (s == SL_CELL_DONE) {
            skipped++;
            continue;
        }
        resume[n_queue] = s == SL_CELL_RESUME;
        queue[n_queue++] = c;
    }
    done = skipped;
    int jobs = a->jobs ? a->jobs : (int)(cpu_count() < (long)n_queue ? cpu_count() : (long)n_queue);
    if (jobs < 1)
        jobs = 1;
    int threads = a->threads ? a->threads : (int)(cpu_count() / jobs > 0 ? cpu_count() / jobs : 1);
    if (skipped)
        printf("sweep %s: %zu of %zu cells finished earlier, skipped\n", sl_sweep_name(sw),
               skipped, n);
    if (n_queue)
        printf("sweep %s: running %zu cells, %d at a time, %d thread%s each\n", sl_sweep_name(sw),
               n_queue, jobs, threads, threads == 1 ? "" : "s");
    fflush(stdout);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_signals = 0;
    int forwarded = 0;

    view v = { .tty = isatty(STDOUT_FILENO), .start_s = sl_now_s() };
    v.last_draw_s = v.start_s;
    size_t next = 0, n_running = 0;
    int rc = 0;
    while (next < n_queue || n_running) {
        /* A signal stops the launching, and is passed on to the running cells: each one
         * checkpoints at the end of its step and exits 130 (a second signal: at once). */
        if (g_signals > forwarded) {
            if (!forwarded)
                view_event(&v, "sweep %s: stopping (signal %d): waiting for %zu running cell%s\n",
                           sl_sweep_name(sw), (int)g_last_signal, n_running,
                           n_running == 1 ? "" : "s");
            for (size_t i = 0; i < n_running; i++)
                kill(running[i].pid, SIGTERM);
            forwarded = g_signals;
        }
        while (!g_signals && next < n_queue && n_running < (size_t)jobs) {
            size_t c = queue[next];
            char name[32], dir[PATH_MAX], desc[512];
            sl_sweep_cell_name(c, name, sizeof name);
            sl_sweep_cell_path(abs_dir, c, NULL, dir, sizeof dir);
            sl_sweep_describe_cell(sw, c, desc, sizeof desc);
            sl_sweep_clear_exit(dir);
            pid_t pid = spawn_cell(abs_dir, c, resume[next], threads);
            if (pid < 0) {
                view_event(&v, "sweep: cannot start %s: %s\n", name, strerror(errno));
                failed++;
                next++;
                continue;
            }
            running[n_running++] = (cell_run){ c, pid, sl_now_s(), resume[next] };
            view_event(&v, "%s %s%s%s\n", resume[next] ? "resume" : "start ", name,
                       desc[0] ? "  " : "", desc);
            next++;
        }
        int reaped = 0;
        for (size_t i = 0; i < n_running;) {
            int status;
            pid_t r = waitpid(running[i].pid, &status, WNOHANG);
            if (r == 0 || (r < 0 && errno == EINTR)) {
                i++;
                continue;
            }
            int code = r < 0 ? 1 : WIFEXITED(status) ? WEXITSTATUS(status)
                                                     : 128 + WTERMSIG(status);
            char name[32], dir[PATH_MAX], dur[32];
            sl_sweep_cell_name(running[i].cell, name, sizeof name);
            sl_sweep_cell_path(abs_dir, running[i].cell, NULL, dir, sizeof dir);
            sl_format_duration(sl_now_s() - running[i].start_s, dur, sizeof dur);
            sl_error err = { "" };
            if (sl_sweep_record_exit(dir, code, &err) != SL_OK)
                view_event(&v, "sweep: %s\n", err.msg);
            if (code == 0) {
                done++;
                view_event(&v, "done   %s  (%s)\n", name, dur);
            } else if (code == 130) {
                interrupted++;
                view_event(&v, "stopped %s (exit 130 after %s; a re-run resumes it)\n", name, dur);
            } else {
                failed++;
                char why[512];
                last_error_line(abs_dir, running[i].cell, why, sizeof why);
                view_event(&v, "FAILED %s  (exit %d after %s; see %s/%s)%s%s\n", name, code, dur,
                           dir, SL_CELL_STDERR_FILE, why[0] ? "\n       " : "", why);
            }
            running[i] = running[--n_running];
            reaped = 1;
        }
        view_draw(&v, sw, abs_dir, running, n_running, done, failed,
                  n_queue - next, reaped);
        if (!reaped && (next >= n_queue || n_running >= (size_t)jobs || g_signals)) {
            struct timespec ts = { 0, 100 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    view_clear(&v);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    char elapsed[32];
    sl_format_duration(sl_now_s() - v.start_s, elapsed, sizeof elapsed);
    size_t not_run = n_queue - next;
    printf("sweep %s: %zu cells: %zu done (%zu skipped as finished), %zu failed, %zu stopped, "
           "%zu not started, in %s\n", sl_sweep_name(sw), n, done, skipped, failed, interrupted,
           not_run, elapsed);
    if (g_signals)
        rc = 130;
    else if (failed || interrupted)
        rc = 1;
    free(queue);
    free(resume);
    free(running);
    return rc;
}

/* ---- Slurm ------------------------------------------------------------------------------------ */

static int find_in_path(const char *prog, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (!path)
        return 0;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        snprintf(out, size, "%.*s/%s", (int)len, path, prog);
        if (len && access(out, X_OK) == 0)
            return 1;
        path += len + (colon ? 1 : 0);
    }
    return 0;
}

static int run_slurm(const sl_sweep *sw, const char *abs_dir, const sweep_args *a)
{
    size_t n = sl_sweep_n_cells(sw), n_todo = 0;
    size_t *todo = calloc(n, sizeof *todo);
    if (!todo) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    for (size_t c = 0; c < n; c++) {
        char name[32], dir[PATH_MAX];
        sl_sweep_cell_name(c, name, sizeof name);
        sl_sweep_cell_path(abs_dir, c, NULL, dir, sizeof dir);
        if (sl_sweep_cell_state(dir, NULL) != SL_CELL_DONE)
            todo[n_todo++] = c;
    }
    if (!n_todo) {
        printf("sweep %s: all %zu cells finished; nothing to submit\n", sl_sweep_name(sw), n);
        free(todo);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        fprintf(stderr, "error: cannot resolve /proc/self/exe: %s\n", strerror(errno));
        free(todo);
        return 1;
    }
    exe[len] = '\0';
    sl_slurm_options opt = { .partition = a->partition, .time = a->time, .mem = a->mem,
                             .cpus_per_task = a->cpus_per_task ? a->cpus_per_task : a->threads,
                             .max_parallel = a->jobs, .steinlab_exe = exe };
    char script[PATH_MAX];
    sl_error err = { "" };
    sl_status st = sl_sweep_write_slurm(sw, abs_dir, &opt, todo, n_todo, script, sizeof script,
                                        &err);
    free(todo);
    if (st != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return sl_exit_code(st);
    }
    printf("sweep %s: %zu of %zu cells to run: %s\n", sl_sweep_name(sw), n_todo, n, script);
    char sbatch[PATH_MAX];
    if (!find_in_path("sbatch", sbatch, sizeof sbatch)) {
        printf("sbatch is not on PATH: submit on a Slurm login node with\n    sbatch %s\n", script);
        return 0;
    }
    /* sbatch --parsable prints "JOBID[;CLUSTER]". */
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        fprintf(stderr, "error: pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        close(pipefd[1]);
        execl(sbatch, "sbatch", "--parsable", script, (char *)NULL);
        dprintf(2, "cannot execute %s: %s\n", sbatch, strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    char out[256] = "";
    size_t got = 0;
    ssize_t r;
    while (pid > 0 && got + 1 < sizeof out && (r = read(pipefd[0], out + got, sizeof out - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(pipefd[0]);
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "error: sbatch %s failed (see its message above)\n", script);
        return 1;
    }
    out[strcspn(out, ";\r\n")] = '\0';
    printf("submitted: Slurm job %s (%zu array task%s; cell output in %s/cell-NNNN/)\n", out, n_todo,
           n_todo == 1 ? "" : "s", abs_dir);
    return 0;
}

/* ---- the command ------------------------------------------------------------------------------- */

int sl_cmd_sweep(int argc, char **argv)
{
    sweep_args a = { 0 };
    a.overrides = calloc((size_t)argc, sizeof *a.overrides);
    if (!a.overrides)
        return 1;
    if (!parse_args(argc, argv, &a)) {
        free(a.overrides);
        return 2;
    }
    sl_sweep *sw = NULL;
    sl_error err = { "" };
    sl_status st = sl_sweep_load(a.spec, a.overrides, a.n_overrides, &sw, &err);
    free(a.overrides);
    if (st == SL_OK) {
        /* Validation creates every cell's plugins, whose info lines (one set per cell)
         * would bury the sweep's own output; each cell's stderr file keeps them when it
         * runs. Errors come back in err, not on stderr. */
        fflush(stderr);
        int saved = dup(STDERR_FILENO), quiet = open("/dev/null", O_WRONLY);
        if (saved >= 0 && quiet >= 0)
            dup2(quiet, STDERR_FILENO);
        st = sl_sweep_validate(sw, &err);
        fflush(stderr);
        if (saved >= 0 && quiet >= 0)
            dup2(saved, STDERR_FILENO);
        if (saved >= 0)
            close(saved);
        if (quiet >= 0)
            close(quiet);
    }
    if (st != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        sl_sweep_free(sw);
        return sl_exit_code(st);
    }
    size_t n = sl_sweep_n_cells(sw);
    char dir[PATH_MAX];
    if (a.out)
        snprintf(dir, sizeof dir, "%s", a.out);
    else
        snprintf(dir, sizeof dir, "sweeps/%s", sl_sweep_name(sw));
    if (a.dry_run) {
        printf("sweep %s: %zu cell%s, all valid; would run in %s\n", sl_sweep_name(sw), n,
               n == 1 ? "" : "s", dir);
        for (size_t c = 0; c < n; c++) {
            char name[32], desc[1024];
            sl_sweep_cell_name(c, name, sizeof name);
            sl_sweep_describe_cell(sw, c, desc, sizeof desc);
            printf("  %s  %s\n", name, desc);
        }
        sl_sweep_free(sw);
        return 0;
    }
    char abs_dir[PATH_MAX], index[PATH_MAX];
    st = sl_sweep_prepare_dir(sw, dir, abs_dir, &err);
    /* The index first too: its external links resolve as the cells' logs appear, so it can
     * be read while the sweep runs. */
    if (st == SL_OK)
        st = sl_sweep_write_index(sw, abs_dir, index, sizeof index, &err);
    if (st != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        sl_sweep_free(sw);
        return sl_exit_code(st);
    }
    printf("sweep %s: %zu cell%s in %s\n", sl_sweep_name(sw), n, n == 1 ? "" : "s", abs_dir);
    int rc = a.slurm ? run_slurm(sw, abs_dir, &a) : run_local(sw, abs_dir, &a);
    if (!a.slurm && sl_sweep_write_index(sw, abs_dir, index, sizeof index, &err) != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        rc = rc ? rc : 1;
    }
    printf("index: %s\n", index);
    sl_sweep_free(sw);
    return rc;
}
