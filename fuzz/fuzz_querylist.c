/* Fuzz target: cmir_search's -queries list ("row N" / "raster FILE [X Y W
 * H]" lines, '#' comments). The parser, add_list(), is a static function
 * of the program cmirtools/apps/cmir_search.c; rather than copy it, this
 * file includes that source with its main() renamed, so the fuzzed code is
 * exactly the program's. */
#include "fuzz_common.h"

#define main cmir_search_main
#include "cmir_search.c"
#undef main

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_env();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd;
    char path[64];
    if (fuzz_memfile(data, size, &fd, path))
        return 0;
    cmir_query *q = NULL;
    int n = 0, cap = 0;
    (void)add_list(path, &q, &n, &cap);
    for (int i = 0; i < n; i++)
        free((void *)q[i].raster);
    free(q);
    close(fd);
    return 0;
}
