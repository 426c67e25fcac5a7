/* Writes the seed corpus under DIR (normally fuzz/corpus): small valid
 * inputs of every parser, in the variants each accepts (MAT v4/v5/v7.3,
 * compressed or not; CMIR and DSRSID archives; a tiny trained model, its
 * unified.mat and index; connection strings; query lists). Not a test: run
 * it by hand when the formats change.  Usage: fuzz_gen_seeds DIR */
#define _GNU_SOURCE
#include "cmir/archive.h"
#include "cmir/index.h"
#include "cmir/tensorset.h"
#include "cmir/train.h"
#include "test_data.h"

#include <gdal.h>
#include <hdf5.h>
#include <math.h>
#include <matio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[1024];

static const char *P(const char *sub, const char *name)
{
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, sub);
    mkdir(buf[k], 0777);
    snprintf(buf[k], sizeof buf[k], "%s/%s/%s", root, sub, name);
    return buf[k];
}

static void die(const char *what)
{
    fprintf(stderr, "gen_seeds: %s: %s\n", what, cmir_last_error());
    exit(1);
}

static void text(const char *sub, const char *name, const char *s)
{
    FILE *f = fopen(P(sub, name), "wb");
    if (!f || fputs(s, f) < 0 || fclose(f))
        die(name);
}

/* A tensorset written with matio directly: uncompressed MAT v5, v7.3 or v4,
 * the tensors converted to column-major as the library does. */
static void save_raw(const cmir_tensorset *ts, const char *path, enum mat_ft ver)
{
    unlink(path);
    mat_t *mat = Mat_CreateVer(path, NULL, ver);
    if (!mat)
        die(path);
    for (int i = 0; i < cmir_tensorset_count(ts); i++) {
        const char *name = cmir_tensorset_name(ts, i);
        const cmir_tensor *t = cmir_tensorset_get(ts, name);
        matvar_t *v;
        if (t) {
            size_t dims[4] = {1, 1, 1, 1};
            int r = t->ndim < 2 ? 2 : t->ndim;
            for (int k = 0; k < t->ndim; k++)
                dims[k] = (size_t)t->shape[k];
            size_t n = (size_t)cmir_tensor_numel(t);
            double *col = malloc(sizeof(double) * (n ? n : 1));
            for (size_t e = 0; e < n; e++) { /* row-major index e -> column-major */
                size_t rem = e, idx[4] = {0, 0, 0, 0}, c = 0, s = 1;
                for (int k = t->ndim - 1; k >= 0; k--) {
                    idx[k] = rem % dims[k];
                    rem /= dims[k];
                }
                for (int k = 0; k < t->ndim; k++) {
                    c += idx[k] * s;
                    s *= dims[k];
                }
                col[c] = t->data[e];
            }
            /* v4 holds only doubles; elsewhere keep singles */
            if (ver == MAT_FT_MAT4) {
                v = Mat_VarCreate(name, MAT_C_DOUBLE, MAT_T_DOUBLE, r, dims, col, 0);
            } else {
                float *fl = malloc(sizeof(float) * (n ? n : 1));
                for (size_t e = 0; e < n; e++)
                    fl[e] = (float)col[e];
                v = Mat_VarCreate(name, MAT_C_SINGLE, MAT_T_SINGLE, r, dims, fl, 0);
                Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE);
                Mat_VarFree(v);
                free(fl);
                free(col);
                continue;
            }
            Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE);
            Mat_VarFree(v);
            free(col);
        } else if (ver != MAT_FT_MAT4) {
            const char *s = cmir_tensorset_get_string(ts, name);
            size_t dims[2] = {1, strlen(s)};
            v = Mat_VarCreate(name, MAT_C_CHAR, MAT_T_UINT8, 2, dims, (void *)s, 0);
            Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE);
            Mat_VarFree(v);
        }
    }
    Mat_Close(mat);
}

static cmir_tensor T(float *d, int nd, int64_t a, int64_t b, int64_t c, int64_t e)
{
    int64_t s[4] = {a, b, c, e};
    return cmir_tensor_make(d, nd, s);
}

static void tensorset_seeds(void)
{
    float d[64];
    for (int i = 0; i < 64; i++)
        d[i] = (float)i - 7.5f;
    cmir_tensorset *ts = cmir_tensorset_new();
    cmir_tensor a = T(d, 2, 2, 3, 0, 0), v = T(d, 1, 5, 0, 0, 0), t4 = T(d, 4, 2, 1, 2, 3);
    cmir_tensorset_put(ts, "a", &a);
    cmir_tensorset_put(ts, "v", &v);
    cmir_tensorset_put(ts, "t4", &t4);
    cmir_tensorset_put_string(ts, "s", "hello");
    if (cmir_tensorset_save(ts, P("tensorset", "seed-v5z.mat")))
        die("tensorset v5z");
    save_raw(ts, P("tensorset", "seed-v5.mat"), MAT_FT_MAT5);
    save_raw(ts, P("tensorset", "seed-v73.mat"), MAT_FT_MAT73);
    save_raw(ts, P("tensorset", "seed-v4.mat"), MAT_FT_MAT4);
    cmir_tensorset_free(ts);
    /* other numeric classes and an empty matrix */
    const char *p = P("tensorset", "seed-classes.mat");
    unlink(p);
    mat_t *mat = Mat_CreateVer(p, NULL, MAT_FT_MAT5);
    size_t dims[2] = {2, 2}, zero[2] = {0, 0};
    int16_t i16[4] = {1, -2, 3, -4};
    uint8_t u8[4] = {1, 2, 3, 250};
    double dd[4] = {0.5, 1.5, 2.5, 1e30};
    matvar_t *mv = Mat_VarCreate("i16", MAT_C_INT16, MAT_T_INT16, 2, dims, i16, 0);
    Mat_VarWrite(mat, mv, MAT_COMPRESSION_NONE);
    Mat_VarFree(mv);
    mv = Mat_VarCreate("u8", MAT_C_UINT8, MAT_T_UINT8, 2, dims, u8, 0);
    Mat_VarWrite(mat, mv, MAT_COMPRESSION_NONE);
    Mat_VarFree(mv);
    mv = Mat_VarCreate("dbl", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dims, dd, 0);
    Mat_VarWrite(mat, mv, MAT_COMPRESSION_NONE);
    Mat_VarFree(mv);
    mv = Mat_VarCreate("empty", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, zero, NULL, 0);
    Mat_VarWrite(mat, mv, MAT_COMPRESSION_NONE);
    Mat_VarFree(mv);
    Mat_Close(mat);
}

static void archive_seed(const char *name, int variant)
{
    cmir_archive_params ap = cmir_archive_default_params();
    static const char *cls[2] = {"water", "forest"}, *pb[1] = {"pan"}, *mb[2] = {"red", "nir"};
    ap.pan_h = ap.pan_w = 8;
    ap.ms_h = ap.ms_w = 4;
    ap.ms_bands = 2;
    ap.n_classes = 2;
    if (variant == 0) {
        ap.class_names = cls;
        ap.pan_band_names = pb;
        ap.ms_band_names = mb;
        ap.multilabel = 1;
        ap.deflate = 0;
        ap.ms_type = CMIR_DT_UINT16;
        ap.pan_nodata = 0;
        ap.ms_nodata = 65535;
    } else {
        ap.pan_type = CMIR_DT_FLOAT32;
        ap.ms_type = CMIR_DT_INT16;
    }
    cmir_archive_writer *w = cmir_archive_create(P("archive", name), ap);
    if (!w)
        die(name);
    float pan[64];
    uint16_t ms[32];
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < 64; k++)
            pan[k] = variant == 0 ? (float)(uint8_t)(k * 3 + i) : (float)k * 0.5f;
        uint8_t pan8[64];
        for (int k = 0; k < 64; k++)
            pan8[k] = (uint8_t)pan[k];
        for (int k = 0; k < 32; k++)
            ms[k] = (uint16_t)(k * 100 + i);
        double gt[6] = {500000 + 80 * i, 10, 0, 4000000, 0, -10};
        double mgt[6] = {500000 + 80 * i, 20, 0, 4000000, 0, -20};
        double win[4] = {8.0 * i, 0, 8, 8}, mwin[4] = {4.0 * i, 0, 4, 4};
        uint8_t ml[2] = {1, (uint8_t)(i & 1)};
        cmir_tile_record r = {0};
        r.pan = variant == 0 ? (const void *)pan8 : (const void *)pan;
        r.ms = ms;
        r.label = 1 + (i & 1);
        if (variant == 0) {
            r.multilabel = ml;
            r.pan_gt = gt;
            r.ms_gt = mgt;
            r.crs_wkt = "EPSG:32631";
            r.scene = i ? "scene_b" : "scene_a";
            r.pan_window = win;
            r.ms_window = mwin;
        }
        if (cmir_archive_writer_add(w, &r))
            die(name);
    }
    if (cmir_archive_writer_commit(w))
        die(name);
}

/* Compressed tiles of sensor noise: libdeflate writes the low-byte plane
 * of the 11-bit PAN and the uint8 MS as stored blocks (zlib = 0), or
 * HDF5's zlib filter writes them (zlib = 1); both read through
 * H5Dread_chunk + libdeflate. */
static void noise_archive_seed(const char *name, int zlib)
{
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = ap.pan_w = 64;
    ap.ms_h = ap.ms_w = 16;
    ap.pan_type = CMIR_DT_UINT16;
    ap.deflate = 1;
    ap.deflate_zlib = zlib;
    cmir_archive_writer *w = cmir_archive_create(P("archive", name), ap);
    if (!w)
        die(name);
    uint16_t pan[64 * 64];
    uint8_t ms[16 * 16 * 4];
    uint32_t x = 2463534242u;
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 64 * 64; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            pan[k] = (uint16_t)(x & 2047);
        }
        for (int k = 0; k < 16 * 16 * 4; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            ms[k] = (uint8_t)(x >> 24);
        }
        cmir_tile_record r = {0};
        r.pan = pan;
        r.ms = ms;
        if (cmir_archive_writer_add(w, &r))
            die(name);
    }
    if (cmir_archive_writer_commit(w))
        die(name);
}

static void dsrsid_seed(const char *name, int mat73)
{
    const char *p = P("archive", name);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (mat73)
        H5Pset_userblock(fcpl, 512);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    enum { N = 3 };
    hsize_t dp[4] = {N, 1, 8, 8}, dm[4] = {N, 4, 4, 4}, dl[2] = {1, N};
    uint8_t buf[N * 64];
    for (int i = 0; i < N * 64; i++)
        buf[i] = (uint8_t)i;
    hid_t sp = H5Screate_simple(4, dp, NULL);
    hid_t ds = H5Dcreate2(f, "PAN_IMAGES", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    H5Sclose(sp);
    sp = H5Screate_simple(4, dm, NULL);
    ds = H5Dcreate2(f, "MUL_IMAGES", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    H5Sclose(sp);
    double lab[N] = {1, 8, 3};
    sp = H5Screate_simple(2, dl, NULL);
    ds = H5Dcreate2(f, "LAND_COVER_TYPES", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
    if (mat73) {
        char head[128];
        memset(head, ' ', sizeof head);
        const char *h = "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .";
        memcpy(head, h, strlen(h));
        head[124] = 0;
        head[125] = 2;
        head[126] = 'I';
        head[127] = 'M';
        FILE *fp = fopen(p, "r+b");
        fwrite(head, 1, sizeof head, fp);
        fclose(fp);
    }
}

static void unified_seed(const char *name, int multi)
{
    float x[24], y[24], l[18];
    for (int i = 0; i < 24; i++) {
        x[i] = sinf((float)i);
        y[i] = cosf((float)i * 0.7f);
    }
    for (int i = 0; i < 18; i++)
        l[i] = multi ? (float)((i * 7) % 3 == 0) : (float)(1 + i % 3);
    cmir_tensorset *ts = cmir_tensorset_new();
    cmir_tensor tx = T(x, 2, 6, 4, 0, 0), ty = T(y, 2, 6, 4, 0, 0);
    cmir_tensor tl = multi ? T(l, 2, 6, 3, 0, 0) : T(l, 2, 6, 1, 0, 0);
    cmir_tensorset_put(ts, "featuresx", &tx);
    cmir_tensorset_put(ts, "featuresy", &ty);
    cmir_tensorset_put(ts, "labels", &tl);
    save_raw(ts, P("unified", name), MAT_FT_MAT5);
    cmir_tensorset_free(ts);
}

static void model_seeds(void)
{
    char tmp[] = "/tmp/cmir_seeds_XXXXXX";
    if (!mkdtemp(tmp))
        die("mkdtemp");
    char arch[256], model[256], uni[256], ix[256];
    snprintf(arch, sizeof arch, "%s/a.mat", tmp);
    snprintf(model, sizeof model, "%s/m.mat", tmp);
    snprintf(uni, sizeof uni, "%s/unified.mat", tmp);
    snprintf(ix, sizeof ix, "%s/ix.gpkg", tmp);
    if (td_make_archive(arch, 24, 1))
        die("archive");
    cmir_train_params p = cmir_train_default_params();
    p.threads = 1;
    p.batch = 8;
    p.epochs1 = 1;
    p.epochs2 = 1;
    p.unified.d_v = 8;
    p.unified_path = uni;
    if (cmir_train(arch, model, p, NULL, NULL, NULL))
        die("train");
    if (cmir_index_build(model, (const char *const[]){arch}, 1, ix, cmir_index_default_params(), NULL,
                         NULL, NULL))
        die("index");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s %s && cp %s %s", uni, P("unified", "seed-trained-v5z.mat"), ix,
             P("index", "seed-index.gpkg"));
    if (system(cmd))
        die("cp");
    cmir_tensorset *ts = cmir_tensorset_load(model);
    if (!ts)
        die("reload");
    save_raw(ts, P("model", "seed-model-v5.mat"), MAT_FT_MAT5);
    /* a small one: every entry but the weights (fails at the first weight,
     * but covers the checks before it at a fraction of the size) */
    cmir_tensorset *hd = cmir_tensorset_new();
    for (int i = 0; i < cmir_tensorset_count(ts); i++) {
        const char *name = cmir_tensorset_name(ts, i);
        const cmir_tensor *t = cmir_tensorset_get(ts, name);
        if (!t)
            cmir_tensorset_put_string(hd, name, cmir_tensorset_get_string(ts, name));
        else if (cmir_tensor_numel(t) <= 256)
            cmir_tensorset_put(hd, name, t);
    }
    save_raw(hd, P("model", "seed-model-head-v5.mat"), MAT_FT_MAT5);
    cmir_tensorset_free(hd);
    cmir_tensorset_free(ts);
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    (void)system(cmd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    snprintf(root, sizeof root, "%s", argv[1]);
    mkdir(root, 0777);
    GDALAllRegister(); /* the programs do it in cmir_app_init */
    tensorset_seeds();
    archive_seed("seed-cmir.mat", 0);
    archive_seed("seed-cmir-deflate.mat", 1);
    noise_archive_seed("seed-cmir-libdeflate-noise.mat", 0);
    noise_archive_seed("seed-cmir-zlib-noise.mat", 1);
    dsrsid_seed("seed-dsrsid.h5", 0);
    dsrsid_seed("seed-dsrsid73.mat", 1);
    unified_seed("seed-class-v5.mat", 0);
    unified_seed("seed-multi-v5.mat", 1);
    model_seeds();
    text("gdal_conn", "seed-quoted", "\"archive.mat\":PAN:0");
    text("gdal_conn", "seed-quoted-ms", "\"a b.mat\":MS:17");
    text("gdal_conn", "seed-unquoted", "dir/archive.mat:ms:3");
    text("gdal_conn", "seed-plain", "archive.h5");
    text("gdal_conn", "seed-query", "QUERY?MODEL=m.mat&INDEX=i.gpkg&ROW=3&K=5&TARGET=pan");
    text("gdal_conn", "seed-query-oo",
         "QUERY\nMODEL=m.mat\nINDEX=i.gpkg\nRASTER=x.tif\nSRCWIN=0,0,32,32\nBBOX=1,2,3,4\nMAX_DIST=1.5\nTHREADS=1");
    text("gdal_conn", "seed-query-esc", "QUERY?MODEL=a%20b.mat&INDEX=i.gpkg&ROW=0&K=100000");
    text("querylist", "seed-basic", "# queries\nrow 3\nrow 0\n\nraster scene.tif\nraster scene.tif 0 0 32 32\n");
    text("querylist", "seed-bad", "row\nraster\n");
    text("querylist", "seed-crlf", "row 12\r\nraster a.tif 1 2 3 4\r\n");
    printf("seeds written under %s\n", root);
    return 0;
}
