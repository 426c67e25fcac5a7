/* Tests of cmir_train()'s validation split, -init and stage 0 (issue 14):
 * the validation tiles are disjoint from the test tiles and recorded in
 * the model with the epochs they chose; -init from a model of another
 * class count copies its convolutions exactly and remakes the heads; a
 * contrastive pretraining run on an unlabelled archive lowers InfoNCE
 * below chance and is bit-identical for a seed and thread count; a label
 * budget's other tiles train stage 2 as unlabelled pairs. */
#include "cmir/archive.h"
#include "cmir/tensorset.h"
#include "cmir/train.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#define P 32
#define M 8

static char dir[] = "/tmp/cmir_pretrain_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

/* n tile pairs with a texture and spectrum per class (C > 0: labels
 * i % C + 1, but every unl-th tile unlabelled when unl > 0) or per random
 * draw (C = 0: unlabelled); the MS tile is the PAN's 4x4 block means
 * times the spectrum. */
static int make_pairs_unl(const char *path, int n, int C, uint64_t seed, int unl)
{
    static const char *names[4] = {"water", "forest", "farm", "town"};
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = ap.pan_w = P;
    ap.ms_h = ap.ms_w = M;
    ap.ms_bands = 4;
    ap.n_classes = C;
    ap.class_names = C ? names : NULL;
    cmir_archive_writer *w = cmir_archive_create(path, ap);
    if (!w)
        return -1;
    cmir_rng *r = cmir_rng_new(seed);
    uint8_t pan[P * P], ms[M * M * 4];
    float f[P * P], spec[4];
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int c = C ? i % C : (int)cmir_rng_below(r, 4);
        double freq = 0.15 + 0.35 * c + 0.05 * cmir_rng_uniform(r), ph = 6.28 * cmir_rng_uniform(r);
        double ang = 3.14 * cmir_rng_uniform(r), base = 60 + 25 * c + 20 * cmir_rng_uniform(r);
        for (int b = 0; b < 4; b++)
            spec[b] = (float)(0.4 + 0.2 * c * (b == 3) + 0.6 * cmir_rng_uniform(r));
        for (int k = 0; k < P * P; k++) {
            double u = (k % P) * cos(ang) + (k / P) * sin(ang);
            f[k] = (float)(base + 30 * sin(freq * u + ph) + 8 * cmir_rng_normal(r));
            pan[k] = (uint8_t)fmin(255, fmax(0, f[k]));
        }
        for (int k = 0; k < M * M; k++) {
            double s = 0;
            for (int a = 0; a < 16; a++)
                s += f[((k / M) * 4 + a / 4) * P + (k % M) * 4 + a % 4];
            for (int b = 0; b < 4; b++)
                ms[k * 4 + b] = (uint8_t)fmin(255, fmax(0, s / 16 * spec[b] + 3 * cmir_rng_normal(r)));
        }
        cmir_tile_record t = {pan, ms, C && !(unl && i % unl == unl - 1) ? c + 1 : 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
        rc = cmir_archive_writer_add(w, &t);
    }
    cmir_rng_free(r);
    if (rc) {
        cmir_archive_writer_abort(w);
        return rc;
    }
    return cmir_archive_writer_commit(w);
}

static int make_pairs(const char *path, int n, int C, uint64_t seed) { return make_pairs_unl(path, n, C, seed, 0); }

static cmir_train_params small(void)
{
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.seed = 3;
    p.batch = 16;
    p.epochs1 = 3;
    p.epochs2 = 5;
    p.unified.d_v = 16;
    p.split_by_scene = 0;
    return p;
}

static void test_valid_split(void)
{
    cmir_train_params p = small();
    p.test_frac = 0.25;
    p.valid_frac = 0.25;
    cmir_train_report r;
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("v.mat"), p, NULL, NULL, &r));
    printf("  train %lld, valid %lld, test %lld; epochs chosen %d (PAN), %d (MS)\n", (long long)r.n_train,
           (long long)r.n_valid, (long long)r.n_test, r.valid_epoch[0], r.valid_epoch[1]);
    ASSERT_EQ_INT((int)(r.n_train + r.n_valid + r.n_test), 96);
    ASSERT_EQ_INT((int)r.n_test, 24);
    ASSERT_EQ_INT((int)r.n_valid, 18); /* a quarter of the 72 others */
    for (int k = 0; k < 2; k++)
        ASSERT_TRUE(r.valid_epoch[k] >= 1 && r.valid_epoch[k] <= p.epochs1);
    cmir_tensorset *ts = cmir_tensorset_load(in_dir("v.mat"));
    REQUIRE(ts != NULL);
    const cmir_tensor *te = cmir_tensorset_get(ts, "TEST_TILES"), *va = cmir_tensorset_get(ts, "VALID_TILES");
    REQUIRE(te && va);
    ASSERT_EQ_INT((int)cmir_tensor_numel(va), 18);
    int shared = 0;
    for (int64_t i = 0; i < cmir_tensor_numel(va); i++)
        for (int64_t j = 0; j < cmir_tensor_numel(te); j++)
            shared += va->data[i] == te->data[j];
    ASSERT_EQ_INT(shared, 0);
    const char *s = cmir_tensorset_get_string(ts, "TRAIN_SETTINGS");
    ASSERT_TRUE(s && strstr(s, "valid_epoch_pan=") && strstr(s, "valid_epoch_ms=") && strstr(s, "n_valid=18"));
    /* cmir_eval -valid scores the 18 validation tiles, the default the 24 test
     * tiles; the floors of both are fitted on the 54 training tiles only */
    cmir_eval_params ep = cmir_eval_default_params();
    ep.threads = 2;
    cmir_eval_report ev, et;
    ep.valid_tiles = 1;
    ASSERT_OK(cmir_eval(in_dir("v.mat"), in_dir("lab4.mat"), ep, NULL, NULL, &ev));
    ep.valid_tiles = 0;
    ASSERT_OK(cmir_eval(in_dir("v.mat"), in_dir("lab4.mat"), ep, NULL, NULL, &et));
    ASSERT_EQ_INT((int)ev.n_items, 18);
    ASSERT_EQ_INT((int)et.n_items, 24);
    ASSERT_EQ_INT((int)ev.floor_fit_tiles, 54);
    ASSERT_EQ_INT((int)et.floor_fit_tiles, 54);
    ASSERT_TRUE(ev.dir[0].r.map != et.dir[0].r.map);
    ep.all_tiles = 1, ep.valid_tiles = 1;
    REFUSES(cmir_eval(in_dir("v.mat"), in_dir("lab4.mat"), ep, NULL, NULL, &ev),
            "cmir_eval_params.valid_tiles: cannot be combined with all_tiles");
    ep.all_tiles = 0;
    /* the test split does not move when validation tiles are taken */
    p.valid_frac = 0;
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("nv.mat"), p, NULL, NULL, &r));
    cmir_tensorset *t2 = cmir_tensorset_load(in_dir("nv.mat"));
    REQUIRE(t2 != NULL);
    const cmir_tensor *te2 = cmir_tensorset_get(t2, "TEST_TILES");
    ASSERT_TRUE(te2 && !cmir_tensorset_get(t2, "VALID_TILES"));
    ASSERT_TRUE(te2 && cmir_tensor_numel(te2) == 24 && !memcmp(te2->data, te->data, 24 * sizeof(float)));
    cmir_tensorset_free(t2);
    cmir_tensorset_free(ts);
    /* a model without validation tiles: -valid is refused, naming the model */
    REFUSES(cmir_eval(in_dir("nv.mat"), in_dir("lab4.mat"), ep, NULL, NULL, &ev),
            "nv.mat records no validation tiles");
    /* test_frac + valid_frac must leave tiles to train on */
    p.valid_frac = 0.8;
    ASSERT_EQ_INT(cmir_train(in_dir("lab4.mat"), in_dir("x.mat"), p, NULL, NULL, NULL), CMIR_EINVAL);
}

static void test_init_other_classes(void)
{
    cmir_train_params p = small();
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("src.mat"), p, NULL, NULL, NULL));
    p.init_model = in_dir("src.mat");
    p.epochs1 = 0; /* the copied CNNs as they are */
    p.seed = 9;
    ASSERT_OK(cmir_train(in_dir("lab2.mat"), in_dir("dst.mat"), p, NULL, NULL, NULL));
    cmir_tensorset *a = cmir_tensorset_load(in_dir("src.mat")), *b = cmir_tensorset_load(in_dir("dst.mat"));
    REQUIRE(a && b);
    int same = 0;
    for (int i = 0; i < cmir_tensorset_count(a); i++) {
        const char *nm = cmir_tensorset_name(a, i);
        if (!strstr(nm, "conv") || (strncmp(nm, "pan_", 4) && strncmp(nm, "ms_", 3)))
            continue;
        const cmir_tensor *x = cmir_tensorset_get(a, nm), *y = cmir_tensorset_get(b, nm);
        ASSERT_TRUE(y && cmir_tensor_numel(x) == cmir_tensor_numel(y));
        if (y && cmir_tensor_numel(x) == cmir_tensor_numel(y))
            same += !memcmp(x->data, y->data, sizeof(float) * (size_t)cmir_tensor_numel(x));
    }
    printf("  %d conv arrays copied exactly\n", same);
    ASSERT_EQ_INT(same, 12); /* W and b of 3 conv layers, 2 modalities */
    const cmir_tensor *ha = cmir_tensorset_get(a, "pan_fc2_W"), *hb = cmir_tensorset_get(b, "pan_fc2_W");
    REQUIRE(ha && hb);
    ASSERT_EQ_INT((int)cmir_tensor_numel(ha), 128 * 4);
    ASSERT_EQ_INT((int)cmir_tensor_numel(hb), 128 * 2);
    cmir_tensorset_free(a);
    cmir_tensorset_free(b);
    /* a file that is not a model is refused */
    p.init_model = in_dir("lab2.mat"); /* not a model */
    ASSERT_TRUE(cmir_train(in_dir("lab2.mat"), in_dir("x.mat"), p, NULL, NULL, NULL) != 0);
}

static void test_pretrain_determinism(void)
{
    cmir_train_params p = small();
    p.pretrain = in_dir("unl.mat");
    p.epochs0 = 6;
    p.epochs1 = 1;
    cmir_train_report r1, r2;
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("p1.mat"), p, NULL, NULL, &r1));
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("p2.mat"), p, NULL, NULL, &r2));
    printf("  stage 0 InfoNCE %.4f (chance %.4f), %.1f pairs/s\n", (double)r1.stage0_loss, log(16.0),
           r1.stage0_pairs_per_s);
    ASSERT_TRUE(r1.stage0_loss < 0.8 * log(16.0)); /* pairs found among 16 well above chance */
    ASSERT_TRUE(r1.stage0_loss == r2.stage0_loss);
    cmir_tensorset *a = cmir_tensorset_load(in_dir("p1.mat")), *b = cmir_tensorset_load(in_dir("p2.mat"));
    REQUIRE(a && b);
    const char *ia = cmir_tensorset_get_string(a, "MODEL_ID"), *ib = cmir_tensorset_get_string(b, "MODEL_ID");
    ASSERT_TRUE(ia && ib && !strcmp(ia, ib));
    cmir_tensorset_free(a);
    cmir_tensorset_free(b);
    /* and it changes the model */
    p.pretrain = NULL;
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("p3.mat"), p, NULL, NULL, NULL));
    cmir_tensorset *c = cmir_tensorset_load(in_dir("p3.mat")), *d = cmir_tensorset_load(in_dir("p1.mat"));
    REQUIRE(c && d);
    ASSERT_TRUE(strcmp(cmir_tensorset_get_string(c, "MODEL_ID"), cmir_tensorset_get_string(d, "MODEL_ID")) != 0);
    cmir_tensorset_free(c);
    cmir_tensorset_free(d);
}

/* Weights of tensor name in two model files are byte-equal. */
static int same_tensor(const cmir_tensorset *a, const cmir_tensorset *b, const char *name)
{
    const cmir_tensor *x = cmir_tensorset_get(a, name), *y = cmir_tensorset_get(b, name);
    return x && y && cmir_tensor_numel(x) == cmir_tensor_numel(y) &&
           !memcmp(x->data, y->data, sizeof(float) * (size_t)cmir_tensor_numel(x));
}

/* A label budget keeps the other training tiles' pairs for stage 2
 * (every term but L3): recorded in the settings, the CNNs untouched, the
 * unified network different from a run without them, the same for a seed. */
static void test_unlabelled_pairs(void)
{
    cmir_train_params p = small();
    p.test_frac = 0.25;
    p.label_frac = 0.25;
    cmir_train_report r;
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("u1.mat"), p, NULL, NULL, &r));
    ASSERT_EQ_INT((int)r.n_train, 18); /* a quarter of the 72 non-test tiles */
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("u2.mat"), p, NULL, NULL, NULL));
    p.unlabelled_pairs = 0;
    ASSERT_OK(cmir_train(in_dir("lab4.mat"), in_dir("u0.mat"), p, NULL, NULL, NULL));
    cmir_tensorset *a = cmir_tensorset_load(in_dir("u1.mat")), *b = cmir_tensorset_load(in_dir("u2.mat")),
                   *c = cmir_tensorset_load(in_dir("u0.mat"));
    REQUIRE(a && b && c);
    const char *sa = cmir_tensorset_get_string(a, "TRAIN_SETTINGS"), *sc = cmir_tensorset_get_string(c, "TRAIN_SETTINGS");
    ASSERT_TRUE(sa && strstr(sa, "unlabelled_pairs=54"));
    ASSERT_TRUE(sc && !strstr(sc, "unlabelled_pairs="));
    ASSERT_TRUE(!strcmp(cmir_tensorset_get_string(a, "MODEL_ID"), cmir_tensorset_get_string(b, "MODEL_ID")));
    ASSERT_TRUE(strcmp(cmir_tensorset_get_string(a, "MODEL_ID"), cmir_tensorset_get_string(c, "MODEL_ID")) != 0);
    ASSERT_TRUE(same_tensor(a, c, "pan_conv1_W") && same_tensor(a, c, "ms_fc1_W"));
    ASSERT_TRUE(!same_tensor(a, c, "enc_a_W1") && !same_tensor(a, c, "dec_ab_W"));
    cmir_tensorset_free(a);
    cmir_tensorset_free(b);
    cmir_tensorset_free(c);
    /* an archive's own unlabelled tiles (every 4th of mix.mat's 96) join them */
    p = small();
    p.test_frac = 0.25;
    ASSERT_OK(cmir_train(in_dir("mix.mat"), in_dir("m1.mat"), p, NULL, NULL, &r));
    ASSERT_EQ_INT((int)r.n_train + (int)r.n_test, 72);
    p.label_frac = 0.5;
    ASSERT_OK(cmir_train(in_dir("mix.mat"), in_dir("m2.mat"), p, NULL, NULL, &r));
    a = cmir_tensorset_load(in_dir("m1.mat"));
    b = cmir_tensorset_load(in_dir("m2.mat"));
    REQUIRE(a && b);
    sa = cmir_tensorset_get_string(a, "TRAIN_SETTINGS");
    const char *sb = cmir_tensorset_get_string(b, "TRAIN_SETTINGS");
    ASSERT_TRUE(sa && strstr(sa, "unlabelled_pairs=24"));
    ASSERT_TRUE(sb && strstr(sb, "unlabelled_pairs=51")); /* 24 + the 27 of 54 left out */
    cmir_tensorset_free(a);
    cmir_tensorset_free(b);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir))
        return 1;
    if (make_pairs(in_dir("lab4.mat"), 96, 4, 11) || make_pairs(in_dir("lab2.mat"), 48, 2, 12) ||
        make_pairs(in_dir("unl.mat"), 96, 0, 13) || make_pairs_unl(in_dir("mix.mat"), 96, 4, 14, 4)) {
        fprintf(stderr, "cannot write the test archives: %s\n", cmir_last_error());
        return 1;
    }
    RUN(test_valid_split);
    RUN(test_init_other_classes);
    RUN(test_pretrain_determinism);
    RUN(test_unlabelled_pairs);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
