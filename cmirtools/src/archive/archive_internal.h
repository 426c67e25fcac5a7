/* Internal declarations of the tile-archive module (not installed): the
 * in-memory per-tile tables that the reader loads and the writer appends
 * to, and the HDF5 helpers (quiet error stack, char matrices, arrays). */
#ifndef CMIR_ARCHIVE_INTERNAL_H
#define CMIR_ARCHIVE_INTERNAL_H

#include "cmir/archive.h"
#include "../base/internal.h"

#include <hdf5.h>
#include <stdarg.h>

#define CMIR__AR_MAX_TILES ((int64_t)1 << 31)
#define CMIR__AR_MAX_SIDE 65536
#define CMIR__AR_MAX_BANDS 1024
#define CMIR__AR_MAX_CLASSES 65535
#define CMIR__AR_FORMAT "cmir-archive 1"
#define CMIR__AR_FORMAT_PREFIX "cmir-archive "

/* A table of owned strings (one row of a MATLAB char matrix each). */
typedef struct cmir__strtab {
    char **s;
    int n, cap;
} cmir__strtab;

/* Per-tile tables, row-major (tile-major); NULL arrays are not recorded.
 * Index 0 of gt/win is PAN, 1 is MS. */
typedef struct cmir__artab {
    int64_t n, cap;
    int32_t *label;         /* n */
    uint8_t *multi;         /* n x C */
    double *gt[2], *win[2]; /* n x 6, n x 4 (NaN: not recorded) */
    int32_t *crs, *scene;   /* n, 1-based rows of crs_wkt/scenes, 0 none */
    int32_t *ms_scene;      /* n, 1-based rows of ms_scenes (the MS file MUL_WINDOW is in), 0 none */
    cmir__strtab crs_wkt, scenes, ms_scenes;
} cmir__artab;

/* How an image dataset's chunks are stored (archive_chunk.c): direct when
 * a chunk is exactly one tile in the native memory type, with no filter,
 * deflate, or shuffle + deflate (what CMIR writes); otherwise reads go
 * through HDF5's own pipeline. */
typedef struct cmir__chunkfmt {
    int direct, shuffle, level, elem; /* level 0: no deflate */
    unsigned deflate_bit;             /* the deflate filter's bit in a chunk's filter mask */
    size_t bytes;                     /* of one tile */
} cmir__chunkfmt;

/* libdeflate state and the compressed-chunk buffer of a reader or writer. */
typedef struct cmir__chunkio {
    struct libdeflate_compressor *comp;
    struct libdeflate_decompressor *dec;
    void *zbuf;
    size_t zcap;
    int comp_level;
} cmir__chunkio;

/* Fills f from dataset ds of pixel type `type` (never fails: f->direct 0
 * when the layout is not one of ours). */
int cmir__ar_chunk_plan(hid_t ds, cmir_dtype type, cmir__chunkfmt *f);
/* Writes tile `tile` (raw: HDF5 order, f->bytes) compressed with libdeflate
 * at f->level (shuffled first when f->shuffle) through H5Dwrite_chunk; the
 * dataset's extent must already hold it. 0 or CMIR_E* (message without
 * the path). */
int cmir__ar_write_chunk(cmir__chunkio *io, hid_t ds, const cmir__chunkfmt *f, hsize_t tile,
                         const void *raw);
/* Reads tile `tile` through H5Dread_chunk and libdeflate into out
 * (f->bytes). 0; 1 when the chunk is not allocated (the caller reads
 * through HDF5, which gives fill values); CMIR_EFORMAT for a corrupt chunk
 * (message without the path), CMIR_EIO, CMIR_ENOMEM. */
int cmir__ar_read_chunk(cmir__chunkio *io, hid_t ds, const cmir__chunkfmt *f, hsize_t tile,
                        void *out);
void cmir__ar_chunkio_free(cmir__chunkio *io);

/* Names: 0 classes, 1 PAN bands, 2 MS bands. */
struct cmir_archive {
    char *path;
    hid_t file, ds[2], fspace[2], mspace[2];
    cmir_archive_info info;
    cmir__artab t;
    cmir__strtab names[3]; /* generated ("class_3") where not recorded */
    int named[3];          /* 1 when the file records the names */
    double nodata[2];      /* NaN: none */
    void *scratch;         /* one stored tile, allocated on first read */
    size_t scratch_size;
    cmir__chunkfmt fmt[2]; /* PAN, MS */
    cmir__chunkio io;
};

/* Saves HDF5's automatic error printing and turns it off; restore puts the
 * saved handler back. Every public function that calls HDF5 brackets its
 * calls with the pair. */
typedef struct cmir__h5quiet {
    H5E_auto2_t fn;
    void *data;
    int saved;
} cmir__h5quiet;
void cmir__h5_quiet(cmir__h5quiet *q);
void cmir__h5_restore(const cmir__h5quiet *q);
/* Sets "hdf5: <path>: <what> (<innermost HDF5 message>)", clears HDF5's
 * error stack and returns code. */
int cmir__h5_error(int code, const char *path, const char *fmt, ...) CMIR__PRINTF(3, 4);
/* Returns rc; for CMIR_ENOMEM, first prefixes the message with the path
 * (the allocator's message names no file). */
int cmir__ar_oom(int rc, const char *path);
/* Closes any HDF5 id of ours (file, dataset, space, type, attribute,
 * property list); negative ids are ignored. */
void cmir__h5_close(hid_t id);
/* 1 when the root group has a link `name`, 0 when not, < 0 on error. */
int cmir__h5_exists(hid_t file, const char *name);

/* Opens dataset `name` and reports its rank and dims (rank 0..4; a MATLAB
 * empty array reports rank 2, dims 0 x 0). Refuses non-numeric types. */
int cmir__h5_open_array(hid_t file, const char *path, const char *name, hid_t *ds, int *rank,
                        hsize_t dims[4]);
/* Refuses a dataset whose claimed size (`count` of `unit`, `bytes` bytes in
 * the file) is implausible for the storage HDF5 has allocated to it: more
 * than deflate's best ratio (1032:1) above a 1 MiB allowance. HDF5 fill
 * values make such a dataset legal, but reading it would allocate memory
 * for content the file does not hold. */
int cmir__h5_check_stored(hid_t ds, const char *path, const char *name, hsize_t count,
                          const char *unit, hsize_t bytes);
/* The same for a whole numeric array: its element count times the size of
 * its type in the file. */
int cmir__h5_check_array(hid_t ds, const char *path, const char *name);
/* Reads the whole of an opened dataset as `memtype` into buf. */
int cmir__h5_read_all(hid_t ds, const char *path, const char *name, hid_t memtype, void *buf);
/* Reads a MATLAB char matrix (HDF5 dims L x K, one row per string) into a
 * table, UTF-16 to UTF-8, trailing blanks trimmed. */
int cmir__h5_read_chars(hid_t file, const char *path, const char *name, cmir__strtab *out);
/* Writes a dataset of MATLAB class mclass; dims are HDF5's (reversed). */
int cmir__h5_write_array(hid_t file, const char *path, const char *name, hid_t filetype,
                         hid_t memtype, const char *mclass, int rank, const hsize_t *dims,
                         const void *data);
/* Writes a table as a K x L MATLAB char matrix (rows padded with blanks). */
int cmir__h5_write_chars(hid_t file, const char *path, const char *name, const cmir__strtab *t);
/* Adds the MATLAB_class attribute (and MATLAB_int_decode for "char"). */
int cmir__h5_set_class(hid_t obj, const char *path, const char *mclass);

/* HDF5 memory and file types and MATLAB class of a pixel type. */
hid_t cmir__h5_memtype(cmir_dtype t);
hid_t cmir__h5_filetype(cmir_dtype t);
const char *cmir__mat_class(cmir_dtype t);

void cmir__strtab_free(cmir__strtab *t);
int cmir__strtab_push(cmir__strtab *t, const char *s);
void cmir__artab_free(cmir__artab *t);

#endif
