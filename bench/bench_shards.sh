#!/bin/sh
# Sharded search under MPI (issue 17): a random index of ROWS x 64 (default
# 4,000,000) in 4 shards for a small real model, searched with QUERIES row
# queries (default 60; k = 10, cross-modal, 1 thread per rank) by one
# process (cmir_search over the manifest) and by mpirun -np 1, 2 and 4
# (cmir_search_ranks: 4, 2 and 1 shards per rank). Prints q/s and each
# rank's peak RSS against the matrix it holds, and checks that every run
# wrote the same hits. CPU seconds are counted too (q per CPU second does
# not depend on what else the machine runs). Not a test: figures for
# bench/README.md.
# SCAN (env, default float) is every run's -scan: float, int8 or auto
# (auto: int8 in one process, float under mpirun).
#   bench_shards.sh BUILD_DIR [ROWS] [QUERIES] [WORK_DIR]
set -u
BUILD=$1
ROWS=${2:-4000000}
M=${3:-60}
W=${4:-/tmp/cmir_bench_shards}
SCAN=${SCAN:-float}
APPS=$BUILD/cmirtools/apps
BENCH=$BUILD/bench/bench_shards
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$W/syn" || exit 1
cd "$W" || exit 1
if [ ! -f model.mat ]; then
    if ! "$APPS/cmir_synth" -q -n 1 -size 256 -ratio 2 -o syn -prefix s ||
        ! "$APPS/cmir_tile" -q -pan syn/s_000_pan.tif -ms syn/s_000_ms.tif -labels syn/s_000_class.tif -ts 16 \
            -stride 16 a.mat ||
        ! "$APPS/cmir_train" -q -threads 1 -dv 64 -epochs1 1 -epochs2 1 a.mat model.mat; then
        echo "bench_shards: cannot make the model"
        exit 1
    fi
fi
if [ ! -f "shards_$ROWS.txt" ]; then
    "$BENCH" write model.mat "shards_$ROWS.txt" "$ROWS" 4 || exit 1
fi
echo "scan: $SCAN"
T=$(nproc)
search1() { # TAG THREADS: one process over the manifest
    "$BENCH" search model.mat "shards_$ROWS.txt" "$M" "hits_$1.csv" "$SCAN" "$2" >"log_$1" || exit 1
    cat "log_$1"
    cmp -s hits_single.csv "hits_$1.csv" || { echo "bench_shards: hits of $1 differ from one process"; exit 1; }
}
searchN() { # N
    mpirun -q --allow-run-as-root --oversubscribe -np "$1" "$BENCH" search model.mat "shards_$ROWS.txt" "$M" \
        "hits_$1.csv" "$SCAN" >"log_$1" || exit 1
    cat "log_$1"
    cmp -s hits_single.csv "hits_$1.csv" || { echo "bench_shards: hits at N=$1 differ from one process"; exit 1; }
}
rate() { sed -n 's/.*(\([0-9.]*\) per rank, .*/\1/p' "log_$1"; }
"$BENCH" search model.mat "shards_$ROWS.txt" 1 hits_single.csv "$SCAN" 1 >/dev/null || exit 1 # warm the cache
"$BENCH" search model.mat "shards_$ROWS.txt" "$M" hits_single.csv "$SCAN" 1 >/dev/null || exit 1
# The machine's noise moves every figure; the three runs that the target
# compares go ROUNDS (default 3) times, interleaved, each round's ratios
# taken within the round.
for round in $(seq 1 "${ROUNDS:-3}"); do
    echo "round $round: one process, 1 thread:"
    search1 one 1
    echo "round $round: one process, $T threads (the machine's cores, as the ranks of mpirun -np $T):"
    search1 threads "$T"
    echo "round $round: mpirun -np 2, 1 thread each:"
    searchN 2
    awk -v a="$(rate one)" -v b="$(rate threads)" -v c="$(rate 2)" -v t="$T" 'BEGIN {
        printf "round ratios: N=2 q/s per rank / one process 1 thread %.3f; / one process %d threads per thread %.3f\n",
               c / a, t, c / (b / t) }'
done
for n in 1 4; do
    echo "mpirun -np $n:"
    searchN "$n"
done
echo "every run wrote the same hits"
