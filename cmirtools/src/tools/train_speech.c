/* The image <-> speech scenario of cmir_train(): the corpus's clips as
 * side b (classes matched by name, held-out voices never trained on), the
 * tables stage 2 pairs from, each epoch's pairs by label, and
 * cmir_pairs_by_label(), the paper's pairing of unpaired multi-label data. */
#include "train_internal.h"

#include <string.h>

/* Image-speech: the corpus's clip features, their classes (matched by
 * name to the archive's classes) and the training clips (voices not held
 * out). The image side trains multi-label, the speech side single-label,
 * and stage 2 on pairs labelled by their shared class. */
int cmir__train_speech_setup(cmir__train_job *J, const char *archive_path)
{
    const char *man = J->p.speech_manifest;
    if (!J->ai->has_multilabel)
        return cmir__error(CMIR_EINVAL, "%s: the image-speech scenario needs multi-labels (MULTI_LABELS; "
                           "tile with -multilabel)", archive_path);
    if (J->p.features_dir || J->p.unified_path)
        return cmir__error(CMIR_EUNSUPPORTED, "feature and unified.mat export is not available for the "
                           "image-speech scenario");
    cmir_audio_params ap = cmir_audio_default_params();
    ap.feature = J->p.audio_feature;
    ap.extra_dict = J->p.speech_dict;
    J->corpus = cmir_audio_corpus_load(man, ap, NULL, NULL);
    if (!J->corpus)
        return cmir__failed(CMIR_EIO);
    int64_t n = cmir_audio_corpus_count(J->corpus);
    J->aud_class = cmir__malloc(sizeof(int32_t) * (size_t)n);
    J->atrain = cmir__malloc(sizeof(int64_t) * (size_t)n);
    if (!J->aud_class || !J->atrain)
        return CMIR_ENOMEM;
    for (int64_t i = 0; i < n; i++) {
        const char *l = cmir_audio_corpus_label(J->corpus, i);
        J->aud_class[i] = 0;
        for (int c = 1; c <= J->ai->n_classes && !J->aud_class[i]; c++)
            if (cmir_audio_label_match(l, cmir_archive_class_name(J->a, c)))
                J->aud_class[i] = c;
        if (!J->aud_class[i])
            return cmir__error(CMIR_EINVAL, "%s: clip %s is labelled '%s', which is not a class of %s", man,
                               cmir_audio_corpus_file(J->corpus, i), l, archive_path);
        if (cmir_audio_corpus_held_out(J->corpus, i))
            J->n_atest++;
        else if (cmir_audio_corpus_heard_own(J->corpus, i)) /* misheard clips teach nothing true */
            J->atrain[J->n_atrain++] = i;
    }
    if (J->n_atrain < 2)
        return cmir__error(CMIR_EINVAL, "%s: only %lld clips of voices not held out: too few to train on", man,
                           (long long)J->n_atrain);
    J->ml1[0] = 1;
    J->ml1[1] = 0;
    J->p.unified.multilabel = 0; /* L3 on the pair's class */
    return 0;
}

/* The training images' multi-labels and the training clips' classes, read
 * once for stage 2's pairing, and the pairs an epoch makes from them. */
int cmir__train_speech_tables(cmir__train_job *J)
{
    const int C = J->ai->n_classes;
    uint8_t *has = cmir__calloc((size_t)C, 1);
    J->amulti = cmir__malloc((size_t)J->n_train * (size_t)C);
    J->bclass = cmir__malloc(sizeof(int32_t) * (size_t)J->n_atrain);
    int rc = (!has || !J->amulti || !J->bclass) ? CMIR_ENOMEM : 0;
    for (int64_t j = 0; !rc && j < J->n_atrain; j++) {
        J->bclass[j] = J->aud_class[J->atrain[j]];
        has[J->bclass[j] - 1] = 1;
    }
    J->est_pairs = 0;
    for (int64_t i = 0; !rc && i < J->n_train; i++) {
        uint8_t *row = J->amulti + (size_t)i * C;
        rc = cmir_archive_multilabel(J->a, J->train[i], row);
        for (int c = 0; !rc && c < C; c++)
            J->est_pairs += row[c] && has[c];
    }
    cmir__free(has);
    if (!rc && J->est_pairs < 2)
        rc = cmir__error(CMIR_EINVAL, "no training image carries a label that a training clip speaks");
    return rc;
}

/* Image-speech stage-2 pairs of one epoch, the paper's way: each training
 * image with one training clip of each of its labels, drawn afresh with
 * the run's RNG; pa/pb index tiles/clips, pc is the pair's class (0-based),
 * all in a shuffled order. The previous epoch's arrays are freed. */
int cmir__train_speech_pairs(cmir__train_job *J, cmir__train_pairs *ps)
{
    cmir__free(ps->pa); cmir__free(ps->pb); cmir__free(ps->pc);
    ps->pa = ps->pb = NULL;
    ps->pc = NULL;
    int rc = cmir_pairs_by_label(J->amulti, J->n_train, J->ai->n_classes, J->bclass, J->n_atrain,
                                 cmir_rng_u64(J->rng), &ps->pa, &ps->pb, &ps->pc, &ps->n);
    if (rc)
        return rc;
    int64_t *pa = ps->pa, *pb = ps->pb;
    int32_t *pc = ps->pc;
    for (int64_t i = 0; i < ps->n; i++) {
        pa[i] = J->train[pa[i]];
        pb[i] = J->atrain[pb[i]];
    }
    for (int64_t i = ps->n - 1; i > 0; i--) {
        int64_t j = (int64_t)cmir_rng_below(J->rng, (uint64_t)i + 1), t;
        t = pa[i]; pa[i] = pa[j]; pa[j] = t;
        t = pb[i]; pb[i] = pb[j]; pb[j] = t;
        int32_t c = pc[i]; pc[i] = pc[j]; pc[j] = c;
    }
    return 0;
}

int cmir_pairs_by_label(const uint8_t *a_multi, int64_t na, int C, const int32_t *b_class, int64_t nb,
                        uint64_t seed, int64_t **pa, int64_t **pb, int32_t **pc, int64_t *n)
{
    if (!a_multi || !b_class || na < 0 || nb < 0 || C < 1 || !pa || !pb || !pc || !n)
        return cmir__error(CMIR_EINVAL, "cmir_pairs_by_label: bad arguments");
    *pa = *pb = NULL;
    *pc = NULL;
    *n = 0;
    /* b items grouped by class: start[c] .. start[c+1] in `by` */
    int64_t *start = cmir__calloc((size_t)C + 1, sizeof(int64_t)), *by = cmir__malloc(sizeof(int64_t) * (size_t)(nb ? nb : 1));
    int64_t *fill = cmir__calloc((size_t)C + 1, sizeof(int64_t));
    cmir_rng *r = cmir_rng_new(seed);
    int rc = (!start || !by || !fill || !r) ? CMIR_ENOMEM : 0;
    for (int64_t j = 0; !rc && j < nb; j++) {
        if (b_class[j] < 1 || b_class[j] > C)
            rc = cmir__error(CMIR_EINVAL, "cmir_pairs_by_label: class %d of b item %lld outside 1..%d", b_class[j],
                             (long long)j, C);
        else
            start[b_class[j]]++;
    }
    for (int c = 1; !rc && c <= C; c++)
        start[c] += start[c - 1]; /* start[c] = end of class c (1-based) */
    for (int64_t j = 0; !rc && j < nb; j++) {
        int c = b_class[j] - 1; /* class c occupies [start[c], start[c+1]) */
        by[start[c] + fill[c]++] = j;
    }
    int64_t total = 0;
    for (int64_t i = 0; !rc && i < na; i++)
        for (int c = 0; c < C; c++)
            total += a_multi[i * C + c] && start[c + 1] > start[c];
    if (!rc) {
        *pa = cmir__malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
        *pb = cmir__malloc(sizeof(int64_t) * (size_t)(total ? total : 1));
        *pc = cmir__malloc(sizeof(int32_t) * (size_t)(total ? total : 1));
        if (!*pa || !*pb || !*pc)
            rc = CMIR_ENOMEM;
    }
    for (int64_t i = 0; !rc && i < na; i++)
        for (int c = 0; c < C; c++) {
            int64_t cnt = start[c + 1] - start[c];
            if (!a_multi[i * C + c] || cnt == 0)
                continue;
            (*pa)[*n] = i;
            (*pb)[*n] = by[start[c] + (int64_t)cmir_rng_below(r, (uint64_t)cnt)];
            (*pc)[*n] = c;
            (*n)++;
        }
    if (rc) {
        cmir__free(*pa);
        cmir__free(*pb);
        cmir__free(*pc);
        *pa = *pb = NULL;
        *pc = NULL;
        *n = 0;
    }
    cmir__free(start);
    cmir__free(by);
    cmir__free(fill);
    cmir_rng_free(r);
    return rc;
}
