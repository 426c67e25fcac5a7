#!/bin/sh
# The image <-> speech scenario end to end through the programs: a spoken
# corpus of the 8 DSRSID-like class names made by espeak-ng (one voice held
# out), the sample scenes tiled multi-label, cmir_train -speech, cmir_eval
# -speech (held-out and seen voices, both above chance), cmir_index
# -speech, then voice queries (cmir_search --audio) whose first hit must
# be an image carrying the spoken label, and an image query returning
# spoken labels. Skips (77) without espeak-ng and sox.
set -eu
BIN=$1
ROOT=$2
PLUGIN=${3:-}
if ! command -v espeak-ng >/dev/null 2>&1 || ! command -v sox >/dev/null 2>&1; then
    echo "SKIP: espeak-ng and sox are needed (apt-get install espeak-ng sox)"
    exit 77
fi
OUT=$(mktemp -d /tmp/cmir_speech_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
S=$ROOT/sample_scenes
fail=0
check() { if ! eval "$1"; then echo "FAIL: $1"; fail=1; else echo "ok   $1"; fi; }
run() { "$@" >>"$OUT/log" 2>&1 || { cat "$OUT/log"; echo "FAIL: $*"; exit 1; }; }

run sh "$ROOT/python-free-scripts/make-speech-corpus.sh" \
    --labels "aquafarm|cloud|forest|high building|low building|farm land|river|water" \
    --voices "en-us en-gb en-us+f3 en-gb+f2 en-029 en-gb-x-rp" --held-out "en-gb-x-rp" \
    --speeds "130 170" --pitches "40 60" --augment noise "$OUT/corpus"
# "aquafarm" is not in pocketsphinx's CMU dictionary: its pronunciation
printf 'aquafarm AE K W AH F AA R M\n' >"$OUT/extra.dict"
args=""
for i in 000 001 002 003; do
    args="$args -pan $S/dsrsid_like_${i}_pan.tif -ms $S/dsrsid_like_${i}_ms.tif -labels $S/dsrsid_like_${i}_class.tif"
done
# shellcheck disable=SC2086
run "$BIN/cmir_tile" -q $args -stride 128 -label_min_frac 0 -multilabel 0.1 "$OUT/a.mat"
run "$BIN/cmir_train" -q -threads 2 -seed 3 -epochs1 8 -dv 32 -speech "$OUT/corpus/manifest.csv" -dict "$OUT/extra.dict" \
    "$OUT/a.mat" "$OUT/m.mat"
run "$BIN/cmir_eval" -speech "$OUT/corpus/manifest.csv" -csv "$OUT/held.csv" "$OUT/m.mat" "$OUT/a.mat"
run "$BIN/cmir_eval" -speech "$OUT/corpus/manifest.csv" -voices seen -csv "$OUT/seen.csv" "$OUT/m.mat" "$OUT/a.mat"
map() { awk -F, -v d="$2" '$1 == d { print $3 }' "$1"; }
above() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
cat "$OUT/held.csv" "$OUT/seen.csv"
# chance: a random ranking's mAP is about the share of relevant items
# (an image carries 1.4 of the 8 labels on average here: ~0.2)
for f in seen held; do
    for d in 'image->audio' 'audio->image'; do
        check "above $(map "$OUT/$f.csv" "$d") 0.40"
    done
done
# the bounds on the same split: the oracle (every clip's feature its true label)
# ignores what was said, so its audio->image mAP is the same for any voices
# with the same labels in the same proportions; the network beats the floor
# (no network: images at random for audio->image)
run "$BIN/cmir_eval" -speech "$OUT/corpus/manifest.csv" -ranking oracle -csv "$OUT/oh.csv" "$OUT/m.mat" "$OUT/a.mat"
run "$BIN/cmir_eval" -speech "$OUT/corpus/manifest.csv" -voices seen -ranking oracle -csv "$OUT/os.csv" "$OUT/m.mat" "$OUT/a.mat"
run "$BIN/cmir_eval" -speech "$OUT/corpus/manifest.csv" -ranking floor -csv "$OUT/fh.csv" "$OUT/m.mat" "$OUT/a.mat"
echo "audio->image mAP: model $(map "$OUT/held.csv" audio-\>image), oracle $(map "$OUT/oh.csv" audio-\>image) (seen voices $(map "$OUT/os.csv" audio-\>image)), floor $(map "$OUT/fh.csv" audio-\>image)"
check "awk -v a=$(map "$OUT/oh.csv" 'audio->image') -v b=$(map "$OUT/os.csv" 'audio->image') 'BEGIN { exit !(a - b < 1e-4 && b - a < 1e-4) }'"
check "above $(map "$OUT/held.csv" 'audio->image') $(map "$OUT/fh.csv" 'audio->image')"
check "! above $(map "$OUT/fh.csv" 'audio->image') 0.35"
check "[ \$(grep -c '^image->audio\|^audio->image\|^image->image\|^audio->audio' '$OUT/held.csv') -eq 4 ]"

run "$BIN/cmir_index" -q -speech "$OUT/corpus/manifest.csv" -model "$OUT/m.mat" "$OUT/a.mat" "$OUT/i.gpkg"
# 192 clips less those the recogniser mishears (left out of the index)
naudio=$(ogrinfo -ro -q -sql "SELECT COUNT(*) FROM tiles WHERE modality = 'audio'" "$OUT/i.gpkg" | sed -n 's/.*(Integer) = //p')
echo "indexed clips: $naudio of 192"
check "[ $naudio -le 192 ] && [ $naudio -ge 120 ]"
# voice queries from the held-out voice: the first image must carry the label
good=0
for w in water forest cloud farm_land; do
    run "$BIN/cmir_search" -q -model "$OUT/m.mat" -index "$OUT/i.gpkg" -k 3 --audio "$OUT/corpus/$w/espeak-ng_en-gb-x-rp_130_40_noise.wav" \
        "$OUT/q_$w.geojson"
    label=$(printf '%s' "$w" | tr '_' ' ')
    first=$(ogrinfo -ro -q -al -where "rank = 1" "$OUT/q_$w.geojson" | sed -n 's/^ *labels (String) = //p')
    echo "spoken '$label': first hit's labels '$first'"
    case ";$first;" in *";$label;"*) good=$((good + 1)) ;; esac
    check "ogrinfo -ro -q -al '$OUT/q_$w.geojson' | grep -q 'POLYGON ((116\.'"
    # the nearest spoken label (-target audio -k 1) is the label heard, never a
    # misheard clip of another label sitting at its code
    run "$BIN/cmir_search" -q -model "$OUT/m.mat" -index "$OUT/i.gpkg" -target audio -k 1 \
        --audio "$OUT/corpus/$w/espeak-ng_en-gb-x-rp_130_40_noise.wav" "$OUT/n_$w.geojson"
    heard=$(ogrinfo -ro -q -al "$OUT/n_$w.geojson" | sed -n 's/^ *query_desc (String) = .*(heard: \(.*\))$/\1/p' | tr '_A-Z' ' a-z')
    near=$(ogrinfo -ro -q -al "$OUT/n_$w.geojson" | sed -n 's/^ *class_name (String) = //p' | tr '_A-Z' ' a-z')
    echo "heard '$heard', nearest spoken label '$near'"
    check "[ -n '$near' ] && [ '$near' = '$heard' ]"
done
check "[ $good -ge 3 ]"
# a phrase naming two labels: both are heard, and the first hits are tiles
# near both labels' codes (see README "Query by voice")
espeak-ng -v en-gb-x-rp -w "$OUT/phrase.wav" "water and forest"
run "$BIN/cmir_search" -q -model "$OUT/m.mat" -index "$OUT/i.gpkg" -k 3 --audio "$OUT/phrase.wav" "$OUT/phrase.geojson"
ogrinfo -ro -q -al "$OUT/phrase.geojson" | sed -n 's/^ *\(labels\|query_desc\) (String) = //p' | head -n 2
check "ogrinfo -ro -q -al '$OUT/phrase.geojson' | grep -q 'heard: water and forest'"
named=$(ogrinfo -ro -q -al "$OUT/phrase.geojson" | sed -n 's/^ *labels (String) = //p' | grep -c 'water\|forest' || true)
both=$(ogrinfo -ro -q -al "$OUT/phrase.geojson" | sed -n 's/^ *labels (String) = //p' | grep 'water' | grep -c 'forest' || true)
echo "phrase 'water and forest': of the 3 first hits, $named carry a named label, $both both"
check "[ $named -ge 2 ]"
# the same voice query through GDAL's own ogrinfo and the CMIR driver (QGIS's route);
# in a sanitizer build the plugin needs the sanitizer runtimes preloaded into
# GDAL's (uninstrumented) programs
# shellcheck source=tests/sanitizer_env.sh
. "$(dirname "$0")/sanitizer_env.sh"
pre=""
[ -z "$asan" ] || pre="LD_PRELOAD='$asan${ubsan:+:$ubsan}' ASAN_OPTIONS=detect_leaks=0"
if [ -n "$PLUGIN" ]; then
    check "$pre GDAL_DRIVER_PATH='$PLUGIN' ogrinfo -ro -q -al 'CMIR:QUERY?MODEL=$OUT/m.mat&INDEX=$OUT/i.gpkg&AUDIO=$OUT/corpus/water/espeak-ng_en-gb-x-rp_130_40_noise.wav&K=3' | grep -q 'POLYGON ((116\.'"
    check "[ \$($pre GDAL_DRIVER_PATH='$PLUGIN' ogr2ogr -f CSV /vsistdout/ CMIR:QUERY -oo MODEL='$OUT/m.mat' -oo INDEX='$OUT/i.gpkg' -oo ROW=0 -oo K=4 -oo TARGET=audio | grep -c ',audio,') -eq 4 ]"
fi
# an image query returns spoken labels (clips, no geometry)
run "$BIN/cmir_search" -q -model "$OUT/m.mat" -index "$OUT/i.gpkg" -k 5 -row 0 "$OUT/img.geojson"
check "[ \$(ogrinfo -ro -q -al '$OUT/img.geojson' | grep -c 'modality (String) = audio') -eq 5 ]"
# refusals: a model that is not image-speech, a file that is not audio
check "! '$BIN/cmir_search' -q -model '$OUT/m.mat' -index '$OUT/i.gpkg' --audio '$OUT/a.mat' '$OUT/x.geojson' 2>'$OUT/err'"
check "grep -q 'a.mat' '$OUT/err' && [ \$(wc -l <'$OUT/err') -eq 1 ]"
check "[ ! -e '$OUT/x.geojson' ]"
# a label with no pronunciation (no -dict): one line naming it, no model written
check "! '$BIN/cmir_train' -q -epochs1 1 -speech '$OUT/corpus/manifest.csv' '$OUT/a.mat' '$OUT/m2.mat' 2>'$OUT/err'"
check "grep -q \"'aquafarm'\" '$OUT/err' && [ \$(wc -l <'$OUT/err') -eq 1 ] && [ ! -e '$OUT/m2.mat' ]"
# noise alone as a query: "no speech" in one line, nothing written
sox -R -n -r 16000 -b 16 "$OUT/noise.wav" synth 1.5 whitenoise vol 0.1
check "! '$BIN/cmir_search' -q -model '$OUT/m.mat' -index '$OUT/i.gpkg' --audio '$OUT/noise.wav' '$OUT/n.geojson' 2>'$OUT/err'"
check "grep -q 'noise.wav: no speech' '$OUT/err' && [ \$(wc -l <'$OUT/err') -eq 1 ] && [ ! -e '$OUT/n.geojson' ]"
# an empty clip and a 20-minute clip as queries: one line naming the file, nothing written
sox -n -r 16000 -b 16 "$OUT/empty.wav" trim 0 0
sox -R -n -r 4000 -b 8 "$OUT/long.wav" synth 1200 sine 300 vol 0.3
for c in empty long; do
    check "! '$BIN/cmir_search' -q -model '$OUT/m.mat' -index '$OUT/i.gpkg' --audio '$OUT/$c.wav' '$OUT/$c.geojson' 2>'$OUT/err'"
    check "grep -q '$c.wav' '$OUT/err' && [ \$(wc -l <'$OUT/err') -eq 1 ] && [ ! -e '$OUT/$c.geojson' ]"
done
# a corrupt pronunciation dictionary: one line naming it, no model written
printf 'aquafarm ae k w ah\n' >"$OUT/corrupt.dict"
check "! '$BIN/cmir_train' -q -epochs1 1 -speech '$OUT/corpus/manifest.csv' -dict '$OUT/corrupt.dict' '$OUT/a.mat' '$OUT/m3.mat' 2>'$OUT/err'"
check "grep -q 'corrupt.dict' '$OUT/err' && [ \$(wc -l <'$OUT/err') -eq 1 ] && [ ! -e '$OUT/m3.mat' ]"
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else cat "$OUT/log"; echo "0 passed, 1 failed"; exit 1; fi
