/* cmir_tile: cuts PAN scenes (or multi-band ones such as RGB) and the MS
 * scenes covering them (or, without -ms, a reduced copy of each scene)
 * into co-registered tile pairs with labels, written to a tile archive; a
 * thin main() over cmir_tile(). */
#include "cmir/tiling.h"
#include "cmir_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cmir_tile [--help] [--version] [-q] [-append | -overwrite] [-oo NAME=VALUE]...\n"
    "                 -pan PAN_SCENE [-pan PAN_SCENE]... [-ms MS_SCENE [-ms MS_SCENE]...]\n"
    "                 [-ts SIZE] [-stride N] [-ratio R] [-b BAND]... [-r RESAMPLING]\n"
    "                 [-nodata_frac F] [-keep_nodata]\n"
    "                 [-labels CLASS_RASTER | -label_layer VECTOR -label_field FIELD [-lyr NAME]]\n"
    "                 [-label_min_frac F] [-multilabel F] [-keep_unlabelled] [-deflate 0..9]\n"
    "                 ARCHIVE.mat\n"
    "\n"
    "Cuts each PAN scene into SIZE x SIZE tiles (default 256) and, for each, the MS tile that\n"
    "covers exactly the same ground at MS resolution, co-registered by georeferencing (GDAL's\n"
    "warper and PROJ when the grids or CRSs differ). Any raster GDAL reads is accepted.\n"
    "  -pan, -ms       input scenes (repeatable); MS scenes are mosaicked where several overlap.\n"
    "                  A -pan scene may have several bands (e.g. RGB: the archive's PAN slot then\n"
    "                  holds SIZE x SIZE x 3 tiles, band names from the colour interpretation);\n"
    "                  all -pan scenes of a run, and an archive appended to, must agree.\n"
    "                  Without -ms, each -pan scene is its own MS source: the MS slot holds it\n"
    "                  reduced by R (-ratio, default 4) with 'average' resampling (block means),\n"
    "                  e.g. 256x256x3 RGB tiles with 64x64x3 reduced copies\n"
    "  -ts SIZE        tile size in PAN pixels (a multiple of the PAN/MS ratio)\n"
    "  -stride N       PAN pixels between tiles (default SIZE; smaller values overlap tiles)\n"
    "  -ratio R        MS/PAN pixel-size ratio (default: read from the data; 4 without -ms)\n"
    "  -b BAND         MS band to keep, 1-based, repeatable (default: all)\n"
    "  -r RESAMPLING   warper resampling for MS: near, bilinear (default), cubic, average...\n"
    "                  (default average without -ms)\n"
    "  -nodata_frac F  skip tiles with more than F nodata pixels (default 0.01)\n"
    "  -keep_nodata    keep such tiles, unlabelled\n"
    "  -labels R       class raster: values 1..C are classes (category names become class names);\n"
    "                  repeatable (e.g. one per scene): they are mosaicked\n"
    "  -label_layer V  polygon layer (any OGR source) with -label_field FIELD holding the class\n"
    "  -lyr NAME       layer of V to use (default: the first)\n"
    "  -label_min_frac F  the majority class must cover F of the tile (default 0.5)\n"
    "  -multilabel F   also record every class covering at least F of the tile\n"
    "  -keep_unlabelled   keep tiles without a label (default: skip them when labels are given)\n"
    "  -deflate L      deflate level per tile in the archive, 0 = none (default: 1)\n"
    "  -append         add to ARCHIVE if it exists (same tile sizes and classes)\n"
    "  -overwrite      replace an existing ARCHIVE (without it, or -append, it is refused)\n"
    "  -oo NAME=VALUE  GDAL open option for every scene and label source, repeatable\n"
    "  -q              quiet: no progress bar\n"
    "The archive is a MATLAB v7.3 .mat file in the DSRSID layout (see README). It is written\n"
    "to a temporary file and renamed at the end: on error an existing archive is untouched.\n";

static const char prog[] = "cmir_tile";

int main(int argc, char **argv)
{
    int done, rc = cmir_app_init(prog, usage, &argc, &argv, &done);
    if (done)
        return rc;
    cmir_tile_params p = cmir_tile_default_params();
    const char **pan = calloc((size_t)argc, sizeof(char *)), **ms = calloc((size_t)argc, sizeof(char *));
    int *bands = calloc((size_t)argc, sizeof(int));
    const char **labels = calloc((size_t)argc, sizeof(char *));
    int n_lab = 0;
    int n_pan = 0, n_ms = 0, n_b = 0, quiet = 0, append = 0, used;
    cmir_app_common c = {.takes_oo = 1};
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-q") || !strcmp(a, "-quiet")) quiet = 1;
        else if (!strcmp(a, "-append")) append = 1;
        else if ((used = cmir_app_common_option(prog, argc, argv, &i, &c)) != 0) {
            if (used < 0 && (rc = 2))
                goto end;
        }
        else if (!strcmp(a, "-keep_nodata")) p.keep_nodata = 1;
        else if (!strcmp(a, "-keep_unlabelled")) p.skip_unlabelled = 0;
        else if (!strcmp(a, "-pan") || !strcmp(a, "-ms") || !strcmp(a, "-ts") || !strcmp(a, "-stride") ||
                 !strcmp(a, "-ratio") || !strcmp(a, "-b") || !strcmp(a, "-r") || !strcmp(a, "-nodata_frac") ||
                 !strcmp(a, "-labels") || !strcmp(a, "-label_layer") || !strcmp(a, "-label_field") ||
                 !strcmp(a, "-lyr") || !strcmp(a, "-label_min_frac") || !strcmp(a, "-multilabel") ||
                 !strcmp(a, "-deflate")) {
            const char *v = cmir_app_value(prog, argc, argv, &i);
            int bad = 0;
            if (!v) { rc = 2; goto end; }
            if (!strcmp(a, "-pan")) pan[n_pan++] = v;
            else if (!strcmp(a, "-ms")) ms[n_ms++] = v;
            else if (!strcmp(a, "-ts")) bad = cmir_app_int(prog, a, v, 1, 1 << 20, &p.tile_size);
            else if (!strcmp(a, "-stride")) bad = cmir_app_int(prog, a, v, 0, 1 << 20, &p.stride);
            else if (!strcmp(a, "-ratio")) bad = cmir_app_int(prog, a, v, 0, 1000, &p.ratio);
            else if (!strcmp(a, "-b")) bad = cmir_app_int(prog, a, v, 1, 65535, &bands[n_b++]);
            else if (!strcmp(a, "-r")) p.resampling = v;
            else if (!strcmp(a, "-nodata_frac")) bad = cmir_app_double(prog, a, v, 0, 1, &p.nodata_frac);
            else if (!strcmp(a, "-labels")) labels[n_lab++] = v;
            else if (!strcmp(a, "-label_layer")) p.label_vector = v;
            else if (!strcmp(a, "-label_field")) p.label_field = v;
            else if (!strcmp(a, "-lyr")) p.label_layer = v;
            else if (!strcmp(a, "-label_min_frac")) bad = cmir_app_double(prog, a, v, 0, 1, &p.label_min_frac);
            else if (!strcmp(a, "-multilabel")) bad = cmir_app_double(prog, a, v, 0, 1, &p.multilabel_frac);
            else if (!strcmp(a, "-deflate")) bad = cmir_app_int(prog, a, v, 0, 9, &p.deflate);
            if (bad) { rc = bad; goto end; }
        } else if (a[0] == '-' && a[1]) {
            rc = cmir_app_fail(prog, "unknown option '%s' (see --help)", a);
            rc = 2;
            goto end;
        } else if (!out) {
            out = a;
        } else {
            rc = cmir_app_fail(prog, "more than one output archive given ('%s' and '%s')", out, a);
            rc = 2;
            goto end;
        }
    }
    if (!n_pan || !out) {
        fputs(usage, stderr);
        rc = cmir_app_fail(prog, "need -pan and an output archive");
        rc = 2;
        goto end;
    }
    if (n_lab) {
        p.label_rasters = labels;
        p.n_label_rasters = n_lab;
    }
    if (n_b) {
        p.ms_bands = bands;
        p.n_ms_bands = n_b;
    }
    if (!append && (rc = cmir_app_output(prog, out, c.overwrite)))
        goto end;
    p.open_options = (const char *const *)c.oo;
    cmir_tile_stats st;
    int err = cmir_tile(pan, n_pan, ms, n_ms, out, append, p, cmir_app_progress, &quiet, &st);
    if (err) {
        rc = cmir_app_fail(prog, "%s", cmir_last_error());
        goto end;
    }
    if (!quiet)
        printf("%s: %lld tile pairs written (ratio %d, %d classes); skipped %lld for nodata, %lld unlabelled\n",
               out, (long long)st.tiles_written, st.ratio, st.n_classes, (long long)st.skipped_nodata,
               (long long)st.skipped_unlabelled);
    rc = 0;
end:
    free(pan);
    free(ms);
    free(bands);
    free(labels);
    cmir_app_common_free(&c);
    cmir_app_done(argv);
    return rc;
}
