#!/bin/sh
# Concurrent writers of one index: two cmir_index -append runs on the same
# GeoPackage at once (the second started after a seeded random delay, so
# that it opens the index before, during or after the first one's
# transaction). Each run either succeeds ("INDEX: N tiles indexed") or is
# refused with one line naming the index; at least one succeeds; nothing is
# lost or duplicated: the tiles layer holds the rows it had plus exactly
# what the successful runs report, row numbers are 0..count-1 with no
# repeat, the embedding chunks cover exactly those rows (and the int8
# code chunks the same ones), the stored count agrees, ogrinfo opens it
# and cmir_search answers from it. Then two new
# builds of the same index at once: the result is one of them, whole.
# Usage: test_concurrency.sh BIN_DIR SOURCE_DIR [TRIALS]  (default 10)
set -u
BIN=$1
ROOT=$2
N=${3:-10}
S=$ROOT/sample_scenes
OUT=$(mktemp -d /tmp/cmir_concurrency_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
scene() { echo "-pan $S/dsrsid_like_00$1_pan.tif -ms $S/dsrsid_like_00$1_ms.tif -labels $S/dsrsid_like_00$1_class.tif"; }
# seeded delays in [0, 0.3) s: a small append takes ~0.2 s here, a large one ~0.4 s
delay() { awk -v s="$1" 'BEGIN { srand(s); printf "%.3f", rand() * 0.3 }'; }
sql() { ogrinfo -ro -q "$1" -sql "$2" 2>/dev/null | sed -n 's/^ *[^ ].* = //p' | head -n 1; }
added() { sed -n 's/.*: \([0-9][0-9]*\) tiles indexed$/\1/p' "$1"; }

# fixtures: archives of scene 0 (the index), 1, 2, and 0-3 together, a model, an index
# shellcheck disable=SC2046 # scene prints -pan/-ms/-labels options, split on purpose
if ! { "$BIN/cmir_tile" -q $(scene 0) "$OUT/a.mat" &&
    "$BIN/cmir_tile" -q $(scene 1) "$OUT/b.mat" &&
    "$BIN/cmir_tile" -q $(scene 2) "$OUT/c.mat" &&
    "$BIN/cmir_tile" -q $(scene 0) $(scene 1) $(scene 2) $(scene 3) "$OUT/big.mat" &&
    "$BIN/cmir_train" -q -threads 2 -epochs1 1 -epochs2 5 "$OUT/a.mat" "$OUT/m.mat" &&
    "$BIN/cmir_index" -q -model "$OUT/m.mat" "$OUT/a.mat" "$OUT/i.orig"; }; then
    echo "FAIL fixture"
    exit 1
fi
i0=$(sql "$OUT/i.orig" "SELECT COUNT(*) FROM tiles")
if [ -z "$i0" ] || [ "$i0" -le 0 ]; then echo "FAIL fixture: '$i0' rows"; exit 1; fi

# Checks one run's outcome: prints its added rows (0 when refused), or
# "bad" when it neither succeeded as it should nor was refused cleanly.
outcome() { # rc stdout stderr
    if [ "$1" -eq 0 ]; then
        a=$(added "$2")
        [ -n "$a" ] && echo "$a" || echo bad
    else
        # one line (the progress bar may precede it on stderr) naming the index
        msg=$(tr '\r' '\n' <"$3" | grep '^cmir_index: ')
        if [ "$(echo "$msg" | wc -l)" -eq 1 ] && echo "$msg" | grep -q 'i\.gpkg'; then
            echo 0
        else
            echo bad
        fi
    fi
}

both=0
refused=0
lastmsg=
for k in $(seq 1 "$N"); do
    cp "$OUT/i.orig" "$OUT/i.gpkg"
    # alternate which run is the large one
    if [ $((k % 2)) -eq 0 ]; then first=c.mat; second=big.mat; else first=big.mat; second=c.mat; fi
    "$BIN/cmir_index" -model "$OUT/m.mat" -append "$OUT/$first" "$OUT/i.gpkg" >"$OUT/o1" 2>"$OUT/e1" &
    p1=$!
    sleep "$(delay "$k")"
    "$BIN/cmir_index" -model "$OUT/m.mat" -append "$OUT/$second" "$OUT/i.gpkg" >"$OUT/o2" 2>"$OUT/e2" &
    p2=$!
    wait "$p1"
    r1=$?
    wait "$p2"
    r2=$?
    a1=$(outcome $r1 "$OUT/o1" "$OUT/e1")
    a2=$(outcome $r2 "$OUT/o2" "$OUT/e2")
    what="trial $k ($first, then $second after $(delay "$k") s): exits $r1/$r2, added '$a1'/'$a2'"
    if [ "$a1" = bad ] || [ "$a2" = bad ]; then
        bad "$what: a run neither succeeded nor was refused with one line naming the index: $(cat "$OUT/e1" "$OUT/e2" | tr '\r' '\n' | grep -v '^[0-9. -]*done\.*$' | head -n 3)"
        continue
    fi
    if [ $r1 -ne 0 ] && [ $r2 -ne 0 ]; then
        bad "$what: both refused (one of them must go through)"
        continue
    fi
    [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && both=$((both + 1))
    if [ $r1 -ne 0 ] || [ $r2 -ne 0 ]; then
        refused=$((refused + 1))
        lastmsg=$(cat "$OUT/e1" "$OUT/e2" | tr '\r' '\n' | grep '^cmir_index: ' | sed "s#$OUT/##g")
    fi
    want=$((i0 + a1 + a2))
    n=$(sql "$OUT/i.gpkg" "SELECT COUNT(*) FROM tiles")
    d=$(sql "$OUT/i.gpkg" "SELECT COUNT(DISTINCT \"row\") FROM tiles")
    mx=$(sql "$OUT/i.gpkg" "SELECT MAX(\"row\") FROM tiles")
    meta=$(sql "$OUT/i.gpkg" "SELECT value FROM cmir_meta WHERE key = 'count'")
    emb=$(sql "$OUT/i.gpkg" "SELECT SUM(n_rows) || ',' || MAX(first_row + n_rows) || ',' || COUNT(DISTINCT first_row) || ',' || COUNT(*) FROM cmir_embeddings")
    q8=$(sql "$OUT/i.gpkg" "SELECT SUM(n_rows) || ',' || MAX(first_row + n_rows) || ',' || COUNT(DISTINCT first_row) || ',' || COUNT(*) FROM cmir_q8")
    fc=$(ogrinfo -ro -so "$OUT/i.gpkg" tiles 2>/dev/null | sed -n 's/^Feature Count: //p')
    if [ "$n" = "$want" ] && [ "$d" = "$want" ] && [ "$mx" = "$((want - 1))" ] && [ "$meta" = "$want" ] &&
        [ "$fc" = "$want" ] && [ "${emb%,*,*}" = "$want,$want" ] &&
        [ "$(echo "$emb" | cut -d, -f3)" = "$(echo "$emb" | cut -d, -f4)" ] &&
        [ "$q8" = "$emb" ] &&
        "$BIN/cmir_search" -q -overwrite -model "$OUT/m.mat" -index "$OUT/i.gpkg" -row $((want - 1)) -k 3 "$OUT/h.geojson"; then
        ok "$what: $want rows = $i0 + $a1 + $a2, rows 0..$mx unique, chunks and count agree, searchable"
    else
        bad "$what: want $want rows; tiles $n (distinct rows $d, max $mx), meta count '$meta', ogrinfo '$fc', embedding chunks (rows, end, distinct firsts, chunks) '$emb', int8 code chunks '$q8'"
    fi
done
# shellcheck disable=SC2016 # the quotes around $lastmsg are text, inside double quotes
echo "  $N trials: both appends went through (one after the other) $both times, one was refused $refused times${lastmsg:+, e.g. '$lastmsg'}"

# Two new builds of the same index at once: written to temporary files and
# renamed, so the index is one of them, whole, and no temporary is left
# (-overwrite: the second to start may find the first one's index there).
rm -f "$OUT/n.gpkg"
"$BIN/cmir_index" -q -overwrite -model "$OUT/m.mat" "$OUT/b.mat" "$OUT/n.gpkg" 2>"$OUT/e1" &
p1=$!
"$BIN/cmir_index" -q -overwrite -model "$OUT/m.mat" "$OUT/big.mat" "$OUT/n.gpkg" 2>"$OUT/e2" &
p2=$!
wait "$p1"
r1=$?
wait "$p2"
r2=$?
n=$(sql "$OUT/n.gpkg" "SELECT COUNT(*) FROM tiles")
# the two possible results, built one at a time
"$BIN/cmir_index" -q -model "$OUT/m.mat" "$OUT/b.mat" "$OUT/nb.gpkg" && "$BIN/cmir_index" -q -model "$OUT/m.mat" "$OUT/big.mat" "$OUT/nbig.gpkg"
nb=$(sql "$OUT/nb.gpkg" "SELECT COUNT(*) FROM tiles")
nbig=$(sql "$OUT/nbig.gpkg" "SELECT COUNT(*) FROM tiles")
# temporaries beside n.gpkg, by the old (n.gpkg.tmp*) or the atomic helper's (n.tmp-*) name
left=0
for f in "$OUT"/n.gpkg.tmp* "$OUT"/n.tmp-*; do
    [ -e "$f" ] || continue
    left=$((left + 1))
done
if [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && { [ "$n" = "$nb" ] || [ "$n" = "$nbig" ]; } && [ "$left" -eq 0 ] &&
    "$BIN/cmir_search" -q -overwrite -model "$OUT/m.mat" -index "$OUT/n.gpkg" -row 0 -k 3 "$OUT/h.geojson"; then
    ok "two new builds at once: the index is one of them whole ($n rows; $nb or $nbig), no temporary left"
else
    bad "two new builds at once: exits $r1/$r2, $n rows (want $nb or $nbig), $left temporaries left: $(cat "$OUT/e1" "$OUT/e2")"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
