/* cmir_eval: retrieval metrics of a CMIR-NET model in all four directions
 * (or of the paper's unified.mat), as a table and as JSON/CSV; a thin
 * main() over cmir_eval(). */
#include "cmir/train.h"
#include "cmir_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cmir_eval [--help] [--version] [-q] [-threads N] [-all | -valid] [-k K,K,...]\n"
    "                 [-paper_queries N] [-seed S] [-json FILE] [-csv FILE]\n"
    "                 [-plot PR.svg] [-overwrite]\n"
    "                 [-speech MANIFEST.csv [-voices held_out|seen|all] [-ranking model|oracle|floor]]\n"
    "                 (MODEL.mat ARCHIVE.mat | -unified UNIFIED.mat)\n"
    "\n"
    "Embeds the tiles the model held out at training (all labelled tiles with -all; with\n"
    "-valid, the validation tiles of a model trained with a validation share, to choose settings\n"
    "without touching the test tiles) and\n"
    "measures Euclidean retrieval PAN->MS, MS->PAN, PAN->PAN and MS->MS: mAP over the whole\n"
    "database (AP = (1/R) sum_k P(k) rel(k)), mAP@k and P@k (-k, default 5,10,20,50,100),\n"
    "the 11-point PR curve, ANMRR, and the paper's own protocol (mean of P@10..P@50 over\n"
    "-paper_queries random queries, default 50) for comparison with its figures. Relevance:\n"
    "same class; for multi-label models, at least one shared label. With -unified, the same\n"
    "on featuresx/featuresy of a unified.mat.\n"
    "An image-speech model (cmir_train -speech) needs -speech: the directions are then\n"
    "image->audio, audio->image, image->image and audio->audio between the held-out image\n"
    "tiles and the manifest's clips of held-out voices (-voices seen: the voices trained on;\n"
    "all: every clip); relevance: the clip's label is one of the image's. -ranking oracle gives\n"
    "each clip its true label as its feature (a perfect recogniser: the image branch's\n"
    "ceiling); -ranking floor uses no network (each image ranks the clips by the training\n"
    "images' frequency of the label heard, each clip ranks the images at random).\n"
    "Beside every direction: its training-free floor on the same tiles (mAP and P@k in -json\n"
    "and -csv): a least-squares map from a PAN tile's mean and deviation to the MS band means,\n"
    "fitted on the training tiles only, then Euclidean retrieval among MS band means\n"
    "(PAN->MS, MS->PAN); PAN (mean, deviation) for PAN->PAN; band means for MS->MS; every\n"
    "feature standardised by its training mean and deviation. None for -unified or speech.\n"
    "-plot writes the precision-recall curves of the four directions with their floors\n"
    "(dashed) as SVG.\n"
    "An existing -json, -csv or -plot file is refused unless -overwrite is given.\n";

static const char prog[] = "cmir_eval";

int main(int argc, char **argv)
{
    int done, rc = cmir_app_init(prog, usage, &argc, &argv, &done);
    if (done)
        return rc;
    cmir_eval_params p = cmir_eval_default_params();
    const char *pos[2] = {NULL, NULL}, *json = NULL, *csv = NULL, *plot = NULL, *unified = NULL;
    int npos = 0, overwrite = 0, quiet = 1; /* the table is the output; no bar */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-q")) quiet = 1;
        else if (!strcmp(a, "-all")) p.all_tiles = 1;
        else if (!strcmp(a, "-valid")) p.valid_tiles = 1;
        else if (!strcmp(a, "-overwrite")) overwrite = 1;
        else if (a[0] == '-' && a[1]) {
            const char *v = cmir_app_value(prog, argc, argv, &i);
            int bad = 0;
            if (!v) {
                rc = 2;
                goto end;
            }
            if (!strcmp(a, "-threads")) bad = cmir_app_int(prog, a, v, 0, 1024, &p.threads);
            else if (!strcmp(a, "-paper_queries")) bad = cmir_app_int(prog, a, v, 0, 1 << 30, &p.paper_queries);
            else if (!strcmp(a, "-seed")) bad = cmir_app_u64(prog, a, v, &p.seed);
            else if (!strcmp(a, "-json")) json = v;
            else if (!strcmp(a, "-csv")) csv = v;
            else if (!strcmp(a, "-plot")) plot = v;
            else if (!strcmp(a, "-unified")) unified = v;
            else if (!strcmp(a, "-speech")) p.speech_manifest = v;
            else if (!strcmp(a, "-ranking")) {
                if (!strcmp(v, "model")) p.audio_ranking = 0;
                else if (!strcmp(v, "oracle")) p.audio_ranking = 1;
                else if (!strcmp(v, "floor")) p.audio_ranking = 2;
                else {
                    rc = cmir_app_fail(prog, "-ranking takes model, oracle or floor, not '%s'", v);
                    goto end;
                }
            } else if (!strcmp(a, "-voices")) {
                if (!strcmp(v, "held_out")) p.audio_voices = 0;
                else if (!strcmp(v, "seen")) p.audio_voices = 1;
                else if (!strcmp(v, "all")) p.audio_voices = 2;
                else {
                    rc = cmir_app_fail(prog, "-voices takes held_out, seen or all, not '%s'", v);
                    goto end;
                }
            }
            else if (!strcmp(a, "-k"))
                bad = cmir_app_ints(prog, a, v, 1, 1 << 30, CMIR_EVAL_MAX_CUTOFFS, p.cutoffs, &p.n_cutoffs);
            else {
                rc = cmir_app_fail(prog, "unknown option '%s' (see --help)", a);
                rc = 2;
                goto end;
            }
            if (bad) {
                rc = bad;
                goto end;
            }
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            rc = cmir_app_fail(prog, "unexpected argument '%s'", a);
            rc = 2;
            goto end;
        }
    }
    if (unified ? npos != 0 : npos != 2) {
        fputs(usage, stderr);
        rc = 2;
        goto end;
    }
    if ((rc = cmir_app_output(prog, json, overwrite)) || (rc = cmir_app_output(prog, csv, overwrite)) ||
        (rc = cmir_app_output(prog, plot, overwrite)))
        goto end;
    cmir_eval_report r;
    int err = unified ? cmir_eval_unified(unified, p, cmir_app_progress, &quiet, &r)
                      : cmir_eval(pos[0], pos[1], p, cmir_app_progress, &quiet, &r);
    if (!err && json)
        err = cmir_eval_write_json(&r, json);
    if (!err && csv)
        err = cmir_eval_write_csv(&r, csv);
    if (!err && plot)
        err = cmir_eval_write_svg(&r, plot, NULL);
    if (err) {
        rc = cmir_app_fail(prog, "%s", cmir_last_error());
        goto end;
    }
    if (r.n_items_b != r.n_items)
        printf("%lld images, %lld clips; relevance: a shared label\n", (long long)r.n_items, (long long)r.n_items_b);
    else
        printf("%lld items; relevance: same class (multi-label: a shared label)\n", (long long)r.n_items);
    printf("%-14s %7s %7s %7s %7s %8s", "direction", "queries", "mAP", "floor", "ANMRR", "paper");
    for (int i = 0; i < r.n_cutoffs; i++)
        printf(" %6s%-3d", "P@", r.cutoffs[i]);
    for (int i = 0; i < r.n_cutoffs; i++)
        printf(" %6s%-3d", "mAP@", r.cutoffs[i]);
    putchar('\n');
    for (int k = 0; k < 4; k++) {
        const cmir_eval_direction *d = &r.dir[k];
        printf("%-14s %7lld %7.4f", d->name, (long long)d->r.n_queries, d->r.map);
        if (d->has_floor)
            printf(" %7.4f", d->floor.map);
        else
            printf(" %7s", "-");
        printf(" %7.4f %8.4f", d->r.anmrr, d->r.paper_mean);
        for (int i = 0; i < r.n_cutoffs; i++)
            printf(" %9.4f", d->p_at[i]);
        for (int i = 0; i < r.n_cutoffs; i++)
            printf(" %9.4f", d->map_at[i]);
        putchar('\n');
    }
    printf("paper = the CMIR-NET protocol: mean of P@10..P@50 over %d random queries (capped by class sizes "
           "in a small database)\n", p.paper_queries);
    if (r.dir[0].has_floor)
        printf("floor = the training-free floor's mAP on the same tiles (PAN mean and deviation regressed onto MS band\n"
               "means, fitted on %lld %s tiles; features standardised by training statistics)\n",
               (long long)r.floor_fit_tiles, r.floor_in_sample ? "evaluated (in sample: not the training archive)" : "training");
    else
        printf("floor: none defined (%s)\n", unified ? "a unified.mat holds no tiles" : "no training-free map from an image to a clip");
    rc = 0;
end:
    cmir_app_done(argv);
    return rc;
}
