/* cmir_index: embeds every tile of tile archives with a model into a
 * GeoPackage index (new, appended to, or merged from shards); a thin
 * main() over cmir_index_build() and cmir_index_merge(). */
#include "cmir/dist.h"
#include "cmir/index.h"
#include "cmir_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cmir_index [--help] [--version] [-q] [-threads N] [-t_srs CRS] [-append | -overwrite]\n"
    "                  [-no_codes] [-speech MANIFEST.csv] -model MODEL.mat [ARCHIVE.mat]... INDEX.gpkg\n"
    "       cmir_index [-q] [-overwrite] -merge PART.gpkg [PART.gpkg]... INDEX.gpkg\n"
    "       mpirun -np N cmir_index [options] [-shards] -model MODEL.mat ARCHIVE.mat... OUT\n"
    "\n"
    "Embeds every tile of the archives, both modalities, with MODEL into INDEX, a GeoPackage\n"
    "that QGIS and OGR open as it is: layer 'tiles' (footprints in CRS, default EPSG:4326, with\n"
    "row, tile_id, modality, archive, scene, window, class, class_name, labels) plus the\n"
    "embedding matrix and the model's identity. -append adds to an existing index built with\n"
    "the same model, in one transaction (a killed run leaves the index as it was). -merge\n"
    "joins index parts built in parallel (e.g. with xargs -P) into one new index.\n"
    "With an image-speech model (cmir_train -speech), the archives' image tiles are indexed\n"
    "and, with -speech, every clip of the corpus manifest as a row of modality 'audio'\n"
    "without geometry (archive = the clip's file, class_name = its spoken label, scene = its\n"
    "voice), so that image queries can return spoken labels.\n"
    "INDEX also stores int8 codes of the matrix (table 'cmir_q8', dim + 16 bytes a row beside\n"
    "the matrix's 4 dim) that cmir_search's int8 scan loads instead of computing them; -no_codes\n"
    "leaves them out (the scan then computes them itself; the hits are the same either way).\n"    "An existing INDEX is refused unless -overwrite (replace it) or -append (extend it) is given.\n"
    "Under mpirun or srun (N ranks), each rank embeds its share of the tiles (whole batches of\n"
    "64, in the order of a single run) into its own shard OUT.TAG.RofN.gpkg; rank 0 then merges\n"
    "them into OUT (the same index as a single run) or, with -shards, writes OUT as a manifest\n"
    "listing the shards, which cmir_search (one process, or one rank per shard), the GDAL driver\n"
    "and ogr2ogr query as the merged index. -shards without MPI writes a one-shard manifest.\n";

static const char prog[] = "cmir_index";

int main(int argc, char **argv)
{
    int done, rc = cmir_app_init(prog, usage, &argc, &argv, &done);
    if (done)
        return rc;
    cmir_index_params p = cmir_index_default_params();
    const char **pos = calloc((size_t)argc, sizeof(char *));
    const char *model = NULL;
    int npos = 0, quiet = 0, merge = 0, overwrite = 0, shards = 0;
    if (cmir_dist_init(&argc, &argv) || cmir_dist_watch(prog)) {
        fprintf(stderr, "%s: %s\n", prog, cmir_last_error());
        free(pos);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-q") || !strcmp(a, "-quiet")) quiet = 1;
        else if (!strcmp(a, "-append")) p.append = 1;
        else if (!strcmp(a, "-merge")) merge = 1;
        else if (!strcmp(a, "-overwrite")) overwrite = 1;
        else if (!strcmp(a, "-shards")) shards = 1;
        else if (!strcmp(a, "-no_codes")) p.no_codes = 1;
        else if (!strcmp(a, "-model") || !strcmp(a, "-threads") || !strcmp(a, "-t_srs") || !strcmp(a, "-speech")) {
            const char *v = cmir_app_value(prog, argc, argv, &i);
            if (!v) {
                rc = 2;
                goto end;
            }
            if (!strcmp(a, "-model")) model = v;
            else if (!strcmp(a, "-threads")) {
                if ((rc = cmir_app_int(prog, a, v, 0, 1024, &p.threads)))
                    goto end;
            }
            else if (!strcmp(a, "-speech")) p.speech_manifest = v;
            else p.crs = v;
        } else if (a[0] == '-' && a[1]) {
            rc = cmir_app_fail(prog, "unknown option '%s' (see --help)", a);
            rc = 2;
            goto end;
        } else {
            pos[npos++] = a;
        }
    }
    if (npos < (p.speech_manifest && !merge ? 1 : 2) || (!merge && !model)) {
        fputs(usage, stderr);
        rc = 2;
        goto end;
    }
    const char *out = pos[npos - 1];
    if ((merge || !p.append) && (rc = cmir_app_output(prog, out, overwrite)))
        goto end;
    int64_t added = 0;
    if (merge && (shards || cmir_dist_size() > 1)) {
        rc = cmir_app_fail(prog, "-merge runs in one process, without -shards");
        rc = 2;
        goto end;
    }
    const int ranks = shards || cmir_dist_size() > 1;
    int err = merge   ? cmir_index_merge(pos, npos - 1, out, cmir_app_progress, &quiet)
              : ranks ? cmir_index_build_ranks(model, pos, npos - 1, out, shards, p,
                                               cmir_dist_rank() == 0 ? cmir_app_progress : NULL, &quiet, &added)
                      : cmir_index_build(model, pos, npos - 1, out, p, cmir_app_progress, &quiet, &added);
    if (err) {
        rc = cmir_app_fail(prog, "%s", cmir_last_error());
        goto end;
    }
    if (!quiet && !merge && cmir_dist_rank() == 0)
        printf("%s: %lld %s indexed\n", out, (long long)added, p.speech_manifest ? "tiles and clips" : "tiles");
    rc = 0;
end:
    free(pos);
    cmir_app_done(argv);
    cmir_dist_finalize();
    return rc;
}
