#!/bin/sh
# The main job in the test suite, at a reduced size: the pipeline on
# sample_scenes/ with one stage-1 epoch, then checks of what it wrote with
# GDAL's own tools (ogrinfo reads the index and the GeoJSON hits; the hits
# are lon/lat; the metrics files exist and hold four directions).
set -eu
BIN=$1
ROOT=$2
OUT=$(mktemp -d /tmp/cmir_pipeline_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
EPOCHS1=1 EPOCHS2=40 THREADS=2 sh "$ROOT/python-free-scripts/pipeline.sh" "$BIN" "$ROOT/sample_scenes" "$OUT" >"$OUT/log" 2>&1 ||
    { cat "$OUT/log"; echo "FAIL: the pipeline failed"; exit 1; }
fail=0
check() { if ! eval "$1"; then echo "FAIL: $1"; fail=1; else echo "ok   $1"; fi; }
n=$(ogrinfo -ro -so "$OUT/index.gpkg" tiles | sed -n 's/^Feature Count: //p')
check "[ '$n' -ge 100 ]"
for f in hits_pan_to_ms hits_ms_to_pan hits_raster_window; do
    check "[ \$(ogrinfo -ro -al -q '$OUT/$f.geojson' | grep -c 'rank (Integer)') -eq 5 ]"
done
# every coordinate of the GeoJSON is lon/lat: a number pair in range (the synthetic scenes lie near 116E 35N)
check "ogrinfo -ro -al -q '$OUT/hits_pan_to_ms.geojson' | grep -q 'POLYGON ((116\.'"
check "grep -q '\"bbox\"' '$OUT/hits_pan_to_ms.geojson'"
check "[ -s '$OUT/quicklook_pan_to_ms.png' ] && gdalinfo '$OUT/quicklook_pan_to_ms.png' | grep -q 'Driver: PNG'"
check "[ \$(grep -c 'PAN->MS\|MS->PAN\|PAN->PAN\|MS->MS' '$OUT/metrics.csv') -ge 4 ]"
check "grep -q 'cmir: main job done' '$OUT/log'"
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else cat "$OUT/log"; echo "0 passed, 1 failed"; exit 1; fi
