/* bench_tile: tiling throughput of cmir_tile() on a 10,000 x 10,000 UInt16
 * PAN scene and its 2,500 x 2,500 x 4 MS scene (aligned, ratio 4), against
 * the time gdal_translate takes to read the same pixels, in the same run.
 *
 * 1. Writes the two test GeoTIFFs (unless present and -keep is given): the
 *    layout of /work/shared/peers/make_tifs.py (uncompressed, tiled 256x256,
 *    pixel-interleaved MS), uniform 11-bit values from a seeded xorshift
 *    (not compressible beyond their entropy), EPSG:32650, PAN 2.5 m and MS
 *    10 m pixels with the same origin, so tiling reads MS windows directly.
 * 2. Reference: gdal_translate -of ENVI FILE /vsimem/out.bin for both files,
 *    in-process through GDALTranslate() (gdal_utils.h; open + translate +
 *    close timed, no process start-up), and once more through system() to
 *    show what the command-line tool costs with its start-up.
 * 3. cmir_tile() on the pair into an archive beside the GeoTIFFs, uncompressed
 *    and compressed (libdeflate at -z LEVEL through HDF5's direct chunk write). After one warm-up round (page cache and
 *    GDAL's driver state), the reference and the tiling runs alternate round
 *    by round, so a noisy neighbour hits both; the best of the rounds and the
 *    median of the per-round ratios are reported.
 * 4. Parts (unless --no-parts), the same work split up outside the library:
 *    the PAN windows and the MS windows read with the GDALDatasetRasterIO()
 *    calls tiling.c makes, then the archive written from memory with
 *    cmir_archive_writer_add() (per tile) and commit (metadata, fsync,
 *    rename) timed apart, uncompressed, libdeflate and HDF5's zlib filter at
 *    level 1 (archive sizes side by side); the remainder of a tiling run is tiling.c's own
 *    per-tile work. Also the cost of one OSRIsSame() call, which tiling.c
 *    makes per tile.
 *
 * Usage: bench_tile [-d DIR] [-keep] [-n SIZE] [-t THREADS] [-r ROUNDS] [-z LEVEL]
 *                   [--labels] [--no-parts] [--no-cli] [--tile-only]
 * Run `bench_tile --help` for the meaning of each. */
#define _GNU_SOURCE

#include "cmir/archive.h"
#include "cmir/base.h"
#include "cmir/tiling.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <cpl_string.h>
#include <cpl_vsi.h>
#include <gdal.h>
#include <gdal_utils.h>
#include <ogr_srs_api.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TS 256     /* tile side (PAN pixels), the default */
#define RATIO 4    /* MS pixel / PAN pixel */
#define MSB 4      /* MS bands */
#define MAXR 16    /* rounds at most */
#define EPSG 32650 /* WGS 84 / UTM zone 50N */
#define X0 500000.0
#define Y0 4000000.0
#define PAN_RES 2.5
#define MS_RES 10.0
#define N_CLASSES 8
#define STORE_MAX 4096 /* tiles kept in memory for the write part */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* User + system CPU seconds of this process and its waited-for children. */
static double cpu_s(void)
{
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    getrusage(RUSAGE_CHILDREN, &b);
    return (double)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) +
           1e-6 * (double)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec);
}

typedef struct timing {
    double wall, cpu;
} timing;

static double min_of(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_of(const double *v, int n)
{
    double s[MAXR];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static uint64_t xs_state;
static inline uint64_t xs_next(void)
{
    uint64_t x = xs_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return xs_state = x;
}

/* ---- test data --------------------------------------------------------- */

/* An existing file of the expected shape (for -keep). */
static int tif_ok(const char *path, int W, int nb, GDALDataType t)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    CPLPushErrorHandler(CPLQuietErrorHandler);
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    CPLPopErrorHandler();
    if (!ds)
        return 0;
    int ok = GDALGetRasterXSize(ds) == W && GDALGetRasterYSize(ds) == W && GDALGetRasterCount(ds) == nb &&
             GDALGetRasterDataType(GDALGetRasterBand(ds, 1)) == t;
    GDALClose(ds);
    return ok;
}

static int set_georef(GDALDatasetH ds, double res)
{
    double gt[6] = {X0, res, 0, Y0, 0, -res};
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    int rc = (!s || OSRImportFromEPSG(s, EPSG) != OGRERR_NONE || GDALSetGeoTransform(ds, gt) != CE_None ||
              GDALSetSpatialRef(ds, s) != CE_None)
                 ? -1
                 : 0;
    if (s)
        OSRDestroySpatialReference(s);
    return rc;
}

/* W x W x nb UInt16 (uniform 0..2047) or, with classes > 0, Byte patches of
 * 80 x 80 pixels holding one class 1..classes each. Written to a temporary
 * name and renamed, so that an interrupted run leaves nothing -keep takes. */
static int write_tif(const char *path, int W, int nb, double res, uint64_t seed, int classes)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part.tif", path);
    GDALDriverH drv = GDALGetDriverByName("GTiff");
    char **opt = NULL;
    opt = CSLSetNameValue(opt, "TILED", "YES");
    opt = CSLSetNameValue(opt, "BLOCKXSIZE", "256");
    opt = CSLSetNameValue(opt, "BLOCKYSIZE", "256");
    opt = CSLSetNameValue(opt, "COMPRESS", "NONE");
    if (nb > 1)
        opt = CSLSetNameValue(opt, "INTERLEAVE", "PIXEL");
    GDALDataType t = classes ? GDT_Byte : GDT_UInt16;
    int es = classes ? 1 : 2;
    GDALDatasetH ds = drv ? GDALCreate(drv, tmp, W, W, nb, t, opt) : NULL;
    CSLDestroy(opt);
    if (!ds) {
        fprintf(stderr, "bench_tile: cannot create %s: %s\n", tmp, CPLGetLastErrorMsg());
        return -1;
    }
    int rc = set_georef(ds, res);
    const int rows = 256;
    uint8_t *buf = malloc((size_t)W * rows * nb * es);
    if (!buf)
        rc = -1;
    xs_state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int y = 0; !rc && y < W; y += rows) {
        int h = y + rows > W ? W - y : rows;
        size_t n = (size_t)W * h * nb;
        if (classes) {
            for (int yy = 0; yy < h; yy++)
                for (int x = 0; x < W; x++) {
                    uint64_t k = (uint64_t)((y + yy) / 80) * 1000003u + (uint64_t)(x / 80);
                    k = (k + seed) * 0x9E3779B97F4A7C15ull;
                    buf[(size_t)yy * W + x] = (uint8_t)(1 + (k >> 33) % (uint64_t)classes);
                }
        } else {
            uint16_t *v = (uint16_t *)buf;
            size_t i = 0;
            for (; i + 4 <= n; i += 4) { /* four 11-bit values per draw */
                uint64_t r = xs_next();
                v[i] = (uint16_t)(r & 0x7FF);
                v[i + 1] = (uint16_t)((r >> 16) & 0x7FF);
                v[i + 2] = (uint16_t)((r >> 32) & 0x7FF);
                v[i + 3] = (uint16_t)((r >> 48) & 0x7FF);
            }
            for (; i < n; i++)
                v[i] = (uint16_t)(xs_next() & 0x7FF);
        }
        if (GDALDatasetRasterIO(ds, GF_Write, 0, y, W, h, buf, W, h, t, nb, NULL, (GSpacing)nb * es,
                                (GSpacing)W * nb * es, es) != CE_None)
            rc = -1;
    }
    free(buf);
    GDALClose(ds);
    if (!rc && rename(tmp, path) != 0)
        rc = -1;
    if (rc) {
        fprintf(stderr, "bench_tile: writing %s failed: %s\n", path, CPLGetLastErrorMsg());
        unlink(tmp);
    }
    return rc;
}

static double file_mb(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
}

/* ---- reference: gdal_translate ----------------------------------------- */

static void vsimem_clean(void)
{
    VSIUnlink("/vsimem/out.bin");
    VSIUnlink("/vsimem/out.hdr");
    VSIUnlink("/vsimem/out.bin.aux.xml");
}

/* gdal_translate -of ENVI path /vsimem/out.bin, in-process: open, translate,
 * close (the ENVI file is complete in /vsimem after the close). */
static int ref_inproc(const char *path, timing *t)
{
    char *argv[] = {"-of", "ENVI", NULL};
    double w0 = now_s(), c0 = cpu_s();
    GDALDatasetH src = GDALOpen(path, GA_ReadOnly);
    GDALTranslateOptions *o = src ? GDALTranslateOptionsNew(argv, NULL) : NULL;
    int err = 0;
    GDALDatasetH out = o ? GDALTranslate("/vsimem/out.bin", src, o, &err) : NULL;
    int rc = out ? 0 : -1;
    if (out)
        GDALClose(out);
    if (o)
        GDALTranslateOptionsFree(o);
    if (src)
        GDALClose(src);
    t->wall = now_s() - w0;
    t->cpu = cpu_s() - c0;
    vsimem_clean();
    if (rc)
        fprintf(stderr, "bench_tile: GDALTranslate %s failed: %s\n", path, CPLGetLastErrorMsg());
    return rc;
}

/* The command-line tool, process start-up included. */
static int ref_cli(const char *path, timing *t)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "gdal_translate -q -of ENVI '%s' /vsimem/out.bin", path);
    double w0 = now_s(), c0 = cpu_s();
    int rc = system(cmd);
    t->wall = now_s() - w0;
    t->cpu = cpu_s() - c0;
    if (rc != 0)
        fprintf(stderr, "bench_tile: '%s' failed (status %d)\n", cmd, rc);
    return rc ? -1 : 0;
}

/* ---- cmir_tile ---------------------------------------------------------- */

typedef struct setup {
    char dir[4096], pan[4200], ms[4200], lab[4200], arc[4200];
    int size, threads, rounds, labels;
    int64_t tiles;         /* expected tile pairs */
    double pix_mb;         /* source pixel bytes the tiles hold, MB */
} setup;

static int tile_run(const setup *S, int deflate, int labels, timing *t, double *arc_mb)
{
    const char *pan = S->pan, *ms = S->ms;
    cmir_tile_params p = cmir_tile_default_params();
    p.tile_size = TS;
    p.deflate = deflate;
    p.nodata_frac = 1.0; /* nothing is skipped */
    if (labels) {
        p.label_raster = S->lab;
        p.label_min_frac = 0.0; /* every tile gets its majority class */
        p.multilabel_frac = 0.1;
    }
    cmir_tile_stats st;
    double w0 = now_s(), c0 = cpu_s();
    int rc = cmir_tile(&pan, 1, &ms, 1, S->arc, 0, p, NULL, NULL, &st);
    t->wall = now_s() - w0;
    t->cpu = cpu_s() - c0;
    *arc_mb = file_mb(S->arc);
    unlink(S->arc);
    if (rc) {
        fprintf(stderr, "bench_tile: cmir_tile failed: %s\n", cmir_last_error());
        return rc;
    }
    if (st.tiles_written != S->tiles || st.ratio != RATIO) {
        fprintf(stderr, "bench_tile: cmir_tile wrote %lld tiles (ratio %d), expected %lld (ratio %d)\n",
                (long long)st.tiles_written, st.ratio, (long long)S->tiles, RATIO);
        return -1;
    }
    return 0;
}

/* ---- parts -------------------------------------------------------------- */

/* The windows tiling.c reads, with its GDALDatasetRasterIO() arguments:
 * PAN 256 x 256 x 1, MS 64 x 64 x 4 pixel-interleaved. Tile k is kept in
 * store[k % cap] (when store is not NULL). */
static int read_windows(const char *path, int ms, int W, uint16_t *store, int64_t cap, uint16_t *one,
                        timing *t)
{
    int n = ms ? TS / RATIO : TS, nb = ms ? MSB : 1, bands[MSB] = {1, 2, 3, 4}, es = 2;
    int nt = (W - TS) / TS + 1;
    size_t tile = (size_t)n * n * nb;
    double w0 = now_s(), c0 = cpu_s();
    GDALDatasetH ds = GDALOpen(path, GA_ReadOnly);
    if (!ds)
        return -1;
    int64_t k = 0;
    int rc = 0;
    for (int ty = 0; !rc && ty < nt; ty++)
        for (int tx = 0; !rc && tx < nt; tx++, k++) {
            uint16_t *dst = store ? store + (size_t)(k % cap) * tile : one;
            int x0 = ms ? tx * n : tx * TS, y0 = ms ? ty * n : ty * TS;
            if (GDALDatasetRasterIO(ds, GF_Read, x0, y0, n, n, dst, n, n, GDT_UInt16, nb, bands,
                                    (GSpacing)nb * es, (GSpacing)n * nb * es, es) != CE_None)
                rc = -1;
        }
    GDALClose(ds);
    t->wall = now_s() - w0;
    t->cpu = cpu_s() - c0;
    return rc;
}

/* The archive cmir_tile() makes, written from the tiles in memory: adding
 * (layout transpose, HDF5 chunk write, compression) and commit (the small
 * variables, close, fsync, rename) timed apart. */
static int write_archive(const setup *S, int deflate, int zlib, const uint16_t *pan, const uint16_t *ms, int64_t cap,
                         timing *add, timing *commit, double *arc_mb)
{
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = ap.pan_w = TS;
    ap.pan_bands = 1;
    ap.ms_h = ap.ms_w = TS / RATIO;
    ap.ms_bands = MSB;
    ap.pan_type = ap.ms_type = CMIR_DT_UINT16;
    ap.deflate = deflate;
    ap.deflate_zlib = zlib;
    const char *bn[MSB] = {"band_1", "band_2", "band_3", "band_4"}, *pn[1] = {"PAN"};
    ap.ms_band_names = bn;
    ap.pan_band_names = pn;
    char *wkt = NULL;
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    OSRImportFromEPSG(s, EPSG);
    OSRExportToWkt(s, &wkt);
    OSRDestroySpatialReference(s);
    int nt = (S->size - TS) / TS + 1, rc = 0;
    size_t pt = (size_t)TS * TS, mt = (size_t)(TS / RATIO) * (TS / RATIO) * MSB;
    double w0 = now_s(), c0 = cpu_s();
    cmir_archive_writer *w = cmir_archive_create(S->arc, ap);
    if (!w)
        rc = -1;
    int64_t k = 0;
    for (int ty = 0; !rc && ty < nt; ty++)
        for (int tx = 0; !rc && tx < nt; tx++, k++) {
            double pg[6] = {X0 + tx * TS * PAN_RES, PAN_RES, 0, Y0 - ty * TS * PAN_RES, 0, -PAN_RES};
            double mg[6] = {pg[0], MS_RES, 0, pg[3], 0, -MS_RES};
            double pw[4] = {tx * TS, ty * TS, TS, TS};
            double mw[4] = {tx * TS / RATIO, ty * TS / RATIO, TS / RATIO, TS / RATIO};
            cmir_tile_record r = {pan + (size_t)(k % cap) * pt, ms + (size_t)(k % cap) * mt, 0, NULL, pg, mg,
                                  wkt, S->pan, pw, mw, NULL};
            rc = cmir_archive_writer_add(w, &r);
        }
    add->wall = now_s() - w0;
    add->cpu = cpu_s() - c0;
    w0 = now_s();
    c0 = cpu_s();
    if (w)
        rc = rc ? (cmir_archive_writer_abort(w), rc) : cmir_archive_writer_commit(w);
    commit->wall = now_s() - w0;
    commit->cpu = cpu_s() - c0;
    CPLFree(wkt);
    *arc_mb = file_mb(S->arc);
    unlink(S->arc);
    if (rc)
        fprintf(stderr, "bench_tile: archive write failed: %s\n", cmir_last_error());
    return rc;
}

/* One OSRIsSame() of two clones of the scene CRS, as ms_window() calls it. */
static double osr_is_same_us(void)
{
    OGRSpatialReferenceH a = OSRNewSpatialReference(NULL), b;
    OSRImportFromEPSG(a, EPSG);
    b = OSRClone(a);
    OSRSetAxisMappingStrategy(a, OAMS_TRADITIONAL_GIS_ORDER);
    OSRSetAxisMappingStrategy(b, OAMS_TRADITIONAL_GIS_ORDER);
    int same = 0;
    const int reps = 2000;
    double t0 = now_s();
    for (int i = 0; i < reps; i++)
        same += OSRIsSame(a, b);
    double t = (now_s() - t0) / reps;
    OSRDestroySpatialReference(a);
    OSRDestroySpatialReference(b);
    return same == reps ? 1e6 * t : -1;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_tile [-d DIR] [-keep] [-n SIZE] [-t THREADS] [-r ROUNDS]\n"
            "                  [-z LEVEL] [--labels] [--no-parts] [--no-cli] [--tile-only]\n"
            "Times cmir_tile() on a SIZE x SIZE UInt16 PAN GeoTIFF and its SIZE/4 x SIZE/4 x 4 MS\n"
            "(aligned, ratio 4, 256 x 256 tiles, uncompressed and libdeflate) against gdal_translate -of ENVI\n"
            "reading the same files into /vsimem, in the same run; reports tiles/s, MB/s and the\n"
            "ratio tiling time / (PAN + MS read time). Target: ratio <= 1.5.\n"
            "  -d DIR      where the GeoTIFFs and the archive go (default /tmp/cmir_bench_tile)\n"
            "  -keep       reuse the GeoTIFFs in DIR when present with the right shape\n"
            "  -n SIZE     PAN side in pixels, a multiple of 4 and >= 256 (default 10000)\n"
            "  -t THREADS  recorded only: cmir_tile() runs on one thread today (default 1)\n"
            "  -z LEVEL    deflate level of the compressed runs, libdeflate (default 1); the parts\n"
            "              also write HDF5's zlib filter at level 1 for the archive size\n"
            "  -r ROUNDS   timed rounds of reference + tiling, best and median kept (default 3)\n"
            "  --labels    also tile with a class raster (8 classes on the MS grid): label work\n"
            "  --no-parts  skip the split into PAN read, MS read, archive add and commit\n"
            "  --no-cli    skip the gdal_translate command-line (system()) reference\n"
            "  --tile-only only the cmir_tile() rounds (for a profiler); no reference, no parts\n"
            "  -h, --help  this text\n");
}

int main(int argc, char **argv)
{
    setup S;
    memset(&S, 0, sizeof S);
    snprintf(S.dir, sizeof S.dir, "/tmp/cmir_bench_tile");
    S.size = 10000;
    S.threads = 1;
    S.rounds = 3;
    int keep = 0, parts = 1, cli = 1, tile_only = 0, level = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-d") && more) {
            snprintf(S.dir, sizeof S.dir, "%s", argv[++i]);
        } else if (!strcmp(a, "-keep") || !strcmp(a, "--keep")) {
            keep = 1;
        } else if (!strcmp(a, "-n") && more) {
            S.size = atoi(argv[++i]);
        } else if (!strcmp(a, "-t") && more) {
            S.threads = atoi(argv[++i]);
        } else if (!strcmp(a, "-z") && more) {
            level = atoi(argv[++i]);
        } else if (!strcmp(a, "-r") && more) {
            S.rounds = atoi(argv[++i]);
        } else if (!strcmp(a, "--labels")) {
            S.labels = 1;
        } else if (!strcmp(a, "--no-parts")) {
            parts = 0;
        } else if (!strcmp(a, "--no-cli")) {
            cli = 0;
        } else if (!strcmp(a, "--tile-only")) {
            tile_only = 1;
        } else {
            fprintf(stderr, "bench_tile: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (level < 1 || level > 9) {
        fprintf(stderr, "bench_tile: -z must be in 1..9\n");
        return 2;
    }
    if (S.size < TS || S.size % RATIO || S.size > 200000 || S.threads < 1 || S.rounds < 1 || S.rounds > MAXR) {
        fprintf(stderr, "bench_tile: need -n >= %d and a multiple of %d, -t >= 1, 1 <= -r <= %d\n", TS, RATIO,
                MAXR);
        return 2;
    }
    if (mkdir(S.dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "bench_tile: cannot create %s: %s\n", S.dir, strerror(errno));
        return 1;
    }
    const int W = S.size, MW = S.size / RATIO, nt = (W - TS) / TS + 1;
    snprintf(S.pan, sizeof S.pan, "%s/pan_%d.tif", S.dir, W);
    snprintf(S.ms, sizeof S.ms, "%s/ms_%d.tif", S.dir, MW);
    snprintf(S.lab, sizeof S.lab, "%s/labels_%d.tif", S.dir, MW);
    snprintf(S.arc, sizeof S.arc, "%s/bench_tile_archive.mat", S.dir);
    S.tiles = (int64_t)nt * nt;
    double pan_tile_mb = (double)TS * TS * 2 / 1e6, ms_tile_mb = (double)(TS / RATIO) * (TS / RATIO) * MSB * 2 / 1e6;
    S.pix_mb = (double)S.tiles * (pan_tile_mb + ms_tile_mb);

    GDALAllRegister();
    printf("bench_tile: %s\n", cmir_version());
    printf("GDAL %s, %ld online CPUs, threads %d (recorded only: cmir_tile() is single-threaded)\n",
           GDALVersionInfo("RELEASE_NAME"), sysconf(_SC_NPROCESSORS_ONLN), S.threads);
    printf("GDAL_CACHEMAX %d MB\n", (int)(GDALGetCacheMax64() >> 20));

    /* 1. test data */
    double t0 = now_s();
    int made = 0;
    if (!(keep && tif_ok(S.pan, W, 1, GDT_UInt16))) {
        if (write_tif(S.pan, W, 1, PAN_RES, 1, 0))
            return 1;
        made = 1;
    }
    if (!(keep && tif_ok(S.ms, MW, MSB, GDT_UInt16))) {
        if (write_tif(S.ms, MW, MSB, MS_RES, 2, 0))
            return 1;
        made = 1;
    }
    if (S.labels && !(keep && tif_ok(S.lab, MW, 1, GDT_Byte))) {
        if (write_tif(S.lab, MW, 1, MS_RES, 3, N_CLASSES))
            return 1;
        made = 1;
    }
    double pan_mb = file_mb(S.pan), ms_mb = file_mb(S.ms);
    printf("data: %s (%dx%dx1 UInt16, %.1f MB), %s (%dx%dx%d UInt16, %.1f MB)%s%s\n", S.pan, W, W, pan_mb, S.ms,
           MW, MW, MSB, ms_mb, S.labels ? ", labels " : "", S.labels ? S.lab : "");
    printf("      uncompressed, tiled 256x256, uniform 11-bit values, EPSG:%d, PAN %.1f m, MS %.0f m; %s (%.1f s)\n",
           EPSG, PAN_RES, MS_RES, made ? "written" : "kept (-keep)", now_s() - t0);
    printf("tiling: %d x %d = %lld tile pairs of %dx%d PAN + %dx%dx%d MS, %.1f MB of source pixels; "
           "archive %s\n", nt, nt, (long long)S.tiles, TS, TS, TS / RATIO, TS / RATIO, MSB, S.pix_mb, S.arc);
    fflush(stdout);

    /* Warm-up: page cache and GDAL state, untimed. */
    timing tw;
    double amb;
    if (!tile_only && (ref_inproc(S.pan, &tw) || ref_inproc(S.ms, &tw)))
        return 1;
    if (tile_run(&S, level, 0, &tw, &amb))
        return 1;
    printf("warm-up tiling (deflate %d, libdeflate): %.3f s\n\n", level, tw.wall);
    fflush(stdout);

    /* 2 and 3: rounds of reference + tiling. */
    const int nconf = S.labels ? 3 : 2;
    const int conf_deflate[3] = {0, level, level}, conf_labels[3] = {0, 0, 1};
    double rp[MAXR], rm[MAXR], rpc[MAXR], rmc[MAXR], tt[3][MAXR], tc[3][MAXR], ratio[3][MAXR], amb_c[3] = {0};
    for (int r = 0; r < S.rounds; r++) {
        timing a, b;
        if (!tile_only) {
            if (ref_inproc(S.pan, &a) || ref_inproc(S.ms, &b))
                return 1;
            rp[r] = a.wall, rpc[r] = a.cpu, rm[r] = b.wall, rmc[r] = b.cpu;
        }
        printf("round %d:", r + 1);
        if (!tile_only)
            printf(" read PAN %.3f s, MS %.3f s;", rp[r], rm[r]);
        for (int c = 0; c < nconf; c++) {
            if (tile_run(&S, conf_deflate[c], conf_labels[c], &a, &amb_c[c]))
                return 1;
            tt[c][r] = a.wall;
            tc[c][r] = a.cpu;
            ratio[c][r] = tile_only ? 0 : a.wall / (rp[r] + rm[r]);
            printf(" tile d%d%s %.3f s", conf_deflate[c], conf_labels[c] ? "+labels" : "", a.wall);
            if (!tile_only)
                printf(" (x%.2f)", ratio[c][r]);
        }
        printf("\n");
        fflush(stdout);
    }
    double ref_best = 0;
    if (!tile_only) {
        double bp = min_of(rp, S.rounds), bm = min_of(rm, S.rounds);
        ref_best = bp + bm;
        printf("\nreference, gdal_translate -of ENVI FILE /vsimem/out.bin in-process (GDALTranslate), best of %d:\n",
               S.rounds);
        printf("  PAN  %7.3f s  %7.1f MB/s  (cpu %.3f s)\n", bp, pan_mb / bp, min_of(rpc, S.rounds));
        printf("  MS   %7.3f s  %7.1f MB/s  (cpu %.3f s)\n", bm, ms_mb / bm, min_of(rmc, S.rounds));
        printf("  sum  %7.3f s  %7.1f MB/s\n", ref_best, (pan_mb + ms_mb) / ref_best);
        if (cli) {
            timing a, b;
            double cp[MAXR], cm[MAXR];
            for (int r = 0; r < S.rounds; r++) {
                if (ref_cli(S.pan, &a) || ref_cli(S.ms, &b))
                    return 1;
                cp[r] = a.wall, cm[r] = b.wall;
            }
            double c1 = min_of(cp, S.rounds), c2 = min_of(cm, S.rounds);
            printf("  (gdal_translate -q command via system(), start-up included, best of %d: PAN %.3f s, "
                   "MS %.3f s, sum %.3f s)\n", S.rounds, c1, c2, c1 + c2);
        }
    }
    printf("\ncmir_tile, %lld tile pairs, best of %d (median of the per-round ratios in brackets):\n",
           (long long)S.tiles, S.rounds);
    for (int c = 0; c < nconf; c++) {
        double b = min_of(tt[c], S.rounds);
        printf("  deflate %d%-7s %7.3f s  %7.1f tiles/s  %7.1f MB/s  cpu %.3f s  archive %.1f MB", conf_deflate[c],
               conf_labels[c] ? " labels" : "", b, (double)S.tiles / b, S.pix_mb / b, min_of(tc[c], S.rounds),
               amb_c[c]);
        if (!tile_only)
            printf("  ratio %.2f (%.2f) %s", b / ref_best, median_of(ratio[c], S.rounds),
                   b / ref_best <= 1.5 ? "meets <= 1.5" : "MISSES <= 1.5");
        printf("\n");
    }
    fflush(stdout);
    if (tile_only || !parts)
        return 0;

    /* 4. parts */
    int64_t cap = S.tiles < STORE_MAX ? S.tiles : STORE_MAX;
    size_t pt = (size_t)TS * TS, mt = (size_t)(TS / RATIO) * (TS / RATIO) * MSB;
    uint16_t *pan_store = malloc(sizeof(uint16_t) * pt * (size_t)cap);
    uint16_t *ms_store = malloc(sizeof(uint16_t) * mt * (size_t)cap);
    if (!pan_store || !ms_store) {
        fprintf(stderr, "bench_tile: out of memory for the parts\n");
        return 1;
    }
    /* archives written from memory: uncompressed, libdeflate at -z, HDF5's
     * zlib filter at level 1 (the way archives were compressed before) */
    double pr[MAXR], mr[MAXR], ad[3][MAXR], cm[3][MAXR], adc[3][MAXR];
    double amb_w[3] = {0};
    const int w_level[3] = {0, level, 1}, w_zlib[3] = {0, 0, 1};
    for (int r = 0; r < S.rounds; r++) {
        timing a, b;
        if (read_windows(S.pan, 0, W, pan_store, cap, NULL, &a) || read_windows(S.ms, 1, W, ms_store, cap, NULL, &b))
            return 1;
        pr[r] = a.wall, mr[r] = b.wall;
        for (int d = 0; d < 3; d++) {
            if (write_archive(&S, w_level[d], w_zlib[d], pan_store, ms_store, cap, &a, &b, &amb_w[d]))
                return 1;
            ad[d][r] = a.wall, adc[d][r] = a.cpu, cm[d][r] = b.wall;
        }
    }
    double bp = min_of(pr, S.rounds), bm = min_of(mr, S.rounds);
    printf("\nparts, best of %d (the calls tiling.c makes, outside the library):\n", S.rounds);
    printf("  PAN windows read (GDALDatasetRasterIO 256x256x1)      %7.3f s  %7.1f MB/s\n", bp,
           (double)S.tiles * pan_tile_mb / bp);
    printf("  MS windows read  (GDALDatasetRasterIO 64x64x4, PIXEL) %7.3f s  %7.1f MB/s\n", bm,
           (double)S.tiles * ms_tile_mb / bm);
    static const char *wname[3] = {"uncompressed      ", "libdeflate level  ", "HDF5 zlib level   "};
    for (int d = 0; d < 3; d++) {
        double a = min_of(ad[d], S.rounds), c = min_of(cm[d], S.rounds);
        printf("  archive %s%d: add %7.3f s (cpu %.3f s), commit+fsync %7.3f s, archive %7.1f MB (%.3f of "
               "uncompressed)\n", wname[d], w_level[d], a, min_of(adc[d], S.rounds), c, amb_w[d],
               amb_w[d] / amb_w[0]);
        if (d < 2) {
            double tb = min_of(tt[d], S.rounds);
            printf("    -> tiling deflate %d %.3f s = reads %.3f + archive %.3f + rest (tiling.c per-tile work) "
                   "%.3f s\n", w_level[d], tb, bp + bm, a + c, tb - (bp + bm + a + c));
        }
    }
    printf("  archive size: libdeflate level %d %.1f MB = %.3fx HDF5 zlib level 1 (%.1f MB), %.3fx uncompressed "
           "(%.1f MB)\n", level, amb_w[1], amb_w[1] / amb_w[2], amb_w[2], amb_w[1] / amb_w[0], amb_w[0]);
    if (S.labels) {
        double tl = min_of(tt[2], S.rounds), t1 = min_of(tt[1], S.rounds);
        printf("  label work (deflate %d with labels - without): %.3f s, %.3f ms per tile\n", level, tl - t1,
               1e3 * (tl - t1) / (double)S.tiles);
    }
    double us = osr_is_same_us();
    printf("  OSRIsSame() of the scene CRS: %.2f us per call; ms_window() calls it once per tile: %.3f s\n", us,
           us * 1e-6 * (double)S.tiles);
    free(pan_store);
    free(ms_store);
    return 0;
}
