#!/bin/sh
# CMIR's main job as a pipeline over any directory of NAME_pan.tif /
# NAME_ms.tif / NAME_class.tif scenes: tile -> train -> index -> search ->
# metrics. main-job.sh runs it on sample_scenes/; the test suite runs it at
# a reduced size (EPOCHS1 in the environment). A rerun replaces the previous
# results in OUTPUT_DIR (-overwrite: the programs refuse existing outputs).
set -eu
case ${1:-} in -h | --help | "")
    echo "Usage: python-free-scripts/pipeline.sh BIN_DIR SCENE_DIR OUTPUT_DIR   (env: EPOCHS1, EPOCHS2, THREADS)"
    [ -n "${1:-}" ] && exit 0 || exit 2 ;;
esac
BIN=$1
SCENES=$2
OUT=$3
cmir_die() { printf 'cmir: %s\n' "$*" >&2; exit 1; }
mkdir -p "$OUT"
THREADS=${THREADS:-$(nproc 2>/dev/null || echo 2)}

# An unmatched glob stays literal: each loop skips what does not exist.
set --
first_pan=""
for f in "$SCENES"/*_pan.tif; do
    [ -e "$f" ] || continue
    set -- "$@" -pan "$f"
    [ -n "$first_pan" ] || first_pan=$f
done
[ $# -gt 0 ] || cmir_die "no scenes (*_pan.tif) in $SCENES"
for f in "$SCENES"/*_ms.tif; do [ -e "$f" ] || continue; set -- "$@" -ms "$f"; done
for f in "$SCENES"/*_class.tif; do [ -e "$f" ] || continue; set -- "$@" -labels "$f"; done

echo "== 1. tiling $SCENES into $OUT/archive.mat"
"$BIN/cmir_tile" -overwrite "$@" -nodata_frac 0.05 "$OUT/archive.mat"
echo "== 2. training CMIR-NET (small, fast setting)"
"$BIN/cmir_train" -overwrite -threads "$THREADS" -seed 1 -epochs1 "${EPOCHS1:-30}" -epochs2 "${EPOCHS2:-0}" -dv 64 \
    -features_dir "$OUT" -unified "$OUT/unified.mat" "$OUT/archive.mat" "$OUT/model.mat"
echo "== 3. indexing both modalities into $OUT/index.gpkg"
"$BIN/cmir_index" -overwrite -threads "$THREADS" -model "$OUT/model.mat" "$OUT/archive.mat" "$OUT/index.gpkg"
echo "== 4. cross-modal searches"
"$BIN/cmir_search" -q -overwrite -model "$OUT/model.mat" -index "$OUT/index.gpkg" -k 5 -row 0 \
    -quicklook "$OUT/quicklook_pan_to_ms.png" "$OUT/hits_pan_to_ms.geojson"
n=$(ogrinfo -ro -so "$OUT/index.gpkg" tiles | sed -n 's/^Feature Count: //p')
"$BIN/cmir_search" -q -overwrite -model "$OUT/model.mat" -index "$OUT/index.gpkg" -k 5 -row $((n / 2)) \
    "$OUT/hits_ms_to_pan.geojson"
"$BIN/cmir_search" -q -overwrite -model "$OUT/model.mat" -index "$OUT/index.gpkg" -k 5 \
    -raster "$first_pan" -srcwin 256 256 256 256 "$OUT/hits_raster_window.geojson"
for f in "$OUT"/hits_*.geojson; do
    echo "$(basename "$f"): $(ogrinfo -ro -al -q "$f" | grep -c 'rank (Integer)') hits, top class: \
$(ogrinfo -ro -al -q "$f" | sed -n 's/^  class_name (String) = //p' | head -n 1)"
done
echo "== 5. retrieval metrics on the held-out scene(s)"
"$BIN/cmir_eval" -overwrite -threads "$THREADS" -json "$OUT/metrics.json" -csv "$OUT/metrics.csv" \
    "$OUT/model.mat" "$OUT/archive.mat"
echo "cmir: main job done; results in $OUT (open the .geojson and index.gpkg in QGIS)"
