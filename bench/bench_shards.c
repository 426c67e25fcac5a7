/* bench_shards: sharded search under MPI. "write" makes S shards of a
 * random index (R rows x 64, modality alternating, no footprints) for a
 * model and their manifest; "search" runs m row queries (k = 10,
 * cross-modal; scan auto, float or int8: cmir_search_params.scan) with
 * cmir_search_ranks under mpirun -np N (or cmir_search in one process), and prints q/s (from the start of the search, once every query is
 * embedded, to the written output: search, gathers, merge, attributes) and each rank's peak RSS
 * (getrusage) against the matrix it holds. Driven by bench_shards.sh. */
#include "cmir/dist.h"
#include "cmir/index.h"
#include "cmir/model.h"
#include "index/index_internal.h"

#include <gdal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Rows [first, first + n) of the whole, in shard file path. */
static int write_shard(const char *path, int64_t first, int64_t n, int d, const char *model_id)
{
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GPKG"), path, 0, 0, 0, GDT_Unknown, NULL);
    if (!ds)
        return -1;
    OGRSpatialReferenceH srs = OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG);
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    OGRLayerH tiles, emb, meta;
    if (cmir__index_create_layers(ds, path, srs, &tiles, &emb, &meta))
        return -1;
    GDALDatasetStartTransaction(ds, FALSE);
    cmir_rng *r = cmir_rng_new(1000 + (uint64_t)first);
    float *v = malloc(sizeof(float) * (size_t)CMIR_INDEX_CHUNK * d);
    uint8_t *mod = malloc(CMIR_INDEX_CHUNK);
    int64_t at = 0, k = 0;
    for (int64_t i = 0; i < n; i++) {
        OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(tiles));
        OGR_F_SetFieldInteger64(f, 0, i);
        OGR_F_SetFieldInteger64(f, 1, first + i);
        OGR_F_SetFieldString(f, 2, (first + i) % 2 ? "MS" : "PAN");
        OGR_F_SetFieldString(f, 3, "bench.mat");
        if (OGR_L_CreateFeature(tiles, f) != OGRERR_NONE)
            return -1;
        OGR_F_Destroy(f);
        for (int j = 0; j < d; j++)
            v[k * d + j] = cmir_rng_normal(r);
        mod[k] = (uint8_t)((first + i) % 2);
        if (++k == CMIR_INDEX_CHUNK || i == n - 1) {
            cmir__index_write_chunk(emb, path, at, k, d, v, mod);
            at += k;
            k = 0;
        }
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    cmir__index_set_meta(meta, path, "count", buf);
    cmir__index_set_meta(meta, path, "format", CMIR_INDEX_FORMAT);
    cmir__index_set_meta(meta, path, "model_id", model_id);
    snprintf(buf, sizeof buf, "%d", d);
    cmir__index_set_meta(meta, path, "dim", buf);
    cmir__index_set_meta(meta, path, "crs", "");
    int rc = GDALDatasetCommitTransaction(ds) == OGRERR_NONE ? 0 : -1;
    GDALClose(ds);
    OSRDestroySpatialReference(srs);
    free(v);
    free(mod);
    cmir_rng_free(r);
    return rc;
}

static int cmd_write(const char *model_path, const char *manifest, int64_t rows, int shards)
{
    GDALAllRegister();
    cmir_model *m = cmir_model_load(model_path);
    if (!m || cmir_model_get_info(m)->d_v != 64) {
        fprintf(stderr, "bench_shards: %s: %s\n", model_path, m ? "d_v is not 64" : cmir_last_error());
        return 1;
    }
    char **names = calloc((size_t)shards, sizeof(char *));
    int64_t *counts = calloc((size_t)shards, sizeof(int64_t));
    double t0 = now();
    for (int s = 0; s < shards; s++) {
        char path[4096];
        int64_t first = rows * s / shards;
        counts[s] = rows * (s + 1) / shards - first;
        snprintf(path, sizeof path, "%s.%dof%d.gpkg", manifest, s, shards);
        unlink(path);
        if (write_shard(path, first, counts[s], 64, cmir_model_get_info(m)->id)) {
            fprintf(stderr, "bench_shards: cannot write %s\n", path);
            return 1;
        }
        const char *slash = strrchr(path, '/');
        names[s] = strdup(slash ? slash + 1 : path);
    }
    if (cmir__manifest_write(manifest, (const char *const *)names, counts, shards)) {
        fprintf(stderr, "bench_shards: %s\n", cmir_last_error());
        return 1;
    }
    printf("wrote %s: %d shards, %lld rows x 64 in %.1f s\n", manifest, shards, (long long)rows, now() - t0);
    for (int s = 0; s < shards; s++)
        free(names[s]);
    free(names);
    free(counts);
    cmir_model_free(m);
    return 0;
}

static double t_first, cpu_first;

/* CPU seconds of this process so far (user + system). */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* kB of a "Name:" line of /proc/self/status (RssAnon, RssFile), -1 when absent. */
static double status_kb(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double v = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, name, n) && line[n] == ':')
            v = atof(line + n + 1);
    if (f)
        fclose(f);
    return v;
}
/* The call at 0 comes once every query is embedded: the search starts. */
static int on_progress(double frac, const char *msg, void *user)
{
    (void)frac;
    (void)msg;
    (void)user;
    if (t_first == 0) {
        t_first = now();
        cpu_first = cpu_now();
    }
    return 0;
}

static int cmd_search(const char *model_path, const char *manifest, int m, const char *out, const char *scan,
                      int threads)
{
    cmir_search_params p = cmir_search_default_params();
    p.scan = !strcmp(scan, "int8") ? CMIR_SCAN_INT8 : !strcmp(scan, "float") ? CMIR_SCAN_FLOAT : CMIR_SCAN_AUTO;
    p.k = 10;
    p.threads = threads;
    p.format = "CSV";
    cmir__shard *sh = NULL;
    int n_sh = 0;
    if (cmir__manifest_read(manifest, &sh, &n_sh)) {
        fprintf(stderr, "bench_shards: %s\n", cmir_last_error());
        return 1;
    }
    int64_t total = sh[n_sh - 1].first + sh[n_sh - 1].count;
    cmir_query *q = calloc((size_t)m, sizeof *q);
    for (int i = 0; i < m; i++) {
        q[i].kind = CMIR_QUERY_ROW;
        q[i].row = (int64_t)((double)i * (double)total / m); /* spread over every shard */
    }
    const int R = cmir_dist_rank(), N = cmir_dist_size();
    int g = n_sh / N;
    int64_t held = sh[R * g + g - 1].first + sh[R * g + g - 1].count - sh[R * g].first;
    cmir_dist_barrier();
    int rc = N > 1 ? cmir_search_ranks(model_path, manifest, q, m, out, p, on_progress, NULL)
                   : cmir_search(model_path, manifest, q, m, out, p, on_progress, NULL);
    double t_end = now(), cpu = cpu_now() - cpu_first;
    if (rc) {
        fprintf(stderr, "bench_shards: %s\n", cmir_last_error());
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mine[5] = {(double)ru.ru_maxrss * 1024.0, (double)held * 64 * 4, cpu, status_kb("RssAnon") * 1024.0,
                      status_kb("RssFile") * 1024.0};
    double *all = malloc(sizeof mine * (size_t)N), cpu_all = 0;
    cmir_dist_allgather(mine, sizeof mine, all);
    double qps = m / (t_end - t_first);
    for (int r = 0; r < N; r++)
        cpu_all += all[5 * r + 2];
    if (R == 0) {
        printf("N=%d rows=%lld queries=%d k=10 threads/rank=%d: %.1f q/s wall (%.2f per rank, %.2f per thread); %.1f "
               "CPU s in all, %.1f q per CPU s\n", N, (long long)total, m, threads, qps, qps / N, qps / N / threads,
               cpu_all, m / cpu_all);
        for (int r = 0; r < N; r++)
            printf("  rank %d: peak RSS %.0f MB, its matrix %.0f MB, ratio %.3f (at the end: %.0f MB anonymous, %.0f MB "
                   "file-backed)\n", r, all[5 * r] / 1e6, all[5 * r + 1] / 1e6, all[5 * r] / all[5 * r + 1],
                   all[5 * r + 3] / 1e6, all[5 * r + 4] / 1e6);
    }
    free(all);
    free(q);
    cmir__manifest_free(sh, n_sh);
    return 0;
}

int main(int argc, char **argv)
{
    if (cmir_dist_init(&argc, &argv))
        return 1;
    int rc = 2;
    if (argc == 6 && !strcmp(argv[1], "write"))
        rc = cmd_write(argv[2], argv[3], atoll(argv[4]), atoi(argv[5]));
    else if (argc >= 6 && argc <= 8 && !strcmp(argv[1], "search"))
        rc = cmd_search(argv[2], argv[3], atoi(argv[4]), argv[5], argc >= 7 ? argv[6] : "auto",
                        argc == 8 ? atoi(argv[7]) : 1);
    else
        fprintf(stderr, "Usage: bench_shards write MODEL.mat MANIFEST ROWS SHARDS\n"
                        "       [mpirun -np N] bench_shards search MODEL.mat MANIFEST QUERIES OUT.csv [auto|float|int8 [THREADS]]\n");
    cmir_dist_finalize();
    return rc;
}
