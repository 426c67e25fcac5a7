/* Objects of the RGB multi-label mode: shapes (rectangles, circles, ship
 * hulls, airplanes) with their shadows and surface details, placed in
 * clusters near region centres where the ground suits them, drawn in
 * passes (docks, courts, buildings/tanks/mobile homes, cars/airplanes/
 * ships, trees) so that later objects respect earlier ones. */
#include "rgb_internal.h"

#include <string.h>

enum { SH_RECT, SH_CIRCLE, SH_HULL, SH_PLANE };

#define BIT(c) (1u << (c))
#define LAND_SOFT (BIT(CMIR_SYNTH_RGB_GRASS) | BIT(CMIR_SYNTH_RGB_BARE_SOIL) | \
                   BIT(CMIR_SYNTH_RGB_CHAPARRAL) | BIT(CMIR_SYNTH_RGB_FIELD))
#define WET (BIT(CMIR_SYNTH_RGB_SEA) | BIT(CMIR_SYNTH_RGB_WATER))

typedef struct rg_obj {
    int label, kind, style;
    float cx, cy;   /* centre, pixels */
    float ca, sa;   /* direction of the long axis u (v is across) */
    float hl, hw;   /* half length, half width, pixels (circle: radius = hl) */
    float height;   /* metres, for the shadow; 0 = none */
    float col[3], col2[3];
    uint32_t key;
} rg_obj;

/* ---- small helpers -------------------------------------------------------- */

static float U(cmir_rng *g, float a, float b) { return a + (b - a) * cmir_rng_uniform(g); }
static int I(cmir_rng *g, int a, int b) { return a + (int)cmir_rng_below(g, (uint64_t)(b - a + 1)); }
static int chance(cmir_rng *g, float p) { return cmir_rng_uniform(g) < p; }

static void pick_colour(cmir_rng *g, const float (*pal)[3], int n, float var, float out[3])
{
    const float *c = pal[cmir_rng_below(g, (uint64_t)n)];
    float common = 1.0f + 0.08f * var * cmir_rng_normal(g);
    for (int b = 0; b < 3; b++)
        out[b] = c[b] * common * (1.0f + 0.04f * var * cmir_rng_normal(g));
}

static void set_dir(rg_obj *o, float angle)
{
    o->ca = cosf(angle);
    o->sa = sinf(angle);
}

static inline void to_local(const rg_obj *o, float x, float y, float *u, float *v)
{
    float dx = x - o->cx, dy = y - o->cy;
    *u = dx * o->ca + dy * o->sa;
    *v = -dx * o->sa + dy * o->ca;
}

static int inside(const rg_obj *o, float u, float v)
{
    float av = fabsf(v);
    switch (o->kind) {
    case SH_RECT:
        return fabsf(u) <= o->hl && av <= o->hw;
    case SH_CIRCLE:
        return u * u + v * v <= o->hl * o->hl;
    case SH_HULL: {
        if (fabsf(u) > o->hl)
            return 0;
        float bow = 0.5f * o->hl, wmax = o->hw;
        if (u > o->hl - bow)
            wmax *= sqrtf((o->hl - u) / bow);
        return av <= wmax;
    }
    default: { /* SH_PLANE: hl = half length, hw = half span */
        float L = o->hl, fw = 0.085f * L;
        if (u > 0.75f * L)
            fw *= sqrtf(fmaxf(0.0f, (L - u) / (0.25f * L)));
        if (fabsf(u) <= L && av <= fw)
            return 1;
        if (av <= o->hw) { /* swept, tapered wings */
            float uc = 0.12f * L - 0.45f * av, chord = 0.30f * L * (1.0f - 0.65f * av / o->hw);
            if (fabsf(u - uc) <= 0.5f * chord)
                return 1;
        }
        float ts = 0.34f * o->hw;
        if (av <= ts) {
            float uc = -0.80f * L - 0.35f * av, chord = 0.14f * L * (1.0f - 0.5f * av / ts);
            if (fabsf(u - uc) <= 0.5f * chord)
                return 1;
        }
        return 0;
    }
    }
}

static float radius(const rg_obj *o)
{
    switch (o->kind) {
    case SH_RECT: return sqrtf(o->hl * o->hl + o->hw * o->hw);
    case SH_CIRCLE: return o->hl;
    case SH_HULL: return o->hl;
    default: return 1.05f * fmaxf(o->hl, o->hw);
    }
}

/* Whether a shadow caster o, displaced by up to (dx, dy), covers (x, y). */
static int in_shadow(const rg_obj *o, float x, float y, float dx, float dy)
{
    if (o->kind == SH_CIRCLE) { /* distance from (x, y) to the segment c .. c + d */
        float px = x - o->cx, py = y - o->cy, dd = dx * dx + dy * dy;
        float t = dd > 0 ? (px * dx + py * dy) / dd : 0.0f;
        t = sy_clampf(t, 0.0f, 1.0f);
        float ex = px - t * dx, ey = py - t * dy;
        return ex * ex + ey * ey <= o->hl * o->hl;
    }
    float pu, pv;
    to_local(o, x, y, &pu, &pv);
    float du = dx * o->ca + dy * o->sa, dv = -dx * o->sa + dy * o->ca;
    if (o->kind == SH_RECT) { /* slabs: t in [0, 1] with |pu - t du| <= hl, |pv - t dv| <= hw */
        float lo = 0.0f, hi = 1.0f;
        const float p[2] = {pu, pv}, d[2] = {du, dv}, h[2] = {o->hl, o->hw};
        for (int k = 0; k < 2; k++) {
            if (fabsf(d[k]) < 1e-6f) {
                if (fabsf(p[k]) > h[k])
                    return 0;
                continue;
            }
            float t1 = (p[k] - h[k]) / d[k], t2 = (p[k] + h[k]) / d[k];
            if (t1 > t2) {
                float t = t1;
                t1 = t2;
                t2 = t;
            }
            lo = fmaxf(lo, t1);
            hi = fminf(hi, t2);
        }
        return lo <= hi;
    }
    int n = (int)ceilf(sqrtf(du * du + dv * dv) / 1.5f) + 1;
    for (int i = 0; i <= n; i++) {
        float t = (float)i / (float)n;
        if (inside(o, pu - t * du, pv - t * dv))
            return 1;
    }
    return 0;
}

/* Whether o's footprint lies on allowed ground: a grid of samples over its
 * bounding box (plus `margin` pixels) must all be inside the image or off
 * it, with the centre inside, and every sample inside on an allowed label. */
static int fits(const rg_scene *S, const rg_obj *o, uint32_t allowed, float margin)
{
    float hu = (o->kind == SH_PLANE ? o->hl : o->hl) + margin;
    float hv = (o->kind == SH_CIRCLE ? o->hl : o->hw) + margin;
    int n = fmaxf(hu, hv) > 30.0f ? 3 : 1;
    if (o->cx < 0 || o->cy < 0 || o->cx >= S->w || o->cy >= S->h)
        return 0;
    for (int j = -n; j <= n; j++)
        for (int i = -n; i <= n; i++) {
            float u = hu * i / n, v = hv * j / n;
            int x = (int)floorf(o->cx + u * o->ca - v * o->sa);
            int y = (int)floorf(o->cy + u * o->sa + v * o->ca);
            if (x < 0 || y < 0 || x >= S->w || y >= S->h)
                continue;
            if (!(allowed & BIT(S->lab[(size_t)y * S->w + x])))
                return 0;
        }
    return 1;
}

/* ---- surface details ------------------------------------------------------- */

/* Towards-the-sun component of the unit vector (ex, ey). */
static float lit(const rg_scene *S, float ex, float ey) { return -(ex * S->sun_x + ey * S->sun_y); }

static void paint_building(const rg_scene *S, const rg_obj *o, float u, float v, float *m)
{
    float px_m = (float)(1.0 / S->res);
    if (o->style == 0) { /* gable roof, ridge along u */
        float s = v >= 0 ? 1.0f : -1.0f;
        *m = 0.88f + 0.22f * s * lit(S, -o->sa, o->ca);
        if (fabsf(v) < 0.7f)
            *m *= 1.12f;
        if (o->hw - fabsf(v) < 1.0f || o->hl - fabsf(u) < 1.0f)
            *m *= 0.82f;
        *m *= 1.0f + 0.05f * sinf(3.14159f * v / (0.35f * px_m)); /* tile courses */
        return;
    }
    /* flat roof: parapet and rooftop units */
    float edge = fminf(o->hl - fabsf(u), o->hw - fabsf(v));
    *m = edge < 0.8f * px_m ? 1.14f : 1.0f;
    float cell = 3.5f * px_m;
    int32_t ci = (int32_t)floorf(u / cell), cj = (int32_t)floorf(v / cell);
    float fu = u - (ci + 0.5f) * cell, fv = v - (cj + 0.5f) * cell;
    if (edge > 1.5f * px_m && sy_hashf(o->key, ci, cj) < 0.12f && fabsf(fu) < 0.7f * px_m &&
        fabsf(fv) < 0.5f * px_m)
        *m = 1.3f;
}

static void paint_car(const rg_obj *o, float u, float v, float out[3])
{
    static const float glass[3] = {42, 48, 58};
    float r = u / o->hl;
    if ((r > 0.12f && r < 0.45f) || (r > -0.78f && r < -0.58f)) {
        if (fabsf(v) < 0.8f * o->hw) {
            memcpy(out, glass, sizeof glass);
            return;
        }
    }
    float m = (r >= -0.58f && r <= 0.12f) ? 1.06f : 1.0f;
    if (o->hw - fabsf(v) < 0.6f)
        m *= 0.8f;
    for (int b = 0; b < 3; b++)
        out[b] = o->col[b] * m;
}

static void paint_ship(const rg_scene *S, const rg_obj *o, float u, float v, float out[3])
{
    float px_m = (float)(1.0 / S->res);
    float wmax = o->hw;
    if (u > 0.5f * o->hl)
        wmax *= sqrtf((o->hl - u) / (0.5f * o->hl));
    if (wmax - fabsf(v) < 1.2f || o->hl - fabsf(u) < 1.0f) { /* hull side */
        memcpy(out, o->col2, sizeof(float) * 3);
        return;
    }
    float m = 1.0f;
    const float *c = o->col;
    static const float white[3] = {236, 236, 232};
    if (u > -0.78f * o->hl && u < -0.38f * o->hl && fabsf(v) < 0.62f * o->hw) {
        c = white; /* superstructure */
        m = 0.92f + 0.1f * lit(S, o->ca, o->sa);
    } else if (o->style == 1 && u > -0.3f * o->hl && u < 0.45f * o->hl && fabsf(v) < 0.75f * o->hw) {
        int32_t k = (int32_t)floorf(u / (2.6f * px_m)); /* container bays */
        float h = sy_hashf(o->key, k, v > 0);
        static const float box[4][3] = {{170, 60, 45}, {60, 90, 150}, {190, 160, 70}, {90, 130, 90}};
        for (int b = 0; b < 3; b++)
            out[b] = box[(int)(h * 4) & 3][b] * (0.9f + 0.2f * sy_hashf(o->key + 1, k, v > 0));
        return;
    }
    for (int b = 0; b < 3; b++)
        out[b] = c[b] * m;
}

static void paint_court(const rg_scene *S, const rg_obj *o, float u, float v, float out[3])
{
    static const float line[3] = {238, 238, 235}, net[3] = {45, 45, 48};
    float ih = 0.65f * o->hl, iw = 0.60f * o->hw, lw = 0.65f;
    float au = fabsf(u), av = fabsf(v);
    (void)S;
    if (au < 0.75f && av <= iw + 1.0f) {
        memcpy(out, net, sizeof net);
        return;
    }
    int on_line = (au <= ih + lw && av <= iw + lw) &&
                  (fabsf(au - ih) < lw || fabsf(av - iw) < lw || fabsf(av - 0.75f * iw) < lw ||
                   (au <= 0.54f * ih && (fabsf(au - 0.54f * ih) < lw || av < lw)));
    if (on_line) {
        memcpy(out, line, sizeof line);
        return;
    }
    memcpy(out, au <= ih && av <= iw ? o->col : o->col2, sizeof(float) * 3);
}

static void paint(const rg_scene *S, const rg_obj *o, float u, float v, float x, float y,
                  float out[3])
{
    float m = 1.0f;
    switch (o->label) {
    case CMIR_SYNTH_RGB_BUILDINGS:
        paint_building(S, o, u, v, &m);
        break;
    case CMIR_SYNTH_RGB_CARS:
        paint_car(o, u, v, out);
        return;
    case CMIR_SYNTH_RGB_SHIP:
        paint_ship(S, o, u, v, out);
        return;
    case CMIR_SYNTH_RGB_COURT:
        paint_court(S, o, u, v, out);
        return;
    case CMIR_SYNTH_RGB_TREES: {
        float d2 = (u * u + v * v) / (o->hl * o->hl);
        float l = lit(S, (x - o->cx) / o->hl, (y - o->cy) / o->hl);
        float leaf = cmir__sy_vnoise(o->key, x * S->res / 0.6, y * S->res / 0.6);
        m = 0.80f + 0.30f * l - 0.18f * d2 + 0.14f * leaf;
        break;
    }
    case CMIR_SYNTH_RGB_TANKS: {
        float d = sqrtf(u * u + v * v) / o->hl;
        float l = lit(S, (x - o->cx) / o->hl, (y - o->cy) / o->hl);
        m = d > 0.93f ? 0.8f : d > 0.84f && d < 0.88f ? 0.86f : d < 0.07f ? 0.8f : 0.97f + 0.08f * l;
        break;
    }
    case CMIR_SYNTH_RGB_DOCK: {
        int32_t k = (int32_t)floorf(u * (float)S->res / 0.6f);
        m = (k & 1) ? 0.93f : 1.0f;
        if (o->hw - fabsf(v) < 0.8f)
            m *= 0.78f;
        break;
    }
    case CMIR_SYNTH_RGB_MOBILE_HOME:
        m = fabsf(v) < 0.6f ? 1.07f : 1.0f;
        if (o->hl - fabsf(u) < 0.5f / S->res || o->hw - fabsf(v) < 0.6f)
            m *= 0.88f;
        break;
    case CMIR_SYNTH_RGB_AIRPLANE:
        if (u < -0.6f * o->hl && fabsf(v) < 0.05f * o->hl) { /* tail livery */
            memcpy(out, o->col2, sizeof(float) * 3);
            return;
        }
        m = 1.0f - 0.08f * fabsf(v) / o->hw;
        break;
    default:
        break;
    }
    for (int b = 0; b < 3; b++)
        out[b] = o->col[b] * m;
}

/* Shadow (if any), then the body: colour, label, and no shadow on it. */
static void draw(rg_scene *S, const rg_obj *o)
{
    const size_t plane = (size_t)S->w * S->h;
    float R = radius(o) + 1.0f;
    if (o->height > 0.0f) {
        float L = o->height * S->sun_tan / (float)S->res;
        float dx = S->sun_x * L, dy = S->sun_y * L;
        int x0 = (int)floorf(o->cx - R + fminf(dx, 0)), x1 = (int)ceilf(o->cx + R + fmaxf(dx, 0));
        int y0 = (int)floorf(o->cy - R + fminf(dy, 0)), y1 = (int)ceilf(o->cy + R + fmaxf(dy, 0));
        for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < S->h; y++)
            for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < S->w; x++)
                if (in_shadow(o, x + 0.5f, y + 0.5f, dx, dy))
                    S->shadow[(size_t)y * S->w + x] = 1;
    }
    int x0 = (int)floorf(o->cx - R), x1 = (int)ceilf(o->cx + R);
    int y0 = (int)floorf(o->cy - R), y1 = (int)ceilf(o->cy + R);
    for (int y = y0 < 0 ? 0 : y0; y <= y1 && y < S->h; y++)
        for (int x = x0 < 0 ? 0 : x0; x <= x1 && x < S->w; x++) {
            float u, v;
            to_local(o, x + 0.5f, y + 0.5f, &u, &v);
            if (!inside(o, u, v))
                continue;
            float c[3];
            paint(S, o, u, v, x + 0.5f, y + 0.5f, c);
            size_t at = (size_t)y * S->w + x;
            for (int b = 0; b < 3; b++)
                S->c[b * plane + at] = c[b];
            S->lab[at] = (uint8_t)o->label;
            S->shadow[at] = 0;
        }
}

/* Draws o when it fits; returns whether it did. */
static int place(rg_scene *S, rg_obj *o, uint32_t allowed, float margin)
{
    if (!fits(S, o, allowed, margin))
        return 0;
    draw(S, o);
    return 1;
}

/* Position of grid slot (a along, b across) of a cluster at (cx, cy) with
 * direction (ca, sa), pitches in pixels. */
static void slot(float cx, float cy, float ca, float sa, float a, float b, float *x, float *y)
{
    *x = cx + a * ca - b * sa;
    *y = cy + a * sa + b * ca;
}

/* ---- palettes ---------------------------------------------------------------- */

static const float roof_pal[6][3] = {{168, 86, 64}, {122, 92, 76}, {84, 84, 92},
                                     {150, 62, 52}, {96, 70, 60},  {120, 125, 135}};
static const float flat_pal[4][3] = {{178, 175, 170}, {150, 150, 152}, {196, 186, 168}, {128, 132, 140}};
static const float car_pal[8][3] = {{222, 222, 224}, {32, 32, 36}, {170, 172, 176}, {176, 30, 32},
                                    {38, 62, 150},   {98, 98, 104}, {40, 74, 52},  {205, 192, 158}};
static const float mh_pal[4][3] = {{232, 230, 222}, {205, 218, 228}, {218, 228, 206}, {236, 224, 200}};
static const float court_pal[3][2][3] = {{{62, 128, 84}, {48, 100, 66}},
                                         {{52, 92, 150}, {66, 130, 86}},
                                         {{182, 96, 66}, {160, 84, 60}}};
static const float hull_pal[4][3] = {{36, 40, 56}, {150, 40, 36}, {215, 215, 212}, {60, 64, 70}};
static const float deck_pal[4][3] = {{196, 196, 190}, {150, 120, 90}, {120, 150, 130}, {170, 75, 60}};
static const float tree_pal[3][3] = {{44, 84, 40}, {58, 96, 46}, {36, 70, 44}};

/* ---- placers ------------------------------------------------------------------- */

typedef struct ctx {
    rg_scene *S;
    cmir_rng *g;
    float m;  /* pixels per metre */
} ctx;

static rg_obj obj(ctx *C, int label, int kind, float x, float y, float angle, float hl_m,
                  float hw_m, float height)
{
    rg_obj o;
    memset(&o, 0, sizeof o);
    o.label = label;
    o.kind = kind;
    o.cx = x;
    o.cy = y;
    set_dir(&o, angle);
    o.hl = hl_m * C->m;
    o.hw = hw_m * C->m;
    o.height = height;
    o.key = (uint32_t)(cmir_rng_u64(C->g) >> 32);
    return o;
}

/* Centre of a cluster: near the region's centre, shifted so that the
 * clusters of one region do not all pile up on the same spot. */
static void cluster_at(ctx *C, const rg_region *r, float *x, float *y)
{
    *x = r->cx + U(C->g, -0.2f, 0.2f) * (float)C->S->sp;
    *y = r->cy + U(C->g, -0.2f, 0.2f) * (float)C->S->sp;
}

/* Marches from (x, y) along (dx, dy) for up to n pixels while on water;
 * returns 1 with the first land pixel in *sx, *sy when it is land that a
 * pier can start from. */
static int find_shore(const rg_scene *S, float x, float y, float dx, float dy, int n, float *sx,
                      float *sy)
{
    const uint32_t shore = BIT(CMIR_SYNTH_RGB_PAVEMENT) | BIT(CMIR_SYNTH_RGB_SAND) |
                           BIT(CMIR_SYNTH_RGB_GRASS) | BIT(CMIR_SYNTH_RGB_BARE_SOIL);
    for (int i = 0; i < n; i++) {
        int px = (int)floorf(x + dx * i), py = (int)floorf(y + dy * i);
        if (px < 0 || py < 0 || px >= S->w || py >= S->h)
            return 0;
        int l = S->lab[(size_t)py * S->w + px];
        if (BIT(l) & WET)
            continue;
        *sx = x + dx * i;
        *sy = y + dy * i;
        return (BIT(l) & shore) != 0;
    }
    return 0;
}

static void moor_boats(ctx *C, const rg_obj *pier)
{
    int n = I(C->g, 0, 3);
    for (int i = 0; i < n; i++) {
        float len = U(C->g, 5, 11), side = chance(C->g, 0.5f) ? 1.0f : -1.0f;
        float a = U(C->g, -0.7f, 0.7f) * pier->hl;
        float off = side * (pier->hw + (0.25f * len + 1.2f) * C->m);
        float x, y;
        slot(pier->cx, pier->cy, pier->ca, pier->sa, a, off, &x, &y);
        rg_obj b = obj(C, CMIR_SYNTH_RGB_SHIP, SH_HULL, x, y, atan2f(pier->sa, pier->ca) +
                       (chance(C->g, 0.5f) ? 3.14159f : 0.0f), 0.5f * len, 0.2f * len, 1.0f);
        pick_colour(C->g, deck_pal, 4, C->S->var, b.col);
        pick_colour(C->g, hull_pal, 4, C->S->var, b.col2);
        place(C->S, &b, WET, 0.0f);
    }
}

static void place_docks(ctx *C, const rg_region *r)
{
    rg_scene *S = C->S;
    for (int tries = 0; tries < 8; tries++) {
        float th = U(C->g, 0, 6.2831853f), dx = cosf(th), dy = sinf(th), sx, sy;
        if (!find_shore(S, r->cx, r->cy, dx, dy, (int)(1.3 * S->sp), &sx, &sy))
            continue;
        int n = I(C->g, 1, 3);
        float len = U(C->g, 20, 50), wid = U(C->g, 2.6f, 4.5f), gap = U(C->g, 14, 24);
        float col[3];
        static const float wood[2][3] = {{150, 124, 94}, {176, 172, 164}};
        pick_colour(C->g, wood, 2, S->var, col);
        for (int k = 0; k < n; k++) {
            /* this pier's own shore point, offset along the shore */
            float ox = r->cx - dy * gap * C->m * k, oy = r->cy + dx * gap * C->m * k, qx, qy;
            if (k && !find_shore(S, ox, oy, dx, dy, (int)(1.5 * S->sp), &qx, &qy))
                continue;
            if (!k) {
                qx = sx;
                qy = sy;
            }
            float half = 0.5f * len * C->m, in = 2.0f * C->m;
            rg_obj o = obj(C, CMIR_SYNTH_RGB_DOCK, SH_RECT, qx - dx * (half - in), qy - dy * (half - in),
                           th, 0.5f * len, 0.5f * wid, 0.8f);
            memcpy(o.col, col, sizeof col);
            /* the far end and the middle must be over water */
            int ex = (int)(qx - dx * 2 * (half - in)), ey = (int)(qy - dy * 2 * (half - in));
            int mx = (int)(qx - dx * half), my = (int)(qy - dy * half);
            if (ex < 0 || ey < 0 || ex >= S->w || ey >= S->h || mx < 0 || my < 0 || mx >= S->w ||
                my >= S->h || !(BIT(S->lab[(size_t)ey * S->w + ex]) & WET) ||
                !(BIT(S->lab[(size_t)my * S->w + mx]) & WET))
                continue;
            draw(S, &o);
            if (chance(C->g, 0.5f)) { /* T head */
                rg_obj t = o;
                t.cx = qx - dx * (2 * half - in - 0.5f * wid * C->m);
                t.cy = qy - dy * (2 * half - in - 0.5f * wid * C->m);
                set_dir(&t, th + 1.5707963f);
                t.hl = U(C->g, 5, 10) * C->m;
                draw(S, &t);
            }
            moor_boats(C, &o);
        }
        return;
    }
}

static void place_courts(ctx *C, const rg_region *r)
{
    float x0, y0;
    cluster_at(C, r, &x0, &y0);
    int n = I(C->g, 1, 4), style = I(C->g, 0, 2);
    float hl = U(C->g, 15, 18), hw = U(C->g, 7.5f, 9.5f);
    float a = atan2f(r->sa, r->ca) + U(C->g, -0.1f, 0.1f);
    for (int k = 0; k < n; k++) {
        float x, y;
        slot(x0, y0, cosf(a), sinf(a), 0, (k - 0.5f * (n - 1)) * (2 * hw + 1.0f) * C->m, &x, &y);
        rg_obj o = obj(C, CMIR_SYNTH_RGB_COURT, SH_RECT, x, y, a, hl, hw, 0.0f);
        for (int b = 0; b < 3; b++) {
            o.col[b] = court_pal[style][0][b] * (1.0f + 0.05f * C->S->var * cmir_rng_normal(C->g));
            o.col2[b] = court_pal[style][1][b];
        }
        place(C->S, &o, BIT(r->cls), 0.0f);
    }
}

static void place_houses(ctx *C, const rg_region *r)
{
    float x0, y0;
    cluster_at(C, r, &x0, &y0);
    int rows = I(C->g, 2, 4), cols = I(C->g, 3, 7), gable = chance(C->g, 0.8f);
    float pa = U(C->g, 17, 24), pb = U(C->g, 20, 28);
    float a = atan2f(r->sa, r->ca);
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++) {
            if (chance(C->g, 0.15f))
                continue;
            float x, y;
            slot(x0, y0, cosf(a), sinf(a), (i - 0.5f * (cols - 1)) * pa * C->m,
                 (j - 0.5f * (rows - 1)) * pb * C->m, &x, &y);
            rg_obj o = obj(C, CMIR_SYNTH_RGB_BUILDINGS, SH_RECT, x, y, a + U(C->g, -0.08f, 0.08f),
                           U(C->g, 5, 8.5f), U(C->g, 4, 6.5f), U(C->g, 4, 8));
            o.style = gable ? 0 : 1;
            pick_colour(C->g, gable ? roof_pal : flat_pal, gable ? 6 : 4, C->S->var, o.col);
            place(C->S, &o, BIT(r->cls), 1.0f * C->m);
        }
}

static void place_big_buildings(ctx *C, const rg_region *r)
{
    int n = I(C->g, 1, 3);
    float a = atan2f(r->sa, r->ca);
    for (int k = 0; k < n; k++) {
        float x = r->cx + U(C->g, -0.3f, 0.3f) * (float)C->S->sp;
        float y = r->cy + U(C->g, -0.3f, 0.3f) * (float)C->S->sp;
        rg_obj o = obj(C, CMIR_SYNTH_RGB_BUILDINGS, SH_RECT, x, y, a, U(C->g, 11, 26), U(C->g, 8, 16),
                       U(C->g, 6, 18));
        o.style = chance(C->g, 0.8f) ? 1 : 0;
        pick_colour(C->g, o.style ? flat_pal : roof_pal, o.style ? 4 : 6, C->S->var, o.col);
        place(C->S, &o, BIT(r->cls), 2.0f * C->m);
    }
}

static void place_tanks(ctx *C, const rg_region *r)
{
    float x0, y0;
    cluster_at(C, r, &x0, &y0);
    int rows = I(C->g, 1, 3), cols = I(C->g, 2, 4);
    float rad = U(C->g, 4, 10), pitch = 2 * rad + U(C->g, 3, 8);
    float a = atan2f(r->sa, r->ca);
    static const float pal[3][3] = {{222, 222, 218}, {200, 200, 196}, {186, 190, 192}};
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++) {
            float x, y;
            slot(x0, y0, cosf(a), sinf(a), (i - 0.5f * (cols - 1)) * pitch * C->m,
                 (j - 0.5f * (rows - 1)) * pitch * C->m, &x, &y);
            float rr = rad * U(C->g, 0.85f, 1.1f);
            rg_obj o = obj(C, CMIR_SYNTH_RGB_TANKS, SH_CIRCLE, x, y, 0, rr, rr, U(C->g, 0.8f, 1.4f) * rr);
            pick_colour(C->g, pal, 3, C->S->var, o.col);
            place(C->S, &o, BIT(r->cls), 1.0f * C->m);
        }
}

static void place_mobile_homes(ctx *C, const rg_region *r)
{
    float x0, y0;
    cluster_at(C, r, &x0, &y0);
    int rows = I(C->g, 2, 4), per = I(C->g, 4, 9);
    float len = U(C->g, 12, 17), wid = U(C->g, 3.6f, 4.6f);
    float pa = wid + U(C->g, 2.5f, 4.5f), pb = len + U(C->g, 6, 10);
    float a = atan2f(r->sa, r->ca);
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < per; i++) {
            if (chance(C->g, 0.1f))
                continue;
            float x, y;
            slot(x0, y0, cosf(a), sinf(a), (i - 0.5f * (per - 1)) * pa * C->m,
                 (j - 0.5f * (rows - 1)) * pb * C->m, &x, &y);
            /* long axis across the row */
            rg_obj o = obj(C, CMIR_SYNTH_RGB_MOBILE_HOME, SH_RECT, x, y, a + 1.5707963f + U(C->g, -0.04f, 0.04f),
                           0.5f * len, 0.5f * wid, 3.5f);
            pick_colour(C->g, mh_pal, 4, C->S->var, o.col);
            place(C->S, &o, BIT(r->cls), 0.5f * C->m);
        }
}

/* A parking lot: double rows of stalls with painted lines, most taken. */
static void place_cars(ctx *C, const rg_region *r)
{
    float x0, y0;
    cluster_at(C, r, &x0, &y0);
    rg_scene *S = C->S;
    int rows = 2 * I(C->g, 1, 2), per = I(C->g, 8, 20);
    float a = atan2f(r->sa, r->ca), stall = 2.7f, depth = 5.2f, aisle = 7.0f;
    float occ = U(C->g, 0.6f, 0.95f);
    for (int j = 0; j < rows; j++) {
        float b = ((j / 2) * (2 * depth + aisle) + ((j & 1) ? 0.5f : -0.5f) * depth) -
                  0.5f * ((rows / 2 - 1) * (2 * depth + aisle));
        for (int i = 0; i < per; i++) {
            float x, y, along = (i - 0.5f * (per - 1)) * stall;
            slot(x0, y0, cosf(a), sinf(a), along * C->m, b * C->m, &x, &y);
            rg_obj line = obj(C, CMIR_SYNTH_RGB_PAVEMENT, SH_RECT, 0, 0, a + 1.5707963f, 0.5f * depth, 0.12f, 0);
            slot(x0, y0, cosf(a), sinf(a), (along - 0.5f * stall) * C->m, b * C->m, &line.cx, &line.cy);
            line.hw = 0.6f;
            line.col[0] = line.col[1] = line.col[2] = 190.0f;
            place(S, &line, BIT(CMIR_SYNTH_RGB_PAVEMENT), 0.0f);
            if (!chance(C->g, occ))
                continue;
            float dir = a + 1.5707963f + ((j & 1) ? 3.14159f : 0.0f) + U(C->g, -0.06f, 0.06f);
            rg_obj o = obj(C, CMIR_SYNTH_RGB_CARS, SH_RECT, x + U(C->g, -1, 1), y + U(C->g, -1, 1), dir,
                           U(C->g, 2.1f, 2.5f), U(C->g, 0.85f, 1.0f), 1.5f);
            pick_colour(C->g, car_pal, 8, S->var, o.col);
            place(S, &o, BIT(CMIR_SYNTH_RGB_PAVEMENT), 0.0f);
        }
    }
}

static void place_airplanes(ctx *C, const rg_region *r)
{
    float x0, y0;
    cluster_at(C, r, &x0, &y0);
    int n = I(C->g, 2, 4);
    float len = U(C->g, 24, 44), a = atan2f(r->sa, r->ca);
    float pitch = len * 1.0f + U(C->g, 6, 15);
    static const float body[3][3] = {{232, 234, 236}, {214, 216, 220}, {238, 236, 228}};
    static const float tail[3][3] = {{30, 60, 140}, {170, 30, 40}, {30, 120, 90}};
    for (int k = 0; k < n; k++) {
        float x, y;
        slot(x0, y0, cosf(a), sinf(a), 0, (k - 0.5f * (n - 1)) * pitch * C->m, &x, &y);
        float l = len * U(C->g, 0.9f, 1.1f);
        rg_obj o = obj(C, CMIR_SYNTH_RGB_AIRPLANE, SH_PLANE, x, y, a + U(C->g, -0.1f, 0.1f), 0.5f * l,
                       0.5f * l * U(C->g, 0.85f, 1.05f), 3.0f);
        pick_colour(C->g, body, 3, C->S->var, o.col);
        pick_colour(C->g, tail, 3, C->S->var, o.col2);
        for (int t = 0; t < 4 && !place(C->S, &o, BIT(CMIR_SYNTH_RGB_PAVEMENT), 1.0f * C->m); t++) {
            o.cx = x + U(C->g, -0.3f, 0.3f) * (float)C->S->sp; /* another spot on the apron */
            o.cy = y + U(C->g, -0.3f, 0.3f) * (float)C->S->sp;
        }
    }
}

static void place_ships(ctx *C, const rg_region *r)
{
    int sea = r->cls == CMIR_SYNTH_RGB_SEA, n = sea ? I(C->g, 2, 6) : I(C->g, 1, 3);
    for (int k = 0; k < n; k++) {
        float len = sea ? U(C->g, 14, 55) : U(C->g, 6, 18);
        float x = r->cx + U(C->g, -0.35f, 0.35f) * (float)C->S->sp;
        float y = r->cy + U(C->g, -0.35f, 0.35f) * (float)C->S->sp;
        rg_obj o = obj(C, CMIR_SYNTH_RGB_SHIP, SH_HULL, x, y, U(C->g, 0, 6.2831853f), 0.5f * len,
                       0.5f * len * U(C->g, 0.16f, 0.24f), 1.5f);
        o.style = len > 30 && chance(C->g, 0.6f);
        pick_colour(C->g, deck_pal, 4, C->S->var, o.col);
        pick_colour(C->g, hull_pal, 4, C->S->var, o.col2);
        place(C->S, &o, WET, 2.0f * C->m);
    }
}

static void tree_at(ctx *C, float x, float y, float rad, uint32_t allowed, const float col[3])
{
    rg_obj o = obj(C, CMIR_SYNTH_RGB_TREES, SH_CIRCLE, x, y, 0, rad, rad, rad * U(C->g, 1.8f, 2.8f));
    for (int b = 0; b < 3; b++)
        o.col[b] = col[b] * (1.0f + 0.06f * C->S->var * cmir_rng_normal(C->g));
    place(C->S, &o, allowed, -0.5f * o.hl);
}

static void place_trees(ctx *C, const rg_region *r)
{
    uint32_t allowed = BIT(r->cls) | BIT(CMIR_SYNTH_RGB_TREES);
    float col[3];
    pick_colour(C->g, tree_pal, 3, C->S->var, col);
    float a = atan2f(r->sa, r->ca);
    if (r->cls == CMIR_SYNTH_RGB_FIELD || r->cls == CMIR_SYNTH_RGB_PAVEMENT) { /* a row */
        int n = r->cls == CMIR_SYNTH_RGB_FIELD ? I(C->g, 8, 22) : I(C->g, 3, 8);
        float rad = U(C->g, 2.2f, 3.8f), off = U(C->g, -0.4f, 0.4f) * (float)C->S->sp;
        for (int i = 0; i < n; i++) {
            float x, y;
            slot(r->cx, r->cy, cosf(a), sinf(a), (i - 0.5f * (n - 1)) * 2.1f * rad * C->m, off, &x, &y);
            tree_at(C, x, y, rad * U(C->g, 0.85f, 1.15f), allowed, col);
        }
        return;
    }
    int clumps = r->cls == CMIR_SYNTH_RGB_GRASS ? I(C->g, 1, 3) : 1;
    for (int c = 0; c < clumps; c++) {
        float x0 = r->cx + U(C->g, -0.35f, 0.35f) * (float)C->S->sp;
        float y0 = r->cy + U(C->g, -0.35f, 0.35f) * (float)C->S->sp;
        float sig = U(C->g, 6, 16) * C->m;
        int n = r->cls == CMIR_SYNTH_RGB_GRASS ? I(C->g, 6, 28) : I(C->g, 3, 12);
        for (int i = 0; i < n; i++)
            tree_at(C, x0 + sig * cmir_rng_normal(C->g), y0 + sig * cmir_rng_normal(C->g),
                    U(C->g, 2.0f, 4.5f), allowed, col);
    }
}

/* ---- passes ------------------------------------------------------------------------ */

/* The object plan: for each pass, the chance that a region of a given
 * background carries each kind of cluster. */
static void region_pass(ctx *C, const rg_region *r, int pass)
{
    cmir_rng *g = C->g;
    int cls = r->cls;
    switch (pass) {
    case 0:
        if ((cls == CMIR_SYNTH_RGB_SEA || cls == CMIR_SYNTH_RGB_WATER) && chance(g, 0.6f))
            place_docks(C, r);
        break;
    case 1:
        if ((cls == CMIR_SYNTH_RGB_GRASS && chance(g, 0.2f)) ||
            (cls == CMIR_SYNTH_RGB_PAVEMENT && chance(g, 0.15f)) ||
            (cls == CMIR_SYNTH_RGB_BARE_SOIL && chance(g, 0.12f)))
            place_courts(C, r);
        break;
    case 2:
        if ((cls == CMIR_SYNTH_RGB_GRASS && chance(g, 0.45f)) ||
            (cls == CMIR_SYNTH_RGB_BARE_SOIL && chance(g, 0.2f)))
            place_houses(C, r);
        if (cls == CMIR_SYNTH_RGB_PAVEMENT && chance(g, 0.3f))
            place_big_buildings(C, r);
        if ((cls == CMIR_SYNTH_RGB_PAVEMENT && chance(g, 0.25f)) ||
            ((cls == CMIR_SYNTH_RGB_BARE_SOIL || cls == CMIR_SYNTH_RGB_SAND) && chance(g, 0.3f)))
            place_tanks(C, r);
        if ((cls == CMIR_SYNTH_RGB_GRASS || cls == CMIR_SYNTH_RGB_BARE_SOIL) && chance(g, 0.35f))
            place_mobile_homes(C, r);
        break;
    case 3:
        if (cls == CMIR_SYNTH_RGB_PAVEMENT && chance(g, 0.65f))
            place_cars(C, r);
        if (cls == CMIR_SYNTH_RGB_PAVEMENT && chance(g, 0.5f))
            place_airplanes(C, r);
        if ((cls == CMIR_SYNTH_RGB_SEA && chance(g, 0.8f)) || (cls == CMIR_SYNTH_RGB_WATER && chance(g, 0.5f)))
            place_ships(C, r);
        break;
    default:
        if ((cls == CMIR_SYNTH_RGB_GRASS && chance(g, 0.8f)) ||
            (cls == CMIR_SYNTH_RGB_BARE_SOIL && chance(g, 0.4f)) ||
            (cls == CMIR_SYNTH_RGB_CHAPARRAL && chance(g, 0.35f)) ||
            (cls == CMIR_SYNTH_RGB_FIELD && chance(g, 0.4f)) ||
            (cls == CMIR_SYNTH_RGB_PAVEMENT && chance(g, 0.2f)))
            place_trees(C, r);
        break;
    }
}

int cmir__rg_objects(rg_scene *S, cmir_rng *g)
{
    ctx C = {S, g, (float)(1.0 / S->res)};
    float margin = (float)(0.6 * S->sp);
    for (int pass = 0; pass < 5; pass++)
        for (int j = 0; j < S->ny; j++)
            for (int i = 0; i < S->nx; i++) {
                const rg_region *r = &S->r[(size_t)j * S->nx + i];
                if (r->cx < -margin || r->cy < -margin || r->cx > S->w + margin || r->cy > S->h + margin)
                    continue;
                region_pass(&C, r, pass);
            }
    return 0;
}
