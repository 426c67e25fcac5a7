/* bench_heard: how well pocketsphinx hears a spoken-label corpus, voice by
 * voice: the share of clips whose sphinx feature is exactly their own label
 * (what limits the image <-> speech mAP from the audio side), the share in
 * which it heard nothing and the most frequent confusions.
 * Usage: bench_heard MANIFEST.csv [DICT] (DICT: cmir_train -dict's file) */
#include "cmir/audio.h"

#include <stdio.h>
#include <string.h>

#define MAXV 64
#define MAXL CMIR_AUDIO_FEATURE_DIM

/* The vocabulary's k-th label (before any tab). */
static void label_of(const char *v, int k, char *out, size_t sz)
{
    for (int i = 0; *v; i++) {
        size_t len = strcspn(v, "\n"), lab = strcspn(v, "\t\n");
        if (i == k) {
            snprintf(out, sz, "%.*s", (int)lab, v);
            return;
        }
        v += len + (v[len] == '\n');
    }
    snprintf(out, sz, "?");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_heard MANIFEST.csv [DICT]\n");
        return 2;
    }
    cmir_audio_params p = cmir_audio_default_params();
    p.feature = CMIR_AUDIO_FEATURE_SPHINX;
    p.extra_dict = argc > 2 ? argv[2] : NULL;
    cmir_audio_corpus *c = cmir_audio_corpus_load(argv[1], p, NULL, NULL);
    if (!c) {
        fprintf(stderr, "bench_heard: %s\n", cmir_last_error());
        return 1;
    }
    const char *vocab = cmir_audio_corpus_vocabulary(c);
    const float *F = cmir_audio_corpus_features(c);
    static char vname[MAXV][64];
    static long n[MAXV], right[MAXV], none[MAXV], conf[MAXL][MAXL];
    int nv = 0;
    long tot = 0, tr = 0, tn = 0;
    for (int64_t i = 0; i < cmir_audio_corpus_count(c); i++) {
        const char *v = cmir_audio_corpus_voice(c, i);
        int k = 0;
        while (k < nv && strcmp(vname[k], v))
            k++;
        if (k == nv && nv < MAXV)
            snprintf(vname[nv++], sizeof vname[0], "%s", v);
        if (k == MAXV)
            continue;
        const float *f = F + (size_t)i * CMIR_AUDIO_FEATURE_DIM;
        int heard = 0, own = -1, first = -1;
        char l[256];
        for (int j = 0; j < MAXL; j++)
            if (f[j] > 0.0f) {
                heard++;
                first = first < 0 ? j : first;
                label_of(vocab, j, l, sizeof l);
                if (cmir_audio_label_match(l, cmir_audio_corpus_label(c, i)))
                    own = j;
            }
        n[k]++;
        tot++;
        if (heard == 1 && own >= 0)
            right[k]++, tr++;
        else if (!heard)
            none[k]++, tn++;
        else if (own < 0) {
            for (int j = 0; j < MAXL; j++) {
                label_of(vocab, j, l, sizeof l);
                if (cmir_audio_label_match(l, cmir_audio_corpus_label(c, i))) {
                    conf[j][first]++;
                    break;
                }
            }
        }
    }
    printf("%-36s %6s %8s %8s\n", "voice", "clips", "right", "nothing");
    for (int k = 0; k < nv; k++)
        printf("%-36s %6ld %8.3f %8.3f\n", vname[k], n[k], (double)right[k] / (double)n[k],
               (double)none[k] / (double)n[k]);
    printf("%-36s %6ld %8.3f %8.3f\n", "all", tot, tot ? (double)tr / (double)tot : 0.0,
           tot ? (double)tn / (double)tot : 0.0);
    for (int a = 0; a < MAXL; a++)
        for (int b = 0; b < MAXL; b++)
            if (conf[a][b] >= 3) {
                char la[256], lb[256];
                label_of(vocab, a, la, sizeof la);
                label_of(vocab, b, lb, sizeof lb);
                printf("  '%s' heard as '%s': %ld clips\n", la, lb, conf[a][b]);
            }
    cmir_audio_corpus_free(c);
    return 0;
}
