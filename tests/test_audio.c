/* Tests of the audio front-end: parameters, conditioning (mono, 16 kHz,
 * trimming) of synthetic signals, log-mel shape, gain invariance, hostile
 * and empty files refused cleanly, allocation failures, and (when espeak-ng
 * and sox are installed) one spoken word in many formats and rates giving
 * near-identical 128-d features while a different word does not. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "cmir/audio.h"
#include "test_util.h"
#include "test_wav.h"

#include <sndfile.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_audio_XXXXXX";

static char *path_in(const char *name)
{
    static char buf[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* ---- fixtures ---- */
/* Harmonic tone with a slow pitch glide, between silences (seconds). */
static float *make_tone(int rate, int ch, double lead, double dur, double tail, int64_t *frames)
{
    int64_t n = (int64_t)((lead + dur + tail) * rate);
    float *x = calloc((size_t)(n * ch), sizeof(float));
    double ph = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double t = (double)i / rate, v = 0.0;
        ph += 2.0 * 3.14159265358979323846 * (180.0 + 60.0 * t) / rate;
        if (t >= lead && t < lead + dur)
            for (int h = 1; h <= 12; h++)
                v += 0.5 / h * sin(h * ph);
        for (int c = 0; c < ch; c++)
            x[i * ch + c] = (float)(0.4 * v);
    }
    *frames = n;
    return x;
}

static void write_snd(const char *path, int format, int rate, int ch, const float *x,
                      int64_t frames)
{
    SF_INFO info = {0};
    info.samplerate = rate;
    info.channels = ch;
    info.format = format;
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    REQUIRE(sf != NULL);
    ASSERT_EQ_INT(sf_writef_float(sf, x, frames), frames);
    sf_close(sf);
}

static double cosine(const float *a, const float *b)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < CMIR_AUDIO_FEATURE_DIM; i++)
        ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static double rel_l2(const float *a, const float *b)
{
    double d = 0, aa = 0;
    for (int i = 0; i < CMIR_AUDIO_FEATURE_DIM; i++)
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), aa += (double)a[i] * a[i];
    return sqrt(d / aa);
}

/* ---- tests ---- */
static void test_params(void)
{
    cmir_audio_params p = cmir_audio_default_params();
    ASSERT_NEAR(p.max_seconds, 600, 0);
    ASSERT_EQ_INT(p.n_mels, 64);
    ASSERT_NEAR(p.fmin_hz, 50, 0);
    ASSERT_NEAR(p.fmax_hz, 8000, 0);
    cmir_audio_params b = p;
    b.n_mels = 32; /* the 32 MFCCs c1..c32 need at least 33 bands */
    ASSERT_TRUE(cmir_audio_extractor_new(b) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "n_mels") != NULL);
    b = p;
    b.fmax_hz = 9000;
    ASSERT_TRUE(cmir_audio_extractor_new(b) == NULL);
    b = p;
    b.max_seconds = 601;
    float *x = NULL;
    int64_t n = 5;
    ASSERT_EQ_INT(cmir_audio_load("/nonexistent.wav", b, &x, &n), CMIR_EINVAL);
    ASSERT_TRUE(x == NULL && n == 0);
    ASSERT_EQ_INT(cmir_audio_load(NULL, p, &x, &n), CMIR_EINVAL);
    cmir_audio_extractor_free(NULL);
}

static void test_prepare_and_trim(void)
{
    cmir_audio_params p = cmir_audio_default_params();
    int64_t frames, n;
    float *tone = make_tone(44100, 2, 0.5, 1.0, 0.5, &frames), *x = NULL;
    ASSERT_OK(cmir_audio_prepare(tone, frames, 2, 44100, p, &x, &n));
    /* 2 s in, 1 s of tone kept (trimming works on 10 ms steps). */
    ASSERT_NEAR(n, 16000, 480);
    p.trim_db = 0.0f; /* no trimming */
    float *y = NULL;
    int64_t ny;
    ASSERT_OK(cmir_audio_prepare(tone, frames, 2, 44100, p, &y, &ny));
    ASSERT_NEAR(ny, 32000, 2);
    /* log-mel shape: 1 + (n - 400) / 160 frames of 64 bands. */
    float *mel = NULL;
    int64_t nf;
    ASSERT_OK(cmir_audio_logmel(x, n, cmir_audio_default_params(), &mel, &nf));
    ASSERT_EQ_INT(nf, 1 + (n - 400) / 160);
    int finite = 1;
    for (int64_t i = 0; mel && i < nf * 64; i++)
        finite &= isfinite(mel[i]) != 0;
    ASSERT_TRUE(finite);
    cmir_free(mel);
    ASSERT_OK(cmir_audio_logmel(x, 100, cmir_audio_default_params(), &mel, &nf));
    ASSERT_EQ_INT(nf, 1);
    cmir_free(mel);
    /* Gain invariance: c0 is left out and the log floor follows the peak. */
    float f1[128], f2[128];
    ASSERT_OK(cmir_audio_features(x, n, cmir_audio_default_params(), f1));
    for (int64_t i = 0; i < n; i++)
        x[i] *= 0.05f;
    ASSERT_OK(cmir_audio_features(x, n, cmir_audio_default_params(), f2));
    ASSERT_LE(rel_l2(f1, f2), 1e-3);
    /* Through a file: WAV 16-bit and FLAC, both 44.1 kHz stereo. */
    write_snd(path_in("tone.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 44100, 2, tone, frames);
    write_snd(path_in("tone.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 44100, 2, tone, frames);
    float f3[128], f4[128];
    ASSERT_OK(cmir_audio_clip_feature(path_in("tone.wav"), cmir_audio_default_params(), f3));
    ASSERT_OK(cmir_audio_clip_feature(path_in("tone.flac"), cmir_audio_default_params(), f4));
    ASSERT_LE(rel_l2(f1, f3), 0.02);
    ASSERT_LE(rel_l2(f3, f4), 1e-4);
    /* Bad input to the feature functions. */
    ASSERT_EQ_INT(cmir_audio_features(x, 0, cmir_audio_default_params(), f2), CMIR_EINVAL);
    x[7] = NAN;
    ASSERT_EQ_INT(cmir_audio_features(x, n, cmir_audio_default_params(), f2), CMIR_EINVAL);
    cmir_free(x);
    cmir_free(y);
    free(tone);
}

/* Refused with `code` and a message containing `what`. */
static void expect_refused(const char *path, int code, const char *what)
{
    float *x = (float *)1, feat[128];
    int64_t n = 1;
    int rc = cmir_audio_load(path, cmir_audio_default_params(), &x, &n);
    if (rc != code || !strstr(cmir_last_error(), what))
        fprintf(stderr, "  %s: rc %d, message: %s\n", path, rc, cmir_last_error());
    ASSERT_EQ_INT(rc, code);
    ASSERT_TRUE(strstr(cmir_last_error(), what) != NULL);
    ASSERT_TRUE(x == NULL && n == 0);
    ASSERT_EQ_INT(cmir_audio_clip_feature(path, cmir_audio_default_params(), feat), code);
}

static void test_hostile(void)
{
    static int16_t pcm[16000];
    static float fl[16000];
    for (int i = 0; i < 16000; i++) {
        pcm[i] = (int16_t)(8000 * sin(i * 0.05) * sin(i * 0.0007));
        fl[i] = (float)pcm[i] / 32768.0f;
    }
    write_wav(path_in("zero.wav"), 1, 1, 16000, 16, 0, NULL, 0);
    expect_refused(path_in("zero.wav"), CMIR_EFORMAT, "empty");
    write_wav(path_in("one.wav"), 1, 1, 16000, 16, 2, pcm + 100, 2);
    expect_refused(path_in("one.wav"), CMIR_EFORMAT, "too short");
    static int16_t silent[16000];
    write_wav(path_in("silent.wav"), 1, 1, 16000, 16, sizeof silent, silent, sizeof silent);
    expect_refused(path_in("silent.wav"), CMIR_EFORMAT, "silent");
    static int16_t full[16000];
    for (int i = 0; i < 16000; i++)
        full[i] = (int16_t)((i / 40) % 2 ? 32767 : -32768); /* square wave at full scale */
    write_wav(path_in("square.wav"), 1, 1, 16000, 16, sizeof full, full, sizeof full);
    expect_refused(path_in("square.wav"), CMIR_EFORMAT, "clipped");
    for (int i = 0; i < 16000; i++)
        full[i] = 32767; /* all samples at full scale */
    write_wav(path_in("dc.wav"), 1, 1, 16000, 16, sizeof full, full, sizeof full);
    expect_refused(path_in("dc.wav"), CMIR_EFORMAT, "clipped");
    fl[5000] = NAN;
    write_wav(path_in("nan.wav"), 3, 1, 16000, 32, sizeof fl, fl, sizeof fl);
    expect_refused(path_in("nan.wav"), CMIR_EFORMAT, "NaN");
    fl[5000] = INFINITY;
    write_wav(path_in("inf.wav"), 3, 1, 16000, 32, sizeof fl, fl, sizeof fl);
    expect_refused(path_in("inf.wav"), CMIR_EFORMAT, "infinite");
    fl[5000] = 0.0f;
    /* Hostile headers. A WAV claiming 4 GB of data: header only (libsndfile
     * clamps the length to the file: nothing there), then a sparse file of
     * that size (refused by the duration limit before anything is read). */
    write_wav(path_in("huge.wav"), 1, 1, 16000, 16, 0xfffffff0u, NULL, 0);
    expect_refused(path_in("huge.wav"), CMIR_EFORMAT, "empty");
    write_wav(path_in("huge_sparse.wav"), 1, 1, 16000, 16, 0xfffffff0u, NULL, 0);
    ASSERT_TRUE(truncate(path_in("huge_sparse.wav"), 44 + (off_t)0xfffffff0u) == 0);
    expect_refused(path_in("huge_sparse.wav"), CMIR_EUNSUPPORTED, "above the limit of 600 s");
    write_wav(path_in("mhz.wav"), 1, 1, 1000000, 16, sizeof pcm, pcm, sizeof pcm);
    expect_refused(path_in("mhz.wav"), CMIR_EUNSUPPORTED, "sample rate 1000000 Hz");
    write_wav(path_in("ch64.wav"), 1, 64, 16000, 16, sizeof pcm, pcm, sizeof pcm);
    expect_refused(path_in("ch64.wav"), CMIR_EUNSUPPORTED, "64 channels");
    write_wav(path_in("low.wav"), 1, 1, 1000, 16, sizeof pcm, pcm, sizeof pcm);
    expect_refused(path_in("low.wav"), CMIR_EUNSUPPORTED, "sample rate 1000 Hz");
    /* A lower max_seconds is honoured (1 s of audio, limit 0.5 s). */
    write_wav(path_in("ok.wav"), 1, 1, 16000, 16, sizeof pcm, pcm, sizeof pcm);
    cmir_audio_params p = cmir_audio_default_params();
    float *x = NULL;
    int64_t n;
    ASSERT_OK(cmir_audio_load(path_in("ok.wav"), p, &x, &n));
    cmir_free(x);
    p.max_seconds = 0.5;
    ASSERT_EQ_INT(cmir_audio_load(path_in("ok.wav"), p, &x, &n), CMIR_EUNSUPPORTED);
    /* Not audio, missing, a directory. */
    FILE *f = fopen(path_in("text.wav"), "w");
    fputs("This is a text file, not a RIFF/WAVE file.\n", f);
    fclose(f);
    expect_refused(path_in("text.wav"), CMIR_EFORMAT, "sndfile: ");
    expect_refused(path_in("missing.wav"), CMIR_EIO, "sndfile: ");
    /* Truncated files: a FLAC cut at many offsets is refused (its header
     * states the length) or, when the cut leaves a valid shorter stream,
     * loads; a WAV cut inside its header is refused. Never a crash. */
    int64_t frames;
    float *tone = make_tone(22050, 1, 0.1, 0.8, 0.1, &frames);
    write_snd(path_in("t.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050, 1, tone, frames);
    write_snd(path_in("t.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 22050, 1, tone, frames);
    free(tone);
    int refused = 0, tried = 0;
    FILE *ff = fopen(path_in("t.flac"), "rb");
    fseek(ff, 0, SEEK_END);
    long size = ftell(ff);
    fclose(ff);
    for (int k = 0; k < 20; k++) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "head -c %ld %s > %s", size * k / 20, path_in("t.flac"),
                 path_in("cut.flac"));
        ASSERT_TRUE(system(cmd) == 0);
        x = NULL;
        int rc = cmir_audio_load(path_in("cut.flac"), cmir_audio_default_params(), &x, &n);
        tried++;
        refused += rc != 0;
        ASSERT_TRUE(rc == 0 || rc == CMIR_EFORMAT);
        ASSERT_TRUE(rc != 0 || x != NULL);
        if (rc)
            ASSERT_TRUE(strstr(cmir_last_error(), "cut.flac") != NULL);
        cmir_free(x);
    }
    printf("  truncated FLAC: %d of %d cuts refused\n", refused, tried);
    ASSERT_TRUE(refused == tried);
    for (int cut = 0; cut < 44; cut += 7) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "head -c %d %s > %s", cut, path_in("t.wav"), path_in("cut.wav"));
        ASSERT_TRUE(system(cmd) == 0);
        expect_refused(path_in("cut.wav"), CMIR_EFORMAT, "cut.wav");
    }
}

/* Every allocation failing in turn: CMIR_ENOMEM or success, never a leak
 * (checked under AddressSanitizer). */
static int feature_once(void *u)
{
    float feat[128];
    return cmir_audio_clip_feature((const char *)u, cmir_audio_default_params(), feat);
}

static void test_alloc_failures(void)
{
    ASSERT_TRUE(t_sweep("clip feature", feature_once, (void *)path_in("tone.flac"), 1, 400) > 0);
}

/* ---- one word, many formats ---- */
static int have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s > /dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Tolerance tiers, relative to the espeak-ng original: full band at 16 bits
 * or more (lossless, or Vorbis); narrowband (8 kHz: nothing above 4 kHz
 * survives); 8-bit PCM (quantisation noise about 30 dB under this
 * utterance's RMS, as much as the added noise of the speech corpus). */
enum { FULL, NARROW, BITS8, NTIER };
static const double min_cos[NTIER] = {0.99, 0.97, 0.90};
static const double max_l2[NTIER] = {0.10, 0.25, 0.45};
static const char *tier_name[NTIER] = {"full band", "8 kHz", "8-bit"};

typedef struct version {
    const char *name, *sox_args;
    int tier;
} version;

/* sox output options and file names, relative to the espeak-ng original
 * (mono, 22050 Hz, 16-bit WAV). */
static const version versions[] = {
    {"8k.flac", "-r 8000", NARROW},
    {"22k.flac", "-r 22050", FULL},
    {"44k.flac", "-r 44100", FULL},
    {"48k_st.flac", "-r 48000 -c 2", FULL},
    {"8k.ogg", "-r 8000", NARROW},
    {"22k_st.ogg", "-r 22050 -c 2", FULL},
    {"44k.ogg", "-r 44100", FULL},
    {"48k_st.ogg", "-r 48000 -c 2", FULL},
    {"8k_s16_st.wav", "-r 8000 -b 16 -c 2", NARROW},
    {"8k_u8.wav", "-r 8000 -b 8 -e unsigned-integer", BITS8},
    {"16k_s16.wav", "-r 16000 -b 16", FULL},
    {"22k_u8_st.wav", "-r 22050 -b 8 -e unsigned-integer -c 2", BITS8},
    {"44k_s24.wav", "-r 44100 -b 24", FULL},
    {"48k_s24_st.wav", "-r 48000 -b 24 -c 2", FULL},
    {"22k_f32.wav", "-r 22050 -e floating-point -b 32", FULL},
    {"48k_f32_st.wav", "-r 48000 -e floating-point -b 32 -c 2", FULL},
    {"44k_s32.wav", "-r 44100 -b 32", FULL},
};
#define NV (int)(sizeof versions / sizeof versions[0])

static int kind; /* the cmir_audio_feature_kind under test */

static cmir_audio_params kind_params(void)
{
    cmir_audio_params p = cmir_audio_default_params();
    p.feature = kind;
    return p;
}

static int word_features(const char *word, float feats[][128])
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "espeak-ng -v en-us -w %s/%s.wav %s > /dev/null 2>&1", dir, word,
             word);
    if (system(cmd) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "%s/%s.wav", dir, word);
    ASSERT_OK(cmir_audio_clip_feature(cmd, kind_params(), feats[0]));
    for (int v = 0; v < NV; v++) {
        snprintf(cmd, sizeof cmd, "sox -q -R %s/%s.wav %s %s/%s_%s", dir, word, versions[v].sox_args,
                 dir, word, versions[v].name);
        ASSERT_TRUE(system(cmd) == 0);
        snprintf(cmd, sizeof cmd, "%s/%s_%s", dir, word, versions[v].name);
        ASSERT_OK(cmir_audio_clip_feature(cmd, kind_params(), feats[v + 1]));
    }
    return 0;
}

/* Version index v in 0..NV (0: the original) is full band or narrowband. */
static int not_8bit(int v) { return v == 0 || versions[v - 1].tier != BITS8; }

/* Both feature kinds; the segmental one (the default) is not asserted on
 * 8-bit linear PCM: its dither at either end of a word moves the spans
 * (cosine about 0.5 to the original; see CMIR_AUDIO_FEATURE_SEGMENTAL). */
static void spoken_words_kind(void)
{
    printf("  feature kind %s\n", kind == CMIR_AUDIO_FEATURE_SEGMENTAL ? "SEGMENTAL" : "CEPSTRAL");
    if (!have("espeak-ng") || !have("sox")) {
        SKIP("espeak-ng or sox not installed: no spoken-word checks");
    }
    static float w[2][NV + 1][128];
    const char *word[2] = {"water", "forest"};
    if (word_features(word[0], w[0]) || word_features(word[1], w[1])) {
        SKIP("espeak-ng failed to speak: no spoken-word checks");
    }
    double worst_cos[NTIER] = {1, 1, 1}, worst_l2[NTIER] = {0, 0, 0}, nn_margin = 1e9, nn8 = 1e9;
    printf("  %-15s %-9s %9s %9s %9s %9s\n", "version", "tier", "cos(wat)", "L2(wat)", "cos(for)",
           "L2(for)");
    for (int v = 1; v <= NV; v++) {
        int t = versions[v - 1].tier;
        double c[2], l[2];
        for (int k = 0; k < 2; k++) {
            c[k] = cosine(w[k][0], w[k][v]);
            l[k] = rel_l2(w[k][0], w[k][v]);
            worst_cos[t] = fmin(worst_cos[t], c[k]);
            worst_l2[t] = fmax(worst_l2[t], l[k]);
            /* Nearest-original check: version v of a word is nearer the
             * original of that word than the original of the other (8-bit
             * versions pass too, but by a margin too thin to assert). */
            if (t != BITS8)
                nn_margin = fmin(nn_margin, rel_l2(w[k][0], w[1 - k][v]) / l[k]);
            else
                nn8 = fmin(nn8, rel_l2(w[k][0], w[1 - k][v]) / l[k]);
        }
        printf("  %-15s %-9s %9.4f %9.4f %9.4f %9.4f\n", versions[v - 1].name, tier_name[t],
               c[0], l[0], c[1], l[1]);
    }
    for (int t = 0; t < NTIER; t++) {
        printf("  %-9s: min cosine %.4f (>= %.2f), max relative L2 %.4f (<= %.2f)\n",
               tier_name[t], worst_cos[t], min_cos[t], worst_l2[t], max_l2[t]);
        if (t == BITS8 && kind == CMIR_AUDIO_FEATURE_SEGMENTAL)
            continue;
        ASSERT_LE(min_cos[t], worst_cos[t]);
        ASSERT_LE(worst_l2[t], max_l2[t]);
    }
    /* Different words differ more than any two 16-bit-or-better versions of
     * one word (all pairs, relative L2 to the first argument). */
    double diff_l2 = 1e9, diff_cos = -1, same_l2 = 0;
    for (int a = 0; a <= NV; a++)
        for (int b = 0; b <= NV; b++) {
            if (!not_8bit(a) || !not_8bit(b))
                continue;
            diff_l2 = fmin(diff_l2, rel_l2(w[0][a], w[1][b]));
            diff_cos = fmax(diff_cos, cosine(w[0][a], w[1][b]));
            same_l2 = fmax(same_l2, fmax(rel_l2(w[0][a], w[0][b]), rel_l2(w[1][a], w[1][b])));
        }
    printf("  water vs forest: min relative L2 %.4f, max cosine %.4f; same word, any two "
           "versions but 8-bit: max relative L2 %.4f\n",
           diff_l2, diff_cos, same_l2);
    printf("  nearest original: min (L2 to the other word / L2 to its own word) %.3f (> 1); "
           "8-bit, not checked: %.3f\n",
           nn_margin, nn8);
    ASSERT_LE(same_l2, diff_l2);
    ASSERT_LE(1.0, nn_margin);
}

static void test_spoken_words(void)
{
    kind = CMIR_AUDIO_FEATURE_CEPSTRAL;
    spoken_words_kind();
    kind = CMIR_AUDIO_FEATURE_SEGMENTAL;
    ASSERT_EQ_INT(cmir_audio_default_params().feature, CMIR_AUDIO_FEATURE_SEGMENTAL);
    spoken_words_kind();
}

/* Loads the corpus of manifest u: two clips, or NULL with the code. */
static int corpus_once(void *u)
{
    cmir_audio_corpus *c = cmir_audio_corpus_load((const char *)u, cmir_audio_default_params(), NULL, NULL);
    if (!c)
        return cmir_last_error_code();
    ASSERT_EQ_INT(cmir_audio_corpus_count(c), 2);
    cmir_audio_corpus_free(c);
    return 0;
}

/* Corpus manifests: features of every listed clip (relative paths resolve
 * against the manifest's folder; equal to cmir_audio_clip_feature), the
 * fields, the held-out flags, label matching; malformed manifests and a
 * bad clip are refused with the file (and line) named. */
static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void expect_bad_manifest(const char *text, const char *needle)
{
    const char *m = path_in("bad.csv");
    write_text(m, text);
    ASSERT_TRUE(cmir_audio_corpus_load(m, cmir_audio_default_params(), NULL, NULL) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), needle) != NULL);
    if (!strstr(cmir_last_error(), needle))
        printf("  message: %s\n", cmir_last_error());
}

static void test_corpus(void)
{
    int64_t frames;
    float *x = make_tone(22050, 1, 0.1, 0.4, 0.1, &frames);
    write_snd(path_in("clip_a.wav"), SF_FORMAT_WAV | SF_FORMAT_PCM_16, 22050, 1, x, frames);
    free(x);
    x = make_tone(16000, 2, 0.05, 0.3, 0.05, &frames);
    write_snd(path_in("clip_b.flac"), SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 2, x, frames);
    free(x);
    char text[1200];
    snprintf(text, sizeof text, "file,label,voice,held_out\nclip_a.wav, bare soil ,v1,0\r\n\n%s,water,v2,1\n",
             path_in("clip_b.flac"));
    const char *man = path_in("manifest.csv");
    write_text(man, text);
    cmir_audio_corpus *c = cmir_audio_corpus_load(man, cmir_audio_default_params(), NULL, NULL);
    REQUIRE(c != NULL);
    ASSERT_EQ_INT(cmir_audio_corpus_count(c), 2);
    ASSERT_TRUE(!strcmp(cmir_audio_corpus_label(c, 0), "bare soil"));
    ASSERT_TRUE(!strcmp(cmir_audio_corpus_voice(c, 1), "v2"));
    ASSERT_EQ_INT(cmir_audio_corpus_held_out(c, 0), 0);
    ASSERT_EQ_INT(cmir_audio_corpus_held_out(c, 1), 1);
    ASSERT_TRUE(!strcmp(cmir_audio_corpus_file(c, 0), path_in("clip_a.wav")));
    ASSERT_TRUE(cmir_audio_corpus_file(c, 2) == NULL);
    float f[2][CMIR_AUDIO_FEATURE_DIM];
    ASSERT_OK(cmir_audio_clip_feature(path_in("clip_a.wav"), cmir_audio_default_params(), f[0]));
    ASSERT_OK(cmir_audio_clip_feature(path_in("clip_b.flac"), cmir_audio_default_params(), f[1]));
    ASSERT_EQ_INT(memcmp(cmir_audio_corpus_features(c), f, sizeof f), 0);
    cmir_audio_corpus_free(c);
    cmir_audio_corpus_free(NULL);
    /* every allocation of a corpus load failing in turn: NULL with
     * CMIR_ENOMEM, or the whole corpus; never a leak (ASan pass) */
    ASSERT_TRUE(t_sweep("corpus load", corpus_once, (void *)man, 1, 400) > 0);
    ASSERT_EQ_INT(cmir_audio_label_match("bare_soil", "Bare soil"), 1);
    ASSERT_EQ_INT(cmir_audio_label_match("bare soil", "bare soils"), 0);
    ASSERT_EQ_INT(cmir_audio_label_match("sea", "sand"), 0);
    expect_bad_manifest("", "empty manifest");
    expect_bad_manifest("path,label\nclip_a.wav,sea\n", "not a speech manifest");
    expect_bad_manifest("file,label,voice,held_out\n", "lists no clips");
    expect_bad_manifest("file,label,voice,held_out\nclip_a.wav,sea,v1\n", "bad.csv:2:");
    expect_bad_manifest("file,label,voice,held_out\nclip_a.wav,sea,v1,2\n", "bad.csv:2:");
    expect_bad_manifest("file,label,voice,held_out\nclip_a.wav,sea,v1,0,extra\n", "bad.csv:2:");
    expect_bad_manifest("file,label,voice,held_out\nclip_a.wav,,v1,0\n", "bad.csv:2:");
    expect_bad_manifest("file,label,voice,held_out\nclip_a.wav,sea,v1,0\nmissing.wav,sea,v1,0\n", "missing.wav");
    write_text(path_in("not_audio.wav"), "this is text, not audio\n");
    expect_bad_manifest("file,label,voice,held_out\nnot_audio.wav,sea,v1,0\n", "not_audio.wav");
    ASSERT_TRUE(cmir_audio_corpus_load(path_in("none.csv"), cmir_audio_default_params(), NULL, NULL) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "none.csv") != NULL);
}

static void test_check_params(void)
{
    cmir_audio_params p = cmir_audio_default_params();
    ASSERT_OK(cmir_audio_check_params(p));
    const char *field[9] = {"max_seconds:", "trim_db:", "n_mels:", "fmin_hz:", "fmax_hz:", "win_ms:",
                            "hop_ms:", "range_db:", "feature:"};
    for (int f = 0; f < 9; f++) {
        p = cmir_audio_default_params();
        switch (f) {
        case 0: p.max_seconds = 601; break;
        case 1: p.trim_db = 1; break;
        case 2: p.n_mels = 32; break;
        case 3: p.fmin_hz = -1; break;
        case 4: p.fmax_hz = 9000; break;
        case 5: p.win_ms = NAN; break;
        case 6: p.hop_ms = 0.5f; break;
        case 7: p.range_db = 5; break;
        default: p.feature = 42; break;
        }
        char want[64];
        snprintf(want, sizeof want, "cmir_audio_params.%s", field[f]);
        REFUSES(cmir_audio_check_params(p), want);
        ASSERT_TRUE(cmir_audio_extractor_new(p) == NULL);
        ASSERT_TRUE(strstr(cmir_last_error(), want) != NULL);
    }
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_params);
    RUN(test_prepare_and_trim);
    RUN(test_hostile);
    RUN(test_alloc_failures);
    RUN(test_spoken_words);
    RUN(test_corpus);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    RUN(test_check_params);
    TEST_MAIN_END();
}
