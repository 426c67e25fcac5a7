/* Stage 2, the unified space, for cmir_train() and cmir_train_unified():
 * one loop over the pairs of a pair source (rows by index, or image-speech
 * pairs by label), the epoch's mean losses and progress; and the feature
 * files it reads and writes (features_*.mat, unified.mat). */
#include "train_internal.h"

#include <stdio.h>
#include <string.h>

/* The pairs of the next epoch into ps->ia, ps->ib, ps->n. */
static int pairs_next_epoch(cmir__train_job *J, cmir__train_pairs *ps)
{
    if (ps->by_label) {
        int rc = cmir__train_speech_pairs(J, ps);
        ps->ia = ps->pa;
        ps->ib = ps->pb;
        return rc;
    }
    if (!ps->keep_order)
        memcpy(ps->order, ps->rows, sizeof(int64_t) * (size_t)ps->n_rows);
    cmir__train_shuffle(J->rng, ps->order, ps->n_rows);
    ps->ia = ps->ib = ps->order;
    ps->n = ps->n_rows;
    return 0;
}

/* Classes (or, multi-label, C flags each) of the n pairs from the at-th. */
static void pairs_labels(cmir__train_job *J, const cmir__train_pairs *ps, int64_t at, int n, int ml, int C,
                         int32_t *lab, float *tg)
{
    if (ps->by_label) {
        memcpy(lab, ps->pc + at, sizeof(int32_t) * (size_t)n);
    } else if (!ps->row_class) {
        cmir__train_labels_of(J, 0, ps->order + at, n, lab, ml ? tg : NULL);
    } else {
        for (int i = 0; i < n; i++) {
            int64_t r = ps->order[at + i];
            lab[i] = ps->row_class[r];
            if (ml)
                memcpy(tg + (size_t)i * C, ps->row_targets + (size_t)r * C, sizeof(float) * (size_t)C);
        }
    }
}

static void losses_add(cmir_unified_losses *sum, const cmir_unified_losses *L)
{
    sum->pair += L->pair; sum->cls += L->cls; sum->norm += L->norm; sum->cross += L->cross; sum->reg += L->reg;
    sum->total += L->total;
}

/* One stage-2 run's batch buffers. */
typedef struct s2_bufs {
    float *za, *zb, *tg;
    int32_t *lab;
} s2_bufs;

/* One batch of n pairs, rows ia[i] and ib[i] (labels lab/tg, or both
 * NULL: unlabelled), and the optimiser's step; sums as stage2_epoch's. */
static int stage2_batch(cmir__train_job *J, cmir_unified *u, cmir_optim *o, float *const Z[2], s2_bufs *b,
                        const int64_t *ia, const int64_t *ib, int n, const int32_t *lab, const float *tg,
                        cmir_unified_losses *sum, int *nb, int64_t *samples)
{
    const int D = cmir_unified_get_params(u).d_in;
    const size_t row = sizeof(float) * (size_t)D;
    for (int i = 0; i < n; i++) {
        memcpy(b->za + (size_t)i * D, Z[0] + (size_t)ia[i] * D, row);
        memcpy(b->zb + (size_t)i * D, Z[1] + (size_t)ib[i] * D, row);
    }
    cmir_unified_losses L;
    int rc = cmir_unified_step(u, J->ex, b->za, b->zb, lab, tg, n, &L);
    if (rc || (rc = cmir_optim_step(o)))
        return rc;
    losses_add(sum, &L);
    (*nb)++;
    *samples += n;
    return 0;
}

/* One epoch over ps's pairs: the sums of the batches' losses into *sum,
 * the batches into *nb, the pairs into *samples. The unlabelled pairs
 * (free_rows, shuffled afresh) come in batches spread evenly among the
 * labelled ones. */
static int stage2_epoch(cmir__train_job *J, cmir_unified *u, cmir_optim *o, cmir__train_pairs *ps,
                        float *const Z[2], s2_bufs *b, cmir_unified_losses *sum, int *nb, int64_t *samples)
{
    const cmir_unified_params up = cmir_unified_get_params(u);
    const int Bt = J->p.batch;
    const int64_t nl = (ps->n + Bt - 1) / Bt, nu = (ps->n_free + Bt - 1) / Bt;
    if (nu) {
        memcpy(ps->free_order, ps->free_rows, sizeof(int64_t) * (size_t)ps->n_free);
        cmir__train_shuffle(J->rng, ps->free_order, ps->n_free);
    }
    int64_t done_u = 0;
    for (int64_t s = 0, i = 0; s < ps->n; s += Bt, i++) {
        int n = (int)(ps->n - s < Bt ? ps->n - s : Bt);
        pairs_labels(J, ps, s, n, up.multilabel, up.n_classes, b->lab, b->tg);
        int rc = stage2_batch(J, u, o, Z, b, ps->ia + s, ps->ib + s, n, b->lab, up.multilabel ? b->tg : NULL, sum,
                              nb, samples);
        for (; !rc && done_u < nu && done_u * nl < (i + 1) * nu; done_u++) {
            int64_t at = done_u * Bt;
            int m = (int)(ps->n_free - at < Bt ? ps->n_free - at : Bt);
            rc = stage2_batch(J, u, o, Z, b, ps->free_order + at, ps->free_order + at, m, NULL, NULL, sum, nb,
                              samples);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* After epoch ep: the means into rep->stage2, a line (at most about
 * CMIR__TRAIN_LOG_LINES), a checkpoint (CMIR__TRAIN_CHECKPOINTS2) and progress. */
static int stage2_epoch_end(cmir__train_job *J, const cmir__train_pairs *ps, cmir_optim *o, int ep,
                            cmir_unified_losses sum, int nb, cmir_train_report *rep)
{
    const int E = J->p.epochs2;
    if (nb) {
        sum.pair /= nb; sum.cls /= nb; sum.norm /= nb; sum.cross /= nb; sum.reg /= nb; sum.total /= nb;
    }
    rep->stage2 = sum;
    snprintf(J->msg, sizeof J->msg,
             "stage 2 epoch %d/%d: loss %.4f (pair %.4f, class %.4f, norm %.4f, cross %.4f, reg %.4f)", ep + 1, E,
             sum.total, sum.pair, sum.cls, sum.norm, sum.cross, sum.reg);
    int every = E > CMIR__TRAIN_LOG_LINES ? E / CMIR__TRAIN_LOG_LINES : 1;
    int show = (ep + 1) % every == 0 || ep + 1 == E;
    int ck = E > CMIR__TRAIN_CHECKPOINTS2 ? E / CMIR__TRAIN_CHECKPOINTS2 : 1;
    int rc = 0;
    if ((ep + 1) % ck == 0 || ep + 1 == E)
        rc = cmir__train_save_checkpoint(J, 2, ep + 1, o);
    if (!rc)
        rc = cmir__train_report(J, CMIR__TRAIN_PROGRESS2 * (double)ps->per_epoch, show ? J->msg : NULL);
    return rc;
}

int cmir__train_stage2_run(cmir__train_job *J, cmir_unified *u, cmir__train_pairs *ps, float *const Z[2],
                           cmir_train_report *rep)
{
    const cmir_unified_params up = cmir_unified_get_params(u);
    const int Bt = J->p.batch;
    cmir_optim_params op = cmir_optim_default_params();
    op.lr = J->p.lr2;
    cmir_optim *o = cmir_optim_new(op);
    s2_bufs b = {cmir__malloc(sizeof(float) * (size_t)Bt * up.d_in), cmir__malloc(sizeof(float) * (size_t)Bt * up.d_in),
                 cmir__malloc(sizeof(float) * (size_t)Bt * up.n_classes), cmir__malloc(sizeof(int32_t) * (size_t)Bt)};
    if (!ps->by_label && (ps->order = cmir__malloc(sizeof(int64_t) * (size_t)(ps->n_rows ? ps->n_rows : 1))))
        memcpy(ps->order, ps->rows, sizeof(int64_t) * (size_t)ps->n_rows);
    ps->free_order = ps->n_free ? cmir__malloc(sizeof(int64_t) * (size_t)ps->n_free) : NULL;
    int rc = (!o || !b.za || !b.zb || !b.tg || !b.lab || (!ps->by_label && !ps->order) ||
              (ps->n_free && !ps->free_order)) ? CMIR_ENOMEM
                                                                                      : cmir_unified_register(u, o);
    int ep0 = 0;
    if (!rc && J->resume && J->r_stage == 2) {
        ep0 = J->r_epoch;
        rc = cmir__train_restore_optim(J, o);
    }
    double t0 = cmir__train_now();
    int64_t samples = 0;
    for (int ep = ep0; !rc && ep < J->p.epochs2; ep++) {
        cmir_unified_losses sum;
        memset(&sum, 0, sizeof sum);
        int nb = 0;
        if (!(rc = pairs_next_epoch(J, ps)) && !(rc = stage2_epoch(J, u, o, ps, Z, &b, &sum, &nb, &samples)))
            rc = stage2_epoch_end(J, ps, o, ep, sum, nb, rep);
    }
    double dt = cmir__train_now() - t0;
    rep->stage2_samples_per_s = dt > 0 ? (double)samples / dt : 0;
    cmir_optim_free(o);
    cmir__free(b.za); cmir__free(b.zb); cmir__free(b.tg); cmir__free(b.lab);
    cmir__free(ps->free_order);
    ps->free_order = NULL;
    cmir__free(ps->order); cmir__free(ps->pa); cmir__free(ps->pb); cmir__free(ps->pc);
    ps->order = ps->pa = ps->pb = NULL;
    ps->pc = NULL;
    return rc;
}

static float *label_vector(cmir__train_job *J, cmir_tensor *t, int64_t *n)
{
    *n = J->ai->n_tiles;
    float *lab = cmir__malloc(sizeof(float) * (size_t)*n);
    if (lab)
        for (int64_t i = 0; i < *n; i++)
            lab[i] = (float)cmir_archive_label(J->a, i);
    *t = cmir_tensor_make(lab, 1, n);
    return lab;
}

/* features_pan.mat and features_ms.mat (variable `features`, N x 128, and
 * `labels`), as the paper's step 2 reads them. */
int cmir__train_export_features(cmir__train_job *J, float *Z[2])
{
    int64_t N;
    cmir_tensor tl;
    float *lab = label_vector(J, &tl, &N);
    int rc = lab ? 0 : CMIR_ENOMEM;
    char path[4096];
    for (int k = 0; !rc && k < 2; k++) {
        cmir_tensorset *ts = cmir_tensorset_new();
        cmir_tensor tz = cmir_tensor_2d(Z[k], N, CMIR_FEAT_DIM);
        snprintf(path, sizeof path, "%s/features_%s.mat", J->p.features_dir, k ? "ms" : "pan");
        rc = ts ? cmir_tensorset_put(ts, "features", &tz) : CMIR_ENOMEM;
        if (!rc)
            rc = cmir_tensorset_put(ts, "labels", &tl);
        if (!rc)
            rc = cmir_tensorset_save(ts, path);
        cmir_tensorset_free(ts);
    }
    cmir__free(lab);
    return rc;
}

int cmir__train_encode_all(cmir_unified *u, cmir_exec *ex, float *const Z[2], int64_t N, float *V[2])
{
    const cmir_unified_params up = cmir_unified_get_params(u);
    const int D = up.d_in, dv = up.d_v;
    V[0] = cmir__malloc(sizeof(float) * (size_t)N * dv);
    V[1] = cmir__malloc(sizeof(float) * (size_t)N * dv);
    int rc = (!V[0] || !V[1]) ? CMIR_ENOMEM : 0;
    for (int k = 0; !rc && k < 2; k++)
        for (int64_t s = 0; !rc && s < N; s += CMIR__TRAIN_ENCODE_ROWS) {
            int n = (int)(N - s < CMIR__TRAIN_ENCODE_ROWS ? N - s : CMIR__TRAIN_ENCODE_ROWS);
            rc = cmir_unified_encode(u, ex, k, Z[k] + (size_t)s * D, n, V[k] + (size_t)s * dv);
        }
    return rc;
}

/* unified.mat: featuresx (PAN) and featuresy (MS) in the latent space,
 * N x d_v, from the (standardised) features. */
int cmir__train_export_unified(cmir__train_job *J, float *Z[2])
{
    int64_t N;
    cmir_tensor tl;
    float *lab = label_vector(J, &tl, &N);
    const int dv = J->m->info.d_v;
    float *V[2] = {NULL, NULL};
    cmir_tensorset *ts = cmir_tensorset_new();
    int rc = (!lab || !ts) ? CMIR_ENOMEM : cmir__train_encode_all(J->m->uni, J->ex, Z, N, V);
    if (!rc) {
        cmir_tensor tx = cmir_tensor_2d(V[0], N, dv), ty = cmir_tensor_2d(V[1], N, dv);
        rc = cmir_tensorset_put(ts, "featuresx", &tx);
        if (!rc) rc = cmir_tensorset_put(ts, "featuresy", &ty);
        if (!rc) rc = cmir_tensorset_put(ts, "labels", &tl);
        if (!rc) rc = cmir_tensorset_save(ts, J->p.unified_path);
    }
    cmir_tensorset_free(ts);
    cmir__free(V[0]);
    cmir__free(V[1]);
    cmir__free(lab);
    return rc;
}
