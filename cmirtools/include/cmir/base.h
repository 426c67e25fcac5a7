/* cmir/base.h: error codes and the thread-local error message, the allocator
 * hook, the seeded random number generator, the execution context (thread
 * count and reusable scratch memory) and the progress callback type.
 * Everything else in libcmir builds on this header. */
#ifndef CMIR_BASE_H
#define CMIR_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Export macro: the library is built with hidden visibility; only
 * declarations marked CMIR_API are visible to users. */
#if defined(CMIR_BUILDING_LIBRARY) && defined(__GNUC__)
#define CMIR_API __attribute__((visibility("default")))
#else
#define CMIR_API
#endif

/* CMIR_VERSION_MAJOR/MINOR/PATCH and CMIR_VERSION_STRING, generated from
 * the project VERSION in CMakeLists.txt. */
#include "cmir/version.h"

/* Return codes. 0 is success; every failure is negative. */
enum {
    CMIR_OK = 0,
    CMIR_EINVAL = -1,    /* bad argument: shape mismatch, NULL, out of range */
    CMIR_ENOMEM = -2,    /* an allocation failed */
    CMIR_EIO = -3,       /* reading or writing a file failed */
    CMIR_EFORMAT = -4,   /* a file is not what it claims, or is damaged */
    CMIR_ECANCEL = -5,   /* the progress callback asked to stop */
    CMIR_ENOTFOUND = -6, /* a named item is missing */
    CMIR_EUNSUPPORTED = -7 /* valid but not supported by this build */
};

/* Library version as "MAJOR.MINOR.PATCH"; static storage, never free it. */
CMIR_API const char *cmir_version(void);

/* One line per dependency: OpenBLAS build configuration and core, matio
 * version. Static storage, never free it. */
CMIR_API const char *cmir_build_info(void);

/* The message of the last failure in the calling thread ("" if none).
 * Owned by the library, valid until the next libcmir call in this thread. */
CMIR_API const char *cmir_last_error(void);

/* The code of the last failure in the calling thread (0 if none): what a
 * constructor that returned NULL would have returned. */
CMIR_API int cmir_last_error_code(void);

/* Short name of a return code ("CMIR_EINVAL", ...); static storage. */
CMIR_API const char *cmir_strerror(int code);

/* The two modalities of a model, an archive and an index. Image-speech
 * models use the same two slots: the image is PAN's (CMIR_IMAGE), the
 * clip MS's (CMIR_AUDIO). Here, below every module, so that the model,
 * the index and the archive share one type. */
typedef enum cmir_modality {
    CMIR_PAN = 0,
    CMIR_MS = 1,
    CMIR_IMAGE = 0, /* image-speech: the image tiles */
    CMIR_AUDIO = 1  /* image-speech: the spoken clips (clip features) */
} cmir_modality;

/* Progress callback, GDAL style: frac in [0,1], msg may be NULL, user is
 * passed through. Return 0 to continue, non-zero to cancel (the running
 * function then returns CMIR_ECANCEL). */
typedef int (*cmir_progress_fn)(double frac, const char *msg, void *user);

/* ---- Allocator hook --------------------------------------------------
 * Every allocation libcmir makes goes through these. Tests use the hook to
 * fail the n-th allocation. Passing NULL for all three restores malloc,
 * realloc and free. Not thread safe: set it before using the library. */
typedef struct cmir_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void *(*realloc_fn)(void *ptr, size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} cmir_allocator;

CMIR_API void cmir_set_allocator(const cmir_allocator *a);

/* Frees memory that a libcmir function returned to the caller (documented
 * as "free with cmir_free"). NULL is a no-op. */
CMIR_API void cmir_free(void *p);

/* ---- Random numbers --------------------------------------------------
 * A seeded generator of our own (xoshiro256**, seeded by splitmix64), so
 * results never depend on the C library's rand(). Opaque handle; NULL on
 * allocation failure; cmir_rng_free(NULL) is a no-op. */
typedef struct cmir_rng cmir_rng;

CMIR_API cmir_rng *cmir_rng_new(uint64_t seed);
CMIR_API void cmir_rng_free(cmir_rng *r);
CMIR_API void cmir_rng_seed(cmir_rng *r, uint64_t seed);
CMIR_API uint64_t cmir_rng_u64(cmir_rng *r);
/* Uniform in [0, 1), 24 bits of precision. */
CMIR_API float cmir_rng_uniform(cmir_rng *r);
/* Uniform integer in [0, n); n > 0. */
CMIR_API uint64_t cmir_rng_below(cmir_rng *r, uint64_t n);
/* Standard normal (Box-Muller on two uniforms). */
CMIR_API float cmir_rng_normal(cmir_rng *r);
/* The generator's whole state (for checkpoints), and its restoration. */
CMIR_API void cmir_rng_get_state(const cmir_rng *r, uint64_t state[4]);
CMIR_API void cmir_rng_set_state(cmir_rng *r, const uint64_t state[4]);

/* ---- Execution context -----------------------------------------------
 * Holds the thread count used by every kernel that receives it and a
 * scratch buffer that grows to the largest request and is then reused, so
 * repeated training steps allocate nothing. A context must not be used by
 * two threads at once. NULL on allocation failure; free(NULL) is a no-op. */
typedef struct cmir_exec cmir_exec;

typedef struct cmir_exec_params {
    int threads; /* >= 1; 0 means "all online CPUs" */
} cmir_exec_params;

CMIR_API cmir_exec_params cmir_exec_default_params(void);
/* 0, or CMIR_EINVAL naming the bad field (threads). cmir_exec_new calls it. */
CMIR_API int cmir_exec_check_params(cmir_exec_params p);
CMIR_API cmir_exec *cmir_exec_new(cmir_exec_params p);
CMIR_API void cmir_exec_free(cmir_exec *ex);
CMIR_API int cmir_exec_threads(const cmir_exec *ex);

#ifdef __cplusplus
}
#endif
#endif
