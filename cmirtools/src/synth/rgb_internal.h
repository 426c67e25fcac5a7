/* Internal to the RGB multi-label mode: the scene canvas shared by the
 * background renderer (rgb.c) and the object placer (rgb_objects.c), and
 * the region layout both use. */
#ifndef CMIR_RGB_INTERNAL_H
#define CMIR_RGB_INTERNAL_H

#include "synth_internal.h"

/* One background region: a Voronoi seed and its land cover. */
typedef struct rg_region {
    float x, y;    /* seed, pixels, in the warped space */
    float cx, cy;  /* about the region's centre in the image: seed minus the warp */
    int cls;       /* background label (CMIR_SYNTH_RGB_*) */
    uint32_t key;  /* texture key */
    float tint[3]; /* colour jitter multipliers */
    float ca, sa;  /* orientation of rows, stripes and object clusters */
    float t;       /* per-region texture parameter in [0, 1) */
} rg_region;

typedef struct rg_scene {
    int w, h;
    double res;       /* metres per pixel */
    uint32_t key;
    float var;        /* params.variation */
    double sp;        /* region spacing, pixels */
    int nx, ny;       /* seed grid: cells -1 .. nx - 2 (margins) */
    rg_region *r;     /* nx * ny */
    float warp_amp, warp_scale; /* pixels */
    float sun_x, sun_y; /* unit vector along which shadows fall (x right, y down) */
    float sun_tan;      /* shadow length per metre of height */
    float *c;         /* 3 planes of h x w: R, G, B in DN (0..255 floats) */
    uint8_t *lab;     /* h x w labels */
    uint8_t *shadow;  /* h x w: 1 where a shadow falls */
} rg_scene;

/* Region under pixel position (x, y) (pixels, image space). */
const rg_region *cmir__rg_locate(const rg_scene *S, double x, double y);
/* The warp displacement at (x, y), pixels. */
void cmir__rg_warp(const rg_scene *S, double x, double y, float *dx, float *dy);

/* Places and draws every object of the scene onto S->c / S->lab /
 * S->shadow, sequentially from the generator g (deterministic). Returns 0
 * (nothing it does can fail). */
int cmir__rg_objects(rg_scene *S, cmir_rng *g);

#endif
