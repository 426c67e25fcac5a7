#!/bin/sh
# Training throughput of data-parallel cmir_train (not a test): stage-1
# images/s (PAN 256x256 and MS 64x64x4 tiles of the 4 sample scenes, every
# 64 PAN pixels, global batch 64) for one process with 2 threads, and for
# mpirun with 1 and 2 ranks of 1 thread each, in one run; the figures
# cmir_train prints itself, the CPU seconds of all processes, and the peak
# RSS of each process (/usr/bin/time, when installed).
# The three runs repeat ROUNDS times, interleaved (shared machines drift).
# Usage: bench/train_mpi.sh BUILD_DIR [EPOCHS1] [ROUNDS]   (default 2 and 2)
set -eu
B=$1/cmirtools/apps
E=${2:-2}
R=${3:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
S=$ROOT/sample_scenes
command -v mpirun >/dev/null 2>&1 || { echo "bench/train_mpi.sh: no mpirun (Debian: openmpi-bin)" >&2; exit 1; }
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_hwloc_base_binding_policy=none OMPI_MCA_mpi_yield_when_idle=1
OUT=$(mktemp -d /tmp/cmir_bench_train_mpi_XXXXXX)
trap 'rm -rf "$OUT"' EXIT
set --
for k in 0 1 2 3; do
    set -- "$@" -pan "$S/dsrsid_like_00${k}_pan.tif" -ms "$S/dsrsid_like_00${k}_ms.tif" \
        -labels "$S/dsrsid_like_00${k}_class.tif"
done
"$B/cmir_tile" -q -stride 64 "$@" "$OUT/a.mat"
O="-overwrite -threads 1 -epochs1 $E -epochs2 1 -batch 64 -split tile"
TIME=
[ -x /usr/bin/time ] && TIME="/usr/bin/time -f rss_kb=%M,cpu_s=%U+%S"
run() { # NAME MPIRUN... -- PROGRAM...: the stage-1 figures of the summary line
    name=$1
    shift
    pre=""
    while [ "$1" != "--" ]; do
        pre="$pre $1"
        shift
    done
    shift
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086 # the launcher and time(1), split on purpose
    $pre $TIME "$@" >"$OUT/log" 2>&1 || { cat "$OUT/log" >&2; exit 1; }
    t1=$(date +%s.%N)
    rss=$(sed -n 's/^rss_kb=\([0-9]*\),.*/\1/p' "$OUT/log" | awk '{ printf "%s%.0f", (NR > 1 ? ", " : ""), $1 / 1024 }')
    # CPU seconds of all processes together (user + system; the whole run)
    cpu=$(sed -n 's/^rss_kb=.*,cpu_s=//p' "$OUT/log" | awk -F+ '{ t += $1 + $2 } END { printf "%.1f", t }')
    sed -n 's/.*trained on \([0-9]*\) tiles.*stage 1 \([0-9.]*\) PAN \/ \([0-9.]*\) MS items\/s.*/\1 \2 \3/p' "$OUT/log" |
        awk -v n="$name" -v t0="$t0" -v t1="$t1" \
            -v r="$rss" -v c="$cpu" '{ printf "%-28s %4d tiles  PAN %6.1f img/s  MS %6.1f img/s  wall %5.1f s  CPU %5s s  peak RSS MB: %s\n",
                           n, $1, $2, $3, t1 - t0, c, r }'
}
echo "cmir_train stage 1, $E epochs per modality, global batch 64, $(nproc) CPUs"
for round in $(seq 1 "$R"); do
    echo "round $round"
    # shellcheck disable=SC2086
    run "1 process, 2 threads" -- "$B/cmir_train" $O -threads 2 "$OUT/a.mat" "$OUT/m.mat"
    # shellcheck disable=SC2086
    run "mpirun -np 1, 1 thread" mpirun --allow-run-as-root -np 1 -- "$B/cmir_train" $O "$OUT/a.mat" "$OUT/m.mat"
    # shellcheck disable=SC2086
    run "mpirun -np 2, 1 thread each" mpirun --allow-run-as-root -np 2 -- "$B/cmir_train" $O "$OUT/a.mat" "$OUT/m.mat"
done
