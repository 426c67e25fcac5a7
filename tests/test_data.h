/* Test fixture shared by the training and index tests: a small
 * georeferenced tile archive whose classes differ in texture and spectrum
 * (PAN 32x32 uint8, MS 8x8x4 uint8 = the PAN's block means times a class
 * spectrum, plus noise), spread over four scenes in UTM zone 50N. */
#ifndef CMIR_TEST_DATA_H
#define CMIR_TEST_DATA_H

#include "cmir/archive.h"
#include "cmir/base.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define TD_PAN 32
#define TD_MS 8
#define TD_CLASSES 4

static const char *td_names[TD_CLASSES] = {"water", "forest", "farm land", "low building"};
static const char *td_wkt =
    "PROJCS[\"WGS 84 / UTM zone 50N\",GEOGCS[\"WGS 84\",DATUM[\"WGS_1984\",SPHEROID[\"WGS 84\",6378137,"
    "298.257223563]],PRIMEM[\"Greenwich\",0],UNIT[\"degree\",0.0174532925199433]],PROJECTION[\"Transverse_Mercator\"],"
    "PARAMETER[\"latitude_of_origin\",0],PARAMETER[\"central_meridian\",117],PARAMETER[\"scale_factor\",0.9996],"
    "PARAMETER[\"false_easting\",500000],PARAMETER[\"false_northing\",0],UNIT[\"metre\",1],AUTHORITY[\"EPSG\",\"32650\"]]";

/* Writes n tiles (class i % 4 + 1) to path; returns 0 or the error. */
static int td_make_archive(const char *path, int n, uint64_t seed)
{
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = ap.pan_w = TD_PAN;
    ap.ms_h = ap.ms_w = TD_MS;
    ap.ms_bands = 4;
    ap.n_classes = TD_CLASSES;
    ap.class_names = td_names;
    cmir_archive_writer *w = cmir_archive_create(path, ap);
    if (!w)
        return -1;
    cmir_rng *r = cmir_rng_new(seed);
    static const float spectra[TD_CLASSES][4] = {
        {0.9f, 0.8f, 0.5f, 0.2f}, {0.4f, 0.7f, 0.4f, 1.4f}, {0.7f, 0.8f, 0.9f, 1.0f}, {1.0f, 1.0f, 1.0f, 0.8f}};
    uint8_t pan[TD_PAN * TD_PAN], ms[TD_MS * TD_MS * 4];
    float f[TD_PAN * TD_PAN];
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int c = i % TD_CLASSES;
        double freq = 0.15 + 0.35 * c + 0.05 * cmir_rng_uniform(r), ph = 6.28 * cmir_rng_uniform(r);
        double ang = 3.14 * cmir_rng_uniform(r), base = 60 + 25 * c;
        for (int y = 0; y < TD_PAN; y++)
            for (int x = 0; x < TD_PAN; x++) {
                double u = x * cos(ang) + y * sin(ang);
                f[y * TD_PAN + x] = (float)(base + 30 * sin(freq * u + ph) + 8 * cmir_rng_normal(r));
            }
        for (int k = 0; k < TD_PAN * TD_PAN; k++)
            pan[k] = (uint8_t)fmin(255, fmax(0, f[k]));
        for (int y = 0; y < TD_MS; y++)
            for (int x = 0; x < TD_MS; x++) {
                double s = 0;
                for (int a = 0; a < 4; a++)
                    for (int b = 0; b < 4; b++)
                        s += f[(y * 4 + a) * TD_PAN + x * 4 + b];
                for (int b = 0; b < 4; b++)
                    ms[(y * TD_MS + x) * 4 + b] =
                        (uint8_t)fmin(255, fmax(0, s / 16 * spectra[c][b] + 4 * cmir_rng_normal(r)));
            }
        int scene = i % 4, slot = i / 4;
        double x0 = 400000 + scene * 10000 + (slot % 16) * 64.0, y0 = 3900000 - (slot / 16) * 64.0;
        double pgt[6] = {x0, 2, 0, y0, 0, -2}, mgt[6] = {x0, 8, 0, y0, 0, -8};
        double pw[4] = {(slot % 16) * 32.0, (slot / 16) * 32.0, 32, 32}, mw[4] = {pw[0] / 4, pw[1] / 4, 8, 8};
        char sc[32];
        snprintf(sc, sizeof sc, "scene_%d", scene);
        cmir_tile_record t = {pan, ms, c + 1, NULL, pgt, mgt, td_wkt, sc, pw, mw, NULL};
        rc = cmir_archive_writer_add(w, &t);
    }
    cmir_rng_free(r);
    if (rc) {
        cmir_archive_writer_abort(w);
        return rc;
    }
    return cmir_archive_writer_commit(w);
}

#endif
