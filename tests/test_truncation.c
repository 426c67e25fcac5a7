/* Damaged model and index files: a valid MODEL file (a tiny trained model)
 * and a valid INDEX GeoPackage (cmir_index_build output) are cut at many
 * byte offsets and have seeded random bytes changed. Each damaged copy
 * must either be refused by cmir_model_load / cmir_index_open with a
 * message naming the file, or load and behave: a loaded model has the
 * original's sizes and embeds a tile into finite codes; a loaded index
 * has the original's dimension and model identity, at most its rows, and
 * answers a search with rows in range and ascending finite distances.
 * Never a crash (the sanitizer build runs this too).
 *
 * A loaded index also goes through the whole search tool (cmir_search),
 * which must answer or refuse with a message naming a file.
 *
 * Quick tier: ~600 cuts of the model (every k-th byte), ~6000 of the
 * index, 150 byte changes in the model and 100 in the index.
 * `test_truncation full`: every byte of the index; every byte of the
 * model's first and last 16 KiB and every 211th byte between (every byte
 * would take hours: a load inflates the whole prefix); 3000 changes each. */
#include "cmir/index.h"
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <fcntl.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_trunc_XXXXXX";
static int full;

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static const char *A, *M, *IX;

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    *n = 0;
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long s = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (s > 0 && (b = malloc((size_t)s)) && fread(b, 1, (size_t)s, f) == (size_t)s)
        *n = (size_t)s;
    fclose(f);
    return b;
}

static int spit(const char *path, const unsigned char *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(b, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* The refusal must carry a message that names the damaged file. */
static int refusal_ok(const char *path)
{
    const char *msg = cmir_last_error(), *base = strrchr(path, '/') + 1;
    return msg && msg[0] && strstr(msg, base) != NULL;
}

/* Distinct refusal messages (the file name and numbers taken out), with
 * how often each came, printed after each sweep. */
static char reasons[12][96];
static int reason_n[12], n_reasons;

static void tally_reason(const char *msg)
{
    char r[96];
    size_t j = 0;
    const char *m = msg;
    for (const char *p = strstr(msg, dir); p; p = strstr(m, dir)) { /* skip "/tmp/.../file" */
        m = p + strlen(dir);
        while (*m && *m != ':' && *m != ' ' && *m != '\'')
            m++;
    }
    if (m == msg && strstr(msg, ": "))
        m = msg;
    for (; *m && j + 1 < sizeof r; m++)
        if (!(*m >= '0' && *m <= '9'))
            r[j++] = *m >= 32 && *m < 127 ? *m : '?';
    r[j] = 0;
    if (j > 70)
        r[70] = 0;
    for (int i = 0; i < n_reasons; i++)
        if (!strcmp(reasons[i], r)) {
            reason_n[i]++;
            return;
        }
    if (n_reasons < 12) {
        snprintf(reasons[n_reasons], sizeof reasons[0], "%s", r);
        reason_n[n_reasons++] = 1;
    }
}

static void print_reasons(void)
{
    for (int i = 0; i < n_reasons; i++)
        printf("      %6d x '%s'\n", reason_n[i], reasons[i]);
    n_reasons = 0;
}

/* ---- the model ---- */
static cmir_model_info m_info;
static char m_id[64];
static float tile_pan[TD_PAN * TD_PAN], tile_ms[TD_MS * TD_MS * 4];

typedef struct counts {
    int tried, refused, loaded, bad_msg, misbehaved;
} counts;

/* Loads a damaged model: refused with a message naming it, or the same
 * sizes as the original and finite codes for one PAN and one MS tile.
 * *nonfinite is raised when a loaded model embeds into NaN/Inf. */
static void check_model(const char *path, counts *c, int *nonfinite, const char *what, long where)
{
    c->tried++;
    cmir_model *m = cmir_model_load(path);
    if (!m) {
        c->refused++;
        tally_reason(cmir_last_error());
        if (!refusal_ok(path)) {
            if (c->bad_msg++ < 3)
                fprintf(stderr, "  model %s %ld: refused without naming the file: '%s'\n", what, where,
                        cmir_last_error());
        }
        return;
    }
    if (c->loaded++ < 5)
        printf("    model %s %ld: loaded (checked: the original's sizes, finite codes)\n", what, where);
    const cmir_model_info *in = cmir_model_get_info(m);
    int same = in->pan_h == m_info.pan_h && in->pan_w == m_info.pan_w && in->pan_bands == m_info.pan_bands &&
               in->ms_h == m_info.ms_h && in->ms_w == m_info.ms_w && in->ms_bands == m_info.ms_bands &&
               in->ratio == m_info.ratio && in->n_classes == m_info.n_classes && in->d_v == m_info.d_v &&
               in->multilabel == m_info.multilabel && in->id != NULL;
    float z[CMIR_FEAT_DIM], v[2][128];
    int rc0 = same ? cmir_model_embed(m, NULL, 0, tile_pan, 1, z, v[0]) : -1;
    int rc1 = same ? cmir_model_embed(m, NULL, 1, tile_ms, 1, z, v[1]) : -1;
    int finite = 1;
    for (int s = 0; s < 2 && rc0 == 0 && rc1 == 0; s++)
        for (int j = 0; j < in->d_v; j++)
            finite &= isfinite(v[s][j]) != 0;
    if (!same || rc0 || rc1) {
        if (c->misbehaved++ < 3)
            fprintf(stderr, "  model %s %ld: loaded but %s (%s)\n", what, where,
                    !same ? "its sizes differ from the original's" : "embedding failed", cmir_last_error());
    } else if (!finite) {
        if ((*nonfinite)++ < 3)
            fprintf(stderr, "  model %s %ld: loaded, but embeds into NaN/Inf\n", what, where);
    }
    cmir_model_free(m);
}

static void test_model_truncated(void)
{
    size_t n;
    unsigned char *orig = slurp(M, &n);
    ASSERT_TRUE(orig != NULL && n > 1000);
    if (!orig)
        return;
    const char *cut = in_dir("cut_model.mat");
    ASSERT_EQ_INT(spit(cut, orig, n), 0);
    /* Offsets descending: the same copy is shortened each time. Quick:
     * about 600 cuts. Full: every byte of the first and last 16 KiB (the
     * file's header, the first variables' headers, the last variable's
     * end) and every 211th byte between: every byte would take 4-5 hours
     * (a load inflates the whole prefix, ~9 ms a cut). */
    size_t step = full ? 211 : (n + 599) / 600, edge = full ? 16384 : 0;
    counts c = {0};
    int nonfinite = 0;
    for (size_t off = n; off-- > 0;) {
        if (off % step && off != n - 1 && off >= edge && off + edge < n)
            continue;
        ASSERT_EQ_INT(truncate(cut, (off_t)off), 0);
        check_model(cut, &c, &nonfinite, "cut at", (long)off);
    }
    printf("  model file (%zu bytes): %d cuts (every %zuth byte%s), %d refused, %d loaded (%d embedding NaN/Inf), "
           "%d refusals without the file name, %d misbehaved, 0 crashes\n",
           n, c.tried, step, edge ? ", every byte of the first and last 16 KiB" : "", c.refused, c.loaded,
           nonfinite, c.bad_msg, c.misbehaved);
    print_reasons();
    ASSERT_EQ_INT(c.bad_msg, 0);
    ASSERT_EQ_INT(c.misbehaved, 0);
    ASSERT_EQ_INT(nonfinite, 0);
    /* A model that loads must behave (checked above); since the model
     * requires every variable it writes, a cut between two of them is
     * refused too. Most cuts must be refused. */
    ASSERT_LE(c.loaded, c.tried / 100);
    ASSERT_TRUE(c.tried >= (full ? (int)(n / step + edge) : 500));
    free(orig);
}

static void test_model_flipped(void)
{
    size_t n;
    unsigned char *orig = slurp(M, &n);
    REQUIRE(orig != NULL);
    const char *bad = in_dir("flip_model.mat");
    int flips = full ? 3000 : 150;
    counts c = {0};
    int nonfinite = 0;
    rng_state = 0x1234567ull;
    for (int i = 0; i < flips; i++) {
        size_t pos = (size_t)(next_rand() % n);
        unsigned char x = (unsigned char)(1 + next_rand() % 255);
        orig[pos] ^= x;
        ASSERT_EQ_INT(spit(bad, orig, n), 0);
        orig[pos] ^= x;
        check_model(bad, &c, &nonfinite, "byte changed at", (long)pos);
    }
    printf("  model file: %d single-byte changes, %d refused, %d loaded (%d embedding NaN/Inf), "
           "%d refusals without the file name, %d misbehaved, 0 crashes\n",
           c.tried, c.refused, c.loaded, nonfinite, c.bad_msg, c.misbehaved);
    print_reasons();
    ASSERT_EQ_INT(c.bad_msg, 0);
    ASSERT_EQ_INT(c.misbehaved, 0);
    ASSERT_EQ_INT(nonfinite, 0);
    ASSERT_EQ_INT(c.tried, flips);
    free(orig);
}

/* ---- the index ---- */
static int64_t ix_n;
static int ix_dim;
static float *ix_v; /* the original vectors */

typedef struct icounts {
    int tried, refused, loaded, loaded_whole, loaded_fewer, changed_vectors, bad_msg, misbehaved;
    int tool_ok, tool_refused, tool_blames_output; /* the search tool (model + index -> GeoJSON) on loaded copies */
} icounts;

/* The whole search tool on a damaged index that opened: it answers, or
 * refuses with a message naming the index (e.g. a damaged footprint). */
static const char *tool_check(const char *path, icounts *c)
{
    cmir_query q = {.kind = CMIR_QUERY_ROW, .row = 1};
    cmir_search_params p = cmir_search_default_params();
    p.k = 3;
    p.threads = 1;
    /* CSV, not the default GeoJSON: GDAL 3.6's RFC 7946 writer leaks the
     * reprojected copy of a geometry it refuses as out of range (a damaged
     * footprint), which would fail the sanitizer pass for GDAL's sake. */
    p.format = "CSV";
    const char *out = in_dir("hits.csv");
    int rc = cmir_search(M, path, &q, 1, out, p, NULL, NULL);
    if (rc == 0) {
        struct stat st;
        c->tool_ok++;
        return stat(out, &st) == 0 && st.st_size > 50 ? NULL : "the search tool wrote no hits";
    }
    c->tool_refused++;
    tally_reason(cmir_last_error());
    if (refusal_ok(path))
        return NULL;
    /* A damaged footprint (a coordinate out of range) is refused when
     * the hit is written, by a message that names the output file
     * instead of the index that holds it: counted, reported. */
    if (refusal_ok(out)) {
        c->tool_blames_output++;
        return NULL;
    }
    return "the search tool refused it without naming the index or the output";
}

static void check_index(const char *path, icounts *c, const char *what, long where)
{
    c->tried++;
    cmir_index *ix = cmir_index_open(path);
    if (!ix) {
        c->refused++;
        tally_reason(cmir_last_error());
        if (!refusal_ok(path) && c->bad_msg++ < 3)
            fprintf(stderr, "  index %s %ld: refused without naming the file: '%s'\n", what, where,
                    cmir_last_error());
        return;
    }
    c->loaded++;
    int64_t n = cmir_index_count(ix);
    const char *id = cmir_index_model_id(ix);
    const char *why = NULL;
    if (cmir_index_dim(ix) != ix_dim)
        why = "another dimension";
    else if (n < 0 || n > ix_n)
        why = "more rows than the original";
    else if (!id || strcmp(id, m_id) != 0)
        why = "another model identity";
    else if (n > 0) {
        int64_t rows[5];
        float dist[5];
        cmir_search_filter f = cmir_search_default_filter();
        int k = 5;
        const float *q = cmir_index_vector(ix, 0);
        if (!q)
            why = "no vector for row 0";
        else if (cmir_index_search(ix, NULL, q, 1, k, &f, rows, dist) != 0)
            why = "search failed";
        else
            for (int j = 0; j < k && !why; j++) {
                if (j >= n) {
                    if (rows[j] != -1)
                        why = "a hit beyond the row count";
                } else if (rows[j] < 0 || rows[j] >= n || !(dist[j] >= 0) || (j && dist[j] < dist[j - 1]))
                    why = "search answered rows out of range or unordered distances";
            }
        for (int64_t r = 0; r < n && !why; r++) {
            int md = cmir_index_modality(ix, r);
            if (md != 0 && md != 1)
                why = "a modality other than PAN/MS";
        }
        if (!why) {
            if (n == ix_n)
                c->loaded_whole++;
            else
                c->loaded_fewer++;
            if (memcmp(cmir_index_vector(ix, 0), ix_v, sizeof(float) * (size_t)(n * ix_dim)) != 0)
                c->changed_vectors++;
        }
    } else {
        c->loaded_fewer++;
    }
    cmir_index_close(ix);
    if (!why && n > 1)
        why = tool_check(path, c);
    if (why && c->misbehaved++ < 3)
        fprintf(stderr, "  index %s %ld: loaded but %s (%lld rows; %s)\n", what, where, why, (long long)n,
                cmir_last_error());
}

static void test_index_truncated(void)
{
    size_t n;
    unsigned char *orig = slurp(IX, &n);
    ASSERT_TRUE(orig != NULL && n > 4096);
    if (!orig)
        return;
    const char *cut = in_dir("cut_index.gpkg");
    ASSERT_EQ_INT(spit(cut, orig, n), 0);
    /* ~0.2 ms a cut: every byte in the full tier, ~6000 cuts quick. */
    size_t step = full ? 1 : (n + 5999) / 6000;
    icounts c = {0};
    for (size_t off = n; off-- > 0;) {
        if (off % step && off != n - 1)
            continue;
        ASSERT_EQ_INT(truncate(cut, (off_t)off), 0);
        check_index(cut, &c, "cut at", (long)off);
    }
    printf("  index file (%zu bytes): %d cuts (every %zu%s byte), %d refused, %d loaded (%d with every row, "
           "%d with fewer; %d with vectors that differ), %d refusals without the file name, %d misbehaved, "
           "0 crashes\n",
           n, c.tried, step, step == 1 ? "st" : "th", c.refused, c.loaded, c.loaded_whole, c.loaded_fewer,
           c.changed_vectors, c.bad_msg, c.misbehaved);
    print_reasons();
    ASSERT_EQ_INT(c.bad_msg, 0);
    ASSERT_EQ_INT(c.misbehaved, 0);
    ASSERT_TRUE(c.refused > 0);
    /* A cut never changes what is left: loaded vectors are the original's. */
    ASSERT_EQ_INT(c.changed_vectors, 0);
    ASSERT_TRUE(c.tried >= (full ? (int)n : 5000));
    free(orig);
}

static void test_index_flipped(void)
{
    size_t n;
    unsigned char *orig = slurp(IX, &n);
    REQUIRE(orig != NULL);
    const char *bad = in_dir("flip_index.gpkg");
    int flips = full ? 3000 : 100;
    icounts c = {0};
    rng_state = 0x7654321ull;
    for (int i = 0; i < flips; i++) {
        size_t pos = (size_t)(next_rand() % n);
        unsigned char x = (unsigned char)(1 + next_rand() % 255);
        orig[pos] ^= x;
        ASSERT_EQ_INT(spit(bad, orig, n), 0);
        orig[pos] ^= x;
        check_index(bad, &c, "byte changed at", (long)pos);
    }
    printf("  index file: %d single-byte changes, %d refused, %d loaded (%d with every row, %d with fewer; "
           "%d with vectors that differ: SQLite keeps no checksums), %d refusals without the file name, "
           "%d misbehaved, 0 crashes; the search tool on the loaded copies: %d answered, %d refused (%d of "
           "them naming the output file, not the damaged index)\n",
           c.tried, c.refused, c.loaded, c.loaded_whole, c.loaded_fewer, c.changed_vectors, c.bad_msg,
           c.misbehaved, c.tool_ok, c.tool_refused, c.tool_blames_output);
    print_reasons();
    ASSERT_EQ_INT(c.bad_msg, 0);
    ASSERT_EQ_INT(c.misbehaved, 0);
    ASSERT_EQ_INT(c.tried, flips);
    free(orig);
}

static void setup(void)
{
    A = in_dir("a.mat");
    M = in_dir("model.mat");
    IX = in_dir("index.gpkg");
    ASSERT_OK(td_make_archive(A, 40, 1));
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 16;
    p.epochs1 = 1;
    p.epochs2 = 2;
    p.unified.d_v = 8;
    ASSERT_OK(cmir_train(A, M, p, NULL, NULL, NULL));
    int64_t added = 0;
    ASSERT_OK(cmir_index_build(M, &A, 1, IX, cmir_index_default_params(), NULL, NULL, &added));
    ASSERT_EQ_INT(added, 80);
    cmir_model *m = cmir_model_load(M);
    ASSERT_TRUE(m != NULL);
    if (m) {
        m_info = *cmir_model_get_info(m);
        snprintf(m_id, sizeof m_id, "%s", m_info.id);
        m_info.id = NULL;
        cmir_model_free(m);
    }
    cmir_archive *a = cmir_archive_open(A);
    ASSERT_TRUE(a != NULL);
    if (a) {
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, 3, tile_pan));
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, 3, tile_ms));
        cmir_archive_close(a);
    }
    cmir_index *ix = cmir_index_open(IX);
    ASSERT_TRUE(ix != NULL);
    if (ix) {
        ix_n = cmir_index_count(ix);
        ix_dim = cmir_index_dim(ix);
        ix_v = malloc(sizeof(float) * (size_t)(ix_n * ix_dim));
        memcpy(ix_v, cmir_index_vector(ix, 0), sizeof(float) * (size_t)(ix_n * ix_dim));
        cmir_index_close(ix);
    }
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    full = argc > 1 && strcmp(argv[1], "full") == 0;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setup();
    if (t_failures == 0 && ix_v) {
        double t0 = now();
        RUN(test_model_truncated);
        printf("  (%.1f s)\n", now() - t0), t0 = now();
        RUN(test_model_flipped);
        printf("  (%.1f s)\n", now() - t0), t0 = now();
        RUN(test_index_truncated);
        printf("  (%.1f s)\n", now() - t0), t0 = now();
        RUN(test_index_flipped);
        printf("  (%.1f s)\n", now() - t0);
    }
    free(ix_v);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
