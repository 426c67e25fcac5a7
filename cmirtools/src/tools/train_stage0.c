/* cmir_train()'s starts other than a fresh network: -init (the CNN
 * weights of another model; class heads of another shape stay fresh) and
 * stage 0, cross-modal contrastive pretraining of both CNNs on the PAN/MS
 * pairs of an archive whose labels are not read (symmetric InfoNCE). */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int cmir__train_init_from(cmir__train_job *J, const char *path)
{
    cmir_model *src = cmir_model_load(path);
    if (!src)
        return cmir__failed(CMIR_EIO);
    const cmir_model_info *a = &src->info, *b = &J->m->info;
    int rc = 0;
    if (a->scenario != b->scenario || a->pan_h != b->pan_h || a->pan_w != b->pan_w || a->pan_bands != b->pan_bands ||
        a->ms_h != b->ms_h || a->ms_w != b->ms_w || a->ms_bands != b->ms_bands)
        rc = cmir__error(CMIR_EINVAL, "%s: -init needs the same tiles: it has PAN %dx%dx%d, MS %dx%dx%d, the archive "
                         "PAN %dx%dx%d, MS %dx%dx%d", path, a->pan_h, a->pan_w, a->pan_bands, a->ms_h, a->ms_w,
                         a->ms_bands, b->pan_h, b->pan_w, b->pan_bands, b->ms_h, b->ms_w, b->ms_bands);
    int copied = 0, total = 0;
    for (int k = 0; !rc && k < 2; k++) {
        int n = cmir_cnn_n_params(J->m->cnn[k]);
        for (int i = 0; i < n; i++, total++) {
            const char *name, *sname;
            float *w, *g, *sw, *sg;
            size_t len, slen;
            cmir_cnn_param(J->m->cnn[k], i, &name, &w, &g, &len);
            for (int j = 0; j < cmir_cnn_n_params(src->cnn[k]); j++) {
                cmir_cnn_param(src->cnn[k], j, &sname, &sw, &sg, &slen);
                if (!strcmp(name, sname) && len == slen) { /* a head of another class count differs in size */
                    memcpy(w, sw, sizeof(float) * len);
                    copied++;
                    break;
                }
            }
        }
    }
    cmir_model_free(src);
    if (!rc) {
        snprintf(J->msg, sizeof J->msg, "init from %s: %d of %d weight arrays copied", path, copied, total);
        rc = cmir__train_report(J, 0, J->msg);
    }
    return rc;
}

/* Per-band mean and deviation of the pretraining archive (a seeded sample
 * of its tiles): stage 0 normalises its pairs by their own statistics. */
static int pair_stats(cmir__train_job *J, cmir_archive *pa, int k, float *mean, float *sd, float *buf)
{
    const int64_t N = cmir_archive_get_info(pa)->n_tiles;
    int B, n = cmir__train_tile_elems(&J->m->info, k, &B);
    int64_t ns = N < J->p.max_stat_tiles ? N : J->p.max_stat_tiles, cnt = 0;
    double s[CMIR__TRAIN_MAX_BANDS] = {0}, s2[CMIR__TRAIN_MAX_BANDS] = {0};
    for (int64_t t = 0; t < ns; t++) {
        int64_t i = (int64_t)cmir_rng_below(J->rng, (uint64_t)N);
        int rc = cmir_archive_read_tile(pa, k ? CMIR_MS : CMIR_PAN, i, buf);
        if (rc)
            return rc;
        for (int p = 0; p < n; p += B) {
            int ok = 1;
            for (int b = 0; b < B; b++)
                ok &= isfinite(buf[p + b]);
            for (int b = 0; b < B && ok; b++) {
                s[b] += buf[p + b];
                s2[b] += (double)buf[p + b] * buf[p + b];
            }
            cnt += ok;
        }
    }
    for (int b = 0; b < B; b++) {
        double mu = cnt ? s[b] / (double)cnt : 0, var = cnt ? s2[b] / (double)cnt - mu * mu : 1;
        mean[b] = (float)mu;
        sd[b] = (float)sqrt(var > CMIR__TRAIN_BAND_VAR_MIN ? var : 1.0);
    }
    return 0;
}

/* Symmetry s (bit 0: flip columns, 1: flip rows, 2: transpose) of one tile. */
static void symmetry(float *x, int h, int w, int b, int s, float *tmp)
{
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int si = (s & 2) ? h - 1 - i : i, sj = (s & 1) ? w - 1 - j : j;
            if (s & 4) {
                int t = si; si = sj; sj = t;
            }
            memcpy(tmp + ((size_t)i * w + j) * b, x + ((size_t)si * w + sj) * b, sizeof(float) * (size_t)b);
        }
    memcpy(x, tmp, sizeof(float) * (size_t)h * w * b);
}

typedef struct s0_bufs {
    float *raw, *x[2], *z0, *dz[2], *dl, *tmp;
    int per[2];
} s0_bufs;

/* One InfoNCE step on the pairs idx[0..n). */
static int stage0_batch(cmir__train_job *J, cmir_archive *pa, cmir_optim *o, const int64_t *idx, int n, s0_bufs *b,
                        double *lsum)
{
    const cmir_model_info *mi = &J->m->info;
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        for (int i = 0; i < n && !rc; i++)
            rc = cmir_archive_read_tile(pa, k ? CMIR_MS : CMIR_PAN, idx[i], b->raw + (size_t)i * b->per[k]);
        if (!rc)
            cmir__model_normalise(J->m, k, b->raw, n, b->x[k]);
    }
    for (int i = 0; i < n && !rc && J->p.augment; i++) { /* the same symmetry for both tiles of a pair */
        int sq = mi->pan_h == mi->pan_w && mi->ms_h == mi->ms_w;
        int s = (int)cmir_rng_below(J->rng, sq ? 8 : 4);
        symmetry(b->x[0] + (size_t)i * b->per[0], mi->pan_h, mi->pan_w, mi->pan_bands, s, b->tmp);
        symmetry(b->x[1] + (size_t)i * b->per[1], mi->ms_h, mi->ms_w, mi->ms_bands, s, b->tmp);
    }
    if (rc || (rc = cmir_cnn_forward(J->m->cnn[0], J->ex, b->x[0], n, 1, J->rng)))
        return rc;
    memcpy(b->z0, cmir_cnn_features(J->m->cnn[0]), sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
    if ((rc = cmir_cnn_forward(J->m->cnn[1], J->ex, b->x[1], n, 1, J->rng)))
        return rc;
    memset(b->dz[0], 0, sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
    memset(b->dz[1], 0, sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
    cmir_tensor ta = cmir_tensor_2d(b->z0, n, CMIR_FEAT_DIM), tb = cmir_tensor_2d(cmir_cnn_features(J->m->cnn[1]), n, CMIR_FEAT_DIM);
    cmir_tensor da = cmir_tensor_2d(b->dz[0], n, CMIR_FEAT_DIM), db = cmir_tensor_2d(b->dz[1], n, CMIR_FEAT_DIM);
    float loss = 0;
    if ((rc = cmir_infonce(&ta, &tb, J->p.tau, 1.0f, &loss, &da, &db)) ||
        (rc = cmir_cnn_backward(J->m->cnn[0], J->ex, b->dl, b->dz[0])) ||
        (rc = cmir_cnn_backward(J->m->cnn[1], J->ex, b->dl, b->dz[1])) || (rc = cmir_optim_step(o)))
        return rc;
    if (!isfinite(loss))
        return cmir__error(CMIR_EINVAL, "stage 0 diverged (loss not finite): lower -lr0");
    *lsum += (double)loss * n;
    return 0;
}

static int stage0_epochs(cmir__train_job *J, cmir_archive *pa, cmir_optim *o, s0_bufs *b, int64_t *order,
                         cmir_train_report *rep)
{
    const int64_t N = cmir_archive_get_info(pa)->n_tiles;
    const int E = J->p.epochs0, Bt = J->p.batch;
    double t0 = cmir__train_now();
    int64_t pairs = 0;
    int rc = 0;
    for (int ep = 0; !rc && ep < E; ep++) {
        for (int64_t i = 0; i < N; i++)
            order[i] = i;
        cmir__train_shuffle(J->rng, order, N);
        double lsum = 0;
        int64_t seen = 0;
        for (int64_t s = 0; !rc && s + 1 < N; s += Bt) {
            int n = (int)(N - s < Bt ? N - s : Bt);
            if (!(rc = stage0_batch(J, pa, o, order + s, n, b, &lsum))) {
                seen += n;
                rc = cmir__train_report(J, n, NULL);
            }
        }
        pairs += seen;
        rep->stage0_loss = seen ? (float)(lsum / (double)seen) : 0;
        snprintf(J->msg, sizeof J->msg, "stage 0 epoch %d/%d: InfoNCE %.4f (chance %.4f)", ep + 1, E,
                 (double)rep->stage0_loss, log((double)(N < Bt ? N : Bt)));
        int every = E > CMIR__TRAIN_LOG_LINES ? E / CMIR__TRAIN_LOG_LINES : 1;
        if (!rc && ((ep + 1) % every == 0 || ep + 1 == E))
            rc = cmir__train_report(J, 0, J->msg);
    }
    double dt = cmir__train_now() - t0;
    rep->stage0_pairs_per_s = dt > 0 ? (double)pairs / dt : 0;
    return rc;
}

int cmir__train_stage0(cmir__train_job *J, cmir_train_report *rep)
{
    if (J->p.epochs0 == 0)
        return 0;
    cmir_archive *pa = cmir_archive_open(J->p.pretrain);
    if (!pa)
        return cmir__failed(CMIR_EIO);
    const cmir_archive_info *pi = cmir_archive_get_info(pa);
    const cmir_model_info *mi = &J->m->info;
    if (pi->pan_h != mi->pan_h || pi->pan_w != mi->pan_w || pi->pan_bands != mi->pan_bands || pi->ms_h != mi->ms_h ||
        pi->ms_w != mi->ms_w || pi->ms_bands != mi->ms_bands || pi->n_tiles < 2) {
        int rc = cmir__error(CMIR_EINVAL, "%s: pretraining pairs must have the training archive's tiles (PAN %dx%dx%d, "
                             "MS %dx%dx%d) and at least 2 of them", J->p.pretrain, mi->pan_h, mi->pan_w, mi->pan_bands,
                             mi->ms_h, mi->ms_w, mi->ms_bands);
        cmir_archive_close(pa);
        return rc;
    }
    J->total += (double)J->p.epochs0 * (double)pi->n_tiles;
    int B0, B1, Bt = J->p.batch, C = J->ai->n_classes;
    s0_bufs b;
    b.per[0] = cmir__train_tile_elems(mi, 0, &B0);
    b.per[1] = cmir__train_tile_elems(mi, 1, &B1);
    size_t per = (size_t)(b.per[0] > b.per[1] ? b.per[0] : b.per[1]);
    b.raw = cmir__malloc_aligned(sizeof(float) * per * (size_t)Bt);
    b.x[0] = cmir__malloc_aligned(sizeof(float) * (size_t)b.per[0] * (size_t)Bt);
    b.x[1] = cmir__malloc_aligned(sizeof(float) * (size_t)b.per[1] * (size_t)Bt);
    b.z0 = cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM);
    b.dz[0] = cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM);
    b.dz[1] = cmir__malloc(sizeof(float) * (size_t)Bt * CMIR_FEAT_DIM);
    b.dl = cmir__calloc((size_t)Bt * (size_t)C, sizeof(float));
    b.tmp = cmir__malloc(sizeof(float) * per);
    float *mean[2] = {cmir__malloc(sizeof(float) * (size_t)B0), cmir__malloc(sizeof(float) * (size_t)B1)};
    float *sd[2] = {cmir__malloc(sizeof(float) * (size_t)B0), cmir__malloc(sizeof(float) * (size_t)B1)};
    int64_t *order = cmir__malloc(sizeof(int64_t) * (size_t)pi->n_tiles);
    cmir_optim_params op = cmir_optim_default_params();
    op.lr = J->p.lr0;
    cmir_optim *o = cmir_optim_new(op);
    int rc = (!b.raw || !b.x[0] || !b.x[1] || !b.z0 || !b.dz[0] || !b.dz[1] || !b.dl || !b.tmp || !mean[0] ||
              !mean[1] || !sd[0] || !sd[1] || !order || !o) ? CMIR_ENOMEM : 0;
    for (int k = 0; k < 2 && !rc; k++)
        if (!(rc = pair_stats(J, pa, k, mean[k], sd[k], b.raw)))
            rc = cmir_cnn_register(J->m->cnn[k], o);
    if (!rc) {
        /* the pairs' own normalisation while stage 0 runs */
        float *keep_m[2] = {J->m->mean[0], J->m->mean[1]}, *keep_s[2] = {J->m->std[0], J->m->std[1]};
        for (int k = 0; k < 2; k++) {
            J->m->mean[k] = mean[k];
            J->m->std[k] = sd[k];
        }
        rc = stage0_epochs(J, pa, o, &b, order, rep);
        for (int k = 0; k < 2; k++) {
            J->m->mean[k] = keep_m[k];
            J->m->std[k] = keep_s[k];
        }
    }
    cmir_optim_free(o);
    cmir__free_aligned(b.raw); cmir__free_aligned(b.x[0]); cmir__free_aligned(b.x[1]);
    cmir__free(b.z0); cmir__free(b.dz[0]); cmir__free(b.dz[1]); cmir__free(b.dl); cmir__free(b.tmp);
    cmir__free(mean[0]); cmir__free(mean[1]); cmir__free(sd[0]); cmir__free(sd[1]); cmir__free(order);
    cmir_archive_close(pa);
    return rc;
}
