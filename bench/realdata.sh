#!/bin/sh
# Real-imagery benchmark (not a test): CMIR on the real scenes of
# ../shared/realdata (see its SOURCES.md) with few labels, against the
# training-free floors cmir_eval prints beside every direction. Sets:
#   l8  Landsat 8 (PAN B8, MS B2-B5, ratio 2), labels from spectral indices
#       (cmir_synth -indices: water, cloud, NDVI terciles); 4 horizontal strips
#       with 32-pixel guard bands between them, held out by whole strips
#       (-split scene): no test tile shares or touches a training tile's pixels
#   ol  Landsat 7 Olinda by Wald's protocol (ratio 2), labels from indices;
#       strips and guard bands as l8
#   nc  Landsat 7 North Carolina by Wald's protocol with its real land-cover
#       polygons (7 classes; too few labelled pixels for strips: 16-pixel
#       tiles that do not overlap, held out by tile); ncu: the same with the
#       scene's unlabelled tiles kept
# SpaceNet Rotterdam PAN/MS pairs, unlabelled, serve only for stage 0
# (contrastive pretraining, once per set, then -init for every run).
# Every run holds out half the labelled tiles for test and a fifth of the
# rest for validation (epoch choice); budgets are shares of the training
# tiles whose labels are used. Prints mean and spread over SEEDS. Then
# each set as a new user would run it: split by tile, all defaults.
# Usage: sh bench/realdata.sh BUILD_DIR [OUT_DIR]
#   env: SEEDS ("1 2 3"), BUDGETS ("0.1 0.25 1"), EPOCHS1 (20), EPOCHS2 (60),
#        EPOCHS0 (10), THREADS (2), SETS ("l8 ol nc"), PRECISION (fp32:
#        cmir_train -precision), SHARED
set -eu
B=${1:?usage: sh bench/realdata.sh BUILD_DIR [OUT_DIR]}/cmirtools/apps
OUT=${2:-/tmp/cmir_realdata}
SEEDS=${SEEDS:-1 2 3}
PRECISION=${PRECISION:-fp32}
BUDGETS=${BUDGETS:-0.1 0.25 1}
EPOCHS1=${EPOCHS1:-20}
EPOCHS2=${EPOCHS2:-60}
EPOCHS0=${EPOCHS0:-10}
THREADS=${THREADS:-2}
SETS=${SETS:-l8 ol nc}
SHARED=${SHARED:-$(dirname "$0")/../../shared}
R=$SHARED/realdata
mkdir -p "$OUT"
. "$(dirname "$0")/realdata_lib.sh"
stats() { awk '{ for (i = 1; i <= 4; i++) { s[i] += $i; q[i] += $i * $i } n++ }
    END { for (i = 1; i <= 4; i++) { m = s[i] / n; v = q[i] / n - m * m; if (v < 0) v = 0
          printf "  %.3f +- %.3f", m, sqrt(v) } }'; }

echo "== preparing the real sets under $OUT"
t0=$(date +%s)
prepare
for set in $SETS; do
    case $set in
        nc) split="-split tile" pairs=$OUT/sn16.mat ;;
        *) split="-split scene" pairs=$OUT/sn32.mat ;;
    esac
    # stage 0 once per set (seed 1): its CNNs start every pretrained run
    # shellcheck disable=SC2086
    q "$B/cmir_train" -q -threads "$THREADS" -precision "$PRECISION" -seed 1 $split -test_frac 0.5 -pretrain "$pairs" \
        -epochs0 "$EPOCHS0" -epochs1 0 -epochs2 1 "$OUT/$set.mat" "$OUT/${set}_pre.mat"
    echo "== $set: stage 0 done; PAN->MS and MS->PAN mAP on the held-out tiles, mean +- sd over seeds $SEEDS"
    printf '%-6s %-6s %-4s  %-16s  %-16s  %-16s  %-16s\n' set budget pre "PAN->MS" "MS->PAN" "floor PAN->MS" "floor MS->PAN"
    for b in $BUDGETS; do
        for pre in no yes; do
            : >"$OUT/rows"
            for s in $SEEDS; do
                init=""
                [ "$pre" = yes ] && init="-init $OUT/${set}_pre.mat"
                m=$OUT/${set}_b${b}_${pre}_s$s.mat
                # shellcheck disable=SC2086
                q "$B/cmir_train" -q -threads "$THREADS" -precision "$PRECISION" -seed "$s" $split -test_frac 0.5 -valid_frac 0.2 \
                    -label_frac "$b" -epochs1 "$EPOCHS1" -epochs2 "$EPOCHS2" $init "$OUT/$set.mat" "$m"
                r=$(evaluate "$m" "$OUT/$set.mat")
                echo "$r" >>"$OUT/rows"
            done
            printf '%-6s %-6s %-4s%s   (per seed: %s)\n' "$set" "$b" "$pre" "$(stats <"$OUT/rows")" \
                "$(tr '\n' ';' <"$OUT/rows")"
        done
    done
done
# As a new user would (issue 14's protocol): held out by tile, half for
# test, every other setting at its default; ncu is nc with the unlabelled
# tiles of the scene kept (-keep_unlabelled): the same labelled tiles and
# split, and stage 2 also trains on the others' pairs (unlabelled_pairs).
echo "== as a new user: cmir_train -split tile -test_frac 0.5 (defaults), seeds $SEEDS"
printf '%-6s %-16s  %-16s  %-16s  %-16s\n' set "PAN->MS" "MS->PAN" "floor PAN->MS" "floor MS->PAN"
case " $SETS " in *" nc "*) USER_SETS="$SETS ncu" ;; *) USER_SETS=$SETS ;; esac
for set in $USER_SETS; do
    : >"$OUT/rows"
    for s in $SEEDS; do
        m=$OUT/${set}_user_s$s.mat
        q "$B/cmir_train" -q -threads "$THREADS" -precision "$PRECISION" -seed "$s" -split tile -test_frac 0.5 "$OUT/$set.mat" "$m"
        evaluate "$m" "$OUT/$set.mat" >>"$OUT/rows"
    done
    printf '%-6s%s   (per seed: %s)\n' "$set" "$(stats <"$OUT/rows")" "$(tr '\n' ';' <"$OUT/rows")"
done
echo "total $(( $(date +%s) - t0 )) s"
