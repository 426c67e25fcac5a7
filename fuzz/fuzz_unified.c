/* Fuzz target: the unified-stage feature file (unified.mat: featuresx,
 * featuresy, labels) as cmir_eval_unified reads and validates it, then
 * evaluates it (one thread). */
#include "fuzz_common.h"

#include "cmir/base.h"

#include "cmir/train.h"

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
    cmir_eval_params p = cmir_eval_default_params();
    p.threads = 1;
    cmir_eval_report r;
    (void)cmir_eval_unified(path, p, NULL, NULL, &r);
    close(fd);
    fuzz_verbose();
    return 0;
}
