/* Allocation through a replaceable hook, so tests can inject failures, and
 * 64-byte aligned buffers for the numerical kernels. */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

static cmir_allocator g_alloc; /* all NULL: use the C library */

void cmir_set_allocator(const cmir_allocator *a)
{
    if (a)
        g_alloc = *a;
    else
        memset(&g_alloc, 0, sizeof g_alloc);
}

void *cmir__malloc(size_t n)
{
    void *p;
    if (n == 0)
        n = 1;
    p = g_alloc.malloc_fn ? g_alloc.malloc_fn(n, g_alloc.user) : malloc(n);
    if (!p)
        cmir__error(CMIR_ENOMEM, "out of memory (%zu bytes)", n);
    return p;
}

void *cmir__calloc(size_t count, size_t size)
{
    void *p;
    if (size && count > SIZE_MAX / size) {
        cmir__error(CMIR_ENOMEM, "allocation size overflow");
        return NULL;
    }
    p = cmir__malloc(count * size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void *cmir__realloc(void *p, size_t n)
{
    void *q;
    if (n == 0)
        n = 1;
    q = g_alloc.realloc_fn ? g_alloc.realloc_fn(p, n, g_alloc.user) : realloc(p, n);
    if (!q)
        cmir__error(CMIR_ENOMEM, "out of memory (%zu bytes)", n);
    return q;
}

void cmir__trim_heap(void)
{
#ifdef __GLIBC__
    if (!g_alloc.free_fn)
        malloc_trim(0);
#endif
}

void cmir__free(void *p)
{
    if (!p)
        return;
    if (g_alloc.free_fn)
        g_alloc.free_fn(p, g_alloc.user);
    else
        free(p);
}

void cmir_free(void *p) { cmir__free(p); }

char *cmir__strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = cmir__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* The raw pointer is stored just before the aligned block. */
void *cmir__malloc_aligned(size_t n)
{
    unsigned char *raw, *al;
    if (n > SIZE_MAX - 64 - sizeof(void *)) {
        cmir__error(CMIR_ENOMEM, "allocation size overflow");
        return NULL;
    }
    raw = cmir__malloc(n + 64 + sizeof(void *));
    if (!raw)
        return NULL;
    al = (unsigned char *)(((uintptr_t)(raw + sizeof(void *)) + 63) & ~(uintptr_t)63);
    memcpy(al - sizeof(void *), &raw, sizeof(void *));
    return al;
}

void cmir__free_aligned(void *p)
{
    void *raw;
    if (!p)
        return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    cmir__free(raw);
}
