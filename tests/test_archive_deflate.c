/* Tests of compressed tile archives (libdeflate + HDF5 direct chunk I/O):
 * the same tiles written uncompressed, by libdeflate and by HDF5's own zlib
 * filter read back identical through cmir_archive, through HDF5's filter
 * pipeline, GDAL's HDF5 driver and GNU Octave's load; a damaged chunk gives
 * a one-line error naming the file and the tile. */
#include <stdio.h>
#include <string.h>
#include "cmir/archive.h"
#include "test_util.h"

#include <gdal.h>
#include <hdf5.h>
#include <stdint.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_arz_XXXXXX";

static const char *path_in(const char *name)
{
    static char buf[8][512];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

#define NT 7
#define PH 40
#define PW 30
#define MH 10
#define MW 8
#define MB 4

/* Compressible but not trivial pixels: smooth ramps plus hashed noise. */
static void tile_pixels(int i, uint16_t *pan, uint8_t *ms)
{
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++) {
            uint32_t h = (uint32_t)(i * 7919 + y * 131 + x) * 2654435761u;
            pan[y * PW + x] = (uint16_t)(1000 + 13 * y + 7 * x + 50 * i + (h >> 28));
        }
    for (int y = 0; y < MH; y++)
        for (int x = 0; x < MW; x++)
            for (int b = 0; b < MB; b++) {
                uint32_t h = (uint32_t)(i * 31 + y * 17 + x * 5 + b) * 2246822519u;
                ms[(y * MW + x) * MB + b] = (uint8_t)(40 * b + 3 * y + 2 * x + (h >> 29));
            }
}

/* mode 0: uncompressed, 1: libdeflate, 2: HDF5's zlib filter. */
static int write_archive(const char *p, int mode, int level)
{
    cmir_archive_params pr = cmir_archive_default_params();
    pr.pan_h = PH, pr.pan_w = PW, pr.pan_type = CMIR_DT_UINT16;
    pr.ms_h = MH, pr.ms_w = MW, pr.ms_bands = MB, pr.ms_type = CMIR_DT_UINT8;
    pr.deflate = mode ? level : 0;
    pr.deflate_zlib = mode == 2;
    cmir_archive_writer *w = cmir_archive_create(p, pr);
    if (!w)
        return -1;
    uint16_t pan[PH * PW];
    uint8_t ms[MH * MW * MB];
    for (int i = 0; i < NT; i++) {
        tile_pixels(i, pan, ms);
        cmir_tile_record r = {.pan = pan, .ms = ms};
        int rc = cmir_archive_writer_add(w, &r);
        if (rc) {
            cmir_archive_writer_abort(w);
            return rc;
        }
    }
    return cmir_archive_writer_commit(w);
}

/* Every tile through cmir_archive equals the pixels written. */
static int check_tiles(const char *p)
{
    cmir_archive *a = cmir_archive_open(p);
    if (!a) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return 1;
    }
    int bad = 0;
    uint16_t pan[PH * PW];
    uint8_t ms[MH * MW * MB];
    float got[PH * PW];
    for (int i = 0; i < NT; i++) {
        tile_pixels(i, pan, ms);
        bad += cmir_archive_read_tile(a, CMIR_PAN, i, got) != 0;
        for (int k = 0; k < PH * PW; k++)
            bad += got[k] != (float)pan[k];
        bad += cmir_archive_read_tile(a, CMIR_MS, i, got) != 0;
        for (int k = 0; k < MH * MW * MB; k++)
            bad += got[k] != (float)ms[k];
    }
    cmir_archive_close(a);
    return bad;
}

/* The whole image variable through HDF5's own read (its filter pipeline),
 * and which filters the dataset declares. */
static void *h5_read(const char *p, const char *name, size_t *bytes, int *has_deflate,
                     hsize_t *stored)
{
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = H5Dget_space(ds), ty = H5Dget_type(ds);
    hid_t dcpl = H5Dget_create_plist(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    size_t es = H5Tget_size(ty);
    void *buf = malloc((size_t)n * es);
    *bytes = (size_t)n * es;
    if (H5Dread(ds, ty, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    *has_deflate = 0;
    for (int i = 0; i < H5Pget_nfilters(dcpl); i++) {
        unsigned flags;
        size_t nc = 0;
        *has_deflate |= H5Pget_filter2(dcpl, (unsigned)i, &flags, &nc, NULL, 0, NULL, NULL) ==
                        H5Z_FILTER_DEFLATE;
    }
    *stored = H5Dget_storage_size(ds);
    H5Pclose(dcpl);
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    return buf;
}

/* The four archives of the cases below (each case may run alone). */
static int make_files(void)
{
    if (access(path_in("zlib1.mat"), F_OK) == 0)
        return 0;
    return write_archive(path_in("raw.mat"), 0, 0) || write_archive(path_in("ld1.mat"), 1, 1) ||
           write_archive(path_in("ld6.mat"), 1, 6) || write_archive(path_in("zlib1.mat"), 2, 1);
}

static void test_roundtrip(void)
{
    REQUIRE(make_files() == 0);
    static const char *files[4] = {"raw.mat", "ld1.mat", "ld6.mat", "zlib1.mat"};
    for (int f = 0; f < 4; f++)
        ASSERT_EQ_INT(check_tiles(path_in(files[f])), 0);
    static const char *vars[2] = {"PAN_IMAGES", "MUL_IMAGES"};
    for (int v = 0; v < 2; v++) {
        size_t rb, b;
        int dfl;
        hsize_t rs, s;
        void *raw = h5_read(path_in("raw.mat"), vars[v], &rb, &dfl, &rs);
        REQUIRE(raw != NULL);
        ASSERT_EQ_INT(dfl, 0);
        for (int f = 1; f < 4; f++) {
            void *z = h5_read(path_in(files[f]), vars[v], &b, &dfl, &s);
            ASSERT_TRUE(z != NULL && b == rb && memcmp(z, raw, rb) == 0);
            ASSERT_EQ_INT(dfl, 1);
            ASSERT_TRUE(s < rs);
            printf("  %-10s %s: %llu bytes stored (uncompressed %llu), HDF5's own read equal\n",
                   files[f], vars[v], (unsigned long long)s, (unsigned long long)rs);
            free(z);
        }
        free(raw);
    }
}

/* GDAL's HDF5 driver (multidimensional API) reads the compressed image
 * variables equal to the uncompressed ones, value for value. */
static void *gdal_read(const char *p, const char *var, GDALDataType dt, size_t es, size_t *n)
{
    GDALDatasetH ds = GDALOpenEx(p, GDAL_OF_MULTIDIM_RASTER | GDAL_OF_VERBOSE_ERROR, NULL, NULL, NULL);
    if (!ds)
        return NULL;
    GDALGroupH root = GDALDatasetGetRootGroup(ds);
    GDALMDArrayH arr = root ? GDALGroupOpenMDArray(root, var, NULL) : NULL;
    void *buf = NULL;
    if (arr) {
        size_t nd = 0;
        GDALDimensionH *dims = GDALMDArrayGetDimensions(arr, &nd);
        GUInt64 start[8] = {0};
        size_t count[8];
        *n = 1;
        for (size_t i = 0; i < nd && i < 8; i++) {
            count[i] = (size_t)GDALDimensionGetSize(dims[i]);
            *n *= count[i];
        }
        GDALReleaseDimensions(dims, nd);
        GDALExtendedDataTypeH t = GDALExtendedDataTypeCreate(dt);
        buf = malloc(*n * es);
        if (nd > 8 || !GDALMDArrayRead(arr, start, count, NULL, NULL, t, buf, NULL, 0)) {
            free(buf);
            buf = NULL;
        }
        GDALExtendedDataTypeRelease(t);
        GDALMDArrayRelease(arr);
    }
    if (root)
        GDALGroupRelease(root);
    GDALClose(ds);
    return buf;
}

static void test_gdal(void)
{
    REQUIRE(make_files() == 0);
    GDALAllRegister();
    if (!GDALGetDriverByName("HDF5"))
        SKIP("GDAL has no HDF5 driver");
    static const char *vars[2] = {"PAN_IMAGES", "MUL_IMAGES"};
    static const GDALDataType dts[2] = {GDT_UInt16, GDT_Byte};
    static const char *files[3] = {"raw.mat", "ld1.mat", "zlib1.mat"};
    for (int v = 0; v < 2; v++) {
        size_t n0 = 0, n = 0, es = v ? 1 : 2;
        void *raw = gdal_read(path_in(files[0]), vars[v], dts[v], es, &n0);
        REQUIRE(raw != NULL);
        ASSERT_EQ_INT((long long)n0, (long long)NT * (v ? MH * MW * MB : PH * PW));
        for (int f = 1; f < 3; f++) {
            void *z = gdal_read(path_in(files[f]), vars[v], dts[v], es, &n);
            ASSERT_TRUE(z && n == n0 && memcmp(z, raw, n * es) == 0);
            free(z);
        }
        printf("  GDAL HDF5 driver, %s: %zu values, compressed == uncompressed\n", vars[v], n0);
        free(raw);
    }
}

/* GNU Octave's load: the compressed archive's image variables equal the
 * uncompressed archive's. */
static void test_octave(void)
{
    if (system("command -v octave-cli > /dev/null 2>&1") != 0)
        SKIP("octave-cli not installed");
    REQUIRE(make_files() == 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "octave-cli --no-gui --quiet --norc --no-history --eval \"a = load('%s'); "
             "b = load('%s'); c = load('%s'); "
             "ok = isequal(a.PAN_IMAGES, b.PAN_IMAGES, c.PAN_IMAGES) && "
             "isequal(a.MUL_IMAGES, b.MUL_IMAGES, c.MUL_IMAGES) && "
             "isequal(size(a.PAN_IMAGES), [%d %d 1 %d]) && a.PAN_IMAGES(1, 1, 1, 1) == 1000; "
             "exit(~ok)\" > %s 2>&1",
             path_in("raw.mat"), path_in("ld1.mat"), path_in("zlib1.mat"), PH, PW, NT,
             path_in("octave.log"));
    int rc = system(cmd);
    if (rc != 0) {
        char line[256];
        FILE *f = fopen(path_in("octave.log"), "r");
        while (f && fgets(line, sizeof line, f))
            fprintf(stderr, "  octave: %s", line);
        if (f)
            fclose(f);
    }
    ASSERT_EQ_INT(rc, 0);
    printf("  Octave load: compressed (libdeflate, zlib) == uncompressed\n");
}

/* File offset and size of chunk `tile` of `var`. */
static int chunk_at(const char *p, const char *var, int tile, haddr_t *addr, hsize_t *size)
{
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, var, H5P_DEFAULT);
    hsize_t off[4] = {(hsize_t)tile, 0, 0, 0};
    unsigned mask;
    herr_t e = H5Dget_chunk_info_by_coord(ds, off, &mask, addr, size);
    hid_t fcpl = H5Fget_create_plist(f);
    hsize_t ub = 0;
    H5Pget_userblock(fcpl, &ub); /* addresses count from after the userblock */
    *addr += ub;
    H5Pclose(fcpl);
    H5Dclose(ds);
    H5Fclose(f);
    return e < 0 ? -1 : 0;
}

static int patch(const char *p, haddr_t at, const void *bytes, size_t n)
{
    FILE *f = fopen(p, "r+b");
    if (!f)
        return -1;
    int ok = fseek(f, (long)at, SEEK_SET) == 0 && fwrite(bytes, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Damaged chunks: flipped bytes in the middle of the deflate stream, a
 * zeroed chunk, a bad checksum. One-line error naming the file and the
 * tile; the other tiles still read. */
static void test_corrupt(void)
{
    static const char *what[3] = {"flipped bytes", "zeroed chunk", "checksum"};
    for (int c = 0; c < 3; c++) {
        const char *p = path_in("bad.mat");
        REQUIRE(write_archive(p, 1, 1) == 0);
        haddr_t at;
        hsize_t sz;
        REQUIRE(chunk_at(p, "PAN_IMAGES", 3, &at, &sz) == 0);
        REQUIRE(sz > 16);
        uint8_t junk[4096];
        size_t n = sz < sizeof junk ? (size_t)sz : sizeof junk;
        if (c == 0) {
            memset(junk, 0xA5, 8);
            REQUIRE(patch(p, at + sz / 2, junk, 8) == 0);
        } else if (c == 1) {
            memset(junk, 0, n);
            REQUIRE(patch(p, at, junk, n) == 0);
        } else {
            uint8_t x = 0x5A;
            REQUIRE(patch(p, at + sz - 1, &x, 1) == 0); /* adler32's last byte */
        }
        cmir_archive *a = cmir_archive_open(p);
        REQUIRE(a != NULL);
        float got[PH * PW];
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, 2, got));
        int rc = cmir_archive_read_tile(a, CMIR_PAN, 3, got);
        const char *msg = cmir_last_error();
        ASSERT_TRUE(rc == CMIR_EFORMAT || rc == CMIR_EIO);
        ASSERT_TRUE(strstr(msg, p) != NULL && strstr(msg, "tile 3") != NULL &&
                    strchr(msg, '\n') == NULL);
        printf("  %-13s -> %s\n", what[c], msg);
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, 4, got));
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, 3, got));
        cmir_archive_close(a);
    }
}

/* Sensor-noise tiles: the low-byte plane of 11-bit PAN and the whole of
 * uint8 MS are near-incompressible and go out as deflate stored blocks
 * (the PAN plane of 65536 bytes needs two), the PAN high bytes through
 * libdeflate. zlib (HDF5's filter) and libdeflate read them back exactly. */
static void test_noise(void)
{
    const char *p = path_in("noise.mat");
    cmir_archive_params pr = cmir_archive_default_params();
    pr.pan_type = CMIR_DT_UINT16; /* 256 x 256 PAN, 64 x 64 x 4 MS */
    pr.deflate = 1;
    cmir_archive_writer *w = cmir_archive_create(p, pr);
    REQUIRE(w != NULL);
    static uint16_t pan[3][256 * 256];
    static uint8_t ms[3][64 * 64 * 4];
    uint32_t r = 2463534242u;
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 256 * 256; k++) {
            r ^= r << 13, r ^= r >> 17, r ^= r << 5;
            pan[i][k] = (uint16_t)(r & 2047);
        }
        for (int k = 0; k < 64 * 64 * 4; k++) {
            r ^= r << 13, r ^= r >> 17, r ^= r << 5;
            ms[i][k] = (uint8_t)(r >> 24);
        }
        cmir_tile_record t = {.pan = pan[i], .ms = ms[i]};
        ASSERT_OK(cmir_archive_writer_add(w, &t));
    }
    REQUIRE(cmir_archive_writer_commit(w) == 0);
    size_t b;
    int dfl;
    hsize_t sp, sm;
    uint16_t *hp = h5_read(p, "PAN_IMAGES", &b, &dfl, &sp);
    uint8_t *hm = h5_read(p, "MUL_IMAGES", &b, &dfl, &sm);
    REQUIRE(hp && hm);
    cmir_archive *a = cmir_archive_open(p);
    REQUIRE(a != NULL);
    static float got[256 * 256];
    int bad = 0;
    for (int i = 0; i < 3; i++) {
        for (int y = 0; y < 256; y++) /* HDF5 order: x slowest, y fastest */
            for (int x = 0; x < 256; x++)
                bad += hp[(size_t)i * 65536 + x * 256 + y] != pan[i][y * 256 + x];
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int c = 0; c < 4; c++)
                    bad += hm[(size_t)i * 16384 + (c * 64 + x) * 64 + y] != ms[i][(y * 64 + x) * 4 + c];
        bad += cmir_archive_read_tile(a, CMIR_PAN, i, got) != 0;
        for (int k = 0; k < 65536; k++)
            bad += got[k] != (float)pan[i][k];
        bad += cmir_archive_read_tile(a, CMIR_MS, i, got) != 0;
        for (int k = 0; k < 16384; k++)
            bad += got[k] != (float)ms[i][k];
    }
    ASSERT_EQ_INT(bad, 0);
    /* high bytes of 11-bit values hold 3 bits: the PAN chunks shrink to
     * about (8 + 3) / 16; the MS chunks are stored (5 bytes per block) */
    ASSERT_TRUE(sp < (hsize_t)(3 * 131072 * 0.75) && sp > (hsize_t)(3 * 131072 * 0.6));
    ASSERT_TRUE(sm >= 3 * 16384 && sm < 3 * 16384 + 3 * 16);
    printf("  noise tiles: PAN %.3f, MS %.3f of uncompressed; HDF5 (zlib) and libdeflate read them exactly\n",
           (double)sp / (3 * 131072), (double)sm / (3 * 16384));
    cmir_archive_close(a);
    free(hp);
    free(hm);
}

/* Appending to a compressed archive compresses the new tiles the same way. */
static void test_append(void)
{
    const char *p = path_in("app.mat");
    REQUIRE(write_archive(p, 1, 3) == 0);
    cmir_archive_writer *w = cmir_archive_append(p);
    REQUIRE(w != NULL);
    uint16_t pan[PH * PW];
    uint8_t ms[MH * MW * MB];
    tile_pixels(100, pan, ms);
    cmir_tile_record r = {.pan = pan, .ms = ms};
    ASSERT_OK(cmir_archive_writer_add(w, &r));
    ASSERT_OK(cmir_archive_writer_commit(w));
    size_t b;
    int dfl;
    hsize_t s;
    void *all = h5_read(p, "PAN_IMAGES", &b, &dfl, &s);
    ASSERT_TRUE(all != NULL && dfl == 1 && b == (size_t)(NT + 1) * PH * PW * 2);
    /* HDF5 order of one tile: W x H with H fastest */
    const uint16_t *t = (const uint16_t *)all + (size_t)NT * PH * PW;
    int bad = 0;
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++)
            bad += t[x * PH + y] != pan[y * PW + x];
    ASSERT_EQ_INT(bad, 0);
    ASSERT_EQ_INT(check_tiles(p), 0);
    free(all);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_roundtrip);
    RUN(test_gdal);
    RUN(test_octave);
    RUN(test_noise);
    RUN(test_corrupt);
    RUN(test_append);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "  could not remove %s\n", dir);
    TEST_MAIN_END();
}
