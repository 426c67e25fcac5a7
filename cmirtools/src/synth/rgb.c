/* RGB multi-label mode of the simulator (UC-Merced-like): the region layout
 * and background land-cover textures, the optics/noise/quantisation pass,
 * and the scene writer and run loop (<name>_<kkk>_rgb.tif + _class.tif).
 * Objects are placed and drawn by rgb_objects.c. */
#include "rgb_internal.h"

#include <cpl_string.h>
#include <gdal.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#define CHUNK_ROWS 64
#define TWO_PI 6.28318531f

static const char *const rgb_names[CMIR_SYNTH_RGB_NLABELS] = {
    "airplane", "bare soil", "buildings", "cars",     "chaparral", "court",
    "dock",     "field",     "grass",     "mobile home", "pavement", "sand",
    "sea",      "ship",      "tanks",     "trees",    "water"};

/* Colour-table colours of the label raster (index 0 = unlabelled). */
static const unsigned char rgb_label_rgb[CMIR_SYNTH_RGB_NLABELS + 1][3] = {
    {0, 0, 0},       {255, 255, 255}, {160, 110, 60},  {220, 40, 40},  {255, 220, 0},
    {130, 140, 70},  {255, 0, 255},   {120, 70, 20},   {210, 230, 120}, {100, 200, 80},
    {255, 160, 200}, {128, 128, 128}, {240, 220, 160}, {0, 60, 180},   {0, 255, 255},
    {200, 200, 220}, {0, 110, 0},     {60, 140, 240}};

const char *cmir_synth_rgb_label_name(int c)
{
    return c >= 1 && c <= CMIR_SYNTH_RGB_NLABELS ? rgb_names[c - 1] : NULL;
}

cmir_synth_params cmir_synth_rgb_default_params(void)
{
    cmir_synth_params p = cmir_synth_default_params();
    p.size = 2048;
    p.pan_res = 0.3;
    p.cell_size = 110.0;
    p.epsg = 32610;
    p.origin_x = 720000.0;
    p.origin_y = 4134000.0;
    return p;
}

static int finite_in(double v, double lo, double hi) { return isfinite(v) && v >= lo && v <= hi; }

int cmir_synth_rgb_check_params(const cmir_synth_params *p)
{
    if (!p)
        return cmir__error(CMIR_EINVAL, "synth: no parameters");
    if (p->size < 64 || p->size > 16384)
        return cmir__error(CMIR_EINVAL, "synth: size must be in 64..16384, got %d", p->size);
    int rc = cmir__sy_check_common(p);
    if (rc)
        return rc;
    if (!finite_in(p->pan_res, 0.01, 100.0))
        return cmir__error(CMIR_EINVAL, "synth: the pixel size (res) must be in [0.01, 100] m, got %g",
                           p->pan_res);
    double width = p->size * p->pan_res;
    if (!finite_in(p->cell_size, 20.0, 1e6) || p->cell_size > 100.0 * width ||
        width / p->cell_size > 2000.0)
        return cmir__error(CMIR_EINVAL,
                           "synth: cell_size must be >= 20 m, >= scene width / 2000 and <= 100 x "
                           "the scene width (%g m), got %g", width, p->cell_size);
    return 0;
}

/* ---- layout ------------------------------------------------------------ */

/* Background land covers and their shares of the regions. */
static const int bg_cls[8] = {CMIR_SYNTH_RGB_PAVEMENT, CMIR_SYNTH_RGB_GRASS,
                              CMIR_SYNTH_RGB_BARE_SOIL, CMIR_SYNTH_RGB_FIELD,
                              CMIR_SYNTH_RGB_CHAPARRAL, CMIR_SYNTH_RGB_SAND,
                              CMIR_SYNTH_RGB_SEA,       CMIR_SYNTH_RGB_WATER};
static const float bg_weight[8] = {0.25f, 0.19f, 0.12f, 0.09f, 0.09f, 0.07f, 0.10f, 0.09f};

static int pick_background(cmir_rng *g)
{
    float u = cmir_rng_uniform(g), acc = 0.0f;
    for (int i = 0; i < 8; i++) {
        acc += bg_weight[i];
        if (u < acc)
            return bg_cls[i];
    }
    return bg_cls[0];
}

void cmir__rg_warp(const rg_scene *S, double x, double y, float *dx, float *dy)
{
    double u = x / S->warp_scale, v = y / S->warp_scale;
    *dx = S->warp_amp * cmir__sy_fbm(S->key ^ 0x1234567U, u, v, 3);
    *dy = S->warp_amp * cmir__sy_fbm(S->key ^ 0x7654321U, u + 31.7, v - 11.3, 3);
}

const rg_region *cmir__rg_locate(const rg_scene *S, double x, double y)
{
    float dx, dy;
    cmir__rg_warp(S, x, y, &dx, &dy);
    double wx = x + dx, wy = y + dy;
    int gi = (int)floor(wx / S->sp) + 1, gj = (int)floor(wy / S->sp) + 1;
    const rg_region *best = NULL;
    double bd = 1e300;
    for (int j = gj - 1; j <= gj + 1; j++) {
        if (j < 0 || j >= S->ny)
            continue;
        for (int i = gi - 1; i <= gi + 1; i++) {
            if (i < 0 || i >= S->nx)
                continue;
            const rg_region *r = &S->r[(size_t)j * S->nx + i];
            double ex = r->x - wx, ey = r->y - wy, d = ex * ex + ey * ey;
            if (d < bd) {
                bd = d;
                best = r;
            }
        }
    }
    return best ? best : S->r;
}

static int layout_init(rg_scene *S, const cmir_synth_params *p, cmir_rng *g)
{
    S->key = (uint32_t)(cmir_rng_u64(g) >> 32);
    S->var = (float)p->variation;
    S->sp = p->cell_size / p->pan_res;
    S->nx = (int)ceil(S->w / S->sp) + 3;
    S->ny = (int)ceil(S->h / S->sp) + 3;
    S->warp_amp = (float)(0.22 * S->sp);
    S->warp_scale = (float)(0.8 * S->sp);
    float az = TWO_PI * cmir_rng_uniform(g);
    S->sun_x = cosf(az);
    S->sun_y = sinf(az);
    S->sun_tan = 0.35f + 0.45f * cmir_rng_uniform(g);
    S->r = cmir__calloc((size_t)S->nx * (size_t)S->ny, sizeof(rg_region));
    if (!S->r)
        return CMIR_ENOMEM;
    for (int j = 0; j < S->ny; j++)
        for (int i = 0; i < S->nx; i++) {
            rg_region *r = &S->r[(size_t)j * S->nx + i];
            r->x = (float)((i - 1 + 0.15 + 0.7 * cmir_rng_uniform(g)) * S->sp);
            r->y = (float)((j - 1 + 0.15 + 0.7 * cmir_rng_uniform(g)) * S->sp);
            r->cls = pick_background(g);
            r->key = (uint32_t)(cmir_rng_u64(g) >> 32);
            float common = cmir_rng_normal(g);
            for (int b = 0; b < 3; b++)
                r->tint[b] = expf(S->var * (0.08f * common + 0.05f * cmir_rng_normal(g)));
            float a = 3.14159265f * cmir_rng_uniform(g);
            r->ca = cosf(a);
            r->sa = sinf(a);
            r->t = cmir_rng_uniform(g);
            float dx, dy;
            cmir__rg_warp(S, r->x, r->y, &dx, &dy);
            r->cx = r->x - dx;
            r->cy = r->y - dy;
        }
    return 0;
}

/* ---- background textures (x, y in metres) ------------------------------ */

static void set3(float o[3], float r, float g, float b)
{
    o[0] = r;
    o[1] = g;
    o[2] = b;
}

static void texture_land(const rg_region *r, double x, double y, float n1, float n2, float o[3])
{
    uint32_t k = r->key;
    float u = (float)(x * r->ca + y * r->sa);
    switch (r->cls) {
    case CMIR_SYNTH_RGB_BARE_SOIL: {
        float m = 1.0f + 0.11f * n1 + 0.07f * n2;
        int32_t ci, cj;
        float ex, ey, d = cmir__sy_worley(k + 7, x / 1.7, y / 1.7, &ci, &cj, &ex, &ey);
        if (d < 0.16f && sy_hashf(k, ci, cj) < 0.5f) /* clods and stones */
            m *= 0.8f;
        set3(o, 152 * m, 118 * m, 88 * m);
        break;
    }
    case CMIR_SYNTH_RGB_CHAPARRAL: {
        int32_t ci, cj;
        float ex, ey, d = cmir__sy_worley(k + 3, x / 2.6, y / 2.6, &ci, &cj, &ex, &ey);
        float rad = 0.25f + 0.25f * sy_hashf(k, ci, cj);
        if (d < rad) { /* shrub, darker at its centre */
            float s = 0.72f + 0.35f * d / rad + 0.06f * n2;
            set3(o, 78 * s, 92 * s, 54 * s);
        } else {
            float m = 1.0f + 0.08f * n1 + 0.05f * n2;
            set3(o, 160 * m, 144 * m, 108 * m);
        }
        break;
    }
    case CMIR_SYNTH_RGB_FIELD: {
        float period = 1.0f + 1.4f * r->t;
        float s = 0.5f + 0.5f * sinf(TWO_PI * u / period);
        float m = 1.0f + 0.07f * n1;
        int crop = (int)(r->key % 3u);
        static const float dark[3][3] = {{70, 110, 45}, {160, 140, 70}, {115, 88, 62}};
        static const float lite[3][3] = {{115, 165, 70}, {205, 185, 105}, {150, 118, 86}};
        for (int b = 0; b < 3; b++)
            o[b] = m * sy_lerp(dark[crop][b], lite[crop][b], s);
        break;
    }
    case CMIR_SYNTH_RGB_GRASS: {
        float stripe = sinf(TWO_PI * u / 9.0f) > 0 ? 1.03f : 0.97f;
        float m = (1.0f + 0.08f * n1 + 0.04f * n2) * stripe;
        set3(o, 86 * m, 140 * m, 64 * m);
        break;
    }
    case CMIR_SYNTH_RGB_PAVEMENT: {
        float grain = sy_hashf(k, (int32_t)floor(x / 0.3), (int32_t)floor(y / 0.3)) - 0.5f;
        float m = 1.0f + 0.06f * n1 + 0.03f * n2 + 0.06f * grain;
        float base = 100.0f + 30.0f * r->t;
        set3(o, base * m, base * m, (base + 4) * m);
        break;
    }
    default: { /* sand */
        float rip = sinf(TWO_PI * u / 1.8f + 2.5f * n1);
        float m = 1.0f + 0.04f * n1 + 0.025f * rip + 0.02f * n2;
        set3(o, 214 * m, 199 * m, 160 * m);
        break;
    }
    }
}

static void texture(const rg_region *r, double x, double y, float o[3])
{
    uint32_t k = r->key;
    float n1 = cmir__sy_fbm(k, x / 22.0, y / 22.0, 3);
    float n2 = cmir__sy_vnoise(k + 1, x / 1.1, y / 1.1);
    if (r->cls == CMIR_SYNTH_RGB_SEA) {
        float u = (float)(x * r->ca + y * r->sa);
        float w = sinf(TWO_PI * u / (4.0f + 3.0f * r->t) + 3.0f * n1);
        float m = 1.0f + 0.10f * w * w * w + 0.05f * n2 + 0.06f * n1;
        set3(o, 24 * m, 74 * m, 124 * m);
    } else if (r->cls == CMIR_SYNTH_RGB_WATER) {
        float m = 1.0f + 0.06f * n1 + 0.01f * n2;
        set3(o, 38 * m, 70 * m, 80 * m);
    } else {
        texture_land(r, x, y, n1, n2, o);
    }
    for (int b = 0; b < 3; b++)
        o[b] *= r->tint[b];
}

typedef struct bg_job {
    rg_scene *S;
    int y0, y1;
} bg_job;

static int background_part(int i, int n, void *user)
{
    bg_job *j = user;
    rg_scene *S = j->S;
    const size_t plane = (size_t)S->w * (size_t)S->h;
    size_t a, b;
    cmir__split((size_t)(j->y1 - j->y0), n, i, &a, &b);
    for (size_t yy = a; yy < b; yy++) {
        int y = j->y0 + (int)yy;
        for (int x = 0; x < S->w; x++) {
            const rg_region *r = cmir__rg_locate(S, x + 0.5, y + 0.5);
            float o[3];
            texture(r, (x + 0.5) * S->res, (y + 0.5) * S->res, o);
            size_t at = (size_t)y * S->w + x;
            for (int c = 0; c < 3; c++)
                S->c[c * plane + at] = o[c];
            S->lab[at] = (uint8_t)r->cls;
        }
    }
    return 0;
}

/* ---- optics, noise, quantisation ----------------------------------------- */

typedef struct fin_job {
    rg_scene *S;
    float *tmp;  /* 3 planes */
    uint8_t *out;
    float gain[3];
    float sigma;
    uint32_t key;
    int pass;    /* 0: shadows + horizontal blur into tmp; 1: vertical blur, noise, quantise */
} fin_job;

static inline uint8_t quantise(float v) { return (uint8_t)(v <= 0.0f ? 0 : v >= 255.0f ? 255 : (int)(v + 0.5f)); }

static int finish_part(int i, int n, void *user)
{
    fin_job *j = user;
    rg_scene *S = j->S;
    const int w = S->w, h = S->h;
    const size_t plane = (size_t)w * h;
    static const float shade[3] = {0.40f, 0.43f, 0.52f};
    static const float k3[3] = {0.2f, 0.6f, 0.2f};
    size_t a, b;
    cmir__split((size_t)h, n, i, &a, &b);
    for (int c = 0; c < 3; c++)
        for (size_t y = a; y < b; y++) {
            size_t row = y * (size_t)w;
            if (j->pass == 0) {
                float *src = S->c + c * plane + row;
                const uint8_t *sh = S->shadow + row;
                for (int x = 0; x < w; x++)
                    if (sh[x])
                        src[x] *= shade[c];
            }
        }
    if (j->pass == 0) {
        for (int c = 0; c < 3; c++)
            for (size_t y = a; y < b; y++) {
                const float *src = S->c + c * plane + y * (size_t)w;
                float *dst = j->tmp + c * plane + y * (size_t)w;
                for (int x = 0; x < w; x++) {
                    int xl = x > 0 ? x - 1 : x, xr = x + 1 < w ? x + 1 : x;
                    dst[x] = k3[0] * src[xl] + k3[1] * src[x] + k3[2] * src[xr];
                }
            }
        return 0;
    }
    for (int c = 0; c < 3; c++)
        for (size_t y = a; y < b; y++) {
            size_t yu = y > 0 ? y - 1 : y, yd = y + 1 < (size_t)h ? y + 1 : y;
            const float *t = j->tmp + c * plane;
            uint8_t *dst = j->out + c * plane + y * (size_t)w;
            for (int x = 0; x < w; x++) {
                float v = k3[0] * t[yu * w + x] + k3[1] * t[y * w + x] + k3[2] * t[yd * w + x];
                v *= j->gain[c];
                if (j->sigma > 0.0f) {
                    uint32_t hk = sy_subkey(j->key, (uint32_t)c);
                    float z = sy_hashf(hk, x, (int32_t)y) + sy_hashf(hk ^ 0x55555555U, x, (int32_t)y) +
                              sy_hashf(hk ^ 0x2AAAAAAAU, x, (int32_t)y) - 1.5f;
                    v += j->sigma * 2.0f * z; /* z has variance 1/4 */
                }
                dst[x] = quantise(v);
            }
        }
    return 0;
}

/* ---- rendering ----------------------------------------------------------- */

void cmir_synth_rgb_scene_free(cmir_synth_rgb_scene *s)
{
    if (!s)
        return;
    cmir__free(s->rgb);
    cmir__free(s->cls);
    memset(s, 0, sizeof *s);
}

static uint64_t scene_seed(const cmir_synth_params *p, int index)
{
    /* The DSRSID-like mode's per-scene seeding, with a mode salt. */
    return (p->seed ^ (0xA0761D6478BD642Full * (uint64_t)(index + 1))) + 0x52474231ull;
}

static int cancelled(cmir_progress_fn progress, void *user, double f, const char *msg)
{
    if (progress && progress(f, msg, user))
        return cmir__error(CMIR_ECANCEL, "synth: cancelled by the progress callback");
    return 0;
}

int cmir_synth_rgb_render(const cmir_synth_params *p, int index, cmir_synth_rgb_scene *out,
                          cmir_progress_fn progress, void *user)
{
    int rc;
    if (!out)
        return cmir__error(CMIR_EINVAL, "synth: no scene to render into");
    memset(out, 0, sizeof *out);
    if ((rc = cmir_synth_rgb_check_params(p)) || (rc = cmir__sy_check_render(p, index)))
        return rc;
    rg_scene S;
    memset(&S, 0, sizeof S);
    S.w = S.h = p->size;
    S.res = p->pan_res;
    const size_t plane = (size_t)S.w * (size_t)S.h;
    const int threads = cmir__sy_threads(p);
    cmir_rng *g = cmir_rng_new(scene_seed(p, index));
    float *tmp = NULL;
    if (!g || (rc = layout_init(&S, p, g)))
        goto done;
    S.c = cmir__malloc(sizeof(float) * 3 * plane);
    S.lab = cmir__malloc(plane);
    S.shadow = cmir__calloc(plane, 1);
    out->rgb = cmir__malloc(3 * plane);
    if (!S.c || !S.lab || !S.shadow || !out->rgb) {
        rc = CMIR_ENOMEM;
        goto done;
    }
    bg_job job = {&S, 0, 0};
    for (int y0 = 0; y0 < S.h; y0 += CHUNK_ROWS) {
        job.y0 = y0;
        job.y1 = y0 + CHUNK_ROWS < S.h ? y0 + CHUNK_ROWS : S.h;
        cmir__parallel(threads, background_part, &job);
        if ((rc = cancelled(progress, user, 0.7 * job.y1 / S.h, "rendering the ground")))
            goto done;
    }
    if ((rc = cmir__rg_objects(&S, g)) || (rc = cancelled(progress, user, 0.85, "objects")))
        goto done;
    if (!(tmp = cmir__malloc(sizeof(float) * 3 * plane))) {
        rc = CMIR_ENOMEM;
        goto done;
    }
    fin_job fj = {&S, tmp, out->rgb, {1, 1, 1}, (float)(3.0 * p->noise),
                  (uint32_t)(cmir_rng_u64(g) >> 32), 0};
    float common = cmir_rng_normal(g);
    for (int c = 0; c < 3; c++)
        fj.gain[c] = expf(S.var * (0.05f * common + 0.03f * cmir_rng_normal(g)));
    cmir__parallel(threads, finish_part, &fj);
    fj.pass = 1;
    cmir__parallel(threads, finish_part, &fj);
    out->cls = S.lab;
    S.lab = NULL;
    out->index = index;
    out->w = S.w;
    out->h = S.h;
    out->epsg = p->epsg;
    double step = S.w * S.res + 1024.0;
    double x0 = p->origin_x + (index % 8) * step, y0 = p->origin_y - (index / 8) * step;
    double gt[6] = {x0, S.res, 0, y0, 0, -S.res};
    memcpy(out->gt, gt, sizeof gt);
    rc = cancelled(progress, user, 1.0, "scene rendered");
done:
    cmir_rng_free(g);
    cmir__free(tmp);
    cmir__free(S.c);
    cmir__free(S.lab);
    cmir__free(S.shadow);
    cmir__free(S.r);
    if (rc)
        cmir_synth_rgb_scene_free(out);
    return rc;
}

/* ---- files --------------------------------------------------------------- */

static void provenance(const cmir_synth_params *p, int index, char *buf, size_t n)
{
    snprintf(buf, n,
             "CMIR_SYNTH=cmir_synth %s mode=rgb seed=%llu scene=%d size=%d res=%g cell=%g "
             "variation=%g noise=%g epsg=%d",
             cmir_version(), (unsigned long long)p->seed, index, p->size, p->pan_res,
             p->cell_size, p->variation, p->noise, p->epsg);
}

/* "PHOTOMETRIC=RGB" followed by the user's options (which win). Free the
 * array (not its strings) with cmir__free. */
static const char **rgb_options(const char *const *co)
{
    int n = 0;
    while (co && co[n])
        n++;
    const char **o = cmir__malloc(sizeof(char *) * (size_t)(n + 2));
    if (!o)
        return NULL;
    o[0] = "PHOTOMETRIC=RGB";
    for (int i = 0; i < n; i++)
        o[i + 1] = co[i];
    o[n + 1] = NULL;
    return o;
}

static int write_pair(const cmir_synth_params *p, const cmir_synth_rgb_scene *s,
                      const char *prefix, const char *wkt, char *name, size_t pl)
{
    char prov[512];
    provenance(p, s->index, prov, sizeof prov);
    char cls_meta[CMIR_SYNTH_RGB_NLABELS][48];
    char *meta[CMIR_SYNTH_RGB_NLABELS + 2] = {prov};
    const char *cats[CMIR_SYNTH_RGB_NLABELS + 2] = {"unlabelled"};
    GDALColorTableH ct = GDALCreateColorTable(GPI_RGB);
    for (int c = 0; c <= CMIR_SYNTH_RGB_NLABELS; c++) {
        GDALColorEntry e = {rgb_label_rgb[c][0], rgb_label_rgb[c][1], rgb_label_rgb[c][2], 255};
        GDALSetColorEntry(ct, c, &e);
        if (c == 0)
            continue;
        snprintf(cls_meta[c - 1], sizeof cls_meta[c - 1], "CLASS_%d=%s", c, rgb_names[c - 1]);
        meta[c] = cls_meta[c - 1];
        cats[c] = rgb_names[c - 1];
    }
    char *meta_img[2] = {prov, NULL};
    static const char *const rgb_desc[3] = {"Red", "Green", "Blue"};
    static const int rgb_ci[3] = {GCI_RedBand, GCI_GreenBand, GCI_BlueBand};
    static const char *const cls_desc[1] = {"label"};
    sy_raster img = {.w = s->w, .h = s->h, .nbands = 3, .gdt = GDT_Byte, .data = s->rgb,
                     .wkt = wkt, .band_desc = rgb_desc, .color_interp = rgb_ci,
                     .metadata = meta_img};
    sy_raster cls = {.w = s->w, .h = s->h, .nbands = 1, .gdt = GDT_Byte, .data = s->cls,
                     .wkt = wkt, .band_desc = cls_desc, .ctable = ct, .categories = (char **)cats,
                     .metadata = meta};
    memcpy(img.gt, s->gt, sizeof img.gt);
    memcpy(cls.gt, s->gt, sizeof cls.gt);
    const char **co = rgb_options(p->creation_options);
    sy_outset o = {0};
    int rc = co ? 0 : CMIR_ENOMEM;
    if (!rc) {
        snprintf(name, pl, "%s_rgb.tif", prefix);
        rc = cmir__sy_write(&o, name, &img, co);
    }
    if (!rc) {
        snprintf(name, pl, "%s_class.tif", prefix);
        rc = cmir__sy_write(&o, name, &cls, p->creation_options);
    }
    if (!rc)
        rc = cmir__sy_commit(&o);
    cmir__sy_outset_clear(&o);
    cmir__free(co);
    GDALDestroyColorTable(ct);
    return rc;
}

int cmir_synth_rgb_scene_write(const cmir_synth_params *p, const cmir_synth_rgb_scene *s,
                               const char *prefix)
{
    if (!p || !s || !s->rgb || !s->cls || !prefix)
        return cmir__error(CMIR_EINVAL, "synth: nothing to write");
    int rc = cmir__sy_check_options(p->creation_options);
    if (rc)
        return rc;
    char *wkt = cmir__sy_epsg_wkt(s->epsg);
    if (!wkt)
        return CMIR_EINVAL;
    size_t pl = strlen(prefix) + 16;
    char *name = cmir__malloc(pl);
    rc = name ? write_pair(p, s, prefix, wkt, name, pl) : CMIR_ENOMEM;
    cmir__free(name);
    cmir__free(wkt);
    return rc;
}

/* One RGB scene: rendered, written, freed. */
static int rgb_scene(const cmir_synth_params *p, int index, const char *prefix, cmir_progress_fn progress,
                     void *user)
{
    cmir_synth_rgb_scene s;
    int rc = cmir_synth_rgb_render(p, index, &s, progress, user);
    if (!rc)
        rc = cmir_synth_rgb_scene_write(p, &s, prefix);
    cmir_synth_rgb_scene_free(&s);
    return rc;
}

int cmir_synth_rgb_run(const cmir_synth_params *p, const char *dir, const char *name,
                       cmir_progress_fn progress, void *user)
{
    int rc = cmir_synth_rgb_check_params(p);
    return rc ? rc : cmir__sy_run(p, dir, name, 0.9, rgb_scene, progress, user);
}
