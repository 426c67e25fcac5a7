/* Tests of cmir_train(): on a small archive with four learnable classes,
 * cross-modal retrieval of held-out scenes is well above chance in both
 * directions; the same seed and thread count give the same model; the
 * paper's feature files are written; damaged or edited models are refused;
 * cmir_train_unified() reports the losses it trained on; bad parameters
 * are refused by name. */
#include <string.h>
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <math.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_train_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static cmir_train_params small(void)
{
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.seed = 5;
    p.batch = 32;
    p.epochs1 = 6;
    p.unified.d_v = 16;
    return p;
}

/* Mean average precision of queries of modality qk against the database
 * of modality dk, over the held-out tiles (brute force, ties by index). */
static double map_dir(cmir_model *m, cmir_archive *a, const int64_t *ids, int64_t n, int qk, int dk)
{
    const cmir_model_info *mi = cmir_model_get_info(m);
    int dv = mi->d_v;
    float *V[2];
    for (int k = 0; k < 2; k++) {
        int per = k ? mi->ms_h * mi->ms_w * mi->ms_bands : mi->pan_h * mi->pan_w * mi->pan_bands;
        float *raw = malloc(sizeof(float) * (size_t)per * n);
        for (int64_t i = 0; i < n; i++)
            cmir_archive_read_tile(a, k ? CMIR_MS : CMIR_PAN, ids[i], raw + (size_t)i * per);
        V[k] = malloc(sizeof(float) * (size_t)dv * n);
        ASSERT_OK(cmir_model_embed(m, NULL, k, raw, (int)n, NULL, V[k]));
        free(raw);
    }
    double total = 0;
    double *d = malloc(sizeof(double) * n);
    int64_t *ord = malloc(sizeof(int64_t) * n);
    for (int64_t q = 0; q < n; q++) {
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int c = 0; c < dv; c++) {
                double e = V[qk][q * dv + c] - V[dk][j * dv + c];
                s += e * e;
            }
            d[j] = s;
            ord[j] = j;
        }
        for (int64_t i = 1; i < n; i++) /* insertion sort by (d, index) */
            for (int64_t j = i; j > 0 && (d[ord[j - 1]] > d[ord[j]]); j--) {
                int64_t t = ord[j]; ord[j] = ord[j - 1]; ord[j - 1] = t;
            }
        int lq = cmir_archive_label(a, ids[q]), hits = 0, R = 0;
        double ap = 0;
        for (int64_t j = 0; j < n; j++)
            R += cmir_archive_label(a, ids[j]) == lq;
        for (int64_t j = 0; j < n; j++)
            if (cmir_archive_label(a, ids[ord[j]]) == lq) {
                hits++;
                ap += (double)hits / (double)(j + 1);
            }
        total += ap / R;
    }
    free(d); free(ord); free(V[0]); free(V[1]);
    return total / n;
}

static void same_as_embedding(void);

static void test_train_and_retrieve(void)
{
    const char *arch = in_dir("a.mat"), *model = in_dir("m.mat");
    ASSERT_OK(td_make_archive(arch, 240, 3));
    cmir_train_params p = small();
    p.features_dir = dir;
    p.unified_path = in_dir("unified.mat");
    cmir_train_report r;
    ASSERT_OK(cmir_train(arch, model, p, NULL, NULL, &r));
    printf("  trained on %lld, held out %lld; stage 1 accuracy PAN %.2f MS %.2f; %.1f s\n", (long long)r.n_train,
           (long long)r.n_test, r.stage1_acc[0], r.stage1_acc[1], r.seconds);
    ASSERT_EQ_INT(r.n_test, 60); /* one whole scene of four */
    cmir_model *m = cmir_model_load(model);
    cmir_archive *a = cmir_archive_open(arch);
    ASSERT_TRUE(m && a);
    if (!m || !a)
        return;
    int64_t nt, ntiles;
    const int64_t *test = cmir_model_test_tiles(m, &nt, &ntiles);
    ASSERT_EQ_INT(nt, 60);
    ASSERT_EQ_INT(ntiles, 240);
    /* the held-out tiles are one scene */
    for (int64_t i = 1; i < nt; i++)
        ASSERT_TRUE(strcmp(cmir_archive_scene(a, test[i]), cmir_archive_scene(a, test[0])) == 0);
    double pm = map_dir(m, a, test, nt, 0, 1), mp = map_dir(m, a, test, nt, 1, 0);
    printf("  held-out mAP: PAN->MS %.3f, MS->PAN %.3f (chance 0.25)\n", pm, mp);
    ASSERT_TRUE(pm > 0.6);
    ASSERT_TRUE(mp > 0.6);
    ASSERT_TRUE(strcmp(cmir_model_class_name(m, 2), "forest") == 0);
    /* cmir_eval's floors are fitted on the tiles the model did not hold out */
    cmir_eval_params ep = cmir_eval_default_params();
    ep.threads = 2;
    cmir_eval_report er, fr;
    ASSERT_OK(cmir_eval(model, arch, ep, NULL, NULL, &er));
    int64_t tr[240], ntr = 0;
    for (int64_t i = 0, t = 0; i < 240; i++) {
        if (t < nt && test[t] == i)
            t++;
        else
            tr[ntr++] = i;
    }
    ASSERT_EQ_INT(ntr, 180);
    ASSERT_OK(cmir_eval_floor(arch, tr, ntr, test, nt, 0, ep, &fr));
    ASSERT_EQ_INT(er.floor_fit_tiles, 180);
    ASSERT_TRUE(!er.floor_in_sample);
    for (int k = 0; k < 4; k++) {
        printf("  cmir_eval %-8s mAP %.3f floor %.3f\n", er.dir[k].name, er.dir[k].r.map, er.dir[k].floor.map);
        ASSERT_TRUE(er.dir[k].has_floor);
        ASSERT_NEAR(er.dir[k].floor.map, fr.dir[k].floor.map, 0);
        ASSERT_NEAR(er.dir[k].floor.pr[3], fr.dir[k].floor.pr[3], 0);
    }
    /* another archive, -all: the split is unknown, the floors are fitted in sample */
    const char *other = in_dir("other.mat");
    ASSERT_OK(td_make_archive(other, 100, 8));
    ep.all_tiles = 1;
    ASSERT_OK(cmir_eval(model, other, ep, NULL, NULL, &er));
    ASSERT_TRUE(er.floor_in_sample);
    ASSERT_EQ_INT(er.floor_fit_tiles, 100);
    ASSERT_TRUE(er.dir[0].has_floor);
    cmir_model_free(m);
    cmir_archive_close(a);
    /* the paper's files */
    cmir_tensorset *f = cmir_tensorset_load(in_dir("features_pan.mat"));
    int64_t fs[2] = {240, 128};
    ASSERT_TRUE(f != NULL);
    ASSERT_OK(cmir_tensorset_expect(f, "features", 2, fs));
    cmir_tensorset_free(f);
    f = cmir_tensorset_load(in_dir("unified.mat"));
    int64_t us[2] = {240, 16};
    ASSERT_TRUE(f != NULL);
    ASSERT_OK(cmir_tensorset_expect(f, "featuresx", 2, us));
    ASSERT_OK(cmir_tensorset_expect(f, "featuresy", 2, us));
    cmir_tensorset_free(f);
    same_as_embedding();
}

/* The model embeds tiles as training did: its features (the tile
 * descriptor in the last 7 x bands) are the paper's feature files' rows
 * and its codes unified.mat's, for every tile of both sides. */
static void same_as_embedding(void)
{
    cmir_model *m = cmir_model_load(in_dir("m.mat"));
    cmir_archive *a = cmir_archive_open(in_dir("a.mat"));
    cmir_tensorset *u = cmir_tensorset_load(in_dir("unified.mat"));
    ASSERT_TRUE(m && a && u);
    if (!m || !a || !u)
        goto out;
    const cmir_model_info *mi = cmir_model_get_info(m);
    ASSERT_EQ_INT(mi->descriptor, 1);
    ASSERT_NEAR(mi->cnn_weight, 0.1, 1e-7);
    for (int k = 0; k < 2; k++) {
        cmir_tensorset *f = cmir_tensorset_load(in_dir(k ? "features_ms.mat" : "features_pan.mat"));
        int per = k ? mi->ms_h * mi->ms_w * mi->ms_bands : mi->pan_h * mi->pan_w * mi->pan_bands;
        float *raw = malloc(sizeof(float) * (size_t)per * 240), *Z = malloc(sizeof(float) * 240 * 128),
              *V = malloc(sizeof(float) * 240 * 16);
        for (int64_t i = 0; i < 240; i++)
            cmir_archive_read_tile(a, k ? CMIR_MS : CMIR_PAN, i, raw + (size_t)i * per);
        ASSERT_OK(cmir_model_embed(m, NULL, k, raw, 240, Z, V));
        const float *fz = f ? cmir_tensorset_get(f, "features")->data : NULL;
        const float *fv = cmir_tensorset_get(u, k ? "featuresy" : "featuresx")->data;
        double ez = 0, ev = 0, desc = 0;
        for (int i = 0; fz && i < 240 * 128; i++) {
            ez = fmax(ez, fabs(Z[i] - fz[i]));
            if (i % 128 >= 128 - 7 * (k ? mi->ms_bands : mi->pan_bands))
                desc = fmax(desc, fabs(Z[i]));
        }
        for (int i = 0; i < 240 * 16; i++)
            ev = fmax(ev, fabs(V[i] - fv[i]));
        printf("  side %d: |embedded - trained| features %.2g, codes %.2g\n", k, ez, ev);
        ASSERT_TRUE(fz != NULL);
        ASSERT_TRUE(ez < 1e-4);
        ASSERT_TRUE(ev < 1e-4);
        ASSERT_TRUE(desc > 0.01); /* the descriptor is there */
        free(raw); free(Z); free(V);
        cmir_tensorset_free(f);
    }
out:
    cmir_tensorset_free(u);
    cmir_model_free(m);
    cmir_archive_close(a);
}

/* Features standardised per dimension, as cmir_train_unified() does. */
static float *standardised(const cmir_tensor *t)
{
    int64_t n = t->shape[0], d = t->shape[1];
    float *z = malloc(sizeof(float) * (size_t)(n * d));
    for (int64_t j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            s += t->data[i * d + j];
            s2 += (double)t->data[i * d + j] * t->data[i * d + j];
        }
        double mu = s / (double)n, var = s2 / (double)n - mu * mu, sd = var > 1e-8 ? sqrt(var) : 1.0;
        for (int64_t i = 0; i < n; i++)
            z[i * d + j] = (float)((t->data[i * d + j] - mu) / sd);
    }
    return z;
}

/* cmir_train_unified's report is its losses: every term (norm and reg
 * included) and their total, in rep.stage2. One epoch of one batch at a
 * learning rate too small to move the weights: the report must equal the
 * losses recomputed on the weights it wrote. */
static void test_unified_report(void)
{
    const char *fa = in_dir("features_pan.mat"), *fb = in_dir("features_ms.mat"), *out = in_dir("u1.mat");
    cmir_train_params p = small();
    p.batch = 256; /* > the 240 rows: one step */
    p.epochs2 = 1;
    p.lr2 = 1e-9f;
    cmir_train_report r;
    memset(&r, 0, sizeof r);
    ASSERT_OK(cmir_train_unified(fa, fb, NULL, out, p, NULL, NULL, &r));
    const cmir_unified_losses *L = &r.stage2;
    printf("  reported: total %.5f = pair %.5f + class %.5f + norm %.5f + cross %.5f + reg %.5f\n", L->total,
           L->pair, L->cls, L->norm, L->cross, L->reg);
    ASSERT_EQ_INT(r.n_train, 240);
    ASSERT_TRUE(L->norm > 0 && L->reg > 0 && L->pair > 0 && L->cls > 0 && L->cross > 0);
    ASSERT_NEAR(L->total, L->pair + L->cls + L->norm + L->cross + L->reg, 1e-4 * L->total);
    ASSERT_TRUE(r.stage2_samples_per_s > 0);
    /* the same losses on the written weights */
    cmir_tensorset *ta = cmir_tensorset_load(fa), *tb = cmir_tensorset_load(fb), *tu = cmir_tensorset_load(out);
    ASSERT_TRUE(ta && tb && tu);
    if (!ta || !tb || !tu)
        goto done;
    const cmir_tensor *A = cmir_tensorset_get(ta, "features"), *B = cmir_tensorset_get(tb, "features");
    const cmir_tensor *lab = cmir_tensorset_get(ta, "labels");
    int32_t cls[240];
    for (int i = 0; i < 240; i++)
        cls[i] = (int32_t)lab->data[i] - 1;
    cmir_unified_params up = p.unified;
    up.d_in = 128;
    up.n_classes = 4;
    cmir_unified *u = cmir_unified_new(up, 99);
    ASSERT_TRUE(u != NULL);
    ASSERT_OK(cmir_unified_load(u, tu));
    float *za = standardised(A), *zb = standardised(B);
    cmir_unified_losses R;
    ASSERT_OK(cmir_unified_step(u, NULL, za, zb, cls, NULL, 240, &R));
    printf("  on the written weights: total %.5f = pair %.5f + class %.5f + norm %.5f + cross %.5f + reg %.5f\n",
           R.total, R.pair, R.cls, R.norm, R.cross, R.reg);
    ASSERT_NEAR(L->pair, R.pair, 1e-3 * R.pair);
    ASSERT_NEAR(L->cls, R.cls, 1e-3 * R.cls);
    ASSERT_NEAR(L->norm, R.norm, 1e-3 * R.norm);
    ASSERT_NEAR(L->cross, R.cross, 1e-3 * R.cross);
    ASSERT_NEAR(L->reg, R.reg, 1e-3 * R.reg);
    ASSERT_NEAR(L->total, R.total, 1e-3 * R.total);
    free(za);
    free(zb);
    cmir_unified_free(u);
    /* weights off: their terms are 0 */
    p.unified.w_norm = p.unified.w_reg = 0;
    ASSERT_OK(cmir_train_unified(fa, fb, NULL, out, p, NULL, NULL, &r));
    ASSERT_TRUE(r.stage2.norm == 0 && r.stage2.reg == 0 && r.stage2.pair > 0);
done:
    cmir_tensorset_free(ta);
    cmir_tensorset_free(tb);
    cmir_tensorset_free(tu);
}

/* Every refused parameter is named in the message. */
static void test_check_params(void)
{
    ASSERT_OK(cmir_train_check_params(cmir_train_default_params()));
    ASSERT_OK(cmir_train_unified_check_params(cmir_train_default_params()));
    ASSERT_OK(cmir_unified_check_params(cmir_unified_default_params()));
    struct {
        const char *field;
        cmir_train_params p;
        int unified; /* also refused by cmir_train_unified_check_params */
    } bad[20];
    int n = 0;
    for (int i = 0; i < 20; i++)
        bad[i].p = cmir_train_default_params();
#define BAD(f, set, uni) (bad[n].field = f, bad[n].p.set, bad[n].unified = uni, n++)
    BAD("batch", batch = 1, 1);
    BAD("batch", batch = 5000, 1);
    BAD("epochs2", epochs2 = -1, 1);
    BAD("lr2", lr2 = 0, 1);
    BAD("threads", threads = -2, 1);
    BAD("unified.d_v", unified.d_v = 0, 1);
    BAD("unified.hidden", unified.hidden = -1, 1);
    BAD("epochs1", epochs1 = -1, 0);
    BAD("test_frac", test_frac = 1.0, 0);
    BAD("lr1", lr1 = NAN, 0);
    BAD("dropout", dropout = 1.0f, 0);
    BAD("speech_steps", speech_steps = -1, 0);
    BAD("feature_noise", feature_noise = -0.5f, 0);
    BAD("audio_feature", audio_feature = 99, 0);
    BAD("descriptor", descriptor = 2, 0);
    BAD("unlabelled_pairs", unlabelled_pairs = -1, 0);
    BAD("cnn_weight", cnn_weight = 0, 0);
#undef BAD
    for (int i = 0; i < n; i++) {
        ASSERT_EQ_INT(cmir_train_check_params(bad[i].p), CMIR_EINVAL);
        const char *e = cmir_last_error();
        printf("  %s\n", e);
        ASSERT_TRUE(strstr(e, bad[i].field) != NULL && strstr(e, "cmir_train") != NULL);
        int rc = cmir_train_unified_check_params(bad[i].p);
        if (bad[i].unified) {
            ASSERT_EQ_INT(rc, CMIR_EINVAL);
            ASSERT_TRUE(strstr(cmir_last_error(), bad[i].field) != NULL);
            ASSERT_TRUE(strstr(cmir_last_error(), "cmir_train_unified") != NULL);
        } else {
            ASSERT_EQ_INT(rc, 0);
        }
    }
    /* the trainers refuse them with the same message, before reading anything */
    ASSERT_EQ_INT(cmir_train(in_dir("a.mat"), in_dir("x.mat"), bad[0].p, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "batch") != NULL);
    ASSERT_EQ_INT(cmir_train_unified(in_dir("features_pan.mat"), in_dir("features_ms.mat"), NULL, in_dir("x.mat"),
                                     bad[5].p, NULL, NULL, NULL),
                  CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "unified.d_v") != NULL);
    ASSERT_TRUE(access(in_dir("x.mat"), F_OK) != 0);
    /* cmir_unified_params */
    const char *uf[4] = {"d_in", "d_v", "hidden", "n_classes"};
    for (int i = 0; i < 4; i++) {
        cmir_unified_params u = cmir_unified_default_params();
        if (i == 0) u.d_in = 0;
        if (i == 1) u.d_v = 4097;
        if (i == 2) u.hidden = -3;
        if (i == 3) u.n_classes = 0;
        ASSERT_EQ_INT(cmir_unified_check_params(u), CMIR_EINVAL);
        ASSERT_TRUE(strstr(cmir_last_error(), uf[i]) != NULL);
        ASSERT_TRUE(cmir_unified_new(u, 1) == NULL);
        ASSERT_TRUE(strstr(cmir_last_error(), uf[i]) != NULL);
    }
}

static void test_determinism(void)
{
    const char *arch = in_dir("a.mat");
    cmir_train_params p = small();
    p.epochs1 = 2;
    p.epochs2 = 20;
    ASSERT_OK(cmir_train(arch, in_dir("d1.mat"), p, NULL, NULL, NULL));
    ASSERT_OK(cmir_train(arch, in_dir("d2.mat"), p, NULL, NULL, NULL));
    p.seed = 6;
    ASSERT_OK(cmir_train(arch, in_dir("d3.mat"), p, NULL, NULL, NULL));
    cmir_model *a = cmir_model_load(in_dir("d1.mat")), *b = cmir_model_load(in_dir("d2.mat"));
    cmir_model *c = cmir_model_load(in_dir("d3.mat"));
    ASSERT_TRUE(a && b && c);
    if (a && b && c) {
        printf("  model ids: %s, %s (same seed), %s (seed 6)\n", cmir_model_get_info(a)->id,
               cmir_model_get_info(b)->id, cmir_model_get_info(c)->id);
        ASSERT_TRUE(strcmp(cmir_model_get_info(a)->id, cmir_model_get_info(b)->id) == 0);
        ASSERT_TRUE(strcmp(cmir_model_get_info(a)->id, cmir_model_get_info(c)->id) != 0);
    }
    cmir_model_free(a);
    cmir_model_free(b);
    cmir_model_free(c);
}

static void test_bad_models(void)
{
    /* truncated */
    FILE *f = fopen(in_dir("d1.mat"), "rb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    ASSERT_EQ_INT(fread(buf, 1, (size_t)n, f), n);
    fclose(f);
    f = fopen(in_dir("trunc.mat"), "wb");
    fwrite(buf, 1, (size_t)n / 2, f);
    fclose(f);
    free(buf);
    ASSERT_TRUE(cmir_model_load(in_dir("trunc.mat")) == NULL);
    printf("  truncated model: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "trunc.mat") != NULL);
    /* an edited weight breaks the identity */
    cmir_tensorset *ts = cmir_tensorset_load(in_dir("d1.mat"));
    const cmir_tensor *w = cmir_tensorset_get(ts, "ms_fc2_W");
    ASSERT_TRUE(w != NULL);
    if (w) {
        cmir_tensor t = *w;
        t.data[0] += 0.5f;
        ASSERT_OK(cmir_tensorset_put(ts, "ms_fc2_W", &t));
        ASSERT_OK(cmir_tensorset_save(ts, in_dir("edited.mat")));
    }
    cmir_tensorset_free(ts);
    ASSERT_TRUE(cmir_model_load(in_dir("edited.mat")) == NULL);
    printf("  edited model: %s\n", cmir_last_error());
    ASSERT_TRUE(strstr(cmir_last_error(), "MODEL_ID") != NULL);
    /* scenarios: a PAN/MS model says so; an unknown scenario, and an
     * image-speech one whose second branch is not the clip feature, are
     * refused */
    cmir_model *pm = cmir_model_load(in_dir("d1.mat"));
    ASSERT_TRUE(pm != NULL);
    if (pm) {
        ASSERT_EQ_INT(cmir_model_get_info(pm)->scenario, CMIR_SCENARIO_PAN_MS);
        ASSERT_TRUE(!strcmp(cmir_model_modality_name(pm, 1), "MS"));
        cmir_model_free(pm);
    }
    const char *sc[3] = {"pan-and-speech", "image-speech", "image-speech"};
    const char *want[3] = {"SCENARIO", "AUDIO_FEATURE", "1 x 1 x 128"};
    for (int k = 0; k < 3; k++) {
        ts = cmir_tensorset_load(in_dir("d1.mat"));
        ASSERT_OK(cmir_tensorset_put_string(ts, "SCENARIO", sc[k]));
        if (k == 2)
            ASSERT_OK(cmir_tensorset_put_string(ts, "AUDIO_FEATURE", "segmental"));
        ASSERT_OK(cmir_tensorset_save(ts, in_dir("scenario.mat")));
        cmir_tensorset_free(ts);
        ASSERT_TRUE(cmir_model_load(in_dir("scenario.mat")) == NULL);
        printf("  SCENARIO %s: %s\n", sc[k], cmir_last_error());
        ASSERT_TRUE(strstr(cmir_last_error(), want[k]) != NULL);
    }
    /* an image-speech model needs a multi-label archive and a corpus */
    cmir_train_params sp = small();
    sp.speech_manifest = in_dir("no_manifest.csv");
    ASSERT_EQ_INT(cmir_train(in_dir("a.mat"), in_dir("x.mat"), sp, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "multi-label") != NULL);
    /* not a model at all: a tile archive */
    ASSERT_TRUE(cmir_model_load(in_dir("a.mat")) == NULL);
    /* an archive without enough labels is refused */
    cmir_archive_params ap = cmir_archive_default_params();
    ap.pan_h = ap.pan_w = 32;
    ap.ms_h = ap.ms_w = 8;
    cmir_archive_writer *wr = cmir_archive_create(in_dir("nolabel.mat"), ap);
    uint8_t pan[32 * 32] = {0}, ms[8 * 8 * 4] = {0};
    cmir_tile_record t = {pan, ms, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; i < 8; i++)
        cmir_archive_writer_add(wr, &t);
    ASSERT_OK(cmir_archive_writer_commit(wr));
    ASSERT_EQ_INT(cmir_train(in_dir("nolabel.mat"), in_dir("x.mat"), small(), NULL, NULL, NULL), CMIR_EINVAL);
    printf("  unlabelled archive: %s\n", cmir_last_error());
    ASSERT_TRUE(access(in_dir("x.mat"), F_OK) != 0);
}

static int stop_in_ms(double frac, const char *msg, void *user)
{
    (void)frac;
    (void)user;
    return msg && strstr(msg, (const char *)user) != NULL;
}

/* Interrupted training resumed from its checkpoint gives the same model. */
static void test_resume(void)
{
    const char *arch = in_dir("a.mat");
    cmir_train_params p = small();
    p.epochs1 = 3;
    p.epochs2 = 20;
    ASSERT_OK(cmir_train(arch, in_dir("straight.mat"), p, NULL, NULL, NULL));
    const char *stops[2] = {"stage 1 MS epoch 1/", "stage 2 epoch 10/"};
    for (int s = 0; s < 2; s++) {
        cmir_train_params q = p;
        q.checkpoint = in_dir("ckpt.mat");
        ASSERT_EQ_INT(cmir_train(arch, in_dir("r.mat"), q, stop_in_ms, (void *)stops[s], NULL), CMIR_ECANCEL);
        ASSERT_TRUE(access(in_dir("ckpt.mat"), F_OK) == 0);
        q.resume = in_dir("ckpt.mat");
        ASSERT_OK(cmir_train(arch, in_dir("r.mat"), q, NULL, NULL, NULL));
        cmir_model *a = cmir_model_load(in_dir("straight.mat")), *b = cmir_model_load(in_dir("r.mat"));
        ASSERT_TRUE(a && b);
        if (a && b) {
            printf("  stopped at '%s', resumed: %s, straight: %s\n", stops[s], cmir_model_get_info(b)->id,
                   cmir_model_get_info(a)->id);
            ASSERT_TRUE(strcmp(cmir_model_get_info(a)->id, cmir_model_get_info(b)->id) == 0);
        }
        cmir_model_free(a);
        cmir_model_free(b);
    }
    /* other settings: refused */
    cmir_train_params q = p;
    q.seed = 77;
    q.resume = in_dir("ckpt.mat");
    ASSERT_EQ_INT(cmir_train(arch, in_dir("r2.mat"), q, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "other settings") != NULL);
}

/* Stage-2 ablation on a trained stage 1: the CNNs are reused as they are. */
static void test_stage1_from(void)
{
    cmir_train_params p = small();
    p.unified.w_cross = 0;
    p.stage1_from = in_dir("straight.mat");
    ASSERT_OK(cmir_train(in_dir("a.mat"), in_dir("abl.mat"), p, NULL, NULL, NULL));
    cmir_tensorset *a = cmir_tensorset_load(in_dir("straight.mat")), *b = cmir_tensorset_load(in_dir("abl.mat"));
    ASSERT_TRUE(a && b);
    const char *same[3] = {"pan_conv1_W", "ms_fc1_W", "MS_MEAN"};
    for (int i = 0; a && b && i < 3; i++) {
        const cmir_tensor *x = cmir_tensorset_get(a, same[i]), *y = cmir_tensorset_get(b, same[i]);
        ASSERT_TRUE(x && y && cmir_tensor_numel(x) == cmir_tensor_numel(y));
        if (x && y)
            ASSERT_EQ_INT(memcmp(x->data, y->data, sizeof(float) * (size_t)cmir_tensor_numel(x)), 0);
    }
    ASSERT_TRUE(a && b && strcmp(cmir_tensorset_get_string(a, "MODEL_ID"), cmir_tensorset_get_string(b, "MODEL_ID")));
    cmir_tensorset_free(a);
    cmir_tensorset_free(b);
    /* another split: the CNNs have trained on some of its test tiles, refused */
    cmir_train_params q = p;
    q.test_frac = p.test_frac > 0.3 ? 0.2 : 0.4;
    ASSERT_EQ_INT(cmir_train(in_dir("a.mat"), in_dir("abl2.mat"), q, NULL, NULL, NULL), CMIR_EINVAL);
    ASSERT_TRUE(strstr(cmir_last_error(), "held-out tiles") != NULL);
    FILE *f = fopen(in_dir("abl2.mat"), "rb");
    ASSERT_TRUE(f == NULL);
    if (f)
        fclose(f);
}

/* The paper's pairing for unpaired multi-label data. */
static void test_pairs_by_label(void)
{
    /* 3 images, 3 classes: image 0 has {0, 2}, image 1 {1}, image 2 {0, 1, 2};
     * utterances: classes 1, 1, 3, 3, 3 (1-based), none of class 2. */
    const uint8_t multi[9] = {1, 0, 1, 0, 1, 0, 1, 1, 1};
    const int32_t b[5] = {1, 1, 3, 3, 3};
    int64_t *pa, *pb, n;
    int32_t *pc;
    ASSERT_OK(cmir_pairs_by_label(multi, 3, 3, b, 5, 7, &pa, &pb, &pc, &n));
    ASSERT_EQ_INT(n, 4); /* class 2 has no utterance: images 1 and 2 lose it */
    int count[5] = {0};
    for (int64_t i = 0; i < n; i++) {
        ASSERT_TRUE(multi[pa[i] * 3 + pc[i]]);    /* the image has the pair's label */
        ASSERT_EQ_INT(b[pb[i]], pc[i] + 1);       /* the utterance says it */
    }
    cmir_free(pa); cmir_free(pb); cmir_free(pc);
    /* uniform choice among the utterances of a class (seeded) */
    uint8_t one[1] = {1};
    const int32_t all3[5] = {1, 1, 1, 1, 1};
    for (uint64_t s = 0; s < 2000; s++) {
        ASSERT_OK(cmir_pairs_by_label(one, 1, 1, all3, 5, s, &pa, &pb, &pc, &n));
        count[pb[0]]++;
        cmir_free(pa); cmir_free(pb); cmir_free(pc);
    }
    printf("  draws per utterance over 2000 seeds: %d %d %d %d %d\n", count[0], count[1], count[2], count[3], count[4]);
    for (int j = 0; j < 5; j++)
        ASSERT_TRUE(count[j] > 320 && count[j] < 480);
    const int32_t bad[1] = {4};
    ASSERT_EQ_INT(cmir_pairs_by_label(one, 1, 1, bad, 1, 1, &pa, &pb, &pc, &n), CMIR_EINVAL);
}

static void test_eval_check_params(void)
{
    cmir_eval_params p = cmir_eval_default_params();
    ASSERT_OK(cmir_eval_check_params(p));
    p.n_cutoffs = CMIR_EVAL_MAX_CUTOFFS + 1;
    REFUSES(cmir_eval_check_params(p), "cmir_eval_params.n_cutoffs");
    p = cmir_eval_default_params();
    p.threads = -1;
    REFUSES(cmir_eval_check_params(p), "cmir_eval_params.threads: must be >= 0, got -1");
    p = cmir_eval_default_params();
    p.paper_queries = -5;
    REFUSES(cmir_eval_check_params(p), "cmir_eval_params.paper_queries");
    p = cmir_eval_default_params();
    p.cutoffs[2] = 0;
    REFUSES(cmir_eval_check_params(p), "cmir_eval_params.cutoffs[2]");
    /* cmir_eval checks before opening anything. */
    REFUSES(cmir_eval("/nonexistent.cmir", "/nonexistent.mat", p, NULL, NULL, NULL), "cmir_eval_params.cutoffs[2]");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir))
        return 1;
    RUN(test_train_and_retrieve);
    RUN(test_unified_report);
    RUN(test_check_params);
    RUN(test_determinism);
    RUN(test_bad_models);
    RUN(test_pairs_by_label);
    RUN(test_resume);
    RUN(test_stage1_from);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    RUN(test_eval_check_params);
    TEST_MAIN_END();
}
