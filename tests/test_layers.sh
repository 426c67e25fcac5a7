#!/bin/sh
# The layer check (cmake/check_layers.sh): the tree follows the diagram,
# and the check catches what it must. On a copy of cmirtools/ and
# gdal_plugin/, each case injects one bad #include (upward, sideways, a
# private header of a lower module, an app reaching into src/, a new file
# in a module directory, an unknown module directory) or changes the README
# diagram, and expects exit status 1 with the offending FILE:LINE; a new
# file that follows the diagram passes.
# Usage: test_layers.sh SOURCE_DIR
set -u
ROOT=$1
CHECK=$ROOT/cmake/check_layers.sh
T=$(mktemp -d /tmp/cmir_layers_XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

# The real tree passes.
if out=$(sh "$CHECK" "$ROOT" 2>&1); then
    ok "the tree follows the diagram"
else
    bad "the tree breaks the diagram:"
    printf '%s\n' "$out"
fi

cp -R "$ROOT/cmirtools" "$ROOT/gdal_plugin" "$T/" || { echo "FAIL copying the tree"; exit 1; }
rm -rf "$T/cmirtools/build"

# expect_violation NAME FILE LINE_TEXT WANT: appends LINE_TEXT to FILE (made
# when missing), expects status 1 and WANT (FILE:LINE) in the output, then
# restores FILE.
expect_violation() {
    f=$T/$2
    if [ -f "$f" ]; then cp "$f" "$T/saved"; else rm -f "$T/saved"; fi
    printf '%s\n' "$3" >>"$f"
    out=$(sh "$CHECK" "$T" 2>&1)
    rc=$?
    if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -qF "$4"; then
        ok "$1: $(printf '%s\n' "$out" | grep -F "$4" | head -n 1)"
    else
        bad "$1: status $rc, want 1 and '$4'; output:"
        printf '%s\n' "$out"
    fi
    if [ -f "$T/saved" ]; then cp "$T/saved" "$f"; else rm -f "$f"; fi
}

n() { echo $(($(wc -l <"$ROOT/$1") + 1)); }
expect_violation "upward public include (nn -> model)" cmirtools/src/nn/act.c \
    '#include "cmir/model.h"' "cmirtools/src/nn/act.c:$(n cmirtools/src/nn/act.c): nn includes cmir/model.h"
expect_violation "sideways internal include (archive -> tiling)" cmirtools/src/archive/archive.c \
    '#include "../tiling/tiling_internal.h"' "cmirtools/src/archive/archive.c:$(n cmirtools/src/archive/archive.c): archive includes tiling/tiling_internal.h"
expect_violation "a lower module's private header (tensorset -> nn_internal.h)" \
    cmirtools/src/tensorset/tensorset.c '#include "../nn/nn_internal.h"' \
    "cmirtools/src/tensorset/tensorset.c:$(n cmirtools/src/tensorset/tensorset.c): tensorset includes nn/nn_internal.h, a header private"
expect_violation "an export restricted to tools (index -> model_internal.h)" cmirtools/src/index/index.c \
    '#include "../model/model_internal.h"' "cmirtools/src/index/index.c:$(n cmirtools/src/index/index.c): index includes model/model_internal.h"
expect_violation "model knows no archive" cmirtools/src/model/model_internal.h \
    '#include "cmir/archive.h"' "cmirtools/src/model/model_internal.h:$(n cmirtools/src/model/model_internal.h): model includes cmir/archive.h"
expect_violation "a public header reaching up (nn.h -> model.h)" cmirtools/include/cmir/nn.h \
    '#include "cmir/model.h"' "cmirtools/include/cmir/nn.h:$(n cmirtools/include/cmir/nn.h): nn includes cmir/model.h"
expect_violation "an app including a library internal header" cmirtools/apps/cmir_index.c \
    '#include "../src/base/internal.h"' "cmirtools/apps/cmir_index.c:$(n cmirtools/apps/cmir_index.c): \"../src/base/internal.h\""
expect_violation "the plugin including a library internal header" gdal_plugin/cmirdataset.cpp \
    '#include "../cmirtools/src/model/model_internal.h"' "gdal_plugin/cmirdataset.cpp:$(n gdal_plugin/cmirdataset.cpp):"
expect_violation "a new file is covered by its directory (knn -> index)" cmirtools/src/knn/new_file.c \
    '#include "cmir/index.h"' "cmirtools/src/knn/new_file.c:1: knn includes cmir/index.h"
mkdir -p "$T/cmirtools/src/newmod"
expect_violation "a directory outside the diagram" cmirtools/src/newmod/x.c \
    '#include "cmir/base.h"' "cmirtools/src/newmod/x.c:1: directory newmod is not a module"
rmdir "$T/cmirtools/src/newmod" 2>/dev/null

# The README's diagram must stay the script's.
R=$T/cmirtools/README.md
cp "$R" "$T/saved"
sed 's/^model     may use: .*/model     may use: base, nn, tensorset, audio, archive/' "$T/saved" >"$R"
out=$(sh "$CHECK" "$T" 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -qF "cmirtools/README.md:1: its layer diagram differs"; then
    ok "a README diagram that differs from the script's is refused"
else
    bad "README diagram drift: status $rc; output:"
    printf '%s\n' "$out"
fi
cp "$T/saved" "$R"

# A new tools file that follows the diagram passes.
printf '#include "cmir/index.h"\n#include "cmir/train.h"\n#include "../model/model_internal.h"\n' \
    >"$T/cmirtools/src/tools/new_tool.c"
if out=$(sh "$CHECK" "$T" 2>&1); then
    ok "a new tools file using index, train.h and the model's exported header passes"
else
    bad "a conforming new tools file was refused:"
    printf '%s\n' "$out"
fi
rm -f "$T/cmirtools/src/tools/new_tool.c"

# Usage errors are status 2.
sh "$CHECK" >/dev/null 2>&1
rc=$?
if [ "$rc" -eq 2 ]; then ok "no argument: status 2"; else bad "no argument: status $rc"; fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
