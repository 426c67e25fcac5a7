/* Sensor model shared by both modes: the Gaussian MTF kernel, separable
 * blur + decimation with nodata propagation (Wald's protocol), normalised
 * PAN spectral weights and the thread count. */
#include "synth_internal.h"

#include <string.h>
#include <unistd.h>

double cmir__sy_mtf_sigma(double mtf, int ratio)
{
    /* Gaussian MTF exp(-2 pi^2 sigma^2 f^2) equals mtf at f = 1/(2 ratio)
     * cycles per fine pixel. */
    double f = 1.0 / (2.0 * ratio);
    return sqrt(-log(mtf) / (2.0 * 3.14159265358979 * 3.14159265358979 * f * f));
}

void cmir__sy_pan_weights(const cmir_synth_params *p, float w[4])
{
    double s = p->pan_weights[0] + p->pan_weights[1] + p->pan_weights[2] + p->pan_weights[3];
    for (int b = 0; b < 4; b++)
        w[b] = (float)(p->pan_weights[b] / s);
}

int cmir__sy_threads(const cmir_synth_params *p)
{
    int n = p->threads;
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    return n > 64 ? 64 : n;
}

static inline int mirror(int i, int n)
{
    while (i < 0 || i >= n) {
        if (i < 0)
            i = -i - 1;
        if (i >= n)
            i = 2 * n - i - 1;
    }
    return i;
}

typedef struct degrade_job {
    const float *src;
    const uint8_t *valid;
    float *tmp, *dst;
    uint8_t *tvalid, *dvalid;
    int w, h, ow, oh, ratio, n, lo;
    const float *k;
    int pass;
} degrade_job;

/* Pass 0: rows of src -> tmp (h x ow). Pass 1: columns of tmp -> dst. */
static int degrade_part(int i, int n, void *user)
{
    degrade_job *j = user;
    size_t a, b;
    if (j->pass == 0) {
        cmir__split((size_t)j->h, n, i, &a, &b);
        for (size_t y = a; y < b; y++) {
            const float *s = j->src + y * (size_t)j->w;
            const uint8_t *sv = j->valid ? j->valid + y * (size_t)j->w : NULL;
            for (int ox = 0; ox < j->ow; ox++) {
                int x0 = ox * j->ratio + j->lo;
                double acc = 0.0;
                int ok = 1;
                for (int t = 0; t < j->n; t++) {
                    int x = mirror(x0 + t, j->w);
                    acc += (double)j->k[t] * s[x];
                    if (sv && !sv[x])
                        ok = 0;
                }
                j->tmp[y * (size_t)j->ow + (size_t)ox] = (float)acc;
                if (j->tvalid)
                    j->tvalid[y * (size_t)j->ow + (size_t)ox] = (uint8_t)ok;
            }
        }
    } else {
        cmir__split((size_t)j->oh, n, i, &a, &b);
        for (size_t oy = a; oy < b; oy++) {
            int y0 = (int)oy * j->ratio + j->lo;
            for (int ox = 0; ox < j->ow; ox++) {
                double acc = 0.0;
                int ok = 1;
                for (int t = 0; t < j->n; t++) {
                    size_t at = (size_t)mirror(y0 + t, j->h) * (size_t)j->ow + (size_t)ox;
                    acc += (double)j->k[t] * j->tmp[at];
                    if (j->tvalid && !j->tvalid[at])
                        ok = 0;
                }
                j->dst[oy * (size_t)j->ow + (size_t)ox] = (float)acc;
                if (j->dvalid)
                    j->dvalid[oy * (size_t)j->ow + (size_t)ox] = (uint8_t)ok;
            }
        }
    }
    return 0;
}

int cmir__sy_degrade(const float *src, const uint8_t *valid, int w, int h, int ratio,
                     double sigma, int n_threads, float *dst, uint8_t *dst_valid)
{
    /* Output pixel o covers fine pixels [o r, o r + r); its centre is at
     * o r + r/2 in pixel-edge coordinates, fine pixel j's at j + 1/2. */
    double c = 0.5 * ratio;
    int rad = (int)ceil(3.0 * sigma);
    if (rad < (ratio + 1) / 2)
        rad = (ratio + 1) / 2;
    int lo = (int)floor(c - rad), hi = (int)ceil(c + rad) - 1;
    int n = hi - lo + 1;
    degrade_job j = {0};
    float *k = cmir__malloc(sizeof(float) * (size_t)n);
    j.ow = w / ratio;
    j.oh = h / ratio;
    j.tmp = cmir__malloc(sizeof(float) * (size_t)h * (size_t)j.ow);
    if (valid)
        j.tvalid = cmir__malloc((size_t)h * (size_t)j.ow);
    if (!k || !j.tmp || (valid && !j.tvalid)) {
        cmir__free(k);
        cmir__free(j.tmp);
        cmir__free(j.tvalid);
        return CMIR_ENOMEM;
    }
    double sum = 0.0;
    for (int t = 0; t < n; t++) {
        double d = (lo + t + 0.5 - c) / sigma;
        sum += (k[t] = (float)exp(-0.5 * d * d));
    }
    for (int t = 0; t < n; t++)
        k[t] = (float)(k[t] / sum);
    j.src = src;
    j.valid = valid;
    j.dst = dst;
    j.dvalid = valid ? dst_valid : NULL;
    j.w = w;
    j.h = h;
    j.ratio = ratio;
    j.n = n;
    j.lo = lo;
    j.k = k;
    j.pass = 0;
    cmir__parallel(n_threads, degrade_part, &j);
    j.pass = 1;
    cmir__parallel(n_threads, degrade_part, &j);
    cmir__free(k);
    cmir__free(j.tmp);
    cmir__free(j.tvalid);
    return 0;
}
