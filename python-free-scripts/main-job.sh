#!/bin/sh
# README command 1: installs what is missing, builds CMIR and runs the main
# job on sample_scenes/: tile -> train (small, fast setting) -> index ->
# cross-modal searches -> metrics, writing everything under cmir-out/.
set -eu
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<USAGE
Usage: python-free-scripts/main-job.sh [--help] [OUTPUT_DIR]
Installs missing Debian packages, builds CMIR in build/, then runs CMIR's main job on
sample_scenes/: cmir_tile (PAN/MS pairs with labels) -> cmir_train (both stages) ->
cmir_index (GeoPackage) -> cmir_search (GeoJSON hits) -> cmir_eval (metrics table).
Results go to OUTPUT_DIR (default cmir-out/ in the repository).
USAGE
}
case ${1:-} in -h | --help) usage; exit 0 ;; esac

cmir_install_deps "" # no test packages
cmir_say "cmir: building build/ (Release)"
cmir_build "$CMIR_ROOT/build" -DCMAKE_BUILD_TYPE=Release
exec sh "$CMIR_ROOT/python-free-scripts/pipeline.sh" "$CMIR_ROOT/build/cmirtools/apps" "$CMIR_ROOT/sample_scenes" \
    "${1:-$CMIR_ROOT/cmir-out}"
