/* bench_archive: writes a tile archive of N DSRSID-size pairs (PAN 256x256x1
 * and MS 64x64x4 uint8, smooth noise like imagery), then times opening it and
 * reading random tiles of both modalities with the page cache dropped. */
#define _POSIX_C_SOURCE 200809L

#include "cmir/archive.h"
#include "cmir/base.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIELD 1024 /* side of the smooth base field (power of two) */
#define PAN 256
#define MS 64
#define MSB 4

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint8_t *field;

/* Blurred uniform noise, stretched to 0..255: smooth like a scene. */
static int make_field(uint64_t seed)
{
    float *a = malloc(sizeof(float) * FIELD * FIELD), *b = malloc(sizeof(float) * FIELD * FIELD);
    cmir_rng *r = cmir_rng_new(seed);
    field = malloc(FIELD * FIELD);
    if (!a || !b || !r || !field)
        return -1;
    for (int k = 0; k < FIELD * FIELD; k++)
        a[k] = cmir_rng_uniform(r);
    for (int pass = 0; pass < 3; pass++) { /* separable box blur, radius 6, wrapping */
        for (int y = 0; y < FIELD; y++)
            for (int x = 0; x < FIELD; x++) {
                float s = 0;
                for (int d = -6; d <= 6; d++)
                    s += a[y * FIELD + ((x + d) & (FIELD - 1))];
                b[y * FIELD + x] = s / 13;
            }
        for (int y = 0; y < FIELD; y++)
            for (int x = 0; x < FIELD; x++) {
                float s = 0;
                for (int d = -6; d <= 6; d++)
                    s += b[((y + d) & (FIELD - 1)) * FIELD + x];
                a[y * FIELD + x] = s / 13;
            }
    }
    float lo = a[0], hi = a[0];
    for (int k = 0; k < FIELD * FIELD; k++) {
        lo = a[k] < lo ? a[k] : lo;
        hi = a[k] > hi ? a[k] : hi;
    }
    for (int k = 0; k < FIELD * FIELD; k++)
        field[k] = (uint8_t)(255.0f * (a[k] - lo) / (hi - lo + 1e-9f));
    free(a);
    free(b);
    cmir_rng_free(r);
    return 0;
}

/* Tile pair i, a deterministic function of i: a window of the field with
 * its own offset, gain and a little pixel noise. */
static void make_tile(int64_t i, uint8_t *pan, uint8_t *ms)
{
    uint32_t s = (uint32_t)(i * 2654435761u) ^ 0x9e3779b9u;
#define NEXT() (s ^= s << 13, s ^= s >> 17, s ^= s << 5, s)
    int dy = (int)(NEXT() & (FIELD - 1)), dx = (int)(NEXT() & (FIELD - 1));
    int off = (int)(NEXT() % 64) - 32, gain = 12 + (int)(NEXT() % 8); /* gain / 16 */
    for (int h = 0; h < PAN; h++)
        for (int w = 0; w < PAN; w++) {
            int v = field[((h + dy) & (FIELD - 1)) * FIELD + ((w + dx) & (FIELD - 1))];
            v = v * gain / 16 + off + (int)(NEXT() & 3) - 1;
            pan[h * PAN + w] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    for (int h = 0; h < MS; h++)
        for (int w = 0; w < MS; w++) {
            int v = field[((4 * h + dy) & (FIELD - 1)) * FIELD + ((4 * w + dx) & (FIELD - 1))];
            for (int b = 0; b < MSB; b++) {
                int u = v * (gain + 2 * b) / 16 + off + 10 * b + (int)(NEXT() & 3) - 1;
                ms[(h * MS + w) * MSB + b] = (uint8_t)(u < 0 ? 0 : u > 255 ? 255 : u);
            }
        }
#undef NEXT
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void stats(double *t, int n, double *mean, double *p99)
{
    double s = 0;
    for (int k = 0; k < n; k++)
        s += t[k];
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *mean = s / n;
    *p99 = t[(int)floor(0.99 * (n - 1))];
}

/* Drops the file from the page cache (it is clean after commit's fsync). */
static void drop_cache(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        fdatasync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        close(fd);
    }
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_archive: %s failed: %s\n", what, cmir_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    int64_t n = 80000;
    int deflate = 1, reads = 2000, keep = 0;
    const char *path = "/tmp/bench_archive.mat";
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "-n") && k + 1 < argc)
            n = atoll(argv[++k]);
        else if (!strcmp(argv[k], "-d") && k + 1 < argc)
            deflate = atoi(argv[++k]);
        else if (!strcmp(argv[k], "-r") && k + 1 < argc)
            reads = atoi(argv[++k]);
        else if (!strcmp(argv[k], "-o") && k + 1 < argc)
            path = argv[++k];
        else if (!strcmp(argv[k], "-k"))
            keep = 1;
        else {
            fprintf(stderr, "usage: %s [-n tiles (80000)] [-d deflate 0..9 (1)] [-r reads (2000)] "
                            "[-o path (/tmp/bench_archive.mat)] [-k keep the file]\n", argv[0]);
            return 2;
        }
    }
    if (n < 1 || reads < 1)
        return 2;
    static const char *classes[8] = {"agricultural", "bare soil", "beach", "city", "forest",
                                     "grassland", "water", "industrial"};
    static const char *wkt[2] = {
        "PROJCS[\"WGS 84 / UTM zone 32N\",GEOGCS[\"WGS 84\"],UNIT[\"metre\",1]]",
        "PROJCS[\"WGS 84 / UTM zone 33N\",GEOGCS[\"WGS 84\"],UNIT[\"metre\",1]]"};
    uint8_t *pan = malloc(PAN * PAN), *ms = malloc(MS * MS * MSB);
    uint8_t *pan2 = malloc(PAN * PAN), *ms2 = malloc(MS * MS * MSB);
    float *fp = malloc(sizeof(float) * PAN * PAN), *fm = malloc(sizeof(float) * MS * MS * MSB);
    double *tp = malloc(sizeof(double) * (size_t)reads), *tm = malloc(sizeof(double) * (size_t)reads);
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)reads);
    if (!pan || !ms || !pan2 || !ms2 || !fp || !fm || !tp || !tm || !idx || make_field(7))
        return fail("allocation");

    /* ---- write ---- */
    cmir_archive_params p = cmir_archive_default_params();
    p.n_classes = 8;
    p.class_names = classes;
    p.deflate = deflate;
    double t0 = now_s(), t_gen = 0;
    cmir_archive_writer *w = cmir_archive_create(path, p);
    if (!w)
        return fail("cmir_archive_create");
    for (int64_t i = 0; i < n; i++) {
        double g0 = now_s();
        char scene[32];
        make_tile(i, pan, ms);
        snprintf(scene, sizeof scene, "scene_%03d", (int)(i / 1000));
        double gt[6] = {500000.0 + 256 * (double)(i % 40), 1, 0, 4400000.0 - 256 * (double)(i / 40 % 40), 0, -1};
        double mgt[6] = {gt[0], 4, 0, gt[3], 0, -4};
        double win[4] = {256.0 * (double)(i % 40), 256.0 * (double)(i / 40 % 40), 256, 256};
        double mwin[4] = {win[0] / 4, win[1] / 4, 64, 64};
        cmir_tile_record r = {pan, ms, 1 + (int)(i % 8), NULL, gt, mgt, wkt[(i / 1000) % 2], scene,
                              win, mwin, NULL};
        t_gen += now_s() - g0;
        if (cmir_archive_writer_add(w, &r))
            return fail("cmir_archive_writer_add");
    }
    double c0 = now_s();
    if (cmir_archive_writer_commit(w))
        return fail("cmir_archive_writer_commit");
    double t_commit = now_s() - c0, t_write = now_s() - t0 - t_gen;
    struct stat st;
    stat(path, &st);
    double raw_mb = (double)n * (PAN * PAN + MS * MS * MSB) / 1e6;
    printf("archive: %lld tile pairs (PAN 256x256x1 + MS 64x64x4 uint8), deflate %d, %s\n",
           (long long)n, deflate, path);
    printf("write:   %.1f s (excluding %.1f s of tile generation; commit %.2f s): %.0f tiles/s, "
           "%.1f MB/s of raw pixels\n", t_write, t_gen, t_commit, (double)n / t_write, raw_mb / t_write);
    printf("file:    %.1f MB (raw pixels %.1f MB, ratio %.2f)\n", (double)st.st_size / 1e6, raw_mb,
           raw_mb * 1e6 / (double)st.st_size);

    /* ---- open, cold ---- */
    drop_cache(path);
    double o0 = now_s();
    cmir_archive *a = cmir_archive_open(path);
    double t_open = now_s() - o0;
    if (!a)
        return fail("cmir_archive_open");
    printf("open:    %.2f ms (page cache dropped)\n", 1e3 * t_open);

    /* ---- random reads: cold pass, then the same tiles warm ---- */
    cmir_rng *r = cmir_rng_new(12345);
    for (int k = 0; k < reads; k++)
        idx[k] = (int64_t)cmir_rng_below(r, (uint64_t)n);
    cmir_rng_free(r);
    int bad = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < reads; k++) {
            double s0 = now_s();
            if (cmir_archive_read_tile(a, CMIR_PAN, idx[k], fp))
                return fail("cmir_archive_read_tile");
            double s1 = now_s();
            if (cmir_archive_read_tile(a, CMIR_MS, idx[k], fm))
                return fail("cmir_archive_read_tile");
            tp[k] = s1 - s0;
            tm[k] = now_s() - s1;
            if (pass == 0 && k < 50) { /* spot check against the generator */
                make_tile(idx[k], pan2, ms2);
                for (int j = 0; j < PAN * PAN; j++)
                    bad += fp[j] != pan2[j];
                for (int j = 0; j < MS * MS * MSB; j++)
                    bad += fm[j] != ms2[j];
                bad += cmir_archive_label(a, idx[k]) != 1 + (int)(idx[k] % 8);
            }
        }
        double mp, pp, mm, pm;
        stats(tp, reads, &mp, &pp);
        stats(tm, reads, &mm, &pm);
        printf("read %s: %d random tiles: PAN mean %.3f ms, p99 %.3f ms; MS mean %.3f ms, "
               "p99 %.3f ms (float32 out)\n", pass ? "warm" : "cold", reads, 1e3 * mp, 1e3 * pp,
               1e3 * mm, 1e3 * pm);
    }
    printf("check:   %s\n", bad ? "MISMATCH" : "50 tiles read back equal to the generated ones");
    cmir_archive_close(a);
    if (!keep)
        unlink(path);
    free(pan), free(ms), free(pan2), free(ms2), free(fp), free(fm), free(tp), free(tm), free(idx);
    free(field);
    return bad ? 1 : 0;
}
