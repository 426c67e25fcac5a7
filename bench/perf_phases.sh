#!/bin/sh
# Where a cmir_cnn training step spends its time, by phase: perf record of
# bench_nn --profile (the steps alone at one precision), its symbols summed
# into phases (the conv, batch-norm and pool kernels are fused, so timers
# cannot split them). Usage:
#   bench/perf_phases.sh BUILD/bench/bench_nn pan|ms fp32|bf16 [SECONDS]
set -eu
bench=$1 branch=$2 prec=$3 secs=${4:-3}
data=$(mktemp /tmp/cmir_perf.XXXXXX)
trap 'rm -f "$data"' EXIT
perf record -q -o "$data" -F 999 "$bench" --profile "$prec" --branch "$branch" -s "$secs" -b 32 |
    grep "step"
perf report -i "$data" --no-children --sort symbol 2>/dev/null | grep -v '^#' | grep '%' | awk '
{
    p = $1; sub("%", "", p); s = $3; c = "other (libc, setup, bench)"
    if (s ~ /^b?fwd_row|^fwd_one_row/) c = "conv forward and dx kernels"
    if (s ~ /^b?dw_row|^db_row/) c = "conv dW, db kernels"
    if (s ~ /^cmir__bfd_|^tap_pairs/) c = "bf16 conversions (pairs)"
    if (s ~ /pool_fwd|bsum|stats_avx|channel_sums|memmove|memcpy/) c = "batch norm + pool forward, copies"
    if (s ~ /dense_row|dense_px/) c = "batch norm + pool + lrelu backward rows"
    if (s ~ /sgemm|tile_any|pack_a|pack_b|bgemm/) c = "dense layers (GEMM)"
    if (s ~ /optim|adam/) c = "Adam"
    if (s ~ /memset/) c = "memset (zeroing)"
    if ($2 == "[k]" || s ~ /sched_yield/) c = "thread waits (yield), kernel (page faults)"
    t[c] += p
}
END { for (c in t) printf "  %5.1f%%  %s\n", t[c], c }' | sort -rn
