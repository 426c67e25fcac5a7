/* Training-free retrieval floors: least squares by Householder QR, the
 * PAN-statistics regression onto MS band means fitted on training tiles,
 * and the four directions' metrics in those feature spaces. */
#include "cmir/metrics.h"
#include "../base/internal.h"

#include <math.h>
#include <string.h>

cmir_floor_params cmir_floor_default_params(void)
{
    cmir_floor_params p;
    memset(&p, 0, sizeof p);
    p.standardise = 1;
    p.ridge = 0.0;
    return p;
}

int cmir_floor_check_params(cmir_floor_params p)
{
    if (p.standardise != 0 && p.standardise != 1)
        return cmir__error(CMIR_EINVAL, "cmir_floor_params.standardise: must be 0 or 1, got %d", p.standardise);
    if (!(p.ridge >= 0.0) || !isfinite(p.ridge))
        return cmir__error(CMIR_EINVAL, "cmir_floor_params.ridge: must be finite and >= 0, got %g", p.ridge);
    return 0;
}

static int all_finite(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Back substitution over the accepted columns (pivot row i <-> column
 * col[i]); the other columns get 0. A is m x p, Y m x q, both reduced. */
static void back_substitute(const double *A, const double *Y, int p, int q, const int *col, int r, double *B)
{
    memset(B, 0, sizeof(double) * (size_t)p * q);
    for (int i = r - 1; i >= 0; i--) {
        int c = col[i];
        for (int j = 0; j < q; j++) {
            double s = Y[(size_t)i * q + j];
            for (int l = i + 1; l < r; l++)
                s -= A[(size_t)i * p + col[l]] * B[(size_t)col[l] * q + j];
            B[(size_t)c * q + j] = s / A[(size_t)i * p + c];
        }
    }
}

int cmir_floor_lstsq(const double *X, int64_t n, int p, const double *Y, int q, double ridge, double *B)
{
    if (!X || !Y || !B || n < 1 || p < 1 || p > 64 || q < 1 || !(ridge >= 0.0) || !isfinite(ridge))
        return cmir__error(CMIR_EINVAL, "cmir_floor_lstsq: bad arguments (n=%lld p=%d q=%d ridge=%g)",
                           (long long)n, p, q, ridge);
    if (!all_finite(X, (size_t)n * p) || !all_finite(Y, (size_t)n * q))
        return cmir__error(CMIR_EINVAL, "cmir_floor_lstsq: non-finite values");
    const int64_t m = n + (ridge > 0.0 ? p : 0);
    double *A = cmir__calloc((size_t)m * p, sizeof(double)), *R = cmir__calloc((size_t)m * q, sizeof(double));
    if (!A || !R) {
        cmir__free(A);
        cmir__free(R);
        return CMIR_ENOMEM;
    }
    memcpy(A, X, sizeof(double) * (size_t)n * p);
    memcpy(R, Y, sizeof(double) * (size_t)n * q);
    for (int k = 0; ridge > 0.0 && k < p; k++)
        A[(size_t)(n + k) * p + k] = sqrt(ridge);
    double scale = 0.0; /* the largest column norm: the rank tolerance's unit */
    for (int c = 0; c < p; c++) {
        double s = 0.0;
        for (int64_t i = 0; i < m; i++)
            s += A[(size_t)i * p + c] * A[(size_t)i * p + c];
        scale = sqrt(s) > scale ? sqrt(s) : scale;
    }
    int col[64], r = 0;
    for (int c = 0; c < p && r < m; c++) {
        /* Householder reflection of rows r..m-1 that zeroes column c below row r */
        double s = 0.0;
        for (int64_t i = r; i < m; i++)
            s += A[(size_t)i * p + c] * A[(size_t)i * p + c];
        double nrm = sqrt(s);
        if (nrm <= 1e-12 * scale || nrm == 0.0)
            continue; /* dependent on the columns before: coefficient 0 */
        double a0 = A[(size_t)r * p + c], alpha = a0 > 0 ? -nrm : nrm;
        double v0 = a0 - alpha, vnorm2 = s - a0 * a0 + v0 * v0;
        /* v = (v0, A[r+1..m-1, c]); H = I - 2 v v^T / (v^T v) */
        for (int j = c + 1; j < p; j++) { /* column c itself is set below */
            double dot = v0 * A[(size_t)r * p + j];
            for (int64_t i = r + 1; i < m; i++)
                dot += A[(size_t)i * p + c] * A[(size_t)i * p + j];
            double f = 2.0 * dot / vnorm2;
            A[(size_t)r * p + j] -= f * v0;
            for (int64_t i = r + 1; i < m; i++)
                A[(size_t)i * p + j] -= f * A[(size_t)i * p + c];
        }
        for (int j = 0; j < q; j++) {
            double dot = v0 * R[(size_t)r * q + j];
            for (int64_t i = r + 1; i < m; i++)
                dot += A[(size_t)i * p + c] * R[(size_t)i * q + j];
            double f = 2.0 * dot / vnorm2;
            R[(size_t)r * q + j] -= f * v0;
            for (int64_t i = r + 1; i < m; i++)
                R[(size_t)i * q + j] -= f * A[(size_t)i * p + c];
        }
        A[(size_t)r * p + c] = alpha;
        for (int64_t i = r + 1; i < m; i++)
            A[(size_t)i * p + c] = 0.0;
        col[r++] = c;
    }
    back_substitute(A, R, p, q, col, r, B);
    cmir__free(A);
    cmir__free(R);
    return 0;
}

/* Mean and deviation of column c of v (n x w) over its n rows. */
static void column_stats(const double *v, int64_t n, int w, int c, double *mean, double *sd)
{
    double s = 0.0, ss = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += v[(size_t)i * w + c];
    double mu = s / (double)n;
    for (int64_t i = 0; i < n; i++) {
        double e = v[(size_t)i * w + c] - mu;
        ss += e * e;
    }
    *mean = mu;
    *sd = sqrt(ss / (double)n);
}

/* The standardisation of w features from the training rows: value ->
 * (value - mu) / sd, sd 1 where the feature is constant or p.standardise
 * is 0 (then mu is 0 too). */
static void fit_scaler(const double *v, int64_t n, int w, int standardise, double *mu, double *sd)
{
    for (int c = 0; c < w; c++) {
        mu[c] = 0.0;
        sd[c] = 1.0;
        if (!standardise)
            continue;
        column_stats(v, n, w, c, &mu[c], &sd[c]);
        if (!(sd[c] > 0.0))
            sd[c] = 1.0;
    }
}

static int check_tiles(const cmir_floor_tiles *t, int nb, const char *which)
{
    if (!t || t->n < 0 || (t->n > 0 && (!t->pan || !t->ms)))
        return cmir__error(CMIR_EINVAL, "cmir_floor_eval: %s tiles missing", which);
    if (!all_finite(t->pan, (size_t)t->n * 2) || !all_finite(t->ms, (size_t)t->n * nb))
        return cmir__error(CMIR_EINVAL, "cmir_floor_eval: non-finite statistics among the %s tiles", which);
    return 0;
}

/* Fits the map on the training tiles and writes the test tiles' features:
 * pan_ms (ne x nb, predicted standardised band means), ms (ne x nb), pan
 * (ne x 2). coef: 3 x nb. */
static int features(const cmir_floor_tiles *tr, const cmir_floor_tiles *te, int nb, cmir_floor_params p,
                    double *coef, float *pan_ms, float *ms, float *pan)
{
    double pmu[2], psd[2], *mmu = cmir__malloc(sizeof(double) * 2 * (size_t)nb), *msd = mmu ? mmu + nb : NULL;
    double *X = cmir__malloc(sizeof(double) * 3 * (size_t)tr->n);
    double *Y = cmir__malloc(sizeof(double) * (size_t)nb * (size_t)tr->n);
    int rc = (!mmu || !X || !Y) ? CMIR_ENOMEM : 0;
    if (!rc) {
        fit_scaler(tr->pan, tr->n, 2, p.standardise, pmu, psd);
        fit_scaler(tr->ms, tr->n, nb, p.standardise, mmu, msd);
        for (int64_t i = 0; i < tr->n; i++) {
            for (int c = 0; c < 2; c++)
                X[(size_t)i * 3 + c] = (tr->pan[(size_t)i * 2 + c] - pmu[c]) / psd[c];
            X[(size_t)i * 3 + 2] = 1.0;
            for (int b = 0; b < nb; b++)
                Y[(size_t)i * nb + b] = (tr->ms[(size_t)i * nb + b] - mmu[b]) / msd[b];
        }
        rc = cmir_floor_lstsq(X, tr->n, 3, Y, nb, p.ridge, coef);
    }
    for (int64_t i = 0; !rc && i < te->n; i++) {
        double z[3] = {(te->pan[(size_t)i * 2] - pmu[0]) / psd[0], (te->pan[(size_t)i * 2 + 1] - pmu[1]) / psd[1],
                       1.0};
        pan[(size_t)i * 2] = (float)z[0];
        pan[(size_t)i * 2 + 1] = (float)z[1];
        for (int b = 0; b < nb; b++) {
            pan_ms[(size_t)i * nb + b] =
                (float)(z[0] * coef[b] + z[1] * coef[(size_t)nb + b] + z[2] * coef[2 * (size_t)nb + b]);
            ms[(size_t)i * nb + b] = (float)((te->ms[(size_t)i * nb + b] - mmu[b]) / msd[b]);
        }
    }
    cmir__free(mmu);
    cmir__free(X);
    cmir__free(Y);
    return rc;
}

int cmir_floor_eval(cmir_exec *ex, const cmir_floor_tiles *train, const cmir_floor_tiles *test, int n_bands,
                    const cmir_metrics_labels *labels, cmir_metrics_params mp, cmir_floor_params p,
                    cmir_progress_fn progress, void *user, cmir_metrics_result out[4], double *map_at,
                    double *p_at, double *coef)
{
    int rc = cmir_floor_check_params(p);
    if (rc)
        return rc;
    if ((rc = cmir_metrics_check_params(mp)))
        return rc;
    if (!labels || !out || n_bands < 1 || n_bands > 1 << 20)
        return cmir__error(CMIR_EINVAL, "cmir_floor_eval: NULL argument or n_bands %d outside 1..2^20", n_bands);
    if ((rc = check_tiles(train, n_bands, "training")) || (rc = check_tiles(test, n_bands, "test")))
        return rc;
    if (train->n < 2)
        return cmir__error(CMIR_EINVAL, "cmir_floor_eval: %lld training tiles: need at least 2 to fit on",
                           (long long)train->n);
    const int64_t ne = test->n ? test->n : 1;
    double cf[3 * 64], *C = n_bands <= 64 ? cf : cmir__malloc(sizeof(double) * 3 * (size_t)n_bands);
    float *pan_ms = cmir__malloc(sizeof(float) * (size_t)ne * n_bands);
    float *ms = cmir__malloc(sizeof(float) * (size_t)ne * n_bands);
    float *pan = cmir__malloc(sizeof(float) * (size_t)ne * 2);
    if (!C || !pan_ms || !ms || !pan)
        rc = CMIR_ENOMEM;
    if (!rc)
        rc = features(train, test, n_bands, p, C, pan_ms, ms, pan);
    if (!rc && coef)
        memcpy(coef, C, sizeof(double) * 3 * (size_t)n_bands);
    const float *Q[4] = {pan_ms, ms, pan, ms}, *D[4] = {ms, pan_ms, pan, ms};
    const int d[4] = {n_bands, n_bands, 2, n_bands};
    cmir_metrics_result res[4];
    for (int k = 0; !rc && k < 4; k++) {
        mp.self_exclude = k >= 2;
        rc = cmir_metrics_eval(ex, Q[k], test->n, D[k], test->n, d[k], labels, mp, progress, user, &res[k],
                               map_at ? map_at + (size_t)k * mp.n_cutoffs : NULL,
                               p_at ? p_at + (size_t)k * mp.n_cutoffs : NULL);
    }
    if (!rc)
        memcpy(out, res, sizeof res);
    if (C != cf)
        cmir__free(C);
    cmir__free(pan_ms);
    cmir__free(ms);
    cmir__free(pan);
    return rc;
}
