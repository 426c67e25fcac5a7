#!/bin/sh
# The programs' option values are parsed strictly (cmir_app.c): every
# numeric option of every program is given a non-number, a number with
# trailing junk and an out-of-range value; each must be refused with a
# non-zero exit and exactly one line on stderr that names the option.
# The options come from each program's --help: one that is neither checked
# as a number nor listed as taking none fails the test. Also: an empty
# -queries file is named, -k gets a specific message, and no message
# doubles the program's name.
set -u
BIN=$1
OUT=$(mktemp -d /tmp/cmir_cli_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
pass=0
fail=0

# refused PROG OPT ARGS...: runs PROG ARGS... and checks the refusal of OPT
refused() {
    prog=$1
    opt=$2
    shift 2
    echo "$prog $opt" >>"$OUT/covered"
    "$BIN/$prog" "$@" >"$OUT/stdout" 2>"$OUT/stderr" </dev/null
    rc=$?
    lines=$(wc -l <"$OUT/stderr")
    what="$prog $*"
    if [ "$rc" -eq 0 ]; then
        echo "FAIL: $what: exit 0"
    elif [ "$rc" -ge 126 ]; then
        echo "FAIL: $what: exit $rc (crashed or not run)"
    elif [ "$lines" -ne 1 ]; then
        echo "FAIL: $what: $lines lines on stderr, not 1:"
        sed 's/^/    /' "$OUT/stderr"
    elif ! grep -q -e "^$prog: .*$opt" "$OUT/stderr"; then
        echo "FAIL: $what: the line does not name $opt: $(cat "$OUT/stderr")"
    elif grep -q "^$prog: $prog:" "$OUT/stderr"; then
        echo "FAIL: $what: the program's name is doubled: $(cat "$OUT/stderr")"
    else
        pass=$((pass + 1))
        return 0
    fi
    fail=$((fail + 1))
    return 1
}

# Values: not a number, trailing junk, out of range (overflowing the type,
# so out of range whatever the option's own limits), and decimal commas.
INT_BAD='abc 5x 99999999999999999999'
REAL_BAD='abc 0.5x 1e999 0,5'
U64_BAD='abc 5x 99999999999999999999999'

# check PROG KIND OPT [PREFIX_ARGS...]: every bad value of KIND for OPT
check() {
    prog=$1
    kind=$2
    opt=$3
    shift 3
    case $kind in
    int) vals=$INT_BAD ;;
    real) vals=$REAL_BAD ;;
    u64) vals=$U64_BAD ;;
    esac
    for v in $vals; do
        refused "$prog" "$opt" "$@" "$opt" "$v" x
    done
}

for o in -ts -stride -ratio -b -deflate; do check cmir_tile int "$o"; done
for o in -nodata_frac -label_min_frac -multilabel; do check cmir_tile real "$o"; done

for o in -threads -epochs0 -epochs1 -epochs2 -batch -dv -hidden; do check cmir_train int "$o"; done
check cmir_train u64 -seed
for o in -lr0 -lr1 -lr2 -tau -test_frac -valid_frac -label_frac -ortho -dropout -cnn_weight -w_pair -w_class -w_norm -w_cross -w_reg -alpha \
    -feature_noise; do
    check cmir_train real "$o"
done

check cmir_index int -threads

for o in -k -threads -row; do check cmir_search int "$o"; done
check cmir_search real -max_dist
for v in $REAL_BAD; do
    refused cmir_search -bbox -bbox "$v" 35 117 36 x
    refused cmir_search -bbox -bbox 116 35 117 "$v" x
done
for v in $INT_BAD; do
    refused cmir_search -srcwin -raster a.tif -srcwin "$v" 0 16 16 x
    refused cmir_search -srcwin -raster a.tif -srcwin 0 0 16 "$v" x
done

for o in -threads -paper_queries; do check cmir_eval int "$o"; done
check cmir_eval u64 -seed
for v in abc 5,x 5x 10,99999999999999999999 10,,20 ,10; do refused cmir_eval -k -k "$v" a b; done

for o in -n -size -first -epsg -ratio -oversample -threads; do check cmir_synth int "$o"; done
check cmir_synth u64 -seed
for o in -res -cell -variation -noise -confusion -mtf; do check cmir_synth real "$o"; done
for v in $REAL_BAD; do
    refused cmir_synth -origin -origin "$v" 0
    refused cmir_synth -origin -origin 0 "$v"
done
for o in -pan_weights -bands; do
    for v in abc 1,2,3 1,2,3,4x 1,2,3,1e999 1,2,3,4,5 '1 2 3 4'; do refused cmir_synth "$o" "$o" "$v"; done
done

# Limits of the options themselves
refused cmir_search -k -k 0 x
refused cmir_search -k -k 100001 x
refused cmir_search -max_dist -max_dist -1 x
refused cmir_search -bbox -bbox 181 35 182 36 x
refused cmir_tile -deflate -deflate 10 x
refused cmir_tile -nodata_frac -nodata_frac 1.5 x
refused cmir_train -test_frac -test_frac 2 x
refused cmir_train -valid_frac -valid_frac 1.5 x
refused cmir_train -batch -batch 0 x
refused cmir_eval -k -k 0 a b
refused cmir_eval -k -k 1,2,3,4,5,6,7,8,9 a b
refused cmir_synth -n -n 0

# A value that is missing is named too
refused cmir_tile -ts -ts
for p in cmir_train cmir_index cmir_search cmir_eval cmir_synth; do refused "$p" -threads -threads; done

# An empty query list is named
: >"$OUT/empty.txt"
printf '# only a comment\n\n' >"$OUT/comments.txt"
refused cmir_search "$OUT/empty.txt" -model m.mat -index i.gpkg -queries "$OUT/empty.txt" hits.geojson
refused cmir_search "$OUT/comments.txt" -model m.mat -index i.gpkg -queries "$OUT/comments.txt" hits.geojson

# -spat: four numbers like -bbox, in the index CRS (any finite value)
for v in $REAL_BAD; do
    refused cmir_search -spat -spat "$v" 0 1 1 x
    refused cmir_search -spat -spat 0 0 1 "$v" x
done

# The specific messages of -k (not a catch-all)
"$BIN/cmir_search" -k 0 x 2>"$OUT/k0" >/dev/null
"$BIN/cmir_search" -k abc x 2>"$OUT/kabc" >/dev/null
if grep -qx "cmir_search: -k: 0 is out of range (1..100000)" "$OUT/k0" &&
    grep -qx "cmir_search: -k: 'abc' is not an integer (1..100000)" "$OUT/kabc"; then
    pass=$((pass + 1))
else
    echo "FAIL: -k 0 / -k abc: $(cat "$OUT/k0" "$OUT/kabc")"
    fail=$((fail + 1))
fi

# Every option each program's --help names is either checked above (a
# numeric one) or listed here as taking no number (a flag, a file, a name,
# or another program's option named in the text). A new option that is in
# neither fails this test until it is classified, so none can be missed.
NOT_NUMERIC='
cmir_tile -append -overwrite -keep_nodata -keep_unlabelled -label_field -label_layer -labels -lyr -ms -pan -q -r -oo
cmir_train -audio_feature -checkpoint -dict -features -features_dir -labels -multilabel -no_augment -overwrite -q
cmir_train -resume -speech -speech_feature -split -stage1_from -unified -init -pretrain -precision -descriptor -unlabelled_pairs
cmir_index -append -merge -model -overwrite -q -speech -t_srs -shards -np -no_codes
cmir_search -audio -index -lco -model -of -oo -overwrite -q -queries -quicklook -raster -spat_srs -speech -t_srs
cmir_search -target -shards -cmirq -qgs -scan
cmir_eval -all -valid -csv -json -overwrite -plot -q -speech -unified -voices -ranking
cmir_synth -class_res -co -labels -ms -o -oo -ot -overwrite -pan -prefix -q -rgb -wald -multilabel -indices
'
for p in cmir_tile cmir_train cmir_index cmir_search cmir_eval cmir_synth; do
    opts=$("$BIN/$p" --help | tr -cs 'A-Za-z0-9_-' '\n' | grep -E '^-[a-z][a-z0-9_]*$' | sort -u)
    [ -n "$opts" ] || { echo "FAIL: $p --help names no option"; fail=$((fail + 1)); }
    for o in $opts; do
        if grep -qx "$p $o" "$OUT/covered"; then
            pass=$((pass + 1))
        elif printf '%s\n' "$NOT_NUMERIC" | grep "^$p " | tr ' ' '\n' | grep -qx -e "$o"; then
            pass=$((pass + 1))
        else
            echo "FAIL: $p: option $o (from --help) is neither checked as a number here nor listed as NOT_NUMERIC"
            fail=$((fail + 1))
        fi
    done
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
