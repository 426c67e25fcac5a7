/* Internal to the synth module: counter-based hashing and value noise for
 * procedural textures, the region layout, class shading, the sensor model
 * (MTF blur + decimation) and the GeoTIFF writer shared by both modes. */
#ifndef CMIR_SYNTH_INTERNAL_H
#define CMIR_SYNTH_INTERNAL_H

#include "cmir/synth.h"
#include "../base/internal.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* ---- hashing (pure functions of their arguments: textures are the same
 * whatever order or thread evaluates them) ---- */
static inline uint32_t sy_mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline uint32_t sy_hash(uint32_t key, int32_t i, int32_t j)
{
    return sy_mix(key ^ sy_mix((uint32_t)i * 0x9E3779B1U ^ sy_mix((uint32_t)j + 0x632BE5ABU)));
}

/* Uniform in [0, 1). */
static inline float sy_hashf(uint32_t key, int32_t i, int32_t j)
{
    return (float)(sy_hash(key, i, j) >> 8) * (1.0f / 16777216.0f);
}

static inline uint32_t sy_subkey(uint32_t key, uint32_t salt) { return sy_mix(key + 0x9E3779B9U * salt); }

static inline float sy_clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }
static inline float sy_lerp(float a, float b, float t) { return a + (b - a) * t; }
static inline float sy_smooth(float e0, float e1, float x)
{
    float t = sy_clampf((x - e0) / (e1 - e0), 0.0f, 1.0f);
    return t * t * (3.0f - 2.0f * t);
}

/* Value noise on the unit lattice, in [-1, 1]; fbm sums `oct` octaves
 * (lacunarity 2, gain 0.5), about [-1, 1]. Defined in noise.c. */
float cmir__sy_vnoise(uint32_t key, double x, double y);
float cmir__sy_fbm(uint32_t key, double x, double y, int oct);
/* Worley F1 on a jittered unit lattice: distance to the nearest feature
 * point (lattice units); its cell goes to ci, cj and the offset from the
 * query to it to dx, dy. */
float cmir__sy_worley(uint32_t key, double x, double y, int32_t *ci, int32_t *cj, float *dx,
                      float *dy);

/* ---- layout ---- */
typedef struct sy_region {
    double x, y;     /* seed, scene metres (warped space) */
    int cls;         /* label 1..8 */
    int ground;      /* class rendered on the ground (differs for cloud) */
    uint32_t key;    /* texture key */
    float gain[4];   /* spectral jitter multipliers */
    float ca, sa;    /* cos/sin of the texture orientation */
    float t[8];      /* texture parameters, already pulled towards 0.5 by
                        (1 - variation) */
} sy_region;

typedef struct sy_layout {
    const cmir_synth_params *p;
    uint32_t key;
    double spacing;
    int gx0, gy0, nx, ny; /* seed grid: indices gx0.., gy0.. */
    sy_region *r;         /* nx * ny */
    double warp_amp, warp_scale;
    float sun_x, sun_y;   /* unit vector towards the sun, (east, south) */
    float sun_tan;        /* tan(zenith): shadow length per metre of height */
    float scene_gain[4];  /* illumination / calibration drift per band */
    float haze[4];        /* additive path reflectance per band */
    float variation, confusion;
} sy_layout;

/* What the layout says about one point. */
typedef struct sy_hit {
    const sy_region *r; /* region (nearest seed) */
    float border;       /* distance to the region's border, metres (>= 0) */
    float cloud;        /* cloud opacity 0..1 */
    float cloud_shadow; /* 0..1, fraction of direct light blocked */
} sy_hit;

int cmir__sy_layout_init(sy_layout *L, const cmir_synth_params *p, int index, double w_m,
                         double h_m);
void cmir__sy_layout_free(sy_layout *L);
void cmir__sy_locate(const sy_layout *L, double x, double y, sy_hit *h);

/* Ground reflectance of region r's ground class at (x, y) metres, in
 * out[4] (B, G, R, NIR), before cloud, haze and scene gain. */
void cmir__sy_shade(const sy_layout *L, const sy_region *r, double x, double y, float border,
                    float out[4]);
/* Cloud-top reflectance at (x, y). */
void cmir__sy_cloud_colour(const sy_layout *L, double x, double y, float out[4]);

/* ---- sensor ---- */
/* Gaussian sigma, in fine pixels, whose MTF at the Nyquist frequency of a
 * grid `ratio` times coarser equals mtf. */
double cmir__sy_mtf_sigma(double mtf, int ratio);
/* Blurs src (h x w) with that Gaussian and decimates by ratio into dst
 * (h/ratio x w/ratio). valid/dst_valid (may be NULL together): 1 = data;
 * an output is invalid when any input under the kernel is. Mirrored edges.
 * Returns 0 or CMIR_ENOMEM. */
int cmir__sy_degrade(const float *src, const uint8_t *valid, int w, int h, int ratio,
                     double sigma, int n_threads, float *dst, uint8_t *dst_valid);
/* Normalised PAN weights of p (sum 1). */
void cmir__sy_pan_weights(const cmir_synth_params *p, float w[4]);
int cmir__sy_threads(const cmir_synth_params *p);

/* ---- GeoTIFF output ---- */
typedef struct sy_raster {
    int w, h, nbands;
    int gdt;                        /* GDALDataType */
    const void *data;               /* band-sequential */
    double gt[6];
    const char *wkt;
    const char *const *band_desc;   /* nbands or NULL */
    const int *color_interp;        /* nbands GDALColorInterp or NULL */
    int has_nodata;
    double nodata;
    int has_scale;
    double scale, offset;
    int is_class;                   /* add the 8-class colour table + names */
    const void *ctable;             /* GDALColorTableH to copy, or NULL */
    char **categories;              /* category names to copy, or NULL */
    char **metadata;                /* dataset "KEY=VALUE" items, or NULL */
} sy_raster;

/* A set of outputs written under temporary names and renamed together. */
typedef struct sy_outset {
    int n;
    cmir__atomic_file af[4]; /* af[i].path the final name, af[i].tmp GDAL's */
} sy_outset;

/* Writes r to a fresh temporary file beside `final`; the pair is added to
 * o. Returns 0 or CMIR_EIO / CMIR_ENOMEM ("gdal: final: ..."). */
int cmir__sy_write(sy_outset *o, const char *final, const sy_raster *r, const char *const *co);
/* 0 when every "NAME=VALUE" of co is a valid GTiff creation option, else
 * CMIR_EINVAL with GDAL's reason. */
int cmir__sy_check_options(const char *const *co);
/* Renames every temporary file (and its .aux.xml) over its final name. */
int cmir__sy_commit(sy_outset *o);
/* Removes remaining temporary files and frees o's strings. */
void cmir__sy_outset_clear(sy_outset *o);
/* WKT of an EPSG code (cmir__free it), or NULL with CMIR_EINVAL set. */
char *cmir__sy_epsg_wkt(int epsg);
/* Checks every mode shares (n_scenes and first_index, variation, noise,
 * threads): 0 or CMIR_EINVAL naming the field. */
int cmir__sy_check_common(const cmir_synth_params *p);
/* Before rendering scene `index`: index >= 0 and p->epsg a known CRS. */
int cmir__sy_check_render(const cmir_synth_params *p, int index);
/* One scene of a run: render scene `index` (progress as a fraction of
 * it), write it as <prefix>_*.tif, free it. 0 or a CMIR_E* code. */
typedef int (*cmir__sy_scene_fn)(const cmir_synth_params *p, int index, const char *prefix,
                                 cmir_progress_fn progress, void *user);
/* The scenes first_index .. first_index + n_scenes - 1 of p as
 * <dir>/<name>_<kkk>_*: checks the creation options, dir and name, then
 * calls scene for each (render_share of each scene's progress span goes
 * to it, the rest is reported when it is written; a non-zero return from
 * progress cancels with CMIR_ECANCEL). p itself must be checked first. */
int cmir__sy_run(const cmir_synth_params *p, const char *dir, const char *name, double render_share,
                 cmir__sy_scene_fn scene, cmir_progress_fn progress, void *user);
/* mkdir -p for an output directory: 0, or CMIR_EINVAL when a part of it is
 * not a directory, CMIR_EIO/CMIR_ENOTFOUND with the reason. *made is the
 * length of the part of dir that existed (-1: nothing created). */
int cmir__sy_make_dirs(const char *dir, ptrdiff_t *made);
/* After a failed run: removes the directories cmir__sy_make_dirs made, as
 * far as they are empty. */
void cmir__sy_unmake_dirs(const char *dir, ptrdiff_t made);
/* Default class colours (index 0..8). */
extern const unsigned char cmir__sy_class_rgb[9][3];

#endif
