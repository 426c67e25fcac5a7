# shellcheck shell=sh
# Sourced by the shell tests: in a sanitizer build (build-asan/) the CMIR
# plugin is instrumented, so GDAL's own programs (which are not) need the
# sanitizer runtimes loaded first. Sets $asan and $ubsan to those runtimes
# (empty in a normal build), and gdal_env CMD... runs CMD with them
# preloaded (leak checks off: GDAL's own allocations are not ours).
# Needs $BIN (the programs' directory) before it is sourced.
asan=$(ldd "$BIN/cmir_tile" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*libasan[^ ]*\) .*/\1/p' | head -n 1)
ubsan=$(ldd "$BIN/cmir_tile" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*libubsan[^ ]*\) .*/\1/p' | head -n 1)
gdal_env() {
    if [ -n "$asan" ]; then
        env "LD_PRELOAD=$asan${ubsan:+:$ubsan}" ASAN_OPTIONS=detect_leaks=0 "$@"
    else
        command "$@"
    fi
}
