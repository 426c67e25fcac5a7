/* Naive references for the training-free floor tests (test_floor.c,
 * test_eval.c): least squares by the normal equations with Gauss-Jordan
 * elimination, and the four floors' mAP and 11-point PR by sorting every
 * distance, written from the definitions in cmir/metrics.h. */
#ifndef CMIR_FLOOR_NAIVE_H
#define CMIR_FLOOR_NAIVE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* B (p x q) solving (X^T X + ridge I) B = X^T Y; p <= 16. */
static void fn_normal_eq(const double *X, int64_t n, int p, const double *Y, int q, double ridge, double *B)
{
    double A[16][16 + 64];
    const int w = p + q;
    for (int i = 0; i < p; i++)
        for (int j = 0; j < w; j++) {
            double s = 0;
            for (int64_t r = 0; r < n; r++)
                s += X[r * p + i] * (j < p ? X[r * p + j] : Y[r * q + j - p]);
            A[i][j] = s + (j == i ? ridge : 0);
        }
    for (int c = 0; c < p; c++) {
        int piv = c;
        for (int i = c + 1; i < p; i++)
            if (fabs(A[i][c]) > fabs(A[piv][c]))
                piv = i;
        for (int j = 0; j < w; j++) {
            double t = A[c][j]; A[c][j] = A[piv][j]; A[piv][j] = t;
        }
        for (int i = 0; i < p; i++) {
            if (i == c)
                continue;
            double f = A[i][c] / A[c][c];
            for (int j = 0; j < w; j++)
                A[i][j] -= f * A[c][j];
        }
    }
    for (int i = 0; i < p; i++)
        for (int j = 0; j < q; j++)
            B[i * q + j] = A[i][p + j] / A[i][i];
}

typedef struct fn_item {
    double d;
    int64_t id;
} fn_item;

static int fn_cmp(const void *a, const void *b)
{
    const fn_item *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* mAP and 11-point PR of queries Q against database D (n x d each, float),
 * classes cls (0 = unlabelled), the query itself left out when self. */
static void fn_retrieval(const float *Q, const float *D, int64_t n, int d, const int32_t *cls, int self, double *map,
                         double pr[11])
{
    fn_item *h = malloc(sizeof(fn_item) * (size_t)n);
    int64_t ne = 0;
    *map = 0;
    for (int l = 0; l < 11; l++)
        pr[l] = 0;
    for (int64_t q = 0; q < n; q++) {
        int64_t m = 0, R = 0;
        for (int64_t x = 0; x < n; x++) {
            if (self && x == q)
                continue;
            double s = 0;
            for (int j = 0; j < d; j++) {
                double t = (double)Q[q * d + j] - (double)D[x * d + j];
                s += t * t;
            }
            h[m].d = s;
            h[m++].id = x;
            R += cls[q] > 0 && cls[x] == cls[q];
        }
        if (cls[q] <= 0 || R == 0)
            continue;
        ne++;
        qsort(h, (size_t)m, sizeof *h, fn_cmp);
        double ap = 0, best[11] = {0};
        int64_t hits = 0;
        for (int64_t i = 0; i < m; i++)
            if (cls[h[i].id] == cls[q]) {
                hits++;
                double P = (double)hits / (double)(i + 1);
                ap += P;
                for (int l = 0; l < 11; l++)
                    if (10 * hits >= l * R && P > best[l])
                        best[l] = P;
            }
        *map += ap / (double)R;
        for (int l = 0; l < 11; l++)
            pr[l] += best[l];
    }
    *map /= (double)ne;
    for (int l = 0; l < 11; l++)
        pr[l] /= (double)ne;
    free(h);
}

static void fn_scaler(const double *v, int64_t n, int w, int c, double *mu, double *sd)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        s += v[i * w + c];
    *mu = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        ss += (v[i * w + c] - *mu) * (v[i * w + c] - *mu);
    *sd = sqrt(ss / (double)n);
    if (*sd == 0)
        *sd = 1;
}

/* The four floors (PAN->MS, MS->PAN, PAN->PAN, MS->MS) from per-tile
 * statistics: training tiles (tp: nt x 2, tm: nt x B), test tiles (ep, em,
 * classes cls); standardised by training statistics. B <= 64. */
static void fn_floors(const double *tp, const double *tm, int64_t nt, const double *ep, const double *em,
                      const int32_t *cls, int64_t ne, int B, double map[4], double pr[4][11])
{
    double pmu[2], psd[2], mmu[64], msd[64], coef[3 * 64];
    for (int c = 0; c < 2; c++)
        fn_scaler(tp, nt, 2, c, &pmu[c], &psd[c]);
    for (int b = 0; b < B; b++)
        fn_scaler(tm, nt, B, b, &mmu[b], &msd[b]);
    double *X = malloc(sizeof(double) * 3 * (size_t)nt), *Y = malloc(sizeof(double) * (size_t)B * nt);
    for (int64_t i = 0; i < nt; i++) {
        X[i * 3] = (tp[i * 2] - pmu[0]) / psd[0];
        X[i * 3 + 1] = (tp[i * 2 + 1] - pmu[1]) / psd[1];
        X[i * 3 + 2] = 1;
        for (int b = 0; b < B; b++)
            Y[i * B + b] = (tm[i * B + b] - mmu[b]) / msd[b];
    }
    fn_normal_eq(X, nt, 3, Y, B, 0, coef);
    float *pm = malloc(sizeof(float) * (size_t)B * ne), *ms = malloc(sizeof(float) * (size_t)B * ne);
    float *pn = malloc(sizeof(float) * 2 * (size_t)ne);
    for (int64_t i = 0; i < ne; i++) {
        double z0 = (ep[i * 2] - pmu[0]) / psd[0], z1 = (ep[i * 2 + 1] - pmu[1]) / psd[1];
        pn[i * 2] = (float)z0;
        pn[i * 2 + 1] = (float)z1;
        for (int b = 0; b < B; b++) {
            pm[i * B + b] = (float)(z0 * coef[b] + z1 * coef[B + b] + coef[2 * B + b]);
            ms[i * B + b] = (float)((em[i * B + b] - mmu[b]) / msd[b]);
        }
    }
    fn_retrieval(pm, ms, ne, B, cls, 0, &map[0], pr[0]);
    fn_retrieval(ms, pm, ne, B, cls, 0, &map[1], pr[1]);
    fn_retrieval(pn, pn, ne, 2, cls, 1, &map[2], pr[2]);
    fn_retrieval(ms, ms, ne, B, cls, 1, &map[3], pr[3]);
    free(X); free(Y); free(pm); free(ms); free(pn);
}

#endif
