/* cmir/dist.h: the one place libcmir talks MPI. A process group (the
 * ranks of an mpirun/srun job) with rank, size, barrier, broadcast,
 * gathers, rank-ordered sums and error agreement. Built without MPI
 * (CMIR_WITH_MPI off), or run without a launcher, every call is the
 * single-process case: rank 0 of 1, collectives copy or do nothing.
 * The group is process-wide state with no handle: call these from one
 * thread (MPI is initialised FUNNELED). cmir_dist_gatherv's buffer is the
 * caller's (cmir_dist_free); nothing else here allocates for the caller. */
#ifndef CMIR_DIST_H
#define CMIR_DIST_H

#include "cmir/base.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build links MPI, else 0. */
CMIR_API int cmir_dist_built_with_mpi(void);

/* Joins the job: MPI_Init_thread (funneled) when this build has MPI and
 * the process was started by a launcher (mpirun, mpiexec, srun: their
 * environment says so); otherwise the process is rank 0 of 1 and MPI is
 * never initialised (so plain runs, and hosts such as GDAL loading the
 * plugin, never start MPI). Idempotent. 0, or CMIR_EIO; CMIR_EINVAL when a
 * build without MPI was started as several ranks. */
CMIR_API int cmir_dist_init(int *argc, char ***argv);
/* Leaves the job (MPI_Finalize when cmir_dist_init started MPI). */
CMIR_API void cmir_dist_finalize(void);
/* This process's rank (0-based) and the number of ranks; 0 and 1 before
 * cmir_dist_init or without MPI. */
CMIR_API int cmir_dist_rank(void);
CMIR_API int cmir_dist_size(void);

/* Collectives: every rank must call them in the same order with the same
 * sizes. Each returns 0 or CMIR_EIO (MPI failed; message set). The
 * barrier (and cmir_dist_agree, which starts with one) waits in short
 * sleeps rather than MPI's full-speed polling, so that a rank that is
 * done early leaves the CPU to the others. */
CMIR_API int cmir_dist_barrier(void);
/* Root's bytes to every rank (buf: bytes long on every rank). */
CMIR_API int cmir_dist_bcast(void *buf, size_t bytes, int root);
/* Every rank's `bytes` bytes, in rank order, into recv (size x bytes) on
 * every rank. */
CMIR_API int cmir_dist_allgather(const void *send, size_t bytes, void *recv);
/* Every rank's send (bytes may differ per rank) to root: there *recv gets
 * a new buffer (free with cmir_dist_free) holding them in rank order and
 * counts[size] their lengths; elsewhere *recv is NULL. */
CMIR_API int cmir_dist_gatherv(const void *send, size_t bytes, void **recv, size_t *counts, int root);
CMIR_API void cmir_dist_free(void *p);
/* In place: x[i] = x_rank0[i] + x_rank1[i] + ... added in rank order in
 * double (floats rounded once at the end), identical bits on every rank
 * and from run to run at a given size (unlike MPI_Allreduce, whose order
 * depends on the algorithm); at size 1 x is unchanged. For gradient and
 * batch-norm statistic sums. Each rank sends and receives about twice its
 * buffer, whatever the size. */
CMIR_API int cmir_dist_sum_float(float *x, int64_t n);
CMIR_API int cmir_dist_sum_double(double *x, int64_t n);
/* In place: the largest of every rank's x[i]. */
CMIR_API int cmir_dist_max_int(int *x, int n);
CMIR_API int cmir_dist_max_i64(int64_t *x, int n);

/* Error agreement, collective: each rank passes its own return code (0 or
 * negative) after a step that may fail on some ranks only. Returns 0 when
 * every rank succeeded; otherwise, on every rank, the code of the lowest
 * failing rank with cmir_last_error() = "rank R: <that rank's message>",
 * so that one line names the rank and (in its message) the file. A
 * message agreed before ("rank R: ...") is passed on unchanged. At size 1
 * rc is returned with the message as it is. */
CMIR_API int cmir_dist_agree(int rc);

/* A rank that dies (killed, out of memory) makes the launcher stop the
 * others with SIGTERM, and its own report names the rank only. For
 * programs' main(), after cmir_dist_init: collective; at size > 1 it
 * learns every rank's process id and host and installs a SIGTERM handler
 * (it then re-raises the signal: the process ends as it would have). The
 * lowest surviving rank on the dead rank's host prints one line on stderr,
 * "PROG: rank R (pid P on HOST) ended while WHAT; the job stopped", WHAT
 * as that rank last said with cmir_dist_doing (e.g. "writing
 * index.gpkg.3of8.gpkg"). A SIGTERM with no dead rank (the user's) prints
 * nothing. 0, or CMIR_EIO / CMIR_ENOMEM. */
CMIR_API int cmir_dist_watch(const char *prog);
/* Collective: every rank says what it is about to do, for that line (at
 * most 255 bytes kept; "" when nothing). A no-op without cmir_dist_watch. */
CMIR_API int cmir_dist_doing(const char *what);
/* A rank about to end on purpose without the others (its failure printed,
 * the launcher to stop the rest) says so first, so that the other ranks
 * do not report its end as a death. Async-signal-safe; not collective. */
CMIR_API void cmir_dist_ending(void);
/* For programs' main() only (the library never ends the process): prints
 * "rank R: msg" on stderr and ends every rank of the job (MPI_Abort) with
 * code, or exit(code) without MPI. */
CMIR_API void cmir_dist_abort(int code, const char *msg);

#ifdef __cplusplus
}
#endif
#endif
