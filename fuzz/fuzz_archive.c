/* Fuzz target: cmir_archive_open on an HDF5 / MATLAB v7.3 file (the CMIR
 * layout and the two DSRSID layouts), then the small tables (labels,
 * multi-labels, class and band names, georeferencing, CRS and scene
 * strings, windows, nodata) and the first and last tiles when they are
 * small. Also checks that no HDF5 object stays open afterwards. */
#include "fuzz_common.h"

#include "cmir/base.h"

#include "cmir/archive.h"

#include <hdf5.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_env();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return 0;
}

static size_t slen(const char *s) { return s ? strlen(s) : 0; }

static void read_some(cmir_archive *a)
{
    const cmir_archive_info *in = cmir_archive_get_info(a);
    volatile double sink = 0;
    int64_t n = in->n_tiles;
    for (int m = 0; m < 2; m++) {
        int h = m ? in->ms_h : in->pan_h, w = m ? in->ms_w : in->pan_w;
        int b = m ? in->ms_bands : in->pan_bands;
        size_t per = (size_t)h * (size_t)w * (size_t)b;
        for (int k = 0; k < b && k < 8; k++)
            sink += (double)slen(cmir_archive_band_name(a, (cmir_modality)m, k));
        if (n < 1 || per > ((size_t)1 << 20))
            continue;
        float *out = malloc(per * sizeof(float));
        if (!out)
            continue;
        int64_t which[2] = {0, n - 1};
        for (int j = 0; j < 2; j++) {
            if (cmir_archive_read_tile(a, (cmir_modality)m, which[j], out) == 0)
                sink += out[0] + out[per - 1];
            if (cmir_archive_read_tile_raw(a, (cmir_modality)m, which[j], out) == 0)
                sink += ((const uint8_t *)out)[0];
        }
        free(out);
    }
    int C = in->n_classes;
    for (int c = 0; c <= C + 1 && c < 64; c++)
        sink += (double)slen(cmir_archive_class_name(a, c));
    uint8_t *ml = malloc((size_t)(C > 0 ? C : 1));
    for (int64_t i = 0; i < n && i < 16; i++) {
        int64_t t = i < 8 ? i : n - 1 - (i - 8);
        double gt[6], win[4], nd;
        sink += cmir_archive_label(a, t);
        if (ml && cmir_archive_multilabel(a, t, ml) == 0 && C > 0)
            sink += ml[0] + ml[C - 1];
        for (int m = 0; m < 2; m++) {
            if (cmir_archive_geotransform(a, (cmir_modality)m, t, gt) == 0)
                sink += gt[0] + gt[5];
            if (cmir_archive_window(a, (cmir_modality)m, t, win) == 0)
                sink += win[3];
            if (cmir_archive_nodata(a, (cmir_modality)m, &nd) == 0)
                sink += nd;
        }
        const char *s = cmir_archive_crs(a, t);
        if (s)
            sink += (double)strlen(s);
        if ((s = cmir_archive_scene(a, t)))
            sink += (double)strlen(s);
    }
    free(ml);
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd;
    char path[64];
    if (fuzz_memfile(data, size, &fd, path))
        return 0;
    cmir_archive *a = cmir_archive_open(path);
    if (a)
        read_some(a);
    cmir_archive_close(a);
    close(fd);
    ssize_t left = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (left > 0) {
        fprintf(stderr, "fuzz_archive: %zd HDF5 objects left open\n", left);
        abort();
    }
    fuzz_verbose();
    return 0;
}
