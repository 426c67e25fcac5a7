/* Tests of CMIR-NET's networks: the stage-1 CNN (pool schedule for the
 * paper's sizes, finite-difference check of the whole network's backward
 * pass, save/load) and the stage-2 unified network (finite-difference
 * check of every loss term on every parameter array, save/load), and the
 * tile descriptor against naive loops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "cmir/model.h"
#include "model/model_internal.h"
#include "test_util.h"

static cmir_exec *ex;

/* Central differences on whole networks: inputs and weights O(1).
 * Max-pool and leaky-ReLU kinks can be crossed by a step somewhere in a
 * network, so the tolerance on a probe is looser than the per-layer checks
 * of test_nn.c (2e-2); a wiring error gives errors of order 1. h = 3e-3
 * balances kink crossings (grow with h) against rounding (grows as 1/h). */
#define FD_H 3e-3f

static void test_pools(void)
{
    cmir_cnn_params p = cmir_cnn_default_params();
    int k[4];
    p.h = p.w = 256;
    p.bands = 1;
    cmir_cnn *c = cmir_cnn_new(p, 1);
    cmir_cnn_pools(c, k);
    ASSERT_TRUE(k[0] == 4 && k[1] == 4 && k[2] == 4 && k[3] == 1);
    printf("  PAN 256x256x1: pools %d,%d,%d,%d, %.3f GFLOP forward\n", k[0], k[1], k[2], k[3],
           cmir_cnn_flops(c) * 1e-9);
    /* PAN forward cost, as the peers count it: 0.227 GFLOP. */
    ASSERT_NEAR(cmir_cnn_flops(c) * 1e-9, 0.2267, 0.001);
    cmir_cnn_free(c);
    p.h = p.w = 64;
    p.bands = 4;
    c = cmir_cnn_new(p, 1);
    cmir_cnn_pools(c, k);
    ASSERT_TRUE(k[0] == 2 && k[1] == 2 && k[2] == 2 && k[3] == 2);
    cmir_cnn_free(c);
    p.h = p.w = 128; /* Landsat-style ratio-2 MS tile */
    c = cmir_cnn_new(p, 1);
    cmir_cnn_pools(c, k);
    ASSERT_TRUE(k[0] == 2 && k[3] == 4);
    cmir_cnn_free(c);
    p.h = p.w = 4; /* too small */
    ASSERT_TRUE(cmir_cnn_new(p, 1) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "too small") != NULL);
    cmir_cnn_free(NULL);
}

typedef struct {
    cmir_cnn *c;
    float *x;
    int n;
    int32_t *lab;
} cnn_ctx;

/* Loss = softmax CE + 1e-4 * ortho(Z) (kept small: float32 rounding of a large loss swamps the differences); returns it and (optionally) runs backward. */
static double cnn_loss(cnn_ctx *d, int backward)
{
    ASSERT_OK(cmir_cnn_forward(d->c, ex, d->x, d->n, 1, NULL));
    cmir_cnn_params p = cmir_cnn_get_params(d->c);
    float *lg = cmir_cnn_logits(d->c), *Z = cmir_cnn_features(d->c);
    float *dl = calloc((size_t)d->n * p.n_classes, sizeof(float));
    float *dz = calloc((size_t)d->n * CMIR_FEAT_DIM, sizeof(float));
    cmir_tensor tl = cmir_tensor_2d(lg, d->n, p.n_classes), tdl = cmir_tensor_2d(dl, d->n, p.n_classes);
    cmir_tensor tz = cmir_tensor_2d(Z, d->n, CMIR_FEAT_DIM), tdz = cmir_tensor_2d(dz, d->n, CMIR_FEAT_DIM);
    float l1, l2;
    cmir_softmax_xent(&tl, d->lab, 1.0f, &l1, &tdl);
    cmir_ortho_penalty(ex, &tz, 1, 1e-4f, &l2, &tdz);
    if (backward)
        ASSERT_OK(cmir_cnn_backward(d->c, ex, dl, dz));
    free(dl);
    free(dz);
    return (double)l1 + l2;
}

/* Finite-difference check of every parameter array of a network for
 * side x side x bands inputs (side 1: the MLP of the speech branch), then
 * save/load and a refused load for other sizes. */
static void cnn_grad_case(int side, int bands, int np_expect, const char *first_param)
{
    cmir_cnn_params p = cmir_cnn_default_params();
    p.h = p.w = side;
    p.bands = bands;
    p.n_classes = 3;
    p.dropout = 0.0f; /* deterministic forward for finite differences */
    cmir_cnn *c = cmir_cnn_new(p, 7);
    ASSERT_TRUE(c != NULL);
    cmir_rng *r = cmir_rng_new(3);
    const int per = side * side * bands;
    cnn_ctx d = {c, malloc(sizeof(float) * 6 * per), 6, malloc(sizeof(int32_t) * 6)};
    for (int i = 0; i < 6 * per; i++)
        d.x[i] = cmir_rng_normal(r);
    for (int i = 0; i < 6; i++)
        d.lab[i] = i % 3;
    cnn_loss(&d, 1);
    int np = cmir_cnn_n_params(c), bad = 0, total = 0;
    ASSERT_EQ_INT(np, np_expect);
    for (int i = 0; i < np; i++) {
        const char *name;
        float *w, *g;
        size_t n;
        ASSERT_OK(cmir_cnn_param(c, i, &name, &w, &g, &n));
        float *ga = malloc(sizeof(float) * n);
        memcpy(ga, g, sizeof(float) * n);
        double worst = 0;
        int probes = n < 6 ? (int)n : 6;
        for (int k = 0; k < probes; k++) {
            size_t j = (size_t)cmir_rng_below(r, n);
            double err = 1e9;
            /* A probe that disagrees is retried with a third of the step:
             * a kink crossing rarely survives the change, a wrong gradient
             * always does. */
            for (float h = FD_H; h > FD_H / 5 && err > 5e-2; h /= 3) {
                float keep = w[j];
                w[j] = keep + h;
                double lp = cnn_loss(&d, 0);
                w[j] = keep - h;
                double lm = cnn_loss(&d, 0);
                w[j] = keep;
                double num = (lp - lm) / (2 * h);
                err = fabs(num - ga[j]) / fmax(2e-3, fabs(num) + fabs(ga[j]));
            }
            worst = fmax(worst, err);
            bad += err > 5e-2;
            total++;
        }
        printf("  grad %-12s max rel err %.2e\n", name, worst);
        free(ga);
    }
    /* At most one probe in 20 may still straddle a kink. */
    printf("  %d of %d probes above 5e-2\n", bad, total);
    ASSERT_LE(bad, total / 20);
    /* Save and load into a fresh network: identical outputs. */
    cmir_tensorset *ts = cmir_tensorset_new();
    ASSERT_OK(cmir_cnn_save(c, ts, "ms_"));
    cmir_cnn *c2 = cmir_cnn_new(p, 99);
    ASSERT_OK(cmir_cnn_load(c2, ts, "ms_"));
    ASSERT_OK(cmir_cnn_forward(c, ex, d.x, 6, 0, NULL));
    ASSERT_OK(cmir_cnn_forward(c2, ex, d.x, 6, 0, NULL));
    ASSERT_EQ_INT(memcmp(cmir_cnn_features(c), cmir_cnn_features(c2), sizeof(float) * 6 * 128), 0);
    /* A model for other sizes is refused with the name and both shapes. */
    cmir_cnn_params q = p;
    q.bands = bands + 1;
    cmir_cnn *c3 = cmir_cnn_new(q, 1);
    ASSERT_EQ_INT(cmir_cnn_load(c3, ts, "ms_"), CMIR_EFORMAT);
    ASSERT_TRUE(strstr(cmir_last_error(), first_param) != NULL);
    ASSERT_EQ_INT(cmir_cnn_load(c3, ts, "pan_"), CMIR_ENOTFOUND);
    cmir_cnn_free(c3);
    cmir_cnn_free(c2);
    cmir_tensorset_free(ts);
    cmir_cnn_free(c);
    cmir_rng_free(r);
    free(d.x);
    free(d.lab);
}

/* ---- unified ---- */
typedef struct {
    cmir_unified *u;
    float *Za, *Zb, *tg;
    int32_t *lab;
    int n;
} uni_ctx;

static double uni_loss(uni_ctx *d)
{
    cmir_unified_losses L;
    ASSERT_OK(cmir_unified_step(d->u, ex, d->Za, d->Zb, d->lab, d->tg, d->n, &L));
    return L.total;
}

static void check_unified_labels(const char *term, cmir_unified_params p, int labelled)
{
    cmir_rng *r = cmir_rng_new(11);
    const int n = 5;
    uni_ctx d = {cmir_unified_new(p, 5), malloc(sizeof(float) * n * p.d_in), malloc(sizeof(float) * n * p.d_in),
                 malloc(sizeof(float) * n * p.n_classes), malloc(sizeof(int32_t) * n), n};
    for (int i = 0; i < n * p.d_in; i++) {
        d.Za[i] = cmir_rng_normal(r);
        d.Zb[i] = cmir_rng_normal(r);
    }
    for (int i = 0; i < n; i++)
        d.lab[i] = i % p.n_classes;
    for (int i = 0; i < n * p.n_classes; i++)
        d.tg[i] = cmir_rng_uniform(r) < 0.4f;
    if (!labelled) { /* unlabelled pairs: L3 left out */
        free(d.lab); free(d.tg);
        d.lab = NULL;
        d.tg = NULL;
    }
    uni_loss(&d);
    int np = cmir_unified_n_params(d.u), bad = 0, total = 0;
    double worst = 0;
    for (int i = 0; i < np; i++) {
        const char *name;
        float *w, *g;
        size_t m;
        cmir_unified_param(d.u, i, &name, &w, &g, &m);
        float *ga = malloc(sizeof(float) * m);
        memcpy(ga, g, sizeof(float) * m);
        for (int k = 0; k < 4; k++) {
            size_t j = (size_t)cmir_rng_below(r, m);
            float keep = w[j];
            w[j] = keep + FD_H;
            double lp = uni_loss(&d);
            w[j] = keep - FD_H;
            double lm = uni_loss(&d);
            w[j] = keep;
            double num = (lp - lm) / (2 * FD_H);
            double err = fabs(num - ga[j]) / fmax(1e-3, fabs(num) + fabs(ga[j]));
            worst = fmax(worst, err);
            bad += err > 2e-2;
            total++;
        }
        free(ga);
    }
    printf("  unified %-26s max rel err %.2e over %d probes (%d above 2e-2)\n", term, worst, total, bad);
    ASSERT_LE(bad, total / 20);
    if (!labelled) { /* the classifier has no gradient, L3 no loss */
        cmir_unified_losses L;
        ASSERT_OK(cmir_unified_step(d.u, ex, d.Za, d.Zb, NULL, NULL, n, &L));
        ASSERT_NEAR(L.cls, 0, 0);
        ASSERT_NEAR(L.total, L.pair + L.norm + L.cross + L.reg, 1e-6 * fabs(L.total));
        for (int i = 0; i < np; i++) {
            const char *name;
            float *w, *g;
            size_t m;
            cmir_unified_param(d.u, i, &name, &w, &g, &m);
            for (size_t j = 0; !strncmp(name, "cls", 3) && j < m; j++)
                ASSERT_NEAR(g[j], 0, 0);
        }
    }
    cmir_unified_free(d.u);
    free(d.Za); free(d.Zb); free(d.tg); free(d.lab);
    cmir_rng_free(r);
}

static void check_unified(const char *term, cmir_unified_params p) { check_unified_labels(term, p, 1); }

static void test_unified_grad(void)
{
    cmir_unified_params base = cmir_unified_default_params();
    base.d_in = 12;
    base.d_v = 6;
    base.hidden = 10;
    base.n_classes = 4;
    /* The sum is checked at weights where every term moves the float loss by
     * more than its rounding at step FD_H: at the defaults (L3 at 5, L5 at
     * 1e-3) the decoders' gradients are ~1e-4 against a loss of ~5, below
     * what a float central difference resolves. Each term alone is at 1. */
    base.w_class = 1;
    base.w_cross = 0.01f;
    cmir_unified_params p;
    p = base; p.w_class = p.w_norm = p.w_cross = p.w_reg = 0; check_unified("L2 (pairing)", p);
    p = base; p.w_pair = p.w_norm = p.w_cross = p.w_reg = 0; check_unified("L3 (softmax CE)", p);
    p = base; p.w_pair = p.w_norm = p.w_cross = p.w_reg = 0; p.multilabel = 1; check_unified("L3 (sigmoid CE)", p);
    p = base; p.w_pair = p.w_class = p.w_cross = p.w_reg = 0; p.w_norm = 1; check_unified("L4 (norm)", p);
    p = base; p.w_pair = p.w_class = p.w_norm = p.w_reg = 0; p.w_cross = 1; check_unified("L5 (cross decoders)", p);
    p = base; p.w_pair = p.w_class = p.w_norm = p.w_cross = 0; p.w_reg = 1; check_unified("R (weights to alpha)", p);
    p = base; check_unified("all terms", p);
    p = base; p.hidden = 0; check_unified("all terms, linear encoders", p);
    p = base; check_unified_labels("all terms, unlabelled", p, 0);
    p = base; p.multilabel = 1; check_unified_labels("all terms, unlabelled (multi)", p, 0);
}

static void test_unified_save(void)
{
    cmir_unified_params p = cmir_unified_default_params();
    cmir_unified *u = cmir_unified_new(p, 1), *v = cmir_unified_new(p, 2);
    float Z[3 * 128], Va[3 * 64], Vb[3 * 64];
    for (int i = 0; i < 3 * 128; i++)
        Z[i] = (float)sin(i);
    cmir_tensorset *ts = cmir_tensorset_new();
    ASSERT_OK(cmir_unified_save(u, ts));
    ASSERT_OK(cmir_unified_load(v, ts));
    ASSERT_OK(cmir_unified_encode(u, ex, 1, Z, 3, Va));
    ASSERT_OK(cmir_unified_encode(v, ex, 1, Z, 3, Vb));
    ASSERT_EQ_INT(memcmp(Va, Vb, sizeof Va), 0);
    p.d_v = 32;
    cmir_unified *w = cmir_unified_new(p, 1);
    ASSERT_EQ_INT(cmir_unified_load(w, ts), CMIR_EFORMAT);
    cmir_unified_free(w);
    cmir_unified_free(u);
    cmir_unified_free(v);
    cmir_tensorset_free(ts);
}

static void test_cnn_grad(void) { cnn_grad_case(16, 2, 16, "ms_conv1_W"); }

/* A 1 x 1 input is a feature vector: the network is dense -> ReLU ->
 * dense (4 arrays), with pools of 1 and the FLOPs of two dense layers. */
static void test_mlp_grad(void)
{
    cnn_grad_case(1, 20, 4, "ms_fc1_W");
    cmir_cnn_params p = cmir_cnn_default_params();
    p.h = p.w = 1;
    p.bands = 128;
    p.n_classes = 17;
    cmir_cnn *c = cmir_cnn_new(p, 1);
    int pools[4];
    cmir_cnn_pools(c, pools);
    ASSERT_EQ_INT(pools[0] * pools[1] * pools[2] * pools[3], 1);
    ASSERT_NEAR(cmir_cnn_flops(c), 2.0 * 128 * 128 + 2.0 * 128 * 17, 1e-6);
    cmir_cnn_free(c);
}

static void test_cnn_check_params(void)
{
    cmir_cnn_params p = cmir_cnn_default_params();
    ASSERT_OK(cmir_cnn_check_params(p));
    const char *field[6] = {"cmir_cnn_params.h:", "cmir_cnn_params.w:", "cmir_cnn_params.bands:",
                            "cmir_cnn_params.n_classes:", "cmir_cnn_params.dropout:", "cmir_cnn_params.slope:"};
    for (int f = 0; f < 6; f++) {
        p = cmir_cnn_default_params();
        switch (f) {
        case 0: p.h = 0; break;
        case 1: p.w = 8193; break;
        case 2: p.bands = 1025; break;
        case 3: p.n_classes = 0; break;
        case 4: p.dropout = 1.0f; break;
        default: p.slope = -0.5f; break;
        }
        REFUSES(cmir_cnn_check_params(p), field[f]);
        ASSERT_TRUE(cmir_cnn_new(p, 1) == NULL);
        ASSERT_TRUE(strstr(cmir_last_error(), field[f]) != NULL);
    }
}

/* cmir_modality lives in base.h: the image-speech names alias the slots. */
static void test_modality_enum(void)
{
    ASSERT_EQ_INT(CMIR_PAN, 0);
    ASSERT_EQ_INT(CMIR_MS, 1);
    ASSERT_EQ_INT(CMIR_IMAGE, CMIR_PAN);
    ASSERT_EQ_INT(CMIR_AUDIO, CMIR_MS);
    ASSERT_TRUE(!strcmp(cmir_model_modality_name(NULL, CMIR_PAN), "PAN"));
    ASSERT_TRUE(!strcmp(cmir_model_modality_name(NULL, CMIR_MS), "MS"));
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Naive roughness: the mean |difference| of right and lower neighbours of
 * the values g (ny x nx). */
static double naive_rough(const double *g, int ny, int nx)
{
    double s = 0;
    int n = 0;
    for (int y = 0; y < ny; y++)
        for (int x = 0; x < nx; x++) {
            if (x + 1 < nx) { s += fabs(g[y * nx + x + 1] - g[y * nx + x]); n++; }
            if (y + 1 < ny) { s += fabs(g[(y + 1) * nx + x] - g[y * nx + x]); n++; }
        }
    return n ? s / n : 0;
}

/* The tile descriptor against naive loops: mean, deviation, the quantiles
 * (exact order statistics; the histogram is within a bin of 1/256 of the
 * range), roughness at 1 and 2 pixels (odd sides drop the last row and
 * column of blocks); the CNN's features before it are untouched; sides it
 * does not fit have none. */
static void test_descriptor(void)
{
    const char *names[] = {"a", "b"}, *bn[] = {"b1", "b2", "b3"};
    cmir__model_spec s = {18, 14, 1, 9, 11, 3, 2, names, bn, bn, CMIR_SCENARIO_PAN_MS};
    cmir_model *m = cmir__model_new(&s, cmir_cnn_default_params(), cmir_unified_default_params(), 1);
    if (!m)
        printf("  %s\n", cmir_last_error());
    ASSERT_TRUE(m != NULL);
    if (!m)
        return;
    ASSERT_EQ_INT(cmir__model_desc_dims(cmir_model_get_info(m), 0), 0); /* descriptor off */
    m->info.descriptor = 1;
    ASSERT_EQ_INT(cmir__model_desc_dims(&m->info, 0), 7);
    ASSERT_EQ_INT(cmir__model_desc_dims(&m->info, 1), 21);
    uint64_t st = 7;
    for (int k = 0; k < 2; k++) {
        int h = k ? 9 : 18, w = k ? 11 : 14, b = k ? 3 : 1, px = h * w, n = 3;
        float *x = malloc(sizeof(float) * (size_t)n * px * b), *Z = malloc(sizeof(float) * (size_t)n * 128);
        for (int i = 0; i < n * px * b; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            x[i] = (float)((double)(st >> 11) / 9007199254740992.0 * 4 - 2) * (float)(1 + i % 3);
        }
        for (int i = 0; i < n * 128; i++)
            Z[i] = (float)i;
        cmir__model_describe(m, k, x, n, Z);
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < 128 - 7 * b; j++)
                ASSERT_NEAR(Z[t * 128 + j], (float)(t * 128 + j), 0);
            for (int c = 0; c < b; c++) {
                const float *f = Z + t * 128 + 128 - 7 * b + 7 * c;
                float *v = malloc(sizeof(float) * (size_t)px);
                double *g = malloc(sizeof(double) * (size_t)px), *g2 = malloc(sizeof(double) * (size_t)px);
                double mu = 0, var = 0;
                for (int p = 0; p < px; p++)
                    mu += (g[p] = v[p] = x[((size_t)t * px + p) * b + c]);
                mu /= px;
                for (int p = 0; p < px; p++)
                    var += (g[p] - mu) * (g[p] - mu);
                ASSERT_NEAR(f[0], mu, 1e-5);
                ASSERT_NEAR(f[1], sqrt(var / px), 1e-4);
                qsort(v, (size_t)px, sizeof(float), cmp_float);
                double bin = (v[px - 1] - v[0]) / 256.0, q[3] = {0.1, 0.5, 0.9};
                for (int j = 0; j < 3; j++) {
                    int r = (int)(q[j] * px); /* the order statistics either side of the quantile */
                    float lo = v[r > 0 ? r - 1 : 0], hi = v[r < px ? r : px - 1];
                    ASSERT_TRUE(f[2 + j] >= lo - bin - 1e-5 && f[2 + j] <= hi + bin + 1e-5);
                }
                ASSERT_NEAR(f[5], naive_rough(g, h, w), 1e-5);
                int ny = h / 2, nx = w / 2;
                for (int y = 0; y < ny; y++)
                    for (int xx = 0; xx < nx; xx++)
                        g2[y * nx + xx] = 0.25 * (g[2 * y * w + 2 * xx] + g[2 * y * w + 2 * xx + 1] +
                                                  g[(2 * y + 1) * w + 2 * xx] + g[(2 * y + 1) * w + 2 * xx + 1]);
                ASSERT_NEAR(f[6], naive_rough(g2, ny, nx), 1e-5);
                free(v); free(g); free(g2);
            }
        }
        free(x);
        free(Z);
    }
    /* sides it does not fit: 3 x 3 pixels, 10 bands, image-speech */
    m->info.pan_h = 3;
    m->info.ms_bands = 10;
    ASSERT_EQ_INT(cmir__model_desc_dims(&m->info, 0), 0);
    ASSERT_EQ_INT(cmir__model_desc_dims(&m->info, 1), 0);
    m->info.pan_h = 18;
    m->info.scenario = CMIR_SCENARIO_IMAGE_SPEECH;
    ASSERT_EQ_INT(cmir__model_desc_dims(&m->info, 0), 0);
    m->info.scenario = CMIR_SCENARIO_PAN_MS;
    m->info.ms_bands = 3;
    cmir_model_free(m);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 2;
    ex = cmir_exec_new(ep);
    RUN(test_pools);
    RUN(test_cnn_grad);
    RUN(test_mlp_grad);
    RUN(test_unified_grad);
    RUN(test_unified_save);
    cmir_exec_free(ex);
    RUN(test_cnn_check_params);
    RUN(test_modality_enum);
    RUN(test_descriptor);
    TEST_MAIN_END();
}
