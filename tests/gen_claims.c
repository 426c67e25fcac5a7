/* gen_claims: writes files whose headers claim far more than they hold, for
 * the resource-ceiling table (test_ceilings.sh), and a real archive of many
 * tiny tiles for timing the GDAL driver.
 *   gen_claims hostile DIR   the hostile inputs (see below), each a few KB
 *   gen_claims big FILE N    a DSRSID-layout archive that really holds N
 *                            tile pairs (PAN 4x4x1, MS 2x2x1 uint8, 5 classes)
 *   gen_claims small FILE    60 real tile pairs (PAN 16x16x1, MS 8x8x4, with
 *                            MULTI_LABELS) to train a tiny model on */
#include "cmir/base.h"
#include "cmir/model.h"
#include "cmir/tensorset.h"

#include <hdf5.h>
#include <math.h>
#include <sndfile.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what)
{
    fprintf(stderr, "gen_claims: %s\n", what);
    return 1;
}

static void set_class(hid_t obj, const char *mclass)
{
    hid_t st = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(st, strlen(mclass));
    hid_t at = H5Acreate2(obj, "MATLAB_class", st, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(at, st, mclass);
    H5Aclose(at);
    H5Sclose(sp);
    H5Tclose(st);
}

/* A chunked dataset of HDF5 dims `d`; `data` written when not NULL (else
 * nothing is stored: HDF5's fill value answers every read). */
static int dataset(hid_t f, const char *name, hid_t type, int rank, const hsize_t *d,
                   const hsize_t *chunk, int deflate, const void *data)
{
    hid_t sp = H5Screate_simple(rank, d, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    if (deflate)
        H5Pset_deflate(dcpl, 6);
    hid_t ds = H5Dcreate2(f, name, type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = ds < 0;
    if (!rc)
        set_class(ds, H5Tequal(type, H5T_STD_U8LE) > 0 ? "uint8"
                      : H5Tequal(type, H5T_IEEE_F32LE) > 0 ? "single" : "double");
    if (!rc && data) {
        hid_t mt = H5Tequal(type, H5T_STD_U8LE) > 0 ? H5T_NATIVE_UINT8
                   : H5Tequal(type, H5T_IEEE_F32LE) > 0 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
        rc = H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0;
    }
    if (ds >= 0)
        H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return rc;
}

/* A DSRSID-layout archive (plain HDF5) of n tiles, PAN ph x ph x 1 and MS
 * mh x mh x mb uint8; with `real`, pixels and labels are written, else the
 * datasets only claim n tiles and store nothing. */
static hid_t archive(const char *path, hsize_t n, hsize_t ph, hsize_t mh, hsize_t mb, int real)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return -1;
    hsize_t per = real ? 4096 : 1; /* tiles per chunk */
    hsize_t dp[4] = {n, 1, ph, ph}, cp[4] = {per < n ? per : n, 1, ph, ph};
    hsize_t dm[4] = {n, mb, mh, mh}, cm[4] = {per < n ? per : n, mb, mh, mh};
    hsize_t dl[2] = {1, n}, cl[2] = {1, n < 65536 ? n : 65536};
    uint8_t *pan = NULL, *ms = NULL;
    double *lab = NULL;
    if (real) {
        pan = malloc(n * ph * ph);
        ms = malloc(n * mb * mh * mh);
        lab = malloc(sizeof(double) * n);
        if (!pan || !ms || !lab)
            return -1;
        for (hsize_t i = 0; i < n * ph * ph; i++)
            pan[i] = (uint8_t)((i * 2654435761u) >> 24);
        for (hsize_t i = 0; i < n * mb * mh * mh; i++)
            ms[i] = (uint8_t)((i * 40503u) >> 8);
        for (hsize_t i = 0; i < n; i++)
            lab[i] = (double)(i % 5 + 1);
    }
    int rc = dataset(f, "PAN_IMAGES", H5T_STD_U8LE, 4, dp, cp, 1, pan) ||
             dataset(f, "MUL_IMAGES", H5T_STD_U8LE, 4, dm, cm, 1, ms) ||
             dataset(f, "LAND_COVER_TYPES", H5T_IEEE_F64LE, 2, dl, cl, 1, lab);
    free(pan);
    free(ms);
    free(lab);
    if (rc) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

/* A MATLAB v7.3 file: HDF5 with a 512-byte user block holding MATLAB's
 * header; `pad` bytes of real (stored) noise make the file big enough
 * that a per-file bound alone would let `claim` single values through. */
static int mat73(const char *path, hsize_t claim, size_t pad)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_userblock(fcpl, 512);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (f < 0)
        return 1;
    uint8_t *noise = malloc(pad);
    for (size_t i = 0; i < pad; i++)
        noise[i] = (uint8_t)((i * 2654435761u) >> 13);
    hsize_t dpad[2] = {1, pad}, cpad[2] = {1, pad}, dw[2] = {1, claim}, cw[2] = {1, 1 << 20};
    int rc = dataset(f, "PAD", H5T_STD_U8LE, 2, dpad, cpad, 0, noise) ||
             dataset(f, "W", H5T_IEEE_F32LE, 2, dw, cw, 0, NULL);
    free(noise);
    H5Fclose(f);
    char head[128];
    memset(head, ' ', sizeof head);
    snprintf(head, 117, "MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 "
             "2026 HDF5 schema 1.00 .");
    head[strlen(head)] = ' ';
    memset(head + 116, 0, 8);
    head[124] = 0;
    head[125] = 2;
    head[126] = 'I';
    head[127] = 'M';
    FILE *fp = fopen(path, "r+b");
    if (!fp)
        return 1;
    fwrite(head, 1, sizeof head, fp);
    return fclose(fp) != 0 || rc;
}

static int put(cmir_tensorset *ts, const char *name, float v)
{
    int64_t one = 1;
    cmir_tensor t = cmir_tensor_make(&v, 1, &one);
    return cmir_tensorset_put(ts, name, &t);
}

static int put_vec(cmir_tensorset *ts, const char *name, int64_t n, float v)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        x[i] = v;
    cmir_tensor t = cmir_tensor_make(x, 1, &n);
    int rc = cmir_tensorset_put(ts, name, &t);
    free(x);
    return rc;
}

/* A model file whose sizes (65535 classes, hidden 65536, d_v 4096) need
 * gigabytes of weights, with every other variable present and plausible
 * but no weights at all. */
static int model_claims(const char *path)
{
    cmir_tensorset *ts = cmir_tensorset_new();
    float pan[3] = {32, 32, 1}, ms[3] = {8, 8, 4};
    int64_t three = 3;
    cmir_tensor tp = cmir_tensor_make(pan, 1, &three), tm = cmir_tensor_make(ms, 1, &three);
    const int C = 65535;
    char *names = malloc((size_t)C * 8);
    size_t at = 0;
    for (int c = 0; c < C; c++)
        at += (size_t)sprintf(names + at, c + 1 < C ? "c%d\n" : "c%d", c);
    int rc = cmir_tensorset_put_string(ts, "CMIR_MODEL_FORMAT", "cmir-model 1") ||
             cmir_tensorset_put_string(ts, "MODEL_ID", "0123456789abcdef") ||
             cmir_tensorset_put(ts, "PAN_SIZE", &tp) || cmir_tensorset_put(ts, "MS_SIZE", &tm) ||
             put(ts, "RATIO", 4) || put(ts, "D_V", 4096) || put(ts, "HIDDEN", 65536) ||
             put(ts, "N_CLASSES", (float)C) || put(ts, "MULTILABEL", 0) ||
             put_vec(ts, "PAN_MEAN", 1, 0) || put_vec(ts, "PAN_STD", 1, 1) ||
             put_vec(ts, "MS_MEAN", 4, 0) || put_vec(ts, "MS_STD", 4, 1) ||
             put_vec(ts, "PAN_Z_MEAN", CMIR_FEAT_DIM, 0) || put_vec(ts, "PAN_Z_STD", CMIR_FEAT_DIM, 1) ||
             put_vec(ts, "MS_Z_MEAN", CMIR_FEAT_DIM, 0) || put_vec(ts, "MS_Z_STD", CMIR_FEAT_DIM, 1) ||
             cmir_tensorset_put_string(ts, "CLASS_NAMES", names) ||
             cmir_tensorset_put_string(ts, "PAN_BAND_NAMES", "pan") ||
             cmir_tensorset_put_string(ts, "MS_BAND_NAMES", "b1\nb2\nb3\nb4") ||
             cmir_tensorset_put_string(ts, "TRAIN_SETTINGS", "") || put(ts, "N_TILES", 10) ||
             put_vec(ts, "TEST_TILES", 1, 0) || cmir_tensorset_save(ts, path);
    free(names);
    cmir_tensorset_free(ts);
    return rc;
}

/* 1 s of a 440 Hz tone at 16 kHz: a WAV whose data size claims 0xFFFFFFF0
 * bytes, and a FLAC whose STREAMINFO claims 30 s. */
static int audio(const char *dir)
{
    char p[4096];
    static short pcm[16000];
    for (int i = 0; i < 16000; i++)
        pcm[i] = (short)lrint(8000 * sin(2 * 3.14159265358979 * 440 * i / 16000.0));
    snprintf(p, sizeof p, "%s/wav_claims_4gb.wav", dir);
    FILE *f = fopen(p, "wb");
    if (!f)
        return 1;
    static const unsigned char head[44] = {
        'R', 'I', 'F', 'F', 0x1c, 0, 0, 0, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ', 16, 0, 0, 0,
        1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0, 'd', 'a', 't', 'a', 0xf0, 0xff,
        0xff, 0xff};
    fwrite(head, 1, sizeof head, f);
    fwrite(pcm, 2, 16000, f); /* little-endian host */
    if (fclose(f))
        return 1;
    snprintf(p, sizeof p, "%s/flac_claims_30s.flac", dir);
    SF_INFO info = {.samplerate = 16000, .channels = 1, .format = SF_FORMAT_FLAC | SF_FORMAT_PCM_16};
    SNDFILE *sf = sf_open(p, SFM_WRITE, &info);
    if (!sf || sf_write_short(sf, pcm, 16000) != 16000 || sf_close(sf))
        return 1;
    /* STREAMINFO total samples: 36 bits from the low nibble of byte 21 */
    unsigned char tot[5] = {0, 0, 0x07, 0x53, 0x00}; /* 480000 = 30 s */
    if (!(f = fopen(p, "r+b")) || fseek(f, 21, SEEK_SET))
        return 1;
    int b21 = fgetc(f);
    fseek(f, 21, SEEK_SET);
    fputc((b21 & 0xf0) | tot[0], f);
    fwrite(tot + 1, 1, 4, f);
    return fclose(f) != 0;
}

static int hostile(const char *dir)
{
    char p[4096];
    if (audio(dir))
        return fail("audio files");
    /* 10^9 tile pairs claimed, nothing stored */
    snprintf(p, sizeof p, "%s/archive_1e9.mat", dir);
    hid_t f = archive(p, 1000000000, 16, 4, 4, 0);
    if (f < 0 || H5Fclose(f) < 0)
        return fail(p);
    /* 10^4 real tiny tiles, MULTI_LABELS claiming 65535 classes of each
     * (5.2 GB as doubles), nothing stored */
    snprintf(p, sizeof p, "%s/archive_multilabels.mat", dir);
    if ((f = archive(p, 10000, 4, 2, 1, 1)) < 0)
        return fail(p);
    hsize_t d[2] = {10000, 65535}, c[2] = {1, 65535};
    if (dataset(f, "MULTI_LABELS", H5T_IEEE_F64LE, 2, d, c, 1, NULL) || H5Fclose(f) < 0)
        return fail(p);
    /* v7.3 model-like file: W claims 2*10^8 singles, stores nothing; 256 KB
     * of stored padding (a per-file bound would allow 2.7*10^8) */
    snprintf(p, sizeof p, "%s/model_v73_claims.mat", dir);
    if (mat73(p, 200000000, 262144))
        return fail(p);
    snprintf(p, sizeof p, "%s/model_sizes.mat", dir);
    if (model_claims(p))
        return fail(p);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "hostile"))
        return hostile(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "small")) {
        hid_t f = archive(argv[2], 60, 16, 8, 4, 1);
        double ml[60 * 5] = {0};
        for (int i = 0; i < 60; i++)
            ml[i * 5 + i % 5] = 1; /* MULTI_LABELS: the class, for the speech scenario */
        hsize_t d[2] = {60, 5};
        return f < 0 || dataset(f, "MULTI_LABELS", H5T_IEEE_F64LE, 2, d, d, 0, ml) ||
                       H5Fclose(f) < 0 ? fail(argv[2]) : 0;
    }
    if (argc == 4 && !strcmp(argv[1], "big")) {
        hid_t f = archive(argv[2], (hsize_t)strtoull(argv[3], NULL, 10), 4, 2, 1, 1);
        return f < 0 || H5Fclose(f) < 0 ? fail(argv[2]) : 0;
    }
    fprintf(stderr, "usage: gen_claims hostile DIR | gen_claims big FILE N | gen_claims small FILE\n");
    return 2;
}
