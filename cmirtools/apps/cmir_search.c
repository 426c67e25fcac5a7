/* cmir_search: cross-modal retrieval by example: queries (index rows or
 * raster files/windows) against an index, hits written as GeoJSON (RFC
 * 7946) or any OGR format; a thin main() over cmir_search(). */
#include "cmir/dist.h"
#include "cmir/index.h"
#include "cmir_app.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cmir_search [--help] [--version] [-q] [-threads N] -model MODEL.mat -index INDEX.gpkg\n"
    "                   [-overwrite] [-spat XMIN YMIN XMAX YMAX [-spat_srs SRS]] [-t_srs SRS]\n"
    "                   [-oo NAME=VALUE]...\n"
    "                   [-k K] [-target pan|ms|image|audio|any] [-bbox MINLON MINLAT MAXLON MAXLAT]\n"
    "                   [-max_dist D] [-of FORMAT] [-lco NAME=VALUE]... [-quicklook FILE.png]\n"
    "                   [-cmirq QUERY.cmirq] [-qgs PROJECT.qgs] [-scan auto|float|int8]\n"
    "                   (-row ROW | -raster FILE [-srcwin XOFF YOFF XSIZE YSIZE] | --audio CLIP |\n"
    "                    -queries LIST)...\n"
    "                   OUTPUT\n"
    "\n"
    "Finds the K (default 10) tiles of INDEX nearest to each query in CMIR-NET's shared space,\n"
    "by exact Euclidean distance, and writes one feature per hit to OUTPUT: query, rank,\n"
    "distance, row, tile_id, modality, archive, scene, window, class, class_name, labels and\n"
    "the footprint. GeoJSON (default) follows RFC 7946: WGS84 lon/lat, bbox, the queries in the\n"
    "collection's description. -of takes any OGR vector driver (GPKG, FlatGeobuf, CSV...).\n"
    "  -row ROW        a tile of the index (its 'row' attribute)\n"
    "  -raster FILE    any GDAL raster: 1 band = PAN, the model's MS band count = MS; cut into\n"
    "                  tiles of the model's size from the top-left, their codes averaged\n"
    "  -srcwin X Y W H a window of the raster, in pixels (as gdal_translate -srcwin)\n"
    "  --audio CLIP    (or -audio) a spoken query, any file libsndfile reads (WAV, FLAC,\n"
    "                  OGG...), for an image-speech model (cmir_train -speech): say \"water\",\n"
    "                  get the footprints of the image tiles that contain water\n"
    "  -queries LIST   a text file, one query per line: 'row N', 'raster FILE [X Y W H]' or\n"
    "                  'audio FILE'\n"
    "  -target         modality of the hits: the other one (default), pan, ms, any; for\n"
    "                  image-speech models image or audio (an image query then returns the\n"
    "                  indexed clips, with their spoken label, without geometry)\n"
    "  -bbox           keep hits whose footprint meets this WGS84 box\n"
    "  -spat X0 Y0 X1 Y1  keep hits whose footprint meets this box (as ogr2ogr -spat), in the\n"
    "                  index CRS or in -spat_srs\n"
    "  -t_srs SRS      write the footprints in SRS (default WGS84 lon/lat; GeoJSON is RFC 7946\n"
    "                  only then, another CRS is written with a \"crs\" member as ogr2ogr does)\n"
    "  -oo NAME=VALUE  GDAL open option for the -raster queries, repeatable\n"
    "  -overwrite      replace an existing OUTPUT, quick-look, query file or project (otherwise\n"
    "                  refused)\n"
    "  -max_dist D     keep hits nearer than D\n"
    "  -quicklook PNG  also draw the first query beside its hits, with rank and class\n"
    "  -cmirq FILE     also write the query (one) as a query file, which GDAL's ogrinfo and\n"
    "                  QGIS (Processing too) open by its path as the hits layer\n"
    "  -qgs FILE.qgs   also write a QGIS project of the first query: the query tile, the hits'\n"
    "                  scenes, the hits styled by rank, and its map image FILE.png, rendered by\n"
    "                  qgis_process when installed (--config CMIR_QGIS_PROCESS PATH|NONE),\n"
    "                  else by GDAL (the query beside its hits)\n"
    "  -scan           how the rows are scanned; the hits are the same: int8 codes with an\n"
    "                  exact float re-rank on AVX512-VNNI CPUs (int8; auto: for batches of\n"
    "                  queries, in one process), or float only (float; auto under mpirun):\n"
    "                  the codes take dim + 16 bytes a row beside the float matrix's 4 x dim,\n"
    "                  loaded from INDEX (cmir_index stores them) or computed when it has none\n"
    "The index must have been built with MODEL (its identity is checked). INDEX may be a shard\n"
    "manifest (cmir_index -shards): in one process its shards are searched as the merged index;\n"
    "under mpirun or srun with one rank per shard, each rank opens only its own shard, and rank 0\n"
    "merges the ranks' exact hits (same hits as one process) and writes OUTPUT.\n";

/* Query lists loaded by -queries, freed at exit (the queries' strings
 * belong to them). */
static cmir_query_list **lists;
static int n_lists;

/* Appends the queries of the list file at path to q (n of cap). */
static int add_list(const char *path, cmir_query **q, int *n, int *cap)
{
    cmir_query_list *l = NULL;
    cmir_query_list **g = realloc(lists, sizeof *lists * (size_t)(n_lists + 1));
    if (!g)
        return cmir_app_fail("cmir_search", "%s: out of memory", path);
    lists = g;
    if (cmir_query_list_load(path, &l))
        return cmir_app_fail("cmir_search", "%s", cmir_last_error());
    lists[n_lists++] = l;
    int m = cmir_query_list_count(l);
    if (*n + m > *cap) {
        int nc = *n + m + 16;
        cmir_query *e = realloc(*q, sizeof(cmir_query) * (size_t)nc);
        if (!e)
            return cmir_app_fail("cmir_search", "%s: out of memory", path);
        *q = e;
        *cap = nc;
    }
    memcpy(*q + *n, cmir_query_list_queries(l), sizeof(cmir_query) * (size_t)m);
    *n += m;
    return 0;
}

static const char prog[] = "cmir_search";

/* -overwrite, -oo, and the options GDAL users expect of a search: -spat
 * (with -spat_srs) and -t_srs. 1 = used, 0 = not one of them, -1 = bad. */
static int geo_option(int argc, char **argv, int *i, cmir_search_params *p, cmir_app_common *c)
{
    const char *a = argv[*i];
    int used = cmir_app_common_option(prog, argc, argv, i, c);
    if (used || (strcmp(a, "-t_srs") && strcmp(a, "-spat_srs") && strcmp(a, "-spat")))
        return used;
    if (*i + (strcmp(a, "-spat") ? 1 : 4) >= argc) {
        cmir_app_fail(prog, "option %s needs %s", a, strcmp(a, "-spat") ? "a value" : "4 values");
        return -1;
    }
    if (!strcmp(a, "-t_srs"))
        p->t_srs = argv[++*i];
    else if (!strcmp(a, "-spat_srs"))
        p->filter.spat_srs = argv[++*i];
    else
        for (int j = 0; j < 4; j++) /* as ogr2ogr -spat: xmin ymin xmax ymax in the index CRS */
            if (cmir_app_double(prog, a, argv[++*i], -HUGE_VAL, HUGE_VAL, &p->filter.spat[j]))
                return -1;
    p->filter.has_spat |= !strcmp(a, "-spat");
    return 1;
}

/* The query options (-row, -raster with -srcwin, -audio, -queries) into
 * (*q, *n, *cap): -1 when a is not one of them, 0 when taken, else the
 * exit status after a one-line message naming the option. */
static int query_option(int argc, char **argv, int *i, cmir_query **q, int *n, int *cap)
{
    const char *a = argv[*i];
    int rc, single = !strcmp(a, "-row") || !strcmp(a, "-raster") || !strcmp(a, "-audio") || !strcmp(a, "--audio");
    if (!single && strcmp(a, "-srcwin") && strcmp(a, "-queries"))
        return -1;
    int need = !strcmp(a, "-srcwin") ? 4 : 1;
    if (*i + need >= argc)
        return cmir_app_fail(prog, "option %s needs %d value(s)", a, need) + 1;
    if (!strcmp(a, "-queries")) {
        int before = *n;
        if ((rc = add_list(argv[++*i], q, n, cap)))
            return rc;
        if (*n == before)
            return cmir_app_fail(prog, "-queries: %s holds no query (one per line: 'row N', 'raster FILE "
                                 "[X Y W H]' or 'audio FILE')", argv[*i]) + 1;
        return 0;
    }
    if (!single) { /* -srcwin X Y W H */
        if (!*n || (*q)[*n - 1].kind != CMIR_QUERY_RASTER)
            return cmir_app_fail(prog, "-srcwin follows a -raster query");
        cmir_query *r = &(*q)[*n - 1];
        r->has_window = 1;
        for (int j = 0; j < 4; j++) /* offsets >= 0, sizes >= 1 */
            if ((rc = cmir_app_int(prog, a, argv[++*i], j < 2 ? 0 : 1, INT_MAX, &r->window[j])))
                return rc;
        return 0;
    }
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 16;
        cmir_query *e = realloc(*q, sizeof(cmir_query) * (size_t)nc);
        if (!e)
            return cmir_app_fail(prog, "%s: out of memory", a);
        *q = e;
        *cap = nc;
    }
    cmir_query *r = &(*q)[*n];
    memset(r, 0, sizeof *r);
    const char *v = argv[++*i];
    if (!strcmp(a, "-row")) {
        int64_t row;
        if ((rc = cmir_app_int64(prog, a, v, 0, INT64_MAX, &row)))
            return rc;
        r->kind = CMIR_QUERY_ROW;
        r->row = row;
    } else if (!strcmp(a, "-raster")) {
        r->kind = CMIR_QUERY_RASTER;
        r->raster = v;
    } else {
        r->kind = CMIR_QUERY_AUDIO;
        r->audio = v;
    }
    (*n)++;
    return 0;
}

int main(int argc, char **argv)
{
    int done, rc = cmir_app_init("cmir_search", usage, &argc, &argv, &done);
    if (done)
        return rc;
    cmir_search_params p = cmir_search_default_params();
    const char *model = NULL, *index = NULL, *out = NULL;
    cmir_query *q = NULL;
    char **lco = calloc((size_t)argc + 1, sizeof(char *));
    int nq = 0, cap = 0, quiet = 0, nlco = 0, used;
    cmir_app_common c = {.takes_oo = 1};
    if (!lco || cmir_dist_init(&argc, &argv) || cmir_dist_watch(prog)) {
        fprintf(stderr, "%s: %s\n", prog, lco ? cmir_last_error() : "out of memory");
        free(lco);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((used = geo_option(argc, argv, &i, &p, &c)) < 0 && (rc = 2)) goto end;
        if (used) continue;
#define NEED(n)                                                                   \
    if (i + (n) >= argc) {                                                        \
        rc = cmir_app_fail("cmir_search", "option %s needs %d value(s)", a, (n)) + 1; \
        goto end;                                                                     \
    }
        if (!strcmp(a, "-q") || !strcmp(a, "-quiet")) quiet = 1;
        else if (!strcmp(a, "-model")) { NEED(1); model = argv[++i]; }
        else if (!strcmp(a, "-index")) { NEED(1); index = argv[++i]; }
        else if (!strcmp(a, "-k")) { NEED(1); if ((rc = cmir_app_int(prog, a, argv[++i], 1, 100000, &p.k))) goto end; }
        else if (!strcmp(a, "-threads")) { NEED(1); if ((rc = cmir_app_int(prog, a, argv[++i], 0, 1024, &p.threads))) goto end; }
        else if (!strcmp(a, "-of")) { NEED(1); p.format = argv[++i]; }
        else if (!strcmp(a, "-quicklook")) { NEED(1); p.quicklook = argv[++i]; }
        else if (!strcmp(a, "-cmirq")) { NEED(1); p.query_file = argv[++i]; }
        else if (!strcmp(a, "-qgs")) { NEED(1); p.qgs = argv[++i]; }
        else if (!strcmp(a, "-scan")) {
            NEED(1);
            const char *t = argv[++i];
            p.scan = !strcmp(t, "auto") ? CMIR_SCAN_AUTO : !strcmp(t, "float") ? CMIR_SCAN_FLOAT
                   : !strcmp(t, "int8") ? CMIR_SCAN_INT8 : -1;
            if (p.scan < 0) {
                rc = cmir_app_fail(prog, "-scan takes auto, float or int8, not '%s'", t);
                goto end;
            }
        }
        else if (!strcmp(a, "-lco")) { NEED(1); lco[nlco++] = argv[++i]; }
        else if (!strcmp(a, "-max_dist")) {
            NEED(1);
            if ((rc = cmir_app_float(prog, a, argv[++i], 0, HUGE_VAL, &p.filter.max_dist)))
                goto end;
        }
        else if (!strcmp(a, "-target")) {
            NEED(1);
            const char *t = argv[++i];
            if (!strcmp(t, "pan") || !strcmp(t, "image")) p.filter.modality = 0;
            else if (!strcmp(t, "ms") || !strcmp(t, "audio")) p.filter.modality = 1;
            else if (!strcmp(t, "any")) p.filter.modality = -1;
            else {
                rc = cmir_app_fail("cmir_search", "-target takes pan, ms, image, audio or any, not '%s'", t);
                goto end;
            }
        } else if (!strcmp(a, "-bbox")) {
            NEED(4);
            p.filter.has_bbox = 1;
            for (int j = 0; j < 4; j++) /* lon, lat, lon, lat */
                if ((rc = cmir_app_double(prog, a, argv[++i], j % 2 ? -90 : -180, j % 2 ? 90 : 180,
                                          &p.filter.bbox[j])))
                    goto end;
        } else if ((used = query_option(argc, argv, &i, &q, &nq, &cap)) >= 0) {
            if ((rc = used))
                goto end;
        } else if (a[0] == '-' && a[1]) {
            rc = cmir_app_fail("cmir_search", "unknown option '%s' (see --help)", a);
            rc = 2;
            goto end;
        } else if (!out) {
            out = a;
        } else {
            rc = cmir_app_fail("cmir_search", "unexpected argument '%s'", a);
            rc = 2;
            goto end;
        }
#undef NEED
    }
    if (!model || !index || !out || !nq) {
        fputs(usage, stderr);
        rc = cmir_app_fail("cmir_search", "need -model, -index, at least one query and OUTPUT");
        rc = 2;
        goto end;
    }
    p.layer_options = (const char *const *)lco;
    p.open_options = (const char *const *)c.oo;
    if ((rc = cmir_app_output(prog, out, c.overwrite)) || (rc = cmir_app_output(prog, p.quicklook, c.overwrite)) ||
        (rc = cmir_app_output(prog, p.query_file, c.overwrite)) || (rc = cmir_app_output(prog, p.qgs, c.overwrite)))
        goto end;
    cmir_progress_fn bar = cmir_dist_rank() == 0 ? cmir_app_progress : NULL; /* one bar, rank 0's */
    if (cmir_dist_size() > 1 ? cmir_search_ranks(model, index, q, nq, out, p, bar, &quiet)
                             : cmir_search(model, index, q, nq, out, p, cmir_app_progress, &quiet)) {
        rc = cmir_app_fail("cmir_search", "%s", cmir_last_error());
        goto end;
    }
    rc = 0;
end:
    free(q);
    for (int i = 0; i < n_lists; i++)
        cmir_query_list_free(lists[i]);
    free(lists);
    free(lco);
    cmir_app_common_free(&c);
    cmir_app_done(argv);
    cmir_dist_finalize();
    return rc;
}
