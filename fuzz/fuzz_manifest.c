/* Fuzz target: cmir_audio_corpus_load's manifest parser (file,label,
 * voice,held_out CSV). The clips it names are looked for beside the
 * scratch file and are normally absent, so this exercises the parsing and
 * the refusals; the seed that names a real clip goes further. */
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
    cmir_audio_corpus *c = cmir_audio_corpus_load(path, cmir_audio_default_params(), NULL, NULL);
    volatile size_t sink = 0;
    for (int64_t i = 0; c && i < cmir_audio_corpus_count(c); i++)
        sink += strlen(cmir_audio_corpus_label(c, i)) + strlen(cmir_audio_corpus_voice(c, i)) +
                (size_t)cmir_audio_corpus_held_out(c, i);
    (void)sink;
    cmir_audio_corpus_free(c);
    fuzz_verbose();
    return 0;
}
