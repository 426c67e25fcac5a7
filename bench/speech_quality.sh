#!/bin/sh
# Quality benchmark (not a test) of the image <-> speech scenario: the
# simulator's UC-Merced-like RGB scenes (0.3 m, 17 multi-labels) tiled
# 256 x 256, split by scene; the spoken-label corpus of
# python-free-scripts/make-speech-corpus.sh (espeak-ng, flite and festival
# voices, sox augmentations) with some voices of the seen engines held out
# and one whole engine held out; CMIR-NET trained per clip feature (the
# pocketsphinx feature and the previous cepstral one) and d_v. Reports
# whole-database mAP and P@10, Img->Aud and Aud->Img, for seen voices,
# held-out voices of seen engines and the held-out engine, beside the
# paper's figures, and for the sphinx feature two bounds on the same
# split: "oracle" (each clip's feature is its true label, as from a
# perfect recogniser: the image branch's ceiling) and "floor" (no network:
# every image ranks the clips by the training images' frequency of the
# label heard, every clip ranks the images at random; cmir_eval -ranking);
# then bench_sphinx (acoustic model load, extraction time
# per second of audio, nearest-label accuracy on words cut from real
# recordings), and bench_heard (the share of each voice's clips heard as
# exactly their label).
# Usage: sh bench/speech_quality.sh BUILD_DIR [OUT_DIR]
#   env (defaults in brackets; the machine is shared, so scale down):
#     SCENES [24]  EPOCHS1 [20]  THREADS [2]  DVS ["32 64 128"]
#     FEATURES ["sphinx segmental"]  (segmental: the previous cepstral feature)
#     HELD_ENGINE [festival]; VOICES, HELD_VOICES, AUGMENT [make-speech-corpus.sh's
#     defaults: its --voices, --held-out, --augment]
#     EXTRA [-w_class 5 -w_pair 0.2 -w_cross 0.1] (stage-2 options)
set -eu
BUILD=${1:?usage: sh bench/speech_quality.sh BUILD_DIR [OUT_DIR]}
B=$BUILD/cmirtools/apps
OUT=${2:-/tmp/cmir_speech_quality}
SCENES=${SCENES:-24}
EPOCHS1=${EPOCHS1:-20}
THREADS=${THREADS:-2}
DVS=${DVS:-32 64 128}
FEATURES=${FEATURES:-sphinx segmental}
HELD_ENGINE=${HELD_ENGINE:-festival}
EXTRA=${EXTRA:--w_class 5 -w_pair 0.2 -w_cross 0.1}
ROOT=$(dirname "$0")/..
mkdir -p "$OUT/scenes"
if [ ! -f "$OUT/rgb.mat" ]; then
    "$B/cmir_synth" -rgb -q -n "$SCENES" -seed 7 -o "$OUT/scenes" -prefix rgb
    set --
    for f in "$OUT"/scenes/rgb_*_rgb.tif; do set -- "$@" -pan "$f" -labels "${f%_rgb.tif}_class.tif"; done
    "$B/cmir_tile" -q "$@" -label_min_frac 0 -multilabel 0.01 "$OUT/rgb.mat"
fi
if [ ! -f "$OUT/corpus/manifest.csv" ]; then
    set -- --held-out-engine "$HELD_ENGINE"
    [ -z "${VOICES:-}" ] || set -- "$@" --voices "$VOICES"
    [ -z "${HELD_VOICES:-}" ] || set -- "$@" --held-out "$HELD_VOICES"
    [ -z "${AUGMENT:-}" ] || set -- "$@" --augment "$AUGMENT"
    sh "$ROOT/python-free-scripts/make-speech-corpus.sh" "$@" "$OUT/corpus"
fi
M=$OUT/corpus/manifest.csv
# Two test manifests: the training rows with the held-out voices of the
# seen engines, and with the held-out engine's voices.
awk -F, -v e="$HELD_ENGINE:" 'NR == 1 || $4 == 0 || index($3, e) != 1' "$M" >"$OUT/corpus/voices.csv"
awk -F, -v e="$HELD_ENGINE:" 'NR == 1 || $4 == 0 || index($3, e) == 1' "$M" >"$OUT/corpus/engine.csv"
printf 'corpus: %s clips; held-out voices of seen engines: %s; held-out engine %s: %s\n' \
    "$(($(wc -l <"$M") - 1))" "$(awk -F, -v e="$HELD_ENGINE:" '$4 == 1 && index($3, e) != 1' "$M" | wc -l)" \
    "$HELD_ENGINE" "$(awk -F, -v e="$HELD_ENGINE:" 'index($3, e) == 1' "$M" | wc -l)"
row() { awk -F, -v d="$2" '$1 == d { printf "%.4f %.4f", $3, $7 }' "$1"; }
evals() { # MODEL TAG RANKING: the three kinds of voice, one CSV each
    for c in seen voices engine; do
        man=$OUT/corpus/$c.csv
        v=held_out
        [ "$c" != seen ] || { man=$M; v=seen; }
        "$B/cmir_eval" -q -overwrite -threads "$THREADS" -speech "$man" -voices "$v" -ranking "$3" -k 5,10,20,50,100 \
            -csv "$OUT/${c}_$2.csv" "$1" "$OUT/rgb.mat" >/dev/null
    done
}
rows() { # TAG FEATURE-COLUMN D_V-COLUMN
    for d in 'image->audio' 'audio->image'; do
        printf '%-9s %-5s %-13s %-16s %-16s %-16s\n' "$2" "$3" "$d" "$(row "$OUT/seen_$1.csv" "$d")" \
            "$(row "$OUT/voices_$1.csv" "$d")" "$(row "$OUT/engine_$1.csv" "$d")"
    done
}
printf '%-9s %-5s %-13s %-16s %-16s %-16s\n' feature d_v direction "seen mAP P@10" "voices mAP P@10" \
    "engine mAP P@10"
floor=""
for feat in $FEATURES; do
    for dv in $DVS; do
        m=$OUT/m_${feat}_$dv.mat
        # shellcheck disable=SC2086 # EXTRA is a list of options
        [ -f "$m" ] || "$B/cmir_train" -q -threads "$THREADS" -seed 1 -epochs1 "$EPOCHS1" -dv "$dv" $EXTRA \
            -speech_feature "$feat" -speech "$M" "$OUT/rgb.mat" "$m"
        evals "$m" "${feat}_$dv" model
        rows "${feat}_$dv" "$feat" "$dv"
        [ "$feat" = sphinx ] || continue
        # the image branch's ceiling: each clip's feature is its true label
        evals "$m" "oracle_$dv" oracle
        rows "oracle_$dv" oracle "$dv"
        [ -n "$floor" ] || { evals "$m" floor floor; floor=1; }
    done
done
# the training-free floor (no network; see cmir_eval -ranking floor)
[ -z "$floor" ] || rows floor floor -
echo "paper (CMIR-NET, UC-Merced multi-label, d_v 128): Img->Aud mAP 0.6211 P@10 0.6481; Aud->Img mAP 0.5421 P@10 0.5600"
if [ -x "$BUILD/bench/bench_sphinx" ]; then
    "$BUILD/bench/bench_sphinx" | grep -v '^  miss'
fi
# what the recogniser hears of the corpus, voice by voice
if [ -x "$BUILD/bench/bench_heard" ]; then
    "$BUILD/bench/bench_heard" "$M"
fi
