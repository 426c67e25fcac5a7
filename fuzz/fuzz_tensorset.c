/* Fuzz target: cmir_tensorset_load on a .mat file (MAT v4, v5 compressed
 * or not, v7.3/HDF5; all through matio), then every entry read back. */
#include "fuzz_common.h"

#include "cmir/base.h"

#include "cmir/tensorset.h"

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
    cmir_tensorset *ts = cmir_tensorset_load(path);
    volatile float sink = 0;
    for (int i = 0; ts && i < cmir_tensorset_count(ts); i++) {
        const char *name = cmir_tensorset_name(ts, i);
        const cmir_tensor *t = cmir_tensorset_get(ts, name);
        if (t) {
            int64_t n = cmir_tensor_numel(t);
            for (int64_t k = 0; k < n; k++)
                sink += t->data[k];
        } else {
            const char *s = cmir_tensorset_get_string(ts, name);
            if (s)
                sink += (float)strlen(s);
        }
    }
    (void)sink;
    cmir_tensorset_free(ts);
    close(fd);
    fuzz_verbose();
    return 0;
}
