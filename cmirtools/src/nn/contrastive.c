/* The cross-modal contrastive pairing loss of stage 0 (pretraining on
 * unlabelled PAN/MS pairs): symmetric InfoNCE over a batch of L2-normalised
 * features, each row's own pair the positive, every other row a negative. */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

#define NORM_EPS 1e-6

/* Softmax cross-entropy of row i of S (B x B, S[i][j] = u_i . v_j / tau)
 * against column i, for rows (by_row) or columns; adds w * dS. */
static double xent_diag(const double *S, int64_t B, int by_row, double w, double *dS)
{
    double total = 0;
    for (int64_t i = 0; i < B; i++) {
        double mx = -HUGE_VAL;
        for (int64_t j = 0; j < B; j++) {
            double s = by_row ? S[i * B + j] : S[j * B + i];
            mx = s > mx ? s : mx;
        }
        double se = 0;
        for (int64_t j = 0; j < B; j++)
            se += exp((by_row ? S[i * B + j] : S[j * B + i]) - mx);
        double lse = log(se) + mx;
        total += lse - S[i * B + i];
        for (int64_t j = 0; j < B; j++) {
            int64_t at = by_row ? i * B + j : j * B + i;
            dS[at] += w * (exp(S[at] - lse) - (i == j));
        }
    }
    return total;
}

/* Gradient through u = z / |z| for one row: dz = (du - u (u . du)) / |z|. */
static void unnormalise(const double *u, const double *du, double nrm, int64_t D, float scale,
                        float *dz)
{
    double ud = 0;
    for (int64_t d = 0; d < D; d++)
        ud += u[d] * du[d];
    for (int64_t d = 0; d < D; d++)
        dz[d] += (float)(scale * (du[d] - u[d] * ud) / nrm);
}

int cmir_infonce(const cmir_tensor *za, const cmir_tensor *zb, float tau, float scale, float *loss,
                 cmir_tensor *dza, cmir_tensor *dzb)
{
    const char *fn = "cmir_infonce";
    int rc;
    if ((rc = cmir__check_tensor(za, 2, fn, "za")) || (rc = cmir__check_tensor(zb, 2, fn, "zb")) ||
        (rc = cmir__check_same(za, zb, fn, "za", "zb")))
        return rc;
    if ((dza && ((rc = cmir__check_tensor(dza, 2, fn, "dza")) || (rc = cmir__check_same(za, dza, fn, "za", "dza")))) ||
        (dzb && ((rc = cmir__check_tensor(dzb, 2, fn, "dzb")) || (rc = cmir__check_same(zb, dzb, fn, "zb", "dzb")))))
        return rc;
    if (!(tau > 0))
        return cmir__error(CMIR_EINVAL, "%s: tau must be > 0, got %g", fn, (double)tau);
    const int64_t B = za->shape[0], D = za->shape[1];
    if (B < 2 || D < 1)
        return cmir__error(CMIR_EINVAL, "%s: needs at least 2 rows, got %lld", fn, (long long)B);
    double *U = cmir__malloc(sizeof(double) * (size_t)(2 * B * D + 2 * B + 2 * B * B + 2 * D));
    if (!U)
        return CMIR_ENOMEM;
    double *V = U + B * D, *na = V + B * D, *nb = na + B, *S = nb + B, *dS = S + B * B, *du = dS + B * B,
           *dv = du + D;
    for (int64_t i = 0; i < B; i++) {
        double sa = 0, sb = 0;
        for (int64_t d = 0; d < D; d++) {
            sa += (double)za->data[i * D + d] * za->data[i * D + d];
            sb += (double)zb->data[i * D + d] * zb->data[i * D + d];
        }
        na[i] = sqrt(sa + NORM_EPS);
        nb[i] = sqrt(sb + NORM_EPS);
        for (int64_t d = 0; d < D; d++) {
            U[i * D + d] = za->data[i * D + d] / na[i];
            V[i * D + d] = zb->data[i * D + d] / nb[i];
        }
    }
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < B; j++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++)
                s += U[i * D + d] * V[j * D + d];
            S[i * B + j] = s / tau;
        }
    memset(dS, 0, sizeof(double) * (size_t)(B * B));
    double w = 0.5 / (double)B; /* mean over rows, mean of the two directions */
    double total = xent_diag(S, B, 1, w, dS) + xent_diag(S, B, 0, w, dS);
    if (loss)
        *loss = (float)(scale * 0.5 * total / (double)B);
    for (int64_t i = 0; i < B && (dza || dzb); i++) {
        /* dL/dU_i = sum_j dS_ij V_j / tau; dL/dV_i = sum_j dS_ji U_j / tau */
        for (int64_t d = 0; d < D; d++) {
            double a = 0, b = 0;
            for (int64_t j = 0; j < B; j++) {
                a += dS[i * B + j] * V[j * D + d];
                b += dS[j * B + i] * U[j * D + d];
            }
            du[d] = a / tau;
            dv[d] = b / tau;
        }
        if (dza)
            unnormalise(U + i * D, du, na[i], D, scale, dza->data + i * D);
        if (dzb)
            unnormalise(V + i * D, dv, nb[i], D, scale, dzb->data + i * D);
    }
    cmir__free(U);
    return 0;
}
