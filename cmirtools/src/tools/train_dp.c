/* Data-parallel stage 1 of cmir_train() over MPI ranks (the calls in
 * cmir/dist.h): each rank's contiguous share of every global batch, the
 * batch-norm and orthogonality sums over all ranks, the summed gradients,
 * the RNG draws of the other ranks' samples, the step of a rank whose share
 * is empty, and the gathered stage-1 features. J->dp is NULL in one process,
 * where every function here is the single-process path. */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define DP_MAX_REC 64 /* sums recorded per step (3 batch norms each way, the Gram) */

struct cmir__train_dp {
    int rank, size;
    float *g;          /* the packed gradients and two extras */
    size_t ng;
    size_t rec_n[DP_MAX_REC]; /* the sums of the last step with a share here, */
    int rec_dbl[DP_MAX_REC];  /* replayed (zeros) by a step without one */
    int nrec, recording;
    int idle;          /* steps without a share since the last sync */
    float *gram;       /* CMIR_FEAT_DIM^2 */
};

static int record(cmir__train_dp *d, size_t n, int dbl)
{
    if (!d->recording)
        return 0;
    if (d->nrec == DP_MAX_REC)
        return cmir__error(CMIR_EINVAL, "data-parallel step: more than %d sums", DP_MAX_REC);
    d->rec_n[d->nrec] = n;
    d->rec_dbl[d->nrec++] = dbl;
    return 0;
}

/* The batch norm's reducer (cmir__exec_set_reduce). */
static int reduce_f64(double *v, size_t n, void *user)
{
    int rc = record(user, n, 1);
    return rc ? rc : cmir_dist_sum_double(v, n);
}

int cmir__train_dp_open(cmir__train_job *J, const char *archive_path)
{
    const int size = cmir_dist_size(), rank = cmir_dist_rank();
    if (size == 1)
        return 0;
    /* every rank must have opened the same archive and drawn the same split */
    int64_t v[6] = {J->ai->n_tiles, -J->ai->n_tiles, J->n_train, -J->n_train, J->ai->n_classes, -J->ai->n_classes};
    int64_t mine[6];
    memcpy(mine, v, sizeof v);
    int rc = cmir_dist_max_i64(v, 6);
    if (rc)
        return rc;
    for (int i = 0; i < 6; i += 2)
        if (v[i] != -v[i + 1])
            return cmir__error(CMIR_EINVAL,
                               "rank %d: %s: %lld tiles, %lld training, %lld classes: not the archive of every rank",
                               rank, archive_path, (long long)mine[0], (long long)mine[2], (long long)mine[4]);
    int64_t n1;
    cmir__train_side_train(J, 1, &n1);
    if (J->p.batch < size || J->n_train < size || n1 < size)
        return cmir__error(CMIR_EINVAL, "rank %d: batch (%d) and training items (%lld, %lld) must be at least the "
                           "number of ranks (%d)", rank, J->p.batch, (long long)J->n_train, (long long)n1, size);
    cmir__train_dp *d = J->dp = cmir__calloc(1, sizeof *d);
    if (!d || !(d->gram = cmir__malloc(sizeof(float) * CMIR_FEAT_DIM * CMIR_FEAT_DIM)))
        return CMIR_ENOMEM;
    d->rank = rank;
    d->size = size;
    return 0;
}

void cmir__train_dp_close(cmir__train_job *J)
{
    if (!J->dp)
        return;
    cmir__free(J->dp->g);
    cmir__free(J->dp->gram);
    cmir__free(J->dp);
    J->dp = NULL;
}

void cmir__train_dp_share(const cmir__train_job *J, int64_t n, int *at, int *nl)
{
    size_t lo = 0, hi = (size_t)n;
    if (J->dp)
        cmir__split((size_t)n, J->dp->size, J->dp->rank, &lo, &hi);
    *at = (int)lo;
    *nl = (int)(hi - lo);
}

void cmir__train_dp_skip(cmir__train_job *J, int64_t draws)
{
    for (int64_t i = 0; J->dp && i < draws; i++)
        (void)cmir_rng_uniform(J->rng);
}

void cmir__train_dp_begin(cmir__train_job *J)
{
    if (!J->dp)
        return;
    J->dp->nrec = 0;
    J->dp->recording = 1;
    cmir__exec_set_reduce(J->ex, reduce_f64, J->dp);
}

void cmir__train_dp_end(cmir__train_job *J)
{
    if (!J->dp)
        return;
    J->dp->recording = 0;
    cmir__exec_set_reduce(J->ex, NULL, NULL);
}

int cmir__train_dp_ortho(cmir__train_job *J, const float *Z, int nl, int n, float scale, float *loss, float *dZ)
{
    const int D = CMIR_FEAT_DIM;
    if (!J->dp) {
        cmir_tensor tz = cmir_tensor_2d((float *)Z, nl, D), tdz = cmir_tensor_2d(dZ, nl, D);
        return cmir_ortho_penalty(J->ex, &tz, 1, scale, loss, &tdz);
    }
    /* E = (sum over ranks of Z_r^T Z_r) / n - I; dZ_r += (4 scale / n) Z_r E */
    float *E = J->dp->gram;
    const int T = cmir_exec_threads(J->ex);
    cmir__sgemm(T, 1, 0, D, D, nl, 1.0f, Z, D, Z, D, 0.0f, E, D);
    int rc = record(J->dp, (size_t)D * D, 0);
    if (rc || (rc = cmir_dist_sum_float(E, (size_t)D * D)))
        return rc;
    const float inv = 1.0f / (float)n;
    double total = 0.0;
    for (int i = 0; i < D; i++)
        for (int k = 0; k < D; k++) {
            float e = E[(size_t)i * D + k] * inv - (i == k ? 1.0f : 0.0f);
            E[(size_t)i * D + k] = e;
            total += (double)e * e;
        }
    *loss = (float)(scale * total);
    cmir__sgemm(T, 0, 0, nl, D, D, 4.0f * scale * inv, Z, D, E, D, 1.0f, dZ, D);
    return 0;
}

/* Packs (dir 0) or unpacks (dir 1) the CNN's gradients and the extras. */
static int pack(cmir__train_dp *d, cmir_cnn *c, float extra[2], int dir)
{
    const int np = cmir_cnn_n_params(c);
    size_t total = 2;
    for (int i = 0; i < np; i++) {
        size_t n;
        int rc = cmir_cnn_param(c, i, NULL, NULL, NULL, &n);
        if (rc)
            return rc;
        total += n;
    }
    if (d->ng != total) { /* the first step, or the other side's CNN */
        cmir__free(d->g);
        d->ng = 0;
        if (!(d->g = cmir__malloc(sizeof(float) * total)))
            return CMIR_ENOMEM;
        d->ng = total;
    }
    size_t at = 0;
    for (int i = 0; i < np; i++) {
        float *g;
        size_t n;
        cmir_cnn_param(c, i, NULL, NULL, &g, &n);
        if (dir)
            memcpy(g, d->g + at, sizeof(float) * n);
        else
            memcpy(d->g + at, g, sizeof(float) * n);
        at += n;
    }
    if (dir)
        memcpy(extra, d->g + at, sizeof(float) * 2);
    else
        memcpy(d->g + at, extra, sizeof(float) * 2);
    return 0;
}

int cmir__train_dp_grads(cmir__train_job *J, cmir_cnn *c, float extra[2])
{
    cmir__train_dp *d = J->dp;
    if (!d)
        return 0;
    int rc = pack(d, c, extra, 0);
    if (!rc)
        rc = cmir_dist_sum_float(d->g, d->ng);
    return rc ? rc : pack(d, c, extra, 1);
}

int cmir__train_dp_idle(cmir__train_job *J, int k, int n, float extra[2])
{
    cmir__train_dp *d = J->dp;
    if (!d || !d->nrec)
        return cmir__error(CMIR_EINVAL, "rank %d: an empty share of a batch before any full one", d ? d->rank : 0);
    d->idle++;
    if (J->p.augment)
        cmir__train_augment(J, k, NULL, 0, n, n, NULL);
    if (J->p.dropout > 0)
        cmir__train_dp_skip(J, (int64_t)n * CMIR_FEAT_DIM);
    int rc = 0;
    for (int i = 0; !rc && i < d->nrec; i++) {
        size_t m = d->rec_n[i];
        void *z = cmir__calloc(m, d->rec_dbl[i] ? sizeof(double) : sizeof(float));
        if (!z)
            return CMIR_ENOMEM;
        rc = d->rec_dbl[i] ? cmir_dist_sum_double(z, m) : cmir_dist_sum_float(z, m);
        cmir__free(z);
    }
    cmir_cnn *c = J->m->cnn[k];
    for (int i = 0, np = cmir_cnn_n_params(c); !rc && i < np; i++) {
        float *g;
        size_t m;
        if (!(rc = cmir_cnn_param(c, i, NULL, NULL, &g, &m)))
            memset(g, 0, sizeof(float) * m);
    }
    extra[0] = extra[1] = 0; /* the caller sums the (zero) gradients with the others' */
    return rc;
}

int cmir__train_dp_sync_cnn(cmir__train_job *J, int k)
{
    int64_t idle = J->dp ? J->dp->idle : 0;
    if (!J->dp || cmir_dist_max_i64(&idle, 1) || !idle)
        return 0;
    cmir_tensorset *ts = cmir_tensorset_new();
    int rc = ts ? cmir_cnn_save(J->m->cnn[k], ts, "") : CMIR_ENOMEM;
    for (int i = 0, n = ts ? cmir_tensorset_count(ts) : 0; !rc && i < n; i++) {
        const cmir_tensor *t = cmir_tensorset_get(ts, cmir_tensorset_name(ts, i));
        rc = cmir_dist_bcast(t->data, sizeof(float) * (size_t)cmir_tensor_numel(t), 0);
    }
    if (!rc)
        rc = cmir_cnn_load(J->m->cnn[k], ts, "");
    cmir_tensorset_free(ts);
    J->dp->idle = 0;
    return rc;
}

int cmir__train_dp_gather_rows(cmir__train_job *J, float *Z, int64_t N, int width)
{
    for (int r = 0; J->dp && r < J->dp->size; r++) {
        size_t lo, hi;
        cmir__split((size_t)N, J->dp->size, r, &lo, &hi);
        int rc = cmir_dist_bcast(Z + lo * width, sizeof(float) * (hi - lo) * width, r);
        if (rc)
            return rc;
    }
    return 0;
}
