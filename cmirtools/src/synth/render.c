/* DSRSID-like scene rendering: the ground reflectance field (oversampled,
 * in parallel row bands), cloud blending and illumination, then the sensor
 * (PAN weighting, MS MTF blur + decimation, noise, uint8 quantisation) and
 * the class rasters, with the scene's geotransforms. */
#include "synth_internal.h"

#include <string.h>

#define CHUNK_ROWS 32

typedef struct rjob {
    const sy_layout *L;
    const cmir_synth_params *p;
    int w, h, y0, y1;
    float *rho;     /* 4 x h x w */
    uint8_t *cls;   /* h x w */
} rjob;

static int render_part(int i, int n, void *user)
{
    rjob *j = user;
    const sy_layout *L = j->L;
    const double res = j->p->pan_res;
    const int os = j->p->oversample;
    const size_t plane = (size_t)j->w * (size_t)j->h;
    size_t a, b;
    cmir__split((size_t)(j->y1 - j->y0), n, i, &a, &b);
    for (size_t yy = a; yy < b; yy++) {
        int y = j->y0 + (int)yy;
        double py = (y + 0.5) * res;
        for (int x = 0; x < j->w; x++) {
            double px = (x + 0.5) * res;
            sy_hit hit;
            cmir__sy_locate(L, px, py, &hit);
            float acc[4] = {0, 0, 0, 0}, s[4];
            for (int sy = 0; sy < os; sy++)
                for (int sx = 0; sx < os; sx++) {
                    double fx = px + ((sx + 0.5) / os - 0.5) * res;
                    double fy = py + ((sy + 0.5) / os - 0.5) * res;
                    cmir__sy_shade(L, hit.r, fx, fy, hit.border, s);
                    for (int k = 0; k < 4; k++)
                        acc[k] += s[k];
                }
            float inv = 1.0f / (float)(os * os);
            if (hit.cloud_shadow > 0.0f) {
                static const float keep[4] = {0.45f, 0.40f, 0.36f, 0.32f};
                for (int k = 0; k < 4; k++)
                    acc[k] *= 1.0f - hit.cloud_shadow * (1.0f - keep[k]);
            }
            float cc[4] = {0, 0, 0, 0};
            if (hit.cloud > 0.0f)
                cmir__sy_cloud_colour(L, px, py, cc);
            size_t at = (size_t)y * (size_t)j->w + (size_t)x;
            for (int k = 0; k < 4; k++) {
                float g = acc[k] * inv * (1.0f - hit.cloud) + cc[k] * hit.cloud;
                j->rho[k * plane + at] = g * L->scene_gain[k] + L->haze[k];
            }
            j->cls[at] = (uint8_t)hit.r->cls;
        }
    }
    return 0;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Seed of the noise stream of one image row. */
static uint64_t row_seed(const cmir_synth_params *p, int index, int channel, int row)
{
    return mix64(p->seed ^ mix64(((uint64_t)(uint32_t)index << 32) ^
                                 ((uint64_t)(uint32_t)channel << 24) ^ (uint64_t)(uint32_t)row));
}

static inline uint8_t quantise(float dn) { return (uint8_t)(dn <= 0.0f ? 0 : dn >= 255.0f ? 255 : (int)(dn + 0.5f)); }

/* Signal-dependent noise sigma in DN: read-out floor plus shot noise. */
static inline float noise_sigma(double k, float floor_dn, float dn)
{
    return (float)k * sqrtf(floor_dn * floor_dn + 0.012f * (dn > 0 ? dn : 0));
}

static void block_mode(const uint8_t *src, int w, int h, int r, uint8_t *dst)
{
    int ow = w / r, oh = h / r;
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            int cnt[CMIR_SYNTH_NCLASSES + 1] = {0};
            for (int y = oy * r; y < oy * r + r; y++)
                for (int x = ox * r; x < ox * r + r; x++)
                    cnt[src[(size_t)y * (size_t)w + (size_t)x] % (CMIR_SYNTH_NCLASSES + 1)]++;
            int best = 1;
            for (int c = 2; c <= CMIR_SYNTH_NCLASSES; c++)
                if (cnt[c] > cnt[best])
                    best = c;
            dst[(size_t)oy * (size_t)ow + (size_t)ox] = (uint8_t)best;
        }
}

void cmir_synth_scene_free(cmir_synth_scene *s)
{
    if (!s)
        return;
    cmir__free(s->pan);
    cmir__free(s->ms);
    cmir__free(s->cls);
    memset(s, 0, sizeof *s);
}

int cmir_synth_render(const cmir_synth_params *p, int index, cmir_synth_scene *out,
                      cmir_progress_fn progress, void *user)
{
    int rc;
    if (!out)
        return cmir__error(CMIR_EINVAL, "synth: no scene to render into");
    memset(out, 0, sizeof *out);
    if (!p)
        return cmir__error(CMIR_EINVAL, "synth: no parameters");
    if ((rc = cmir_synth_check_params(p)) || (rc = cmir__sy_check_render(p, index)))
        return rc;

    const int w = p->size, h = p->size, r = p->ratio;
    const int ow = w / r, oh = h / r;
    const double res = p->pan_res;
    const size_t plane = (size_t)w * (size_t)h, oplane = (size_t)ow * (size_t)oh;
    const int threads = cmir__sy_threads(p);
    sy_layout L;
    if ((rc = cmir__sy_layout_init(&L, p, index, w * res, h * res)))
        return rc;
    float *rho = cmir__malloc(sizeof(float) * 4 * plane);
    float *msf = cmir__malloc(sizeof(float) * oplane);
    uint8_t *cls_pan = cmir__malloc(plane);
    cmir_rng *g = cmir_rng_new(1);
    out->pan = cmir__malloc(plane);
    out->ms = cmir__malloc(4 * oplane);
    int at_pan = p->class_res == CMIR_SYNTH_CLASS_AT_PAN;
    if (!at_pan)
        out->cls = cmir__malloc(oplane);
    if (!rho || !msf || !cls_pan || !g || !out->pan || !out->ms || (!at_pan && !out->cls)) {
        rc = CMIR_ENOMEM;
        goto done;
    }

    /* Ground, in row chunks so progress (and cancel) comes from here. */
    rjob job = {&L, p, w, h, 0, 0, rho, cls_pan};
    for (int y0 = 0; y0 < h; y0 += CHUNK_ROWS) {
        job.y0 = y0;
        job.y1 = y0 + CHUNK_ROWS < h ? y0 + CHUNK_ROWS : h;
        cmir__parallel(threads, render_part, &job);
        if (progress && progress(0.9 * job.y1 / h, "rendering the ground", user)) {
            rc = cmir__error(CMIR_ECANCEL, "synth: cancelled by the progress callback");
            goto done;
        }
    }

    /* PAN: spectral weighting at full resolution. */
    float wp[4];
    cmir__sy_pan_weights(p, wp);
    for (int y = 0; y < h; y++) {
        cmir_rng_seed(g, row_seed(p, index, 0, y));
        for (int x = 0; x < w; x++) {
            size_t at = (size_t)y * (size_t)w + (size_t)x;
            float v = wp[0] * rho[at] + wp[1] * rho[plane + at] + wp[2] * rho[2 * plane + at] +
                      wp[3] * rho[3 * plane + at];
            float dn = (float)(p->pan_offset + p->pan_gain * v);
            if (p->noise > 0)
                dn += noise_sigma(p->noise, 1.5f, dn) * cmir_rng_normal(g);
            out->pan[at] = quantise(dn);
        }
    }
    /* MS: MTF blur + decimation per band. */
    double sigma = cmir__sy_mtf_sigma(p->mtf, r);
    for (int b = 0; b < 4; b++) {
        if ((rc = cmir__sy_degrade(rho + (size_t)b * plane, NULL, w, h, r, sigma, threads, msf,
                                   NULL)))
            goto done;
        for (int y = 0; y < oh; y++) {
            cmir_rng_seed(g, row_seed(p, index, 1 + b, y));
            for (int x = 0; x < ow; x++) {
                size_t at = (size_t)y * (size_t)ow + (size_t)x;
                float dn = (float)(p->ms_offset[b] + p->ms_gain[b] * msf[at]);
                if (p->noise > 0)
                    dn += noise_sigma(p->noise, 1.2f, dn) * cmir_rng_normal(g);
                out->ms[(size_t)b * oplane + at] = quantise(dn);
            }
        }
        if (progress && progress(0.9 + 0.025 * (b + 1), "sensor model", user)) {
            rc = cmir__error(CMIR_ECANCEL, "synth: cancelled by the progress callback");
            goto done;
        }
    }
    /* Classes. */
    if (at_pan) {
        out->cls = cls_pan;
        cls_pan = NULL;
        out->class_w = w;
        out->class_h = h;
    } else {
        block_mode(cls_pan, w, h, r, out->cls);
        out->class_w = ow;
        out->class_h = oh;
    }
    out->index = index;
    out->pan_w = w;
    out->pan_h = h;
    out->ms_w = ow;
    out->ms_h = oh;
    out->epsg = p->epsg;
    double step = w * res + 1024.0;
    double x0 = p->origin_x + (index % 8) * step, y0 = p->origin_y - (index / 8) * step;
    double gp[6] = {x0, res, 0, y0, 0, -res}, gm[6] = {x0, res * r, 0, y0, 0, -res * r};
    memcpy(out->pan_gt, gp, sizeof gp);
    memcpy(out->ms_gt, gm, sizeof gm);
    memcpy(out->class_gt, at_pan ? gp : gm, sizeof gp);
    rc = 0;
done:
    cmir_rng_free(g);
    cmir__free(rho);
    cmir__free(msf);
    cmir__free(cls_pan);
    cmir__sy_layout_free(&L);
    if (rc)
        cmir_synth_scene_free(out);
    return rc;
}
