/* bench_floor: the training-free floor of cross-modal retrieval on a
 * model's held-out tiles, for bench/realdata.sh (cmir_eval may print its
 * own; this keeps the benchmark's figures from one definition): a
 * least-squares map from a PAN tile's mean and deviation to the MS band
 * means, fitted on the archive's labelled tiles the model did not hold out
 * for test; PAN->MS ranks the MS tiles' band means by distance to the map
 * of the query, MS->PAN the reverse. Class-level whole-database mAP. */
#include "cmir/archive.h"
#include "cmir/metrics.h"
#include "cmir/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "bench_floor: %s: %s\n", what, cmir_last_error());
    return 1;
}

/* Mean and deviation of the finite values of a PAN tile; band means of an MS tile. */
static void pan_stats(const float *t, int n, double *mu, double *sd)
{
    double s = 0, s2 = 0;
    int c = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(t[i])) {
            s += t[i];
            s2 += (double)t[i] * t[i];
            c++;
        }
    *mu = c ? s / c : 0;
    *sd = c ? sqrt(fmax(0, s2 / c - *mu * *mu)) : 0;
}

/* Solves the 3x3 system A x = b (Gaussian elimination, partial pivoting). */
static void solve3(double A[3][3], double *b)
{
    for (int c = 0; c < 3; c++) {
        int p = c;
        for (int r = c + 1; r < 3; r++)
            if (fabs(A[r][c]) > fabs(A[p][c]))
                p = r;
        for (int k = 0; k < 3; k++) {
            double t = A[c][k]; A[c][k] = A[p][k]; A[p][k] = t;
        }
        double t = b[c]; b[c] = b[p]; b[p] = t;
        double d = fabs(A[c][c]) > 1e-12 ? A[c][c] : 1e-12;
        for (int r = 0; r < 3; r++)
            if (r != c) {
                double f = A[r][c] / d;
                for (int k = 0; k < 3; k++)
                    A[r][k] -= f * A[c][k];
                b[r] -= f * b[c];
            }
    }
    for (int c = 0; c < 3; c++)
        b[c] /= fabs(A[c][c]) > 1e-12 ? A[c][c] : 1e-12;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_floor MODEL.mat ARCHIVE.mat\n");
        return 2;
    }
    cmir_model *m = cmir_model_load(argv[1]);
    cmir_archive *a = m ? cmir_archive_open(argv[2]) : NULL;
    if (!m || !a)
        return fail(m ? argv[2] : argv[1]);
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    int64_t nt, ntiles, N = ai->n_tiles;
    const int64_t *test = cmir_model_test_tiles(m, &nt, &ntiles);
    int np = ai->pan_h * ai->pan_w * ai->pan_bands, nm = ai->ms_h * ai->ms_w, B = ai->ms_bands;
    float *pt = malloc(sizeof(float) * (size_t)np), *mt = malloc(sizeof(float) * (size_t)nm * B);
    double *X = malloc(sizeof(double) * 2 * (size_t)N), *Y = calloc((size_t)N * B, sizeof(double));
    uint8_t *is_test = calloc((size_t)N, 1);
    float *Qp = malloc(sizeof(float) * (size_t)nt * B), *Dm = malloc(sizeof(float) * (size_t)nt * B);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)(nt ? nt : 1));
    if (!pt || !mt || !X || !Y || !is_test || !Qp || !Dm || !lab || ntiles != N) {
        fprintf(stderr, "bench_floor: out of memory, or the archive is not the model's\n");
        return 1;
    }
    for (int64_t k = 0; k < nt; k++)
        is_test[test[k]] = 1;
    double A[3][3] = {{0}}, (*rhs)[3] = calloc((size_t)B, sizeof *rhs);
    for (int64_t i = 0; i < N; i++) {
        if (cmir_archive_read_tile(a, CMIR_PAN, i, pt) || cmir_archive_read_tile(a, CMIR_MS, i, mt))
            return fail(argv[2]);
        pan_stats(pt, np, &X[2 * i], &X[2 * i + 1]);
        for (int p = 0; p < nm; p++)
            for (int b = 0; b < B; b++)
                Y[i * B + b] += isfinite(mt[p * B + b]) ? mt[p * B + b] / nm : 0;
        if (is_test[i] || cmir_archive_label(a, i) <= 0)
            continue;
        double x[3] = {1, X[2 * i], X[2 * i + 1]};
        for (int r = 0; r < 3; r++) {
            for (int c = 0; c < 3; c++)
                A[r][c] += x[r] * x[c];
            for (int b = 0; b < B; b++)
                rhs[b][r] += x[r] * Y[i * B + b];
        }
    }
    for (int b = 0; b < B; b++) {
        double M[3][3];
        memcpy(M, A, sizeof M);
        solve3(M, rhs[b]);
    }
    for (int64_t k = 0; k < nt; k++) {
        int64_t i = test[k];
        lab[k] = cmir_archive_label(a, i);
        for (int b = 0; b < B; b++) {
            Qp[k * B + b] = (float)(rhs[b][0] + rhs[b][1] * X[2 * i] + rhs[b][2] * X[2 * i + 1]);
            Dm[k * B + b] = (float)Y[i * B + b];
        }
    }
    cmir_metrics_labels L = {lab, lab, NULL, NULL, ai->n_classes};
    cmir_metrics_params p = cmir_metrics_default_params();
    cmir_metrics_result r1, r2;
    if (cmir_metrics_eval(NULL, Qp, nt, Dm, nt, B, &L, p, NULL, NULL, &r1, NULL, NULL) ||
        cmir_metrics_eval(NULL, Dm, nt, Qp, nt, B, &L, p, NULL, NULL, &r2, NULL, NULL))
        return fail("metrics");
    printf("floor PAN->MS %.4f MS->PAN %.4f (%lld held-out tiles)\n", r1.map, r2.map, (long long)nt);
    cmir_archive_close(a);
    cmir_model_free(m);
    free(pt); free(mt); free(X); free(Y); free(is_test); free(Qp); free(Dm); free(lab); free(rhs);
    return 0;
}
