/* Fuzz target: cmir_audio_load on any bytes (WAV, FLAC, OGG, ... through
 * libsndfile, then our checks, mixing, resampling and trimming), and the
 * clip feature of whatever it accepts, in both feature kinds. */
#include "fuzz_common.h"

#include "cmir/audio.h"

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
    close(fd);
    cmir_audio_params p = cmir_audio_default_params();
    p.max_seconds = 30; /* bounds the work per input, as a caller would */
    float *x = NULL;
    int64_t n = 0;
    if (cmir_audio_load(path, p, &x, &n) == 0) {
        float feat[CMIR_AUDIO_FEATURE_DIM];
        cmir_audio_features(x, n, p, feat);
        p.feature = CMIR_AUDIO_FEATURE_CEPSTRAL;
        cmir_audio_features(x, n, p, feat);
        cmir_free(x);
    }
    fuzz_verbose();
    return 0;
}
