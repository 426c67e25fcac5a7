/* bench_index: the index on disk. Writes a GeoPackage index of N random
 * embeddings (default 1,000,000 x 64, half PAN, half MS, square footprints)
 * in the index layout, then times opening it (the embedding matrix read
 * once; page cache of the file dropped first) against searching it (1,000
 * queries, k = 10, cross-modal filter), and reports peak RSS. The index
 * stores the int8 codes (table cmir_q8) as cmir_index writes them; a copy
 * without them gives the bytes per row of each, and the int8 scan's codes
 * are timed three ways: quantised alone (cmir_knn_q8_new), loaded from the
 * file, and quantised by an index without stored codes. */
#include "cmir/knn.h"
#include "cmir/index.h"
#include "index/index_internal.h"

#include <fcntl.h>
#include <sys/stat.h>
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
    OGRLayerH tiles, emb, meta, q8;
    if (cmir__index_create_layers(ds, path, srs, &tiles, &emb, &meta) || cmir__index_create_codes(ds, path, meta, &q8))
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
            if (cmir__index_write_chunk(emb, path, first, k, d, v, mod) ||
                cmir__index_write_codes(q8, path, first, k, d, v))
                return -1;
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

static long long file_bytes(const char *p)
{
    struct stat st;
    return stat(p, &st) ? -1 : (long long)st.st_size;
}

/* dst: a copy of src without the code table (dropped, then VACUUM), as
 * cmir_index -no_codes writes it. */
static int strip_codes(const char *src, const char *dst)
{
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char buf[1 << 16];
    size_t got;
    while (in && out && (got = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, got, out);
    int rc = !in || !out || ferror(in) ? -1 : 0;
    if (in)
        fclose(in);
    if (out && fclose(out))
        rc = -1;
    GDALDatasetH ds = rc ? NULL : GDALOpenEx(dst, GDAL_OF_VECTOR | GDAL_OF_UPDATE, NULL, NULL, NULL);
    if (!ds)
        return -1;
    for (int i = 0; i < GDALDatasetGetLayerCount(ds); i++)
        if (!strcmp(OGR_L_GetName(GDALDatasetGetLayer(ds, i)), "cmir_q8"))
            rc = GDALDatasetDeleteLayer(ds, i) == OGRERR_NONE ? 0 : -1;
    GDALDatasetExecuteSQL(ds, "DELETE FROM cmir_meta WHERE key = 'q8_format'", NULL, NULL);
    GDALDatasetExecuteSQL(ds, "VACUUM", NULL, NULL);
    GDALClose(ds);
    return rc;
}

/* Seconds to get the int8 codes of the index at path (opened first, not
 * timed): cmir__index_codes, which loads stored codes or quantises; cold:
 * the file's page cache dropped after opening. Best of 3; *out: the last. */
static double time_codes(const char *path, int cold, cmir_knn_q8 **out)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        cmir_index *ix = cmir_index_open(path);
        if (!ix)
            return -1;
        if (cold)
            drop_cache(path);
        cmir_knn_q8_free(*out);
        *out = NULL;
        double t0 = now();
        int rc = cmir__index_codes(ix, out);
        double t = now() - t0;
        cmir_index_close(ix);
        if (rc)
            return -1;
        best = t < best ? t : best;
    }
    return best;
}

/* The first int8 search of nq queries on a freshly opened index: the codes
 * (loaded or quantised) are paid inside it. Best of 3. */
static double time_first_search(const char *path, cmir_exec *ex, const float *q, int nq, int k, int64_t *rows,
                                float *dist)
{
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        cmir_index *ix = cmir_index_open(path);
        if (!ix || cmir_index_set_scan(ix, CMIR_SCAN_INT8))
            return -1;
        double t0 = now();
        int rc = cmir_index_search(ix, ex, q, nq, k, NULL, rows, dist);
        double t = now() - t0;
        cmir_index_close(ix);
        if (rc)
            return -1;
        best = t < best ? t : best;
    }
    return best;
}

/* Bytes per row with and without the codes, the codes quantised alone,
 * loaded (cold and warm) and quantised by an index without them, checked
 * byte for byte, and the first int8 search of each index. */
static int codes_report(const char *path, const cmir_index *ix, cmir_exec *ex, const float *q, int nq, int k,
                        int64_t *rows, float *dist)
{
    char plain[4200];
    snprintf(plain, sizeof plain, "%s.nocodes.gpkg", path);
    int64_t n = cmir_index_count(ix);
    int d = cmir_index_dim(ix);
    if (strip_codes(path, plain))
        return -1;
    long long with = file_bytes(path), without = file_bytes(plain);
    printf("file: %.1f bytes/row with int8 codes, %.1f without (%.3fx; matrix %d + codes %zu bytes a row)\n",
           (double)with / n, (double)without / n, (double)with / (double)without, 4 * d, cmir_knn_q8_record_bytes(d));
    double t_new = 1e30;
    cmir_knn_q8 *a = NULL, *b = NULL, *c = NULL;
    for (int rep = 0; rep < 3; rep++) {
        cmir_knn_q8_free(a);
        double t0 = now();
        if (cmir_knn_q8_new(cmir_index_vector(ix, 0), n, d, &a))
            return -1;
        double t = now() - t0;
        t_new = t < t_new ? t : t_new;
    }
    double t_cold = time_codes(path, 1, &b), t_warm = time_codes(path, 0, &b), t_quant = time_codes(plain, 0, &c);
    size_t rb = cmir_knn_q8_record_bytes(d) * (size_t)n;
    unsigned char *ra = malloc(rb), *r2 = malloc(rb);
    int same = ra && r2 && !cmir_knn_q8_get_rows(a, 0, n, ra) && !cmir_knn_q8_get_rows(b, 0, n, r2) &&
               !memcmp(ra, r2, rb) && !cmir_knn_q8_get_rows(c, 0, n, r2) && !memcmp(ra, r2, rb);
    printf("int8 codes of %lld x %d: quantised alone (cmir_knn_q8_new, 1 thread) %.3f s; loaded from the index "
           "%.3f s (page cache dropped), %.3f s (warm); quantised by an index without them %.3f s; "
           "load / quantise = %.2f; %s\n", (long long)n, d, t_new, t_cold, t_warm, t_quant, t_warm / t_quant,
           same ? "byte-identical" : "DIFFERENT");
    double f_with = time_first_search(path, ex, q, nq, k, rows, dist);
    double f_plain = time_first_search(plain, ex, q, nq, k, rows, dist);
    printf("first int8 search (%d queries, codes inside it): %.3f s with stored codes, %.3f s without\n", nq,
           f_with, f_plain);
    cmir_knn_q8_free(a);
    cmir_knn_q8_free(b);
    cmir_knn_q8_free(c);
    free(ra);
    free(r2);
    unlink(plain);
    return same && t_cold >= 0 && t_warm >= 0 && t_quant >= 0 && f_with >= 0 && f_plain >= 0 ? 0 : -1;
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
    if (codes_report(path, ix, ex, q, nq, k, rows, dist)) {
        fprintf(stderr, "bench_index: the int8 codes: %s\n", cmir_last_error());
        return 1;
    }
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
