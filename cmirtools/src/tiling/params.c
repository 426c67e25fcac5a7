/* cmir_tile()'s parameters: the defaults, and the check that names the
 * offending field. */
#include "cmir/tiling.h"
#include "tiling_internal.h"

#include <string.h>

cmir_tile_params cmir_tile_default_params(void)
{
    cmir_tile_params p;
    memset(&p, 0, sizeof p);
    p.tile_size = 256;
    p.resampling = NULL; /* bilinear for MS scenes, average for reduced copies */
    p.nodata_frac = 0.01;
    p.label_min_frac = 0.5;
    p.skip_unlabelled = 1;
    p.deflate = 1; /* libdeflate level 1: tiling 0.79x the gdal_translate read (bench_tile) */
    return p;
}

int cmir_tile_check_params(cmir_tile_params p)
{
    const char *who = "cmir_tile";
    if (p.tile_size < 2 || p.tile_size > CMIR_TILE_MAX_SIZE)
        return cmir__error(CMIR_EINVAL, "%s: tile_size must be in 2..%d, got %d", who, CMIR_TILE_MAX_SIZE,
                           p.tile_size);
    if (p.stride < 0)
        return cmir__error(CMIR_EINVAL, "%s: stride must be >= 0 (0 = tile_size), got %d", who, p.stride);
    if (p.ratio < 0)
        return cmir__error(CMIR_EINVAL, "%s: ratio must be >= 0 (0 = from the data), got %d", who, p.ratio);
    if (p.nodata_frac < 0)
        return cmir__error(CMIR_EINVAL, "%s: nodata_frac must be >= 0, got %g", who, p.nodata_frac);
    if (p.label_min_frac < 0 || p.label_min_frac > 1)
        return cmir__error(CMIR_EINVAL, "%s: label_min_frac must be in [0, 1], got %g", who, p.label_min_frac);
    if (p.deflate < 0 || p.deflate > 9)
        return cmir__error(CMIR_EINVAL, "%s: deflate must be in 0..9, got %d", who, p.deflate);
    if ((p.label_raster || p.n_label_rasters > 0) && p.label_vector)
        return cmir__error(CMIR_EINVAL,
                           "%s: label_vector (a label layer) and label_raster(s) were both given: one or the other",
                           who);
    if (p.label_vector && !p.label_field)
        return cmir__error(CMIR_EINVAL, "%s: label_vector needs label_field, the name of its class attribute", who);
    return 0;
}
