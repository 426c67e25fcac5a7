/* Region layout of a DSRSID-like scene: a jittered grid of seeds, Voronoi
 * cells with noise-warped borders, balanced class assignment, per-region
 * jitter, the scene's sun and illumination, and the cloud opacity field. */
#include "synth_internal.h"

#include <stdlib.h>
#include <string.h>

#define MAX_GRID 4096 /* seeds per axis; size and cell_size are checked */

typedef struct order_item {
    double d;
    int i;
} order_item;

static int cmp_order(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->i - y->i;
}

/* Per-region parameters: t pulled towards 0.5 by (1 - variation). */
static void init_region(sy_region *r, cmir_rng *g, float var)
{
    r->key = (uint32_t)(cmir_rng_u64(g) >> 32);
    float common = cmir_rng_normal(g);
    for (int b = 0; b < 4; b++)
        r->gain[b] = expf(var * (0.10f * common + 0.06f * cmir_rng_normal(g)));
    float a = 3.14159265f * cmir_rng_uniform(g);
    r->ca = cosf(a);
    r->sa = sinf(a);
    for (int k = 0; k < 8; k++)
        r->t[k] = 0.5f + (cmir_rng_uniform(g) - 0.5f) * var;
}

int cmir__sy_layout_init(sy_layout *L, const cmir_synth_params *p, int index, double w_m,
                         double h_m)
{
    memset(L, 0, sizeof *L);
    L->p = p;
    L->spacing = p->cell_size;
    L->variation = (float)p->variation;
    L->confusion = (float)p->confusion;
    cmir_rng *g = cmir_rng_new(p->seed ^ (0xA0761D6478BD642Full * (uint64_t)(index + 1)));
    if (!g)
        return CMIR_ENOMEM;
    L->key = (uint32_t)(cmir_rng_u64(g) >> 32);
    L->gx0 = -2;
    L->gy0 = -2;
    L->nx = (int)ceil(w_m / L->spacing) + 4;
    L->ny = (int)ceil(h_m / L->spacing) + 4;
    if (L->nx > MAX_GRID || L->ny > MAX_GRID) {
        cmir_rng_free(g);
        return cmir__error(CMIR_EINVAL, "synth: cell_size %g m is too small for a %g m scene",
                           L->spacing, w_m);
    }
    size_t n = (size_t)L->nx * (size_t)L->ny;
    L->r = cmir__calloc(n, sizeof(sy_region));
    order_item *ord = cmir__malloc(n * sizeof *ord);
    if (!L->r || !ord) {
        cmir__free(ord);
        cmir__free(L->r);
        L->r = NULL;
        cmir_rng_free(g);
        return CMIR_ENOMEM;
    }
    /* Sun: azimuth 120..200 degrees (from north, clockwise), elevation
     * 35..60 degrees; (east, south) components of the vector to the sun. */
    float az = (120.0f + 80.0f * cmir_rng_uniform(g)) * 3.14159265f / 180.0f;
    float el = (35.0f + 25.0f * cmir_rng_uniform(g)) * 3.14159265f / 180.0f;
    L->sun_x = sinf(az);
    L->sun_y = -cosf(az);
    L->sun_tan = 1.0f / tanf(el);
    float common = cmir_rng_normal(g);
    static const float haze_shape[4] = {1.0f, 0.8f, 0.55f, 0.25f};
    float hz = fabsf(cmir_rng_normal(g));
    for (int b = 0; b < 4; b++) {
        L->scene_gain[b] = expf(L->variation * (0.06f * common + 0.03f * cmir_rng_normal(g)));
        L->haze[b] = L->variation * 0.012f * hz * haze_shape[b];
    }
    L->warp_amp = 0.22 * L->spacing;
    L->warp_scale = 0.6 * L->spacing;

    double cx = 0.5 * w_m, cy = 0.5 * h_m;
    for (int gy = 0; gy < L->ny; gy++)
        for (int gx = 0; gx < L->nx; gx++) {
            size_t i = (size_t)gy * (size_t)L->nx + (size_t)gx;
            sy_region *r = &L->r[i];
            r->x = (gx + L->gx0 + 0.1 + 0.8 * cmir_rng_uniform(g)) * L->spacing;
            r->y = (gy + L->gy0 + 0.1 + 0.8 * cmir_rng_uniform(g)) * L->spacing;
            init_region(r, g, L->variation);
            ord[i].d = (r->x - cx) * (r->x - cx) + (r->y - cy) * (r->y - cy);
            ord[i].i = (int)i;
        }
    /* Balanced classes: central cells first, one random permutation of the
     * 8 classes per 8 cells. */
    qsort(ord, n, sizeof *ord, cmp_order);
    int perm[8];
    for (size_t k = 0; k < n; k++) {
        if (k % 8 == 0) {
            for (int c = 0; c < 8; c++)
                perm[c] = c + 1;
            for (int c = 7; c > 0; c--) {
                int j = (int)cmir_rng_below(g, (uint64_t)c + 1);
                int t = perm[c];
                perm[c] = perm[j];
                perm[j] = t;
            }
        }
        sy_region *r = &L->r[ord[k].i];
        r->cls = perm[k % 8];
        r->ground = r->cls;
        if (r->cls == CMIR_SYNTH_CLOUD) {
            static const int under[5] = {CMIR_SYNTH_FOREST, CMIR_SYNTH_FARM_LAND,
                                         CMIR_SYNTH_LOW_BUILDING, CMIR_SYNTH_WATER,
                                         CMIR_SYNTH_AQUAFARM};
            r->ground = under[cmir_rng_below(g, 5)];
        }
    }
    cmir__free(ord);
    cmir_rng_free(g);
    return 0;
}

void cmir__sy_layout_free(sy_layout *L)
{
    cmir__free(L->r);
    L->r = NULL;
}

/* Voronoi query in warped space: nearest region, distance to its border,
 * and signed distance to the border of the cloud cells (> 0 inside). */
typedef struct vq {
    const sy_region *r1;
    float border;
    float cloud_sd;
    const sy_region *cloud; /* nearest cloud region, or NULL */
} vq;

static void voronoi(const sy_layout *L, double x, double y, vq *o)
{
    double qx = x + L->warp_amp * cmir__sy_fbm(L->key ^ 0x1111U, x / L->warp_scale,
                                               y / L->warp_scale, 3);
    double qy = y + L->warp_amp * cmir__sy_fbm(L->key ^ 0x2222U, x / L->warp_scale,
                                               y / L->warp_scale, 3);
    int cx = (int)floor(qx / L->spacing) - L->gx0, cy = (int)floor(qy / L->spacing) - L->gy0;
    double d1 = 1e300, d2 = 1e300, dc = 1e300, dn = 1e300;
    const sy_region *r1 = NULL, *r2 = NULL, *rc = NULL, *rn = NULL;
    for (int gy = cy - 2; gy <= cy + 2; gy++) {
        if (gy < 0 || gy >= L->ny)
            continue;
        for (int gx = cx - 2; gx <= cx + 2; gx++) {
            if (gx < 0 || gx >= L->nx)
                continue;
            const sy_region *r = &L->r[(size_t)gy * (size_t)L->nx + (size_t)gx];
            double d = (r->x - qx) * (r->x - qx) + (r->y - qy) * (r->y - qy);
            if (d < d1) {
                d2 = d1;
                r2 = r1;
                d1 = d;
                r1 = r;
            } else if (d < d2) {
                d2 = d;
                r2 = r;
            }
            if (r->cls == CMIR_SYNTH_CLOUD) {
                if (d < dc) {
                    dc = d;
                    rc = r;
                }
            } else if (d < dn) {
                dn = d;
                rn = r;
            }
        }
    }
    if (!r1) { /* outside the grid: cannot happen for in-scene points */
        r1 = &L->r[0];
        d1 = 0;
    }
    o->r1 = r1;
    o->cloud = rc;
    o->border = 1e6f;
    if (r2) {
        double sep = sqrt((r2->x - r1->x) * (r2->x - r1->x) + (r2->y - r1->y) * (r2->y - r1->y));
        o->border = (float)((d2 - d1) / (2.0 * sep + 1e-9));
    }
    if (r1->cls == CMIR_SYNTH_CLOUD) {
        o->cloud_sd = 1e6f;
        if (rn) {
            double sep =
                sqrt((rn->x - r1->x) * (rn->x - r1->x) + (rn->y - r1->y) * (rn->y - r1->y));
            o->cloud_sd = (float)((dn - d1) / (2.0 * sep + 1e-9));
        }
    } else {
        o->cloud_sd = -1e6f;
        if (rc) {
            double sep =
                sqrt((rc->x - r1->x) * (rc->x - r1->x) + (rc->y - r1->y) * (rc->y - r1->y));
            o->cloud_sd = -(float)((dc - d1) / (2.0 * sep + 1e-9));
        }
    }
}

/* Cloud opacity from the signed distance: soft edges about 90 m wide that
 * spill over the cell border, billowy density inside. */
static float cloud_alpha(const sy_layout *L, const vq *v, double x, double y)
{
    if (!v->cloud || v->cloud_sd < -400.0f)
        return 0.0f;
    const float w = 90.0f;
    float e = cmir__sy_fbm(L->key ^ 0x3333U, x / 120.0, y / 120.0, 4);
    float edge = sy_smooth(-w, w, v->cloud_sd + 1.2f * w * e);
    if (edge <= 0.0f)
        return 0.0f;
    float dens = 0.7f + 0.5f * v->cloud->t[0] +
                 0.55f * cmir__sy_fbm(L->key ^ 0x4444U, x / 260.0, y / 260.0, 4);
    return edge * sy_clampf(dens, 0.0f, 1.0f);
}

void cmir__sy_locate(const sy_layout *L, double x, double y, sy_hit *h)
{
    vq v;
    voronoi(L, x, y, &v);
    h->r = v.r1;
    h->border = v.border;
    h->cloud = cloud_alpha(L, &v, x, y);
    h->cloud_shadow = 0.0f;
    if (v.cloud && v.cloud_sd > -900.0f) {
        /* Clouds float about 350 m up: the shadow of the cloud at
         * p + d * sun falls on p. */
        double d = 350.0 * L->sun_tan;
        vq s;
        double sx = x + d * L->sun_x, sy = y + d * L->sun_y;
        voronoi(L, sx, sy, &s);
        h->cloud_shadow = cloud_alpha(L, &s, sx, sy);
    }
}
