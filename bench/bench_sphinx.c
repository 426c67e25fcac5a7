/* bench_sphinx: the pocketsphinx clip feature's costs (acoustic model load,
 * extraction per second of audio) and a real-voice proxy: words cut out of
 * pocketsphinx-testdata's real recordings (forced alignment of their
 * transcripts) named among all those words (nearest label = the feature's
 * largest entry).
 * Usage: bench_sphinx [TESTDATA_DIR] (default /usr/share/pocketsphinx/test/data) */
#include "cmir/audio.h"

#include <math.h>
#include <pocketsphinx.h>
#include <sphinxbase/err.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXW 512
static struct { char word[32]; char src[160]; float *x; int64_t n; } W[MAXW];
static int nw;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 16 kHz mono samples of a WAV (any format) or a headerless 16-bit .raw. */
static float *read16k(const char *path, int64_t *n)
{
    cmir_audio_params p = cmir_audio_default_params();
    p.trim_db = 0.0f;
    float *x = NULL;
    size_t len = strlen(path);
    if (len > 4 && !strcmp(path + len - 4, ".raw")) {
        FILE *f = fopen(path, "rb");
        if (!f)
            return NULL;
        fseek(f, 0, SEEK_END);
        long bytes = ftell(f);
        rewind(f);
        short *s = malloc((size_t)bytes);
        *n = (int64_t)fread(s, 2, (size_t)bytes / 2, f);
        fclose(f);
        x = malloc(sizeof(float) * (size_t)*n);
        for (int64_t i = 0; i < *n; i++)
            x[i] = s[i] / 32768.0f;
        free(s);
        return x;
    }
    if (cmir_audio_load(path, p, &x, n))
        return NULL;
    return x;
}

/* Forced alignment of transcript in x; cuts words of 4+ letters (and the
 * digits and card words) into W. */
static void cut_words(ps_decoder_t *ps, const char *src, const float *x, int64_t n, const char *transcript)
{
    char g[4096];
    snprintf(g, sizeof g, "#JSGF V1.0;\ngrammar t;\npublic <s> = %s;\n", transcript);
    if (ps_set_jsgf_string(ps, "t", g) < 0 || ps_set_search(ps, "t") < 0) {
        fprintf(stderr, "%s: cannot align '%s'\n", src, transcript);
        return;
    }
    short *s = malloc(sizeof(short) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        s[i] = (short)lrintf(fmaxf(-1.0f, fminf(1.0f, x[i])) * 32767.0f);
    ps_start_utt(ps);
    ps_process_raw(ps, s, (size_t)n, FALSE, TRUE);
    ps_end_utt(ps);
    for (ps_seg_t *seg = ps_seg_iter(ps); seg; seg = ps_seg_next(seg)) {
        const char *w = ps_seg_word(seg);
        int sf, ef;
        ps_seg_frames(seg, &sf, &ef);
        char base[32];
        snprintf(base, sizeof base, "%s", w);
        char *paren = strchr(base, '(');
        if (paren)
            *paren = '\0';
        static const char *keep[] = {"ten", "four", "five", "two", "nine", "zero", "queen", "seven", "eight", NULL};
        int ok = strlen(base) >= 4 && base[0] != '<' && base[0] != '[';
        for (int k = 0; keep[k]; k++)
            ok |= !strcmp(base, keep[k]);
        if (!ok || nw == MAXW || ef - sf < 10)
            continue;
        int64_t a = (int64_t)(sf - 5) * 160, b = (int64_t)(ef + 6) * 160; /* 50 ms margins */
        a = a < 0 ? 0 : a;
        b = b > n ? n : b;
        snprintf(W[nw].word, sizeof W[nw].word, "%s", base);
        snprintf(W[nw].src, sizeof W[nw].src, "%s", src);
        W[nw].n = b - a;
        W[nw].x = malloc(sizeof(float) * (size_t)(b - a));
        memcpy(W[nw].x, x + a, sizeof(float) * (size_t)(b - a));
        nw++;
    }
    free(s);
}

static void load_words(const char *dir)
{
    static const struct { const char *file, *text; } R[] = {
        {"cards/001.wav", "ten of clubs"},
        {"cards/002.wav", "four queen of clubs"},
        {"cards/003.wav", "seven of clubs"},
        {"cards/004.wav", "five five"},
        {"cards/005.wav", "eight of spades four of clubs seven of hearts"},
        {"goforward.raw", "go forward ten meters"},
        {"tidigits/dhd.2934z.raw", "two nine three four zero"},
        {"librivox/sense_and_sensibility_01_austen_64kb-0870.wav",
         "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for them"},
        {"librivox/sense_and_sensibility_01_austen_64kb-0880.wav", "he was not an ill disposed young man"},
        {"librivox/sense_and_sensibility_01_austen_64kb-0890.wav",
         "unless to be rather cold hearted and rather selfish is to be ill disposed"},
        {"librivox/sense_and_sensibility_01_austen_64kb-0920.wav",
         "had he married a more a amiable woman he might have been made still more respectable than he was"},
        {"librivox/sense_and_sensibility_01_austen_64kb-0930.wav", "he might even have been made amiable himself"}};
    err_set_logfp(NULL);
    cmd_ln_t *cfg = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", CMIR_AUDIO_SPHINX_HMM, "-dict", CMIR_AUDIO_SPHINX_DICT,
                                "-cmn", "batch", "-remove_silence", "no", NULL); /* frames = clip frames */
    ps_decoder_t *ps = ps_init(cfg);
    for (size_t i = 0; ps && i < sizeof R / sizeof R[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, R[i].file);
        int64_t n = 0;
        float *x = read16k(path, &n);
        if (!x) {
            fprintf(stderr, "%s: cannot read (skipped)\n", path);
            continue;
        }
        cut_words(ps, R[i].file, x, n, R[i].text);
        free(x);
    }
    if (ps)
        ps_free(ps);
    cmd_ln_free_r(cfg);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/pocketsphinx/test/data";
    load_words(dir);
    if (nw < 2) {
        fprintf(stderr, "bench_sphinx: no words cut from %s (install pocketsphinx-testdata)\n", dir);
        return 1;
    }
    /* the vocabulary: every distinct word cut */
    char vocab[8192] = "";
    char names[MAXW][32];
    int nv = 0, cls[MAXW];
    for (int i = 0; i < nw; i++) {
        int c = -1;
        for (int k = 0; k < nv && c < 0; k++)
            if (!strcmp(names[k], W[i].word))
                c = k;
        if (c < 0 && nv < CMIR_AUDIO_FEATURE_DIM) {
            c = nv;
            memcpy(names[nv++], W[i].word, sizeof W[i].word);
            strcat(vocab, nv > 1 ? "|" : "");
            strcat(vocab, W[i].word);
        }
        cls[i] = c;
    }
    cmir_audio_params p = cmir_audio_default_params();
    p.feature = CMIR_AUDIO_FEATURE_SPHINX;
    p.vocabulary = vocab;
    double t0 = now();
    cmir_audio_extractor *ex = cmir_audio_extractor_new(p);
    double t_load = now() - t0;
    if (!ex) {
        fprintf(stderr, "bench_sphinx: %s\n", cmir_last_error());
        return 1;
    }
    int right = 0, silent = 0;
    double secs = 0, t_feat = 0;
    float f[CMIR_AUDIO_FEATURE_DIM];
    for (int i = 0; i < nw; i++) {
        if (cls[i] < 0)
            continue;
        double t1 = now();
        int rc = cmir_audio_extractor_feature(ex, W[i].x, W[i].n, f);
        t_feat += now() - t1;
        secs += (double)W[i].n / CMIR_AUDIO_RATE;
        int best = 0;
        for (int k = 1; k < nv; k++)
            if (f[k] > f[best])
                best = k;
        silent += rc != 0;
        right += !rc && best == cls[i] && f[best] > 0;
        if (rc || best != cls[i])
            printf("  miss: '%s' from %s heard as '%s'%s\n", W[i].word, W[i].src, rc ? "-" : names[best],
                   rc ? " (no speech)" : "");
    }
    cmir_audio_extractor_free(ex);
    printf("real-voice proxy: %d words (%d distinct) cut from pocketsphinx-testdata's recordings\n", nw, nv);
    printf("  nearest label right: %d of %d = %.3f (no speech: %d; chance %.3f)\n", right, nw, (double)right / nw,
           silent, 1.0 / nv);
    printf("acoustic model + dictionary load and grammar of %d words: %.3f s\n", nv, t_load);
    printf("feature extraction: %.1f ms per second of audio (%.1f s of words)\n", 1000.0 * t_feat / secs, secs);
    for (int i = 0; i < nw; i++)
        free(W[i].x);
    return 0;
}
