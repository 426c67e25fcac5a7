#!/bin/sh
# README command 2: installs what is missing, builds CMIR and runs the whole
# test suite with ctest. With --sanitize, or when CI=true, it builds again
# with AddressSanitizer + UndefinedBehaviorSanitizer and runs the suite
# there too. Exit status: 0 when every test passed.
set -eu
. "$(dirname "$0")/lib.sh"

usage() {
    cat <<USAGE
Usage: python-free-scripts/run-tests.sh [--sanitize] [--no-sanitize] [--full] [-L LABEL] [--help]
Installs missing Debian packages, builds CMIR in build/ and runs the test
suite (ctest): the quick and fuzz-replay tiers; --full adds the long tier
(every allocation failed in turn, ...). --sanitize also builds build-asan/
with ASan+UBSan and runs the tests there (default when CI=true). -L LABEL
runs only tests with that label (quick, full, fuzz).
USAGE
}

sanitize=no
[ "${CI:-}" = "true" ] && sanitize=yes
label=""
full=no
while [ $# -gt 0 ]; do
    case $1 in
    --sanitize) sanitize=yes ;;
    --no-sanitize) sanitize=no ;;
    --full) full=yes ;;
    -L) shift; label=$1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

cmir_install_deps "$CMIR_TEST_PACKAGES"
cd "$CMIR_ROOT"
set -- --output-on-failure -j "$CMIR_JOBS"
if [ -n "$label" ]; then
    set -- "$@" -L "$label"
elif [ "$full" = no ]; then
    set -- "$@" -LE full
fi

cmir_say "cmir: building build/ (Release)"
cmir_build "$CMIR_ROOT/build" -DCMAKE_BUILD_TYPE=Release -DCMIR_BUILD_TESTS=ON -DCMIR_BUILD_BENCH=ON
status=0
ctest --test-dir "$CMIR_ROOT/build" "$@" || status=1

if [ "$sanitize" = yes ]; then
    cmir_say "cmir: building build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer)"
    cmir_build "$CMIR_ROOT/build-asan" -DCMAKE_BUILD_TYPE=Debug -DCMIR_SANITIZE=ON -DCMIR_BUILD_TESTS=ON
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        ctest --test-dir "$CMIR_ROOT/build-asan" "$@" || status=1
fi
exit $status
