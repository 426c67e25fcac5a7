#!/bin/sh
# batch-workflow.sh on a scene directory and scene names holding a space,
# '"', '$', a backtick, '|' and '&': every name reaches the programs as one
# argument, intact, each pair gets its part and shard, and no piece of a
# name runs as code. The programs are stubs (this checks the script's
# handling of names, not the programs): each logs its arguments, checks
# that its inputs exist and creates its output.
#
#   sh tests/test_batch_names.sh SOURCE_DIR [SCRIPT]
set -eu
ROOT=$1
SCRIPT=${2:-$ROOT/python-free-scripts/batch-workflow.sh}
T=$(mktemp -d /tmp/cmir_names_XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" # a name that ran as code would create pwned* here
mkdir bin
export CMIR_STUB_LOG="$T/log"
: >"$CMIR_STUB_LOG"

# cmir_tile / cmir_index / cmir_search: log "prog [arg] [arg]...", check
# the inputs, create the last argument (the output)
cat >bin/stub <<'STUB'
#!/bin/sh
prog=${0##*/}
# one line, one write: the workflow runs stubs in parallel (xargs -P), and
# separate printf calls of two stubs interleave in the shared log
line=$prog
for a; do line="$line [$a]"; done
printf '%s\n' "$line" >>"$CMIR_STUB_LOG"
prev=""
for a; do
    case $prev in
    -pan | -ms | -labels | -model | -queries)
        [ -f "$a" ] || { echo "$prog stub: $prev '$a' does not exist" >&2; exit 1; } ;;
    esac
    prev=$a
    last=$a
done
: >"$last"
STUB
chmod +x bin/stub
for p in cmir_tile cmir_index cmir_search; do ln -s stub "bin/$p"; done
printf '#!/bin/sh\necho "Feature Count: 6"\n' >bin/ogrinfo
chmod +x bin/ogrinfo

# the scenes, in a directory whose name is as hostile as theirs
# shellcheck disable=SC2016 # not expanded, on purpose: the name is the attack
dir=$T/'in dir "q" $(touch pwned_dir) `touch pwned_dir2` | &'
mkdir "$dir"
# shellcheck disable=SC2016 # as above
names='a b
q"uote
dollar$(touch pwned1)x
back`touch pwned2`tick
pi|pe
amp&er;touch pwned3'
printf '%s\n' "$names" >names.txt
while IFS= read -r n; do
    : >"$dir/${n}_pan.tif"
    : >"$dir/${n}_ms.tif"
done <names.txt
: >"$dir/pi|pe_class.tif"
: >model.mat

pass=0
fail=0
ok() { echo "ok   $*"; pass=$((pass + 1)); }
ko() { echo "FAIL $*"; fail=$((fail + 1)); }

if PATH="$T/bin:$PATH" CMIR_BIN="$T/bin" sh "$SCRIPT" "$dir" model.mat "$T/out dir" 3 >run.log 2>&1; then
    ok "batch-workflow.sh ran"
else
    ko "batch-workflow.sh failed:"
    sed 's/^/    /' run.log
fi
pwned=$(find "$T" -name 'pwned*' | wc -l)
if [ "$pwned" -eq 0 ]; then ok "no part of a name ran as code"; else ko "$pwned pwned* files: a name ran as code"; fi
while IFS= read -r n; do
    if grep -qF "cmir_tile [-q] [-pan] [$dir/${n}_pan.tif] [-ms] [$dir/${n}_ms.tif]" log &&
        [ -f "$T/out dir/parts/$n.mat" ] && [ -f "$T/out dir/shards/$n.gpkg" ] &&
        grep -qF "[$T/out dir/parts/$n.mat] [$T/out dir/shards/$n.gpkg]" log; then
        ok "pair '$n': tiled and indexed under its own name"
    else
        ko "pair '$n': not passed intact (log below)"
    fi
done <names.txt
if grep -qF "[-labels] [$dir/pi|pe_class.tif]" log && [ "$(grep -cF -- '[-labels]' log)" -eq 1 ]; then
    ok "the one class raster was given with -labels, as one argument"
else
    ko "the class raster was not passed as one -labels argument"
fi
if [ "$(grep -c '^cmir_index .*\[-merge\]' log)" -eq 1 ] && [ -f "$T/out dir/index.gpkg" ]; then
    ok "the shards were merged"
else
    ko "no merge"
fi
LC_ALL=C sort names.txt >want.txt
LC_ALL=C sort "$T/out dir/pairs.txt" >got.txt 2>/dev/null || :
if cmp -s want.txt got.txt; then ok "pairs.txt lists the names"; else ko "pairs.txt differs from the names"; fi
[ "$fail" -eq 0 ] || { echo "-- program log:"; cat log; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
