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

/* This rank's share of one step on the global batch of the n items
 * order[0..n) (one process: all of it): forward, losses weighted by the
 * share's part of the batch, backward; the local loss and correct
 * single-label predictions into extra[0], extra[1]. */
static int stage1_share(cmir__train_job *J, int k, const int64_t *order, int n, float *raw, float *x, s1_bufs *b,
                        float *lo, float extra[2])
{
    cmir_cnn *c = J->m->cnn[k];
    const int C = J->ai->n_classes, ml = J->ml1[k];
    int at, nl;
    cmir__train_dp_share(J, n, &at, &nl);
    if (!nl)
        return cmir__train_dp_idle(J, k, n, extra); /* the other ranks' sums; *lo comes from their extras */
    int rc = cmir__train_load_batch(J, k, order + at, nl, raw, x);
    if (rc)
        return rc;
    if (J->p.augment)
        cmir__train_augment(J, k, x, nl, at, n, b->atmp);
    cmir__train_labels_of(J, k, order + at, nl, b->lab, ml ? b->tg : NULL);
    if (J->p.dropout > 0) /* one draw per feature value of the samples before ours */
        cmir__train_dp_skip(J, (int64_t)at * CMIR_FEAT_DIM);
    cmir__train_dp_begin(J);
    rc = cmir_cnn_forward(c, J->ex, x, nl, 1, J->rng);
    if (J->p.dropout > 0)
        cmir__train_dp_skip(J, (int64_t)(n - at - nl) * CMIR_FEAT_DIM);
    if (rc) {
        cmir__train_dp_end(J);
        return rc;
    }
    float *lg = cmir_cnn_logits(c), loss = 0, w = (float)nl / (float)n; /* 1 in one process */
    memset(b->dl, 0, sizeof(float) * (size_t)nl * C);
    memset(b->dz, 0, sizeof(float) * (size_t)nl * CMIR_FEAT_DIM);
    cmir_tensor tl = cmir_tensor_2d(lg, nl, C), tdl = cmir_tensor_2d(b->dl, nl, C);
    if (ml) {
        cmir_tensor tt = cmir_tensor_2d(b->tg, nl, C);
        rc = cmir_sigmoid_xent(&tl, &tt, w, &loss, &tdl);
    } else {
        rc = cmir_softmax_xent(&tl, b->lab, w, &loss, &tdl);
    }
    if (!rc && J->p.ortho > 0)
        rc = cmir__train_dp_ortho(J, cmir_cnn_features(c), nl, n, J->p.ortho / (CMIR_FEAT_DIM * CMIR_FEAT_DIM), lo,
                                  b->dz);
    if (!rc)
        rc = cmir_cnn_backward(c, J->ex, b->dl, J->p.ortho > 0 ? b->dz : NULL);
    cmir__train_dp_end(J);
    int64_t right = 0;
    for (int i = 0; i < nl && !ml; i++) {
        int best = 0;
        for (int q = 1; q < C; q++)
            if (lg[(size_t)i * C + q] > lg[(size_t)i * C + best])
                best = q;
        right += best == b->lab[i];
    }
    extra[0] = loss;
    extra[1] = (float)right;
    return rc;
}

/* One step on the n items order[0..n): loss (cross-entropy + orthogonality)
 * times n into *lsum, correct single-label predictions into *right. Under
 * MPI the gradients, losses and counts are summed over the ranks first. */
static int stage1_batch(cmir__train_job *J, int k, cmir_optim *o, const int64_t *order, int n, float *raw,
                        float *x, s1_bufs *b, double *lsum, int64_t *right)
{
    float lo = 0, extra[2] = {0, 0};
    /* lo: the penalty of the global batch (0 on a rank without a share,
     * whose loss figures nobody shows: rank 0 always has one) */
    int rc = stage1_share(J, k, order, n, raw, x, b, &lo, extra);
    if (!rc)
        rc = cmir__train_dp_grads(J, J->m->cnn[k], extra);
    if (!rc)
        rc = cmir_optim_step(o);
    if (rc)
        return rc;
    if (!isfinite(extra[0]))
        return cmir__error(CMIR_EINVAL, "stage 1 diverged (loss not finite): lower the learning rate");
    *lsum += (double)(extra[0] + lo) * n;
    *right += (int64_t)extra[1];
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
    if (!rc)
        rc = cmir__train_dp_sync_cnn(J, k);
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
        int at, nl; /* data-parallel: this rank's rows, then everyone's */
        cmir__train_dp_share(J, N, &at, &nl);
        for (int64_t s = at; s < at + nl; s += CMIR_EMBED_BATCH) {
            int n = (int)(at + nl - s < CMIR_EMBED_BATCH ? at + nl - s : CMIR_EMBED_BATCH);
            for (int i = 0; i < n; i++)
                idx[i] = s + i;
            int rc = cmir__train_load_batch(J, k, idx, n, raw, x);
            if (!rc)
                rc = cmir_cnn_forward(J->m->cnn[k], J->ex, x, n, 0, NULL);
            if (rc)
                return rc;
            cmir__model_describe(J->m, k, x, n, cmir_cnn_features(J->m->cnn[k]));
            memcpy(Z[k] + (size_t)s * CMIR_FEAT_DIM, cmir_cnn_features(J->m->cnn[k]),
                   sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
            if ((rc = cmir__train_report(J, n, NULL)))
                return rc;
        }
        int rc = cmir__train_dp_gather_rows(J, Z[k], N, CMIR_FEAT_DIM);
        if (rc || (J->dp && (rc = cmir__train_report(J, (double)(N - nl), NULL))))
            return rc;
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
