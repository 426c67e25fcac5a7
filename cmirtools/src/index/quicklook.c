/* Quick-look PNG of a search: the query tile beside its hits, each
 * contrast-stretched (PAN grey, MS red/green/blue), framed in its class
 * colour and captioned with its rank and class name in a 5x7 bitmap font,
 * written through GDAL's PNG driver (temporary file, then rename). */
#include "index_internal.h"
#include "cmir/archive.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CELL 128
#define PAD 6
#define TEXT_H 20

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
static const struct {
    char c;
    uint8_t rows[7];
} FONT[] = {
    {'0', {14, 17, 19, 21, 25, 17, 14}}, {'1', {4, 12, 4, 4, 4, 4, 14}},    {'2', {14, 17, 1, 2, 4, 8, 31}},
    {'3', {31, 2, 4, 2, 1, 17, 14}},     {'4', {2, 6, 10, 18, 31, 2, 2}},   {'5', {31, 16, 30, 1, 1, 17, 14}},
    {'6', {6, 8, 16, 30, 17, 17, 14}},   {'7', {31, 1, 2, 4, 8, 8, 8}},     {'8', {14, 17, 17, 14, 17, 17, 14}},
    {'9', {14, 17, 17, 15, 1, 2, 12}},   {'A', {14, 17, 17, 31, 17, 17, 17}}, {'B', {30, 17, 17, 30, 17, 17, 30}},
    {'C', {14, 17, 16, 16, 16, 17, 14}}, {'D', {28, 18, 17, 17, 17, 18, 28}}, {'E', {31, 16, 16, 30, 16, 16, 31}},
    {'F', {31, 16, 16, 30, 16, 16, 16}}, {'G', {14, 17, 16, 23, 17, 17, 15}}, {'H', {17, 17, 17, 31, 17, 17, 17}},
    {'I', {14, 4, 4, 4, 4, 4, 14}},      {'J', {7, 2, 2, 2, 2, 18, 12}},    {'K', {17, 18, 20, 24, 20, 18, 17}},
    {'L', {16, 16, 16, 16, 16, 16, 31}}, {'M', {17, 27, 21, 21, 17, 17, 17}}, {'N', {17, 17, 25, 21, 19, 17, 17}},
    {'O', {14, 17, 17, 17, 17, 17, 14}}, {'P', {30, 17, 17, 30, 16, 16, 16}}, {'Q', {14, 17, 17, 17, 21, 18, 13}},
    {'R', {30, 17, 17, 30, 20, 18, 17}}, {'S', {15, 16, 16, 14, 1, 1, 30}},   {'T', {31, 4, 4, 4, 4, 4, 4}},
    {'U', {17, 17, 17, 17, 17, 17, 14}}, {'V', {17, 17, 17, 17, 17, 10, 4}},  {'W', {17, 17, 17, 21, 21, 21, 10}},
    {'X', {17, 17, 10, 4, 10, 17, 17}},  {'Y', {17, 17, 10, 4, 4, 4, 4}},     {'Z', {31, 1, 2, 4, 8, 16, 31}},
    {'-', {0, 0, 0, 31, 0, 0, 0}},       {'.', {0, 0, 0, 0, 0, 12, 12}},      {':', {0, 12, 12, 0, 12, 12, 0}},
    {'#', {10, 10, 31, 10, 31, 10, 10}},
};

static const uint8_t *glyph(char c)
{
    c = (char)toupper((unsigned char)c);
    for (size_t i = 0; i < sizeof FONT / sizeof *FONT; i++)
        if (FONT[i].c == c)
            return FONT[i].rows;
    return NULL; /* blank */
}

typedef struct canvas {
    int w, h;
    uint8_t *px; /* RGB, row-major */
} canvas;

static void put(canvas *cv, int x, int y, const uint8_t rgb[3])
{
    if (x >= 0 && y >= 0 && x < cv->w && y < cv->h)
        memcpy(cv->px + ((size_t)y * cv->w + x) * 3, rgb, 3);
}

static void text(canvas *cv, int x, int y, const char *s, const uint8_t rgb[3], int max_chars)
{
    for (int i = 0; s[i] && i < max_chars; i++) {
        const uint8_t *g = glyph(s[i]);
        for (int r = 0; g && r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] & (16 >> c))
                    put(cv, x + i * 6 + c, y + r, rgb);
    }
}

static void class_colour(int c, uint8_t rgb[3])
{
    static const uint8_t pal[10][3] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                                       {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
    if (c <= 0)
        rgb[0] = rgb[1] = rgb[2] = 60;
    else
        memcpy(rgb, pal[(c - 1) % 10], 3);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Draws an h x w x nb tile into the cell at (x0, y0), stretched 2%-98%. */
static void draw_tile(canvas *cv, int x0, int y0, const float *t, int h, int w, int nb)
{
    int bands[3] = {0, 0, 0};
    if (nb >= 3) { /* red, green, blue of blue-green-red-NIR order */
        bands[0] = 2;
        bands[1] = 1;
        bands[2] = 0;
    }
    float lo[3], hi[3];
    float *tmp = malloc(sizeof(float) * (size_t)h * w);
    for (int c = 0; c < 3; c++) {
        int n = 0;
        for (int i = 0; tmp && i < h * w; i++)
            if (isfinite(t[(size_t)i * nb + bands[c]]))
                tmp[n++] = t[(size_t)i * nb + bands[c]];
        if (!tmp || !n) {
            lo[c] = 0;
            hi[c] = 1;
            continue;
        }
        qsort(tmp, (size_t)n, sizeof(float), cmp_float);
        lo[c] = tmp[(int)(0.02 * (n - 1))];
        hi[c] = tmp[(int)(0.98 * (n - 1))];
        if (hi[c] <= lo[c])
            hi[c] = lo[c] + 1;
    }
    free(tmp);
    for (int y = 0; y < CELL; y++)
        for (int x = 0; x < CELL; x++) {
            int sy = y * h / CELL, sx = x * w / CELL;
            uint8_t rgb[3];
            for (int c = 0; c < 3; c++) {
                float v = t[((size_t)sy * w + sx) * nb + bands[c]];
                float u = isfinite(v) ? (v - lo[c]) / (hi[c] - lo[c]) : 0;
                rgb[c] = (uint8_t)(255 * (u < 0 ? 0 : u > 1 ? 1 : u));
            }
            put(cv, x0 + x, y0 + y, rgb);
        }
}

/* Reads the tile behind index row r (archive path, tile id and modality
 * from its feature): *t is malloc'ed h x w x nb floats. */
static int row_tile(cmir_index *ix, int64_t r, const char *root, float **t, int *h, int *w, int *nb, int *cls,
                    char *name, size_t nname)
{
    OGRFeatureH f = cmir__index_feature(ix, r);
    if (!f)
        return cmir__error(CMIR_EFORMAT, "%s: row %lld has no feature", ix->path, (long long)r);
    char path[4096];
    const char *ap = OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "archive"));
    if (root && ap[0] != '/')
        snprintf(path, sizeof path, "%s/%s", root, ap);
    else
        snprintf(path, sizeof path, "%s", ap);
    int64_t tile = OGR_F_GetFieldAsInteger64(f, OGR_F_GetFieldIndex(f, "tile_id"));
    const char *mod = OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "modality"));
    int ms = !strcmp(mod, "MS"), audio = !strcmp(mod, "audio");
    *cls = OGR_F_GetFieldAsInteger(f, OGR_F_GetFieldIndex(f, "class"));
    snprintf(name, nname, "%s%s", audio ? "(spoken) " : "",
             OGR_F_GetFieldAsString(f, OGR_F_GetFieldIndex(f, "class_name")));
    OGR_F_Destroy(f);
    if (audio) { /* a clip: no picture, its label only */
        *t = NULL;
        *h = *w = 0;
        return 0;
    }
    cmir_archive *a = cmir_archive_open(path);
    if (!a)
        return cmir__failed(CMIR_EIO);
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    *h = ms ? ai->ms_h : ai->pan_h;
    *w = ms ? ai->ms_w : ai->pan_w;
    *nb = ms ? ai->ms_bands : ai->pan_bands;
    *t = malloc(sizeof(float) * (size_t)*h * *w * *nb);
    int rc = *t ? cmir_archive_read_tile(a, ms ? CMIR_MS : CMIR_PAN, tile, *t) : CMIR_ENOMEM;
    cmir_archive_close(a);
    return rc;
}

int cmir__quicklook(cmir_index *ix, const char *root, const float *qtile, int qh, int qw, int qnb, int64_t qrow,
                    const int64_t *rows, int k, const char *path)
{
    int n = 0;
    while (n < k && rows[n] >= 0)
        n++;
    canvas cv;
    cv.w = PAD + (n + 1) * (CELL + PAD) + PAD;
    cv.h = PAD + CELL + TEXT_H + PAD;
    cv.px = cmir__calloc((size_t)cv.w * cv.h * 3, 1);
    if (!cv.px)
        return CMIR_ENOMEM;
    memset(cv.px, 24, (size_t)cv.w * cv.h * 3);
    static const uint8_t white[3] = {235, 235, 235};
    int rc = 0;
    for (int i = -1; !rc && i < n; i++) {
        float *t = NULL;
        int h = 0, w = 0, nb = 1, cls = 0;
        char name[256] = "", cap[64];
        int x0 = PAD + (i + 1) * (CELL + PAD) + (i >= 0 ? PAD : 0);
        if (i < 0 && qtile) {
            t = (float *)qtile;
            h = qh;
            w = qw;
            nb = qnb;
        } else if (i < 0 && qrow < 0) {
            snprintf(name, sizeof name, "(spoken)"); /* an audio query */
        } else {
            rc = row_tile(ix, i < 0 ? qrow : rows[i], root, &t, &h, &w, &nb, &cls, name, sizeof name);
            if (rc)
                break;
        }
        uint8_t col[3];
        class_colour(cls, col);
        for (int y = -3; y < CELL + 3; y++)
            for (int x = -3; x < CELL + 3; x++)
                put(&cv, x0 + x, PAD + y, i < 0 ? white : col);
        if (t)
            draw_tile(&cv, x0, PAD, t, h, w, nb);
        if (i < 0)
            snprintf(cap, sizeof cap, "QUERY %.40s", name);
        else
            snprintf(cap, sizeof cap, "#%d %.40s", i + 1, name);
        text(&cv, x0, PAD + CELL + 7, cap, white, CELL / 6);
        if (!(i < 0 && qtile))
            free(t);
    }
    if (!rc) {
        GDALDriverH mem = GDALGetDriverByName("MEM"), png = GDALGetDriverByName("PNG");
        GDALDatasetH ds = mem ? GDALCreate(mem, "", cv.w, cv.h, 3, GDT_Byte, NULL) : NULL;
        cmir__atomic_file af;
        int arc = ds && png ? cmir__atomic_open(&af, path, CMIR__ATOMIC_NAME_ONLY) : 0;
        if (!ds || !png)
            rc = cmir__error(CMIR_EUNSUPPORTED, "%s: GDAL's MEM and PNG drivers are needed", path);
        else if (arc)
            rc = arc;
        else if (GDALDatasetRasterIO(ds, GF_Write, 0, 0, cv.w, cv.h, cv.px, cv.w, cv.h, GDT_Byte, 3, NULL, 3,
                                     (GSpacing)cv.w * 3, 1) != CE_None)
            rc = cmir__gdal_error(CMIR_EIO, path, "cannot draw the quick-look");
        if (ds && png && !arc) {
            GDALDatasetH out = rc ? NULL : GDALCreateCopy(png, af.tmp, ds, FALSE, NULL, NULL, NULL);
            if (!rc && !out)
                rc = cmir__gdal_error(CMIR_EIO, path, "cannot write the PNG");
            else if (out)
                GDALClose(out);
            char aux[4200];
            snprintf(aux, sizeof aux, "%s.aux.xml", af.tmp);
            unlink(aux);
            if (rc)
                cmir__atomic_abort(&af);
            else
                rc = cmir__atomic_commit(&af);
        }
        if (ds)
            GDALClose(ds);
    }
    cmir__free(cv.px);
    return rc;
}
