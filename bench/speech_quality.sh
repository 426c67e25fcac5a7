#!/bin/sh
# Quality benchmark (not a test) of the image <-> speech scenario: the
# simulator's UC-Merced-like RGB scenes (0.3 m, 17 multi-labels) tiled
# 256 x 256, split by scene; the 17-label espeak-ng corpus of
# python-free-scripts/make-speech-corpus.sh (6 voices train, 2 voices held
# out); CMIR-NET trained at d_v = 32, 64, 128; whole-database mAP, P@10 and
# the paper's protocol, Img->Aud and Aud->Img, with the held-out voices and
# with the voices trained on, beside the paper's figures.
# Usage: sh bench/speech_quality.sh BUILD_DIR [OUT_DIR]
#   env: SCENES (24), EPOCHS1 (20), THREADS (2), DVS ("32 64 128"), EXTRA (stage-2 options)
set -eu
B=${1:?usage: sh bench/speech_quality.sh BUILD_DIR [OUT_DIR]}/cmirtools/apps
OUT=${2:-/tmp/cmir_speech_quality}
SCENES=${SCENES:-24}
EPOCHS1=${EPOCHS1:-20}
THREADS=${THREADS:-2}
DVS=${DVS:-32 64 128}
EXTRA=${EXTRA:--w_class 5 -w_pair 0.2 -w_cross 0.1}
ROOT=$(dirname "$0")/..
mkdir -p "$OUT/scenes"
if [ ! -f "$OUT/rgb.mat" ]; then
    "$B/cmir_synth" -rgb -q -n "$SCENES" -seed 7 -o "$OUT/scenes" -prefix rgb
    set --
    for f in "$OUT"/scenes/rgb_*_rgb.tif; do set -- "$@" -pan "$f" -labels "${f%_rgb.tif}_class.tif"; done
    "$B/cmir_tile" -q "$@" -label_min_frac 0 -multilabel 0.01 "$OUT/rgb.mat"
fi
[ -f "$OUT/corpus/manifest.csv" ] || sh "$ROOT/python-free-scripts/make-speech-corpus.sh" "$OUT/corpus" 2>/dev/null
M=$OUT/corpus/manifest.csv
row() { awk -F, -v d="$2" '$1 == d { printf "%.4f %.4f %.4f", $3, $7, $5 }' "$1"; }
printf '%-5s %-13s %-28s %-28s\n' d_v direction "held-out voices mAP P@10 paper" "seen voices mAP P@10 paper"
for dv in $DVS; do
    # shellcheck disable=SC2086
    [ -f "$OUT/m$dv.mat" ] || "$B/cmir_train" -q -threads "$THREADS" -seed 1 -epochs1 "$EPOCHS1" -dv "$dv" $EXTRA \
        -speech "$M" "$OUT/rgb.mat" "$OUT/m$dv.mat"
    "$B/cmir_eval" -q -threads "$THREADS" -speech "$M" -k 5,10,20,50,100 -csv "$OUT/held$dv.csv" "$OUT/m$dv.mat" "$OUT/rgb.mat" >/dev/null
    "$B/cmir_eval" -q -threads "$THREADS" -speech "$M" -voices seen -k 5,10,20,50,100 -csv "$OUT/seen$dv.csv" \
        "$OUT/m$dv.mat" "$OUT/rgb.mat" >/dev/null
    for d in 'image->audio' 'audio->image'; do
        printf '%-5s %-13s %-28s %-28s\n' "$dv" "$d" "$(row "$OUT/held$dv.csv" "$d")" "$(row "$OUT/seen$dv.csv" "$d")"
    done
done
echo "paper (CMIR-NET, UC-Merced multi-label, d_v 128): Img->Aud mAP 0.6211 P@10 0.6481; Aud->Img mAP 0.5421 P@10 0.5600"
