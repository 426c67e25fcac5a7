/* Tensor views, shape checks, the arena and weight initialisation. */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

cmir_tensor cmir_tensor_make(float *data, int ndim, const int64_t *shape)
{
    cmir_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim < 1 ? 1 : (ndim > CMIR_MAX_DIMS ? CMIR_MAX_DIMS : ndim);
    for (int i = 0; i < CMIR_MAX_DIMS; i++)
        t.shape[i] = i < t.ndim ? shape[i] : 1;
    int64_t s = 1;
    for (int i = CMIR_MAX_DIMS - 1; i >= 0; i--) {
        t.stride[i] = s;
        if (i < t.ndim)
            s *= t.shape[i];
    }
    return t;
}

cmir_tensor cmir_tensor_2d(float *data, int64_t n0, int64_t n1)
{
    int64_t s[2] = {n0, n1};
    return cmir_tensor_make(data, 2, s);
}

cmir_tensor cmir_tensor_4d(float *data, int64_t n, int64_t h, int64_t w, int64_t c)
{
    int64_t s[4] = {n, h, w, c};
    return cmir_tensor_make(data, 4, s);
}

int64_t cmir_tensor_numel(const cmir_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

int cmir_tensor_is_contiguous(const cmir_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s)
            return 0;
        s *= t->shape[i];
    }
    return 1;
}

int cmir__check_tensor(const cmir_tensor *t, int ndim, const char *fn, const char *what)
{
    if (!t || !t->data)
        return cmir__error(CMIR_EINVAL, "%s: %s is NULL", fn, what);
    if (ndim && t->ndim != ndim)
        return cmir__error(CMIR_EINVAL, "%s: %s has rank %d, expected %d", fn, what,
                           t->ndim, ndim);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0)
            return cmir__error(CMIR_EINVAL, "%s: %s has a negative extent", fn, what);
    if (!cmir_tensor_is_contiguous(t))
        return cmir__error(CMIR_EINVAL, "%s: %s is not contiguous", fn, what);
    return 0;
}

int cmir__check_same(const cmir_tensor *a, const cmir_tensor *b, const char *fn,
                     const char *an, const char *bn)
{
    if (cmir_tensor_numel(a) != cmir_tensor_numel(b))
        return cmir__error(CMIR_EINVAL, "%s: %s has %lld elements, %s has %lld", fn, an,
                           (long long)cmir_tensor_numel(a), bn,
                           (long long)cmir_tensor_numel(b));
    return 0;
}

int cmir__elementwise_threads(const cmir_exec *ex, size_t n)
{
    int t = cmir_exec_threads(ex);
    /* Below ~256k elements a thread start costs more than it saves. */
    if (n < (size_t)1 << 18)
        return 1;
    return t;
}

/* ---- arena ---- */
struct cmir_arena {
    unsigned char *base;
    size_t size, used;
};

cmir_arena *cmir_arena_new(size_t bytes)
{
    cmir_arena *a = cmir__calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->base = cmir__malloc_aligned(bytes);
    if (!a->base) {
        cmir__free(a);
        return NULL;
    }
    a->size = bytes;
    return a;
}

void cmir_arena_free(cmir_arena *a)
{
    if (!a)
        return;
    cmir__free_aligned(a->base);
    cmir__free(a);
}

float *cmir_arena_floats(cmir_arena *a, size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (n > (SIZE_MAX - 63) / sizeof(float) || bytes > a->size - a->used) {
        cmir__error(CMIR_ENOMEM, "arena full: %zu of %zu bytes used, %zu more asked",
                    a->used, a->size, bytes);
        return NULL;
    }
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    memset(p, 0, bytes);
    return p;
}

void cmir_arena_reset(cmir_arena *a) { a->used = 0; }
size_t cmir_arena_used(const cmir_arena *a) { return a->used; }

/* ---- initialisation ---- */
void cmir_init_xavier(cmir_rng *r, float *w, size_t n, int fan_in, int fan_out)
{
    float s = sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * cmir_rng_uniform(r) - 1.0f) * s;
}

void cmir_init_he(cmir_rng *r, float *w, size_t n, int fan_in)
{
    float s = sqrtf(2.0f / (float)fan_in);
    for (size_t i = 0; i < n; i++)
        w[i] = cmir_rng_normal(r) * s;
}

void cmir_fill(float *w, size_t n, float value)
{
    for (size_t i = 0; i < n; i++)
        w[i] = value;
}
