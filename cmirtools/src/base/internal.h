/* Internal helpers shared by libcmir's modules (not installed): error
 * reporting, allocation through the hook, a fork-join parallel loop and the
 * GEMM wrapper that keeps OpenBLAS and our own threads from oversubscribing. */
#ifndef CMIR_INTERNAL_H
#define CMIR_INTERNAL_H

#include "cmir/base.h"
#include <stddef.h>
#include <stdio.h>

#if defined(__GNUC__)
#define CMIR__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define CMIR__PRINTF(a, b)
#endif

/* Records a message for cmir_last_error() and returns code (so callers can
 * write `return cmir__error(CMIR_EINVAL, "...")`). */
int cmir__error(int code, const char *fmt, ...) CMIR__PRINTF(2, 3);
/* The code to return after a constructor returned NULL: the recorded
 * code, or fallback when none was recorded. */
int cmir__failed(int fallback);
/* Prefixes the current message with "prefix: " (error domains). */
void cmir__error_prefix(const char *prefix);
void cmir__clear_error(void);

void *cmir__malloc(size_t n);
void *cmir__calloc(size_t count, size_t size);
void *cmir__realloc(void *p, size_t n);
void cmir__free(void *p);
/* Returns the heap's free memory to the system (glibc's malloc_trim; a
 * no-op elsewhere or under a custom allocator): after large transient
 * buffers, so that a long-lived process's RSS is what it holds. */
void cmir__trim_heap(void);
char *cmir__strdup(const char *s);
/* 64-byte aligned allocation; release with cmir__free_aligned. */
void *cmir__malloc_aligned(size_t n);
void cmir__free_aligned(void *p);

/* stat()s path into *st: 0 for a regular file, else CMIR_EIO with
 * "path: <reason>" or "path: not a regular file" (a directory, a FIFO). */
struct stat;
int cmir__stat_regular(const char *path, struct stat *st);

/* One appender at a time: opens `path` and takes an exclusive
 * open-file-description lock on its bytes [start, start + len) (len 0: to
 * the end), held until *fd_out is closed. If the file was replaced (an
 * append committed by rename) between open and lock, the new file is
 * locked instead, so an append never starts from a stale copy. 0, or
 * CMIR_EIO with "path: another process is appending to this <what>; ...". */
int cmir__lock_for_append(const char *path, long start, long len, const char *what, int *fd_out);

/* An output file written under a unique temporary name beside its target
 * (same directory and extension) and renamed over it only when complete,
 * so a crash or an error never leaves a half-written or damaged target.
 *   cmir__atomic_open: creates the temporary file (af->fd open for
 *     writing), or with CMIR__ATOMIC_NAME_ONLY only reserves af->tmp for a
 *     writer that creates the file itself (GDAL, SQLite, HDF5, matio);
 *   cmir__atomic_commit: fsyncs the file (af->fd, or af->tmp reopened once
 *     the writer closed it), renames it over af->path, fsyncs the
 *     directory; always releases af;
 *   cmir__atomic_abort: closes and removes the temporary file; a no-op on
 *     a zeroed, committed or already aborted af.
 * The caller owns af (usually on its stack); it is not shared between
 * threads. Returns 0 or CMIR_E* with the message set. */
#define CMIR__ATOMIC_NAME_ONLY 1
typedef struct cmir__atomic_file {
    char *path; /* the target */
    char *tmp;  /* the temporary file beside it */
    int fd;     /* open temporary file, or -1 */
    int open;   /* 1 while the temporary file may exist */
} cmir__atomic_file;
int cmir__atomic_open(cmir__atomic_file *af, const char *path, int flags);
int cmir__atomic_commit(cmir__atomic_file *af);
void cmir__atomic_abort(cmir__atomic_file *af);
/* The same as a stdio stream: cmir__atomic_fopen gives a stream on the
 * temporary file (NULL, message set, on failure); cmir__atomic_fclose
 * closes it and commits, or aborts when a write failed. */
FILE *cmir__atomic_fopen(cmir__atomic_file *af, const char *path);
int cmir__atomic_fclose(FILE *f, cmir__atomic_file *af);

/* Runs argv[0] (a path) with argv, the environment plus each "KEY=VALUE" of
 * the NULL-terminated env_add whose KEY is unset (may be NULL), stdin from
 * /dev/null, stdout and stderr into log_path (NULL: discarded); waits for
 * it, killing it after timeout_s seconds (0: no limit). *status: its exit
 * status, 128 + signal when killed. 0, or CMIR_EIO when it could not be run
 * or was killed at the time limit. */
int cmir__spawn(const char *const *argv, const char *const *env_add, const char *log_path, int timeout_s,
                int *status);

/* Scratch memory of the context: at least `bytes`, 64-byte aligned, valid
 * until the next call on the same context. NULL (error set) on failure. */
void *cmir__exec_scratch(cmir_exec *ex, size_t bytes);

/* Data-parallel training (tools/train_dp.c): while a reducer is set, the
 * training-mode batch norm sums its per-channel sums (and the row count,
 * the last of v) over every process of the global batch through it, so the
 * statistics are the global batch's. cmir__exec_reduce is a no-op (0)
 * without a reducer; otherwise the reducer's return value. */
typedef int (*cmir__exec_reduce_fn)(double *v, size_t n, void *user);
void cmir__exec_set_reduce(cmir_exec *ex, cmir__exec_reduce_fn fn, void *user);
int cmir__exec_reduce(cmir_exec *ex, double *v, size_t n);
int cmir__exec_has_reduce(const cmir_exec *ex);
/* Sums sum[0..n) and *count (rows) through the reducer; no-op without one. */
int cmir__exec_reduce_sums(cmir_exec *ex, double *sum, size_t n, size_t *count);

/* Runs fn(i, n, user) for i in [0, n) on n threads (the caller runs i=0)
 * and waits for all. n <= 1 runs inline. Returns the first non-zero value
 * any fn returned, else 0. */
typedef int (*cmir__task_fn)(int i, int n, void *user);
int cmir__parallel(int n, cmir__task_fn fn, void *user);

/* Splits [0, total) into n near-equal contiguous parts; part i is
 * [*lo, *hi). Deterministic in (total, n, i). */
void cmir__split(size_t total, int n, int i, size_t *lo, size_t *hi);

/* Row-major single-precision GEMM, C = alpha * op(A) op(B) + beta * C,
 * through single-threaded OpenBLAS calls: with threads > 1 (and enough
 * work) C's rows, or its columns when it is wider than tall, are split
 * among that many of our threads (OpenBLAS's own threads are never used:
 * they spin after each call and slow whatever runs next). Deterministic
 * for a given thread count (OpenBLAS's edge kernels may round a block's
 * last rows differently, so other counts can differ in the last bit). */
void cmir__sgemm(int threads, int transa, int transb, int m, int n, int k,
                 float alpha, const float *a, int lda, const float *b, int ldb,
                 float beta, float *c, int ldc);

#endif
