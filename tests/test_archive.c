/* Tests of tile archives: exact round trips of every variable (pixels that
 * encode (tile, row, column, band), so an axis swap shows), the MATLAB view
 * through matio, DSRSID fixtures (plain HDF5 and v7.3), append and abort,
 * hostile files and allocation failures refused cleanly. */
#include <stdio.h>
#include <string.h>
#include "cmir/archive.h"
#include "test_util.h"

#include <dirent.h>
#include <hdf5.h>
#include <matio.h>
#include <stdint.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_ar_XXXXXX";

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Pixel (h, w, b) of tile n in an H x W x B tile; unique within a tile
 * when H*W*B <= 256 for bytes. Negative values for int16. */
static double val(int n, int h, int w, int b, int W, int B, cmir_dtype t)
{
    long v = ((long)(h * W + w) * B + b + n * 37);
    switch (t) {
    case CMIR_DT_UINT8: return (double)(v % 256);
    case CMIR_DT_UINT16: return (double)((v * 251) % 65536);
    case CMIR_DT_INT16: return (double)((v * 97) % 60000 - 30000);
    default: return (double)v * 0.25 - 3.5;
    }
}

static void fill(void *buf, int n, int H, int W, int B, cmir_dtype t)
{
    for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++)
            for (int b = 0; b < B; b++) {
                size_t k = ((size_t)h * W + w) * B + b;
                double v = val(n, h, w, b, W, B, t);
                switch (t) {
                case CMIR_DT_UINT8: ((uint8_t *)buf)[k] = (uint8_t)v; break;
                case CMIR_DT_UINT16: ((uint16_t *)buf)[k] = (uint16_t)v; break;
                case CMIR_DT_INT16: ((int16_t *)buf)[k] = (int16_t)v; break;
                default: ((float *)buf)[k] = (float)v; break;
                }
            }
}

/* Every tile of both modalities, raw and as float, equals the encoding. */
static void check_tiles(cmir_archive *a, int64_t first, int64_t count, int tile_offset)
{
    const cmir_archive_info *f = cmir_archive_get_info(a);
    for (int m = 0; m < 2; m++) {
        int H = m ? f->ms_h : f->pan_h, W = m ? f->ms_w : f->pan_w, B = m ? f->ms_bands : f->pan_bands;
        cmir_dtype t = m ? f->ms_type : f->pan_type;
        size_t n = (size_t)H * W * B;
        float *fl = malloc(sizeof(float) * n);
        unsigned char *raw = malloc(n * 4), *want = malloc(n * 4);
        int bad = 0;
        for (int64_t i = first; i < first + count; i++) {
            ASSERT_OK(cmir_archive_read_tile(a, (cmir_modality)m, i, fl));
            ASSERT_OK(cmir_archive_read_tile_raw(a, (cmir_modality)m, i, raw));
            fill(want, (int)i + tile_offset, H, W, B, t);
            bad += memcmp(raw, want, n * (size_t)cmir_dtype_size(t)) != 0;
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    for (int b = 0; b < B; b++)
                        bad += fl[((size_t)h * W + w) * B + b] !=
                               (float)val((int)i + tile_offset, h, w, b, W, B, t);
        }
        ASSERT_EQ_INT(bad, 0);
        free(fl);
        free(raw);
        free(want);
    }
}

static int tmp_files_left(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp-") != NULL; /* cmir__atomic_open's names */
    if (d)
        closedir(d);
    return n;
}

static const char *WKT_A = "PROJCS[\"WGS 84 / UTM zone 32N\",GEOGCS[\"WGS 84\"],UNIT[\"metre\",1]]";
static const char *WKT_B = "GEOGCS[\"WGS 84\",DATUM[\"WGS_1984\"],UNIT[\"degree\",0.0174532925199433]]";
static const char *CLASSES[4] = {"water", "forest", "urban area", "bare soil"};
static const char *MS_BANDS[3] = {"red", "green", "nir"};
static const char *PAN_BANDS[1] = {"pan"};

/* Tiles 0..4: labels 0..4 (0 unlabelled), tile 4 with no georeferencing. */
static void gt_of(int i, int m, double gt[6])
{
    double px = m ? 2.0 : 0.5;
    double g[6] = {500000.0 + 100 * i, px, 0.0, 4200000.0 - 50 * i, 0.0, -px};
    memcpy(gt, g, sizeof g);
}

/* strict: assert every step; else return the first failure (writer aborted). */
static int write_sample(const char *p, cmir_dtype pan_type, int deflate, int n_tiles, int strict)
{
    cmir_archive_params pr = cmir_archive_default_params();
    pr.pan_h = 12, pr.pan_w = 10, pr.pan_bands = 1, pr.pan_type = pan_type;
    pr.ms_h = 6, pr.ms_w = 5, pr.ms_bands = 3, pr.ms_type = CMIR_DT_UINT8;
    pr.n_classes = 4;
    pr.class_names = CLASSES;
    pr.pan_band_names = PAN_BANDS;
    pr.ms_band_names = MS_BANDS;
    pr.multilabel = 1;
    pr.deflate = deflate;
    pr.pan_nodata = 0;
    cmir_archive_writer *w = cmir_archive_create(p, pr);
    if (strict)
        ASSERT_TRUE(w != NULL);
    if (!w)
        return -1;
    uint16_t pan[120];
    uint8_t ms[90];
    for (int i = 0; i < n_tiles; i++) {
        double pgt[6], mgt[6], pwin[4] = {12.0 * i, 24, 10, 12}, mwin[4] = {5.0 * i, 6, 5, 6};
        uint8_t ml[4];
        for (int c = 0; c < 4; c++)
            ml[c] = (uint8_t)((i + c) % 2);
        gt_of(i, 0, pgt);
        gt_of(i, 1, mgt);
        fill(pan, i, 12, 10, 1, pan_type);
        fill(ms, i, 6, 5, 3, CMIR_DT_UINT8);
        cmir_tile_record r = {pan, ms, i % 5, ml, pgt, mgt, i == 2 ? WKT_B : WKT_A,
                              i < 3 ? "scene_a" : "sc\xc3\xa8ne_b \xf0\x9f\x8c\x8d", pwin, mwin, NULL};
        if (i == 4) {
            r.pan_gt = r.ms_gt = r.pan_window = r.ms_window = NULL;
            r.crs_wkt = r.scene = NULL;
            r.multilabel = NULL; /* expanded from the label */
        }
        int rc = cmir_archive_writer_add(w, &r);
        if (!strict && rc) {
            cmir_archive_writer_abort(w);
            return rc;
        }
        ASSERT_OK(rc);
        ASSERT_EQ_INT(cmir_archive_writer_count(w), i + 1);
    }
    int rc = cmir_archive_writer_commit(w);
    if (strict)
        ASSERT_OK(rc);
    return rc;
}

static void check_sample(const char *p, cmir_dtype pan_type, int n_tiles)
{
    cmir_archive *a = cmir_archive_open(p);
    ASSERT_TRUE(a != NULL);
    if (!a) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return;
    }
    const cmir_archive_info *f = cmir_archive_get_info(a);
    ASSERT_EQ_INT(f->n_tiles, n_tiles);
    ASSERT_EQ_INT(f->pan_h, 12);
    ASSERT_EQ_INT(f->pan_w, 10);
    ASSERT_EQ_INT(f->pan_bands, 1);
    ASSERT_EQ_INT(f->ms_h, 6);
    ASSERT_EQ_INT(f->ms_w, 5);
    ASSERT_EQ_INT(f->ms_bands, 3);
    ASSERT_EQ_INT(f->pan_type, pan_type);
    ASSERT_EQ_INT(f->ms_type, CMIR_DT_UINT8);
    ASSERT_EQ_INT(f->n_classes, 4);
    ASSERT_EQ_INT(f->has_georef, 1);
    ASSERT_EQ_INT(f->has_multilabel, 1);
    ASSERT_EQ_INT(f->layout, CMIR_LAYOUT_CMIR);
    check_tiles(a, 0, n_tiles, 0);
    for (int i = 0; i < n_tiles; i++) {
        uint8_t ml[4];
        double gt[6], want[6], win[4];
        ASSERT_EQ_INT(cmir_archive_label(a, i), i % 5);
        ASSERT_OK(cmir_archive_multilabel(a, i, ml));
        for (int c = 0; c < 4; c++)
            ASSERT_EQ_INT(ml[c], i == 4 ? (c + 1 == 4) : (i + c) % 2);
        for (int m = 0; m < 2; m++) {
            int rc = cmir_archive_geotransform(a, (cmir_modality)m, i, gt);
            if (i == 4) {
                ASSERT_EQ_INT(rc, CMIR_ENOTFOUND);
                ASSERT_EQ_INT(cmir_archive_window(a, (cmir_modality)m, i, win), CMIR_ENOTFOUND);
                continue;
            }
            ASSERT_OK(rc);
            gt_of(i, m, want);
            ASSERT_TRUE(memcmp(gt, want, sizeof gt) == 0);
            ASSERT_OK(cmir_archive_window(a, (cmir_modality)m, i, win));
            ASSERT_NEAR(win[0], m ? 5.0 * i : 12.0 * i, 0);
            ASSERT_NEAR(win[3], m ? 6 : 12, 0);
        }
        const char *crs = cmir_archive_crs(a, i), *sc = cmir_archive_scene(a, i);
        if (i == 4) {
            ASSERT_TRUE(crs == NULL && sc == NULL);
        } else {
            ASSERT_TRUE(crs && strcmp(crs, i == 2 ? WKT_B : WKT_A) == 0);
            ASSERT_TRUE(sc && strcmp(sc, i < 3 ? "scene_a" : "sc\xc3\xa8ne_b \xf0\x9f\x8c\x8d") == 0);
        }
    }
    for (int c = 1; c <= 4; c++)
        ASSERT_TRUE(strcmp(cmir_archive_class_name(a, c), CLASSES[c - 1]) == 0);
    ASSERT_TRUE(cmir_archive_class_name(a, 0) == NULL && cmir_archive_class_name(a, 5) == NULL);
    ASSERT_TRUE(strcmp(cmir_archive_band_name(a, CMIR_PAN, 0), "pan") == 0);
    for (int b = 0; b < 3; b++)
        ASSERT_TRUE(strcmp(cmir_archive_band_name(a, CMIR_MS, b), MS_BANDS[b]) == 0);
    ASSERT_TRUE(cmir_archive_band_name(a, CMIR_MS, 3) == NULL);
    double nd = -1;
    ASSERT_OK(cmir_archive_nodata(a, CMIR_PAN, &nd));
    ASSERT_NEAR(nd, 0, 0);
    ASSERT_EQ_INT(cmir_archive_nodata(a, CMIR_MS, &nd), CMIR_ENOTFOUND);
    /* Out of range. */
    float buf[120];
    ASSERT_EQ_INT(cmir_archive_read_tile(a, CMIR_PAN, n_tiles, buf), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "out of range") != NULL);
    ASSERT_EQ_INT(cmir_archive_read_tile(a, CMIR_MS, -1, buf), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_archive_read_tile(a, (cmir_modality)2, 0, buf), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_archive_label(a, n_tiles), CMIR_EINVAL);
    cmir_archive_close(a);
}

static void test_roundtrip(void)
{
    ASSERT_OK(write_sample(path_in("u8.mat"), CMIR_DT_UINT8, 1, 5, 1));
    check_sample(path_in("u8.mat"), CMIR_DT_UINT8, 5);
    ASSERT_OK(write_sample(path_in("u16.mat"), CMIR_DT_UINT16, 0, 5, 1));
    check_sample(path_in("u16.mat"), CMIR_DT_UINT16, 5);
    ASSERT_OK(write_sample(path_in("u16z.mat"), CMIR_DT_UINT16, 6, 5, 1)); /* shuffle + deflate */
    check_sample(path_in("u16z.mat"), CMIR_DT_UINT16, 5);
    ASSERT_EQ_INT(tmp_files_left(), 0);
    /* int16 and float32, no labels or georeferencing at all. */
    cmir_archive_params p = cmir_archive_default_params();
    p.pan_h = 7, p.pan_w = 9, p.pan_type = CMIR_DT_INT16;
    p.ms_h = 3, p.ms_w = 4, p.ms_bands = 2, p.ms_type = CMIR_DT_FLOAT32;
    cmir_archive_writer *w = cmir_archive_create(path_in("f32.mat"), p);
    ASSERT_TRUE(w != NULL);
    int16_t pan[63];
    float ms[24];
    for (int i = 0; w && i < 3; i++) {
        fill(pan, i, 7, 9, 1, CMIR_DT_INT16);
        fill(ms, i, 3, 4, 2, CMIR_DT_FLOAT32);
        cmir_tile_record r = {.pan = pan, .ms = ms};
        ASSERT_OK(cmir_archive_writer_add(w, &r));
        r.label = 1; /* no classes */
        ASSERT_EQ_INT(cmir_archive_writer_add(w, &r), CMIR_EINVAL);
    }
    ASSERT_OK(cmir_archive_writer_commit(w));
    cmir_archive *a = cmir_archive_open(path_in("f32.mat"));
    ASSERT_TRUE(a != NULL);
    if (a) {
        const cmir_archive_info *f = cmir_archive_get_info(a);
        ASSERT_EQ_INT(f->n_tiles, 3);
        ASSERT_EQ_INT(f->pan_type, CMIR_DT_INT16);
        ASSERT_EQ_INT(f->ms_type, CMIR_DT_FLOAT32);
        ASSERT_EQ_INT(f->n_classes, 0);
        ASSERT_EQ_INT(f->has_georef, 0);
        ASSERT_EQ_INT(f->has_multilabel, 0);
        check_tiles(a, 0, 3, 0);
        double gt[6];
        ASSERT_EQ_INT(cmir_archive_geotransform(a, CMIR_PAN, 0, gt), CMIR_ENOTFOUND);
        ASSERT_TRUE(cmir_archive_crs(a, 0) == NULL);
        ASSERT_TRUE(strcmp(cmir_archive_band_name(a, CMIR_MS, 1), "band_2") == 0);
        ASSERT_EQ_INT(cmir_archive_label(a, 2), 0);
        cmir_archive_close(a);
    }
    /* An empty archive is valid. */
    w = cmir_archive_create(path_in("empty.mat"), cmir_archive_default_params());
    ASSERT_OK(cmir_archive_writer_commit(w));
    a = cmir_archive_open(path_in("empty.mat"));
    ASSERT_TRUE(a && cmir_archive_get_info(a)->n_tiles == 0);
    cmir_archive_close(a);
    /* Bad parameters. */
    p = cmir_archive_default_params();
    p.pan_bands = 0;
    ASSERT_TRUE(cmir_archive_create(path_in("bad.mat"), p) == NULL);
    p = cmir_archive_default_params();
    p.multilabel = 1;
    ASSERT_TRUE(cmir_archive_create(path_in("bad.mat"), p) == NULL);
    p = cmir_archive_default_params();
    p.deflate = 10;
    ASSERT_TRUE(cmir_archive_create(path_in("bad.mat"), p) == NULL);
    ASSERT_TRUE(cmir_archive_create("/nonexistent-dir/x.mat", cmir_archive_default_params()) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "/nonexistent-dir/x.mat") != NULL);
    ASSERT_EQ_INT(tmp_files_left(), 0);
    cmir_archive_close(NULL);
    cmir_archive_writer_abort(NULL);
}

/* What MATLAB sees, through matio. */
static void test_matlab_view(void)
{
    const char *p = path_in("u8.mat");
    FILE *fp = fopen(p, "rb");
    unsigned char head[128] = {0};
    ASSERT_TRUE(fp && fread(head, 1, 128, fp) == 128);
    if (fp)
        fclose(fp);
    ASSERT_TRUE(memcmp(head, "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: ", 52) == 0);
    ASSERT_TRUE(strstr((const char *)head, "HDF5 schema 1.00 .") != NULL);
    ASSERT_TRUE(head[124] == 0x00 && head[125] == 0x02 && head[126] == 'I' && head[127] == 'M');
    mat_t *mat = Mat_Open(p, MAT_ACC_RDONLY);
    REQUIRE(mat != NULL);
    ASSERT_EQ_INT(Mat_GetVersion(mat), MAT_FT_MAT73);
    matvar_t *v = Mat_VarReadInfo(mat, "PAN_IMAGES");
    ASSERT_TRUE(v && v->class_type == MAT_C_UINT8 && v->rank == 4 && v->dims[0] == 12 &&
                v->dims[1] == 10 && v->dims[2] == 1 && v->dims[3] == 5);
    Mat_VarFree(v);
    v = Mat_VarReadInfo(mat, "LAND_COVER_TYPES");
    ASSERT_TRUE(v && v->class_type == MAT_C_DOUBLE && v->rank == 2 && v->dims[0] == 5 &&
                v->dims[1] == 1);
    Mat_VarFree(v);
    v = Mat_VarRead(mat, "LAND_COVER_TYPES");
    ASSERT_TRUE(v && v->data);
    for (int i = 0; v && v->data && i < 5; i++)
        ASSERT_NEAR(((double *)v->data)[i], i % 5, 0);
    Mat_VarFree(v);
    v = Mat_VarRead(mat, "PAN_IMAGES");
    ASSERT_TRUE(v && v->class_type == MAT_C_UINT8 && v->rank == 4);
    if (v && v->rank == 4) {
        ASSERT_EQ_INT(v->dims[0], 12);
        ASSERT_EQ_INT(v->dims[1], 10);
        ASSERT_EQ_INT(v->dims[2], 1);
        ASSERT_EQ_INT(v->dims[3], 5);
        const uint8_t *d = v->data;
        int bad = 0;
        for (int n = 0; n < 5; n++)
            for (int h = 0; h < 12; h++)
                for (int w = 0; w < 10; w++)
                    bad += d[h + 12 * (w + 10 * n)] != (uint8_t)val(n, h, w, 0, 10, 1, CMIR_DT_UINT8);
        ASSERT_EQ_INT(bad, 0);
    }
    Mat_VarFree(v);
    v = Mat_VarRead(mat, "MUL_IMAGES");
    ASSERT_TRUE(v && v->rank == 4 && v->dims[0] == 6 && v->dims[1] == 5 && v->dims[2] == 3 &&
                v->dims[3] == 5);
    if (v && v->rank == 4) /* element (h=4, w=3, b=2, n=3) */
        ASSERT_EQ_INT(((uint8_t *)v->data)[4 + 6 * (3 + 5 * (2 + 3 * 3))],
                      (uint8_t)val(3, 4, 3, 2, 5, 3, CMIR_DT_UINT8));
    Mat_VarFree(v);
    v = Mat_VarRead(mat, "CLASS_NAMES"); /* 4 x 10 char, rows padded */
    ASSERT_TRUE(v && v->class_type == MAT_C_CHAR && v->rank == 2 && v->dims[0] == 4 &&
                v->dims[1] == 10);
    if (v && v->dims[0] == 4 && v->dims[1] == 10 && v->data_size == 2) {
        const uint16_t *c = v->data;
        char row[11];
        for (int j = 0; j < 10; j++)
            row[j] = (char)c[2 + 4 * j];
        row[10] = 0;
        ASSERT_TRUE(strcmp(row, "urban area") == 0);
        ASSERT_EQ_INT(c[0 + 4 * 5], ' ');
    }
    Mat_VarFree(v);
    v = Mat_VarRead(mat, "PAN_GEOTRANSFORM");
    ASSERT_TRUE(v && v->rank == 2 && v->dims[0] == 6 && v->dims[1] == 5);
    if (v && v->dims[0] == 6)
        ASSERT_NEAR(((double *)v->data)[0 + 6 * 1], 500100.0, 0);
    Mat_VarFree(v);
    Mat_Close(mat);
}

/* ---- DSRSID fixtures ---- */
typedef struct fixture {
    int n_pan, n_ms, n_labels;
    int pan_rank3;
    int side, ms_side;
    hid_t pan_type;
    double label_of_0; /* 0: use the pattern */
} fixture;

static const double DS_LABELS[5] = {1, 8, 3, 5, 2};

static unsigned char ds_pix(int n, int h, int w, int b) { return (unsigned char)(h + 3 * w + 50 * b + 7 * n); }

static void write_ds(hid_t f, const char *name, int n, int bands, int side, int rank3, hid_t type)
{
    hsize_t d[4] = {(hsize_t)n, (hsize_t)bands, (hsize_t)side, (hsize_t)side};
    size_t total = (size_t)n * bands * side * side;
    unsigned char *buf = malloc(total ? total : 1);
    for (int i = 0; i < n; i++)
        for (int b = 0; b < bands; b++)
            for (int w = 0; w < side; w++)
                for (int h = 0; h < side; h++)
                    buf[(((size_t)i * bands + b) * side + w) * side + h] = ds_pix(i, h, w, b);
    if (rank3) {
        d[1] = d[2];
        d[2] = d[3];
    }
    hid_t sp = H5Screate_simple(rank3 ? 3 : 4, d, NULL);
    hid_t ds = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (type == H5T_STD_U8LE)
        H5Dwrite(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    H5Sclose(sp);
    free(buf);
}

static void write_fixture(const char *p, fixture fx)
{
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    write_ds(f, "PAN_IMAGES", fx.n_pan, 1, fx.side, fx.pan_rank3, fx.pan_type ? fx.pan_type : H5T_STD_U8LE);
    write_ds(f, "MUL_IMAGES", fx.n_ms, 4, fx.ms_side, 0, H5T_STD_U8LE);
    double lab[16];
    for (int i = 0; i < fx.n_labels; i++)
        lab[i] = DS_LABELS[i % 5];
    if (fx.label_of_0 != 0)
        lab[0] = fx.label_of_0;
    hsize_t d[2] = {1, (hsize_t)fx.n_labels};
    hid_t sp = H5Screate_simple(2, d, NULL);
    hid_t ds = H5Dcreate2(f, "LAND_COVER_TYPES", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab);
    H5Dclose(ds);
    H5Sclose(sp);
    H5Fclose(f);
}

static void check_dsrsid(const char *p, cmir_archive_layout layout)
{
    cmir_archive *a = cmir_archive_open(p);
    ASSERT_TRUE(a != NULL);
    if (!a) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return;
    }
    const cmir_archive_info *f = cmir_archive_get_info(a);
    ASSERT_EQ_INT(f->layout, layout);
    ASSERT_EQ_INT(f->n_tiles, 5);
    ASSERT_TRUE(f->pan_h == 256 && f->pan_w == 256 && f->pan_bands == 1);
    ASSERT_TRUE(f->ms_h == 64 && f->ms_w == 64 && f->ms_bands == 4);
    ASSERT_TRUE(f->pan_type == CMIR_DT_UINT8 && f->ms_type == CMIR_DT_UINT8);
    ASSERT_EQ_INT(f->n_classes, 8);
    ASSERT_EQ_INT(f->has_georef, 0);
    ASSERT_EQ_INT(f->has_multilabel, 0);
    float *t = malloc(sizeof(float) * 256 * 256);
    int bad = 0;
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ_INT(cmir_archive_label(a, i), (int)DS_LABELS[i]);
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, i, t));
        for (int h = 0; h < 256; h++)
            for (int w = 0; w < 256; w++)
                bad += t[h * 256 + w] != ds_pix(i, h, w, 0);
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, i, t));
        for (int h = 0; h < 64; h++)
            for (int w = 0; w < 64; w++)
                for (int b = 0; b < 4; b++)
                    bad += t[(h * 64 + w) * 4 + b] != ds_pix(i, h, w, b);
    }
    ASSERT_EQ_INT(bad, 0);
    free(t);
    double gt[6];
    ASSERT_EQ_INT(cmir_archive_geotransform(a, CMIR_PAN, 0, gt), CMIR_ENOTFOUND);
    ASSERT_TRUE(cmir_archive_crs(a, 0) == NULL);
    ASSERT_TRUE(strcmp(cmir_archive_class_name(a, 8), "class_8") == 0);
    uint8_t ml[8];
    ASSERT_OK(cmir_archive_multilabel(a, 1, ml));
    ASSERT_TRUE(ml[7] == 1 && ml[0] == 0);
    cmir_archive_close(a);
}

static void test_dsrsid(void)
{
    fixture fx = {5, 5, 5, 0, 256, 64, 0, 0};
    write_fixture(path_in("ds.h5"), fx);
    check_dsrsid(path_in("ds.h5"), CMIR_LAYOUT_DSRSID_HDF5);
    /* The same through matio as a true v7.3 file (compressed PAN). */
    const char *p = path_in("ds73.mat");
    mat_t *mat = Mat_CreateVer(p, NULL, MAT_FT_MAT73);
    REQUIRE(mat != NULL);
    enum { N = 5 };
    uint8_t *pan = malloc(256 * 256 * N), *ms = malloc(64 * 64 * 4 * N);
    for (int n = 0; n < N; n++)
        for (int w = 0; w < 256; w++)
            for (int h = 0; h < 256; h++)
                pan[h + 256 * (w + 256 * n)] = ds_pix(n, h, w, 0);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < 4; b++)
            for (int w = 0; w < 64; w++)
                for (int h = 0; h < 64; h++)
                    ms[h + 64 * (w + 64 * (b + 4 * n))] = ds_pix(n, h, w, b);
    size_t dp[4] = {256, 256, 1, N}, dm[4] = {64, 64, 4, N}, dl[2] = {N, 1};
    matvar_t *v = Mat_VarCreate("PAN_IMAGES", MAT_C_UINT8, MAT_T_UINT8, 4, dp, pan, 0);
    ASSERT_EQ_INT(Mat_VarWrite(mat, v, MAT_COMPRESSION_ZLIB), 0);
    Mat_VarFree(v);
    v = Mat_VarCreate("MUL_IMAGES", MAT_C_UINT8, MAT_T_UINT8, 4, dm, ms, 0);
    ASSERT_EQ_INT(Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE), 0);
    Mat_VarFree(v);
    v = Mat_VarCreate("LAND_COVER_TYPES", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, dl, (void *)DS_LABELS, 0);
    ASSERT_EQ_INT(Mat_VarWrite(mat, v, MAT_COMPRESSION_NONE), 0);
    Mat_VarFree(v);
    Mat_Close(mat);
    free(pan);
    free(ms);
    check_dsrsid(p, CMIR_LAYOUT_DSRSID_MAT73);
    /* Read-only: appending is refused. */
    ASSERT_TRUE(cmir_archive_append(p) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "ds73.mat") != NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "DSRSID") != NULL);
    ASSERT_EQ_INT(tmp_files_left(), 0);
}

/* ---- append ---- */
static unsigned char *slurp(const char *p, long *size)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*size + 1);
    if (fread(b, 1, (size_t)*size, f) != (size_t)*size) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static void add_tiles(cmir_archive_writer *w, int from, int to, const char *wkt, const char *scene)
{
    uint8_t pan[120], ms[90];
    for (int i = from; i < to; i++) {
        double gt[6];
        gt_of(i, 0, gt);
        fill(pan, i, 12, 10, 1, CMIR_DT_UINT8);
        fill(ms, i, 6, 5, 3, CMIR_DT_UINT8);
        cmir_tile_record r = {pan, ms, 1 + i % 4, NULL, gt, gt, wkt, scene, NULL, NULL, NULL};
        ASSERT_OK(cmir_archive_writer_add(w, &r));
    }
}

static void test_append(void)
{
    const char *p = path_in("app.mat");
    cmir_archive_params pr = cmir_archive_default_params();
    pr.pan_h = 12, pr.pan_w = 10, pr.ms_h = 6, pr.ms_w = 5, pr.ms_bands = 3;
    pr.n_classes = 4; /* no names: class_1..class_4 are recorded */
    cmir_archive_writer *w = cmir_archive_create(p, pr);
    REQUIRE(w != NULL);
    add_tiles(w, 0, 3, WKT_A, "s1");
    ASSERT_OK(cmir_archive_writer_commit(w));
    w = cmir_archive_append(p);
    ASSERT_TRUE(w != NULL);
    if (!w) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return;
    }
    ASSERT_EQ_INT(cmir_archive_writer_count(w), 3);
    add_tiles(w, 3, 4, WKT_B, "s2");
    add_tiles(w, 4, 5, WKT_A, "s1");
    ASSERT_OK(cmir_archive_writer_commit(w));
    cmir_archive *a = cmir_archive_open(p);
    ASSERT_TRUE(a != NULL);
    if (a) {
        const cmir_archive_info *f = cmir_archive_get_info(a);
        ASSERT_EQ_INT(f->n_tiles, 5);
        ASSERT_EQ_INT(f->n_classes, 4);
        ASSERT_EQ_INT(f->has_georef, 1);
        check_tiles(a, 0, 5, 0);
        for (int i = 0; i < 5; i++) {
            double gt[6], want[6];
            ASSERT_EQ_INT(cmir_archive_label(a, i), 1 + i % 4);
            ASSERT_OK(cmir_archive_geotransform(a, CMIR_MS, i, gt));
            gt_of(i, 0, want);
            ASSERT_TRUE(memcmp(gt, want, sizeof gt) == 0);
            const char *crs = cmir_archive_crs(a, i), *sc = cmir_archive_scene(a, i);
            ASSERT_TRUE(crs && strcmp(crs, i == 3 ? WKT_B : WKT_A) == 0);
            ASSERT_TRUE(sc && strcmp(sc, i == 3 ? "s2" : "s1") == 0);
        }
        /* Tables merged: tile 4 points at the same CRS row as tile 0. */
        ASSERT_TRUE(cmir_archive_crs(a, 4) == cmir_archive_crs(a, 0));
        ASSERT_TRUE(strcmp(cmir_archive_class_name(a, 4), "class_4") == 0);
        cmir_archive_close(a);
    }
    /* Abort leaves the original byte-identical and no temporary file. */
    long s0 = 0, s1 = 0;
    unsigned char *before = slurp(p, &s0);
    w = cmir_archive_append(p);
    ASSERT_TRUE(w != NULL);
    if (w) {
        add_tiles(w, 5, 7, WKT_B, "s3");
        /* An invalid tile is refused without spoiling the writer. */
        uint8_t px[120] = {0};
        cmir_tile_record bad = {px, px, 9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        ASSERT_EQ_INT(cmir_archive_writer_add(w, &bad), CMIR_EINVAL);
        ASSERT_EQ_INT(cmir_archive_writer_count(w), 7);
        cmir_archive_writer_abort(w);
    }
    unsigned char *after = slurp(p, &s1);
    ASSERT_TRUE(before && after && s0 == s1 && memcmp(before, after, (size_t)s0) == 0);
    free(before);
    free(after);
    ASSERT_EQ_INT(tmp_files_left(), 0);
    /* Appending twice in a row and committing with nothing added. */
    w = cmir_archive_append(p);
    ASSERT_OK(cmir_archive_writer_commit(w));
    w = cmir_archive_append(p);
    ASSERT_TRUE(w != NULL);
    add_tiles(w, 5, 8, NULL, NULL);
    ASSERT_OK(cmir_archive_writer_commit(w));
    a = cmir_archive_open(p);
    ASSERT_TRUE(a && cmir_archive_get_info(a)->n_tiles == 8);
    if (a) {
        check_tiles(a, 0, 8, 0);
        ASSERT_TRUE(cmir_archive_crs(a, 6) == NULL);
        ASSERT_TRUE(cmir_archive_scene(a, 3) && strcmp(cmir_archive_scene(a, 3), "s2") == 0);
    }
    cmir_archive_close(a);
    ASSERT_TRUE(cmir_archive_append(path_in("nothere.mat")) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "nothere.mat") != NULL);
    ASSERT_EQ_INT(tmp_files_left(), 0);
}

/* The MS file of each MS window (MUL_SCENE): recorded, kept by appends,
 * absent (NULL, not the PAN scene) where a writer gave none. */
static void add_ms_tile(cmir_archive_writer *w, int i, const char *scene, const char *ms_scene)
{
    uint8_t pan[120], ms[90];
    double gt[6], win[4] = {1, 2, 3, 4};
    gt_of(i, 0, gt);
    fill(pan, i, 12, 10, 1, CMIR_DT_UINT8);
    fill(ms, i, 6, 5, 3, CMIR_DT_UINT8);
    cmir_tile_record r = {pan, ms, 1, NULL, gt, gt, WKT_A, scene, win, win, ms_scene};
    ASSERT_OK(cmir_archive_writer_add(w, &r));
}

static void test_ms_scene(void)
{
    const char *p = path_in("ms_scene.mat");
    cmir_archive_params pr = cmir_archive_default_params();
    pr.pan_h = 12, pr.pan_w = 10, pr.ms_h = 6, pr.ms_w = 5, pr.ms_bands = 3, pr.n_classes = 2;
    static const char *const ms_of[5] = {"a_ms.tif", "b_ms.tif", NULL, "a_ms.tif", "c_ms.tif"};
    cmir_archive_writer *w = cmir_archive_create(p, pr);
    REQUIRE(w != NULL);
    for (int i = 0; i < 3; i++)
        add_ms_tile(w, i, "pan.tif", ms_of[i]);
    ASSERT_OK(cmir_archive_writer_commit(w));
    REQUIRE((w = cmir_archive_append(p)) != NULL);
    for (int i = 3; i < 5; i++)
        add_ms_tile(w, i, "pan.tif", ms_of[i]);
    ASSERT_OK(cmir_archive_writer_commit(w));
    cmir_archive *a = cmir_archive_open(p);
    REQUIRE(a != NULL);
    for (int i = 0; i < 5; i++) {
        const char *ms = cmir_archive_source(a, CMIR_MS, i), *pan = cmir_archive_source(a, CMIR_PAN, i);
        ASSERT_TRUE(pan && !strcmp(pan, "pan.tif"));
        ASSERT_TRUE(ms_of[i] ? ms && !strcmp(ms, ms_of[i]) : ms == NULL);
    }
    ASSERT_TRUE(cmir_archive_source(a, CMIR_MS, 2) == NULL && cmir_last_error_code() == CMIR_ENOTFOUND);
    ASSERT_TRUE(cmir_archive_source(a, CMIR_MS, 5) == NULL); /* no tile 5 */
    cmir_archive_close(a);
}

/* ---- hostile input ---- */
static void expect_refused(const char *p, const char *name, const char *what)
{
    cmir_archive *a = cmir_archive_open(p);
    ASSERT_TRUE(a == NULL);
    if (a) {
        fprintf(stderr, "  %s was accepted\n", name);
        cmir_archive_close(a);
        return;
    }
    const char *msg = cmir_last_error();
    if (getenv("CMIR_TEST_VERBOSE"))
        printf("  refused: %s\n", msg);
    if (!strstr(msg, name) || (what && !strstr(msg, what))) {
        fprintf(stderr, "FAIL: message for %s: '%s' (expected '%s')\n", name, msg, what ? what : "");
        FAILED_AT();
    }
}

static void test_hostile(void)
{
    expect_refused(path_in("missing.mat"), "missing.mat", "No such file");
    expect_refused(dir, dir, "not a regular file");
    const char *g = path_in("garbage.mat");
    FILE *f = fopen(g, "wb");
    for (int i = 0; i < 5000; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    expect_refused(g, "garbage.mat", "hdf5: ");
    /* A valid HDF5 file that is not an archive. */
    hid_t h = H5Fcreate(path_in("plain.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    expect_refused(path_in("plain.h5"), "plain.h5", "not a tile archive");
    /* Truncated copies of a valid archive. */
    long size = 0;
    unsigned char *buf = slurp(path_in("u8.mat"), &size);
    ASSERT_TRUE(buf != NULL);
    long cuts[] = {0, 64, 128, 511, 512, 520, 700, 1024, 2048, size / 4, size / 2, size * 3 / 4,
                   size - 300, size - 8, size - 1};
    for (size_t k = 0; buf && k < sizeof cuts / sizeof cuts[0]; k++) {
        const char *t = path_in("trunc.mat");
        f = fopen(t, "wb");
        fwrite(buf, 1, (size_t)cuts[k], f);
        fclose(f);
        expect_refused(t, "trunc.mat", NULL);
    }
    free(buf);
    /* Shapes and values. */
    fixture ok = {4, 4, 4, 0, 16, 8, 0, 0};
    fixture fx = ok;
    fx.pan_rank3 = 1;
    write_fixture(path_in("rank3.h5"), fx);
    expect_refused(path_in("rank3.h5"), "rank3.h5", "3 dimensions");
    fx = ok;
    fx.n_labels = 5;
    write_fixture(path_in("nlab.h5"), fx);
    expect_refused(path_in("nlab.h5"), "nlab.h5", "LAND_COVER_TYPES");
    fx = ok;
    fx.n_ms = 3;
    write_fixture(path_in("nms.h5"), fx);
    expect_refused(path_in("nms.h5"), "nms.h5", "MUL_IMAGES");
    fx = ok;
    fx.label_of_0 = 2.5;
    write_fixture(path_in("frac.h5"), fx);
    expect_refused(path_in("frac.h5"), "frac.h5", "LAND_COVER_TYPES");
    fx = ok;
    fx.label_of_0 = -1;
    write_fixture(path_in("neg.h5"), fx);
    expect_refused(path_in("neg.h5"), "neg.h5", "LAND_COVER_TYPES");
    fx = ok;
    fx.pan_type = H5T_STD_I32LE;
    write_fixture(path_in("i32.h5"), fx);
    expect_refused(path_in("i32.h5"), "i32.h5", "pixel type");
    /* A label of 9 with 8 class names, patched into a valid archive. */
    static const char *eight[8] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    cmir_archive_params pr = cmir_archive_default_params();
    pr.pan_h = pr.pan_w = 4, pr.ms_h = pr.ms_w = 2, pr.ms_bands = 1;
    pr.n_classes = 8, pr.class_names = eight;
    const char *p9 = path_in("label9.mat");
    cmir_archive_writer *w = cmir_archive_create(p9, pr);
    uint8_t px[16] = {0};
    cmir_tile_record r = {px, px, 8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    ASSERT_OK(cmir_archive_writer_add(w, &r));
    ASSERT_OK(cmir_archive_writer_add(w, &r));
    ASSERT_OK(cmir_archive_writer_commit(w));
    cmir_archive *a = cmir_archive_open(p9);
    ASSERT_TRUE(a && cmir_archive_label(a, 1) == 8);
    if (a) {
        float t[16];
        ASSERT_EQ_INT(cmir_archive_read_tile(a, CMIR_PAN, 2, t), CMIR_EINVAL);
        ASSERT_TRUE(strstr(cmir_last_error(), "label9.mat") != NULL);
    }
    cmir_archive_close(a);
    h = H5Fopen(p9, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(h, "LAND_COVER_TYPES", H5P_DEFAULT);
    double nine[2] = {8, 9};
    H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, nine);
    H5Dclose(ds);
    H5Fclose(h);
    expect_refused(p9, "label9.mat", "label 9");
}

/* ---- allocation failures ---- */

/* Fails each allocation in turn while opening, writing and appending:
 * every failure is reported (CMIR_ENOMEM, the message naming the file)
 * and cleaned up, and the run without a failure gives a complete archive. */
static int open_once(void *u)
{
    (void)u;
    cmir_archive *a = cmir_archive_open(path_in("u8.mat"));
    if (!a) {
        ASSERT_TRUE(strstr(cmir_last_error(), "u8.mat: ") != NULL);
        return cmir_last_error_code();
    }
    cmir_archive_close(a);
    return 0;
}

static int write_once(void *u)
{
    (void)u;
    if (write_sample(path_in("af.mat"), CMIR_DT_UINT8, 1, 5, 0) == 0)
        return 0;
    ASSERT_TRUE(strstr(cmir_last_error(), "af.mat: ") != NULL);
    return cmir_last_error_code();
}

static int append_once(void *u)
{
    (void)u;
    cmir_archive_writer *w = cmir_archive_append(path_in("af.mat"));
    int rc = w ? cmir_archive_writer_commit(w) : cmir_last_error_code();
    if (rc)
        ASSERT_TRUE(strstr(cmir_last_error(), "af.mat: ") != NULL);
    return rc;
}

static void test_alloc_failures(void)
{
    int open = t_sweep("archive open", open_once, NULL, 1, 400);
    int write = t_sweep("archive write", write_once, NULL, 1, 400);
    int append = t_sweep("archive append", append_once, NULL, 1, 400);
    ASSERT_TRUE(open > 1 && write > 1 && append > 1);
    check_sample(path_in("af.mat"), CMIR_DT_UINT8, 5);
    ASSERT_EQ_INT(tmp_files_left(), 0);
}

static void test_check_params(void)
{
    cmir_archive_params p = cmir_archive_default_params();
    ASSERT_OK(cmir_archive_check_params(p));
    const char *field[11] = {"pan_h:", "pan_w:", "ms_h:", "ms_w:", "pan_bands:", "ms_bands:", "pan_type:",
                             "ms_type:", "n_classes:", "multilabel:", "deflate:"};
    for (int f = 0; f < 11; f++) {
        p = cmir_archive_default_params();
        switch (f) {
        case 0: p.pan_h = 0; break;
        case 1: p.pan_w = -1; break;
        case 2: p.ms_h = 0; break;
        case 3: p.ms_w = 0; break;
        case 4: p.pan_bands = 0; break;
        case 5: p.ms_bands = -2; break;
        case 6: p.pan_type = (cmir_dtype)99; break;
        case 7: p.ms_type = (cmir_dtype)99; break;
        case 8: p.n_classes = -1; break;
        case 9: p.multilabel = 1; break;
        default: p.deflate = 10; break;
        }
        char want[64];
        snprintf(want, sizeof want, "cmir_archive_params.%s", field[f]);
        REFUSES(cmir_archive_check_params(p), want);
        /* cmir_archive_create: the same message after the path; no file. */
        ASSERT_TRUE(cmir_archive_create(path_in("bad.mat"), p) == NULL);
        ASSERT_TRUE(strstr(cmir_last_error(), want) != NULL);
        ASSERT_TRUE(strstr(cmir_last_error(), "bad.mat") != NULL);
        ASSERT_TRUE(access(path_in("bad.mat"), F_OK) != 0);
    }
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_roundtrip);
    RUN(test_matlab_view);
    RUN(test_dsrsid);
    RUN(test_append);
    RUN(test_ms_scene);
    RUN(test_hostile);
    RUN(test_alloc_failures);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    RUN(test_check_params);
    TEST_MAIN_END();
}
