#!/bin/sh
# Interrupted and starved writes: kill -9 at random moments during an
# archive append (cmir_tile -append) and an index append (cmir_index
# -append), and writes into a tiny filesystem (a 3 MB tmpfs, root only).
# Every time, the file that was there before is intact and opens (GDAL's
# own gdalinfo/ogrinfo read it, through the CMIR plugin for the archive).
# Then training with -checkpoint killed at random moments: the checkpoint
# is absent or resumes into the model an uninterrupted run gives.
# Usage: test_interrupts.sh BIN_DIR PLUGIN_DIR SOURCE_DIR [KILLS]  (KILLS per case, default 5)
set -u
BIN=$1
export GDAL_DRIVER_PATH="$2"
ROOT=$3
N=${4:-5}
S=$ROOT/sample_scenes
OUT=$(mktemp -d /tmp/cmir_interrupts_XXXXXX)
MNT=$OUT/small
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    rm -rf "$OUT"
}
trap cleanup EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
scene() { echo "-pan $S/dsrsid_like_00$1_pan.tif -ms $S/dsrsid_like_00$1_ms.tif -labels $S/dsrsid_like_00$1_class.tif"; }
# seeded pseudo-random delays in [0, 0.08) s (an append of one scene takes ~0.1 s)
delay() { awk -v s="$1" 'BEGIN { srand(s); printf "%.3f", rand() * 0.08 }'; }

# fixtures: an archive of scene 0, a model, an index
# shellcheck disable=SC2046
"$BIN/cmir_tile" -q $(scene 0) "$OUT/a.mat" || { echo "FAIL fixture"; exit 1; }
"$BIN/cmir_train" -q -threads 2 -epochs1 1 -epochs2 5 "$OUT/a.mat" "$OUT/m.mat" || { echo "FAIL fixture"; exit 1; }
"$BIN/cmir_index" -q -model "$OUT/m.mat" "$OUT/a.mat" "$OUT/i.gpkg" || { echo "FAIL fixture"; exit 1; }
cp "$OUT/a.mat" "$OUT/a.orig"
cp "$OUT/i.gpkg" "$OUT/i.orig"
# In a sanitizer build the plugin needs the sanitizer runtimes preloaded
# into GDAL's (uninstrumented) programs.
# shellcheck source=tests/sanitizer_env.sh
. "$(dirname "$0")/sanitizer_env.sh"
gdal() { gdal_env "$@"; }
tiles_of() { gdal gdalinfo "$1" 2>/dev/null | grep -c '_NAME=CMIR:.*:PAN:'; }
rows_of() { gdal ogrinfo -ro -so "$1" tiles 2>/dev/null | sed -n 's/^Feature Count: //p'; }
a0=$(tiles_of "$OUT/a.mat")
i0=$(rows_of "$OUT/i.gpkg")
if [ "$a0" -le 0 ] || [ "$i0" -le 0 ]; then echo "FAIL fixture: $a0 tiles, $i0 rows"; exit 1; fi

# 1. archive append killed at random moments
for k in $(seq 1 "$N"); do
    # shellcheck disable=SC2046
    "$BIN/cmir_tile" -q -append $(scene 1) "$OUT/a.mat" &
    pid=$!
    sleep "$(delay "$k")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    t=$(tiles_of "$OUT/a.mat")
    if cmp -s "$OUT/a.mat" "$OUT/a.orig"; then
        ok "archive append killed after $(delay "$k") s: archive unchanged ($t tiles, opens)"
    elif [ "$t" -gt "$a0" ]; then
        ok "archive append finished before the kill: $t tiles, opens"
        cp "$OUT/a.orig" "$OUT/a.mat"
    else
        bad "archive append killed: the archive no longer opens or lost tiles ($t of $a0)"
        cp "$OUT/a.orig" "$OUT/a.mat"
    fi
    rm -f "$OUT"/a.tmp-*.mat
done

# 2. index append killed at random moments
# shellcheck disable=SC2046 # scene prints options, split on purpose
"$BIN/cmir_tile" -q $(scene 2) "$OUT/b.mat"
for k in $(seq 1 "$N"); do
    "$BIN/cmir_index" -q -append -model "$OUT/m.mat" "$OUT/b.mat" "$OUT/i.gpkg" &
    pid=$!
    sleep "$(delay "$((k + 100))")"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    r=$(rows_of "$OUT/i.gpkg")
    if [ "$r" = "$i0" ] && "$BIN/cmir_search" -q -overwrite -model "$OUT/m.mat" -index "$OUT/i.gpkg" -row 0 -k 3 "$OUT/h.geojson"; then
        ok "index append killed: index as it was ($r rows), searchable"
    elif [ -n "$r" ] && [ "$r" -gt "$i0" ] && "$BIN/cmir_search" -q -overwrite -model "$OUT/m.mat" -index "$OUT/i.gpkg" -row 0 -k 3 "$OUT/h.geojson"; then
        ok "index append finished before the kill: $r rows, searchable"
        cp "$OUT/i.orig" "$OUT/i.gpkg"
    else
        bad "index append killed: '$r' rows (had $i0), or it cannot be searched"
        cp "$OUT/i.orig" "$OUT/i.gpkg"
    fi
done

# 3. disk full: a 3 MB filesystem (root only; skipped otherwise)
mkdir -p "$MNT"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=3m tmpfs "$MNT" 2>/dev/null; then
    cp "$OUT/a.orig" "$MNT/a.mat" 2>/dev/null || true
    if [ -f "$MNT/a.mat" ]; then
        # shellcheck disable=SC2046
        msg=$("$BIN/cmir_tile" -q -append $(scene 1) $(scene 2) $(scene 3) "$MNT/a.mat" 2>&1)
        rc=$?
        # the first line is ours; HDF5 itself may print at exit about the file it could not flush
        first=$(echo "$msg" | head -n 1)
        if [ $rc -ne 0 ] && cmp -s "$MNT/a.mat" "$OUT/a.orig" && echo "$first" | grep -q '^cmir_tile: .*No space left on device'; then
            ok "archive append on a full disk refused, old archive intact: $(echo "$first" | cut -c1-110)..."
        else
            bad "archive append on a full disk: exit $rc, message '$msg'"
        fi
        left=$(find "$MNT" -name '*tmp*' | wc -l)
        if [ "$left" -eq 0 ]; then ok "no temporary file left on the full disk"; else bad "temporary files left: $(ls "$MNT")"; fi
    fi
    msg=$("$BIN/cmir_index" -q -model "$OUT/m.mat" "$OUT/a.orig" "$OUT/b.mat" "$MNT/big.gpkg" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && [ ! -f "$MNT/big.gpkg" ]; then
        ok "index on a full disk refused, nothing left: $msg"
    elif [ $rc -eq 0 ]; then
        ok "index fitted on the small disk (nothing to test)"
    else
        bad "index on a full disk: exit $rc, '$msg', files: $(ls "$MNT")"
    fi
    umount "$MNT"
else
    echo "skip disk-full cases: needs root and tmpfs"
fi
# 4. training killed at random moments while it writes checkpoints
# (-checkpoint after every stage-1 epoch and stage-2 tenth): afterwards the
# checkpoint either does not exist or resumes, and the resumed run gives
# the model an uninterrupted run gives (same MODEL_ID, read back through an
# index built with it). Delays are drawn over the uninterrupted run's time.
TRAIN="-q -threads 2 -epochs1 2 -epochs2 5"
model_id() { # the model's identity, as an index built with it records it
    rm -f "$OUT/id.gpkg"
    "$BIN/cmir_index" -q -model "$1" "$OUT/a.orig" "$OUT/id.gpkg" 2>/dev/null &&
        gdal ogrinfo -ro -q "$OUT/id.gpkg" -sql "SELECT value FROM cmir_meta WHERE key = 'model_id'" 2>/dev/null |
        sed -n 's/^ *value (String) = //p'
}
t0=$(date +%s.%N)
# shellcheck disable=SC2086
"$BIN/cmir_train" $TRAIN -checkpoint "$OUT/ref_ck.mat" "$OUT/a.orig" "$OUT/ref.mat" || bad "checkpointed training fixture"
tt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
ref_id=$(model_id "$OUT/ref.mat")
[ -n "$ref_id" ] || bad "the uninterrupted model's identity could not be read"
for k in $(seq 1 "$N"); do
    rm -f "$OUT/ck.mat" "$OUT/r.mat"
    d=$(awk -v s="$((k + 200))" -v t="$tt" 'BEGIN { srand(s); printf "%.3f", rand() * t }')
    # shellcheck disable=SC2086
    "$BIN/cmir_train" $TRAIN -checkpoint "$OUT/ck.mat" "$OUT/a.orig" "$OUT/r.mat" &
    pid=$!
    sleep "$d"
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$OUT"/ck.tmp-*.mat "$OUT"/r.tmp-*.mat
    if [ -f "$OUT/r.mat" ]; then
        how="the run finished before the kill"
        rid=$(model_id "$OUT/r.mat")
    elif [ -f "$OUT/ck.mat" ]; then
        how="checkpoint left, resumed"
        # shellcheck disable=SC2086
        msg=$("$BIN/cmir_train" $TRAIN -checkpoint "$OUT/ck.mat" -resume "$OUT/ck.mat" "$OUT/a.orig" "$OUT/r.mat" 2>&1) ||
            how="checkpoint left, but the resume failed: $msg"
        rid=$(model_id "$OUT/r.mat")
    else
        how="no checkpoint yet, trained from the start"
        # shellcheck disable=SC2086
        "$BIN/cmir_train" $TRAIN -checkpoint "$OUT/ck.mat" "$OUT/a.orig" "$OUT/r.mat" || how="$how, and that failed"
        rid=$(model_id "$OUT/r.mat")
    fi
    if [ -n "$rid" ] && [ "$rid" = "$ref_id" ]; then
        ok "training killed after $d s of ~$tt: $how; model $rid = the uninterrupted run's"
    else
        bad "training killed after $d s: $how; model '$rid', the uninterrupted run's '$ref_id'"
    fi
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
