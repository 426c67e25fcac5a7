/* bench_index: the index on disk. Writes a GeoPackage index of N random
 * embeddings (default 1,000,000 x 64, half PAN, half MS, square footprints)
 * in the index layout, then times opening it (the embedding matrix read
 * once; page cache of the file dropped first) against searching it (1,000
 * queries, k = 10, cross-modal filter), and reports peak RSS. */
#include "cmir/index.h"
#include "index/index_internal.h"

#include <fcntl.h>
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

static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

static int write_index(const char *path, int64_t n, int d)
{
    GDALAllRegister();
    GDALDatasetH ds = GDALCreate(GDALGetDriverByName("GPKG"), path, 0, 0, 0, GDT_Unknown, NULL);
    if (!ds)
        return -1;
    OGRSpatialReferenceH srs = OSRNewSpatialReference(SRS_WKT_WGS84_LAT_LONG);
    OSRSetAxisMappingStrategy(srs, OAMS_TRADITIONAL_GIS_ORDER);
    OGRLayerH tiles, emb, meta;
    if (cmir__index_create_layers(ds, path, srs, &tiles, &emb, &meta))
        return -1;
    GDALDatasetStartTransaction(ds, FALSE);
    cmir_rng *r = cmir_rng_new(1);
    float *v = malloc(sizeof(float) * (size_t)CMIR_INDEX_CHUNK * d);
    uint8_t *mod = malloc(CMIR_INDEX_CHUNK);
    int64_t first = 0, k = 0;
    for (int64_t i = 0; i < n; i++) {
        OGRFeatureH f = OGR_F_Create(OGR_L_GetLayerDefn(tiles));
        OGR_F_SetFieldInteger64(f, 0, i);
        OGR_F_SetFieldInteger64(f, 1, i % (n / 2));
        OGR_F_SetFieldString(f, 2, i < n / 2 ? "PAN" : "MS");
        OGR_F_SetFieldString(f, 3, "bench.mat");
        OGR_F_SetFieldInteger(f, 6, (int)(i % 8) + 1);
        double x = (double)(i % 1000) * 0.01, y = (double)(i / 1000 % 1000) * 0.01;
        OGRGeometryH ring = OGR_G_CreateGeometry(wkbLinearRing), poly = OGR_G_CreateGeometry(wkbPolygon);
        OGR_G_AddPoint_2D(ring, x, y);
        OGR_G_AddPoint_2D(ring, x + 0.01, y);
        OGR_G_AddPoint_2D(ring, x + 0.01, y + 0.01);
        OGR_G_AddPoint_2D(ring, x, y + 0.01);
        OGR_G_AddPoint_2D(ring, x, y);
        OGR_G_AddGeometryDirectly(poly, ring);
        OGR_F_SetGeometryDirectly(f, poly);
        if (OGR_L_CreateFeature(tiles, f) != OGRERR_NONE)
            return -1;
        OGR_F_Destroy(f);
        for (int j = 0; j < d; j++)
            v[k * d + j] = cmir_rng_normal(r);
        mod[k] = i >= n / 2;
        if (++k == CMIR_INDEX_CHUNK || i == n - 1) {
            cmir__index_write_chunk(emb, path, first, k, d, v, mod);
            first += k;
            k = 0;
        }
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    cmir__index_set_meta(meta, path, "count", buf);
    cmir__index_set_meta(meta, path, "format", CMIR_INDEX_FORMAT);
    cmir__index_set_meta(meta, path, "model_id", "0123456789abcdef");
    snprintf(buf, sizeof buf, "%d", d);
    cmir__index_set_meta(meta, path, "dim", buf);
    cmir__index_set_meta(meta, path, "crs", "");
    GDALDatasetCommitTransaction(ds);
    GDALClose(ds);
    OSRDestroySpatialReference(srs);
    free(v);
    free(mod);
    cmir_rng_free(r);
    return 0;
}

int main(int argc, char **argv)
{
    int64_t n = 1000000;
    int d = 64, threads = 2, nq = 1000, k = 10, keep = 0;
    const char *path = "/tmp/cmir_bench_index.gpkg";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "-keep")) keep = 1;
        else {
            printf("Usage: bench_index [-n ROWS] [-t THREADS] [-o FILE.gpkg] [-keep]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!keep || access(path, F_OK) != 0) {
        unlink(path);
        double t0 = now();
        if (write_index(path, n, d)) {
            fprintf(stderr, "bench_index: cannot write %s\n", path);
            return 1;
        }
        printf("wrote %s: %lld rows x %d in %.1f s\n", path, (long long)n, d, now() - t0);
    }
    double best_open = 1e30, best_open_warm = 1e30;
    cmir_index *ix = NULL;
    for (int rep = 0; rep < 3; rep++) {
        cmir_index_close(ix);
        drop_cache(path);
        double t0 = now();
        ix = cmir_index_open(path);
        double t = now() - t0;
        if (!ix) {
            fprintf(stderr, "bench_index: %s\n", cmir_last_error());
            return 1;
        }
        best_open = t < best_open ? t : best_open;
        cmir_index_close(ix);
        t0 = now();
        ix = cmir_index_open(path);
        t = now() - t0;
        best_open_warm = t < best_open_warm ? t : best_open_warm;
    }
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = threads;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_rng *r = cmir_rng_new(2);
    float *q = malloc(sizeof(float) * (size_t)nq * d);
    for (int64_t i = 0; i < (int64_t)nq * d; i++)
        q[i] = cmir_rng_normal(r);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)nq * k);
    float *dist = malloc(sizeof(float) * (size_t)nq * k);
    cmir_search_filter f = cmir_search_default_filter();
    f.modality = 1; /* queries against the MS half */
    double best_search = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (cmir_index_search(ix, ex, q, nq, k, &f, rows, dist)) {
            fprintf(stderr, "bench_index: %s\n", cmir_last_error());
            return 1;
        }
        double t = now() - t0;
        best_search = t < best_search ? t : best_search;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double matrix_mb = (double)n * d * 4 / 1048576.0;
    printf("index: %lld rows x %d (matrix %.1f MiB), %d thread(s)\n", (long long)n, d, matrix_mb, threads);
    printf("open (page cache dropped): %.3f s; open (warm): %.3f s\n", best_open, best_open_warm);
    printf("search: %d queries, k = %d, MS half only: %.3f s (%.0f queries/s)\n", nq, k, best_search, nq / best_search);
    printf("open / search = %.2f (target <= 1)\n", best_open / best_search);
    printf("peak RSS %.1f MiB = %.2fx the matrix (includes the benchmark's own queries and GDAL)\n",
           ru.ru_maxrss / 1024.0, ru.ru_maxrss / 1024.0 / matrix_mb);
    cmir_index_close(ix);
    cmir_exec_free(ex);
    cmir_rng_free(r);
    free(q);
    free(rows);
    free(dist);
    if (!keep)
        unlink(path);
    return 0;
}
