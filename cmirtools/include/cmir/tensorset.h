/* cmir/tensorset.h: a set of named float32 tensors and text strings, saved
 * to and loaded from a MATLAB .mat file through matio, so weights, features
 * and settings open as they are in Octave, MATLAB and scipy.io.loadmat.
 *
 * In the file every tensor is a MATLAB single array of the SAME size as the
 * tensor's shape (a {N, D} tensor is an N x D matrix in MATLAB; a 1-D
 * tensor of n elements is n x 1); the element order is converted between
 * our row-major layout and MATLAB's column-major one. Strings are MATLAB
 * char row vectors. Files are written as MAT v5 (compressed), which all
 * three readers open; loading also accepts v4 and v7.3 (HDF5) files and any
 * real numeric class (converted to float32). Saving goes to a temporary
 * file renamed over the target, so an existing file is never left damaged.
 *
 * Ownership: the set owns copies of everything added to it; pointers it
 * returns stay valid until the entry is replaced or the set is freed. */
#ifndef CMIR_TENSORSET_H
#define CMIR_TENSORSET_H

#include "cmir/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cmir_tensorset cmir_tensorset;

/* Empty set; NULL on allocation failure. cmir_tensorset_free(NULL) is a
 * no-op. */
CMIR_API cmir_tensorset *cmir_tensorset_new(void);
CMIR_API void cmir_tensorset_free(cmir_tensorset *ts);

/* Copies t (contiguous, rank 1..4) under `name`, replacing an entry of
 * that name. Names are MATLAB identifiers: a letter, then letters, digits
 * or '_', at most 63 characters. Returns 0, CMIR_EINVAL or CMIR_ENOMEM. */
CMIR_API int cmir_tensorset_put(cmir_tensorset *ts, const char *name, const cmir_tensor *t);
/* Copies the NUL-terminated string `value` under `name` (7-bit text). */
CMIR_API int cmir_tensorset_put_string(cmir_tensorset *ts, const char *name,
                                       const char *value);

/* The tensor named `name`, or NULL (CMIR_ENOTFOUND in cmir_last_error)
 * if absent or a string. Owned by the set. */
CMIR_API const cmir_tensor *cmir_tensorset_get(const cmir_tensorset *ts, const char *name);
/* The string named `name`, or NULL. Owned by the set. */
CMIR_API const char *cmir_tensorset_get_string(const cmir_tensorset *ts, const char *name);

/* Validation for loaders: 0 when `name` is a tensor of rank ndim whose
 * extents equal shape[] (an entry of -1 in shape accepts any extent);
 * CMIR_ENOTFOUND or CMIR_EFORMAT with a message naming the entry. */
CMIR_API int cmir_tensorset_expect(const cmir_tensorset *ts, const char *name, int ndim,
                                   const int64_t *shape);

/* Number of entries, and the name of entry i (0-based, in insertion or
 * file order); NULL when out of range. */
CMIR_API int cmir_tensorset_count(const cmir_tensorset *ts);
CMIR_API const char *cmir_tensorset_name(const cmir_tensorset *ts, int i);

/* Writes every entry to `path` (MAT v5, compressed) through a temporary
 * file in the same directory, then renames it over `path`. */
CMIR_API int cmir_tensorset_save(const cmir_tensorset *ts, const char *path);

/* Reads every variable of a .mat file. Variables of other kinds (cells,
 * structs, sparse, complex, logical, more than 4 dimensions) are rejected
 * with CMIR_EFORMAT naming the file and variable. A missing, truncated or
 * damaged file gives NULL with the reason in cmir_last_error(), prefixed
 * with "matio" when it comes from matio. */
CMIR_API cmir_tensorset *cmir_tensorset_load(const char *path);

#ifdef __cplusplus
}
#endif
#endif
