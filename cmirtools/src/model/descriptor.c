/* The tile descriptor of the stage-1 features: seven statistics per band of
 * a normalised tile (mean, deviation, 10/50/90 % quantiles, mean absolute
 * difference of neighbours at 1 and at 2 pixels' scale), written over the
 * last features of the CNN's 128, and the weight of the CNN's features. */
#include "model_internal.h"

#include <math.h>
#include <string.h>

#define HIST_BINS 256

int cmir__model_desc_dims(const cmir_model_info *i, int k)
{
    int h = k ? i->ms_h : i->pan_h, w = k ? i->ms_w : i->pan_w, b = k ? i->ms_bands : i->pan_bands;
    if (!i->descriptor || i->scenario != CMIR_SCENARIO_PAN_MS || h < 4 || w < 4 ||
        CMIR__DESC_STATS * b > CMIR_FEAT_DIM / 2)
        return 0;
    return CMIR__DESC_STATS * b;
}

/* Quantiles q[0..nq) of band c (stride b) of px values in [lo, hi] from a
 * histogram, linear within a bin: one pass, no copy. */
static void quantiles(const float *x, int px, int b, int c, float lo, float hi, const double *q, int nq,
                      float *out)
{
    int hist[HIST_BINS] = {0};
    double span = hi > lo ? (double)hi - lo : 1.0, scale = HIST_BINS / span;
    for (int p = 0; p < px; p++) {
        int j = (int)((x[(size_t)p * b + c] - lo) * scale);
        hist[j < 0 ? 0 : j >= HIST_BINS ? HIST_BINS - 1 : j]++;
    }
    for (int t = 0; t < nq; t++) {
        double want = q[t] * px, cum = 0;
        int j = 0;
        while (j < HIST_BINS - 1 && cum + hist[j] < want)
            cum += hist[j++];
        double within = hist[j] ? (want - cum) / hist[j] : 0.5;
        out[t] = (float)(lo + (j + within) / scale);
    }
}

/* Mean |difference| of horizontal and vertical neighbours, on the tile
 * (s = 1) or on its 2 x 2 block means (s = 2; blocks do not overlap). */
static float roughness(const float *x, int h, int w, int b, int c, int s)
{
#define PX(y, xx) x[((size_t)(y) * w + (xx)) * b + c]
#define AT(by, bx) (s == 1 ? PX(by, bx) \
                   : 0.25f * (PX(2 * (by), 2 * (bx)) + PX(2 * (by), 2 * (bx) + 1) + \
                              PX(2 * (by) + 1, 2 * (bx)) + PX(2 * (by) + 1, 2 * (bx) + 1)))
    double sum = 0;
    int64_t n = 0;
    int ny = h / s, nx = w / s;
    for (int y = 0; y < ny; y++)
        for (int xx = 0; xx < nx; xx++) {
            float v = AT(y, xx);
            if (xx + 1 < nx) {
                sum += fabsf(AT(y, xx + 1) - v);
                n++;
            }
            if (y + 1 < ny) {
                sum += fabsf(AT(y + 1, xx) - v);
                n++;
            }
        }
#undef AT
#undef PX
    return n ? (float)(sum / (double)n) : 0.0f;
}

void cmir__model_describe(const cmir_model *m, int k, const float *x, int n, float *Z)
{
    const cmir_model_info *i = &m->info;
    int D = cmir__model_desc_dims(i, k);
    if (!D)
        return;
    int h = k ? i->ms_h : i->pan_h, w = k ? i->ms_w : i->pan_w, b = k ? i->ms_bands : i->pan_bands;
    int px = h * w;
    static const double q[3] = {0.1, 0.5, 0.9};
    for (int t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * px * b;
        float *f = Z + (size_t)t * CMIR_FEAT_DIM + CMIR_FEAT_DIM - D;
        for (int c = 0; c < b; c++, f += CMIR__DESC_STATS) {
            double s = 0, s2 = 0;
            float lo = xt[c], hi = xt[c];
            for (int p = 0; p < px; p++) {
                float v = xt[(size_t)p * b + c];
                s += v;
                s2 += (double)v * v;
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
            double mu = s / px, var = s2 / px - mu * mu;
            f[0] = (float)mu;
            f[1] = (float)sqrt(var > 0 ? var : 0);
            quantiles(xt, px, b, c, lo, hi, q, 3, f + 2);
            f[5] = roughness(xt, h, w, b, c, 1);
            f[6] = roughness(xt, h, w, b, c, 2);
        }
    }
}
