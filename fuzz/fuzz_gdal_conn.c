/* Fuzz target: the GDAL plugin's connection strings and open options,
 * parsed by gdal_CMIR.so (gdal_plugin/cmirdataset.cpp) as GDAL loads it
 * from GDAL_DRIVER_PATH (default: the build's plugin directory, baked in
 * as CMIR_FUZZ_PLUGIN_DIR). The input's first line follows "CMIR:"; each
 * further line is one KEY=VALUE open option (at most 16). Only the CMIR
 * driver may open it. */
#include "fuzz_common.h"

#include <cpl_conv.h>
#include <cpl_error.h>
#include <gdal.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_env();
#ifdef CMIR_FUZZ_PLUGIN_DIR
    if (!getenv("GDAL_DRIVER_PATH"))
        CPLSetConfigOption("GDAL_DRIVER_PATH", CMIR_FUZZ_PLUGIN_DIR);
#endif
    CPLSetErrorHandler(CPLQuietErrorHandler);
    GDALAllRegister();
    if (!GDALGetDriverByName("CMIR")) {
        fprintf(stderr, "fuzz_gdal_conn: the CMIR driver did not load (GDAL_DRIVER_PATH=%s)\n",
                CPLGetConfigOption("GDAL_DRIVER_PATH", "(unset)"));
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *buf = malloc(size + 6);
    if (!buf)
        return 0;
    memcpy(buf, "CMIR:", 5);
    memcpy(buf + 5, data, size);
    buf[size + 5] = '\0';
    char *opts[17];
    int n = 0;
    char *nl = strchr(buf, '\n');
    if (nl)
        *nl = '\0';
    while (nl && n < 16) {
        char *line = nl + 1;
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        opts[n++] = line;
    }
    opts[n] = NULL;
    static const char *const drivers[] = {"CMIR", NULL};
    GDALDatasetH ds = GDALOpenEx(buf, GDAL_OF_RASTER | GDAL_OF_VECTOR | GDAL_OF_READONLY,
                                 drivers, (const char *const *)opts, NULL);
    if (ds)
        GDALClose(ds);
    CPLErrorReset();
    free(buf);
    return 0;
}
