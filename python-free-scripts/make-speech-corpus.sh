#!/bin/sh
# Makes a spoken-label corpus for the image <-> speech scenario: each of
# the 17 UC-Merced multi-label labels spoken by espeak-ng in several voices,
# speeds and pitches, with noise mixed in by sox, plus a manifest CSV that
# marks held-out voices. Deterministic: the same arguments give the same
# files (sox runs with -R, which seeds its noise generator).
set -eu

LABELS="airplane|bare soil|buildings|cars|chaparral|court|dock|field|grass|mobile home|pavement|sand|sea|ship|tanks|trees|water"
VOICES="en-us en-gb en-gb-x-rp en-029 en-us+f3 en-gb+f2 en-gb-scotland en-us-nyc+f4"
HELD_OUT="en-gb-scotland en-us-nyc+f4"
SPEEDS="130 170"
PITCHES="35 65"
NOISE="0.005 0.01 0.02"

usage() {
    cat <<USAGE
Usage: python-free-scripts/make-speech-corpus.sh [options] DIR

Writes DIR/<label>/<voice>_<speed>_<pitch>.wav for the labels (default:
the 17 UC-Merced multi-label labels) (spaces in a label become '_' in its folder name), one
utterance per voice x speed x pitch (default 8 x 2 x 2 = 32 per label, 544
in all), each mixed with noise, and DIR/manifest.csv with the columns
file,label,voice,held_out (file relative to DIR; held_out is 1 for the
held-out voices, which training must never see).

Options (lists are space separated; quote them):
  --labels "L|..."    the labels to speak, separated by '|' (default: the 17
                      UC-Merced multi-label labels)
  --voices "V ..."    espeak-ng voices, optionally with a variant (V+f3)
                      (default: $VOICES)
  --held-out "V ..."  voices marked held out; each must be in --voices
                      (default: $HELD_OUT)
  --speeds "S ..."    words per minute, espeak-ng -s (default: $SPEEDS)
  --pitches "P ..."   pitch 0-99, espeak-ng -p (default: $PITCHES)
  --noise "A ..."     noise amplitudes; utterance i gets the (i mod n)-th,
                      and white, pink and brown noise in turn (default:
                      $NOISE; "0" for clean speech)
  -h, --help          this text

Output is mono 16-bit WAV at espeak-ng's rate (22050 Hz). Needs espeak-ng
and sox (Debian: apt-get install -y espeak-ng sox libsox-fmt-all). List
the English voices with: espeak-ng --voices=en
USAGE
}

die() { printf 'make-speech-corpus: %s\n' "$*" >&2; exit 1; }

dir=""
while [ $# -gt 0 ]; do
    case $1 in
    --labels) [ $# -ge 2 ] || die "--labels needs a value"; LABELS=$2; shift ;;
    --voices) [ $# -ge 2 ] || die "--voices needs a value"; VOICES=$2; shift ;;
    --held-out) [ $# -ge 2 ] || die "--held-out needs a value"; HELD_OUT=$2; shift ;;
    --speeds) [ $# -ge 2 ] || die "--speeds needs a value"; SPEEDS=$2; shift ;;
    --pitches) [ $# -ge 2 ] || die "--pitches needs a value"; PITCHES=$2; shift ;;
    --noise) [ $# -ge 2 ] || die "--noise needs a value"; NOISE=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$dir" ] || { usage >&2; exit 2; }; dir=$1 ;;
    esac
    shift
done
[ -n "$dir" ] || { usage >&2; exit 2; }

command -v espeak-ng >/dev/null 2>&1 || die "espeak-ng not found (apt-get install -y espeak-ng)"
command -v sox >/dev/null 2>&1 || die "sox not found (apt-get install -y sox libsox-fmt-all)"

# Arguments are checked before anything is written.
is_number() { case $1 in '' | *[!0-9.]*) return 1 ;; *) return 0 ;; esac; }
for s in $SPEEDS; do
    case $s in '' | *[!0-9]*) die "speed '$s' is not a whole number" ;; esac
done
for p in $PITCHES; do
    case $p in '' | *[!0-9]*) die "pitch '$p' is not a whole number 0-99" ;; esac
    [ "$p" -le 99 ] || die "pitch '$p' is not a whole number 0-99"
done
for a in $NOISE; do is_number "$a" || die "noise amplitude '$a' is not a number"; done
case $LABELS in *,* | *'"'* | *"/"*) die "labels must not contain ',', '\"' or '/'" ;; esac
if [ -z "$LABELS" ] || [ -z "$VOICES" ] || [ -z "$SPEEDS" ] || [ -z "$PITCHES" ] || [ -z "$NOISE" ]; then
    die "voices, speeds, pitches and noise must not be empty"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/speech-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

variants=$(espeak-ng --voices=variant | awk '{print $5}')
for v in $VOICES; do
    base=${v%%+*}
    espeak-ng -v "$base" -w "$tmp/check.wav" test >/dev/null 2>&1 ||
        die "espeak-ng has no voice '$base' (see espeak-ng --voices=en)"
    if [ "$base" != "$v" ]; then
        printf '%s\n' "$variants" | grep -qx "!v/${v#*+}" ||
            die "espeak-ng has no variant '${v#*+}' (see espeak-ng --voices=variant)"
    fi
done
for h in $HELD_OUT; do
    case " $VOICES " in *" $h "*) ;; *) die "held-out voice '$h' is not in --voices" ;; esac
done

mkdir -p "$dir" || die "cannot create $dir"
manifest="$dir/manifest.csv"
printf 'file,label,voice,held_out\n' >"$tmp/manifest.csv"
# shellcheck disable=SC2086 # NOISE is a list of numbers, split on purpose
n_noise=$(printf '%s\n' $NOISE | wc -l)
i=0
count=0
old_ifs=$IFS
IFS='|'
set -f
for label in $LABELS; do
    IFS=$old_ifs
    folder=$(printf '%s' "$label" | tr ' ' '_')
    mkdir -p "$dir/$folder"
    for v in $VOICES; do
        held=0
        case " $HELD_OUT " in *" $v "*) held=1 ;; esac
        for s in $SPEEDS; do
            for p in $PITCHES; do
                rel="$folder/${v}_${s}_${p}.wav"
                espeak-ng -v "$v" -s "$s" -p "$p" -w "$tmp/clean.wav" "$label" ||
                    die "espeak-ng failed for '$label' ($v, -s $s, -p $p)"
                # shellcheck disable=SC2086 # as above
                amp=$(printf '%s\n' $NOISE | sed -n "$((i % n_noise + 1))p")
                case $((i % 3)) in 0) kind=whitenoise ;; 1) kind=pinknoise ;; *) kind=brownnoise ;; esac
                if [ "$amp" = 0 ] || [ "$amp" = 0.0 ]; then
                    sox -R -q "$tmp/clean.wav" -b 16 "$dir/$rel" || die "sox failed on $rel"
                else
                    # Noise of the utterance's own length, rate and channels,
                    # added to the speech scaled by 0.8 (espeak-ng peaks near
                    # full scale at some pitches; this keeps the sum unclipped).
                    sox -R -q "$tmp/clean.wav" "$tmp/noise.wav" synth "$kind" vol "$amp" ||
                        die "sox could not make noise for $rel"
                    sox -R -q -m -v 0.8 "$tmp/clean.wav" -v 1 "$tmp/noise.wav" -b 16 "$dir/$rel" ||
                        die "sox could not mix $rel"
                fi
                printf '%s,%s,%s,%s\n' "$rel" "$label" "$v" "$held" >>"$tmp/manifest.csv"
                i=$((i + 1))
                count=$((count + 1))
            done
        done
    done
    IFS='|'
done
IFS=$old_ifs
set +f
mv "$tmp/manifest.csv" "$manifest"
printf 'make-speech-corpus: %d utterances of %d labels in %s (manifest: %s)\n' \
    "$count" "$(printf '%s\n' "$LABELS" | tr '|' '\n' | wc -l)" "$dir" "$manifest" >&2
