/* main.c -- entry point only: wiring, signals, run, ordered teardown. */
#include <stdio.h>

int main(void)
{
    fputs("aw-worker: not wired yet\n", stderr);
    return 1;
}
