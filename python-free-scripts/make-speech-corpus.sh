#!/bin/sh
# Makes a spoken-label corpus for the image <-> speech scenario: each label
# spoken by several synthesisers (espeak-ng, flite and festival voices, so
# that no one engine dominates), each utterance augmented by sox (noise,
# reverberation, telephone band, speed, pitch), plus a manifest CSV that
# marks held-out voices and, optionally, a whole held-out engine.
# Deterministic: the same arguments give the same files (sox runs with -R).
set -eu

LABELS="airplane|bare soil|buildings|cars|chaparral|court|dock|field|grass|mobile home|pavement|sand|sea|ship|tanks|trees|water"
VOICES="en-us en-gb en-gb-x-rp en-029 en-us+f3 en-gb+f2 en-gb-scotland en-us-nyc+f4 flite:kal16 flite:awb flite:rms flite:slt festival:kal_diphone festival:cmu_us_slt_arctic_hts"
HELD_OUT="en-gb-scotland en-us-nyc+f4 flite:rms"
HELD_ENGINE=""
SPEEDS="140"
PITCHES="50"
NOISE="0.005 0.01 0.02"
AUGMENT="clean noise reverb telephone speed pitch"

usage() {
    cat <<USAGE
Usage: python-free-scripts/make-speech-corpus.sh [options] DIR

Writes DIR/<label>/<engine>_<voice>[_<speed>_<pitch>]_<augmentation>.wav
for the labels (default: the 17 UC-Merced multi-label labels; spaces in a
label become '_' in its folder name): every voice speaks every label once
(espeak-ng voices once per speed x pitch), and each utterance is written
once per augmentation. Then DIR/manifest.csv with the columns
file,label,voice,held_out (file relative to DIR; voice is ENGINE:VOICE;
held_out is 1 for the held-out voices and for every voice of the held-out
engine, which training must never see).

Options (lists are space separated; quote them):
  --labels "L|..."        labels to speak, separated by '|'
  --voices "V ..."        voices: ENGINE:VOICE with ENGINE espeak-ng, flite or
                          festival; a bare name is an espeak-ng voice, with an
                          optional variant (en-us+f3) (default:
                          $VOICES)
  --held-out "V ..."      voices marked held out; each must be in --voices
                          (default: $HELD_OUT)
  --held-out-engine E     mark every voice of engine E held out (a kind of
                          voice the model never hears; default: none)
  --speeds "S ..."        espeak-ng words per minute, -s (default: $SPEEDS)
  --pitches "P ..."       espeak-ng pitch 0-99, -p (default: $PITCHES)
  --noise "A ..."         noise amplitudes of the noise augmentation; the
                          i-th noisy clip gets the (i mod n)-th, and white,
                          pink and brown noise in turn (default: $NOISE)
  --augment "K ..."       augmentations, one file each: clean, noise, reverb
                          (sox reverb), telephone (300-3400 Hz, 8 kHz, light
                          noise), speed (sox speed 0.9 or 1.1 in turn), pitch
                          (-300 or +300 cents in turn)
                          (default: $AUGMENT)
  -h, --help              this text

Output is mono 16-bit WAV at the engine's rate (telephone: 8 kHz). Needs
sox (apt-get install -y sox libsox-fmt-all) and the engines of the voices:
espeak-ng, flite, festival with festvox-kallpc16k (kal_diphone) and
festvox-us-slt-hts (cmu_us_slt_arctic_hts). Lists of voices:
espeak-ng --voices=en; flite -lv; ls /usr/share/festival/voices/*/
USAGE
}

die() { printf 'make-speech-corpus: %s\n' "$*" >&2; exit 1; }

dir=""
while [ $# -gt 0 ]; do
    case $1 in
    --labels) [ $# -ge 2 ] || die "--labels needs a value"; LABELS=$2; shift ;;
    --voices) [ $# -ge 2 ] || die "--voices needs a value"; VOICES=$2; shift ;;
    --held-out) [ $# -ge 2 ] || die "--held-out needs a value"; HELD_OUT=$2; shift ;;
    --held-out-engine) [ $# -ge 2 ] || die "--held-out-engine needs a value"; HELD_ENGINE=$2; shift ;;
    --speeds) [ $# -ge 2 ] || die "--speeds needs a value"; SPEEDS=$2; shift ;;
    --pitches) [ $# -ge 2 ] || die "--pitches needs a value"; PITCHES=$2; shift ;;
    --noise) [ $# -ge 2 ] || die "--noise needs a value"; NOISE=$2; shift ;;
    --augment) [ $# -ge 2 ] || die "--augment needs a value"; AUGMENT=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; exit 2 ;;
    *) [ -z "$dir" ] || { usage >&2; exit 2; }; dir=$1 ;;
    esac
    shift
done
[ -n "$dir" ] || { usage >&2; exit 2; }
command -v sox >/dev/null 2>&1 || die "sox not found (apt-get install -y sox libsox-fmt-all)"

# Every voice as ENGINE:VOICE.
full() { case $1 in *:*) printf '%s' "$1" ;; *) printf 'espeak-ng:%s' "$1" ;; esac; }
all=""
for v in $VOICES; do all="$all $(full "$v")"; done
held=""
for v in $HELD_OUT; do held="$held $(full "$v")"; done

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
for k in $AUGMENT; do
    case $k in clean | noise | reverb | telephone | speed | pitch) ;; *) die "unknown augmentation '$k'" ;; esac
done
case $LABELS in *,* | *'"'* | *"/"* | *"\\"*) die "labels must not contain ',', '\"', '/' or '\\'" ;; esac
if [ -z "$LABELS" ] || [ -z "$VOICES" ] || [ -z "$SPEEDS" ] || [ -z "$PITCHES" ] || [ -z "$NOISE" ] ||
    [ -z "$AUGMENT" ]; then
    die "labels, voices, speeds, pitches, noise and augmentations must not be empty"
fi
case $HELD_ENGINE in '' | espeak-ng | flite | festival) ;; *) die "unknown engine '$HELD_ENGINE'" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/speech-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

variants=""
for v in $all; do
    engine=${v%%:*}
    name=${v#*:}
    case $name in '' | *[!A-Za-z0-9_+-]*) die "voice '$v': letters, digits, '_', '+', '-' only" ;; esac
    case $engine in
    espeak-ng)
        command -v espeak-ng >/dev/null 2>&1 || die "espeak-ng not found (apt-get install -y espeak-ng)"
        base=${name%%+*}
        espeak-ng -v "$base" -w "$tmp/check.wav" test >/dev/null 2>&1 ||
            die "espeak-ng has no voice '$base' (see espeak-ng --voices=en)"
        if [ "$base" != "$name" ]; then
            [ -n "$variants" ] || variants=$(espeak-ng --voices=variant | awk '{print $5}')
            printf '%s\n' "$variants" | grep -qx "!v/${name#*+}" ||
                die "espeak-ng has no variant '${name#*+}' (see espeak-ng --voices=variant)"
        fi ;;
    flite)
        command -v flite >/dev/null 2>&1 || die "flite not found (apt-get install -y flite)"
        flite -lv | tr ' ' '\n' | grep -qx "$name" || die "flite has no voice '$name' (see flite -lv)" ;;
    festival)
        command -v festival >/dev/null 2>&1 || die "festival not found (apt-get install -y festival)"
        ls -d /usr/share/festival/voices/*/"$name" >/dev/null 2>&1 ||
            die "festival has no voice '$name' (apt-get install -y festvox-kallpc16k festvox-us-slt-hts)" ;;
    *) die "voice '$v': unknown engine '$engine' (espeak-ng, flite or festival)" ;;
    esac
done
for h in $held; do
    case " $all " in *" $h "*) ;; *) die "held-out voice '$h' is not in --voices" ;; esac
done

# Festival speaks every label of one voice in one run (it starts slowly):
# $tmp/fest/<voice>/<n>.wav for the n-th label.
festival_voice() { # VOICE
    mkdir -p "$tmp/fest/$1"
    printf '(voice_%s)\n' "$1" >"$tmp/fest/$1.scm"
    n=0
    old_ifs=$IFS
    IFS='|'
    for label in $LABELS; do
        printf '(utt.save.wave (utt.synth (Utterance Text "%s")) "%s" (quote riff))\n' \
            "$label" "$tmp/fest/$1/$n.wav" >>"$tmp/fest/$1.scm"
        n=$((n + 1))
    done
    IFS=$old_ifs
    festival -b "$tmp/fest/$1.scm" >"$tmp/fest/$1.log" 2>&1 ||
        die "festival failed with voice '$1' (see its messages: $(head -c 200 "$tmp/fest/$1.log"))"
}
for v in $all; do
    case $v in festival:*) festival_voice "${v#festival:}" ;; esac
done

# shellcheck disable=SC2086 # one amplitude a line
n_noise=$(printf '%s\n' $NOISE | wc -l)
i=0
count=0
noise_for() { # the i-th noise amplitude and kind
    # shellcheck disable=SC2086 # one amplitude a line
    amp=$(printf '%s\n' $NOISE | sed -n "$((i % n_noise + 1))p")
    case $((i % 3)) in 0) kind=whitenoise ;; 1) kind=pinknoise ;; *) kind=brownnoise ;; esac
}
# augment IN OUT KIND: one augmented copy (16-bit), the speech scaled by
# 0.8 wherever something is added so that the sum stays unclipped.
augment() {
    noise_for
    case $3 in
    clean) sox -R -q "$1" -b 16 "$2" ;;
    noise)
        sox -R -q "$1" "$tmp/noise.wav" synth "$kind" vol "$amp" &&
            sox -R -q -m -v 0.8 "$1" -v 1 "$tmp/noise.wav" -b 16 "$2" ;;
    reverb) sox -R -q "$1" -b 16 "$2" gain -3 reverb 50 50 100 gain -n -3 ;;
    telephone)
        sox -R -q "$1" "$tmp/noise.wav" synth whitenoise vol 0.003 &&
            sox -R -q -m -v 0.8 "$1" -v 1 "$tmp/noise.wav" -b 16 -r 8000 "$2" sinc 300-3400 ;;
    speed) if [ $((i % 2)) -eq 0 ]; then f=0.9; else f=1.1; fi
        sox -R -q "$1" -b 16 "$2" gain -3 speed "$f" rate "$(soxi -r "$1")" ;;
    pitch) if [ $((i % 2)) -eq 0 ]; then c=-300; else c=300; fi
        sox -R -q "$1" -b 16 "$2" gain -3 pitch "$c" ;;
    esac
}

mkdir -p "$dir" || die "cannot create $dir"
manifest="$dir/manifest.csv"
printf 'file,label,voice,held_out\n' >"$tmp/manifest.csv"
# write_clips CLEAN REL_PREFIX LABEL VOICE HELD: every augmentation of one utterance.
write_clips() {
    for k in $AUGMENT; do
        rel="$2_$k.wav"
        augment "$1" "$dir/$rel" "$k" || die "sox failed on $rel"
        printf '%s,%s,%s,%s\n' "$rel" "$3" "$4" "$5" >>"$tmp/manifest.csv"
        i=$((i + 1))
        count=$((count + 1))
    done
}
old_ifs=$IFS
IFS='|'
set -f
li=0
for label in $LABELS; do
    IFS=$old_ifs
    folder=$(printf '%s' "$label" | tr ' ' '_')
    mkdir -p "$dir/$folder"
    for v in $all; do
        engine=${v%%:*}
        name=${v#*:}
        h=0
        case " $held " in *" $v "*) h=1 ;; esac
        [ "$engine" != "$HELD_ENGINE" ] || h=1
        case $engine in
        espeak-ng)
            for s in $SPEEDS; do
                for p in $PITCHES; do
                    espeak-ng -v "$name" -s "$s" -p "$p" -w "$tmp/clean.wav" "$label" ||
                        die "espeak-ng failed for '$label' ($name, -s $s, -p $p)"
                    write_clips "$tmp/clean.wav" "$folder/${engine}_${name}_${s}_${p}" "$label" "$v" "$h"
                done
            done ;;
        flite)
            flite -voice "$name" -t "$label" -o "$tmp/clean.wav" || die "flite failed for '$label' ($name)"
            write_clips "$tmp/clean.wav" "$folder/${engine}_${name}" "$label" "$v" "$h" ;;
        festival)
            [ -s "$tmp/fest/$name/$li.wav" ] || die "festival wrote nothing for '$label' ($name)"
            write_clips "$tmp/fest/$name/$li.wav" "$folder/${engine}_${name}" "$label" "$v" "$h" ;;
        esac
    done
    li=$((li + 1))
    IFS='|'
done
IFS=$old_ifs
set +f
mv "$tmp/manifest.csv" "$manifest"
printf 'make-speech-corpus: %d utterances of %d labels in %s (manifest: %s)\n' \
    "$count" "$(printf '%s\n' "$LABELS" | tr '|' '\n' | wc -l)" "$dir" "$manifest" >&2
