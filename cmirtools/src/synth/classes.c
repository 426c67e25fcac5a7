/* Ground reflectance of the DSRSID classes: material spectra (blue, green,
 * red, NIR) and procedural textures in metres: pond grids with dykes, tree
 * crowns, city blocks and houses with cast shadows, crop parcels with rows,
 * meandering rivers, lakes with shores, and cloud tops. */
#include "synth_internal.h"

/* Reflectance spectra, B G R NIR (typical values for these surfaces). */
static const float M_DEEP[4] = {0.050f, 0.055f, 0.035f, 0.015f};
static const float M_TURBID[4] = {0.075f, 0.095f, 0.090f, 0.040f};
static const float M_ALGAE[4] = {0.045f, 0.080f, 0.050f, 0.060f};
static const float M_SOIL[4] = {0.110f, 0.140f, 0.180f, 0.240f};
static const float M_WETSOIL[4] = {0.065f, 0.085f, 0.105f, 0.150f};
static const float M_SAND[4] = {0.150f, 0.180f, 0.220f, 0.270f};
static const float M_CROP[4] = {0.035f, 0.075f, 0.045f, 0.400f};
static const float M_GRASS[4] = {0.050f, 0.085f, 0.070f, 0.300f};
static const float M_RIPE[4] = {0.075f, 0.115f, 0.150f, 0.310f};
static const float M_TREE[4] = {0.028f, 0.055f, 0.033f, 0.330f};
static const float M_CONIFER[4] = {0.020f, 0.040f, 0.025f, 0.220f};
static const float M_CONCRETE[4] = {0.170f, 0.180f, 0.190f, 0.210f};
static const float M_WHITE[4] = {0.300f, 0.310f, 0.320f, 0.330f};
static const float M_ROOFRED[4] = {0.090f, 0.095f, 0.170f, 0.210f};
static const float M_ROOFBLUE[4] = {0.190f, 0.165f, 0.120f, 0.140f};
static const float M_ROOFDARK[4] = {0.075f, 0.078f, 0.085f, 0.100f};
static const float M_ASPHALT[4] = {0.065f, 0.070f, 0.075f, 0.085f};
static const float M_CLOUD[4] = {0.640f, 0.630f, 0.620f, 0.600f};
/* Shadow: direct light gone, bluish skylight left (multiplier). */
static const float SHADOW[4] = {0.42f, 0.34f, 0.28f, 0.22f};

static inline void set(float o[4], const float m[4], float k)
{
    for (int b = 0; b < 4; b++)
        o[b] = m[b] * k;
}

static inline void mix(float o[4], const float a[4], const float b[4], float t)
{
    for (int i = 0; i < 4; i++)
        o[i] = a[i] + (b[i] - a[i]) * t;
}

static inline void shadow(float o[4], float amount)
{
    for (int b = 0; b < 4; b++)
        o[b] *= 1.0f - amount * (1.0f - SHADOW[b]);
}

static inline float h01(uint32_t h, int shift) { return (float)((h >> shift) & 0xFF) / 255.0f; }

/* Local frame of a region: u along its orientation, v across. */
static inline void local(const sy_region *r, double x, double y, double *u, double *v)
{
    double dx = x - r->x, dy = y - r->y;
    *u = r->ca * dx + r->sa * dy;
    *v = -r->sa * dx + r->ca * dy;
}

/* ---- aquafarm: a grid of rectangular ponds separated by dykes ---- */
static void aquafarm(const sy_layout *L, const sy_region *r, double x, double y, float o[4])
{
    float c = L->confusion;
    double u, v;
    local(r, x, y, &u, &v);
    double Lu = (50.0 + 70.0 * r->t[0]) * (1.0 + 0.5 * c);
    double Lv = (35.0 + 45.0 * r->t[1]) * (1.0 + 0.5 * c);
    double dw = (4.0 + 5.0 * r->t[2]) * (1.0 - 0.5 * c);
    int32_t iv = (int32_t)floor(v / Lv);
    double su = u + sy_hashf(r->key, 0, iv) * Lu;
    int32_t iu = (int32_t)floor(su / Lu);
    double fu = su - iu * Lu, fv = v - iv * Lv;
    double d = fmin(fmin(fu, Lu - fu), fmin(fv, Lv - fv));
    uint32_t hp = sy_hash(r->key ^ 0xA9U, iu, iv);
    if (d < 0.5 * dw) {
        /* Dyke: a track on top, grass on the slopes. */
        float g = sy_clampf(0.5f + 0.6f * cmir__sy_fbm(r->key, x / 7.0, y / 7.0, 2), 0.0f, 1.0f);
        mix(o, M_SOIL, M_GRASS, d < 0.2 * dw ? 0.2f * g : g);
        return;
    }
    float k = h01(hp, 0);
    const float *m = k < 0.08f ? M_WETSOIL : k < 0.45f ? M_ALGAE : k < 0.80f ? M_TURBID : M_DEEP;
    float col[4];
    mix(col, m, M_DEEP, 0.6f * c);
    float ripple = 1.0f + 0.05f * cmir__sy_fbm(r->key ^ 0x51U, x / 9.0, y / 9.0, 2);
    set(o, col, ripple * (0.9f + 0.2f * h01(hp, 8)));
    if (d < 0.5 * dw + 2.0 && m != M_WETSOIL) { /* shallow margin */
        float t = (float)(1.0 - (d - 0.5 * dw) / 2.0);
        for (int b = 0; b < 4; b++)
            o[b] += 0.3f * t * (M_WETSOIL[b] - o[b]);
    }
}

/* ---- forest: sunlit crowns on a jittered lattice, dark gaps ---- */
static void forest(const sy_layout *L, const sy_region *r, double x, double y, float o[4])
{
    double s = 5.0 + 4.0 * r->t[0];
    float stand = cmir__sy_fbm(r->key, x / 140.0, y / 140.0, 3);
    float conifer = sy_smooth(-0.4f, 0.4f, stand + (r->t[1] - 0.5f));
    float glade = cmir__sy_fbm(r->key ^ 0x6AU, x / 90.0, y / 90.0, 3);
    float base[4];
    mix(base, M_TREE, M_CONIFER, conifer);
    if (glade > 0.62f + 0.5f * r->t[2]) {
        mix(o, M_GRASS, M_SOIL, 0.3f * (1.0f + cmir__sy_fbm(r->key, x / 11.0, y / 11.0, 2)));
        return;
    }
    int32_t ci, cj;
    float dx, dy;
    float d = cmir__sy_worley(r->key ^ 0x3CU, x / s, y / s, &ci, &cj, &dx, &dy);
    float rad = 0.50f + 0.25f * sy_hashf(r->key, ci, cj);
    if (d < rad) {
        /* Dome normal (p - centre) / rad against the sun direction. */
        float nx = -dx / rad, ny = -dy / rad;
        float lit = 0.8f + 0.6f * (nx * L->sun_x + ny * L->sun_y) - 0.3f * (d / rad) * (d / rad);
        set(o, base, sy_clampf(lit, 0.3f, 1.4f) * (0.8f + 0.4f * sy_hashf(r->key ^ 1U, ci, cj)));
    } else {
        set(o, base, 0.8f);
        shadow(o, 0.9f);
    }
}

/* ---- buildings: blocks, lots, footprints, heights ---- */
typedef struct bld {
    int kind;   /* 0 road, 1 open ground, 2 building */
    float h;    /* building height, metres */
    uint32_t id;
    float pos;  /* across-roof position 0..1 (pitched roofs) */
    float edge; /* distance to footprint edge, metres */
} bld;

static float high_mean_height(const sy_layout *L, const sy_region *r)
{
    return sy_lerp(35.0f + 50.0f * r->t[3], 14.0f, 0.6f * L->confusion);
}

static void high_at(const sy_layout *L, const sy_region *r, double u, double v, bld *b)
{
    double Bu = 90.0 + 60.0 * r->t[0], Bv = 80.0 + 60.0 * r->t[1], road = 14.0 + 10.0 * r->t[2];
    int32_t iu = (int32_t)floor(u / Bu), iv = (int32_t)floor(v / Bv);
    double fu = u - iu * Bu - 0.5 * road, fv = v - iv * Bv - 0.5 * road;
    double inu = Bu - road, inv = Bv - road;
    b->kind = 0;
    if (fu < 0 || fu >= inu || fv < 0 || fv >= inv)
        return;
    uint32_t hb = sy_hash(r->key, iu, iv);
    int nlu = 1 + (int)(hb & 1U), nlv = 1 + (int)((hb >> 1) & 1U);
    double lu = inu / nlu, lv = inv / nlv;
    int ku = (int)(fu / lu), kv = (int)(fv / lv);
    double gu = fu - ku * lu, gv = fv - kv * lv;
    uint32_t hl = sy_hash(r->key ^ 0x77U, iu * 4 + ku, iv * 4 + kv);
    b->kind = 1;
    b->id = hl;
    if ((hl & 0xFFU) < 38U)
        return; /* an open lot */
    double wu = lu * (0.45 + 0.35 * h01(hl, 8)), wv = lv * (0.45 + 0.35 * h01(hl, 16));
    double ou = (lu - wu) * (double)((hl >> 24) & 0xFU) / 15.0;
    double ov = (lv - wv) * (double)((hl >> 28) & 0xFU) / 15.0;
    if (gu < ou || gu >= ou + wu || gv < ov || gv >= ov + wv)
        return;
    b->kind = 2;
    b->h = high_mean_height(L, r) * (0.5f + sy_hashf(hl, 1, 2));
    b->edge = (float)fmin(fmin(gu - ou, ou + wu - gu), fmin(gv - ov, ov + wv - gv));
    b->pos = 0.5f;
}

static void low_at(const sy_layout *L, const sy_region *r, double u, double v, bld *b)
{
    float c = L->confusion;
    double Bu = 45.0 + 30.0 * r->t[0], Bv = 34.0 + 20.0 * r->t[1], alley = 3.0 + 3.0 * r->t[2];
    int32_t iu = (int32_t)floor(u / Bu), iv = (int32_t)floor(v / Bv);
    double fu = u - iu * Bu - 0.5 * alley, fv = v - iv * Bv - 0.5 * alley;
    double inu = Bu - alley, inv = Bv - alley;
    b->kind = 0;
    if (fu < 0 || fu >= inu || fv < 0 || fv >= inv)
        return;
    int kr = fv < 0.5 * inv ? 0 : 1;
    double depth = 0.5 * inv, gv = fv - kr * depth;
    double hw = (8.0 + 5.0 * r->t[3]) * (1.0 + 0.5 * c);
    double su = fu + sy_hashf(r->key, iv * 2 + kr, iu) * hw;
    int32_t k = (int32_t)floor(su / hw);
    double gu = su - k * hw;
    uint32_t hh = sy_hash(r->key ^ 0x99U, iu * 64 + k, iv * 2 + kr);
    b->kind = 1;
    b->id = hh;
    if ((hh & 0xFFU) < 31U || gu < 0.8 || gu > hw - 0.8 || gv < 1.0 || gv > depth - 0.6)
        return; /* courtyard or gap between houses */
    b->kind = 2;
    b->h = (3.5f + 5.0f * h01(hh, 8)) * (1.0f + 1.2f * c);
    b->pos = (float)((gv - 1.0) / (depth - 1.6));
    b->edge = (float)fmin(fmin(gu - 0.8, hw - 0.8 - gu), fmin(gv - 1.0, depth - 0.6 - gv));
}

typedef void (*bld_fn)(const sy_layout *, const sy_region *, double, double, bld *);

/* Fraction of direct sun blocked at local (u, v), height z: a building
 * towards the sun that rises above the line of sight casts the shadow. */
static float cast_shadow(const sy_layout *L, const sy_region *r, bld_fn at, double u, double v,
                         float z, float hmax, float step)
{
    float su = r->ca * L->sun_x + r->sa * L->sun_y, sv = -r->sa * L->sun_x + r->ca * L->sun_y;
    float reach = (hmax - z) * L->sun_tan;
    bld b;
    for (float t = step; t <= reach; t += step) {
        at(L, r, u + t * su, v + t * sv, &b);
        if (b.kind == 2 && (b.h - z) * L->sun_tan >= t)
            return 1.0f;
    }
    return 0.0f;
}

static void roof_colour(uint32_t id, int low, float o[4])
{
    float k = h01(id, 16), br = 0.85f + 0.3f * h01(id, 24);
    const float *m;
    if (low)
        m = k < 0.35f ? M_ROOFRED : k < 0.65f ? M_CONCRETE : k < 0.80f ? M_ROOFBLUE
            : k < 0.90f ? M_ROOFDARK : M_WHITE;
    else
        m = k < 0.50f ? M_CONCRETE : k < 0.65f ? M_WHITE : k < 0.80f ? M_ROOFBLUE : M_ROOFDARK;
    set(o, m, br);
}

static void high_building(const sy_layout *L, const sy_region *r, double x, double y, float o[4])
{
    double u, v;
    local(r, x, y, &u, &v);
    bld b;
    high_at(L, r, u, v, &b);
    float z = 0.0f;
    if (b.kind == 2) {
        roof_colour(b.id, 0, o);
        float detail = 1.0f + 0.08f * cmir__sy_fbm(b.id, x / 3.0, y / 3.0, 2);
        set(o, o, detail * (b.edge < 1.0f ? 0.85f : 1.0f));
        z = b.h;
    } else if (b.kind == 1) {
        float g = cmir__sy_fbm(r->key ^ 0x44U, x / 18.0, y / 18.0, 3);
        if ((b.id >> 8 & 0xFFU) < 100U && g > -0.2f)
            mix(o, M_GRASS, M_TREE, sy_clampf(g, 0.0f, 1.0f));
        else
            set(o, M_CONCRETE, 0.8f + 0.1f * g);
    } else {
        set(o, M_ASPHALT, 1.0f + 0.05f * cmir__sy_fbm(r->key, x / 5.0, y / 5.0, 2));
    }
    float hmax = 1.5f * high_mean_height(L, r);
    float s = cast_shadow(L, r, high_at, u, v, z, hmax, 3.0f);
    if (s > 0.0f)
        shadow(o, s);
}

static void low_building(const sy_layout *L, const sy_region *r, double x, double y, float o[4])
{
    float c = L->confusion;
    float tree = cmir__sy_fbm(r->key ^ 0x7EU, x / 22.0, y / 22.0, 3);
    if (tree > 0.55f + 0.4f * r->t[4]) {
        float lit = 1.0f + 0.25f * cmir__sy_fbm(r->key, x / 3.0, y / 3.0, 2);
        set(o, M_TREE, lit);
        return;
    }
    double u, v;
    local(r, x, y, &u, &v);
    bld b;
    low_at(L, r, u, v, &b);
    float z = 0.0f;
    if (b.kind == 2) {
        roof_colour(b.id, 1, o);
        /* Pitched roof: the half facing the sun is brighter. */
        float sv = -r->sa * L->sun_x + r->ca * L->sun_y;
        float face = b.pos < 0.5f ? -sv : sv;
        set(o, o, (1.0f + 0.2f * face) * (b.edge < 0.5f ? 0.85f : 1.0f));
        z = b.h;
    } else if (b.kind == 1) {
        float g = cmir__sy_fbm(r->key ^ 0x45U, x / 6.0, y / 6.0, 2);
        mix(o, M_SOIL, M_GRASS, sy_clampf(0.4f + 0.5f * g, 0.0f, 1.0f));
    } else {
        mix(o, M_CONCRETE, M_SOIL, 0.5f + 0.3f * cmir__sy_fbm(r->key, x / 8.0, y / 8.0, 2));
        set(o, o, 0.85f);
    }
    float s = cast_shadow(L, r, low_at, u, v, z, 8.5f * (1.0f + 1.2f * c), 1.5f);
    if (s > 0.0f)
        shadow(o, s);
}

/* ---- farm land: strip parcels, crop states, row texture ---- */
static void farm_land(const sy_layout *L, const sy_region *r, double x, double y, float o[4])
{
    double u, v;
    local(r, x, y, &u, &v);
    double W = 18.0 + 30.0 * r->t[0], Lp = 80.0 + 120.0 * r->t[1];
    int32_t iv = (int32_t)floor(v / W);
    double su = u + sy_hashf(r->key, iv, 7) * Lp;
    int32_t iu = (int32_t)floor(su / Lp);
    double fu = su - iu * Lp, fv = v - iv * W;
    float mott = 1.0f + 0.07f * cmir__sy_fbm(r->key, x / 25.0, y / 25.0, 3);
    if (fmin(fmin(fu, Lp - fu), fmin(fv, W - fv)) < 0.9) { /* field margin */
        mix(o, M_GRASS, M_SOIL, 0.5f);
        return;
    }
    uint32_t hp = sy_hash(r->key ^ 0xF4U, iu, iv);
    float k = h01(hp, 0) * (0.7f + 0.6f * r->t[2]);
    mott *= 0.82f + 0.36f * h01(hp, 12); /* parcels differ in vigour, moisture */
    double period = 3.0 + 4.0 * h01(hp, 8);
    double along = (hp >> 16 & 1U) ? fu : fv;
    float row = 0.5f + 0.5f * (float)sin(6.283185307 * along / period);
    if (k < 0.45f) { /* green crop, rows closing up */
        float dens = 0.65f + 0.35f * h01(hp, 20);
        mix(o, M_SOIL, M_CROP, dens * (0.7f + 0.3f * row));
    } else if (k < 0.70f) { /* bare, ploughed */
        mix(o, M_SOIL, M_WETSOIL, 0.4f * h01(hp, 24) + 0.2f * row);
    } else if (k < 0.85f) { /* ripe */
        set(o, M_RIPE, 0.92f + 0.12f * row);
    } else { /* young crop */
        mix(o, M_SOIL, M_CROP, 0.25f + 0.3f * row);
    }
    set(o, o, mott);
}

/* ---- river: a meandering turbid channel with banks and floodplain ---- */
static void river(const sy_layout *L, const sy_region *r, double x, double y, float o[4])
{
    float c = L->confusion;
    double u, v;
    local(r, x, y, &u, &v);
    double A = 30.0 + 90.0 * r->t[0], lam = 500.0 + 700.0 * r->t[1];
    double ph = 6.283185307 * r->t[5], ph2 = 6.283185307 * r->t[6];
    double centre = A * sin(6.283185307 * u / lam + ph) + 0.35 * A * sin(6.283185307 * u / (0.43 * lam) + ph2) +
                    25.0 * cmir__sy_fbm(r->key, u / 220.0, 0.5, 3);
    double w = (200.0 + 200.0 * r->t[2]) * (1.0 + 1.0 * c) *
               (1.0 + 0.15 * cmir__sy_fbm(r->key ^ 5U, u / 300.0, 1.5, 2));
    double dv = fabs(v - centre), bank = 8.0 + 15.0 * r->t[3];
    if (dv < 0.5 * w) {
        float sed = 0.45f + 0.35f * cmir__sy_fbm(r->key ^ 9U, x / 150.0, y / 150.0, 3);
        float col[4];
        mix(col, M_TURBID, M_DEEP, sy_clampf(1.0f - sed + 0.6f * c, 0.0f, 1.0f));
        set(o, col, 1.0f + 0.04f * cmir__sy_fbm(r->key, x / 8.0, y / 8.0, 2));
        double shallow = 0.5 * w - dv;
        if (shallow < 6.0)
            mix(o, o, M_WETSOIL, (float)(0.4 * (1.0 - shallow / 6.0)));
        if (r->t[4] > 0.5f && dv > 0.25 * w &&
            cmir__sy_fbm(r->key ^ 0xBBU, u / 70.0, v / 25.0, 3) > 0.75f)
            mix(o, M_SAND, M_WETSOIL, 0.3f);
        return;
    }
    if (dv < 0.5 * w + bank) {
        mix(o, M_SAND, M_WETSOIL, 0.5f + 0.4f * cmir__sy_fbm(r->key, x / 12.0, y / 12.0, 2));
        return;
    }
    float g = cmir__sy_fbm(r->key ^ 0xC1U, x / 80.0, y / 80.0, 3);
    if (g > 0.35f)
        set(o, M_TREE, 1.0f + 0.2f * cmir__sy_fbm(r->key, x / 4.0, y / 4.0, 2));
    else
        mix(o, M_GRASS, M_SOIL, sy_clampf(0.45f + 0.6f * g, 0.0f, 1.0f));
}

/* ---- water: lake or reservoir with turbidity patches and a shore ---- */
static void water(const sy_layout *L, const sy_region *r, double x, double y, float border,
                  float o[4])
{
    float c = L->confusion;
    float turb = 0.15f + 0.3f * r->t[0] + 0.3f * cmir__sy_fbm(r->key, x / 400.0, y / 400.0, 3);
    mix(o, M_DEEP, M_TURBID, sy_clampf(turb + 0.4f * c, 0.0f, 1.0f));
    set(o, o, 1.0f + 0.03f * cmir__sy_fbm(r->key ^ 3U, x / 6.0, y / 6.0, 2));
    float shore = 10.0f + 25.0f * r->t[1] + 12.0f * cmir__sy_fbm(r->key ^ 4U, x / 40.0, y / 40.0, 2);
    if (border < shore) {
        float t = sy_smooth(shore, 0.3f * shore, border);
        float land[4];
        mix(land, M_SAND, M_GRASS, 0.5f + 0.5f * cmir__sy_fbm(r->key, x / 15.0, y / 15.0, 2));
        mix(o, o, land, t);
    }
}

void cmir__sy_shade(const sy_layout *L, const sy_region *r, double x, double y, float border,
                    float out[4])
{
    switch (r->ground) {
    case CMIR_SYNTH_AQUAFARM: aquafarm(L, r, x, y, out); break;
    case CMIR_SYNTH_FOREST: forest(L, r, x, y, out); break;
    case CMIR_SYNTH_HIGH_BUILDING: high_building(L, r, x, y, out); break;
    case CMIR_SYNTH_LOW_BUILDING: low_building(L, r, x, y, out); break;
    case CMIR_SYNTH_FARM_LAND: farm_land(L, r, x, y, out); break;
    case CMIR_SYNTH_RIVER: river(L, r, x, y, out); break;
    default: water(L, r, x, y, border, out); break;
    }
    for (int b = 0; b < 4; b++)
        out[b] *= r->gain[b];
}

void cmir__sy_cloud_colour(const sy_layout *L, double x, double y, float out[4])
{
    float k = 0.86f + 0.14f * cmir__sy_fbm(L->key ^ 0x5555U, x / 45.0, y / 45.0, 4);
    set(out, M_CLOUD, k);
}
