/* core/cli/cli.h — subcommands of the steinlab executable. Each returns the process exit
 * code: 0 success, 1 run-time failure, 2 bad usage or bad spec, 130 interrupted. */
#ifndef STEINLAB_CLI_H
#define STEINLAB_CLI_H

int sl_cmd_run(int argc, char **argv);
int sl_cmd_plugins(int argc, char **argv);
int sl_cmd_inspect(int argc, char **argv);
int sl_cmd_world(int argc, char **argv);
int sl_cmd_sweep(int argc, char **argv);
int sl_cmd_export(int argc, char **argv);
int sl_cmd_render(int argc, char **argv);
int sl_cmd_prior(int argc, char **argv);

/* Exit code for a status. */
int sl_exit_code(int status);

#endif
