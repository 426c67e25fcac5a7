/* cmir/synth.h: the scene simulator. DSRSID-like mode renders georeferenced
 * scenes of the 8 DSRSID land-cover classes and observes them with a PAN/MS
 * sensor model; Wald mode turns a real multispectral raster into a PAN/MS
 * pair by Wald's protocol. Both write GeoTIFFs through temporary files.
 *
 * DSRSID-like mode, per scene:
 *   1. Layout: a jittered grid of region seeds (spacing cell_size metres),
 *      Voronoi cells with noise-warped borders, each cell one class. The
 *      cells nearest the scene centre take the classes of concatenated
 *      random permutations of 1..8, so every 8 central cells hold all 8.
 *   2. Ground: a 4-band reflectance field (blue, green, red, NIR; unitless
 *      reflectance in [0, 1]) rendered at pan_res / oversample metres with
 *      class textures (ponds and dykes, meanders, tree crowns, parcels with
 *      crop rows, buildings with cast shadows, soft-edged clouds with their
 *      shadows), then averaged to pan_res.
 *   3. Sensor: PAN = sum_b pan_weights[b] * rho_b at pan_res; MS = every
 *      band blurred by a Gaussian whose MTF at the MS Nyquist frequency is
 *      `mtf`, decimated by `ratio`. DN = offset + gain * rho + noise,
 *      rounded and clipped to 0..255 (uint8).
 *   Scene k's content depends only on (params, seed, k), never on how many
 *   scenes are made in one call or on the thread count: same inputs give
 *   byte-identical files.
 *
 * Files of DSRSID-like scene k: <dir>/<name>_<kkk>_pan.tif (1 band Byte,
 * pan_res), _ms.tif (4 bands Byte, pan_res * ratio; Blue, Green, Red, NIR),
 * _class.tif (Byte classes 1..8, at MS resolution by default, with a colour
 * table; its category names live in GDAL's _class.tif.aux.xml sidecar and
 * the names are also in the file's metadata as CLASS_1..CLASS_8). All are
 * tiled DEFLATE GeoTIFFs in params.epsg; PAN and MS cover exactly the same
 * extent (MS size = PAN size / ratio).
 *
 * Errors: functions return 0 or a negative CMIR_E* code with the reason in
 * cmir_last_error(); messages from GDAL carry a "gdal: " prefix. Output
 * files are written under temporary names and renamed only when complete,
 * so an error or a cancel leaves no partial file. */
#ifndef CMIR_SYNTH_H
#define CMIR_SYNTH_H

#include "cmir/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The DSRSID classes, numbered as in DSRSID's LAND_COVER_TYPES. */
enum {
    CMIR_SYNTH_AQUAFARM = 1,
    CMIR_SYNTH_CLOUD = 2,
    CMIR_SYNTH_FOREST = 3,
    CMIR_SYNTH_HIGH_BUILDING = 4,
    CMIR_SYNTH_LOW_BUILDING = 5,
    CMIR_SYNTH_FARM_LAND = 6,
    CMIR_SYNTH_RIVER = 7,
    CMIR_SYNTH_WATER = 8,
    CMIR_SYNTH_NCLASSES = 8
};

/* Where the class raster is sampled. */
enum { CMIR_SYNTH_CLASS_AT_MS = 0, CMIR_SYNTH_CLASS_AT_PAN = 1 };

/* Wald-mode output sample type. */
enum { CMIR_SYNTH_FLOAT32 = 0, CMIR_SYNTH_UINT16 = 1 };

/* Name of class c in 1..8 ("aquafarm", "cloud", "forest", "high building",
 * "low building", "farm land", "river", "water"); NULL otherwise. Static
 * storage. */
CMIR_API const char *cmir_synth_class_name(int c);

/* All settings, by value. Start from cmir_synth_default_params(). */
typedef struct cmir_synth_params {
    /* ---- DSRSID-like mode: scenes ---- */
    int size;          /* PAN width = height, pixels; a positive multiple of
                          ratio; default 2048 (4096 m at 2 m) */
    int n_scenes;      /* scenes per cmir_synth_run call; default 1 */
    int first_index;   /* index of the first scene (names and content);
                          default 0 */
    uint64_t seed;     /* default 1 */
    int epsg;          /* projected CRS in metres; default 32650 (WGS 84 /
                          UTM 50N, GF-1 footprint over eastern China) */
    double origin_x, origin_y; /* upper-left corner of scene 0, CRS metres;
                          scene k sits at column k % 8, row k / 8 of a grid
                          with 1024 m gaps; default (420000, 3900000),
                          about 116.1 E 35.2 N */
    double pan_res;    /* PAN pixel size, metres; default 2 */
    int oversample;    /* ground rendered at pan_res / oversample and
                          averaged; 1..4, default 2 */
    double cell_size;  /* mean region spacing, metres; default 1000, so a
                          256 x 256 PAN tile (512 m) is mostly one class
                          (majority class covers 79% of a tile on average,
                          >= 50% in 95% of tiles) */
    /* ---- difficulty ---- */
    double variation;  /* 0..1: per-region jitter of spectra and texture
                          parameters, per-scene illumination; default 0.6 */
    double noise;      /* sensor noise multiplier, >= 0 (0: noiseless);
                          1 = PAN sigma 1.5 DN, MS sigma 1.2 DN plus a
                          signal-dependent term; default 1 */
    double confusion;  /* 0..1: brings water/river/aquafarm and low/high
                          building closer in colour and texture;
                          default 0.3 */
    /* ---- sensor (both modes) ---- */
    int ratio;         /* MS pixel = ratio x PAN pixel; 1..16, default 4 */
    double mtf;        /* Gaussian MTF value at the MS Nyquist frequency,
                          in [0.05, 0.95]; default 0.3 */
    double pan_weights[4]; /* PAN spectral response over B, G, R, NIR;
                          non-negative, sum > 0 (normalised to 1);
                          default 0.20, 0.25, 0.25, 0.30 */
    double pan_gain, pan_offset; /* PAN DN = offset + gain * rho_pan;
                          defaults calibrated to DSRSID (mean ~74, std
                          ~23 over many scenes) */
    double ms_gain[4], ms_offset[4]; /* same per MS band; defaults give
                          band means ~113, 112, 85, 53 */
    int class_res;     /* CMIR_SYNTH_CLASS_AT_MS (default: mode of each
                          ratio x ratio block) or CMIR_SYNTH_CLASS_AT_PAN */
    int threads;       /* rendering threads; 0 = all online CPUs (at most
                          64). Never changes the output */
    const char *const *creation_options; /* extra GTiff creation options,
                          "NAME=VALUE", NULL-terminated, or NULL; they
                          override the defaults TILED=YES, COMPRESS=DEFLATE,
                          PHOTOMETRIC=MINISBLACK. Not copied: must outlive
                          the call */
    /* ---- Wald mode ---- */
    int bands[4];      /* 1-based indices, into the inputs' bands taken in
                          order, of blue, green, red, NIR; all 0 (default)
                          means 1, 2, 3, 4 and is accepted only when the
                          inputs hold exactly 4 bands */
    int wald_type;     /* CMIR_SYNTH_FLOAT32 (default) or CMIR_SYNTH_UINT16 */
    const char *labels; /* optional land-cover raster for <prefix>_class.tif,
                          or NULL; not copied */
} cmir_synth_params;

CMIR_API cmir_synth_params cmir_synth_default_params(void);

/* 0 when p is usable, else CMIR_EINVAL naming the first bad field. */
CMIR_API int cmir_synth_check_params(const cmir_synth_params *p);

/* One rendered DSRSID-like scene in memory. Buffers are row-major and
 * owned by the struct (free with cmir_synth_scene_free). */
typedef struct cmir_synth_scene {
    int index;               /* scene index it was rendered for */
    int pan_w, pan_h;        /* PAN size, pixels */
    int ms_w, ms_h;          /* MS size = PAN size / ratio */
    int class_w, class_h;    /* class raster size (MS or PAN grid) */
    uint8_t *pan;            /* pan_h x pan_w DN */
    uint8_t *ms;             /* 4 x ms_h x ms_w DN, band-sequential B,G,R,NIR */
    uint8_t *cls;            /* class_h x class_w, classes 1..8 */
    double pan_gt[6], ms_gt[6], class_gt[6]; /* GDAL geotransforms */
    int epsg;
} cmir_synth_scene;

/* Renders scene `index` (any non-negative integer; n_scenes and
 * first_index are ignored) into *out, which is overwritten (call
 * cmir_synth_scene_free on a previous result first). progress (may be NULL)
 * gets frac in [0, 1]; a non-zero return cancels with CMIR_ECANCEL.
 * Returns 0, CMIR_EINVAL, CMIR_ENOMEM or CMIR_ECANCEL; on failure *out is
 * left empty (all NULL). */
CMIR_API int cmir_synth_render(const cmir_synth_params *p, int index, cmir_synth_scene *out,
                               cmir_progress_fn progress, void *user);

/* Frees the buffers of s and zeroes it; NULL is a no-op. */
CMIR_API void cmir_synth_scene_free(cmir_synth_scene *s);

/* Writes s as <prefix>_pan.tif, <prefix>_ms.tif and <prefix>_class.tif
 * (plus the class file's .aux.xml), replacing existing files only once all
 * three are complete. p supplies creation_options and the provenance
 * metadata. Returns 0, CMIR_EINVAL, CMIR_ENOMEM or CMIR_EIO ("gdal: ...").*/
CMIR_API int cmir_synth_scene_write(const cmir_synth_params *p, const cmir_synth_scene *s,
                                    const char *prefix);

/* The cmir_synth tool, DSRSID-like mode: renders and writes scenes
 * first_index .. first_index + n_scenes - 1 as <dir>/<name>_<kkk>_*.tif
 * (kkk = scene index, at least 3 digits). dir and its missing parents are
 * created (and removed again if the run fails before writing a scene).
 * Progress covers the whole run. Scenes finished before an error or
 * cancel stay; the one in progress leaves nothing. Returns 0 or a CMIR_E* code. */
CMIR_API int cmir_synth_run(const cmir_synth_params *p, const char *dir, const char *name,
                            cmir_progress_fn progress, void *user);

/* The cmir_synth tool, Wald mode. inputs: n_inputs GDAL rasters (single-
 * band files, one multi-band file or a VRT) of the same size and
 * geotransform; their bands, in order, form one stack from which p->bands
 * picks blue, green, red and NIR. Writes <prefix>_pan.tif and
 * <prefix>_ms.tif (and <prefix>_class.tif when p->labels is set):
 *   - grid: the input cropped to W' = floor(W / ratio) * ratio columns and
 *     H' rows likewise, same origin and CRS; PAN keeps the input pixel
 *     size, MS has ratio x the pixel size (W'/ratio x H'/ratio pixels).
 *   - PAN = sum_b w_b x_b (normalised pan_weights), no blur, no noise;
 *     nodata where any of the 4 bands is nodata (its nodata value, or NaN).
 *   - MS band b = x_b blurred (Gaussian MTF, as above) and decimated; an MS
 *     pixel is nodata when any pixel under the kernel's support (radius
 *     ceil(3 sigma), mirrored at the raster edges) is nodata.
 *   - CMIR_SYNTH_FLOAT32: values in the input's units, nodata = the blue
 *     band's nodata value, or -99999 when it has none.
 *     CMIR_SYNTH_UINT16: DN = 1 + round((x - lo) / scale), 1..65535, with
 *     lo, hi the smallest and largest valid input values of the 4 bands
 *     and scale = (hi - lo) / 65534 (shared by PAN and MS); nodata = 0;
 *     GDAL scale = scale and offset = lo - scale, so DN * scale + offset
 *     gives x back to within scale / 2.
 *   - labels: resampled onto the class grid (MS grid, or PAN grid with
 *     CMIR_SYNTH_CLASS_AT_PAN) by GDAL's warper, mode when the target pixel
 *     is coarser than the label pixel, else nearest; reprojected if the
 *     CRS differs. Values are rounded and kept when in 1..255, else 0
 *     (nodata). Colour table and category names are copied when present.
 * Whole bands are held in memory (4 x W x H float). Returns 0 or a CMIR_E*
 * code; a missing or unreadable input is named in the message. The
 * directory part of prefix is created when missing, as for cmir_synth_run. */
CMIR_API int cmir_synth_wald(const cmir_synth_params *p, const char *const *inputs, int n_inputs,
                             const char *prefix, cmir_progress_fn progress, void *user);

/* ---- RGB multi-label mode (UC-Merced-like, very high resolution) ------
 *
 * Renders georeferenced true-colour scenes with a per-pixel label raster of
 * the 17 UC-Merced multi-label labels (CMIR_SYNTH_RGB_*), for the
 * image <-> speech setting of CMIR-NET, where a tile's labels are the
 * labels covering at least a small fraction of it (cmir_tile -multilabel).
 * Per scene:
 *   1. Background: Voronoi regions (spacing cell_size metres, borders
 *      warped by noise), each one land cover: bare soil, chaparral, field,
 *      grass, pavement, sand, sea or water, with its own texture (shrub
 *      spots, crop rows, mowing stripes, asphalt grain, sand ripples, sea
 *      waves, calm water) and colour jitter scaled by `variation`.
 *   2. Objects, placed in clusters near region centres and only where the
 *      ground under their whole footprint suits them: docks (piers from a
 *      shore into sea/water), courts (surface with white lines; grass,
 *      pavement, bare soil), buildings (gable or flat roofs; grass, bare
 *      soil, pavement), storage tanks (pavement, bare soil, sand), mobile
 *      homes (rows of small pale rectangles; grass, bare soil), cars
 *      (parking rows on pavement), airplanes (swept-wing crosses on
 *      pavement), ships (pointed hulls with a superstructure; sea, water,
 *      beside docks) and trees (round shaded crowns; every land cover
 *      except sand and pavement, a few on pavement). Every object has its
 *      own jittered size, orientation and colour; buildings, tanks, trees,
 *      mobile homes, cars, airplanes and ships cast shadows away from the
 *      scene's sun. Each object's pixels carry its label in the label
 *      raster; shadows keep the label of the ground they fall on.
 *   3. A light optical blur, illumination drift and sensor noise (sigma
 *      3 DN x `noise`), quantised to uint8.
 * Scene k's content depends only on (params, seed, k), never on n_scenes
 * or the thread count: same inputs give byte-identical files.
 *
 * Used fields of cmir_synth_params (others are ignored): size (any value
 * 64..16384), n_scenes, first_index, seed, epsg, origin_x/y (scene k at
 * column k % 8, row k / 8, 1024 m gaps), pan_res (the pixel size, metres),
 * cell_size (region spacing, 20 m .. 100 x the scene width), variation,
 * noise, threads, creation_options. Start from
 * cmir_synth_rgb_default_params(): 2048 x 2048 pixels of 0.3 m (614 m),
 * regions of 110 m, EPSG:32610 (WGS 84 / UTM 10N) at (720000, 4134000),
 * about 120.5 W 37.3 N (Merced, California).
 *
 * Files of scene k: <dir>/<name>_<kkk>_rgb.tif (3 bands Byte, Red, Green,
 * Blue, with those colour interpretations and band descriptions) and
 * <name>_<kkk>_class.tif (Byte labels 1..17 on the same grid, colour table,
 * category names in its .aux.xml sidecar and in the metadata as
 * CLASS_1..CLASS_17), tiled DEFLATE GeoTIFFs in params.epsg.
 *
 * The label shares of tiles at the defaults, and rendering times, as
 * measured: bench/README.md. */
enum {
    CMIR_SYNTH_RGB_AIRPLANE = 1,
    CMIR_SYNTH_RGB_BARE_SOIL = 2,
    CMIR_SYNTH_RGB_BUILDINGS = 3,
    CMIR_SYNTH_RGB_CARS = 4,
    CMIR_SYNTH_RGB_CHAPARRAL = 5,
    CMIR_SYNTH_RGB_COURT = 6,
    CMIR_SYNTH_RGB_DOCK = 7,
    CMIR_SYNTH_RGB_FIELD = 8,
    CMIR_SYNTH_RGB_GRASS = 9,
    CMIR_SYNTH_RGB_MOBILE_HOME = 10,
    CMIR_SYNTH_RGB_PAVEMENT = 11,
    CMIR_SYNTH_RGB_SAND = 12,
    CMIR_SYNTH_RGB_SEA = 13,
    CMIR_SYNTH_RGB_SHIP = 14,
    CMIR_SYNTH_RGB_TANKS = 15,
    CMIR_SYNTH_RGB_TREES = 16,
    CMIR_SYNTH_RGB_WATER = 17,
    CMIR_SYNTH_RGB_NLABELS = 17
};

/* Name of label c in 1..17 ("airplane", "bare soil", "buildings", "cars",
 * "chaparral", "court", "dock", "field", "grass", "mobile home",
 * "pavement", "sand", "sea", "ship", "tanks", "trees", "water"); NULL
 * otherwise. Static storage. */
CMIR_API const char *cmir_synth_rgb_label_name(int c);

/* cmir_synth_default_params() with the RGB mode's defaults (see above). */
CMIR_API cmir_synth_params cmir_synth_rgb_default_params(void);

/* 0 when the fields the RGB mode uses are valid, else CMIR_EINVAL naming
 * the first bad one. */
CMIR_API int cmir_synth_rgb_check_params(const cmir_synth_params *p);

/* One rendered RGB scene in memory; buffers owned by the struct (free with
 * cmir_synth_rgb_scene_free). */
typedef struct cmir_synth_rgb_scene {
    int index;     /* scene index it was rendered for */
    int w, h;      /* pixels */
    uint8_t *rgb;  /* 3 x h x w DN, band-sequential Red, Green, Blue */
    uint8_t *cls;  /* h x w labels 1..17 */
    double gt[6];  /* GDAL geotransform (pixel size pan_res metres) */
    int epsg;
} cmir_synth_rgb_scene;

/* Renders RGB scene `index` (>= 0; n_scenes and first_index are ignored)
 * into *out, which is overwritten. progress (may be NULL) gets frac in
 * [0, 1]; a non-zero return cancels with CMIR_ECANCEL. Returns 0,
 * CMIR_EINVAL, CMIR_ENOMEM or CMIR_ECANCEL; on failure *out is left empty.
 * Memory: about 20 bytes per pixel while rendering. */
CMIR_API int cmir_synth_rgb_render(const cmir_synth_params *p, int index,
                                   cmir_synth_rgb_scene *out, cmir_progress_fn progress,
                                   void *user);

/* Frees the buffers of s and zeroes it; NULL is a no-op. */
CMIR_API void cmir_synth_rgb_scene_free(cmir_synth_rgb_scene *s);

/* Writes s as <prefix>_rgb.tif and <prefix>_class.tif (plus the class
 * file's .aux.xml), replacing existing files only once both are complete.
 * p supplies creation_options and the provenance metadata. Returns 0,
 * CMIR_EINVAL, CMIR_ENOMEM or CMIR_EIO ("gdal: ..."). */
CMIR_API int cmir_synth_rgb_scene_write(const cmir_synth_params *p,
                                        const cmir_synth_rgb_scene *s, const char *prefix);

/* The cmir_synth tool, RGB mode: renders and writes scenes first_index ..
 * first_index + n_scenes - 1 as <dir>/<name>_<kkk>_rgb.tif and
 * _class.tif. dir is created as for cmir_synth_run. Scenes finished
 * before an error or cancel stay; the one in progress leaves nothing. Returns 0 or a CMIR_E* code. */
CMIR_API int cmir_synth_rgb_run(const cmir_synth_params *p, const char *dir, const char *name,
                                cmir_progress_fn progress, void *user);

#ifdef __cplusplus
}
#endif
#endif
