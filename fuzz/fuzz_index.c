/* Fuzz target: cmir_index_open on a GeoPackage index (through GDAL's
 * GPKG driver and SQLite, from /vsimem/), then the loaded rows and an int8
 * search (the stored codes). GDAL is slow per input: keep this corpus small. */
#include "fuzz_common.h"

#include "cmir/base.h"

#include "cmir/index.h"

#include <cpl_error.h>
#include <cpl_vsi.h>
#include <gdal.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_env();
    CPLSetErrorHandler(CPLQuietErrorHandler);
    GDALAllRegister();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *path = "/vsimem/cmir_fuzz_index.gpkg";
    GByte *copy = VSIMalloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    VSILFILE *f = VSIFileFromMemBuffer(path, copy, (vsi_l_offset)size, TRUE);
    if (!f) {
        VSIFree(copy);
        return 0;
    }
    VSIFCloseL(f);
    cmir_index *ix = cmir_index_open(path);
    if (ix) {
        volatile float sink = 0;
        int64_t n = cmir_index_count(ix);
        int d = cmir_index_dim(ix);
        const char *id = cmir_index_model_id(ix);
        sink += id ? (float)strlen(id) : 0;
        for (int64_t r = 0; r < n && r < 4; r++) {
            const float *v = cmir_index_vector(ix, r);
            if (v)
                sink += v[0] + v[d - 1];
            sink += (float)cmir_index_modality(ix, r);
        }
        /* the int8 scan reads the stored codes (table cmir_q8), if any */
        int64_t row;
        float dist;
        if (n > 0 && !cmir_index_set_scan(ix, CMIR_SCAN_INT8) &&
            !cmir_index_search(ix, NULL, cmir_index_vector(ix, 0), 1, 1, NULL, &row, &dist))
            sink += dist;
        (void)sink;
    }
    cmir_index_close(ix);
    VSIUnlink(path);
    fuzz_verbose();
    return 0;
}
