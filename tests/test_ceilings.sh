#!/bin/sh
# Resource ceilings (issue 18): every program on inputs whose claims exceed
# their content -- archives, models, an index, WAV/FLAC headers, a speech
# manifest, a query list, a giant VRT -- must refuse (non-zero exit) with a
# one-line message, within 512 MB of peak RSS and 10 s, leaving nothing in
# its output folder. Prints the table: case, rc, RSS MB, seconds.
#   test_ceilings.sh BIN_DIR GEN_CLAIMS PLUGIN_DIR SOURCE_ROOT
set -u
BIN=$1
GEN=$2
PLUGIN=$3
T=$(mktemp -d /tmp/cmir_ceilings_XXXXXX)
trap 'rm -rf "$T"' EXIT
export GDAL_DRIVER_PATH="$PLUGIN" HDF5_USE_FILE_LOCKING=FALSE OPENBLAS_NUM_THREADS=1
[ -x /usr/bin/time ] || { echo "FAIL: /usr/bin/time is missing (Debian package 'time')"; exit 1; }
H=$T/hostile
mkdir -p "$H" "$T/out"
if ! "$GEN" hostile "$H" || ! "$GEN" small "$T/small.mat"; then echo "FAIL: gen_claims"; exit 1; fi
# a tiny real model and index, for the cases whose hostile input is elsewhere
if ! "$BIN/cmir_train" -q -threads 1 -epochs1 1 -epochs2 1 "$T/small.mat" "$T/model.mat" >"$T/log" 2>&1 ||
    ! "$BIN/cmir_index" -q -threads 1 -model "$T/model.mat" "$T/small.mat" "$T/index.gpkg" >>"$T/log" 2>&1; then
    cat "$T/log"
    echo "FAIL: cannot make the tiny model and index"
    exit 1
fi
# an index whose metadata claims 2*10^9 rows of 64 floats (512 GB)
cp "$T/index.gpkg" "$H/index_claims.gpkg"
env -u GDAL_DRIVER_PATH ogrinfo -q "$H/index_claims.gpkg" -sql "UPDATE cmir_meta SET value='2000000000' WHERE key='count'" \
    >/dev/null 2>&1 || { echo "FAIL: cannot edit the index copy"; exit 1; }
# speech manifests naming the lying clips; query lists naming a row the index
# does not hold and a 10^6 x 10^6 window of a 64 x 64 raster
printf 'file,label,voice,held_out\nwav_claims_4gb.wav,forest,v1,0\nflac_claims_30s.flac,water,v1,1\n' \
    >"$H/manifest_wav.csv"
printf 'file,label,voice,held_out\nflac_claims_30s.flac,water,v1,0\nwav_claims_4gb.wav,forest,v1,1\n' \
    >"$H/manifest_flac.csv"
printf 'row 3000000000\n' >"$H/queries_row.txt"
printf 'raster %s 0 0 1000000 1000000\n' "$H/src.tif" >"$H/queries_window.txt"
# a VRT claiming 10^6 x 10^6 pixels over a 64 x 64 GeoTIFF
env -u GDAL_DRIVER_PATH gdal_create -q -of GTiff -outsize 64 64 -bands 1 -ot Byte -burn 7 -a_srs EPSG:32650 \
    -a_ullr 500000 4000000 500128 3999872 "$H/src.tif" || { echo "FAIL: gdal_create"; exit 1; }
cat >"$H/giant.vrt" <<EOF
<VRTDataset rasterXSize="1000000" rasterYSize="1000000"><SRS>EPSG:32650</SRS>
<GeoTransform>500000,2,0,4000000,0,-2</GeoTransform>
<VRTRasterBand dataType="Byte" band="1"><NoDataValue>0</NoDataValue><SimpleSource>
<SourceFilename relativeToVRT="0">$H/src.tif</SourceFilename><SourceBand>1</SourceBand>
</SimpleSource></VRTRasterBand></VRTDataset>
EOF

fail=0
printf '%-30s %4s %7s %7s  %s\n' case rc RSS_MB seconds message
# run NAME CMD...: the command must fail with one line, < 512 MB, < 10 s,
# nothing left in $T/out. gdalinfo adds its own "gdalinfo failed" line: for
# it, the one line counted is GDAL's ERROR line.
# In a sanitizer build the plugin needs the ASan runtime loaded first by
# GDAL's own programs (which are not instrumented).
# shellcheck source=tests/sanitizer_env.sh
. "$(dirname "$0")/sanitizer_env.sh"
run() {
    name=$1
    shift
    gdal=no
    [ "$1" != gdalinfo ] || gdal=yes
    if [ "$gdal" = yes ] && [ -n "$asan" ]; then
        set -- env "LD_PRELOAD=$asan${ubsan:+:$ubsan}" ASAN_OPTIONS=detect_leaks=0 "$@"
    fi
    /usr/bin/time -f '%M %e' -o "$T/time" timeout 20 "$@" >"$T/stdout" 2>"$T/stderr"
    rc=$?
    kb=$(cut -d' ' -f1 "$T/time" | tail -1)
    secs=$(cut -d' ' -f2 "$T/time" | tail -1)
    mb=$((kb / 1024))
    case $gdal in
    yes) lines=$(grep -c '^ERROR' "$T/stderr"); msg=$(grep '^ERROR' "$T/stderr" | head -1) ;;
    *) lines=$(grep -c . "$T/stderr"); msg=$(head -1 "$T/stderr") ;;
    esac
    left=$(ls -A "$T/out")
    printf '%-30s %4s %7s %7s  %.110s\n' "$name" "$rc" "$mb" "$secs" "$msg"
    why=""
    [ "$rc" -ne 0 ] || why="$why exit 0;"
    [ "$rc" -ne 124 ] || why="$why killed after 20 s;"
    [ "$lines" -eq 1 ] || why="$why $lines message lines;"
    [ "$mb" -lt 512 ] || why="$why peak RSS $mb MB;"
    awk "BEGIN { exit !($secs < 10) }" || why="$why $secs s;"
    [ -z "$left" ] || why="$why left behind: $left;"
    if [ -n "$why" ]; then
        echo "FAIL: $name:$why"
        cat "$T/stderr"
        fail=1
    fi
    rm -rf "$T/out" && mkdir "$T/out"
}
O=$T/out
run train_archive_1e9_tiles "$BIN/cmir_train" -q -epochs1 1 "$H/archive_1e9.mat" "$O/m.mat"
run train_multilabels_5GB "$BIN/cmir_train" -q -multilabel -epochs1 1 "$H/archive_multilabels.mat" "$O/m.mat"
run train_speech_wav_4GB "$BIN/cmir_train" -q -epochs1 1 -speech "$H/manifest_wav.csv" "$T/small.mat" "$O/m.mat"
run train_speech_flac_30s "$BIN/cmir_train" -q -epochs1 1 -speech "$H/manifest_flac.csv" "$T/small.mat" "$O/m.mat"
run eval_archive_1e9_tiles "$BIN/cmir_eval" -json "$O/e.json" "$T/model.mat" "$H/archive_1e9.mat"
run eval_model_sizes "$BIN/cmir_eval" -json "$O/e.json" "$H/model_sizes.mat" "$T/small.mat"
run eval_model_v73_claims "$BIN/cmir_eval" -json "$O/e.json" "$H/model_v73_claims.mat" "$T/small.mat"
run index_archive_1e9_tiles "$BIN/cmir_index" -q -model "$T/model.mat" "$H/archive_1e9.mat" "$O/i.gpkg"
run index_model_sizes "$BIN/cmir_index" -q -model "$H/model_sizes.mat" "$T/small.mat" "$O/i.gpkg"
run search_index_2e9_rows "$BIN/cmir_search" -q -model "$T/model.mat" -index "$H/index_claims.gpkg" -row 0 "$O/h.geojson"
run search_model_v73_claims "$BIN/cmir_search" -q -model "$H/model_v73_claims.mat" -index "$T/index.gpkg" -row 0 "$O/h.geojson"
run search_queries_row "$BIN/cmir_search" -q -model "$T/model.mat" -index "$T/index.gpkg" -queries "$H/queries_row.txt" "$O/h.geojson"
run search_queries_window "$BIN/cmir_search" -q -model "$T/model.mat" -index "$T/index.gpkg" -queries "$H/queries_window.txt" "$O/h.geojson"
run tile_giant_vrt "$BIN/cmir_tile" -q -pan "$H/giant.vrt" "$O/t.mat"
run search_raster_giant_vrt "$BIN/cmir_search" -q -model "$T/model.mat" -index "$T/index.gpkg" \
    -raster "$H/giant.vrt" "$O/hits.geojson"
run gdalinfo_archive_1e9_tiles gdalinfo "CMIR:\"$H/archive_1e9.mat\""
run gdalinfo_tile_of_1e9 gdalinfo "CMIR:\"$H/archive_1e9.mat\":PAN:5"
run gdalinfo_multilabels_5GB gdalinfo "CMIR:\"$H/archive_multilabels.mat\""
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
