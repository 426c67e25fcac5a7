#!/bin/sh
# The paper's step 3 (KNNcode.m) in CMIR, measured honestly: Euclidean kNN
# retrieval between featuresx and featuresy of a unified.mat, with mAP over
# the whole database, P@k, mAP@k, PR curve, ANMRR and the paper's protocol.
set -eu
case ${1:-} in -h | --help | "")
    cat <<USAGE
Usage: python-free-scripts/paper-step3-knn.sh UNIFIED.mat [OUTDIR]
Evaluates retrieval in all four directions (x->y, y->x, x->x, y->y) on UNIFIED.mat and
prints a table; with OUTDIR also writes OUTDIR/metrics.json and OUTDIR/metrics.csv.
USAGE
    [ -n "${1:-}" ] && exit 0 || exit 2 ;;
esac
BIN=${CMIR_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/cmirtools/apps}
if [ -n "${2:-}" ]; then
    mkdir -p "$2"
    "$BIN/cmir_eval" -overwrite -unified "$1" -json "$2/metrics.json" -csv "$2/metrics.csv"
else
    "$BIN/cmir_eval" -unified "$1"
fi
