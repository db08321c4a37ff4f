/* trainctl sample — placeholder until the gpt model lands (see cli.h). */
#include <stdio.h>
#include "cli.h"

int cmd_sample(int argc, char **argv)
{
    fprintf(stderr, "trainctl sample: needs a gpt model, which this build does not have yet\n");
    return EXIT_FAIL;
}
