/* cmir/tiling.h: cuts georeferenced PAN scenes and the MS scenes that cover
 * them into co-registered tile pairs, with labels from a class raster or a
 * polygon layer, and writes them to a tile archive (cmir/archive.h).
 *
 * The "PAN slot" (the archive's high-resolution modality) may hold
 * multi-band scenes such as very-high-resolution RGB images: the archive's
 * pan_bands is then the scenes' band count (every PAN-slot scene of a run,
 * and an archive appended to, must have the same), with band names from
 * the band descriptions or, failing those, the colour interpretation
 * ("Red", "Green", "Blue"); a single-band PAN slot is named "PAN". A
 * PAN-slot pixel is nodata when it is nodata in every band.
 *
 * Image-only tiling: with no MS scene (n_ms == 0), each PAN-slot scene is
 * its own MS source, reduced by `ratio` (default 4) on the same PAN-aligned
 * grid through GDAL's warper with "average" resampling (unless
 * `resampling` says otherwise): each MS pixel is the mean of its ratio x
 * ratio PAN pixels, rounded to the scene's type (within 0.5 for Byte), and
 * nodata PAN pixels are left out of the means (an MS pixel is nodata only
 * when all its PAN pixels are). An RGB scene cut into 256 x 256 tiles thus
 * gives 256 x 256 x 3 PAN-slot tiles and 64 x 64 x 3 MS tiles. Labels work
 * as with MS scenes (on the 64 x 64 grid); for the multi-label UC-Merced
 * setting of cmir_synth_rgb_run use label_min_frac = 0 (keep every tile)
 * and multilabel_frac = 0.01.
 *
 * Co-registration is by georeferencing, never by pixel index: each PAN
 * tile is a window of its scene; its MS tile is the same ground on a grid
 * of the PAN's CRS whose pixels are `ratio` PAN pixels, read directly when
 * an MS scene already lies on that grid, else resampled through GDAL's
 * warper and PROJ (any CRS, any grid, several MS scenes mosaicked). Any
 * raster GDAL reads works (GeoTIFF, COG, JP2, VRT, /vsizip/...). */
#ifndef CMIR_TILING_H
#define CMIR_TILING_H

#include "cmir/archive.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cmir_tile_params {
    int tile_size;       /* PAN pixels per tile side; default 256 */
    int stride;          /* PAN pixels between tile origins; 0 = tile_size */
    int ratio;           /* MS pixel / PAN pixel; 0 = read from the data
                            (4 when there are no MS scenes) */
    const int *ms_bands; /* 1-based MS bands to keep, or NULL for all */
    int n_ms_bands;
    const char *resampling; /* warper resampling for MS: "near", "bilinear",
                               "cubic", "average", ...; NULL (default) =
                               "bilinear" for MS scenes, "average" for the
                               reduced copies made without MS scenes */
    double nodata_frac;  /* tiles with a larger fraction of nodata pixels (in
                            PAN or MS) are skipped; default 0.01 */
    int keep_nodata;     /* keep such tiles instead (label 0) */
    /* Labels (optional): a class raster, or a polygon layer with a class
     * attribute; not both. */
    const char *label_raster;  /* values 1..C are classes, 0 none */
    const char *const *label_rasters; /* or several (e.g. one per scene),
                                         mosaicked; class names come from the
                                         first one's categories */
    int n_label_rasters;
    const char *label_vector;  /* any OGR source */
    const char *label_layer;   /* layer name; NULL = first layer */
    const char *label_field;   /* attribute holding the class (text or
                                  integer); its distinct values, sorted, are
                                  classes 1..C */
    double label_min_frac; /* a tile's majority class must cover at least
                              this fraction, else the tile is unlabelled;
                              default 0.5 */
    double multilabel_frac; /* > 0: also record every class covering at
                               least this fraction (multi-label); default 0 */
    int skip_unlabelled;  /* drop tiles without a label when labels are
                             given (with multilabel_frac > 0: without any
                             label above it; such a tile without a
                             majority class is kept, class 0); default 1 */
    int deflate;          /* archive deflate level 0..9 (0 none); default 1:
                             libdeflate through HDF5's direct chunk write
                             keeps tiling within the scenes' read time
                             (bench_tile; figures in bench/README.md) */
    const char *const *open_options; /* GDAL open options (NULL-terminated
                             NAME=VALUE, -oo) for every scene and label
                             source opened; NULL = none */
} cmir_tile_params;

CMIR_API cmir_tile_params cmir_tile_default_params(void);

#define CMIR_TILE_MAX_SIZE 65536 /* largest tile_size */

/* 0 when cmir_tile() accepts p, else CMIR_EINVAL with a message naming the
 * first offending field ("cmir_tile: deflate must be in 0..9, got 12").
 * cmir_tile() runs it first. */
CMIR_API int cmir_tile_check_params(cmir_tile_params p);

/* What a run did. */
typedef struct cmir_tile_stats {
    int64_t tiles_written;
    int64_t skipped_nodata;
    int64_t skipped_unlabelled;
    int ratio;        /* the ratio used (of the last scene) */
    int n_classes;
} cmir_tile_stats;

/* Tiles every PAN-slot scene (pan_paths[0..n_pan); one band, or several,
 * the same number in every scene) with the MS scenes (ms_paths[0..n_ms))
 * that cover it, or with its own reduced copy when n_ms == 0 (ms_paths may
 * then be NULL), into the archive at `archive_path`:
 * a new archive, or, when `append` is non-zero and the archive exists, the
 * existing one extended (its sizes and classes must match). The archive is
 * written to a temporary file and renamed at the end: on any error or
 * cancellation the previous file is untouched and nothing is left behind.
 * Errors name the file and the problem: a scene without georeferencing,
 * PAN and MS that do not overlap, a band count or ratio that does not
 * match (naming the file; also a PAN-slot band count that differs from
 * another scene's or from the archive appended to), an unreadable file.
 * Tiles are H x W x bands, band fastest. stats may be NULL. progress may
 * be NULL; a non-zero return from it cancels (CMIR_ECANCEL). Returns 0 or
 * a negative CMIR_E* code with the message in cmir_last_error(). */
CMIR_API int cmir_tile(const char *const *pan_paths, int n_pan, const char *const *ms_paths,
                       int n_ms, const char *archive_path, int append, cmir_tile_params p,
                       cmir_progress_fn progress, void *user, cmir_tile_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
