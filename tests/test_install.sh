#!/bin/sh
# The installation, as a GIS user does it. "prefix": `cmake --install --prefix P` writes only
# under P; the programs and GDAL (with GDAL_DRIVER_PATH=P/<libdir>/gdalplugins) run from there
# with no LD_LIBRARY_PATH; GDAL without it prints what it printed before. "deb": the package of
# `cpack -G DEB`, installed with dpkg as root, gives GDAL the CMIR driver with no environment
# variable, then is removed leaving no file and no GDAL error; what it overwrote is restored.
# Usage: test_install.sh prefix|deb BUILD_DIR CMAKE CPACK    (exit 77: skipped)
set -u
mode=$1
build=$2
cmake=$3
cpack=$4
fail=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL: $1"; fail=1; }
# check DESCRIPTION COMMAND...: the command must succeed
check() {
    check_d=$1
    shift
    if "$@"; then ok "$check_d"; else bad "$check_d"; fi
}
# clean: runs a command with no LD_LIBRARY_PATH and no GDAL_DRIVER_PATH (the user's shell)
clean() { env -u LD_LIBRARY_PATH -u GDAL_DRIVER_PATH "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmir_install_XXXXXX") || exit 1
installed=no
restore=no
cleanup() {
    if [ "$installed" = yes ]; then
        dpkg --purge cmir >/dev/null 2>&1 || echo "test_install: could not remove the package cmir" >&2
    fi
    if [ "$restore" = yes ]; then
        (cd "$tmp/backup" && find . ! -type d) | while IFS= read -r f; do
            cp -a "$tmp/backup/$f" "/${f#./}" || echo "test_install: could not restore /${f#./}" >&2
        done
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# GDAL's stderr for a plain command, with the environment of a user's shell.
gdal_noise() { { clean gdalinfo --version >/dev/null; clean gdalinfo --formats >/dev/null; } 2>&1; }

# programs_run BINDIR: every installed program answers --version (with the
# project's version) and --help, with exit 0, in the user's environment.
programs_run() {
    n=0
    for p in "$1"/cmir_*; do
        [ -x "$p" ] || continue
        n=$((n + 1))
        v=$(clean "$p" --version 2>&1)
        rc=$?
        case $v in *"$version"*) vrc=$rc ;; *) vrc=1 ;; esac
        check "$(basename "$p") --version runs and says $version (exit $rc)" [ "$vrc" -eq 0 ]
        clean "$p" --help >"$tmp/help" 2>&1
        rc=$?
        check "$(basename "$p") --help runs (exit $rc)" [ "$rc" -eq 0 ]
        check "$(basename "$p") has a RUNPATH relative to itself" runpath_ok "$p"
    done
    check "7 programs in $1 (found $n)" [ "$n" -eq 7 ]
}

# runpath_ok FILE: the ELF file's RUNPATH names no absolute directory.
runpath_ok() {
    r=$(readelf -d "$1" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
    case ":$r" in *:/*) echo "  $1: RUNPATH $r"; return 1 ;; esac
    return 0
}

# gdal_driver: GDAL lists the CMIR driver, with nothing on stderr.
gdal_driver() {
    "$@" gdalinfo --format CMIR >"$tmp/fmt" 2>"$tmp/fmt.err"
    if grep -q 'Short Name: CMIR' "$tmp/fmt" && [ ! -s "$tmp/fmt.err" ]; then return 0; fi
    cat "$tmp/fmt.err"
    return 1
}

# round_trip BINDIR ENV...: the installed programs write a scene and a tile
# archive (into a directory cmir_synth creates), GDAL reads a tile of it.
round_trip() {
    b=$1
    shift
    d="$tmp/rt/new dir"
    clean "$b/cmir_synth" -q -n 1 -size 512 -o "$d/scenes" &&
        clean "$b/cmir_tile" -q -pan "$d/scenes/scene_000_pan.tif" -ms "$d/scenes/scene_000_ms.tif" \
            -labels "$d/scenes/scene_000_class.tif" "$d/a.mat" &&
        "$@" gdal_translate -q "CMIR:\"$d/a.mat\":MS:1" "$d/t1.tif" &&
        "$@" gdalinfo "$d/t1.tif" | grep -q 'Size is 64, 64'
}

# build_against INCLUDE LIB: a program using the installed header and library
build_against() {
    cat >"$tmp/use.c" <<'EOF'
#include <cmir/base.h>
#include <stdio.h>
int main(void) { printf("%s\n", cmir_version()); return 0; }
EOF
    cc -std=c11 "$tmp/use.c" "$@" -o "$tmp/use" && [ "$(clean "$tmp/use")" = "$version" ]
}

[ -f "$build/CMakeCache.txt" ] || { echo "FAIL: $build is not a build tree"; exit 1; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
before=$(gdal_noise)

case $mode in
prefix)
    P="$tmp/prefix"
    if ! "$cmake" --install "$build" --prefix "$P" >"$tmp/install.log" 2>&1; then
        cat "$tmp/install.log"
        echo "FAIL: cmake --install"
        exit 1
    fi
    outside=$(grep -v -F "$P/" "$build/install_manifest.txt")
    check "every installed file is under the prefix${outside:+ (not: $outside)}" [ -z "$outside" ]
    lib=$(find "$P" -name 'libcmir.so.0' | head -n 1)
    plugin=$(find "$P" -name 'gdal_CMIR.so' | head -n 1)
    libdir=$(dirname "$lib")
    check "libcmir.so.0 in P/lib/<multiarch> (${lib#"$P"/})" [ -n "$lib" ]
    check "the plugin in <libdir>/gdalplugins (${plugin#"$P"/})" [ "$plugin" = "$libdir/gdalplugins/gdal_CMIR.so" ]
    check "the plugin's RUNPATH is relative to itself" runpath_ok "$plugin"
    check "headers in P/include/cmir" [ -f "$P/include/cmir/base.h" ]
    programs_run "$P/bin"
    check "GDAL_DRIVER_PATH=<libdir>/gdalplugins gdalinfo --format CMIR" \
        gdal_driver clean env GDAL_DRIVER_PATH="$libdir/gdalplugins"
    check "GDAL_DRIVER_PATH appended to another directory" \
        gdal_driver clean env GDAL_DRIVER_PATH="$tmp:$libdir/gdalplugins"
    check "cmir_synth -> cmir_tile -> gdal_translate of a tile, all installed" \
        round_trip "$P/bin" clean env GDAL_DRIVER_PATH="$libdir/gdalplugins"
    # shellcheck disable=SC2046 # pkg-config's flags, one word each
    check "a program builds with pkg-config's flags and runs" \
        build_against $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs cmir) "-Wl,-rpath,$libdir"
    after=$(gdal_noise)
    check "GDAL without GDAL_DRIVER_PATH prints what it printed before the install" [ "$after" = "$before" ]
    [ -z "$before" ] || echo "note: GDAL already printed before the install: $before"
    ;;
deb)
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: the .deb is installed into /usr: run as root (CI does)"
        exit 77
    fi
    if dpkg-query -W -f='${Status}' cmir 2>/dev/null | grep -q "ok installed"; then
        echo "SKIP: a package cmir is installed on this machine; it is left alone"
        exit 77
    fi
    mkdir "$tmp/pkg"
    if ! (cd "$tmp/pkg" && "$cpack" -G DEB --config "$build/CPackConfig.cmake") >"$tmp/cpack.log" 2>&1; then
        cat "$tmp/cpack.log"
        echo "FAIL: cpack -G DEB"
        exit 1
    fi
    deb=$(ls "$tmp/pkg"/cmir_*.deb)
    check "cpack made cmir_${version}_*.deb" [ -f "$deb" ]
    dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|' >"$tmp/files"
    # GDAL's plugin directory: gdal-config --plugindir (GDAL >= 3.7), else gdalplugins beside libgdal
    gdir=$(gdal-config --plugindir 2>/dev/null | grep '^/')
    [ -n "$gdir" ] || gdir=$(dirname "$(readlink -f "$(ldd "$(command -v gdalinfo)" |
        awk '/libgdal\.so/ { print $3 }')")")/gdalplugins
    check "the package puts the plugin into GDAL's directory $gdir" grep -qx "$gdir/gdal_CMIR.so" "$tmp/files"
    check "the package puts libcmir into /usr/lib/<multiarch>" grep -q '^/usr/lib/[^/]*-linux-gnu[^/]*/libcmir.so.0$' "$tmp/files"
    check "the package puts headers into /usr/include/cmir" grep -qx '/usr/include/cmir/base.h' "$tmp/files"
    check "the package depends on GDAL's library" sh -c "dpkg-deb -f '$deb' Depends | grep -q libgdal"
    # files the package would overwrite: another package's refuse the test,
    # stray ones (an earlier `cmake --install` into /usr) are kept and restored
    mkdir "$tmp/backup"
    while IFS= read -r f; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        if owner=$(dpkg -S "$f" 2>/dev/null); then
            echo "SKIP: $owner: the package cmir would overwrite it"
            exit 77
        fi
        mkdir -p "$tmp/backup$(dirname "$f")" && cp -a "$f" "$tmp/backup$f" || exit 1
        restore=yes
        echo "note: $f exists (not from a package): kept aside, restored at the end"
    done <"$tmp/files"
    installed=yes
    if ! dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1; then
        cat "$tmp/dpkg.log"
        bad "dpkg -i $(basename "$deb")"
    fi
    check "GDAL has the CMIR driver with no environment variable" gdal_driver clean
    programs_run /usr/bin
    check "cmir_synth -> cmir_tile -> gdal_translate of a tile, all installed" round_trip /usr/bin clean
    # shellcheck disable=SC2046 # pkg-config's flags, one word each
    check "a program builds with pkg-config's flags and runs" \
        build_against $(clean pkg-config --cflags --libs cmir)
    check "GDAL prints nothing on stderr" [ -z "$(gdal_noise)" ]
    if dpkg --purge cmir >"$tmp/dpkg.log" 2>&1; then installed=no; else cat "$tmp/dpkg.log"; bad "dpkg --purge cmir"; fi
    left=$(while IFS= read -r f; do if [ -e "$f" ] || [ -L "$f" ]; then printf ' %s' "$f"; fi; done <"$tmp/files")
    check "dpkg knows no package cmir any more" sh -c '! dpkg-query -W cmir >/dev/null 2>&1'
    check "dpkg --purge cmir leaves none of its files${left:+ (left:$left)}" [ -z "$left" ]
    [ "$restore" = yes ] || check "no directory /usr/include/cmir left" [ ! -e /usr/include/cmir ]
    # GDAL prints what it printed before, but for errors of a stray CMIR plugin
    expect=$(printf '%s\n' "$before" | grep -vi cmir)
    after=$(gdal_noise)
    check "GDAL prints no error after the removal${after:+ ($after)}" [ "$after" = "$expect" ]
    ;;
*)
    echo "usage: test_install.sh prefix|deb BUILD_DIR CMAKE CPACK" >&2
    exit 2
    ;;
esac
if [ $fail -eq 0 ]; then echo "test_install $mode: all passed"; else echo "test_install $mode: FAILED"; exit 1; fi
