#!/bin/sh
# The paper's step 2 in CMIR: the unified latent space learned from two
# feature files (anyone's, e.g. from step 1), written as unified.mat with
# featuresx and featuresy as the paper's MATLAB code expects.
set -eu
case ${1:-} in -h | --help | "")
    cat <<USAGE
Usage: python-free-scripts/paper-step2-unified.sh FEATURES_A.mat FEATURES_B.mat OUT_unified.mat [LABELS.mat] [options]
Trains the unified space on the paired rows of FEATURES_A and FEATURES_B (variable
\`features\`, N x D) with labels from LABELS.mat (or FEATURES_A.mat), variable \`labels\`.
Options go to cmir_train (-dv 64 -w_pair 1 -w_class 1 -w_norm 0.001 -w_cross 0.01 -w_reg 0.001 ...).
USAGE
    [ -n "${1:-}" ] && exit 0 || exit 2 ;;
esac
BIN=${CMIR_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/cmirtools/apps}
a=$1
b=$2
out=$3
shift 3
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    labels=$1
    shift
    "$BIN/cmir_train" -overwrite -features "$a" "$b" -labels "$labels" "$@" "$out"
else
    "$BIN/cmir_train" -overwrite -features "$a" "$b" "$@" "$out"
fi
