/* cmir_train: trains CMIR-NET (both stage-1 extractors and the unified
 * space) on a tile archive and writes the model file; a thin main() over
 * cmir_train(). */
#include "cmir/audio.h"
#include "cmir/dist.h"
#include "cmir/train.h"
#include "cmir_app.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cmir_train [--help] [--version] [-q] [-overwrite] [-threads N] [-seed S]\n"
    "                  [-epochs1 N] [-epochs2 N] [-batch N] [-lr1 X] [-lr2 X]\n"
    "                  [-test_frac F] [-split scene|tile] [-dv 16|32|64|128] [-hidden N]\n"
    "                  [-ortho X] [-dropout X] [-descriptor on|off] [-cnn_weight X]\n"
    "                  [-w_pair X] [-w_class X] [-w_norm X]\n"
    "                  [-w_cross X] [-w_reg X] [-alpha X] [-multilabel] [-no_augment]\n"
    "                  [-features_dir DIR] [-unified FILE.mat] [-stage1_from MODEL.mat]\n"
    "                  [-checkpoint CKPT.mat] [-resume CKPT.mat] [-speech MANIFEST.csv]\n"
    "                  [-valid_frac F] [-label_frac F] [-unlabelled_pairs on|off]\n"
    "                  [-init MODEL.mat]\n"
    "                  [-pretrain PAIRS.mat] [-epochs0 N] [-lr0 X] [-tau X]\n"
    "                  [-precision auto|fp32|bf16]\n"
    "                  ARCHIVE.mat MODEL.mat\n"
    "       cmir_train -features A.mat B.mat [-labels L.mat] [stage-2 options] UNIFIED.mat\n"
    "\n"
    "Trains CMIR-NET on the labelled tiles of ARCHIVE (written by cmir_tile or cmir_synth, or\n"
    "the public DSRSID.mat): one CNN per modality (softmax cross-entropy + orthogonality\n"
    "penalty on the 128-d features), then the unified space of size -dv with the losses\n"
    "L2 (pairing, -w_pair), L3 (classification, -w_class), L4 (code norm, -w_norm),\n"
    "L5 (cross decoders, -w_cross) and R (encoder weights towards -alpha, -w_reg); a weight of\n"
    "0 switches a term off (ablation). The model, with the train/test split, is written to\n"
    "MODEL (MATLAB .mat) atomically. Same seed and thread count give the same model.\n"
    "Stage 1 trains each tile in one of its 8 rotations/flips (-no_augment: as stored) and\n"
    "divides -lr1 by 10 for the last third of -epochs1.\n"
    "  -descriptor on|off the last 7 x bands of each side's 128 features are the tile descriptor\n"
    "                     (per band: mean, deviation, 10/50/90 % quantiles, roughness at 1 and 2\n"
    "                     pixels) instead of CNN units (default on; off: the paper's CNN features)\n"
    "  -cnn_weight X      with the descriptor, the CNN's standardised features are multiplied by\n"
    "                     X (default 0.1, at most 1) before the unified network: with few\n"
    "                     labelled tiles the CNN's 100-odd features would drown the descriptor\n"
    "  -features_dir DIR  also write DIR/features_pan.mat and DIR/features_ms.mat (`features`,\n"
    "                     N x 128) for the paper's step 2 scripts\n"
    "  -unified FILE      also write FILE with featuresx (PAN) and featuresy (MS), N x d_v\n"
    "  -split scene|tile  hold out whole scenes (default, when the archive records them) or tiles\n"
    "  -checkpoint C.mat  save a checkpoint after every stage-1 epoch and every tenth of stage 2\n"
    "  -resume C.mat      continue an interrupted run from its checkpoint (same archive and\n"
    "                     settings): the model is bit-identical to an uninterrupted run\n"
    "  -stage1_from M.mat reuse the stage-1 CNNs of a model trained on the same archive with the\n"
    "                     same split (-seed, -test_frac, -split; another split is refused) and\n"
    "                     train stage 2 only (ablations of the unified losses in seconds)\n"
    "  -valid_frac F      hold out F of the non-test labelled tiles for validation: each stage-1\n"
    "                     CNN keeps the weights of its epoch of lowest validation loss; the tiles\n"
    "                     and epochs are recorded in MODEL (VALID_TILES, TRAIN_SETTINGS)\n"
    "  -label_frac F      use the labels of a seeded share F of the training tiles (label budget)\n"
    "  -unlabelled_pairs on|off  stage 2 also learns from the PAN/MS pairs of ARCHIVE's unlabelled\n"
    "                     tiles (split by scene: of training scenes only) and of the training\n"
    "                     tiles -label_frac leaves out, with every term but L3 (default on)\n"
    "  -init M.mat        start from the CNN weights of model M (same tile sizes and bands); class\n"
    "                     heads of another class count are made afresh\n"
    "  -pretrain P.mat    stage 0: before stage 1, train both CNNs for -epochs0 epochs (default 10)\n"
    "                     on the PAN/MS pairs of archive P (labels not needed, e.g. cmir_tile\n"
    "                     without -labels) so that a tile's PAN and MS features match and differ\n"
    "                     from other tiles' (symmetric InfoNCE, temperature -tau, default 0.1;\n"
    "                     rate -lr0, default 1e-3); P is normalised by its own band statistics\n"
    "  -speech M.csv      the image <-> speech scenario: ARCHIVE's image tiles (multi-label,\n"
    "                     sigmoid loss) against the spoken labels of the corpus manifest M.csv\n"
    "                     (file,label,voice,held_out; see make-speech-corpus.sh), an MLP over\n"
    "                     each clip's 128-d feature (softmax loss); held-out voices are\n"
    "                     never trained on; stage 2 pairs each image with a random clip of each\n"
    "                     of its labels, drawn afresh every epoch\n"
    "  -speech_feature K  (or -audio_feature) the clip feature: sphinx (default: the clip decoded\n"
    "                     by pocketsphinx against a grammar of the manifest's labels, 1 for each\n"
    "                     label on the best path; speaker-independent), segmental (cepstral coefficients\n"
    "                     over 8 spans of the word) or cepstral (pooled over the clip); recorded\n"
    "                     in the model with the vocabulary and the acoustic model's checksum\n"
    "  -dict FILE         sphinx: pronunciations (CMUdict format, e.g. 'aquafarm AE K W AH F\n"
    "                     AA R M') of label words the pocketsphinx dictionary lacks\n"
    "  -feature_noise S   stage 1 of the speech branch adds Gaussian noise of deviation S\n"
    "                     (default 0.5) to the normalised clip features, its augmentation\n"
    "Started by mpirun or srun (a build with MPI), the ranks train data-parallel: each reads its\n"
    "share of every batch; same model as one process up to rounding; rank 0 writes.\n"
    "  -precision P       auto (default), fp32 or bf16. bf16: conv and dense layers with bfloat16\n"
    "                     operands, float32 accumulation and weights (CPUs with AVX512_BF16;\n"
    "                     float32 elsewhere); auto: bf16 for PAN/MS archives where every\n"
    "                     process's CPU has AVX512_BF16 (CMIR_NO_BF16=1 says it has not),\n"
    "                     else fp32 (image-speech: fp32); the model records what ran\n"
    "With -features, runs only the paper's step 2 on anyone's features: A.mat and B.mat hold\n"
    "`features` (N x D, rows paired), labels come from `labels` in L.mat (or A.mat): class\n"
    "numbers 1..C (or, with -multilabel, N x C flags). Writes UNIFIED.mat with featuresx,\n"
    "featuresy (N x d_v), labels and the unified network's weights.\n"
    "Existing outputs (MODEL, UNIFIED, -unified, the -features_dir files, a -checkpoint other\n"
    "than the -resume file) are refused unless -overwrite is given.\n";

static const char prog[] = "cmir_train";

/* The files the run would write: refused when they exist, unless
 * overwrite (a checkpoint that is also the -resume file is continued). */
static int outputs_free(const cmir_train_params *p, const char *out, int overwrite)
{
    char path[4096];
    const char *const feat[2] = {"features_pan.mat", "features_ms.mat"};
    if (cmir_app_output(prog, out, overwrite) || cmir_app_output(prog, p->unified_path, overwrite))
        return 1;
    if (p->checkpoint && !(p->resume && !strcmp(p->resume, p->checkpoint)) &&
        cmir_app_output(prog, p->checkpoint, overwrite))
        return 1;
    for (int k = 0; p->features_dir && k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", p->features_dir, feat[k]);
        if (cmir_app_output(prog, path, overwrite))
            return 1;
    }
    return 0;
}

/* One option with its value into p (or *labels): 0, or the exit status
 * after a one-line message naming the option. */
static int value_option(const char *a, const char *v, cmir_train_params *p, const char **labels)
{
    if (!strcmp(a, "-threads")) return cmir_app_int(prog, a, v, 0, 1024, &p->threads);
    else if (!strcmp(a, "-seed")) return cmir_app_u64(prog, a, v, &p->seed);
    else if (!strcmp(a, "-epochs1")) return cmir_app_int(prog, a, v, 0, 1000000, &p->epochs1);
    else if (!strcmp(a, "-epochs2")) return cmir_app_int(prog, a, v, 0, 1000000, &p->epochs2);
    else if (!strcmp(a, "-batch")) return cmir_app_int(prog, a, v, 1, 1 << 20, &p->batch);
    else if (!strcmp(a, "-lr1")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->lr1);
    else if (!strcmp(a, "-lr2")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->lr2);
    else if (!strcmp(a, "-test_frac")) return cmir_app_double(prog, a, v, 0, 1, &p->test_frac);
    else if (!strcmp(a, "-split")) {
        if (strcmp(v, "scene") && strcmp(v, "tile")) {
            return cmir_app_fail(prog, "-split takes scene or tile, not '%s'", v);
        }
        p->split_by_scene = !strcmp(v, "scene");
    } else if (!strcmp(a, "-dv")) return cmir_app_int(prog, a, v, 1, 1 << 16, &p->unified.d_v);
    else if (!strcmp(a, "-hidden")) return cmir_app_int(prog, a, v, 0, 1 << 16, &p->unified.hidden);
    else if (!strcmp(a, "-ortho")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->ortho);
    else if (!strcmp(a, "-dropout")) return cmir_app_float(prog, a, v, 0, 1, &p->dropout);
    else if (!strcmp(a, "-descriptor")) {
        if (strcmp(v, "on") && strcmp(v, "off"))
            return cmir_app_fail(prog, "-descriptor takes on or off, not '%s'", v);
        p->descriptor = !strcmp(v, "on");
    }
    else if (!strcmp(a, "-unlabelled_pairs")) {
        if (strcmp(v, "on") && strcmp(v, "off"))
            return cmir_app_fail(prog, "-unlabelled_pairs takes on or off, not '%s'", v);
        p->unlabelled_pairs = !strcmp(v, "on");
    }
    else if (!strcmp(a, "-cnn_weight")) return cmir_app_float(prog, a, v, 1e-6, 1, &p->cnn_weight);
    else if (!strcmp(a, "-w_pair")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->unified.w_pair);
    else if (!strcmp(a, "-w_class")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->unified.w_class);
    else if (!strcmp(a, "-w_norm")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->unified.w_norm);
    else if (!strcmp(a, "-w_cross")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->unified.w_cross);
    else if (!strcmp(a, "-w_reg")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->unified.w_reg);
    else if (!strcmp(a, "-alpha")) return cmir_app_float(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->unified.alpha);
    else if (!strcmp(a, "-features_dir")) p->features_dir = v;
    else if (!strcmp(a, "-unified")) p->unified_path = v;
    else if (!strcmp(a, "-labels")) *labels = v;
    else if (!strcmp(a, "-stage1_from")) p->stage1_from = v;
    else if (!strcmp(a, "-valid_frac")) return cmir_app_double(prog, a, v, 0, 1, &p->valid_frac);
    else if (!strcmp(a, "-label_frac")) return cmir_app_double(prog, a, v, 0, 1, &p->label_frac);
    else if (!strcmp(a, "-init")) p->init_model = v;
    else if (!strcmp(a, "-pretrain")) p->pretrain = v;
    else if (!strcmp(a, "-epochs0")) return cmir_app_int(prog, a, v, 0, 1000000, &p->epochs0);
    else if (!strcmp(a, "-lr0")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->lr0);
    else if (!strcmp(a, "-tau")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->tau);
    else if (!strcmp(a, "-precision")) {
        cmir_precision pr;
        if (cmir_precision_parse(v, &pr)) {
            return cmir_app_fail(prog, "-precision: %s", cmir_last_error());
        }
        p->precision = (int)pr;
    }
    else if (!strcmp(a, "-checkpoint")) p->checkpoint = v;
    else if (!strcmp(a, "-resume")) p->resume = v;
    else if (!strcmp(a, "-speech")) p->speech_manifest = v;
    else if (!strcmp(a, "-feature_noise")) return cmir_app_float(prog, a, v, 0, HUGE_VAL, &p->feature_noise);
    else if (!strcmp(a, "-dict")) p->speech_dict = v;
    else if (!strcmp(a, "-audio_feature") || !strcmp(a, "-speech_feature")) {
        if (!strcmp(v, "segmental")) p->audio_feature = CMIR_AUDIO_FEATURE_SEGMENTAL;
        else if (!strcmp(v, "cepstral")) p->audio_feature = CMIR_AUDIO_FEATURE_CEPSTRAL;
        else if (!strcmp(v, "sphinx")) p->audio_feature = CMIR_AUDIO_FEATURE_SPHINX;
        else {
            return cmir_app_fail(prog, "%s takes sphinx, segmental or cepstral, not '%s'", a, v);
        }
    }
    else {
        cmir_app_fail(prog, "unknown option '%s' (see --help)", a);
        return 2;
    }
    return 0;
}

/* Stage 2 alone on given features (-features PAN.mat MS.mat) into out. */
static int run_unified(const char *const feat[2], const char *labels, const char *out, cmir_train_params p,
                       int overwrite, int *quiet)
{
    cmir_train_report r;
    if (outputs_free(&p, out, overwrite))
        return 1;
    if (cmir_train_unified(feat[0], feat[1], labels, out, p, cmir_app_progress_lines, quiet, &r))
        return cmir_app_fail(prog, "%s", cmir_last_error());
    if (!*quiet)
        printf("%s: unified space trained on %lld pairs in %.1f s\n", out, (long long)r.n_train, r.seconds);
    return 0;
}

/* The whole training of pos[0] (archive) into pos[1] (model). */
static int run_train(const char *const pos[2], cmir_train_params p, int overwrite, int *quiet)
{
    cmir_train_report r;
    if (outputs_free(&p, pos[1], overwrite))
        return 1;
    if (cmir_train(pos[0], pos[1], p, cmir_app_progress_lines, quiet, &r)) {
        /* under MPI the failing rank says why itself (its message names it):
         * it leaves without MPI_Finalize and the launcher ends the others */
        if (cmir_dist_rank() > 0) {
            fprintf(stderr, "%s: %s\n", prog, cmir_last_error());
            return 1;
        }
        return cmir_app_fail(prog, "%s", cmir_last_error());
    }
    if (*quiet)
        return 0;
    printf("%s: trained on %lld tiles (%lld held out) in %.1f s; stage 1 %.1f %s / %.1f %s items/s, "
           "stage 2 %.0f samples/s\n",
           pos[1], (long long)r.n_train, (long long)r.n_test, r.seconds, r.stage1_images_per_s[0],
           p.speech_manifest ? "image" : "PAN", r.stage1_images_per_s[1], p.speech_manifest ? "clip" : "MS",
           r.stage2_samples_per_s);
    if (r.n_valid)
        printf("%s: %lld validation tiles chose stage-1 epoch %d (PAN, loss %.4f) and %d (MS, loss %.4f)\n", pos[1],
               (long long)r.n_valid, r.valid_epoch[0], (double)r.valid_loss[0], r.valid_epoch[1],
               (double)r.valid_loss[1]);
    if (p.pretrain)
        printf("%s: stage 0 InfoNCE %.4f at %.1f pairs/s\n", pos[1], (double)r.stage0_loss, r.stage0_pairs_per_s);
    return 0;
}

/* A failed rank leaves without MPI_Finalize, so that the launcher ends the
 * ranks still waiting for it in a collective. */
static void leave(int rc)
{
    if (!rc || cmir_dist_size() == 1)
        cmir_dist_finalize();
    else
        cmir_dist_ending(); /* a failure it said itself, not a death */
}

int main(int argc, char **argv)
{
    /* under mpirun/srun: data-parallel training, rank 0 speaks and writes */
    if (cmir_dist_init(&argc, &argv) || cmir_dist_watch(prog))
        return cmir_app_fail(prog, "%s", cmir_last_error());
    int done, rc = cmir_app_init(prog, usage, &argc, &argv, &done);
    if (done) {
        leave(rc);
        return rc;
    }
    cmir_train_params p = cmir_train_default_params();
    const char *pos[2] = {NULL, NULL}, *feat[2] = {NULL, NULL}, *labels = NULL;
    int npos = 0, quiet = cmir_dist_rank() != 0;
    cmir_app_common c = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-q") || !strcmp(a, "-quiet")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "-multilabel")) {
            p.unified.multilabel = 1;
            continue;
        }
        if (!strcmp(a, "-no_augment")) {
            p.augment = 0;
            continue;
        }
        if (cmir_app_common_option(prog, argc, argv, &i, &c)) /* -overwrite */
            continue;
        if (!strcmp(a, "-features")) {
            if (i + 2 >= argc) {
                rc = cmir_app_fail(prog, "-features needs two files");
                goto end;
            }
            feat[0] = argv[++i];
            feat[1] = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) {
            if (i + 1 >= argc) {
                rc = cmir_app_fail(prog, "option %s needs a value", a);
                goto end;
            }
            const char *v = argv[++i];
            int bad = value_option(a, v, &p, &labels);
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
    if (feat[0] && cmir_dist_size() > 1) {
        rc = cmir_app_fail(prog, "-features trains in one process: run it without mpirun");
        goto end;
    }
    if (npos != (feat[0] ? 1 : 2)) {
        fputs(usage, stderr);
        rc = 2;
        goto end;
    }
    rc = feat[0] ? run_unified(feat, labels, pos[0], p, c.overwrite, &quiet) : run_train(pos, p, c.overwrite, &quiet);
    goto end;
end:
    cmir_app_done(argv);
    leave(rc);
    return rc;
}
