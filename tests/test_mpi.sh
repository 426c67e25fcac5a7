#!/bin/sh
# Indexing and search under MPI (issue 17), 3 ranks on localhost: a
# sharded build (-shards) then a sharded search give the hits of the
# single-process index for 100 queries (rows and distances compared
# exactly), as do the manifest searched in one process, the GDAL driver
# (ogr2ogr) over the manifest and an index merged by rank 0; a shard that
# cannot be opened fails the job with one line naming the rank and the
# file; a rank killed while it writes its shard fails the job and leaves
# the previous index as it was. Skips (77) only without mpirun.
#   test_mpi.sh BIN_DIR PLUGIN_DIR
set -u
BIN=$1
PLUGIN=$2
if ! command -v mpirun >/dev/null 2>&1; then
    echo "SKIP: mpirun is absent (Debian package openmpi-bin)"
    exit 77
fi
T=$(mktemp -d /tmp/cmir_mpi_XXXXXX)
trap 'rm -rf "$T"' EXIT
# containers: no cross-memory attach, more ranks than cores, root allowed
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export HDF5_USE_FILE_LOCKING=FALSE
MPI="timeout 300 mpirun --allow-run-as-root --oversubscribe -np 3"
fail=0
bad() {
    echo "FAIL: $*"
    fail=1
}
# hits without the query descriptions (they name the index file)
hits() { sed 's/,query [0-9]*: .*$//' "$1"; }

# fixtures: a 512 px scene cut into 1024 tiles, and a model
cd "$T" || exit 1
mkdir syn
if ! "$BIN/cmir_synth" -q -n 1 -size 512 -ratio 2 -o syn -prefix s ||
    ! "$BIN/cmir_tile" -q -pan syn/s_000_pan.tif -ms syn/s_000_ms.tif -labels syn/s_000_class.tif -ts 16 \
        -stride 16 a.mat ||
    ! "$BIN/cmir_train" -q -threads 1 -epochs1 1 -epochs2 1 a.mat model.mat >log 2>&1; then
    cat log
    echo "FAIL: cannot make the fixtures"
    exit 1
fi
cp a.mat b.mat
# 2 archives x 1024 tiles x 2 modalities = 64 batches of 64 tiles: the
# ranks' runs of batches cut through the archives and the modalities
"$BIN/cmir_index" -q -threads 1 -model model.mat a.mat b.mat single.gpkg || bad "single-process index"
i=0
while [ $i -lt 100 ]; do
    echo "row $((i * 41))"
    i=$((i + 1))
done >queries.txt
# and raster windows, embedded by rank 0 under MPI before the ranks open their shards
printf 'raster syn/s_000_pan.tif 0 0 16 16\nraster syn/s_000_pan.tif 100 60 16 16\nraster syn/s_000_ms.tif 8 8 8 8\n' \
    >>queries.txt
"$BIN/cmir_search" -q -threads 1 -model model.mat -index single.gpkg -k 10 -queries queries.txt -of CSV \
    single.csv || bad "single-process search"
[ "$(wc -l <single.csv)" -eq 1031 ] || bad "single.csv has $(wc -l <single.csv) lines, not 1 + 103 x 10"

# sharded build, sharded search
$MPI "$BIN/cmir_index" -q -threads 1 -shards -model model.mat a.mat b.mat sh.txt >log 2>&1 ||
    { cat log; bad "mpirun cmir_index -shards"; }
[ "$(grep -c '^shard ' sh.txt)" -eq 3 ] || bad "the manifest does not list 3 shards: $(cat sh.txt)"
$MPI "$BIN/cmir_search" -q -threads 1 -model model.mat -index sh.txt -k 10 -queries queries.txt -of CSV \
    mpi.csv >log 2>&1 || { cat log; bad "mpirun cmir_search"; }
hits single.csv >single.hits
hits mpi.csv >mpi.hits 2>/dev/null
cmp -s single.hits mpi.hits || bad "sharded search differs from the single index: $(diff single.hits mpi.hits | head -5)"
# the int8 scan (codes beside each rank's matrix) gives the same hits, in one process and under MPI
for scan in int8 float; do
    $MPI "$BIN/cmir_search" -q -threads 1 -scan $scan -model model.mat -index sh.txt -k 10 -queries queries.txt \
        -of CSV mpi_$scan.csv >log 2>&1 || { cat log; bad "mpirun cmir_search -scan $scan"; }
    hits mpi_$scan.csv >mpi_$scan.hits 2>/dev/null
    cmp -s single.hits mpi_$scan.hits || bad "sharded search -scan $scan differs from the single index"
    "$BIN/cmir_search" -q -threads 1 -scan $scan -model model.mat -index single.gpkg -k 10 -queries queries.txt \
        -of CSV single_$scan.csv || bad "single-process search -scan $scan"
    hits single_$scan.csv >single_$scan.hits 2>/dev/null
    cmp -s single.hits single_$scan.hits || bad "single-process search -scan $scan differs from -scan auto"
done
# each shard stores its int8 codes (table cmir_q8); an index built with
# -no_codes stores none, and its int8 scan (codes computed in memory) answers the same
for s in sh.txt.*of3.gpkg; do
    ogrinfo -ro -so "$s" cmir_q8 2>/dev/null | grep -q 'Feature Count: [1-9]' || bad "shard $s stores no int8 codes"
done
"$BIN/cmir_index" -q -threads 1 -no_codes -model model.mat a.mat b.mat nocodes.gpkg || bad "cmir_index -no_codes"
ogrinfo -ro -so nocodes.gpkg cmir_q8 >/dev/null 2>&1 && bad "cmir_index -no_codes stored int8 codes"
"$BIN/cmir_search" -q -threads 1 -scan int8 -model model.mat -index nocodes.gpkg -k 10 -queries queries.txt \
    -of CSV nocodes.csv || bad "search -scan int8 of an index without codes"
hits nocodes.csv >nocodes.hits 2>/dev/null
cmp -s single.hits nocodes.hits || bad "an index without codes (-scan int8) differs from the single index"

# the manifest in one process, and through the GDAL driver
"$BIN/cmir_search" -q -threads 1 -model model.mat -index sh.txt -k 10 -queries queries.txt -of CSV one.csv ||
    bad "single-process search of the manifest"
hits one.csv >one.hits 2>/dev/null
cmp -s single.hits one.hits || bad "the manifest in one process differs from the single index"
for r in 0 1500 4095; do
    for ix in single.gpkg sh.txt; do
        GDAL_DRIVER_PATH=$PLUGIN ogr2ogr -f CSV "ogr_$ix.csv" "CMIR:QUERY?MODEL=model.mat&INDEX=$ix&ROW=$r&K=10" ||
            bad "ogr2ogr over $ix"
        hits "ogr_$ix.csv" >"ogr_$ix.hits" 2>/dev/null
    done
    [ "$(wc -l <ogr_sh.txt.hits)" -eq 11 ] || bad "ogr2ogr over the manifest: $(wc -l <ogr_sh.txt.hits) lines for row $r"
    cmp -s ogr_single.gpkg.hits ogr_sh.txt.hits || bad "ogr2ogr over the manifest differs for row $r"
done

# rank 0 merges: the same index, no shard left
$MPI "$BIN/cmir_index" -q -threads 1 -model model.mat a.mat b.mat merged.gpkg >log 2>&1 ||
    { cat log; bad "mpirun cmir_index (merged)"; }
ls merged.gpkg.* >/dev/null 2>&1 && bad "shards left beside the merged index: $(ls merged.gpkg.*)"
"$BIN/cmir_search" -q -threads 1 -model model.mat -index merged.gpkg -k 10 -queries queries.txt -of CSV \
    merged.csv || bad "search of the merged index"
hits merged.csv >merged.hits 2>/dev/null
cmp -s single.hits merged.hits || bad "the index merged under MPI differs from the single index"

# a shard that cannot be opened: one line naming rank 1 and the file
sed 's/^\(shard [0-9]* [0-9]* \).*1of3\.gpkg$/\1gone.gpkg/' sh.txt >gone.txt
$MPI "$BIN/cmir_search" -q -model model.mat -index gone.txt -row 3 -of CSV gone.csv >out 2>err &&
    bad "a missing shard did not fail the search"
n=$(grep -c '^cmir_search: ' err)
[ "$n" -eq 1 ] || bad "$n cmir_search lines for a missing shard, not 1: $(cat err)"
grep -q '^cmir_search: rank 1: .*gone\.gpkg' err || bad "the failure does not name rank 1 and gone.gpkg: $(cat err)"
[ -e gone.csv ] && bad "a failed search wrote its output"
# a GeoPackage is not a manifest: refused, by rank 0 alone
$MPI "$BIN/cmir_search" -q -model model.mat -index single.gpkg -row 3 -of CSV x.csv >out 2>err &&
    bad "mpirun cmir_search accepted a GeoPackage as a manifest"
grep -q '^cmir_search: rank 0: single.gpkg: not a shard manifest' err || bad "no clear refusal of a GeoPackage: $(cat err)"

# -cmirq under MPI: rank 0 writes the query file, which one process re-runs
# through the driver; -qgs is refused in one line (its map needs every shard)
$MPI "$BIN/cmir_search" -q -threads 1 -model model.mat -index sh.txt -row 77 -cmirq q.cmirq -of CSV q.csv \
    >log 2>&1 || { cat log; bad "mpirun cmir_search -cmirq"; }
if [ "$(head -1 q.cmirq 2>/dev/null)" != "CMIR-QUERY 1" ]; then
    bad "mpirun cmir_search -cmirq wrote no query file"
elif GDAL_DRIVER_PATH=$PLUGIN ogr2ogr -f CSV q_driver.csv q.cmirq >log 2>&1 &&
    GDAL_DRIVER_PATH=$PLUGIN ogr2ogr -f CSV q_conn.csv "CMIR:QUERY?MODEL=model.mat&INDEX=sh.txt&ROW=77&K=10" >>log 2>&1; then
    if [ "$(wc -l <q_driver.csv)" -ne 11 ] || [ "$(hits q_driver.csv)" != "$(hits q_conn.csv)" ]; then
        bad "the query file written under MPI gives other hits than its query (ogr2ogr)"
    fi
else
    cat log
    bad "ogr2ogr could not open the query file written under MPI"
fi
$MPI "$BIN/cmir_search" -q -threads 1 -model model.mat -index sh.txt -row 77 -qgs p.qgs q2.csv >out 2>err &&
    bad "mpirun cmir_search accepted -qgs"
grep -q "^cmir_search: \(rank 0: \)\{0,1\}p.qgs: no QGIS project from a sharded search under MPI" err ||
    bad "no clear refusal of -qgs under MPI: $(cat err)"

# a rank killed while it writes its shard: the job fails, sh.txt and its
# shards stay as they were
cp sh.txt sh.before
for s in sh.txt.*of3.gpkg; do md5sum "$s"; done >shards.before
# shellcheck disable=SC2016 # expanded by the ranks' shell
KILL1='if [ "${OMPI_COMM_WORLD_RANK:-0}" != 1 ]; then exec "$@"; fi
"$@" & p=$!; n=0
while [ $n -lt 600 ] && ! ls ./*.1of3.tmp-* >/dev/null 2>&1; do sleep 0.05; n=$((n + 1)); done
kill -KILL "$p"; wait "$p"; kill -KILL $$'
$MPI sh -c "$KILL1" sh "$BIN/cmir_index" -q -threads 1 -shards -overwrite -model model.mat a.mat b.mat a.mat b.mat sh.txt \
    >out 2>err && bad "a killed rank did not fail the job"
grep -q "^cmir_index: rank 1 (pid [0-9]* on .*) ended while writing .*sh.txt.*1of3.gpkg; " err ||
    bad "no line naming the killed rank 1 and its shard: $(cat err)"
[ "$(grep -c ' ended while ' err)" -eq 1 ] || bad "not exactly one line about the killed rank: $(cat err)"
cmp -s sh.before sh.txt || bad "a killed job changed the manifest"
md5sum -c --quiet shards.before || bad "a killed job changed the shards the manifest lists"
$MPI "$BIN/cmir_search" -q -threads 1 -model model.mat -index sh.txt -k 10 -queries queries.txt -of CSV \
    after.csv >log 2>&1 || { cat log; bad "search after the killed job"; }
hits after.csv >after.hits 2>/dev/null
cmp -s single.hits after.hits || bad "the index searched after the killed job differs"

[ $fail -eq 0 ] && echo "PASS: sharded build and search under mpirun -np 3 equal the single-process index"
exit $fail
