/* cmir_version: prints the versions of libcmir and of the libraries it was
 * built on, so a bug report can say exactly what ran. */
#include "cmir/base.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "Usage: cmir_version [--help] [--version]\n"
               "Prints libcmir's version and the versions of OpenBLAS and matio it uses.\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--version")) {
            printf("cmir %s\n", cmir_version());
            return 0;
        } else {
            fprintf(stderr, "cmir_version: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    printf("cmir %s\n%s\n", cmir_version(), cmir_build_info());
    return 0;
}
