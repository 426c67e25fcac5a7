#!/bin/sh
# MATLAB/Octave interop: the paper's KNN evaluation, corrected (tests/knn_eval.m:
# true Euclidean distance, ties by the smaller index, whole-database mAP), run
# under GNU Octave on the unified.mat that cmir_train writes, must rank the MS
# codes for every PAN query as cmir_search does on the index of the same model,
# with the same distances, and give cmir_eval's x->y mAP and P@k.
#
#   sh tests/test_octave.sh BIN_DIR SOURCE_DIR
#
# Exits 77 (skipped) when neither octave-cli nor octave is installed
# (Debian: apt-get install --no-install-recommends octave).
#
# Row numbering: unified.mat's featuresx/featuresy row i (1-based in Octave)
# is archive tile i-1, PAN/MS; knn_eval.m writes 0-based indices. In the
# index, rows 0..N-1 are the PAN tiles in archive order and N..2N-1 the MS
# tiles, and cmir_search reports each hit's row and tile_id: both are checked.
#
# The index's codes come from cmir_model_embed, unified.mat's from the same
# networks at the end of training: equal, or equal to float rounding. So a
# hit order may differ only between hits whose Octave distances differ by
# less than TIE_TOL (relative), and the distances (cmir_search writes
# float) must agree within DIST_TOL (relative).
set -eu
BIN=${1:?usage: test_octave.sh BIN_DIR SOURCE_DIR}
ROOT=${2:?usage: test_octave.sh BIN_DIR SOURCE_DIR}
TIE_TOL=1e-5
DIST_TOL=1e-4

if command -v octave-cli >/dev/null 2>&1; then
    OCTAVE="octave-cli"
elif command -v octave >/dev/null 2>&1; then
    OCTAVE="octave --no-gui"
else
    echo "SKIP: GNU Octave (octave-cli or octave) is not installed"
    exit 77
fi
# --no-history: Octave 7 otherwise complains on exit where it cannot save one
OCTAVE="$OCTAVE --quiet --norc --no-history"

OUT=$(mktemp -d /tmp/cmir_octave_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
cd "$OUT"
die() { [ -s log ] && cat log; echo "FAIL: $*"; echo "0 passed, 1 failed"; exit 1; }

# ---- a small pipeline: tile, train (with unified.mat), index
set --
SCENES=$ROOT/sample_scenes
if ! ls "$SCENES"/*_pan.tif >/dev/null 2>&1; then
    SCENES=$OUT/scenes
    mkdir "$SCENES"
    "$BIN/cmir_synth" -q -n 2 -size 512 -o "$SCENES" >>log 2>&1 || die "cmir_synth"
fi
for f in "$SCENES"/*_pan.tif; do set -- "$@" -pan "$f"; done
for f in "$SCENES"/*_ms.tif; do set -- "$@" -ms "$f"; done
for f in "$SCENES"/*_class.tif; do set -- "$@" -labels "$f"; done
"$BIN/cmir_tile" -q "$@" A.mat >>log 2>&1 || die "cmir_tile"
"$BIN/cmir_train" -q -seed 1 -epochs1 1 -epochs2 20 -unified U.mat A.mat M.mat >>log 2>&1 || die "cmir_train"
"$BIN/cmir_index" -q -model M.mat A.mat I.gpkg >>log 2>&1 || die "cmir_index"

pass=0
fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
ko() { echo "FAIL $*"; fail=$((fail + 1)); }

# ---- the index's row numbering
sql() { ogrinfo -ro -q -sql "$1" I.gpkg | sed -n 's/^ *v ([A-Za-z0-9]*) = //p'; }
n2=$(sql "SELECT COUNT(*) AS v FROM tiles")
[ -n "$n2" ] || die "ogrinfo cannot read I.gpkg"
N=$((n2 / 2))
[ "$N" -ge 2 ] || die "the index holds $n2 rows"
bad=$(sql "SELECT COUNT(*) AS v FROM tiles WHERE NOT ((modality = 'PAN' AND row = tile_id AND row < $N) OR (modality = 'MS' AND row = tile_id + $N))")
if [ "$bad" = 0 ]; then
    ok "index: rows 0..$((N - 1)) are PAN tiles 0..$((N - 1)), rows $N..$((n2 - 1)) MS tiles 0..$((N - 1))"
else
    ko "index: $bad of $n2 rows break 'PAN row = tile_id, MS row = tile_id + $N'"
fi

# ---- Octave: full x->y rankings of every PAN tile, and the metrics
$OCTAVE --eval "addpath('$ROOT/tests'); knn_eval('U.mat', 0:$((N - 1)), $N, 'octave_hits.txt');" >octave.log 2>&1 ||
    { cat octave.log; die "knn_eval.m under $OCTAVE"; }
sed 's/^/     octave: /' octave.log
nu=$(sed -n 's/^knn_eval: U.mat: \([0-9]*\) items.*/\1/p' octave.log)
[ "$nu" = "$N" ] || die "unified.mat has ${nu:-?} items, the index $N tiles per modality"

# ---- cmir_search: the same queries, every MS tile, as CSV
i=0
: >queries.txt
while [ $i -lt "$N" ]; do echo "row $i" >>queries.txt; i=$((i + 1)); done
"$BIN/cmir_search" -q -model M.mat -index I.gpkg -queries queries.txt -k "$N" -of CSV cmir_hits.csv >>log 2>&1 ||
    die "cmir_search"

# ---- compare, query by query
awk -v N="$N" -v tie="$TIE_TOL" -v dtol="$DIST_TOL" '
function abs(x) { return x < 0 ? -x : x }
function unq(s) { gsub(/"/, "", s); return s }
FNR == NR {                       # octave_hits.txt: query rank index distance
    if ($0 ~ /^#/ || NF < 4) next
    oid[$1, $2] = $3; od[$1, $2] = $4; odx[$1, $3] = $4; on[$1]++
    next
}
FNR == 1 { next }                 # cmir_hits.csv header
{
    split($0, f, ",")
    if (!match($0, /PAN tile at row [0-9]+ /)) { bad_line++; next }
    q = substr($0, RSTART + 16, RLENGTH - 17) + 0
    r = unq(f[2]) + 0
    cd[q, r] = f[3] + 0; crow[q, r] = unq(f[4]) + 0; cid[q, r] = unq(f[5]) + 0; cmod[q, r] = f[6]
    cn[q]++
}
END {
    if (bad_line) { printf "FAIL cmir_hits.csv: %d lines without a PAN query row\n", bad_line; nfail++ }
    for (q = 0; q < N; q++) {
        err = ""; swaps = 0; worst = 0
        if (on[q] != N || cn[q] != N)
            err = sprintf("%d Octave hits, %d cmir_search hits (want %d)", on[q], cn[q], N)
        delete seen
        for (r = 1; err == "" && r <= N; r++) {
            c = cid[q, r]
            if (cmod[q, r] != "MS" || crow[q, r] != c + N)
                err = sprintf("rank %d: row %d, tile %d, %s is not MS tile %d", r, crow[q, r], c, cmod[q, r], c)
            else if (c < 0 || c >= N || (c in seen))
                err = sprintf("rank %d: tile %d out of range or repeated", r, c)
            seen[c] = 1
            if (err != "") break
            d_o = odx[q, c]                       # Octave distance of cmir_search hit
            if (c != oid[q, r]) {
                if (abs(d_o - od[q, r]) > tie * od[q, r] + 1e-30) {
                    err = sprintf("rank %d: cmir_search has tile %d (Octave distance %.9g), Octave tile %d (%.9g)", \
                                  r, c, d_o, oid[q, r], od[q, r])
                    break
                }
                swaps++
            }
            rel = abs(cd[q, r] - d_o) / (d_o > 0 ? d_o : 1)
            if (rel > worst) worst = rel
            if (rel > dtol) {
                err = sprintf("rank %d, tile %d: distance %.9g in cmir_search, %.9g in Octave", r, c, cd[q, r], d_o)
                break
            }
        }
        if (err == "") {
            printf "ok   query PAN tile %d: %d MS hits in Octave'"'"'s order", q, N
            if (swaps) printf " but for %d ranks swapped within near ties", swaps
            printf ", distances within %.1e relative\n", worst
            npass++
        } else {
            printf "FAIL query PAN tile %d: %s\n", q, err
            nfail++
        }
        if (worst > maxrel) maxrel = worst
        tswaps += swaps
    }
    printf "SUMMARY %d %d %d %.3e\n", npass, nfail, tswaps, maxrel
}' octave_hits.txt cmir_hits.csv >compare.txt || die "awk"
grep -v '^SUMMARY' compare.txt
# shellcheck disable=SC2046 # four numbers, split on purpose
set -- $(sed -n 's/^SUMMARY //p' compare.txt)
pass=$((pass + $1))
fail=$((fail + $2))
echo "     rankings: $1 queries agree, $2 differ; $3 ranks swapped within near ties (Octave distances within $TIE_TOL relative); largest distance difference $4 relative"

# ---- whole-database metrics: knn_eval.m against cmir_eval -unified (x->y; CSV has 6 decimals)
"$BIN/cmir_eval" -q -unified U.mat -csv metrics.csv >>log 2>&1 || die "cmir_eval -unified"
if awk -F, '
NR == FNR { v[$1] = $2; next }          # octave.log: "mAP 0.4", "P@10 0.3", "queries 60 (...)"
$1 == "direction" { for (i = 1; i <= NF; i++) col[$i] = i; next }
$1 == "x->y" {
    n = split("queries:queries map:mAP p_at_10:P@10 p_at_20:P@20 p_at_50:P@50", pairs, " ")
    bad = 0
    for (i = 1; i <= n; i++) {
        split(pairs[i], kv, ":")
        if (!(kv[1] in col) || !(kv[2] in v)) { printf "     %s: missing\n", kv[2]; bad = 1; continue }
        a = $(col[kv[1]]) + 0; b = v[kv[2]] + 0
        d = a - b; if (d < 0) d = -d
        printf "     %-8s cmir_eval %.6f  knn_eval.m %.9f\n", kv[2], a, b
        if (d > 1.5e-6) bad = 1
    }
    found = 1
}
END { exit !(found && !bad) }' FS=' ' octave.log FS=',' metrics.csv; then
    ok "x->y mAP, P@10, P@20, P@50 and query count: knn_eval.m = cmir_eval -unified"
else
    ko "x->y metrics: knn_eval.m and cmir_eval -unified differ (above)"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
