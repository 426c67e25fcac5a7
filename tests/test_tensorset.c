/* Tests of named-tensor .mat files: round trips of every rank and of
 * strings, the MATLAB-side shape and element order (read back with matio
 * directly), v7.3 and double input, validation with expect(), and damaged
 * files (truncated at many offsets, garbage, missing) refused cleanly. */
#include "cmir/tensorset.h"
#include "test_util.h"

#include <matio.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_ts_XXXXXX";

static char *path_in(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static float seq[2 * 3 * 4 * 5];

static void test_roundtrip(void)
{
    for (int i = 0; i < 120; i++)
        seq[i] = (float)i * 0.5f - 7.0f;
    cmir_tensorset *ts = cmir_tensorset_new();
    int64_t s1[1] = {7}, s2[2] = {3, 4}, s3[3] = {2, 3, 4}, s4[4] = {2, 3, 4, 5};
    cmir_tensor t1 = cmir_tensor_make(seq, 1, s1), t2 = cmir_tensor_make(seq, 2, s2);
    cmir_tensor t3 = cmir_tensor_make(seq, 3, s3), t4 = cmir_tensor_make(seq, 4, s4);
    ASSERT_OK(cmir_tensorset_put(ts, "vec", &t1));
    ASSERT_OK(cmir_tensorset_put(ts, "mat", &t2));
    ASSERT_OK(cmir_tensorset_put(ts, "cube", &t3));
    ASSERT_OK(cmir_tensorset_put(ts, "conv_W", &t4));
    ASSERT_OK(cmir_tensorset_put_string(ts, "class_names", "water,forest,river"));
    ASSERT_OK(cmir_tensorset_put_string(ts, "empty", ""));
    /* Replacing keeps one entry. */
    ASSERT_OK(cmir_tensorset_put(ts, "mat", &t2));
    ASSERT_EQ_INT(cmir_tensorset_count(ts), 6);
    ASSERT_EQ_INT(cmir_tensorset_put(ts, "1bad", &t2), CMIR_EINVAL);
    ASSERT_EQ_INT(cmir_tensorset_put(ts, "bad-name", &t2), CMIR_EINVAL);
    const char *p = path_in("rt.mat");
    ASSERT_OK(cmir_tensorset_save(ts, p));
    cmir_tensorset *back = cmir_tensorset_load(p);
    ASSERT_TRUE(back != NULL);
    if (!back) {
        fprintf(stderr, "%s\n", cmir_last_error());
        return;
    }
    ASSERT_EQ_INT(cmir_tensorset_count(back), 6);
    const char *names[4] = {"vec", "mat", "cube", "conv_W"};
    const int64_t *shapes[4] = {s1, s2, s3, s4};
    int ranks[4] = {1, 2, 3, 4};
    for (int k = 0; k < 4; k++) {
        const cmir_tensor *t = cmir_tensorset_get(back, names[k]);
        ASSERT_TRUE(t != NULL);
        if (!t)
            continue;
        ASSERT_OK(cmir_tensorset_expect(back, names[k], ranks[k], shapes[k]));
        int64_t n = cmir_tensor_numel(t);
        for (int64_t i = 0; i < n; i++)
            ASSERT_NEAR(t->data[i], seq[i], 0);
    }
    ASSERT_TRUE(strcmp(cmir_tensorset_get_string(back, "class_names"), "water,forest,river") == 0);
    ASSERT_TRUE(strcmp(cmir_tensorset_get_string(back, "empty"), "") == 0);
    /* expect() failures name the entry and both shapes. */
    int64_t wrong[2] = {4, 3}, any[2] = {-1, 4};
    ASSERT_EQ_INT(cmir_tensorset_expect(back, "mat", 2, wrong), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), "'mat' is 3x4, expected 4x3") != NULL);
    ASSERT_OK(cmir_tensorset_expect(back, "mat", 2, any));
    ASSERT_EQ_INT(cmir_tensorset_expect(back, "nothere", 2, any), CMIR_ENOTFOUND);
    ASSERT_TRUE(cmir_tensorset_get(back, "class_names") == NULL);
    /* No temporary file is left beside the target. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", dir);
    ASSERT_TRUE(system(cmd) != 0);
    cmir_tensorset_free(ts);
    cmir_tensorset_free(back);
    cmir_tensorset_free(NULL);
}

/* What MATLAB/Octave see: a 3x4 tensor is a 3x4 single matrix whose
 * element (i,j) equals ours. */
static void test_matlab_layout(void)
{
    mat_t *m = Mat_Open(path_in("rt.mat"), MAT_ACC_RDONLY);
    REQUIRE(m != NULL);
    matvar_t *v = Mat_VarRead(m, "mat");
    ASSERT_TRUE(v && v->rank == 2 && v->dims[0] == 3 && v->dims[1] == 4);
    ASSERT_EQ_INT(v->class_type, MAT_C_SINGLE);
    const float *d = v->data;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            ASSERT_NEAR(d[i + 3 * j], seq[i * 4 + j], 0);
    Mat_VarFree(v);
    v = Mat_VarRead(m, "vec");
    ASSERT_TRUE(v && v->rank == 2 && v->dims[0] == 7 && v->dims[1] == 1);
    Mat_VarFree(v);
    v = Mat_VarRead(m, "conv_W");
    ASSERT_TRUE(v && v->rank == 4 && v->dims[0] == 2 && v->dims[3] == 5);
    /* element (1,2,3,4) */
    d = v->data;
    ASSERT_NEAR(d[1 + 2 * 2 + 3 * 6 + 4 * 24], seq[((1 * 3 + 2) * 4 + 3) * 5 + 4], 0);
    Mat_VarFree(v);
    Mat_Close(m);
}

/* A v7.3 (HDF5) file of doubles and uint8, as other tools write them. */
static void test_v73_and_types(void)
{
    const char *p = path_in("v73.mat");
    mat_t *m = Mat_CreateVer(p, NULL, MAT_FT_MAT73);
    REQUIRE(m != NULL);
    double dd[6] = {1, 2, 3, 4, 5, 6}; /* column-major 2x3: [[1,3,5],[2,4,6]] */
    uint8_t u8[4] = {0, 7, 255, 9};
    size_t d2[2] = {2, 3}, d1[2] = {4, 1};
    matvar_t *v = Mat_VarCreate("features", MAT_C_DOUBLE, MAT_T_DOUBLE, 2, d2, dd, 0);
    Mat_VarWrite(m, v, MAT_COMPRESSION_NONE);
    Mat_VarFree(v);
    v = Mat_VarCreate("labels", MAT_C_UINT8, MAT_T_UINT8, 2, d1, u8, 0);
    Mat_VarWrite(m, v, MAT_COMPRESSION_NONE);
    Mat_VarFree(v);
    Mat_Close(m);
    cmir_tensorset *ts = cmir_tensorset_load(p);
    ASSERT_TRUE(ts != NULL);
    if (!ts) {
        fprintf(stderr, "  %s\n", cmir_last_error());
        return;
    }
    const cmir_tensor *f = cmir_tensorset_get(ts, "features");
    ASSERT_TRUE(f && f->shape[0] == 2 && f->shape[1] == 3);
    if (f) {
        float want[6] = {1, 3, 5, 2, 4, 6};
        for (int i = 0; i < 6; i++)
            ASSERT_NEAR(f->data[i], want[i], 0);
    }
    const cmir_tensor *l = cmir_tensorset_get(ts, "labels");
    ASSERT_TRUE(l && l->data[2] == 255.0f);
    cmir_tensorset_free(ts);
}

static void test_damaged_files(void)
{
    /* Missing file. */
    ASSERT_TRUE(cmir_tensorset_load(path_in("missing.mat")) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "missing.mat") != NULL);
    /* Garbage. */
    const char *g = path_in("garbage.mat");
    FILE *f = fopen(g, "wb");
    for (int i = 0; i < 4000; i++)
        fputc((i * 7919) & 0xff, f);
    fclose(f);
    ASSERT_TRUE(cmir_tensorset_load(g) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "garbage.mat") != NULL);
    /* A directory is not a file. */
    ASSERT_TRUE(cmir_tensorset_load(dir) == NULL);
    /* Truncated at many offsets: never a crash; either refused with a
     * message naming the file, or (cut after the last variable's data)
     * loaded with fewer variables. */
    f = fopen(path_in("rt.mat"), "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)size);
    ASSERT_EQ_INT(fread(buf, 1, (size_t)size, f), size);
    fclose(f);
    int refused = 0, tried = 0;
    const char *t = path_in("trunc.mat");
    for (long cut = 0; cut < size; cut += (cut < 200 ? 1 : 7)) {
        f = fopen(t, "wb");
        fwrite(buf, 1, (size_t)cut, f);
        fclose(f);
        cmir_tensorset *ts = cmir_tensorset_load(t);
        tried++;
        if (!ts) {
            refused++;
            ASSERT_TRUE(strstr(cmir_last_error(), "trunc.mat") != NULL);
        } else {
            ASSERT_TRUE(cmir_tensorset_count(ts) < 6);
            cmir_tensorset_free(ts);
        }
    }
    printf("  truncated copies: %d tried, %d refused, the rest loaded partially\n", tried, refused);
    ASSERT_TRUE(refused > tried / 2);
    free(buf);
    /* Saving into a missing directory fails and says why. */
    cmir_tensorset *ts = cmir_tensorset_new();
    ASSERT_EQ_INT(cmir_tensorset_save(ts, "/nonexistent-dir/x.mat"), CMIR_EIO);
    ASSERT_TRUE(strstr(cmir_last_error(), "/nonexistent-dir/x.mat") != NULL);
    cmir_tensorset_free(ts);
}

/* Octave reads our file, when Octave is installed (its own file, so that
 * the case runs alone: test_tensorset -t test_octave). Octave's output is
 * shown when it fails. */
static void test_octave(void)
{
    if (system("command -v octave-cli > /dev/null 2>&1") != 0) {
        SKIP("octave-cli not installed");
    }
    for (int i = 0; i < 12; i++)
        seq[i] = (float)i * 0.5f - 7.0f;
    cmir_tensorset *ts = cmir_tensorset_new();
    REQUIRE(ts != NULL);
    int64_t s2[2] = {3, 4};
    cmir_tensor t2 = cmir_tensor_make(seq, 2, s2);
    ASSERT_OK(cmir_tensorset_put(ts, "mat", &t2));
    ASSERT_OK(cmir_tensorset_put_string(ts, "class_names", "water,forest,river"));
    ASSERT_OK(cmir_tensorset_save(ts, path_in("oct.mat")));
    cmir_tensorset_free(ts);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "octave-cli --no-gui --eval \"s = load('%s'); assert(isequal(size(s.mat), [3 4])); "
             "assert(s.mat(2,3) == %g); assert(strcmp(s.class_names, 'water,forest,river'));\" "
             "> %s 2>&1",
             path_in("oct.mat"), (double)seq[1 * 4 + 2], path_in("octave.log"));
    int st = system(cmd);
    ASSERT_EQ_INT(st, 0);
    if (st != 0) {
        snprintf(cmd, sizeof cmd, "sed 's/^/    octave: /' %s >&2", path_in("octave.log"));
        (void)!system(cmd);
    }
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_roundtrip);
    RUN(test_matlab_layout);
    RUN(test_v73_and_types);
    RUN(test_damaged_files);
    RUN(test_octave);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
