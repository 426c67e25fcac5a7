#!/bin/sh
# shellcheck disable=SC2086,SC2046,SC2015 # ok and ko return 0; option lists ($S, $TR, $B, $W, a window) are split on purpose
# GDAL's command-line manners on a small real run (synth -> tile -> train ->
# index -> search -> eval): every output kind refused when it exists unless
# -overwrite (appends still append), no progress-bar fragments in a pipe,
# GDAL's own reasons in open errors, -spat = -bbox, -t_srs = ogr2ogr -t_srs,
# -oo reaching GDAL, and MS tiles of the plugin with their scene's colour
# interpretation and their own MS file as SCENE (gdalinfo -json).
# Usage: test_gdal_manners.sh BIN_DIR PLUGIN_DIR
set -u
BIN=$1
GDAL_DRIVER_PATH=$2
export GDAL_DRIVER_PATH
# shellcheck source=tests/sanitizer_env.sh
. "$(dirname "$0")/sanitizer_env.sh"
# GDAL's programs load the plugin: in a sanitizer build, with the runtimes
for p in gdalinfo ogrinfo ogr2ogr gdal_translate gdalsrsinfo gdallocationinfo gdal_create; do
    eval "$p() { gdal_env $p \"\$@\"; }"
done
T=$(mktemp -d /tmp/cmir_manners_XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }

# ---- fixture
mkdir s
if ! { "$BIN/cmir_synth" -q -n 2 -size 512 -seed 3 -o s &&
    "$BIN/cmir_tile" -q -ts 64 -pan s/scene_000_pan.tif -ms s/scene_000_ms.tif -labels s/scene_000_class.tif \
        -pan s/scene_001_pan.tif -ms s/scene_001_ms.tif -labels s/scene_001_class.tif a.mat &&
    "$BIN/cmir_tile" -q -ts 64 -pan s/scene_001_pan.tif -ms s/scene_001_ms.tif -labels s/scene_001_class.tif b.mat &&
    "$BIN/cmir_train" -q -threads 2 -epochs1 1 -epochs2 2 a.mat m.mat &&
    "$BIN/cmir_index" -q -model m.mat a.mat i.gpkg; } >fixture.log 2>&1; then
    cat fixture.log
    echo "FAIL: fixture"
    exit 1
fi

# ---- 1. existing outputs: refused (one line naming the file, the file
# untouched) unless -overwrite
# refuses FILE CMD...: CMD must fail in one line naming FILE, FILE unchanged
refuses() {
    f=$1
    shift
    cp "$f" before 2>/dev/null || { ko "refuses: $f does not exist before the run"; return; }
    "$@" >out 2>err
    rc=$?
    if [ "$rc" -ne 0 ] && [ "$(wc -l <err)" -eq 1 ] && grep -qF "$f: already exists (use -overwrite" err &&
        cmp -s before "$f"; then
        ok "refused: $(cat err)"
    else
        ko "$*: exit $rc, stderr '$(cat err)', $f $(cmp -s before "$f" && echo unchanged || echo changed)"
    fi
}
# works CMD...: CMD succeeds
works() {
    if "$@" >out 2>err; then ok "$*"; else ko "$* failed: $(cat err)"; fi
}

refuses s/scene_000_pan.tif "$BIN/cmir_synth" -q -n 1 -size 128 -seed 3 -o s
refuses s/scene_001_pan.tif "$BIN/cmir_synth" -q -n 1 -first 1 -size 128 -seed 3 -o s
"$BIN/cmir_synth" -q -rgb -n 1 -size 128 -o s >/dev/null 2>&1 || ko "rgb fixture"
refuses s/rgb_000_rgb.tif "$BIN/cmir_synth" -q -rgb -n 1 -size 128 -o s
"$BIN/cmir_synth" -q -wald s/scene_000_ms.tif -o s >/dev/null 2>&1 || ko "wald fixture"
refuses s/wald_pan.tif "$BIN/cmir_synth" -q -wald s/scene_000_ms.tif -o s
works "$BIN/cmir_synth" -q -overwrite -wald s/scene_000_ms.tif -o s
"$BIN/cmir_synth" -q -indices s/scene_000_ms.tif -o s >/dev/null 2>&1 || ko "indices fixture"
refuses s/indices_class.tif "$BIN/cmir_synth" -q -indices s/scene_000_ms.tif -o s
works "$BIN/cmir_synth" -q -overwrite -indices s/scene_000_ms.tif -o s

refuses b.mat "$BIN/cmir_tile" -q -ts 64 -pan s/scene_000_pan.tif -ms s/scene_000_ms.tif b.mat
tiles() { GDAL_DRIVER_PATH=$GDAL_DRIVER_PATH gdalinfo "CMIR:\"$1\"" 2>/dev/null | sed -n 's/^ *N_TILES=//p'; }
n0=$(tiles b.mat)
works "$BIN/cmir_tile" -q -append -ts 64 -pan s/scene_000_pan.tif -ms s/scene_000_ms.tif -labels s/scene_000_class.tif b.mat
n1=$(tiles b.mat)
if [ -n "$n0" ] && [ -n "$n1" ] && [ "$n1" -gt "$n0" ]; then ok "-append still appends ($n0 -> $n1 tiles)"; else ko "-append: $n0 -> $n1 tiles"; fi
works "$BIN/cmir_tile" -q -overwrite -ts 64 -pan s/scene_001_pan.tif -ms s/scene_001_ms.tif b.mat
[ "$(tiles b.mat)" = "$n0" ] && ok "-overwrite replaced the archive" || ko "-overwrite: $(tiles b.mat) tiles, want $n0"

TR="-q -threads 2 -epochs1 1 -epochs2 1"
{
    refuses m.mat "$BIN/cmir_train" $TR a.mat m.mat
    cp m.mat u.mat
    refuses u.mat "$BIN/cmir_train" $TR -unified u.mat a.mat m_new.mat
    mkdir -p fd && cp m.mat fd/features_ms.mat
    refuses fd/features_ms.mat "$BIN/cmir_train" $TR -features_dir fd a.mat m_new.mat
    cp m.mat ck.mat
    refuses ck.mat "$BIN/cmir_train" $TR -checkpoint ck.mat a.mat m_new.mat
    [ ! -e m_new.mat ] && ok "no model written by the refused runs" || ko "a refused run wrote m_new.mat"
    rm -f fd/features_ms.mat
    works "$BIN/cmir_train" $TR -features_dir fd a.mat m2.mat
    refuses m.mat "$BIN/cmir_train" $TR -features fd/features_pan.mat fd/features_ms.mat m.mat
    works "$BIN/cmir_train" $TR -overwrite -features_dir fd -unified u.mat -checkpoint ck.mat a.mat m2.mat
}

refuses i.gpkg "$BIN/cmir_index" -q -model m.mat a.mat i.gpkg
works "$BIN/cmir_index" -q -model m.mat b.mat ib.gpkg
rows() { ogrinfo -ro -so "$1" tiles 2>/dev/null | sed -n 's/^Feature Count: //p'; }
r0=$(rows ib.gpkg)
works "$BIN/cmir_index" -q -append -model m.mat a.mat ib.gpkg
r1=$(rows ib.gpkg)
if [ -n "$r0" ] && [ -n "$r1" ] && [ "$r1" -gt "$r0" ]; then ok "index -append still appends ($r0 -> $r1 rows)"; else ko "index -append: $r0 -> $r1 rows"; fi
refuses ib.gpkg "$BIN/cmir_index" -q -merge i.gpkg ib.gpkg
works "$BIN/cmir_index" -q -overwrite -merge i.gpkg i.gpkg ib.gpkg

S="-q -model m.mat -index i.gpkg -k 20 -row 0"
{
    works "$BIN/cmir_search" $S -quicklook q.png h.geojson
    refuses h.geojson "$BIN/cmir_search" $S h.geojson
    refuses q.png "$BIN/cmir_search" $S -quicklook q.png h_new.geojson
    [ ! -e h_new.geojson ] && ok "no hits written by the refused run" || ko "a refused run wrote h_new.geojson"
    works "$BIN/cmir_search" $S -of GPKG h.gpkg
    refuses h.gpkg "$BIN/cmir_search" $S -of GPKG h.gpkg
    works "$BIN/cmir_search" $S -overwrite -quicklook q.png h.geojson
}

works "$BIN/cmir_eval" -json e.json -csv e.csv -plot pr.svg m.mat a.mat
refuses pr.svg "$BIN/cmir_eval" -plot pr.svg m.mat a.mat
refuses e.json "$BIN/cmir_eval" -json e.json m.mat a.mat
refuses e.csv "$BIN/cmir_eval" -csv e.csv m.mat a.mat
works "$BIN/cmir_eval" -overwrite -json e.json -csv e.csv -plot pr.svg m.mat a.mat

# ---- 2. progress in a pipe: whole lines only, never bar fragments
"$BIN/cmir_train" -threads 2 -epochs1 3 -epochs2 2 -overwrite a.mat m3.mat 2>&1 | cat >train.log
"$BIN/cmir_index" -overwrite -model m.mat a.mat i3.gpkg 2>&1 | cat >index.log
"$BIN/cmir_tile" -overwrite -ts 64 -pan s/scene_000_pan.tif -ms s/scene_000_ms.tif a3.mat 2>&1 | cat >tile.log
for f in train.log index.log tile.log; do
    if grep -q -e '\.\.\.' -e '^[0-9. -]*$' -e 'done\.' "$f" || [ ! -s "$f" ]; then
        ko "$f: bar fragments or blank lines in a pipe:"
        sed 's/^/    /' "$f"
    else
        ok "$f: $(wc -l <"$f") whole lines in a pipe, no bar"
    fi
done
if [ "$(grep -c '^stage 1 PAN epoch' train.log)" -eq 3 ] && [ "$(grep -c '^stage 2 epoch' train.log)" -eq 2 ]; then
    ok "one line per epoch"
else
    ko "epoch lines: $(cat train.log)"
fi
# on a terminal the bar is there (util-linux script gives a pseudo-terminal)
if command -v script >/dev/null 2>&1; then
    script -qec "'$BIN/cmir_index' -overwrite -model m.mat a.mat i4.gpkg" /dev/null </dev/null >tty.log 2>&1
    if grep -q '0\.\.\.10\.\.\.20' tty.log; then ok "on a terminal the bar is shown"; else ko "no bar on a terminal: $(cat tty.log)"; fi
else
    echo "note: no 'script' program: the terminal case is not checked"
fi

# ---- 3. messages: GDAL's reason, one line, the program's name once
echo "just text" >text.tif
msg() { # msg WANT CMD...: fails in one line containing WANT, the name not doubled
    want=$1
    shift
    "$@" >out 2>err
    rc=$?
    p=${1##*/}
    if [ "$rc" -ne 0 ] && [ "$(wc -l <err)" -eq 1 ] && grep -qF -- "$want" err && ! grep -q "^$p: $p:" err; then
        ok "$(cat err)"
    else
        ko "$*: exit $rc, want one line with '$want', got: $(cat err)"
    fi
}
msg "missing.tif: No such file or directory" "$BIN/cmir_tile" -q -pan missing.tif x.mat
msg "not recognized as a supported file format" "$BIN/cmir_tile" -q -pan text.tif x.mat
msg "missing.tif: No such file or directory" "$BIN/cmir_search" -q -model m.mat -index i.gpkg -raster missing.tif x.geojson
msg "not recognized as a supported file format" "$BIN/cmir_search" -q -model m.mat -index i.gpkg -raster text.tif x.geojson
msg "cannot open the index (missing.gpkg: No such file or directory)" \
    "$BIN/cmir_search" -q -model m.mat -index missing.gpkg -row 0 x.geojson
msg "cannot open the index (\`text.tif' not recognized" "$BIN/cmir_search" -q -model m.mat -index text.tif -row 0 x.geojson
msg "missing.tif: No such file or directory" "$BIN/cmir_synth" -q -wald missing.tif -o s -prefix nothing
msg "-k: 0 is out of range (1..100000)" "$BIN/cmir_search" -k 0 x.geojson
msg "filter.spat: want xmin ymin xmax ymax" "$BIN/cmir_search" $S -spat 1 0 0 1 x.geojson
: >empty.txt
msg "empty.txt: no queries in the list" "$BIN/cmir_search" -q -model m.mat -index i.gpkg -queries empty.txt x.geojson

# ---- 4. -spat beside -bbox
B="116.12 35.23 116.135 35.236"
{
    works "$BIN/cmir_search" $S -k 200 -bbox $B hb.geojson
    works "$BIN/cmir_search" $S -k 200 -spat $B hs.geojson
    works "$BIN/cmir_search" $S -k 200 hall.geojson
    "$BIN/cmir_index" -q -model m.mat -t_srs EPSG:32650 a.mat iu.gpkg || ko "UTM index"
    works "$BIN/cmir_search" -q -model m.mat -index iu.gpkg -k 20 -row 0 -bbox $B hub.geojson
    works "$BIN/cmir_search" -q -model m.mat -index iu.gpkg -k 20 -row 0 -spat $B -spat_srs EPSG:4326 hus.geojson
}
nb=$(ogrinfo -ro -al -q hb.geojson | grep -c 'rank (Integer)')
nall=$(ogrinfo -ro -al -q hall.geojson | grep -c 'rank (Integer)')
if cmp -s hb.geojson hs.geojson && [ "$nb" -gt 0 ] && [ "$nb" -lt "$nall" ]; then
    ok "-spat = -bbox in the index CRS ($nb of $nall hits kept)"
else
    ko "-spat and -bbox differ, or the box keeps $nb of $nall hits"
fi
if cmp -s hub.geojson hus.geojson && [ "$(ogrinfo -ro -al -q hus.geojson | grep -c 'rank (Integer)')" -gt 0 ]; then
    ok "-spat -spat_srs EPSG:4326 = -bbox on a UTM index"
else
    ko "-spat -spat_srs EPSG:4326 and -bbox differ on a UTM index"
fi
# a box in the index CRS (here lon/lat) far from every tile keeps nothing
"$BIN/cmir_search" $S -spat 0 0 10 10 hn.geojson -q 2>/dev/null
[ "$(ogrinfo -ro -al -q hn.geojson 2>/dev/null | grep -c 'rank (Integer)')" -eq 0 ] && ok "-spat outside the tiles: no hit" ||
    ko "-spat 0 0 10 10 kept hits"

# ---- 5. -t_srs: the footprints as ogr2ogr -t_srs reprojects them
coords() { ogrinfo -ro -al -q "$1" | grep 'POLYGON' | tr -c '0-9.\n-' ' ' | tr -s ' ' '\n' | grep -v '^$'; }
works "$BIN/cmir_search" $S -t_srs EPSG:32650 ht.geojson
# the reference from the same footprints at full precision (GPKG) through ogr2ogr
works "$BIN/cmir_search" $S -of GPKG hg.gpkg
ogr2ogr -f GeoJSON -t_srs EPSG:32650 ref.geojson hg.gpkg 2>/dev/null || ko "ogr2ogr -t_srs"
coords ht.geojson >c1
coords ref.geojson >c2
if [ -s c1 ] && [ "$(wc -l <c1)" -eq "$(wc -l <c2)" ] &&
    paste c1 c2 | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > 0.001) bad++ } END { exit bad > 0 }'; then
    ok "-t_srs EPSG:32650: $(wc -l <c1) coordinates within 1 mm of ogr2ogr -t_srs"
else
    ko "-t_srs coordinates differ from ogr2ogr -t_srs ($(wc -l <c1) and $(wc -l <c2) numbers)"
fi
if ogrinfo -ro -so -al ht.geojson | grep -q 'ID\["EPSG",32650\]' && ! grep -q '"crs"' h.geojson; then
    ok "-t_srs output declares EPSG:32650; the default stays RFC 7946 (WGS84, no crs member)"
else
    ko "CRS of the outputs"
fi
msg "not a CRS (t_srs)" "$BIN/cmir_search" $S -t_srs NOT_A_CRS x.geojson

# ---- 6. -oo reaches GDAL (GTiff knows NUM_THREADS, not NO_SUCH_OPTION)
W="-raster s/scene_000_pan.tif -srcwin 0 0 64 64"
{
    works "$BIN/cmir_search" -q -model m.mat -index i.gpkg $W ho1.geojson
    works "$BIN/cmir_search" -q -model m.mat -index i.gpkg -oo NUM_THREADS=2 $W ho2.geojson
    cmp -s ho1.geojson ho2.geojson && ok "-oo NUM_THREADS=2: same hits" || ko "-oo NUM_THREADS=2 changed the hits"
    msg "driver GTiff does not support open option NO_SUCH_OPTION" \
        "$BIN/cmir_search" -q -model m.mat -index i.gpkg -oo NO_SUCH_OPTION=1 $W x.geojson
}
msg "driver GTiff does not support open option NO_SUCH_OPTION" \
    "$BIN/cmir_tile" -q -oo NO_SUCH_OPTION=1 -pan s/scene_000_pan.tif -ms s/scene_000_ms.tif x.mat
works "$BIN/cmir_tile" -q -oo NUM_THREADS=2 -ts 64 -pan s/scene_000_pan.tif -ms s/scene_000_ms.tif x.mat
msg "driver GTiff does not support open option NO_SUCH_OPTION" \
    "$BIN/cmir_synth" -q -wald s/scene_000_ms.tif -oo NO_SUCH_OPTION=1 -o s -prefix oo

# ---- 7. the plugin's MS tiles: the source scene's colour interpretation, SCENE = the MS file
ci() { gdalinfo -json "$1" | sed -n 's/.*"colorInterpretation":"\([A-Za-z]*\)".*/\1/p' | tr '\n' ' '; }
meta() { gdalinfo -json "$1" | sed -n "s/.*\"$2\":\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }
tile='CMIR:"a.mat":MS:70'
want=$(ci s/scene_001_ms.tif)
got=$(ci "$tile")
scene=$(meta "$tile" SCENE)
win=$(meta "$tile" SOURCE_WINDOW)
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok "MS tile ColorInterp $got= its scene's"; else ko "MS tile ColorInterp '$got', scene '$want'"; fi
[ "$(ci 'CMIR:"a.mat":PAN:70')" = "$(ci s/scene_001_pan.tif)" ] && ok "PAN tile ColorInterp = its scene's" ||
    ko "PAN tile ColorInterp '$(ci 'CMIR:"a.mat":PAN:70')', scene '$(ci s/scene_001_pan.tif)'"
[ "$(meta "$tile" PAN_SCENE)" = "s/scene_001_pan.tif" ] && ok "MS tile PAN_SCENE names the PAN file" ||
    ko "MS tile PAN_SCENE '$(meta "$tile" PAN_SCENE)'"
# SOURCE_WINDOW of SCENE holds the tile's very pixels
if [ "$scene" = "s/scene_001_ms.tif" ] && [ -n "$win" ] &&
    gdal_translate -q -srcwin $(echo "$win" | tr ',' ' ') "$scene" cut.tif && gdal_translate -q "$tile" tile.tif &&
    [ "$(gdalinfo -checksum cut.tif | grep Checksum)" = "$(gdalinfo -checksum tile.tif | grep Checksum)" ]; then
    ok "MS tile SCENE $scene, SOURCE_WINDOW $win in its pixels holds the tile's pixels"
else
    ko "MS tile SCENE '$scene' SOURCE_WINDOW '$win' (want s/scene_001_ms.tif and the tile's pixels there)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
