/* The pocketsphinx clip feature (CMIR_AUDIO_FEATURE_SPHINX) on real human
 * recordings from Debian's pocketsphinx-testdata: words the recording
 * holds are heard, the feature survives re-encoding and resampling,
 * silence and noise score nothing, and bad vocabularies, dictionaries and
 * clips are refused in one line. Skips (77) only without that package. */
#include "cmir/audio.h"
#include "cmir/tensorset.h"
#include "model/model_internal.h"
#include "test_util.h"

#include <samplerate.h>
#include <sndfile.h>
#include <unistd.h>

#define CARDS "/usr/share/pocketsphinx/test/data/cards/"
/* Words of the transcripts (cards.transcription: 001 "ten of clubs",
 * 003 "seven of clubs", 004 "five five") and distractors, two of them
 * multi-word labels. */
static const char *VOCAB = "ten|seven|five|clubs|hearts|water|trees|bare soil|mobile home|airplane";
enum { TEN, SEVEN, FIVE, CLUBS, HEARTS, WATER, TREES, BARE_SOIL, MOBILE_HOME, AIRPLANE, NV };

static char tmpdir[64];

static const char *tmp(const char *name)
{
    char *p = malloc(256);
    snprintf(p, 256, "%s/%s", tmpdir, name);
    return t_keep(p);
}

static cmir_audio_params sphinx_params(const char *vocab)
{
    cmir_audio_params p = cmir_audio_default_params();
    p.feature = CMIR_AUDIO_FEATURE_SPHINX;
    p.vocabulary = vocab;
    return p;
}

/* The recording as float samples (mono, its own rate). */
static float *read_clip(const char *path, int64_t *n, int *rate)
{
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    ASSERT_TRUE(sf != NULL);
    if (!sf)
        return NULL;
    float *x = malloc(sizeof(float) * (size_t)info.frames * (size_t)info.channels);
    *n = sf_readf_float(sf, x, info.frames);
    *rate = info.samplerate;
    sf_close(sf);
    ASSERT_EQ_INT(info.channels, 1);
    return x;
}

static void write_clip(const char *path, int format, int rate, const float *x, int64_t n)
{
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = 1;
    info.format = format;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    ASSERT_TRUE(sf != NULL);
    if (!sf)
        return;
    sf_command(sf, SFC_SET_CLIPPING, NULL, SF_TRUE); /* resampling overshoots full scale a little */
    ASSERT_EQ_INT(sf_writef_float(sf, x, n), n);
    sf_close(sf);
}

static int argmax(const float *f, int n)
{
    int b = 0;
    for (int k = 1; k < n; k++)
        if (f[k] > f[b])
            b = k;
    return b;
}

static void test_words_heard(void)
{
    cmir_audio_params p = sphinx_params(VOCAB);
    cmir_audio_extractor *ex = cmir_audio_extractor_new(p);
    ASSERT_TRUE(ex != NULL);
    if (!ex) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return;
    }
    static const struct { const char *file; int a, b; } cases[] = {
        {CARDS "001.wav", TEN, CLUBS}, {CARDS "003.wav", SEVEN, CLUBS}, {CARDS "004.wav", FIVE, FIVE}};
    for (int c = 0; c < 3; c++) {
        float *x = NULL, feat[CMIR_AUDIO_FEATURE_DIM];
        int64_t n = 0;
        ASSERT_OK(cmir_audio_load(cases[c].file, p, &x, &n));
        ASSERT_OK(cmir_audio_extractor_feature(ex, x, n, feat));
        printf("  %s:", cases[c].file);
        for (int k = 0; k < NV; k++)
            printf(" %.2f", feat[k]);
        printf("\n");
        ASSERT_TRUE(feat[cases[c].a] >= 0.5f);
        ASSERT_TRUE(feat[cases[c].b] >= 0.5f);
        for (int k = WATER; k < NV; k++) /* the distractors */
            ASSERT_TRUE(feat[k] < 0.5f);
        for (int k = NV; k < CMIR_AUDIO_FEATURE_DIM; k++)
            ASSERT_TRUE(feat[k] == 0.0f);
        int heard[8], nh = 0;
        ASSERT_OK(cmir_audio_extractor_heard(ex, x, n, heard, 8, &nh));
        ASSERT_TRUE(nh >= 1 && (heard[0] == cases[c].a));
        free(x);
    }
    const char *v = cmir_audio_extractor_vocabulary(ex);
    ASSERT_TRUE(v && !strcmp(v, "ten\nseven\nfive\nclubs\nhearts\nwater\ntrees\nbare soil\nmobile home\nairplane"));
    cmir_audio_extractor_free(ex);
}

/* The same recording as FLAC, Ogg Vorbis, float WAV and at 8, 22.05 and
 * 44.1 kHz: the same labels, within 0.25 of every posterior. */
static void test_formats_and_rates(void)
{
    int64_t n = 0;
    int rate = 0;
    float *x = read_clip(CARDS "001.wav", &n, &rate);
    if (!x)
        return;
    cmir_audio_params p = sphinx_params(VOCAB);
    float ref[CMIR_AUDIO_FEATURE_DIM], f[CMIR_AUDIO_FEATURE_DIM];
    ASSERT_OK(cmir_audio_clip_feature(CARDS "001.wav", p, ref));
    static const struct { const char *name; int format, rate; } v[] = {
        {"a.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 0},
        {"a.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 0},
        {"a_float.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 0},
        {"a_8k.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000},
        {"a_22k.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050},
        {"a_44k.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int r = v[i].rate ? v[i].rate : rate;
        int64_t m = (int64_t)((double)n * r / rate) + 16;
        float *y = calloc((size_t)m, sizeof(float));
        SRC_DATA d = {0};
        d.data_in = x;
        d.input_frames = n;
        d.data_out = y;
        d.output_frames = m;
        d.src_ratio = (double)r / rate;
        ASSERT_EQ_INT(src_simple(&d, SRC_SINC_MEDIUM_QUALITY, 1), 0);
        write_clip(tmp(v[i].name), v[i].format, r, y, d.output_frames_gen);
        free(y);
        ASSERT_OK(cmir_audio_clip_feature(tmp(v[i].name), p, f));
        double worst = 0;
        for (int k = 0; k < CMIR_AUDIO_FEATURE_DIM; k++)
            worst = fmax(worst, fabs(f[k] - ref[k]));
        printf("  %s: largest difference %.3f\n", v[i].name, worst);
        ASSERT_LE(worst, 0.25);
        ASSERT_EQ_INT(argmax(f, NV), argmax(ref, NV));
    }
    free(x);
}

/* Silence is refused by the loader, noise alone by the decoder: "no speech". */
static void test_silence_and_noise(void)
{
    cmir_audio_params p = sphinx_params(VOCAB);
    float *x = malloc(sizeof(float) * 32000), f[CMIR_AUDIO_FEATURE_DIM];
    uint32_t s = 12345;
    for (int i = 0; i < 32000; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = 0.1f * ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f);
    }
    write_clip(tmp("noise.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, x, 32000);
    ASSERT_EQ_INT(cmir_audio_clip_feature(tmp("noise.wav"), p, f), CMIR_EFORMAT);
    printf("  noise: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "no speech") && strstr(cmir_last_error(), "noise.wav"));
    memset(x, 0, sizeof(float) * 32000);
    write_clip(tmp("silence.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, x, 32000);
    ASSERT_EQ_INT(cmir_audio_clip_feature(tmp("silence.wav"), p, f), CMIR_EFORMAT);
    printf("  silence: %s\n", cmir_last_error());
    /* an empty clip */
    write_clip(tmp("empty.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 16000, x, 0);
    ASSERT_EQ_INT(cmir_audio_clip_feature(tmp("empty.wav"), p, f), CMIR_EFORMAT);
    printf("  empty: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "empty.wav") != NULL);
    free(x);
    /* a 20-minute clip, refused by the duration ceiling from its header */
    SF_INFO info = {0};
    info.samplerate = 4000;
    info.channels = 1;
    info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_U8;
    SNDFILE *sf = sf_open(tmp("long.wav"), SFM_WRITE, &info);
    ASSERT_TRUE(sf != NULL);
    if (sf) {
        short *z = calloc(4000 * 60, sizeof(short));
        for (int i = 0; i < 4000 * 60; i++)
            z[i] = (short)((i * 37 % 200) - 100);
        for (int m = 0; m < 20; m++)
            sf_writef_short(sf, z, 4000 * 60);
        free(z);
        sf_close(sf);
    }
    ASSERT_TRUE(cmir_audio_clip_feature(tmp("long.wav"), p, f) < 0);
    printf("  20 minutes: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "long.wav") != NULL && !strchr(cmir_last_error(), '\n'));
}

/* Unknown words, dictionaries, duplicate labels. */
static void test_vocabulary_refusals(void)
{
    cmir_audio_params p = sphinx_params("water|aquafarm|trees");
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    printf("  unknown word: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "'aquafarm'") && !strchr(cmir_last_error(), '\n'));

    FILE *fp = fopen(tmp("extra.dict"), "w");
    fprintf(fp, ";;; label words the CMU dictionary lacks\naquafarm AE K W AH F AA R M\n");
    fclose(fp);
    p.extra_dict = tmp("extra.dict");
    cmir_audio_extractor *ex = cmir_audio_extractor_new(p);
    ASSERT_TRUE(ex != NULL);
    if (ex) {
        const char *v = cmir_audio_extractor_vocabulary(ex);
        ASSERT_TRUE(v && !strcmp(v, "water\naquafarm\tAE K W AH F AA R M\ntrees"));
        cmir_audio_extractor_free(ex);
    }
    /* the resolved vocabulary stands on its own (as a model records it) */
    p = sphinx_params("water\naquafarm\tAE K W AH F AA R M\ntrees");
    ex = cmir_audio_extractor_new(p);
    ASSERT_TRUE(ex != NULL);
    cmir_audio_extractor_free(ex);

    fp = fopen(tmp("corrupt.dict"), "w");
    fprintf(fp, "aquafarm\n\x01\x02 garbage\n");
    fclose(fp);
    p = sphinx_params("water|aquafarm");
    p.extra_dict = tmp("corrupt.dict");
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    printf("  corrupt dictionary: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "corrupt.dict:1") && !strchr(cmir_last_error(), '\n'));

    fp = fopen(tmp("badphone.dict"), "w");
    fprintf(fp, "aquafarm AE K W QQ F AA R M\n");
    fclose(fp);
    p.extra_dict = tmp("badphone.dict");
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    printf("  unknown phone: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "aquafarm") != NULL);

    p = sphinx_params("water|Water");
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "twice") != NULL);
    p = sphinx_params("water|trees;drop");
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    p = sphinx_params(NULL);
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    p = sphinx_params("water|trees");
    p.sphinx_hmm = "/nonexistent/model";
    ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "/nonexistent/model") != NULL);
}

/* The acoustic model's identity: stable, and another model differs. */
static void test_identity(void)
{
    char a[17], b[17], c[17];
    ASSERT_OK(cmir_audio_sphinx_identity(NULL, NULL, a));
    ASSERT_OK(cmir_audio_sphinx_identity(CMIR_AUDIO_SPHINX_HMM, CMIR_AUDIO_SPHINX_DICT, b));
    ASSERT_TRUE(!strcmp(a, b) && strlen(a) == 16);
    ASSERT_OK(cmir_audio_sphinx_identity("/usr/share/pocketsphinx/test/data/an4_ci_cont", NULL, c));
    ASSERT_TRUE(strcmp(a, c) != 0);
    ASSERT_TRUE(cmir_audio_sphinx_identity("/nonexistent", NULL, c) == CMIR_EIO);
}

/* What a sphinx model file records, and its checks on loading. */
static cmir_tensorset *records(const char *vocab, const char *hmm, const char *sum)
{
    cmir_tensorset *ts = cmir_tensorset_new();
    ASSERT_OK(cmir_tensorset_put_string(ts, "AUDIO_FEATURE", "sphinx"));
    if (vocab)
        ASSERT_OK(cmir_tensorset_put_string(ts, "AUDIO_VOCABULARY", vocab));
    ASSERT_OK(cmir_tensorset_put_string(ts, "AUDIO_ACOUSTIC_MODEL", hmm));
    ASSERT_OK(cmir_tensorset_put_string(ts, "AUDIO_DICTIONARY", CMIR_AUDIO_SPHINX_DICT));
    ASSERT_OK(cmir_tensorset_put_string(ts, "AUDIO_MODEL_SUM", sum));
    return ts;
}

static int load_records(cmir_tensorset *ts, char *vocab_out, size_t n)
{
    cmir_model *m = calloc(1, sizeof *m);
    int rc = cmir__model_load_audio(m, ts);
    if (!rc && vocab_out) {
        cmir_audio_params p = cmir_audio_default_params();
        p.feature = m->info.audio_feature;
        cmir__model_audio_params(m, &p);
        snprintf(vocab_out, n, "%s", p.vocabulary ? p.vocabulary : "");
    }
    char msg[600];
    snprintf(msg, sizeof msg, "%s", cmir_last_error());
    cmir__free(m->audio_vocab);
    cmir__free(m->audio_hmm);
    cmir__free(m->audio_dict);
    free(m);
    cmir_tensorset_free(ts);
    cmir__error(rc ? rc : 0, "%s", msg);
    return rc;
}

static void test_model_records(void)
{
    char sum[17], v[256];
    ASSERT_OK(cmir_audio_sphinx_identity(NULL, NULL, sum));
    ASSERT_OK(load_records(records("water\nbare soil", CMIR_AUDIO_SPHINX_HMM, sum), v, sizeof v));
    ASSERT_TRUE(!strcmp(v, "water\nbare soil"));
    /* another acoustic model than the one trained with, a changed checksum, no vocabulary */
    ASSERT_EQ_INT(load_records(records("water", "/usr/share/pocketsphinx/test/data/an4_ci_cont", sum), NULL, 0),
                  CMIR_EFORMAT);
    printf("  other acoustic model: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "not the one it was trained with") != NULL);
    ASSERT_EQ_INT(load_records(records("water", CMIR_AUDIO_SPHINX_HMM, "0123456789abcdef"), NULL, 0), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), "0123456789abcdef") != NULL && !strchr(cmir_last_error(), '\n'));
    ASSERT_EQ_INT(load_records(records(NULL, CMIR_AUDIO_SPHINX_HMM, sum), NULL, 0), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), "AUDIO_VOCABULARY") != NULL);
    ASSERT_EQ_INT(load_records(records("water", "/nonexistent", sum), NULL, 0), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), "/nonexistent") != NULL);
}

int main(void)
{
    if (access(CARDS "001.wav", R_OK) != 0) {
        printf("SKIP: pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata)\n");
        return 77;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cmir_sphinx_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN(test_words_heard);
    RUN(test_formats_and_rates);
    RUN(test_silence_and_noise);
    RUN(test_vocabulary_refusals);
    RUN(test_identity);
    RUN(test_model_records);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    TEST_MAIN_END();
}
