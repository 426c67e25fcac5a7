/* Fuzz target: cmir_model_load on a model .mat file (tensorset loading,
 * then every size, statistic, class name, weight and the identity check),
 * then the loaded model's small accessors. */
#include "fuzz_common.h"

#include "cmir/base.h"

#include "cmir/model.h"

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
    cmir_model *m = cmir_model_load(path);
    if (m) {
        volatile size_t sink = 0;
        const cmir_model_info *in = cmir_model_get_info(m);
        for (int c = 0; c <= in->n_classes + 1 && c < 64; c++)
            {
            const char *cn = cmir_model_class_name(m, c);
            sink += cn ? strlen(cn) : 0;
        }
        int64_t n = 0, nt = 0;
        const int64_t *t = cmir_model_test_tiles(m, &n, &nt);
        for (int64_t i = 0; t && i < n; i++)
            sink += (size_t)t[i];
        sink += in->id ? strlen(in->id) : 0;
        (void)sink;
    }
    cmir_model_free(m);
    close(fd);
    fuzz_verbose();
    return 0;
}
