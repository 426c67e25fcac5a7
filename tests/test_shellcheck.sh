#!/bin/sh
# Runs shellcheck (Debian package) on every shell script of the repository: each
# *.sh and each file starting with a sh/bash #! line under
# python-free-scripts, tests, bench, fuzz, .ci and cmake (fuzz/thirdparty
# excluded: not ours). Any finding, of any severity, fails; a script that
# needs an exception says so with a "# shellcheck disable=SCnnnn # why"
# line. Exits 77 (skipped) when shellcheck is not installed.
#
#   sh tests/test_shellcheck.sh SOURCE_DIR
set -eu
ROOT=${1:?usage: test_shellcheck.sh SOURCE_DIR}
if ! command -v shellcheck >/dev/null 2>&1; then
    echo "SKIP: shellcheck is not installed (apt-get install shellcheck)"
    exit 77
fi
cd "$ROOT"
list=$(mktemp /tmp/cmir_shellcheck_XXXXXX)
trap 'rm -f "$list"' EXIT
for d in python-free-scripts tests bench fuzz .ci cmake; do
    [ -d "$d" ] || continue
    find "$d" -path fuzz/thirdparty -prune -o -type f -print
done | while IFS= read -r f; do
    case $f in
    *.sh) echo "$f" ;;
    *) if head -n 1 "$f" | grep -Eq '^#!.*[/ ](ba|da)?sh( |$)'; then echo "$f"; fi ;;
    esac
done | LC_ALL=C sort >"$list"
n=$(wc -l <"$list")
[ "$n" -gt 0 ] || { echo "FAIL: no scripts found under $ROOT"; exit 1; }
# -x with SCRIPTDIR: sourced files (lib.sh) are checked with their callers
if tr '\n' '\0' <"$list" | xargs -0 shellcheck -x --source-path=SCRIPTDIR; then
    echo "ok   shellcheck: no finding in $n scripts"
    echo "1 passed, 0 failed"
else
    echo "FAIL shellcheck: findings above (in $n scripts)"
    echo "0 passed, 1 failed"
    exit 1
fi
