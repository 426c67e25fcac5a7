/* Fuzz target: query list files ("row N" / "raster FILE [X Y W H]" /
 * "audio FILE" lines, '#' comments), the library's cmir_query_list_load(),
 * which cmir_search -queries uses. */
#include "fuzz_common.h"

#include "cmir/index.h"

#include <string.h>

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
    cmir_query_list *l = NULL;
    if (cmir_query_list_load(path, &l) == 0) {
        /* every query well formed, its strings readable */
        const cmir_query *q = cmir_query_list_queries(l);
        for (int i = 0; i < cmir_query_list_count(l); i++) {
            if (q[i].kind == CMIR_QUERY_RASTER && strlen(q[i].raster) == 0)
                __builtin_trap();
            if (q[i].kind == CMIR_QUERY_AUDIO && strlen(q[i].audio) == 0)
                __builtin_trap();
            if (q[i].kind == CMIR_QUERY_ROW && q[i].row < 0)
                __builtin_trap();
        }
    } else if (l) {
        __builtin_trap(); /* a failed load leaves no list */
    }
    cmir_query_list_free(l);
    close(fd);
    return 0;
}
