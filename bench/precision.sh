#!/bin/sh
# Paired precision benchmark (not a test): does -precision B retrieve as well
# as -precision A on the real sets? Each seed trains both on the same split
# (cmir_train -split tile -test_frac 0.5, all else default, as a new user runs
# it), and the per-seed differences B - A of held-out mAP are summarised as
# mean +- standard error with a 95% interval, beside the training-free floor.
# Per-seed mAP on these sets moves by 0.03-0.05 with the split, so only the
# paired differences over many seeds can resolve a gate like 0.005. Verdict:
# the 95% interval inside +-TOL (within), below -TOL (worse), above TOL
# (better), above -TOL only (not worse), else unresolved.
# With VALID=F (a fraction), both train with -valid_frac F and are scored on
# those validation tiles (cmir_eval -valid), never on the test half: the
# form to choose a setting by.
# Usage: sh bench/precision.sh BUILD_DIR [OUT_DIR]
#   env: NSEEDS (32), SETS ("l8 ol nc ncu"), A (fp32), B (bf16), THREADS (2),
#        TOL (0.005: the gate the interval is checked against), VALID, SHARED
set -eu
PA=${A:-fp32}
PB=${B:-bf16} # read before B names the programs' folder (realdata_lib.sh's name)
B=${1:?usage: sh bench/precision.sh BUILD_DIR [OUT_DIR]}/cmirtools/apps
OUT=${2:-/tmp/cmir_precision}
NSEEDS=${NSEEDS:-32}
SETS=${SETS:-l8 ol nc ncu}
THREADS=${THREADS:-2}
TOL=${TOL:-0.005}
VALID=${VALID:-}
SHARED=${SHARED:-$(dirname "$0")/../../shared}
R=$SHARED/realdata
mkdir -p "$OUT"
. "$(dirname "$0")/realdata_lib.sh"
for set in $SETS; do
    if [ ! -f "$OUT/$set.mat" ]; then
        prepare
        break
    fi
done

t0=$(date +%s)
scored="held-out"
[ -n "$VALID" ] && scored="validation (-valid_frac $VALID)"
echo "== paired $PB - $PA, $scored mAP, seeds 1-$NSEEDS (each seed: its own split, both precisions)"
printf '%-5s %-9s %-8s %-8s %-8s %-24s %-8s\n' set direction floor "$PA" "$PB" "$PB - $PA (+- SE) [95%]" "vs $TOL"
for set in $SETS; do
    rows=$OUT/${set}_rows
    : >"$rows"
    s=1
    while [ "$s" -le "$NSEEDS" ]; do
        line=""
        for p in "$PA" "$PB"; do
            m=$OUT/${set}_${p}_s$s.mat
            "$B/cmir_train" -q -threads "$THREADS" -precision "$p" -seed "$s" -split tile -test_frac 0.5 \
                ${VALID:+-valid_frac "$VALID"} "$OUT/$set.mat" "$m"
            line="$line $(evaluate "$m" "$OUT/$set.mat" ${VALID:+-valid})"
            rm -f "$m" "$m.txt"
        done
        echo "$line" >>"$rows" # a_pm a_mp floor_pm floor_mp b_pm b_mp floor_pm floor_mp
        s=$((s + 1))
    done
    awk -v set="$set" -v tol="$TOL" '
        { for (d = 0; d < 2; d++) { a = $(1 + d); b = $(5 + d); f = $(3 + d)
              sa[d] += a; sb[d] += b; sf[d] += f; x = b - a; s[d] += x; q[d] += x * x } n++ }
        END { split("PAN->MS MS->PAN", name, " ")
              for (d = 0; d < 2; d++) { m = s[d] / n; v = n > 1 ? (q[d] - n * m * m) / (n - 1) : 0
                  if (v < 0) v = 0; se = sqrt(v / n); lo = m - 1.96 * se; hi = m + 1.96 * se
                  verdict = hi < -tol ? "worse" : lo > tol ? "better" : lo > -tol && hi < tol ? "within" : lo > -tol ? "not worse" : "unresolved"
                  printf "%-5s %-9s %-8.4f %-8.4f %-8.4f %+.4f +- %.4f [%+.4f, %+.4f] %s\n", set, name[d + 1],
                      sf[d] / n, sa[d] / n, sb[d] / n, m, se, lo, hi, verdict } }' "$rows"
done
echo "total $(($(date +%s) - t0)) s"
