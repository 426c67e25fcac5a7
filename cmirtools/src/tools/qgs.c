/* cmir_search -qgs: a QGIS project (.qgs XML, atomically) of a search's first
 * query, with files beside it: the query's tile or window (<base>_query.tif),
 * the scenes its hits come from (by path), the hits (<base>_hits.geojson)
 * styled by rank (graduated renderer, labelled), and the map image
 * <base>.png rendered from the project (qgs_render.c). Paths of the files
 * beside it are relative, so the project moves with them. */
#define _DEFAULT_SOURCE /* realpath, mkdtemp */
#include "qgs.h"

#include <cpl_conv.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QGS_RANGES_MAX 10 /* rank classes of the hits' renderer */

/* s with &, <, >, " escaped. */
static void xml_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* <spatialrefsys> of a CRS (WKT and authority id; EPSG:4326 when wkt is NULL). QGIS 3.22 builds
 * the CRS from the WKT: without it a layer gets an unusable CRS and draws nothing. */
static void write_srs(FILE *f, const char *wkt, const char *authid)
{
    char *wgs84 = NULL;
    if (!wkt) {
        OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
        const char *opts[] = {"FORMAT=WKT2_2019", NULL};
        if (OSRImportFromEPSG(s, 4326) != OGRERR_NONE || OSRExportToWktEx(s, &wgs84, opts) != OGRERR_NONE)
            wgs84 = NULL;
        OSRDestroySpatialReference(s);
    }
    fputs("<spatialrefsys><wkt>", f);
    xml_text(f, wkt ? wkt : wgs84);
    fputs("</wkt><authid>", f);
    xml_text(f, wkt ? authid : "EPSG:4326");
    fputs("</authid></spatialrefsys>", f);
    CPLFree(wgs84);
}

/* Colour of rank class i of n: red (nearest) through yellow to blue (RdYlBu). */
static void ramp(int i, int n, int rgb[3])
{
    static const int stops[3][3] = {{215, 25, 28}, {255, 255, 100}, {44, 123, 182}};
    double t = n > 1 ? (double)i / (n - 1) * 2 : 0;
    int s = t >= 1 ? 1 : 0;
    for (int c = 0; c < 3; c++)
        rgb[c] = (int)lround(stops[s][c] + (t - s) * (stops[s + 1][c] - stops[s][c]));
}

/* The hits layer: graduated by rank, k ranks in at most QGS_RANGES_MAX classes, labelled with the rank. */
static void write_hits_layer(FILE *f, const char *file, int k, int several)
{
    int n = k < QGS_RANGES_MAX ? k : QGS_RANGES_MAX;
    fprintf(f, "<maplayer type=\"vector\" geometry=\"Polygon\" wkbType=\"Polygon\" labelsEnabled=\"1\" "
               "hasScaleBasedVisibilityFlag=\"0\">\n<id>cmir_hits_layer</id>\n<datasource>./");
    xml_text(f, file);
    if (several) /* the file holds every query's hits: the project shows the first query's */
        xml_text(f, "|subset=\"query\" = 0");
    fputs("</datasource>\n<layername>hits (rank 1 = nearest)</layername>\n<srs>", f);
    write_srs(f, NULL, NULL);
    fputs("</srs>\n<provider encoding=\"UTF-8\">ogr</provider>\n"
          "<renderer-v2 type=\"graduatedSymbol\" attr=\"rank\" graduatedMethod=\"GraduatedColor\" "
          "symbollevels=\"0\" forceraster=\"0\" enableorderby=\"0\">\n<ranges>\n", f);
    for (int i = 0; i < n; i++) {
        int lo = 1 + (int)((long long)i * k / n), hi = (int)((long long)(i + 1) * k / n);
        fprintf(f, "<range render=\"true\" symbol=\"%d\" lower=\"%g\" upper=\"%g\" label=\"rank %d%s%.0d\"/>\n", i,
                lo - 0.5, hi + 0.5, lo, hi > lo ? "-" : "", hi > lo ? hi : 0);
    }
    fputs("</ranges>\n<symbols>\n", f);
    for (int i = 0; i < n; i++) {
        int c[3];
        ramp(i, n, c);
        fprintf(f, "<symbol type=\"fill\" name=\"%d\" alpha=\"1\" clip_to_extent=\"1\" force_rhr=\"0\">"
                   "<layer class=\"SimpleFill\" pass=\"0\" locked=\"0\" enabled=\"1\"><Option type=\"Map\">"
                   "<Option type=\"QString\" name=\"color\" value=\"%d,%d,%d,70\"/>"
                   "<Option type=\"QString\" name=\"outline_color\" value=\"%d,%d,%d,255\"/>"
                   "<Option type=\"QString\" name=\"outline_style\" value=\"solid\"/>"
                   "<Option type=\"QString\" name=\"outline_width\" value=\"0.8\"/>"
                   "<Option type=\"QString\" name=\"outline_width_unit\" value=\"MM\"/>"
                   "<Option type=\"QString\" name=\"style\" value=\"solid\"/>"
                   "</Option></layer></symbol>\n", i, c[0], c[1], c[2], c[0], c[1], c[2]);
    }
    fputs("</symbols>\n</renderer-v2>\n"
          "<labeling type=\"simple\"><settings calloutType=\"simple\"><text-style fieldName=\"rank\" "
          "isExpression=\"0\" fontSize=\"9\" fontFamily=\"Sans Serif\" textColor=\"0,0,0,255\" textOpacity=\"1\">"
          "<text-buffer bufferDraw=\"1\" bufferSize=\"1\" bufferColor=\"255,255,255,255\" bufferOpacity=\"1\"/>"
          "</text-style><placement placement=\"1\"/><rendering obstacle=\"0\"/></settings></labeling>\n"
          "</maplayer>\n", f);
}

/* A raster layer: grey for one band, red/green/blue = bands 3/2/1 otherwise, stretched. */
static void write_raster_layer(FILE *f, const cmir__qgs_raster *r, const char *id, int relative)
{
    static const char *const col[3] = {"red", "green", "blue"};
    fprintf(f, "<maplayer type=\"raster\" hasScaleBasedVisibilityFlag=\"0\">\n<id>%s</id>\n<datasource>%s", id,
            relative ? "./" : "");
    xml_text(f, relative ? base_name(r->path) : r->path);
    fputs("</datasource>\n<layername>", f);
    xml_text(f, r->name);
    fputs("</layername>\n<srs>", f);
    write_srs(f, r->wkt, r->authid);
    fputs("</srs>\n<provider>gdal</provider>\n<pipe>\n", f);
    if (r->bands >= 3) {
        fputs("<rasterrenderer type=\"multibandcolor\" redBand=\"3\" greenBand=\"2\" blueBand=\"1\" "
              "opacity=\"1\" alphaBand=\"-1\">\n", f);
        for (int c = 0; c < 3; c++)
            fprintf(f, "<%sContrastEnhancement><minValue>%.17g</minValue><maxValue>%.17g</maxValue>"
                       "<algorithm>StretchToMinimumMaximum</algorithm></%sContrastEnhancement>\n",
                    col[c], r->lo[c], r->hi[c], col[c]);
    } else {
        fprintf(f, "<rasterrenderer type=\"singlebandgray\" grayBand=\"1\" gradient=\"BlackToWhite\" "
                   "opacity=\"1\" alphaBand=\"-1\">\n<contrastEnhancement><minValue>%.17g</minValue>"
                   "<maxValue>%.17g</maxValue><algorithm>StretchToMinimumMaximum</algorithm>"
                   "</contrastEnhancement>\n", r->lo[0], r->hi[0]);
    }
    fputs("</rasterrenderer>\n<brightnesscontrast brightness=\"0\" contrast=\"0\"/>\n"
          "<rasterresampler maxOversampling=\"2\"/>\n</pipe>\n</maplayer>\n", f);
}

/* (QGIS 3.22 keeps a layer id only when it is longer than 10 characters.) */
static void tree_layer(FILE *f, const char *id, const char *name, const char *provider)
{
    fprintf(f, "<layer-tree-layer id=\"%s\" providerKey=\"%s\" checked=\"Qt::Checked\" expanded=\"1\" name=\"",
            id, provider);
    xml_text(f, name);
    fputs("\"><customproperties/></layer-tree-layer>\n", f);
}

/* The project XML: hits on top, then the query, then the scenes (r[0] is the query when has_query). */
static void write_project(FILE *f, const char *title, const char *hits_file, int k, int several,
                          const cmir__qgs_raster *r, int nr, int has_query, const cmir__qgs_raster *crs,
                          const double e[4])
{
    fputs("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
          "<qgis projectname=\"", f);
    xml_text(f, title);
    fputs("\" version=\"3.22.16-Białowieża\">\n<title>", f);
    xml_text(f, title);
    fputs("</title>\n<projectCrs>", f);
    write_srs(f, crs ? crs->wkt : NULL, crs ? crs->authid : NULL);
    fputs("</projectCrs>\n<layer-tree-group><customproperties/>\n", f);
    tree_layer(f, "cmir_hits_layer", "hits (rank 1 = nearest)", "ogr");
    char id[32];
    for (int i = 0; i < nr; i++) {
        snprintf(id, sizeof id, i == 0 && has_query ? "cmir_query_layer" : "cmir_scene_layer_%d", i);
        tree_layer(f, id, r[i].name, "gdal");
    }
    fprintf(f, "</layer-tree-group>\n<mapcanvas name=\"theMapCanvas\" annotationsVisible=\"1\"><extent>"
               "<xmin>%.17g</xmin><ymin>%.17g</ymin><xmax>%.17g</xmax><ymax>%.17g</ymax></extent>"
               "<rotation>0</rotation><destinationsrs>", e[0], e[1], e[2], e[3]);
    write_srs(f, crs ? crs->wkt : NULL, crs ? crs->authid : NULL);
    fputs("</destinationsrs></mapcanvas>\n<projectlayers>\n", f);
    write_hits_layer(f, hits_file, k, several);
    for (int i = 0; i < nr; i++) {
        snprintf(id, sizeof id, i == 0 && has_query ? "cmir_query_layer" : "cmir_scene_layer_%d", i);
        write_raster_layer(f, &r[i], id, i == 0 && has_query);
    }
    /* QGIS 3.22 reads <projectCrs> only with ProjectionsEnabled set */
    fputs("</projectlayers>\n<properties><Paths><Absolute type=\"bool\">false</Absolute></Paths>"
          "<SpatialRefSys><ProjectionsEnabled type=\"int\">1</ProjectionsEnabled></SpatialRefSys></properties>\n"
          "</qgis>\n", f);
}

/* Grows e (minx, miny, maxx, maxy in dst) by the n points xy given in src. */
static void grow(double e[4], const double *xy, int n, OGRSpatialReferenceH src, OGRSpatialReferenceH dst)
{
    OGRCoordinateTransformationH ct = src && dst ? OCTNewCoordinateTransformation(src, dst) : NULL;
    for (int i = 0; i < n; i++) {
        double x = xy[2 * i], y = xy[2 * i + 1];
        if (ct && !OCTTransform(ct, 1, &x, &y, NULL))
            continue;
        e[0] = fmin(e[0], x);
        e[1] = fmin(e[1], y);
        e[2] = fmax(e[2], x);
        e[3] = fmax(e[3], y);
    }
    if (ct)
        OCTDestroyCoordinateTransformation(ct);
}

static OGRSpatialReferenceH srs_of(const char *wkt)
{
    OGRSpatialReferenceH s = OSRNewSpatialReference(NULL);
    if (OSRSetFromUserInput(s, wkt && *wkt ? wkt : "EPSG:4326") != OGRERR_NONE) {
        OSRDestroySpatialReference(s);
        return NULL;
    }
    OSRSetAxisMappingStrategy(s, OAMS_TRADITIONAL_GIS_ORDER);
    return s;
}

/* The map extent in the project CRS (crs, NULL = WGS84): a square around the first query's hits and its tile. */
static void map_extent(const cmir_hits *H, const cmir__qgs_raster *query, const cmir__qgs_raster *crs, double e[4])
{
    OGRSpatialReferenceH dst = srs_of(crs ? crs->wkt : NULL), hs = srs_of(cmir_hits_crs(H));
    e[0] = e[1] = INFINITY;
    e[2] = e[3] = -INFINITY;
    for (int64_t i = 0; i < cmir_hits_count(H) && cmir_hits_query(H, i) == 0; i++) {
        const double *xy;
        int n = cmir_hits_footprint(H, i, &xy);
        grow(e, xy, n, hs, dst);
    }
    if (query) {
        OGRSpatialReferenceH qs = query->wkt ? srs_of(query->wkt) : NULL;
        const double *x = query->ext, corners[8] = {x[0], x[1], x[2], x[1], x[2], x[3], x[0], x[3]};
        grow(e, corners, 4, qs ? qs : dst, dst);
        if (qs)
            OSRDestroySpatialReference(qs);
    }
    if (!(e[2] >= e[0]) || !(e[3] >= e[1])) { /* nothing to show (spoken hits): the whole world */
        e[0] = -180;
        e[1] = -90;
        e[2] = 180;
        e[3] = 90;
    }
    /* square, so that the map is one tile of native:rasterize (a label per feature), padded 10% */
    double half = 0.6 * fmax(fmax(e[2] - e[0], e[3] - e[1]), 1e-9), cx = (e[0] + e[2]) / 2, cy = (e[1] + e[3]) / 2;
    e[0] = cx - half;
    e[1] = cy - half;
    e[2] = cx + half;
    e[3] = cy + half;
    if (dst)
        OSRDestroySpatialReference(dst);
    if (hs)
        OSRDestroySpatialReference(hs);
}

/* Up to CMIR_QGS_MAX_SCENES distinct scenes of query 0's hits that open as rasters, into r[*n...]. */
static void add_scenes(const cmir_hits *H, cmir__qgs_raster *r, int *n, int cap)
{
    for (int64_t i = 0; i < cmir_hits_count(H) && cmir_hits_query(H, i) == 0 && *n < cap; i++) {
        const char *s = cmir_hits_attribute(H, i, CMIR_HIT_SCENE);
        char abs[PATH_MAX];
        if (!s || !*s || !realpath(s, abs))
            continue;
        int seen = 0;
        for (int j = 0; j < *n && !seen; j++)
            seen = !strcmp(r[j].path, abs);
        if (seen)
            continue;
        memset(&r[*n], 0, sizeof r[*n]);
        snprintf(r[*n].path, sizeof r[*n].path, "%s", abs);
        snprintf(r[*n].name, sizeof r[*n].name, "scene %.200s", base_name(abs));
        if (cmir__qgs_describe(&r[*n]) == 0)
            (*n)++;
        else
            cmir__qgs_raster_clear(&r[*n]);
    }
    cmir__clear_error();
}

/* The project XML to path, atomically. */
static int save_project(const char *path, const char *title, const char *hits_file, int k, int several,
                        const cmir__qgs_raster *r, int nr, int has_query, const cmir__qgs_raster *crs,
                        const double e[4])
{
    cmir__atomic_file af;
    FILE *f = cmir__atomic_fopen(&af, path);
    if (!f)
        return cmir_last_error_code();
    write_project(f, title, hits_file, k, several, r, nr, has_query, crs, e);
    return cmir__atomic_fclose(f, &af);
}

/* The hits (all queries) as GeoJSON at path, atomically. */
static int save_hits(const cmir_hits *H, const char *path, int k)
{
    cmir_search_params hp = cmir_search_default_params();
    hp.k = k;
    return cmir_hits_write(H, path, hp);
}

int cmir__qgs_write(cmir_index *ix, const cmir_hits *H, const cmir_query *q0, const float *qtile,
                    const int qdims[3], cmir_search_params p)
{
    char base[PATH_MAX], qpath[PATH_MAX + 16], hpath[PATH_MAX + 16], png[PATH_MAX + 16];
    size_t len = strlen(p.qgs);
    if (len < 5 || strcmp(p.qgs + len - 4, ".qgs") != 0 || len >= sizeof base)
        return cmir__error(CMIR_EINVAL, "%s: a QGIS project's name ends in .qgs", p.qgs);
    snprintf(base, sizeof base, "%.*s", (int)(len - 4), p.qgs);
    snprintf(qpath, sizeof qpath, "%s_query.tif", base);
    snprintf(hpath, sizeof hpath, "%s_hits.geojson", base);
    snprintf(png, sizeof png, "%s.png", base);
    cmir__qgs_raster r[1 + CMIR_QGS_MAX_SCENES];
    int nr = 0, made = 0, rc = cmir__qgs_query_raster(ix, q0, p.archive_root, qpath, &made);
    memset(r, 0, sizeof r);
    if (!rc && made) {
        snprintf(r[0].path, sizeof r[0].path, "%s", qpath);
        snprintf(r[0].name, sizeof r[0].name, "query: %.200s", cmir_hits_query_description(H, 0));
        if (!(rc = cmir__qgs_describe(&r[0])))
            nr = 1;
    }
    int wrote_hits = 0, wrote_qgs = 0;
    if (!rc)
        wrote_hits = !(rc = save_hits(H, hpath, p.k));
    if (!rc)
        add_scenes(H, r, &nr, 1 + CMIR_QGS_MAX_SCENES);
    const cmir__qgs_raster *crs = NULL;
    for (int i = 0; i < nr && !crs; i++)
        crs = r[i].wkt ? &r[i] : NULL;
    double e[4];
    map_extent(H, made && nr ? &r[0] : NULL, crs, e);
    if (!rc)
        wrote_qgs = !(rc = save_project(p.qgs, cmir_hits_query_description(H, 0), base_name(hpath), p.k,
                                         cmir_hits_query_count(H) > 1, r, nr, made, crs, e));
    int64_t *rows = rc ? NULL : cmir__malloc(sizeof(int64_t) * (size_t)p.k);
    if (!rc && !rows)
        rc = CMIR_ENOMEM;
    for (int i = 0; rows && i < p.k; i++)
        rows[i] = -1;
    for (int64_t i = 0; rows && i < cmir_hits_count(H) && cmir_hits_query(H, i) == 0; i++)
        rows[cmir_hits_rank(H, i) - 1] = cmir_hits_row(H, i);
    const char *by = NULL;
    if (!rc)
        rc = cmir__qgs_render(p.qgs, png, e, crs && crs->authid[0] ? crs->authid : (crs ? "" : "EPSG:4326"), ix,
                              q0, qtile, qdims, rows, p.k, p.archive_root, &by);
    cmir__free(rows);
    for (int i = 0; i < nr; i++)
        cmir__qgs_raster_clear(&r[i]);
    if (rc) { /* all or nothing: what this run wrote before failing is removed (the map is written last) */
        const char *written[] = {made ? qpath : NULL, wrote_hits ? hpath : NULL, wrote_qgs ? p.qgs : NULL};
        for (size_t i = 0; i < sizeof written / sizeof *written; i++)
            if (written[i])
                unlink(written[i]);
    }
    return rc;
}
