# shellcheck shell=sh
# Shared by the CMIR scripts (POSIX sh, sourced): locate the repository,
# install missing Debian packages, configure and build one build tree.

CMIR_ROOT=$(cd "$(dirname "$0")/.." && pwd)
CMIR_JOBS=${CMIR_JOBS:-$(nproc 2>/dev/null || echo 2)}

# Debian 12 packages CMIR builds and tests with (dpkg-dev and file: the .deb
# of `cpack -G DEB`, whose dependencies dpkg-shlibdeps finds).
CMIR_PACKAGES="build-essential cmake pkg-config libopenblas-dev libmatio-dev libhdf5-dev
libsndfile1-dev libgdal-dev gdal-bin libproj-dev proj-bin libfftw3-dev libsamplerate0-dev
libpocketsphinx-dev pocketsphinx-en-us dpkg-dev file libopenmpi-dev openmpi-bin libdeflate-dev"

# Only the test suite needs these (the Octave interoperability test; the
# spoken corpus of the image <-> speech test, from several engines, and the
# real recordings of the speech front-end test; the shellcheck test of every
# script; /usr/bin/time for the peak RSS of the resource-ceiling test;
# xmllint for the check that cmir_eval -plot writes well-formed SVG; mpirun for
# the MPI tests; QGIS 3.22's qgis_process for test_plugin_qgis).
# run-tests.sh, when CI=true, fails if a test these enable skipped.
# shellcheck disable=SC2034 # read by run-tests.sh, which sources this file
CMIR_TEST_PACKAGES="octave espeak-ng sox libsox-fmt-all flite festival festvox-kallpc16k
festvox-us-slt-hts pocketsphinx-testdata shellcheck time libxml2-utils openmpi-bin qgis"

cmir_say() { printf '%s\n' "$*" >&2; }
cmir_die() { printf 'cmir: %s\n' "$*" >&2; exit 1; }

# Installs whatever of CMIR_PACKAGES is missing; says what it installs and
# does nothing when everything is there.
cmir_install_deps() {
    missing=""
    for p in $CMIR_PACKAGES ${1:-}; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0
    cmir_say "cmir: installing missing Debian packages:$missing"
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        cmir_die "missing packages:$missing (run as root, or install sudo)"
    fi
    # sudo resets the environment: pass DEBIAN_FRONTEND through env(1)
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || cmir_die "apt-get update failed"
    # shellcheck disable=SC2086 # one word per package, split on purpose
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing >/dev/null ||
        cmir_die "apt-get install failed for:$missing"
}

# cmir_build DIR [cmake options...]: configures (once) and builds DIR.
cmir_build() {
    dir=$1
    shift
    cmake -S "$CMIR_ROOT" -B "$dir" "$@" >"$dir.configure.log" 2>&1 ||
        { cat "$dir.configure.log" >&2; cmir_die "cmake configure failed (log: $dir.configure.log)"; }
    cmake --build "$dir" -j "$CMIR_JOBS" >"$dir.build.log" 2>&1 ||
        { tail -n 40 "$dir.build.log" >&2; cmir_die "build failed (log: $dir.build.log)"; }
}
