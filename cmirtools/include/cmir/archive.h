/* cmir/archive.h: tile archives, the files that hold co-registered PAN/MS
 * tile pairs with their labels and georeferencing, in the DSRSID layout.
 *
 * File format (written by CMIR): a MATLAB v7.3 .mat file, i.e. HDF5 with
 * MATLAB's 512-byte header, written with the HDF5 C library so that each
 * tile is one HDF5 chunk (random access to tile i reads one chunk) and
 * datasets can grow when scenes are appended. MATLAB, Octave, matio and
 * h5py open it. Variables (MATLAB sizes; HDF5 shows the dims reversed):
 *   PAN_IMAGES        H x W x 1 x N   (uint8, uint16, int16 or single)
 *   MUL_IMAGES        h x w x B x N   (same class choices)
 *   LAND_COVER_TYPES  N x 1 double, classes 1..C (0 = unlabelled)
 *   CMIR_FORMAT       char, "cmir-archive 1"
 *   CLASS_NAMES       C x L char (rows padded with blanks; cellstr() in MATLAB)
 *   PAN_BAND_NAMES, MS_BAND_NAMES   char matrices, one row per band
 *   MULTI_LABELS      C x N uint8 (1 where the tile carries class c)
 *   PAN_GEOTRANSFORM, MUL_GEOTRANSFORM   6 x N double (GDAL order)
 *   TILE_CRS          N x 1 double, 1-based row of CRS_WKT (0 = none)
 *   CRS_WKT           K x L char, one WKT per row
 *   TILE_SCENE        N x 1 double, 1-based row of SCENE_NAMES
 *   SCENE_NAMES       S x L char
 *   MUL_SCENE         N x 1 double, 1-based row of MUL_SCENE_NAMES (S x L
 *                     char): the MS file MUL_WINDOW is in (absent in archives
 *                     written before it: readers then know no MS file)
 *   PAN_WINDOW, MUL_WINDOW   4 x N double: xoff, yoff, xsize, ysize in the
 *                     source scene's pixels
 *   NODATA            2 x 1 double (PAN, MS nodata; NaN when none)
 * Within a tile, MATLAB's first dimension is image rows, as in DSRSID.
 *
 * Also read (read-only, no georeferencing): the public DSRSID.mat, both as
 * a true v7.3 MAT file and as a plain HDF5 file with the same variable
 * names: PAN_IMAGES uint8 (HDF5 dims N,1,256,256), MUL_IMAGES uint8
 * (N,4,64,64), LAND_COVER_TYPES float64 (1,N) holding 1..8.
 *
 * Ownership: handles are opaque; free them with the matching function
 * (NULL is a no-op). Strings returned by a reader belong to it and live
 * until cmir_archive_close. Pixel buffers are the caller's. */
#ifndef CMIR_ARCHIVE_H
#define CMIR_ARCHIVE_H

#include "cmir/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cmir_modality (CMIR_PAN, CMIR_MS) is defined in cmir/base.h. */

/* Pixel types an archive stores. */
typedef enum cmir_dtype {
    CMIR_DT_UINT8 = 1,
    CMIR_DT_UINT16 = 2,
    CMIR_DT_INT16 = 3,
    CMIR_DT_FLOAT32 = 4
} cmir_dtype;

/* Bytes per pixel of a type (0 for an unknown one). */
CMIR_API int cmir_dtype_size(cmir_dtype t);
/* "Byte", "UInt16", "Int16", "Float32" (GDAL's names); static storage. */
CMIR_API const char *cmir_dtype_name(cmir_dtype t);

typedef enum cmir_archive_layout {
    CMIR_LAYOUT_CMIR = 0,         /* our own archive, with georeferencing */
    CMIR_LAYOUT_DSRSID_MAT73 = 1, /* public DSRSID.mat as MATLAB v7.3 */
    CMIR_LAYOUT_DSRSID_HDF5 = 2   /* the same variables in a plain HDF5 file */
} cmir_archive_layout;

/* Sizes of one archive. Tiles are H x W x bands per modality. */
typedef struct cmir_archive_info {
    int64_t n_tiles;
    int pan_h, pan_w, pan_bands;
    int ms_h, ms_w, ms_bands;
    cmir_dtype pan_type, ms_type;
    int n_classes;      /* C: rows of CLASS_NAMES, or the largest label */
    int has_georef;     /* geotransforms and CRS are recorded */
    int has_multilabel; /* MULTI_LABELS present */
    cmir_archive_layout layout;
} cmir_archive_info;

/* ---- Reading ---------------------------------------------------------- */
typedef struct cmir_archive cmir_archive;

/* Opens an archive for reading; reads only the small variables and the
 * dataset shapes, never the pixels. NULL on failure, with a message
 * naming the file and the problem ("hdf5: ..." for HDF5's own errors). */
CMIR_API cmir_archive *cmir_archive_open(const char *path);
CMIR_API void cmir_archive_close(cmir_archive *a);
CMIR_API const cmir_archive_info *cmir_archive_get_info(const cmir_archive *a);

/* Reads tile i (0-based) of modality m as float32 in row-major H x W x
 * bands order (band fastest), exactly the stored values converted to
 * float. out holds H*W*bands floats. Reads one chunk of the file. */
CMIR_API int cmir_archive_read_tile(cmir_archive *a, cmir_modality m, int64_t i, float *out);
/* The same in the stored type (out holds H*W*bands*cmir_dtype_size). */
CMIR_API int cmir_archive_read_tile_raw(cmir_archive *a, cmir_modality m, int64_t i, void *out);

/* Class of tile i: 1..C, or 0 when unlabelled. */
CMIR_API int cmir_archive_label(const cmir_archive *a, int64_t i);
/* Multi-label row of tile i: out[c] = 0/1 for c in [0, C). When the
 * archive has no MULTI_LABELS, the single label is expanded. */
CMIR_API int cmir_archive_multilabel(const cmir_archive *a, int64_t i, uint8_t *out);
/* Name of class c (1-based; "class_<c>" when the archive names none). */
CMIR_API const char *cmir_archive_class_name(const cmir_archive *a, int c);
/* Name of band b (0-based) of modality m ("band_<b+1>" when unnamed). */
CMIR_API const char *cmir_archive_band_name(const cmir_archive *a, cmir_modality m, int b);

/* Georeferencing of tile i: GDAL geotransform of modality m. Returns
 * CMIR_ENOTFOUND when the archive records none (DSRSID layout). */
CMIR_API int cmir_archive_geotransform(const cmir_archive *a, cmir_modality m, int64_t i,
                                       double gt[6]);
/* CRS of tile i as WKT, or NULL when none is recorded. */
CMIR_API const char *cmir_archive_crs(const cmir_archive *a, int64_t i);
/* Source scene of tile i (the PAN scene), or NULL. */
CMIR_API const char *cmir_archive_scene(const cmir_archive *a, int64_t i);
/* Source file of modality m of tile i, the one its window is in: the PAN
 * scene, or for CMIR_MS the MS scene (NULL when the archive does not record
 * it: written before MUL_SCENE, or by a writer that gave none). */
CMIR_API const char *cmir_archive_source(const cmir_archive *a, cmir_modality m, int64_t i);
/* Pixel window of tile i in its source scene: xoff, yoff, xsize, ysize. */
CMIR_API int cmir_archive_window(const cmir_archive *a, cmir_modality m, int64_t i,
                                 double win[4]);
/* Nodata value of modality m; returns 0 and sets *value, or
 * CMIR_ENOTFOUND when there is none. */
CMIR_API int cmir_archive_nodata(const cmir_archive *a, cmir_modality m, double *value);

/* ---- Writing ---------------------------------------------------------- */
typedef struct cmir_archive_writer cmir_archive_writer;

typedef struct cmir_archive_params {
    int pan_h, pan_w, pan_bands; /* default 256, 256, 1 */
    int ms_h, ms_w, ms_bands;    /* default 64, 64, 4 */
    cmir_dtype pan_type, ms_type; /* default UINT8 */
    int n_classes;               /* C, 0 when unlabelled */
    const char *const *class_names;    /* C names, or NULL */
    const char *const *pan_band_names; /* pan_bands names, or NULL */
    const char *const *ms_band_names;  /* ms_bands names, or NULL */
    int multilabel;              /* write MULTI_LABELS */
    int deflate;                 /* 0 none, 1..9 deflate level per tile; default 1 */
    /* 0 (default): tiles are deflated by libdeflate and stored with HDF5's
     * direct chunk write; 1: through HDF5's own deflate filter (zlib), as
     * before, for comparisons. Either way the file declares HDF5's standard
     * shuffle (2-byte pixels) and deflate filters, so any HDF5 reader
     * (MATLAB, Octave, h5py, GDAL) inflates it; libdeflate reads both. */
    int deflate_zlib;
    double pan_nodata, ms_nodata; /* NaN when none (default) */
} cmir_archive_params;

CMIR_API cmir_archive_params cmir_archive_default_params(void);
/* 0, or CMIR_EINVAL with a message naming the first bad field (tile sides,
 * bands, pixel types, n_classes, multilabel, deflate). cmir_archive_create
 * calls it (and prefixes the message with the path). */
CMIR_API int cmir_archive_check_params(cmir_archive_params p);

/* One tile pair to add. Pixels are row-major H x W x bands in the
 * archive's types. gt/crs/scene/windows may be NULL (then not recorded
 * for this tile: NaN geotransform, CRS index 0). */
typedef struct cmir_tile_record {
    const void *pan, *ms;
    int label;                  /* 1..C or 0 */
    const uint8_t *multilabel;  /* C entries, or NULL */
    const double *pan_gt, *ms_gt; /* 6 each */
    const char *crs_wkt;
    const char *scene;
    const double *pan_window, *ms_window; /* 4 each */
    const char *ms_scene;       /* the MS file ms_window is in, or NULL */
} cmir_tile_record;

/* Starts a new archive at `path`. Everything is written to a temporary
 * file beside it; `path` itself changes only at cmir_archive_writer_commit
 * (an atomic rename), so an existing archive is never damaged. */
CMIR_API cmir_archive_writer *cmir_archive_create(const char *path, cmir_archive_params p);
/* Opens an existing CMIR archive to append to: a copy is made beside it
 * and extended; commit renames the copy over the original. The params
 * (sizes, types, classes) are taken from the file. */
CMIR_API cmir_archive_writer *cmir_archive_append(const char *path);
CMIR_API int cmir_archive_writer_add(cmir_archive_writer *w, const cmir_tile_record *t);
CMIR_API int64_t cmir_archive_writer_count(const cmir_archive_writer *w);
/* Finishes the file, flushes it to disk and renames it over `path`; frees
 * the writer whatever the result. */
CMIR_API int cmir_archive_writer_commit(cmir_archive_writer *w);
/* Drops the temporary file and frees the writer; `path` is untouched. */
CMIR_API void cmir_archive_writer_abort(cmir_archive_writer *w);

#ifdef __cplusplus
}
#endif
#endif
