#!/bin/sh
# README command 1: installs what is missing, builds CMIR and runs the main
# job on sample_scenes/: tile -> train (small, fast setting) -> index ->
# cross-modal searches -> metrics, writing everything under cmir-out/.
set -eu
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<USAGE
Usage: python-free-scripts/main-job.sh [--help] [OUTPUT_DIR]
Installs missing Debian packages, builds CMIR in build/, then runs CMIR's main job on
sample_scenes/: cmir_tile (PAN/MS pairs with labels) -> cmir_train (both stages) ->
cmir_index (GeoPackage) -> cmir_search (GeoJSON hits) -> cmir_eval (metrics table).
Results go to OUTPUT_DIR (default cmir-out/ in the repository).
USAGE
}
case ${1:-} in -h | --help) usage; exit 0 ;; esac

cmir_install_deps
cmir_say "cmir: building build/ (Release)"
cmir_build "$CMIR_ROOT/build" -DCMAKE_BUILD_TYPE=Release
BIN="$CMIR_ROOT/build/cmirtools/apps"
SCENES="$CMIR_ROOT/sample_scenes"
OUT=${1:-"$CMIR_ROOT/cmir-out"}
mkdir -p "$OUT"
THREADS=$(nproc 2>/dev/null || echo 2)

set --
for f in "$SCENES"/*_pan.tif; do set -- "$@" -pan "$f"; done
for f in "$SCENES"/*_ms.tif; do set -- "$@" -ms "$f"; done
for f in "$SCENES"/*_class.tif; do set -- "$@" -labels "$f"; done
[ $# -gt 0 ] || cmir_die "no scenes in $SCENES"

echo "== 1. tiling sample_scenes/ into $OUT/archive.mat"
"$BIN/cmir_tile" "$@" -nodata_frac 0.05 "$OUT/archive.mat"
echo "== 2. training CMIR-NET (small, fast setting)"
"$BIN/cmir_train" -threads "$THREADS" -seed 1 -epochs1 12 -dv 64 \
    -features_dir "$OUT" -unified "$OUT/unified.mat" "$OUT/archive.mat" "$OUT/model.mat"
echo "== 3. indexing both modalities into $OUT/index.gpkg"
"$BIN/cmir_index" -threads "$THREADS" -model "$OUT/model.mat" "$OUT/archive.mat" "$OUT/index.gpkg"
echo "== 4. cross-modal searches"
first_pan=$(ls "$SCENES"/*_pan.tif | head -n 1)
"$BIN/cmir_search" -q -model "$OUT/model.mat" -index "$OUT/index.gpkg" -k 5 -row 0 \
    -quicklook "$OUT/quicklook_pan_to_ms.png" "$OUT/hits_pan_to_ms.geojson"
n=$(ogrinfo -ro -so "$OUT/index.gpkg" tiles | sed -n 's/^Feature Count: //p')
"$BIN/cmir_search" -q -model "$OUT/model.mat" -index "$OUT/index.gpkg" -k 5 -row $((n / 2)) \
    "$OUT/hits_ms_to_pan.geojson"
"$BIN/cmir_search" -q -model "$OUT/model.mat" -index "$OUT/index.gpkg" -k 5 \
    -raster "$first_pan" -srcwin 256 256 256 256 "$OUT/hits_raster_window.geojson"
for f in "$OUT"/hits_*.geojson; do
    echo "$(basename "$f"): $(ogrinfo -ro -al -q "$f" | grep -c 'rank (Integer)') hits, top class: \
$(ogrinfo -ro -al -q "$f" | sed -n 's/^  class_name (String) = //p' | head -n 1)"
done
echo "== 5. retrieval metrics on the held-out scene(s)"
"$BIN/cmir_eval" -threads "$THREADS" -json "$OUT/metrics.json" -csv "$OUT/metrics.csv" \
    "$OUT/model.mat" "$OUT/archive.mat"
echo "cmir: main job done; results in $OUT (open the .geojson and index.gpkg in QGIS)"
