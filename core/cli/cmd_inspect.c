/* core/cli/cmd_inspect.c — `steinlab inspect RUN.h5`. */
#include <stdio.h>

#include "cli.h"
#include "log.h"

int sl_cmd_inspect(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: steinlab inspect RUN.h5\n");
        return 2;
    }
    sl_error err = { "" };
    sl_status st = sl_log_inspect(argv[1], stdout, &err);
    if (st != SL_OK) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
