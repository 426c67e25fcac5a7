/* cmir_eval(): retrieval metrics of a trained model in the four directions
 * (held-out tiles embedded with the model, or the paper's unified.mat),
 * and the report as JSON or CSV written through a temporary file. */
#include "cmir/train.h"
#include "cmir/audio.h"
#include "cmir/model.h"
#include "cmir/archive.h"
#include "eval_internal.h"
#include "../base/internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

cmir_eval_params cmir_eval_default_params(void)
{
    cmir_eval_params p;
    memset(&p, 0, sizeof p);
    const int c[5] = {5, 10, 20, 50, 100};
    memcpy(p.cutoffs, c, sizeof c);
    p.n_cutoffs = 5;
    p.paper_queries = 50;
    p.seed = 1;
    return p;
}

/* Labels of one side: classes (n) or multi-label rows (n x n_labels). */
typedef struct side_labels {
    const int32_t *cls;
    const uint8_t *multi;
} side_labels;

/* The four directions over codes V[0] (side a, n[0] x d) and V[1] (side
 * b, n[1] x d) with the labels of each side (both in the same form). */
static int four_ways(cmir_exec *ex, float *V[2], const int64_t n[2], int d, const side_labels L[2], int n_labels,
                     const char *names[2], cmir_eval_params p, cmir_progress_fn progress, void *user,
                     cmir_eval_report *out)
{
    memset(out, 0, sizeof *out);
    out->n_items = n[0];
    out->n_items_b = n[1];
    out->n_cutoffs = p.n_cutoffs;
    memcpy(out->cutoffs, p.cutoffs, sizeof out->cutoffs);
    static const int q[4] = {0, 1, 0, 1}, db[4] = {1, 0, 0, 1};
    for (int k = 0; k < 4; k++) {
        cmir_metrics_params mp = cmir_metrics_default_params();
        mp.cutoffs = p.cutoffs;
        mp.n_cutoffs = p.n_cutoffs;
        mp.self_exclude = q[k] == db[k];
        mp.paper_queries = p.paper_queries;
        mp.seed = p.seed;
        cmir_eval_direction *dir = &out->dir[k];
        snprintf(dir->name, sizeof dir->name, "%s->%s", names[q[k]], names[db[k]]);
        cmir_metrics_labels lab;
        memset(&lab, 0, sizeof lab);
        lab.q_class = L[q[k]].cls;
        lab.db_class = L[db[k]].cls;
        lab.q_multi = L[q[k]].multi;
        lab.db_multi = L[db[k]].multi;
        lab.n_labels = n_labels;
        int rc = cmir_metrics_eval(ex, V[q[k]], n[q[k]], V[db[k]], n[db[k]], d, &lab, mp, NULL, NULL, &dir->r,
                                   dir->map_at, dir->p_at);
        if (rc)
            return rc;
        if (progress && progress((k + 1) / 4.0, NULL, user))
            return cmir__error(CMIR_ECANCEL, "cancelled");
    }
    return 0;
}

int cmir_eval_check_params(cmir_eval_params p)
{
    const char *who = "cmir_eval_params";
    if (p.n_cutoffs < 0 || p.n_cutoffs > CMIR_EVAL_MAX_CUTOFFS)
        return cmir__error(CMIR_EINVAL, "%s.n_cutoffs: must be in 0..%d, got %d", who, CMIR_EVAL_MAX_CUTOFFS,
                           p.n_cutoffs);
    if (p.threads < 0)
        return cmir__error(CMIR_EINVAL, "%s.threads: must be >= 0, got %d", who, p.threads);
    if (p.audio_ranking < 0 || p.audio_ranking > 2)
        return cmir__error(CMIR_EINVAL, "%s.audio_ranking: must be 0, 1 or 2, got %d", who, p.audio_ranking);
    if (p.valid_tiles != 0 && p.valid_tiles != 1)
        return cmir__error(CMIR_EINVAL, "%s.valid_tiles: must be 0 or 1, got %d", who, p.valid_tiles);
    if (p.valid_tiles && p.all_tiles)
        return cmir__error(CMIR_EINVAL, "%s.valid_tiles: cannot be combined with all_tiles", who);
    if (p.paper_queries < 0)
        return cmir__error(CMIR_EINVAL, "%s.paper_queries: must be >= 0, got %d", who, p.paper_queries);
    for (int i = 0; i < p.n_cutoffs; i++)
        if (p.cutoffs[i] < 1)
            return cmir__error(CMIR_EINVAL, "%s.cutoffs[%d]: must be >= 1, got %d", who, i, p.cutoffs[i]);
    return 0;
}

/* The vocabulary's k-th label (the text before any tab) into out: 0, or
 * -1 past its end. */
static int vocab_label(const char *v, int k, char *out, size_t sz)
{
    for (int i = 0; v && *v; i++) {
        size_t len = strcspn(v, "\n"), lab = strcspn(v, "\t\n");
        if (i == k) {
            snprintf(out, sz, "%.*s", (int)(lab < sz ? lab : sz - 1), v);
            return 0;
        }
        v += len + (v[len] == '\n');
    }
    return -1;
}

/* audio_ranking 1: the clip's feature becomes what a perfect recogniser
 * would give, the one-hot of its true label's place in the vocabulary. */
static int oracle_feature(const char *vocab, const char *label, float f[CMIR_AUDIO_FEATURE_DIM])
{
    char l[256];
    for (int k = 0; k < CMIR_AUDIO_FEATURE_DIM && !vocab_label(vocab, k, l, sizeof l); k++)
        if (cmir_audio_label_match(l, label)) {
            memset(f, 0, sizeof(float) * CMIR_AUDIO_FEATURE_DIM);
            f[k] = 1.0f;
            return 0;
        }
    return cmir__error(CMIR_EINVAL, "oracle ranking: label '%s' is not in the model's vocabulary", label);
}

/* audio_ranking 2, the training-free floor, as codes of C + 1 numbers:
 * every image is the training images' label frequencies p plus a tiny
 * seeded random last coordinate, every clip the labels the recogniser
 * heard (as classes). So image->audio ranks the clips of the most
 * frequent heard labels first, the same for every image, and
 * audio->image ranks the images in a random order. */
static int floor_codes(cmir_model *m, cmir_archive *a, const char *vocab, const int64_t *ids, int64_t n,
                       const float *fb, int64_t nb, int C, uint64_t seed, float *V0, float *V1)
{
    int64_t nt = cmir_archive_get_info(a)->n_tiles, used = 0;
    uint8_t *test = cmir__calloc((size_t)(nt ? nt : 1), 1), *row = cmir__malloc((size_t)C);
    double *cnt = cmir__calloc((size_t)C, sizeof(double));
    int rc = (!test || !row || !cnt) ? CMIR_ENOMEM : 0;
    for (int64_t i = 0; !rc && i < n; i++)
        test[ids[i]] = 1;
    for (int pass = 0; !rc && pass < 2 && !used; pass++) /* no training tiles (-all): all of them */
        for (int64_t t = 0; !rc && t < nt; t++)
            if ((pass || !test[t]) && !(rc = cmir_archive_multilabel(a, t, row))) {
                for (int c = 0; c < C; c++)
                    cnt[c] += row[c] != 0;
                used++;
            }
    for (int64_t i = 0; !rc && i < n; i++) {
        float *v = V0 + (size_t)i * (C + 1);
        for (int c = 0; c < C; c++)
            v[c] = (float)(cnt[c] / (double)(used ? used : 1));
        uint64_t z = (seed + (uint64_t)i + 1) * 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        v[C] = 1e-3f * (float)((z ^ (z >> 31)) >> 40) / (float)(1 << 24);
    }
    char l[256];
    memset(V1, 0, sizeof(float) * (size_t)nb * (C + 1));
    for (int k = 0; !rc && k < CMIR_AUDIO_FEATURE_DIM && !vocab_label(vocab, k, l, sizeof l); k++) {
        int c = cmir_model_class_of(m, l);
        for (int64_t j = 0; c && j < nb; j++)
            if (fb[(size_t)j * CMIR_AUDIO_FEATURE_DIM + k] > 0.0f)
                V1[(size_t)j * (C + 1) + c - 1] = 1.0f;
    }
    cmir__free(test);
    cmir__free(row);
    cmir__free(cnt);
    return rc;
}

/* Image-speech evaluation: images ids[0..n) of the archive (multi-label)
 * against the corpus's clips of the chosen voices (their class as a
 * one-label row); relevance = a shared label. */
static int eval_speech(cmir_model *m, cmir_archive *a, cmir_exec *ex, const int64_t *ids, int64_t n,
                       cmir_eval_params p, cmir_progress_fn progress, void *user, cmir_eval_report *out)
{
    const cmir_model_info *mi = cmir_model_get_info(m);
    const int C = mi->n_classes, d = p.audio_ranking == 2 ? C + 1 : mi->d_v;
    cmir_audio_params ap;
    cmir_model_audio_params(m, &ap);
    cmir_audio_corpus *cp = cmir_audio_corpus_load(p.speech_manifest, ap, NULL, NULL);
    if (!cp)
        return cmir__failed(CMIR_EIO);
    const char *vocab = cmir_audio_corpus_vocabulary(cp);
    int64_t nc = cmir_audio_corpus_count(cp), nb = 0;
    size_t per = (size_t)mi->pan_h * mi->pan_w * mi->pan_bands;
    float *raw = cmir__malloc(sizeof(float) * 64 * per), *V[2] = {NULL, NULL};
    float *fb = cmir__malloc(sizeof(float) * CMIR_AUDIO_FEATURE_DIM * (size_t)nc);
    uint8_t *multi[2] = {cmir__calloc((size_t)(n ? n : 1) * C, 1), cmir__calloc((size_t)nc * C, 1)};
    int rc = (!raw || !fb || !multi[0] || !multi[1]) ? CMIR_ENOMEM : 0;
    if (!rc && p.audio_ranking && !vocab)
        rc = cmir__error(CMIR_EINVAL, "%s: the oracle and floor rankings need a model of the sphinx feature",
                         p.speech_manifest);
    for (int64_t i = 0; !rc && i < nc; i++) {
        int held = cmir_audio_corpus_held_out(cp, i);
        if (p.audio_voices != 2 && held != (p.audio_voices == 0))
            continue;
        int c = cmir_model_class_of(m, cmir_audio_corpus_label(cp, i));
        if (!c) {
            rc = cmir__error(CMIR_EINVAL, "%s: clip %s is labelled '%s', which is not a class of the model",
                             p.speech_manifest, cmir_audio_corpus_file(cp, i), cmir_audio_corpus_label(cp, i));
            break;
        }
        multi[1][(size_t)nb * C + c - 1] = 1;
        memcpy(fb + (size_t)nb * CMIR_AUDIO_FEATURE_DIM,
               cmir_audio_corpus_features(cp) + (size_t)i * CMIR_AUDIO_FEATURE_DIM,
               sizeof(float) * CMIR_AUDIO_FEATURE_DIM);
        if (p.audio_ranking == 1)
            rc = oracle_feature(vocab, cmir_audio_corpus_label(cp, i), fb + (size_t)nb * CMIR_AUDIO_FEATURE_DIM);
        nb++;
    }
    if (!rc && nb == 0)
        rc = cmir__error(CMIR_EINVAL, "%s: no clips of the %s voices", p.speech_manifest,
                         p.audio_voices == 0 ? "held-out" : "training");
    if (!rc) {
        V[0] = cmir__malloc(sizeof(float) * (size_t)(n ? n : 1) * d);
        V[1] = cmir__malloc(sizeof(float) * (size_t)nb * d);
        if (!V[0] || !V[1])
            rc = CMIR_ENOMEM;
    }
    for (int64_t s = 0; !rc && s < n; s += 64) {
        int b = (int)(n - s < 64 ? n - s : 64);
        for (int j = 0; !rc && j < b; j++)
            if (!(rc = cmir_archive_read_tile(a, CMIR_PAN, ids[s + j], raw + per * j)))
                rc = cmir_archive_multilabel(a, ids[s + j], multi[0] + (size_t)(s + j) * C);
        if (!rc && p.audio_ranking != 2)
            rc = cmir_model_embed(m, ex, CMIR_IMAGE, raw, b, NULL, V[0] + (size_t)s * d);
    }
    if (!rc && p.audio_ranking == 2)
        rc = floor_codes(m, a, vocab, ids, n, fb, nb, C, p.seed, V[0], V[1]);
    else if (!rc)
        rc = cmir_model_embed(m, ex, CMIR_AUDIO, fb, (int)nb, NULL, V[1]);
    if (!rc) {
        side_labels L[2] = {{NULL, multi[0]}, {NULL, multi[1]}};
        const char *names[2] = {"image", "audio"};
        const int64_t nn[2] = {n, nb};
        rc = four_ways(ex, V, nn, d, L, C, names, p, progress, user, out);
    }
    cmir__free(raw); cmir__free(fb); cmir__free(V[0]); cmir__free(V[1]);
    cmir__free(multi[0]); cmir__free(multi[1]);
    cmir_audio_corpus_free(cp);
    return rc;
}

/* The floors beside the learned figures (cmir/train.h): fitted on the
 * labelled tiles the model did not hold out (test, and validation: valid,
 * nv), i.e. its training split; when the archive is not the training one
 * (-all on another archive) that split is unknown, and they are fitted on
 * the evaluated tiles (in sample). */
static int eval_floors(cmir_exec *ex, const cmir_model_info *mi, cmir_archive *a, const int64_t *ids, int64_t n,
                       const int64_t *test, int64_t nt, const int64_t *valid, int64_t nv, int64_t ntiles,
                       cmir_eval_report *out, cmir_eval_params p)
{
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    if (ntiles != ai->n_tiles || nt < 1) {
        out->floor_in_sample = 1;
        return cmir__eval_floor(ex, a, ids, n, ids, n, mi->multilabel, p, out);
    }
    uint8_t *held = cmir__calloc((size_t)ai->n_tiles, 1), *row = cmir__malloc((size_t)ai->n_classes + 1);
    int64_t *train = cmir__malloc(sizeof(int64_t) * (size_t)ai->n_tiles), ntr = 0;
    int rc = (!held || !row || !train) ? CMIR_ENOMEM : 0;
    for (int64_t i = 0; !rc && i < nt; i++)
        held[test[i]] = 1;
    for (int64_t i = 0; !rc && i < nv; i++)
        held[valid[i]] = 1;
    for (int64_t i = 0; !rc && i < ai->n_tiles; i++) {
        int labelled = cmir_archive_label(a, i) > 0;
        if (mi->multilabel) {
            labelled = 0;
            if (!(rc = cmir_archive_multilabel(a, i, row)))
                for (int c = 0; c < ai->n_classes; c++)
                    labelled |= row[c] != 0;
        }
        if (labelled && !held[i])
            train[ntr++] = i;
    }
    if (!rc)
        rc = cmir__eval_floor(ex, a, train, ntr, ids, n, mi->multilabel, p, out);
    cmir__free(held);
    cmir__free(row);
    cmir__free(train);
    return rc;
}

int cmir_eval(const char *model_path, const char *archive_path, cmir_eval_params p, cmir_progress_fn progress,
              void *user, cmir_eval_report *out)
{
    int rc = cmir_eval_check_params(p);
    if (rc)
        return rc;
    if (!model_path || !archive_path || !out)
        return cmir__error(CMIR_EINVAL, "cmir_eval: need a model, an archive and a report");
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = p.threads;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_model *m = cmir_model_load(model_path);
    cmir_archive *a = m ? cmir_archive_open(archive_path) : NULL;
    if (!ex)
        rc = CMIR_ENOMEM;
    else if (!m || !a)
        rc = cmir__failed(CMIR_EIO);
    const cmir_model_info *mi = m ? cmir_model_get_info(m) : NULL;
    const cmir_archive_info *ai = a ? cmir_archive_get_info(a) : NULL;
    const int speech = mi && mi->scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    if (!rc && (mi->pan_h != ai->pan_h || mi->pan_w != ai->pan_w || mi->pan_bands != ai->pan_bands ||
                (!speech && (mi->ms_h != ai->ms_h || mi->ms_w != ai->ms_w || mi->ms_bands != ai->ms_bands))))
        rc = cmir__error(CMIR_EINVAL, "%s: its tiles do not fit the model %s", archive_path, model_path);
    if (!rc && speech && !p.speech_manifest)
        rc = cmir__error(CMIR_EINVAL, "%s is an image-speech model: evaluating it needs the speech manifest",
                         model_path);
    if (!rc && speech && (p.audio_voices < 0 || p.audio_voices > 2))
        rc = cmir__error(CMIR_EINVAL, "cmir_eval: audio_voices must be 0, 1 or 2");
    int64_t n = 0, nt = 0, nv = 0, ntiles = 0, *ids = NULL;
    const int64_t *test = m ? cmir_model_test_tiles(m, &nt, &ntiles) : NULL;
    const int64_t *valid = m ? cmir_model_valid_tiles(m, &nv) : NULL;
    if (!rc && p.valid_tiles && nv < 1)
        rc = cmir__error(CMIR_EINVAL, "%s records no validation tiles (train it with -valid_frac)", model_path);
    if (!rc) {
        ids = cmir__malloc(sizeof(int64_t) * (size_t)(ai->n_tiles ? ai->n_tiles : 1));
        if (!ids)
            rc = CMIR_ENOMEM;
        else if (!p.all_tiles) {
            if (ntiles != ai->n_tiles || nt < 1)
                rc = cmir__error(CMIR_EINVAL,
                                 "%s has %lld tiles, the model was trained on an archive of %lld with %lld held out: "
                                 "not the training archive (evaluate all tiles with -all)",
                                 archive_path, (long long)ai->n_tiles, (long long)ntiles, (long long)nt);
            else {
                n = p.valid_tiles ? nv : nt;
                memcpy(ids, p.valid_tiles ? valid : test, sizeof(int64_t) * (size_t)n);
            }
        } else {
            for (int64_t i = 0; i < ai->n_tiles; i++)
                ids[n++] = i;
        }
    }
    const int d = mi ? mi->d_v : 0, C = ai ? ai->n_classes : 0;
    float *V[2] = {NULL, NULL}, *raw = NULL;
    int32_t *cls = NULL;
    uint8_t *multi = NULL;
    if (!rc && speech) {
        rc = eval_speech(m, a, ex, ids, n, p, progress, user, out);
        n = -1; /* done */
    }
    if (!rc && n >= 0) {
        size_t per0 = (size_t)mi->pan_h * mi->pan_w * mi->pan_bands, per1 = (size_t)mi->ms_h * mi->ms_w * mi->ms_bands;
        raw = cmir__malloc(sizeof(float) * 64 * (per0 > per1 ? per0 : per1));
        V[0] = cmir__malloc(sizeof(float) * (size_t)(n ? n : 1) * d);
        V[1] = cmir__malloc(sizeof(float) * (size_t)(n ? n : 1) * d);
        cls = cmir__malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
        multi = mi->multilabel ? cmir__malloc((size_t)(n ? n : 1) * (size_t)(C ? C : 1)) : NULL;
        if (!raw || !V[0] || !V[1] || !cls || (mi->multilabel && !multi))
            rc = CMIR_ENOMEM;
        for (int k = 0; !rc && k < 2; k++) {
            size_t per = k ? per1 : per0;
            for (int64_t s = 0; !rc && s < n; s += 64) {
                int b = (int)(n - s < 64 ? n - s : 64);
                for (int j = 0; !rc && j < b; j++)
                    rc = cmir_archive_read_tile(a, k ? CMIR_MS : CMIR_PAN, ids[s + j], raw + per * j);
                if (!rc)
                    rc = cmir_model_embed(m, ex, k, raw, b, NULL, V[k] + (size_t)s * d);
            }
        }
        for (int64_t i = 0; !rc && i < n; i++) {
            cls[i] = cmir_archive_label(a, ids[i]);
            if (multi)
                rc = cmir_archive_multilabel(a, ids[i], multi + (size_t)i * C);
        }
    }
    if (!rc && n >= 0) {
        side_labels L[2] = {{multi ? NULL : cls, multi}, {multi ? NULL : cls, multi}};
        const char *names[2] = {"PAN", "MS"};
        const int64_t nn[2] = {n, n};
        rc = four_ways(ex, V, nn, d, L, multi ? C : 0, names, p, progress, user, out);
    }
    if (!rc && n >= 0)
        rc = eval_floors(ex, mi, a, ids, n, test, nt, valid, nv, ntiles, out, p);
    cmir__free(ids);
    cmir__free(raw);
    cmir__free(V[0]);
    cmir__free(V[1]);
    cmir__free(cls);
    cmir__free(multi);
    cmir_archive_close(a);
    cmir_model_free(m);
    cmir_exec_free(ex);
    return rc;
}

int cmir_eval_unified(const char *unified_path, cmir_eval_params p, cmir_progress_fn progress, void *user,
                      cmir_eval_report *out)
{
    int rc = cmir_eval_check_params(p);
    if (rc)
        return rc;
    if (!unified_path || !out)
        return cmir__error(CMIR_EINVAL, "cmir_eval_unified: need a file and a report");
    cmir_tensorset *ts = cmir_tensorset_load(unified_path);
    if (!ts)
        return cmir__failed(CMIR_EIO);
    const cmir_tensor *x = cmir_tensorset_get(ts, "featuresx"), *y = cmir_tensorset_get(ts, "featuresy");
    const cmir_tensor *l = cmir_tensorset_get(ts, "labels");
    int64_t n = x ? x->shape[0] : 0;
    int d = x ? (int)x->shape[1] : 0;
    int32_t *cls = NULL;
    uint8_t *multi = NULL;
    int C = 0;
    if (!x || !y || !l)
        rc = cmir__error(CMIR_EFORMAT, "%s: needs featuresx, featuresy and labels", unified_path);
    else if (x->ndim != 2 || y->ndim != 2 || y->shape[0] != n || y->shape[1] != d || n < 1)
        rc = cmir__error(CMIR_EFORMAT, "%s: featuresx and featuresy must be matrices of the same size", unified_path);
    else if (cmir_tensor_numel(l) == n) {
        cls = cmir__malloc(sizeof(int32_t) * (size_t)n);
        for (int64_t i = 0; cls && !rc && i < n; i++) {
            float v = l->data[i];
            if (!(v >= 0 && v <= 65535) || v != floorf(v))
                rc = cmir__error(CMIR_EFORMAT, "%s: label %g is not a class number", unified_path, v);
            else
                cls[i] = (int32_t)v;
        }
        if (!cls)
            rc = CMIR_ENOMEM;
    } else if (l->ndim == 2 && l->shape[0] == n) {
        C = (int)l->shape[1];
        multi = cmir__malloc((size_t)n * C);
        for (int64_t i = 0; multi && i < n * C; i++)
            multi[i] = l->data[i] != 0;
        if (!multi)
            rc = CMIR_ENOMEM;
    } else {
        rc = cmir__error(CMIR_EFORMAT, "%s: labels must hold one class per row, or n x C flags", unified_path);
    }
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = p.threads;
    cmir_exec *ex = rc ? NULL : cmir_exec_new(ep);
    if (!rc && !ex)
        rc = CMIR_ENOMEM;
    if (!rc) {
        side_labels L[2] = {{cls, multi}, {cls, multi}};
        float *V[2] = {x->data, y->data};
        const char *names[2] = {"x", "y"};
        const int64_t nn[2] = {n, n};
        rc = four_ways(ex, V, nn, d, L, C, names, p, progress, user, out);
    }
    cmir__free(cls);
    cmir__free(multi);
    cmir_exec_free(ex);
    cmir_tensorset_free(ts);
    return rc;
}

/* ---- writing ---- */
static void jnum(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6f", v);
    else
        fputs("null", f);
}

/* "{"K": v, ...}" over the cutoffs. */
static void jcut(FILE *f, const cmir_eval_report *r, const double *v)
{
    fputc('{', f);
    for (int i = 0; i < r->n_cutoffs; i++) {
        fprintf(f, "%s\"%d\": ", i ? ", " : "", r->cutoffs[i]);
        jnum(f, v[i]);
    }
    fputc('}', f);
}

static void jpr(FILE *f, const double *pr)
{
    fputc('[', f);
    for (int i = 0; i < CMIR_METRICS_PR_POINTS; i++) {
        if (i)
            fputs(", ", f);
        jnum(f, pr[i]);
    }
    fputc(']', f);
}

/* A direction's floor as a JSON object, or null. */
static void jfloor(FILE *f, const cmir_eval_report *r, const cmir_eval_direction *d)
{
    if (!d->has_floor) {
        fputs("null", f);
        return;
    }
    fputs("{\"map\": ", f);
    jnum(f, d->floor.map);
    fputs(", \"anmrr\": ", f);
    jnum(f, d->floor.anmrr);
    fputs(", \"paper_protocol\": ", f);
    jnum(f, d->floor.paper_mean);
    fputs(", \"p_at\": ", f);
    jcut(f, r, d->floor_p_at);
    fputs(", \"map_at\": ", f);
    jcut(f, r, d->floor_map_at);
    fputs(", \"pr_11pt\": ", f);
    jpr(f, d->floor.pr);
    fputc('}', f);
}

int cmir_eval_write_json(const cmir_eval_report *r, const char *path)
{
    cmir__atomic_file af;
    FILE *f = cmir__atomic_fopen(&af, path);
    if (!f)
        return cmir__failed(CMIR_EIO);
    fprintf(f, "{\n  \"n_items\": %lld,\n  \"n_items_b\": %lld,\n  \"floor_fit_tiles\": %lld,\n"
               "  \"floor_in_sample\": %s,\n  \"directions\": [\n",
            (long long)r->n_items, (long long)r->n_items_b, (long long)r->floor_fit_tiles,
            r->floor_in_sample ? "true" : "false");
    for (int k = 0; k < 4; k++) {
        const cmir_eval_direction *d = &r->dir[k];
        fprintf(f, "    {\"direction\": \"%s\", \"queries\": %lld, \"map\": ", d->name, (long long)d->r.n_queries);
        jnum(f, d->r.map);
        fputs(", \"anmrr\": ", f);
        jnum(f, d->r.anmrr);
        fputs(", \"paper_protocol\": ", f);
        jnum(f, d->r.paper_mean);
        fputs(", \"paper_p_at\": {", f);
        for (int i = 0; i < CMIR_METRICS_PAPER_POINTS; i++) {
            fprintf(f, "%s\"%d\": ", i ? ", " : "", 10 * (i + 1));
            jnum(f, d->r.paper_p_at[i]);
        }
        fputs("}, \"p_at\": ", f);
        jcut(f, r, d->p_at);
        fputs(", \"map_at\": ", f);
        jcut(f, r, d->map_at);
        fputs(", \"pr_11pt\": ", f);
        jpr(f, d->r.pr);
        fputs(", \"floor\": ", f);
        jfloor(f, r, d);
        fprintf(f, "}%s\n", k < 3 ? "," : "");
    }
    fputs("  ]\n}\n", f);
    return cmir__atomic_fclose(f, &af);
}

int cmir_eval_write_csv(const cmir_eval_report *r, const char *path)
{
    cmir__atomic_file af;
    FILE *f = cmir__atomic_fopen(&af, path);
    if (!f)
        return cmir__failed(CMIR_EIO);
    fputs("direction,queries,map,anmrr,paper_protocol", f);
    for (int pass = 0; pass < 2; pass++) {
        const char *pre = pass ? "floor_" : "";
        if (pass)
            fputs(",floor_map,floor_anmrr,floor_paper_protocol", f);
        for (int i = 0; i < r->n_cutoffs; i++)
            fprintf(f, ",%sp_at_%d", pre, r->cutoffs[i]);
        for (int i = 0; i < r->n_cutoffs; i++)
            fprintf(f, ",%smap_at_%d", pre, r->cutoffs[i]);
    }
    fputc('\n', f);
    for (int k = 0; k < 4; k++) {
        const cmir_eval_direction *d = &r->dir[k];
        fprintf(f, "%s,%lld,%.6f,%.6f,%.6f", d->name, (long long)d->r.n_queries, d->r.map, d->r.anmrr, d->r.paper_mean);
        for (int i = 0; i < r->n_cutoffs; i++)
            fprintf(f, ",%.6f", d->p_at[i]);
        for (int i = 0; i < r->n_cutoffs; i++)
            fprintf(f, ",%.6f", d->map_at[i]);
        if (d->has_floor) {
            fprintf(f, ",%.6f,%.6f,%.6f", d->floor.map, d->floor.anmrr, d->floor.paper_mean);
            for (int i = 0; i < r->n_cutoffs; i++)
                fprintf(f, ",%.6f", d->floor_p_at[i]);
            for (int i = 0; i < r->n_cutoffs; i++)
                fprintf(f, ",%.6f", d->floor_map_at[i]);
        } else {
            for (int i = 0; i < 3 + 2 * r->n_cutoffs; i++)
                fputc(',', f);
        }
        fputc('\n', f);
    }
    return cmir__atomic_fclose(f, &af);
}
