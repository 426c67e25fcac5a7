/* cmir_train()'s validation split and label budget (valid_frac,
 * label_frac), and the choice of each stage-1 CNN's epoch by its loss on
 * the validation tiles: the weights of the best epoch are kept. Test tiles
 * are never read here. */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void sort_ids(int64_t *v, int64_t n)
{
    for (int64_t i = 1; i < n; i++)
        for (int64_t k = i; k > 0 && v[k - 1] > v[k]; k--) {
            int64_t t = v[k]; v[k] = v[k - 1]; v[k - 1] = t;
        }
}

int cmir__train_split_valid(cmir__train_job *J)
{
    if (J->p.valid_frac > 0) {
        int64_t want = (int64_t)llround(J->p.valid_frac * (double)J->n_train);
        if (want < 1)
            want = 1;
        if (J->n_train - want < 2)
            return cmir__error(CMIR_EINVAL, "valid_frac %g leaves %lld training tiles (need 2)", J->p.valid_frac,
                               (long long)(J->n_train - want));
        J->valid = cmir__malloc(sizeof(int64_t) * (size_t)want);
        if (!J->valid)
            return CMIR_ENOMEM;
        cmir__train_shuffle(J->rng, J->train, J->n_train);
        memcpy(J->valid, J->train, sizeof(int64_t) * (size_t)want);
        J->n_valid = want;
        memmove(J->train, J->train + want, sizeof(int64_t) * (size_t)(J->n_train - want));
        J->n_train -= want;
        sort_ids(J->valid, J->n_valid);
        sort_ids(J->train, J->n_train);
    }
    if (J->p.label_frac < 1) {
        int64_t keep = (int64_t)ceil(J->p.label_frac * (double)J->n_train);
        if (keep < 2)
            keep = 2;
        if (keep < J->n_train) {
            cmir__train_shuffle(J->rng, J->train, J->n_train);
            int64_t add = J->n_train - keep; /* after the archive's unlabelled tiles */
            int64_t *u = cmir__realloc(J->unlab, sizeof(int64_t) * (size_t)(J->n_unlab + add));
            if (!u)
                return CMIR_ENOMEM;
            J->unlab = u;
            memcpy(J->unlab + J->n_unlab, J->train + keep, sizeof(int64_t) * (size_t)add);
            J->n_unlab += add;
            J->n_train = keep;
            sort_ids(J->train, J->n_train);
            sort_ids(J->unlab, J->n_unlab);
        }
    }
    return 0;
}

int cmir__train_valid_loss(cmir__train_job *J, int k, float *raw, float *x, double *loss)
{
    const int C = J->ai->n_classes, ml = J->ml1[k];
    int32_t lab[CMIR_EMBED_BATCH];
    float *tg = ml ? cmir__malloc(sizeof(float) * (size_t)CMIR_EMBED_BATCH * C) : NULL;
    if (ml && !tg)
        return CMIR_ENOMEM;
    double sum = 0;
    int rc = 0;
    for (int64_t s = 0; !rc && s < J->n_valid; s += CMIR_EMBED_BATCH) {
        int n = (int)(J->n_valid - s < CMIR_EMBED_BATCH ? J->n_valid - s : CMIR_EMBED_BATCH);
        if ((rc = cmir__train_load_batch(J, k, J->valid + s, n, raw, x)) ||
            (rc = cmir_cnn_forward(J->m->cnn[k], J->ex, x, n, 0, NULL)))
            break;
        cmir__train_labels_of(J, k, J->valid + s, n, lab, tg);
        cmir_tensor tl = cmir_tensor_2d(cmir_cnn_logits(J->m->cnn[k]), n, C);
        float l = 0;
        if (ml) {
            cmir_tensor tt = cmir_tensor_2d(tg, n, C);
            rc = cmir_sigmoid_xent(&tl, &tt, 1.0f, &l, NULL);
        } else {
            rc = cmir_softmax_xent(&tl, lab, 1.0f, &l, NULL);
        }
        sum += (double)l * n;
    }
    cmir__free(tg);
    *loss = J->n_valid ? sum / (double)J->n_valid : 0;
    return rc;
}

int cmir__train_best_update(cmir__train_job *J, int k, cmir__train_best *b, int epoch, float *raw, float *x)
{
    if (!J->n_valid || (k && cmir__train_is_speech(J)))
        return 0;
    double l;
    int rc = cmir__train_valid_loss(J, k, raw, x, &l);
    if (rc || (b->ts && !(l < b->loss)))
        return rc;
    if (!b->ts && !(b->ts = cmir_tensorset_new()))
        return CMIR_ENOMEM;
    b->loss = l;
    b->epoch = epoch;
    return cmir_cnn_save(J->m->cnn[k], b->ts, "best_");
}

int cmir__train_best_restore(cmir__train_job *J, int k, cmir__train_best *b, int last_epoch, cmir_train_report *rep)
{
    int rc = 0;
    if (b->ts) {
        if (b->epoch != last_epoch)
            rc = cmir_cnn_load(J->m->cnn[k], b->ts, "best_");
        rep->valid_epoch[k] = b->epoch;
        rep->valid_loss[k] = (float)b->loss;
        size_t len = strlen(J->settings);
        snprintf(J->settings + len, sizeof J->settings - len, "\nvalid_epoch_%s=%d\nvalid_loss_%s=%.6g",
                 k ? "ms" : "pan", b->epoch, k ? "ms" : "pan", b->loss);
    }
    cmir_tensorset_free(b->ts);
    b->ts = NULL;
    return rc;
}
