#!/bin/sh
# Batch workflow over a directory of scene pairs: tile each pair, index the
# parts in parallel shards (xargs -P), merge the shards, and search a list
# of queries; every step is a CMIR program, so it scales out the same way
# on a cluster (one shard per array job, then cmir_index -merge).
set -eu
usage() {
    cat <<USAGE
Usage: python-free-scripts/batch-workflow.sh SCENE_DIR MODEL.mat OUTDIR [JOBS] [QUERIES.txt]
SCENE_DIR holds NAME_pan.tif + NAME_ms.tif (+ optional NAME_class.tif) pairs, in any
format GDAL reads (rename or use VRTs). Each pair is tiled into OUTDIR/parts/NAME.mat and
indexed into OUTDIR/shards/NAME.gpkg, JOBS at a time (default: number of CPUs); the
shards are merged into OUTDIR/index.gpkg; then the queries of QUERIES.txt (cmir_search
-queries format: 'row N' or 'raster FILE [X Y W H]' per line; default: 'row 0') are run
into OUTDIR/hits.geojson.
USAGE
}
case ${1:-} in -h | --help) usage; exit 0 ;; esac
[ $# -ge 3 ] || { usage >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${CMIR_BIN:-$ROOT/build/cmirtools/apps}
scenes=$1
model=$2
out=$3
jobs=${4:-$(nproc 2>/dev/null || echo 2)}
queries=${5:-}
mkdir -p "$out/parts" "$out/shards"
export BIN out model
# The pairs, by prefix SCENE_DIR/NAME: a glob, never parsed text, so that
# any character of a name (space, quote, $, backtick, |, &) is only data.
n=0
: >"$out/pairs.txt"
for f in "$scenes"/*_pan.tif; do
    [ -e "$f" ] || continue
    name=${f##*/}
    printf '%s\n' "${name%_pan.tif}" >>"$out/pairs.txt"
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "batch-workflow: no *_pan.tif in $scenes" >&2; exit 1; }
echo "== tiling and indexing $n pairs, $jobs at a time"
# One pair per sh: its prefix is the positional parameter $1, never pasted
# into the script's source.
# shellcheck disable=SC2016 # expanded by the inner sh
tile_and_index='
    p=$1
    name=${p##*/}
    set -- -pan "${p}_pan.tif" -ms "${p}_ms.tif"
    if [ -f "${p}_class.tif" ]; then set -- "$@" -labels "${p}_class.tif"; fi
    "$BIN/cmir_tile" -q "$@" -keep_unlabelled -overwrite "$out/parts/$name.mat" &&
        "$BIN/cmir_index" -q -threads 1 -overwrite -model "$model" "$out/parts/$name.mat" "$out/shards/$name.gpkg"'
for f in "$scenes"/*_pan.tif; do
    [ -e "$f" ] || continue
    printf '%s\0' "${f%_pan.tif}"
done | xargs -0 -n 1 -P "$jobs" sh -c "$tile_and_index" sh
echo "== merging shards into $out/index.gpkg"
"$BIN/cmir_index" -q -overwrite -merge "$out"/shards/*.gpkg "$out/index.gpkg"
if [ -z "$queries" ]; then
    queries=$out/queries.txt
    echo "row 0" >"$queries"
fi
echo "== searching ($queries)"
"$BIN/cmir_search" -q -overwrite -model "$model" -index "$out/index.gpkg" -queries "$queries" "$out/hits.geojson"
echo "batch-workflow: $(ogrinfo -ro -so "$out/index.gpkg" tiles | sed -n 's/^Feature Count: //p') tiles indexed; hits in $out/hits.geojson"
