#!/bin/sh
# The paper's step 1 (Pretrain_panY.py / Pretrain_mulX.py) in CMIR: trains
# one CNN per modality on a tile archive and exports features_pan.mat and
# features_ms.mat (variable `features`, N x 128, and `labels`).
set -eu
case ${1:-} in -h | --help | "")
    cat <<USAGE
Usage: python-free-scripts/paper-step1-pretrain.sh ARCHIVE.mat OUTDIR [cmir_train options]
Trains CMIR-NET's stage-1 extractors (and, as a by-product, a full model) on ARCHIVE and
writes OUTDIR/features_pan.mat, OUTDIR/features_ms.mat and OUTDIR/model.mat.
Extra options go to cmir_train (e.g. -epochs1 20 -threads 2).
USAGE
    [ -n "${1:-}" ] && exit 0 || exit 2 ;;
esac
BIN=${CMIR_BIN:-$(cd "$(dirname "$0")/.." && pwd)/build/cmirtools/apps}
archive=$1
out=$2
shift 2
mkdir -p "$out"
"$BIN/cmir_train" -overwrite -features_dir "$out" "$@" "$archive" "$out/model.mat"
