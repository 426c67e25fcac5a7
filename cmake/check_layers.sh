#!/bin/sh
# check_layers.sh: libcmir's layer diagram as data, and the check that every
# #include in cmirtools/src, cmirtools/include, cmirtools/apps and
# gdal_plugin follows it. Run by the build (a custom command the library
# depends on) and by ctest (test_layers). POSIX sh.
#
# Usage: check_layers.sh ROOT             check the tree at ROOT (the repository)
#        check_layers.sh --diagram        print the diagram (cmirtools/README.md
#                                         holds this text between its layer markers)
#        check_layers.sh --below MODULE   the modules MODULE may use (transitively)
#        check_layers.sh --headers MODULE the public headers MODULE may include
#        check_layers.sh --modules        the modules, bottom up
#        check_layers.sh --moves          the MOVES entries (FILE:MODULE)
# Exit status 0 when the tree follows the diagram, 1 with one line per
# violation ("FILE:LINE: problem") otherwise, 2 on a usage error.
set -u

# ---- the diagram ---------------------------------------------------------
# module: the modules it may use (those of theirs come with them). A file
# belongs to the module named by its directory, src/<module>/.
LAYERS='base:
nn: base
tensorset: base nn
archive: base
geo: base
dist: base
audio: base nn
synth: base geo
knn: base nn
model: base nn tensorset audio
tiling: base archive geo
index: base knn model geo archive audio
tools: base nn tensorset archive geo dist audio synth knn model tiling index'

# module: its public headers (cmirtools/include/cmir/; version.h is
# generated). A module with none (geo) is reached through its exported
# internal header only.
HEADERS='base: base.h version.h
nn: nn.h
tensorset: tensorset.h
archive: archive.h
dist: dist.h
audio: audio.h
synth: synth.h
knn: knn.h metrics.h
model: model.h
tiling: tiling.h
index: index.h
tools: train.h'

# Exported internal headers (not installed, cmir__ names): the only headers
# under src/ that another module may include, if the diagram lets it use
# the header's module; ":mod ..." restricts one to the modules named. Every
# other header in src/<module>/ is private to its module.
EXPORTS='base/internal.h
geo/gdal_util.h
nn/nn_export.h
model/model_internal.h:tools
index/index_tools.h:tools'

# Files whose module is not their directory's, until they move (a file is
# checked, and built, as part of the module named here).
MOVES=''

# ---- helpers ---------------------------------------------------------------
direct() {
    printf '%s\n' "$LAYERS" | sed -n "s/^$1:[[:space:]]*//p"
}

is_module() {
    case "$1" in '' | *[!a-z]*) return 1 ;; esac
    printf '%s\n' "$LAYERS" | grep -q "^$1:"
}

# The modules below $1, in first-reached order.
below() {
    _todo=$(direct "$1")
    _seen=' '
    while :; do
        # shellcheck disable=SC2086 # splitting the word list is wanted
        set -- $_todo
        [ $# -gt 0 ] || break
        _m=$1
        shift
        _todo=$*
        case "$_seen" in *" $_m "*) continue ;; esac
        _seen="$_seen$_m "
        _todo="$_todo $(direct "$_m")"
    done
    # shellcheck disable=SC2086
    echo $_seen
}

# The modules below $1, and the public headers $1 may include.
headers_of() {
    for _m in "$1" $(below "$1"); do
        printf '%s\n' "$HEADERS" | sed -n "s/^$_m:[[:space:]]*//p"
    done | tr ' ' '\n' | sed '/^$/d' | sort
}

# The check itself, one awk pass over every file (the data in the
# environment). Prints "FILE:LINE: problem" per violation.
# shellcheck disable=SC2016 # awk's $ fields, not the shell's
CHECK_AWK='
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function below_all(m,    todo, n, i, x, seen, k, parts) {
    todo = direct[m]; delete seen
    while (todo != "") {
        n = split(todo, parts, " "); x = parts[1]; todo = ""
        for (i = 2; i <= n; i++) todo = todo " " parts[i]
        todo = trim(todo)
        if (x in seen) continue
        seen[x] = 1; ok[m, x] = 1
        todo = trim(todo " " direct[x])
    }
}
function may(m, t) { return m == t || ((m, t) in ok) }
function bad(msg) { print rel ":" FNR ": " msg; nbad++ }
BEGIN {
    n = split(ENVIRON["CL_LAYERS"], L, "\n")
    for (i = 1; i <= n; i++) {
        if (L[i] == "") continue
        m = L[i]; sub(/:.*/, "", m); d = L[i]; sub(/^[^:]*:/, "", d)
        direct[m] = trim(d); ismod[m] = 1
    }
    for (m in ismod) below_all(m)
    n = split(ENVIRON["CL_HEADERS"], L, "\n")
    for (i = 1; i <= n; i++) {
        m = L[i]; sub(/:.*/, "", m); d = L[i]; sub(/^[^:]*:/, "", d)
        k = split(trim(d), H, " ")
        for (j = 1; j <= k; j++) hmod[H[j]] = m
    }
    n = split(ENVIRON["CL_EXPORTS"], L, "\n")
    for (i = 1; i <= n; i++) {
        if (L[i] == "") continue
        h = L[i]; r = ""
        if (index(h, ":")) { r = " " substr(h, index(h, ":") + 1) " "; h = substr(h, 1, index(h, ":") - 1) }
        exported[h] = r == "" ? "*" : r
    }
    n = split(ENVIRON["CL_MOVES"], L, "\n")
    for (i = 1; i <= n; i++) {
        if (L[i] == "") continue
        h = L[i]; sub(/:.*/, "", h); m = L[i]; sub(/^[^:]*:/, "", m); moved[h] = m
    }
    root = ENVIRON["CL_ROOT"] "/"
}
FNR == 1 {
    rel = substr(FILENAME, length(root) + 1)
    kind = ""; mod = ""
    if (rel ~ /^cmirtools\/src\/[^\/]+\/[^\/]+$/) {
        kind = "src"; srel = substr(rel, 15); dir = srel; sub(/\/.*/, "", dir)
        mod = (srel in moved) ? moved[srel] : dir
        if (!(mod in ismod)) { bad("directory " dir " is not a module of the layer diagram"); kind = "" }
    } else if (rel ~ /^cmirtools\/include\/cmir\//) {
        kind = "public"; h = substr(rel, 24); mod = hmod[h]
        if (mod == "") { bad("cmir/" h " is not a public header of any module (cmake/check_layers.sh HEADERS)"); kind = "" }
    } else kind = "user"
}
kind != "" && /^[ \t]*#[ \t]*include[ \t]*[<"]/ {
    line = $0; sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
    q = substr(line, 1, 1) == "\""
    inc = substr(line, 2); sub(/[">].*/, "", inc)
    if (inc ~ /^cmir\//) {
        h = substr(inc, 6); hm = hmod[h]
        if (hm == "") bad("cmir/" h " is not a public header of any module (cmake/check_layers.sh HEADERS)")
        else if (kind != "user" && !may(mod, hm))
            bad(mod " includes cmir/" h " of module " hm ", which is not below " mod " in the layer diagram")
        next
    }
    if (!q) next
    if (kind == "user") {
        if (inc ~ /\//) bad("\"" inc "\": programs and the plugin use public headers (cmir/*.h) only")
        next
    }
    if (kind == "public") { bad("a public header includes \"" inc "\""); next }
    if (inc ~ /^\.\.\//) t = substr(inc, 4)
    else if (inc ~ /\//) { bad("\"" inc "\": include another module'"'"'s header as \"../module/file.h\""); next }
    else t = dir "/" inc
    if (t !~ /^[a-z0-9_]+\/[^\/]+$/ || t ~ /\.\./) { bad("\"" inc "\" does not name a header of a module directory"); next }
    tm = t; sub(/\/.*/, "", tm)
    if (tm == mod) next
    if (!(tm in ismod)) { bad("\"" inc "\": " tm " is not a module of the layer diagram"); next }
    if (!may(mod, tm)) { bad(mod " includes " t " of module " tm ", which is not below " mod " in the layer diagram"); next }
    if (!(t in exported)) { bad(mod " includes " t ", a header private to module " tm " (not in EXPORTS)"); next }
    if (exported[t] != "*" && index(exported[t], " " mod " ") == 0)
        bad(mod " includes " t ", which " tm " exports to" exported[t] "only")
}
'

check_tree() { # $1: ROOT
    _root=$1
    set --
    for _f in "$_root"/cmirtools/src/*/*.[ch] "$_root"/cmirtools/include/cmir/*.h \
        "$_root"/cmirtools/apps/*.[ch] "$_root"/gdal_plugin/*.cpp "$_root"/gdal_plugin/*.h; do
        [ -f "$_f" ] && set -- "$@" "$_f"
    done
    CL_ROOT=$_root CL_LAYERS=$LAYERS CL_HEADERS=$HEADERS CL_EXPORTS=$EXPORTS CL_MOVES=$MOVES \
        awk "$CHECK_AWK" "$@"
}

diagram() {
    printf '%s\n' "$LAYERS" | while IFS=: read -r _m _d; do
        _d=$(printf '%s' "$_d" | sed 's/^ *//; s/ /, /g')
        printf '%-9s may use: %s\n' "$_m" "${_d:-libc and its own libraries only}"
    done
}

# cmirtools/README.md must hold the diagram between its markers.
check_readme() { # $1: ROOT
    _r=$1/cmirtools/README.md
    if [ ! -f "$_r" ]; then
        echo "cmirtools/README.md:1: missing (it holds the layer diagram)"
        return
    fi
    _want=$(diagram)
    _have=$(sed -n '/^<!-- layers:begin -->$/,/^<!-- layers:end -->$/p' "$_r" | sed '1,2d;$d' | sed '$d')
    [ "$_want" = "$_have" ] ||
        echo "cmirtools/README.md:1: its layer diagram differs from cmake/check_layers.sh's (run: sh cmake/check_layers.sh --diagram)"
}

# ---- main ------------------------------------------------------------------
case "${1:-}" in
--diagram) diagram; exit 0 ;;
--below) is_module "${2:-}" || exit 2; below "$2"; exit 0 ;;
--headers) is_module "${2:-}" || exit 2; headers_of "$2"; exit 0 ;;
--modules) printf '%s\n' "$LAYERS" | sed 's/:.*//'; exit 0 ;;
--moves) printf '%s\n' "$MOVES"; exit 0 ;;
'' | -*) sed -n '7,15p' "$0" >&2; exit 2 ;;
esac
ROOT=$1
if [ ! -d "$ROOT/cmirtools/src" ]; then
    echo "check_layers: $ROOT/cmirtools/src: no such directory" >&2
    exit 2
fi
OUT=$({
    check_tree "$ROOT"
    check_readme "$ROOT"
})
if [ -n "$OUT" ]; then
    printf '%s\n' "$OUT" | sed 's/^/check_layers: /' >&2
    echo "check_layers: the tree breaks the layer diagram (cmirtools/README.md)" >&2
    exit 1
fi
exit 0
