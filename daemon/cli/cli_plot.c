/*
 * cli_plot — the terminal plots of `trainctl compare` and `trainctl
 * schedule`: a grid of cells, each empty (-1) or holding the index of the
 * curve drawn there, printed top row first with the y labels on the first
 * and last rows, one glyph (and, on a terminal, one colour) per curve.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const char glyphs[] = "*+ox#@%&=~";
static const char *const colours[] = {"31", "32", "34", "35", "36", "33", "91", "92", "94", "95"};

void cli_plot_mark(int k, bool colour)
{
    if (colour)
        printf("\033[%sm%c\033[0m", colours[k % 10], glyphs[k % 10]);
    else
        putchar(glyphs[k % 10]);
}

void cli_plot_grid(const int *grid, int h, int w, const char *top, const char *bottom, bool colour)
{
    for (int r = h - 1; r >= 0; r--) {
        printf("%10s |", r == h - 1 ? top : r == 0 ? bottom : "");
        for (int c = 0; c < w; c++) {
            int k = grid[r * w + c];
            if (k < 0)
                putchar(' ');
            else
                cli_plot_mark(k, colour);
        }
        putchar('\n');
    }
    printf("%10s +", "");
    for (int c = 0; c < w; c++)
        putchar('-');
}

int cli_term_width(void)
{
    struct winsize ws;
    int w = 0;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0)
        w = ws.ws_col;
    const char *env = getenv("COLUMNS");
    if (w <= 0 && env)
        w = atoi(env);
    if (w <= 0)
        w = 80;
    return w < 40 ? 40 : w > 400 ? 400 : w;
}
