/* Stage 1 of cmir_train(): one CNN per modality (cross-entropy, sigmoid
 * for multi-label sides, plus the orthogonality penalty on the 128-d
 * features), then the features of every item and their standardisation
 * for stage 2. */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Stage-1 epochs of side k: epochs1, except for the clips of the speech
 * side (a few hundred feature vectors, a few batches an epoch): enough
 * epochs for speech_steps steps, and at least epochs1. */
int cmir__train_stage1_epochs(const cmir__train_job *J, int k)
{
    if (!(k && cmir__train_is_speech(J)) || J->p.epochs1 == 0)
        return J->p.epochs1;
    int64_t per = (J->n_atrain - 1 + J->p.batch - 1) / J->p.batch; /* batches of >= 2 */
    return cmir__train_epochs_for_steps(per, J->p.speech_steps, J->p.epochs1);
}

/* One stage-1 run's batch buffers. */
typedef struct s1_bufs {
    int32_t *lab;
    float *tg, *dl, *dz, *atmp;
} s1_bufs;

/* One step on the n items order[0..n): loss (cross-entropy + orthogonality)
 * times n into *lsum, correct single-label predictions into *right. */
static int stage1_batch(cmir__train_job *J, int k, cmir_optim *o, const int64_t *order, int n, float *raw,
                        float *x, s1_bufs *b, double *lsum, int64_t *right)
{
    cmir_cnn *c = J->m->cnn[k];
    const int C = J->ai->n_classes, ml = J->ml1[k];
    int rc = cmir__train_load_batch(J, k, order, n, raw, x);
    if (rc)
        return rc;
    if (J->p.augment)
        cmir__train_augment(J, k, x, n, b->atmp);
    cmir__train_labels_of(J, k, order, n, b->lab, ml ? b->tg : NULL);
    if ((rc = cmir_cnn_forward(c, J->ex, x, n, 1, J->rng)))
        return rc;
    float *lg = cmir_cnn_logits(c), loss = 0, lo = 0;
    memset(b->dl, 0, sizeof(float) * (size_t)n * C);
    memset(b->dz, 0, sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
    cmir_tensor tl = cmir_tensor_2d(lg, n, C), tdl = cmir_tensor_2d(b->dl, n, C);
    if (ml) {
        cmir_tensor tt = cmir_tensor_2d(b->tg, n, C);
        rc = cmir_sigmoid_xent(&tl, &tt, 1.0f, &loss, &tdl);
    } else {
        rc = cmir_softmax_xent(&tl, b->lab, 1.0f, &loss, &tdl);
    }
    if (!rc && J->p.ortho > 0) {
        cmir_tensor tz = cmir_tensor_2d(cmir_cnn_features(c), n, CMIR_FEAT_DIM);
        cmir_tensor tdz = cmir_tensor_2d(b->dz, n, CMIR_FEAT_DIM);
        rc = cmir_ortho_penalty(J->ex, &tz, 1, J->p.ortho / (CMIR_FEAT_DIM * CMIR_FEAT_DIM), &lo, &tdz);
    }
    if (!rc)
        rc = cmir_cnn_backward(c, J->ex, b->dl, J->p.ortho > 0 ? b->dz : NULL);
    if (!rc)
        rc = cmir_optim_step(o);
    if (rc)
        return rc;
    if (!isfinite(loss))
        return cmir__error(CMIR_EINVAL, "stage 1 diverged (loss not finite): lower the learning rate");
    *lsum += (double)(loss + lo) * n;
    for (int i = 0; i < n && !ml; i++) {
        int best = 0;
        for (int q = 1; q < C; q++)
            if (lg[(size_t)i * C + q] > lg[(size_t)i * C + best])
                best = q;
        *right += best == b->lab[i];
    }
    return 0;
}

int cmir__train_stage1(cmir__train_job *J, int k, float *raw, float *x, cmir_train_report *rep)
{
    const int C = J->ai->n_classes, ml = J->ml1[k], Bt = J->p.batch;
    int64_t ntr;
    const int64_t *tr = cmir__train_side_train(J, k, &ntr);
    cmir_optim_params op = cmir_optim_default_params();
    op.lr = J->p.lr1;
    cmir_optim *o = cmir_optim_new(op);
    int64_t *order = cmir__malloc(sizeof(int64_t) * (size_t)ntr);
    int bands;
    s1_bufs b = {cmir__malloc(sizeof(int32_t) * (size_t)Bt), cmir__malloc(sizeof(float) * (size_t)Bt * C),
                 cmir__malloc(sizeof(float) * (size_t)Bt * C), cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM),
                 cmir__malloc(sizeof(float) * (size_t)cmir__train_tile_elems(&J->m->info, k, &bands))};
    int rc = (!o || !order || !b.lab || !b.tg || !b.dl || !b.dz || !b.atmp) ? CMIR_ENOMEM
                                                                           : cmir_cnn_register(J->m->cnn[k], o);
    const int E = cmir__train_stage1_epochs(J, k);
    int ep0 = 0;
    if (!rc && J->resume && J->r_stage > k)
        ep0 = E; /* this stage finished before the checkpoint */
    else if (!rc && J->resume && J->r_stage == k) {
        ep0 = J->r_epoch;
        rc = cmir__train_restore_optim(J, o);
    }
    if (ep0)
        cmir__train_report(J, (double)ep0 * (double)ntr, NULL);
    double t0 = cmir__train_now();
    int64_t images = 0;
    cmir__train_best best = {NULL, 0, 0};
    for (int ep = ep0; !rc && ep < E; ep++) {
        /* the last third of the epochs at a lower rate */
        cmir_optim_set_lr(o, 3 * ep >= 2 * E ? J->p.lr1 * CMIR__TRAIN_LR1_LATE : J->p.lr1);
        /* each epoch's order depends on the RNG state alone (resumable) */
        memcpy(order, tr, sizeof(int64_t) * (size_t)ntr);
        cmir__train_shuffle(J->rng, order, ntr);
        double lsum = 0;
        int64_t right = 0, seen = 0;
        for (int64_t s = 0; !rc && s + 1 < ntr; s += Bt) { /* batches of >= 2 (batch norm) */
            int n = (int)(ntr - s < Bt ? ntr - s : Bt);
            if ((rc = stage1_batch(J, k, o, order + s, n, raw, x, &b, &lsum, &right)))
                break;
            seen += n;
            images += n;
            rc = cmir__train_report(J, n, NULL);
        }
        if (rc)
            break;
        float L = seen ? (float)(lsum / (double)seen) : 0, A = seen ? (float)right / (float)seen : 0;
        rep->stage1_loss[k] = L;
        rep->stage1_acc[k] = A;
        if ((rc = cmir__train_best_update(J, k, &best, ep + 1, raw, x)))
            break;
        snprintf(J->msg, sizeof J->msg, "stage 1 %s epoch %d/%d: loss %.4f, train accuracy %.3f",
                 cmir_model_modality_name(J->m, k), ep + 1, E, L, ml ? NAN : A);
        /* one line (and checkpoint) per epoch, at most about CMIR__TRAIN_LOG_LINES */
        int every = E > CMIR__TRAIN_LOG_LINES ? E / CMIR__TRAIN_LOG_LINES : 1;
        int show = (ep + 1) % every == 0 || ep + 1 == E;
        if (show && ((rc = cmir__train_save_checkpoint(J, k, ep + 1, o)) || (rc = cmir__train_report(J, 0, J->msg))))
            break;
    }
    double dt = cmir__train_now() - t0;
    rep->stage1_images_per_s[k] = dt > 0 ? (double)images / dt : 0;
    int rb = cmir__train_best_restore(J, k, &best, E, rep);
    if (!rc)
        rc = rb;
    cmir_optim_free(o);
    cmir__free(order); cmir__free(b.lab); cmir__free(b.tg); cmir__free(b.dl); cmir__free(b.dz); cmir__free(b.atmp);
    return rc;
}

/* Stage-1 features of every tile of the archive, both modalities. */
int cmir__train_all_features(cmir__train_job *J, float *raw, float *x, float *Z[2])
{
    int64_t idx[CMIR_EMBED_BATCH];
    for (int k = 0; k < 2; k++) {
        const int64_t N = cmir__train_side_items(J, k);
        Z[k] = cmir__malloc(sizeof(float) * (size_t)N * CMIR_FEAT_DIM);
        if (!Z[k])
            return CMIR_ENOMEM;
        for (int64_t s = 0; s < N; s += CMIR_EMBED_BATCH) {
            int n = (int)(N - s < CMIR_EMBED_BATCH ? N - s : CMIR_EMBED_BATCH);
            for (int i = 0; i < n; i++)
                idx[i] = s + i;
            int rc = cmir__train_load_batch(J, k, idx, n, raw, x);
            if (!rc)
                rc = cmir_cnn_forward(J->m->cnn[k], J->ex, x, n, 0, NULL);
            if (rc)
                return rc;
            memcpy(Z[k] + (size_t)s * CMIR_FEAT_DIM, cmir_cnn_features(J->m->cnn[k]),
                   sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
            if ((rc = cmir__train_report(J, n, NULL)))
                return rc;
        }
    }
    return 0;
}

/* Per-dimension mean and deviation of the training tiles' features; the
 * unified network sees standardised features (raw ReLU features differ in
 * scale between the modalities by an order of magnitude). */
void cmir__train_z_stats(cmir__train_job *J, float *Z[2])
{
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < CMIR_FEAT_DIM; j++) {
            int64_t ntr;
            const int64_t *tr = cmir__train_side_train(J, k, &ntr);
            double s = 0, s2 = 0;
            for (int64_t t = 0; t < ntr; t++) {
                double v = Z[k][(size_t)tr[t] * CMIR_FEAT_DIM + j];
                s += v;
                s2 += v * v;
            }
            double mu = s / (double)ntr, var = s2 / (double)ntr - mu * mu;
            J->m->zmean[k][j] = (float)mu;
            J->m->zstd[k][j] = (float)(var > CMIR__TRAIN_FEAT_VAR_MIN ? sqrt(var) : 1.0);
        }
}
