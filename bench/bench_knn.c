/* bench_knn: exact k-NN (cmir_knn), d = 64, 1,000 queries, k = 10, against the
 * sgemm peak (n = 2048) and its own GEMM tiles alone, and the int8 scan with
 * exact re-rank (cmir_knn_q8) against it with a hit-by-hit comparison, in one
 * run; single-query latency; peak RSS against the size of the embedding matrix. */
#define _POSIX_C_SOURCE 200809L

#include "cmir/base.h"
#include "cmir/knn.h"
#include "base/internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define MAX_THREADS 64
#define MAX_SIZES 8

typedef struct options {
    int threads, d, k, nq, lat_q, qb, nb;
    int64_t sizes[MAX_SIZES];
    int nsizes;
    double seconds;
} options;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Resets the kernel's peak-RSS mark (VmHWM) of this process; 0 on success. */
static int reset_hwm(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return -1;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* VmHWM (peak RSS since start or the last reset_hwm) in MiB; 0 if unknown. */
static double hwm_mib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0.0;
    if (!f)
        return 0.0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kib = strtod(line + 6, NULL);
    fclose(f);
    return kib / 1024.0;
}

static double maxrss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

static double cur_rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f)
        return 0.0;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2)
        res = 0;
    fclose(f);
    return (double)res * 4096.0 / (1024.0 * 1024.0);
}

#define CK(call)                                                                               \
    do {                                                                                       \
        int rc_ = (call);                                                                      \
        if (rc_) {                                                                             \
            fprintf(stderr, "bench_knn: line %d: %s failed: %s: %s\n", __LINE__, #call,         \
                    cmir_strerror(rc_), cmir_last_error());                                    \
            return rc_;                                                                        \
        }                                                                                      \
    } while (0)

static float *alloc_floats(size_t n)
{
    size_t bytes = ((n ? n : 1) * sizeof(float) + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p)
        fprintf(stderr, "bench_knn: out of memory (%zu bytes)\n", bytes);
    return p;
}

static void fill_normal(cmir_rng *r, float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = cmir_rng_normal(r);
}

/* ------------------------------------------------------------------------ */
/* sgemm peak: square n x n x n on T threads (cmir__sgemm: single-threaded  */
/* OpenBLAS calls on blocks of rows), best of >= min_s                      */

/* Returns GFLOP/s from the best wall time; *cpu_gf gets GFLOP/s per
 * thread-second of process CPU time times T (robust to other load). */
static double sgemm_peak(int T, int n, double min_s, double *cpu_gf)
{
    float *A = alloc_floats((size_t)n * n), *B = alloc_floats((size_t)n * n),
          *C = alloc_floats((size_t)n * n);
    if (!A || !B || !C)
        return 0.0;
    for (size_t i = 0; i < (size_t)n * n; i++) {
        A[i] = (float)((i * 7) % 13) * 0.1f - 0.6f;
        B[i] = (float)((i * 5) % 11) * 0.1f - 0.5f;
    }
    cmir__sgemm(T, 0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n); /* warm-up */
    double best = 1e300, best_cpu = 1e300, start = now_s();
    int reps = 0;
    while (reps < 3 || now_s() - start < min_s) {
        double t0 = now_s(), c0 = cpu_s();
        cmir__sgemm(T, 0, 0, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
        double dt = now_s() - t0, dc = cpu_s() - c0;
        best = dt < best ? dt : best;
        best_cpu = dc < best_cpu ? dc : best_cpu;
        reps++;
    }
    free(A);
    free(B);
    free(C);
    double flop = 2.0 * n * (double)n * n;
    *cpu_gf = flop / (best_cpu / T) * 1e-9;
    return flop / best * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* GEMM-only replay of cmir_knn's tiles: the same sgemm calls in the same
 * order (per query block, per database tile of bn rows, per sub-block of sw
 * queries: C{bn x sw} = -2 X{bn x d} Qt{d x sw}, row-major, ldb = block),
 * without the query transposes and the selection. The block sizes follow
 * the defaults documented in cmir/knn.h (tile_shape() in knn.c).          */

typedef struct replay {
    const float *db, *q;
    int64_t n, m;
    int d, qb, nb, sb;
    float *tiles[MAX_THREADS];
} replay;

static void replay_shape(const replay *r, int bq, int *sw, int *bn)
{
    *sw = bq < r->sb ? bq : r->sb;
    if (r->nb) {
        *bn = r->nb;
        return;
    }
    int64_t x = 1000000 / ((int64_t)*sw * r->d);
    *bn = (int)(x < 16 ? 16 : x > 4096 ? 4096 : x);
}

static int replay_task(int t, int T, void *user)
{
    replay *r = user;
    size_t lo, hi;
    cmir__split((size_t)r->m, T, t, &lo, &hi);
    for (size_t qa = lo; qa < hi; qa += (size_t)r->qb) {
        int bq = (int)(hi - qa < (size_t)r->qb ? hi - qa : (size_t)r->qb);
        int sw0, nb;
        replay_shape(r, bq, &sw0, &nb);
        for (int64_t x0 = 0; x0 < r->n; x0 += nb) {
            int bn = (int)(r->n - x0 < nb ? r->n - x0 : nb);
            /* the queries stand in for their transpose: same shape, same cost */
            for (int i0 = 0; i0 < bq; i0 += sw0) {
                int sw = bq - i0 < sw0 ? bq - i0 : sw0;
                cmir__sgemm(1, 0, 0, bn, sw, r->d, -2.0f, r->db + (size_t)x0 * r->d, r->d,
                            r->q + qa * r->d + i0, bq, 0.0f, r->tiles[t], sw);
            }
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

typedef struct result {
    double best, mean, cpu; /* wall best and mean; least process CPU seconds of a run */
    int reps;
} result;

static int time_knn(cmir_exec *ex, const float *db, int64_t n, const float *q, int64_t m, int d,
                    int k, cmir_knn_params p, int64_t *ids, float *dist, double min_s,
                    int min_reps, result *out)
{
    CK(cmir_knn(ex, db, n, q, m, d, k, p, ids, dist)); /* warm-up: scratch, pages */
    double best = 1e300, total = 0.0, bcpu = 1e300, start = now_s();
    int reps = 0;
    while (reps < min_reps || now_s() - start < min_s) {
        double t0 = now_s(), c0 = cpu_s();
        CK(cmir_knn(ex, db, n, q, m, d, k, p, ids, dist));
        double dt = now_s() - t0, dc = cpu_s() - c0;
        best = dt < best ? dt : best;
        bcpu = dc < bcpu ? dc : bcpu;
        total += dt;
        reps++;
    }
    out->cpu = bcpu;
    out->best = best;
    out->mean = total / reps;
    out->reps = reps;
    return 0;
}

/* The same for the int8 scan (cmir_knn_q8_search). */
static int time_q8(cmir_exec *ex, const cmir_knn_q8 *qx, const float *db, int64_t n,
                   const float *q, int64_t m, int d, int k, int64_t *ids, float *dist,
                   double min_s, int min_reps, result *out)
{
    cmir_knn_params p = cmir_knn_default_params();
    CK(cmir_knn_q8_search(ex, qx, db, n, q, m, d, k, p, ids, dist));
    double best = 1e300, total = 0.0, bcpu = 1e300, start = now_s();
    int reps = 0;
    while (reps < min_reps || now_s() - start < min_s) {
        double t0 = now_s(), c0 = cpu_s();
        CK(cmir_knn_q8_search(ex, qx, db, n, q, m, d, k, p, ids, dist));
        double dt = now_s() - t0, dc = cpu_s() - c0;
        best = dt < best ? dt : best;
        bcpu = dc < bcpu ? dc : bcpu;
        total += dt;
        reps++;
    }
    out->cpu = bcpu;
    out->best = best;
    out->mean = total / reps;
    out->reps = reps;
    return 0;
}

/* Batched GFLOP/s of one size, for the closing summary: [0] norms inside,
 * [1] db_norms given; wall and CPU-time based. */
typedef struct size_result {
    double gf[2], cgf[2];
    double qps_f, qps_q8, cpu_ratio; /* float (best of both), int8 scan */
    int same;                        /* int8 hits bit-identical to float */
} size_result;

static int run_size(const options *o, cmir_exec *ex, cmir_rng *rng, int64_t N, const float *q,
                    double peak, double peak_cpu, size_result *sr)
{
    const int d = o->d, k = o->k, T = o->threads;
    const int64_t m = o->nq;
    double emb_mib = (double)N * d * sizeof(float) / (1024.0 * 1024.0);
    int hwm_ok = reset_hwm() == 0;
    double rss0 = cur_rss_mib();
    float *db = alloc_floats((size_t)N * d), *nx = alloc_floats((size_t)N);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)m * k);
    float *dist = malloc(sizeof(float) * (size_t)m * k);
    if (!db || !nx || !ids || !dist)
        return CMIR_ENOMEM;
    fill_normal(rng, db, (size_t)N * d);
    double flop = 2.0 * (double)N * d * (double)m;

    printf("== N = %lld, d = %d (embedding matrix %.1f MiB), %lld queries, k = %d, %d "
           "thread(s) ==\n",
           (long long)N, d, emb_mib, (long long)m, k, T);
    cmir_knn_params p = cmir_knn_default_params();
    p.query_block = o->qb;
    p.db_block = o->nb;
    int reps = N >= 500000 ? 3 : 5;

    /* 1. batched, norms computed inside each call */
    result r1, r2;
    CK(time_knn(ex, db, N, q, m, d, k, p, ids, dist, o->seconds, reps, &r1));
    /* 2. batched, precomputed norms (a long-lived index) */
    double t0 = now_s();
    CK(cmir_knn_norms(db, N, d, nx));
    double t_norms = now_s() - t0;
    p.db_norms = nx;
    CK(time_knn(ex, db, N, q, m, d, k, p, ids, dist, o->seconds, reps, &r2));
    /* 2b. the int8 scan with exact re-rank, against the float hits just made */
    int64_t *fids = malloc(sizeof(int64_t) * (size_t)m * k);
    float *fdist = malloc(sizeof(float) * (size_t)m * k);
    if (!fids || !fdist)
        return CMIR_ENOMEM;
    memcpy(fids, ids, sizeof(int64_t) * (size_t)m * k);
    memcpy(fdist, dist, sizeof(float) * (size_t)m * k);
    cmir_knn_q8 *qx = NULL;
    t0 = now_s();
    CK(cmir_knn_q8_new(db, N, d, &qx));
    double t_q8 = now_s() - t0;
    result r8;
    CK(time_q8(ex, qx, db, N, q, m, d, k, ids, dist, o->seconds, reps, &r8));
    int same = !memcmp(ids, fids, sizeof(int64_t) * (size_t)m * k) &&
               !memcmp(dist, fdist, sizeof(float) * (size_t)m * k);
    size_t bpr = cmir_knn_q8_bytes_per_row(qx);
    cmir_knn_q8_free(qx);
    free(fids);
    free(fdist);
    /* 3. the same GEMM tiles alone */
    replay rp = {db, q, N, m, d, o->qb ? o->qb : 512, o->nb, 0, {0}};
    int64_t share = (m + T - 1) / T;
    if (rp.qb > share)
        rp.qb = (int)share;
    rp.sb = d <= 128 ? 128 : rp.qb;
    if (d > 128 && !rp.nb)
        rp.nb = 512;
    int sw_show, bn_show;
    replay_shape(&rp, rp.qb, &sw_show, &bn_show);
    size_t tile_elems = (size_t)(rp.nb ? rp.nb : 4096) * (size_t)rp.sb + 1000000 / d;
    for (int t = 0; t < T; t++) {
        if (!(rp.tiles[t] = alloc_floats(tile_elems)))
            return CMIR_ENOMEM;
        memset(rp.tiles[t], 0, sizeof(float) * tile_elems);
    }
    cmir__parallel(T, replay_task, &rp);
    double g_best = 1e300, g_cpu = 1e300, gstart = now_s();
    int greps = 0;
    while (greps < reps || now_s() - gstart < o->seconds) {
        double g0 = now_s(), c0 = cpu_s();
        cmir__parallel(T, replay_task, &rp);
        double dt = now_s() - g0, dc = cpu_s() - c0;
        g_best = dt < g_best ? dt : g_best;
        g_cpu = dc < g_cpu ? dc : g_cpu;
        greps++;
    }
    for (int t = 0; t < T; t++)
        free(rp.tiles[t]);

    double gf1 = flop / r1.best * 1e-9, gf2 = flop / r2.best * 1e-9, gfg = flop / g_best * 1e-9;
    double c1 = flop / (r1.cpu / T) * 1e-9, c2 = flop / (r2.cpu / T) * 1e-9,
           cg = flop / (g_cpu / T) * 1e-9;
    result *rf = r1.best < r2.best ? &r1 : &r2;
    *sr = (size_result){{gf1, gf2}, {c1, c2}, m / rf->best, m / r8.best, rf->cpu / r8.cpu, same};
    printf("  %-24s %8s %8s %9s %9s %7s | %9s %7s\n", "", "best s", "mean s", "q/s",
           "GFLOP/s", "/peak", "cpuGF/s", "/peak");
    printf("  %-24s %8.3f %8.3f %9.0f %9.1f %6.1f%% | %9.1f %6.1f%%\n", "batched, norms inside",
           r1.best, r1.mean, m / r1.best, gf1, 100.0 * gf1 / peak, c1, 100.0 * c1 / peak_cpu);
    printf("  %-24s %8.3f %8.3f %9.0f %9.1f %6.1f%% | %9.1f %6.1f%%\n",
           "batched, db_norms given", r2.best, r2.mean, m / r2.best, gf2, 100.0 * gf2 / peak, c2,
           100.0 * c2 / peak_cpu);
    printf("  %-24s %8.3f %8s %9.0f %9.1f %6.1f%% | %9.1f %6.1f%%   (tiles %d rows x %d queries x %d)\n",
           "GEMM tiles alone", g_best, "", m / g_best, gfg, 100.0 * gfg / peak, cg,
           100.0 * cg / peak_cpu, bn_show, sw_show, d);
    printf("  selection + exact re-rank over the GEMM tiles: %+.1f%% wall, %+.1f%% CPU; "
           "cmir_knn_norms alone (1 thread): %.1f ms\n",
           100.0 * (r2.best / g_best - 1.0), 100.0 * (r2.cpu / g_cpu - 1.0), 1e3 * t_norms);

    printf("  %-24s %8.3f %8.3f %9.0f   = %.2fx float32 q/s (wall, best float run), %.2fx by CPU "
           "time;\n  %-24s hits (ids and dist, %lld x %d) %s the float32 search's; %s kernel;\n"
           "  %-24s %zu bytes per row (d = %d: codes %d + 4 floats) vs %zu float32; build %.0f ms"
           " (1 thread)\n",
           "int8 scan + exact rerank", r8.best, r8.mean, m / r8.best, rf->best / r8.best,
           rf->cpu / r8.cpu, "", (long long)m, k, same ? "IDENTICAL to" : "DIFFER from",
           cmir_knn_q8_vnni() ? "AVX-512 VNNI" : "portable C", "", bpr, d, 4 * ((d + 3) / 4),
           (size_t)d * sizeof(float), 1e3 * t_q8);

    /* 4. single-query latency */
    int lq = N >= 500000 ? (o->lat_q < 20 ? o->lat_q : 20) : o->lat_q;
    if (lq > m)
        lq = (int)m;
    for (int pass = 0; pass < 2; pass++) {
        cmir_knn_params pl = p;
        pl.db_norms = pass ? nx : NULL;
        CK(cmir_knn(ex, db, N, q, 1, d, k, pl, ids, dist)); /* warm-up */
        double tot = 0.0, mx = 0.0;
        for (int i = 0; i < lq; i++) {
            double l0 = now_s();
            CK(cmir_knn(ex, db, N, q + (size_t)i * d, 1, d, k, pl, ids, dist));
            double dt = now_s() - l0;
            tot += dt;
            mx = dt > mx ? dt : mx;
        }
        printf("  single query, %s: %8.3f ms mean, %8.3f ms max over %d queries (%.1f GB/s "
               "of db read)\n",
               pass ? "db_norms given " : "norms inside   ", 1e3 * tot / lq, 1e3 * mx, lq,
               (double)N * d * 4 / (tot / lq) * 1e-9);
    }
    double rss = maxrss_mib(), hwm = hwm_ok ? hwm_mib() : 0.0;
    if (hwm > 0.0)
        printf("  peak RSS while N = %lld ran (VmHWM, reset before): %.1f MiB = %.2fx the "
               "embedding matrix;\n  ",
               (long long)N, hwm, hwm / emb_mib);
    else
        printf("  ");
    printf("process peak RSS so far (ru_maxrss) %.1f MiB = %.2fx; RSS before allocating the "
           "matrix %.1f MiB;\n  the benchmark itself holds db %.1f + norms %.1f + queries %.1f "
           "MiB\n\n",
           rss, rss / emb_mib, rss0, emb_mib, N * 4.0 / (1024.0 * 1024.0),
           (double)m * d * 4 / (1024.0 * 1024.0));
    fflush(stdout);
    free(db);
    free(nx);
    free(ids);
    free(dist);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_knn [-t THREADS] [-N SIZE]... [-q QUERIES] [-k K] [-d DIM]\n"
            "                 [-l LATENCY_QUERIES] [-Q QUERY_BLOCK] [-B DB_BLOCK] [-s SECONDS]\n"
            "  -t N   threads (default 2)          -N n   database size, repeatable\n"
            "                                             (default 80000 and 1000000)\n"
            "  -q n   batched queries (1000)        -k n   neighbours (10)\n"
            "  -d n   dimension (64)                -l n   single-query latency queries (200;\n"
            "                                             at most 20 for N >= 500000)\n"
            "  -Q, -B cmir_knn block sizes (0 = library default)\n"
            "  -s s   minimum seconds per measurement (1)\n"
            "Sizes run in the order given; peak RSS is cumulative, so give the largest last\n"
            "for the RSS ratio to describe it.\n");
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    options o = {2, 64, 10, 1000, 200, 0, 0, {0}, 0, 1.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v)
            goto bad;
        if (!strcmp(a, "-t") && !parse_int(v, 1, MAX_THREADS, &x))
            o.threads = (int)x;
        else if (!strcmp(a, "-N") && o.nsizes < MAX_SIZES && !parse_int(v, 1, 100000000, &x))
            o.sizes[o.nsizes++] = x;
        else if (!strcmp(a, "-q") && !parse_int(v, 1, 1000000, &x))
            o.nq = (int)x;
        else if (!strcmp(a, "-k") && !parse_int(v, 1, 100000, &x))
            o.k = (int)x;
        else if (!strcmp(a, "-d") && !parse_int(v, 1, 4096, &x))
            o.d = (int)x;
        else if (!strcmp(a, "-l") && !parse_int(v, 1, 100000, &x))
            o.lat_q = (int)x;
        else if (!strcmp(a, "-Q") && !parse_int(v, 0, 65536, &x))
            o.qb = (int)x;
        else if (!strcmp(a, "-B") && !parse_int(v, 0, 1 << 20, &x))
            o.nb = (int)x;
        else if (!strcmp(a, "-s")) {
            char *end;
            o.seconds = strtod(v, &end);
            if (*end || !(o.seconds >= 0) || o.seconds > 3600)
                goto bad;
        } else
            goto bad;
        i++;
        continue;
    bad:
        fprintf(stderr, "bench_knn: bad or incomplete option '%s'\n", a);
        usage(stderr);
        return 2;
    }
    if (!o.nsizes) {
        o.sizes[0] = 80000;
        o.sizes[1] = 1000000;
        o.nsizes = 2;
    }
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = o.threads;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_rng *rng = cmir_rng_new(2024);
    float *q = alloc_floats((size_t)o.nq * o.d);
    if (!ex || !rng || !q)
        return 1;
    fill_normal(rng, q, (size_t)o.nq * o.d);

    printf("bench_knn: libcmir %s, OpenBLAS %s (%s)\n", cmir_version(), openblas_get_corename(),
           openblas_get_config());
    printf("threads %d; GFLOP/s counts the GEMM part only: 2*N*d flops per query\n\n",
           o.threads);
    double peak_cpu, peak = sgemm_peak(o.threads, 2048, o.seconds, &peak_cpu);
    printf("== OpenBLAS sgemm peak, square n = 2048, %d thread(s): %.1f GFLOP/s (wall); "
           "%.1f GFLOP/s per %d CPU-seconds ==\n",
           o.threads, peak, peak_cpu, o.threads);
    printf("   (the right-hand 'cpu' columns divide flops by process CPU time / threads: "
           "robust to other load on the machine,\n    blind to idle waiting)\n\n");
    fflush(stdout);
    int rc = 0;
    size_result sr[MAX_SIZES];
    for (int s = 0; s < o.nsizes && !rc; s++)
        rc = run_size(&o, ex, rng, o.sizes[s], q, peak, peak_cpu, &sr[s]);
    double peak_cpu_end, peak_end = sgemm_peak(o.threads, 2048, o.seconds, &peak_cpu_end);
    printf("sgemm peak again at the end: %.1f GFLOP/s wall (%+.1f%% drift), %.1f cpu (%+.1f%%)\n",
           peak_end, 100.0 * (peak_end / peak - 1.0), peak_cpu_end,
           100.0 * (peak_cpu_end / peak_cpu - 1.0));
    if (!rc) {
        /* Conservative ratios: against the larger of the two peak runs. */
        double pw = peak > peak_end ? peak : peak_end;
        double pc = peak_cpu > peak_cpu_end ? peak_cpu : peak_cpu_end;
        printf("\nsummary (batched, %d queries, k = %d, %d thread(s); ratio to the larger sgemm "
               "peak: %.1f wall, %.1f cpu):\n",
               o.nq, o.k, o.threads, pw, pc);
        for (int s = 0; s < o.nsizes; s++)
            printf("  N = %-8lld norms inside %6.1f%% wall %6.1f%% cpu | db_norms given %6.1f%% "
                   "wall %6.1f%% cpu\n",
                   (long long)o.sizes[s], 100.0 * sr[s].gf[0] / pw, 100.0 * sr[s].cgf[0] / pc,
                   100.0 * sr[s].gf[1] / pw, 100.0 * sr[s].cgf[1] / pc);
        for (int s = 0; s < o.nsizes; s++)
            printf("  N = %-8lld float32 %7.0f q/s | int8 scan + exact rerank %7.0f q/s = %.2fx "
                   "wall, %.2fx cpu | hits %s\n",
                   (long long)o.sizes[s], sr[s].qps_f, sr[s].qps_q8, sr[s].qps_q8 / sr[s].qps_f,
                   sr[s].cpu_ratio, sr[s].same ? "identical" : "DIFFERENT");
        printf("  peers (FAISS IndexFlatL2, IndexScalarQuantizer QT_8bit): see "
               "../shared/peers/knn_bench.py; run separately where faiss is installed\n");
    }
    free(q);
    cmir_rng_free(rng);
    cmir_exec_free(ex);
    return rc ? 1 : 0;
}
