/* Tests of the losses and penalties: values against hand computation and
 * finite-difference gradient checks for softmax and sigmoid cross-entropy,
 * squared distance, soft orthogonality, the weight penalty and stage 0's
 * symmetric InfoNCE. */
#include "cmir/nn.h"
#include "test_util.h"

#define FD_H 1e-2f
#define FD_TOL 2e-2 /* see test_nn.c for the reasoning */

static cmir_exec *ex;
static cmir_rng *rng;

static float *randv(size_t n, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = (2.0f * cmir_rng_uniform(rng) - 1.0f) * scale;
    return v;
}

static float *zeros(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

typedef double (*loss_fn)(void *ctx);

static void fd_check(const char *what, float *param, const float *analytic, size_t n,
                     loss_fn f, void *ctx)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        float keep = param[i];
        param[i] = keep + FD_H;
        double lp = f(ctx);
        param[i] = keep - FD_H;
        double lm = f(ctx);
        param[i] = keep;
        double num = (lp - lm) / (2.0 * FD_H);
        double err = fabs(num - analytic[i]) / fmax(1e-3, fabs(num) + fabs(analytic[i]));
        worst = fmax(worst, err);
    }
    printf("  grad %-26s max rel err %.2e\n", what, worst);
    ASSERT_LE(worst, FD_TOL);
}

/* ---- softmax cross-entropy ---- */
typedef struct {
    cmir_tensor z;
    int32_t *lab;
    float scale;
} sx_ctx;

static double sx_loss(void *c)
{
    sx_ctx *d = c;
    float l;
    cmir_softmax_xent(&d->z, d->lab, d->scale, &l, NULL);
    return l;
}

static void test_softmax_xent(void)
{
    /* Hand value: logits {0, ln 3} label 1 -> p = 3/4, loss = -ln(3/4). */
    float z1[2] = {0.0f, logf(3.0f)};
    int32_t l1 = 1;
    cmir_tensor t1 = cmir_tensor_2d(z1, 1, 2);
    float loss, g1[2] = {0, 0};
    cmir_tensor tg1 = cmir_tensor_2d(g1, 1, 2);
    ASSERT_OK(cmir_softmax_xent(&t1, &l1, 1.0f, &loss, &tg1));
    ASSERT_NEAR(loss, -log(0.75), 1e-6);
    ASSERT_NEAR(g1[0], 0.25, 1e-6);
    ASSERT_NEAR(g1[1], -0.25, 1e-6);
    /* Extreme logits stay finite. */
    float z2[3] = {1000.0f, -1000.0f, 0.0f};
    int32_t l2 = 1;
    cmir_tensor t2 = cmir_tensor_2d(z2, 1, 3);
    ASSERT_OK(cmir_softmax_xent(&t2, &l2, 1.0f, &loss, NULL));
    ASSERT_NEAR(loss, 2000.0, 1e-2);
    /* Bad label is refused. */
    l2 = 3;
    ASSERT_EQ_INT(cmir_softmax_xent(&t2, &l2, 1.0f, &loss, NULL), CMIR_EINVAL);
    /* Gradient check, with accumulation on top of existing content. */
    const int B = 4, C = 5;
    sx_ctx d = {cmir_tensor_2d(randv(B * C, 3), B, C), malloc(sizeof(int32_t) * B), 0.7f};
    for (int b = 0; b < B; b++)
        d.lab[b] = (int32_t)cmir_rng_below(rng, C);
    float *g = zeros(B * C), *base = randv(B * C, 1), *g2 = malloc(sizeof(float) * B * C);
    memcpy(g2, base, sizeof(float) * B * C);
    cmir_tensor tg = cmir_tensor_2d(g, B, C), tg2 = cmir_tensor_2d(g2, B, C);
    ASSERT_OK(cmir_softmax_xent(&d.z, d.lab, d.scale, NULL, &tg));
    ASSERT_OK(cmir_softmax_xent(&d.z, d.lab, d.scale, NULL, &tg2));
    for (int i = 0; i < B * C; i++)
        ASSERT_NEAR(g2[i] - base[i], g[i], 1e-6);
    fd_check("softmax xent", d.z.data, g, B * C, sx_loss, &d);
    free(d.z.data); free(d.lab); free(g); free(base); free(g2);
}

/* ---- sigmoid cross-entropy ---- */
typedef struct {
    cmir_tensor z, t;
} sg_ctx;

static double sg_loss(void *c)
{
    sg_ctx *d = c;
    float l;
    cmir_sigmoid_xent(&d->z, &d->t, 1.0f, &l, NULL);
    return l;
}

static void test_sigmoid_xent(void)
{
    float z = 0.0f, t = 1.0f, loss;
    cmir_tensor tz = cmir_tensor_2d(&z, 1, 1), tt = cmir_tensor_2d(&t, 1, 1);
    ASSERT_OK(cmir_sigmoid_xent(&tz, &tt, 1.0f, &loss, NULL));
    ASSERT_NEAR(loss, log(2.0), 1e-6);
    z = -200.0f; /* stable: loss = 200 */
    ASSERT_OK(cmir_sigmoid_xent(&tz, &tt, 1.0f, &loss, NULL));
    ASSERT_NEAR(loss, 200.0, 1e-3);
    const int B = 3, C = 6;
    sg_ctx d = {cmir_tensor_2d(randv(B * C, 3), B, C), cmir_tensor_2d(zeros(B * C), B, C)};
    for (int i = 0; i < B * C; i++)
        d.t.data[i] = cmir_rng_uniform(rng) < 0.4f ? 1.0f : 0.0f;
    float *g = zeros(B * C);
    cmir_tensor tg = cmir_tensor_2d(g, B, C);
    ASSERT_OK(cmir_sigmoid_xent(&d.z, &d.t, 1.0f, NULL, &tg));
    fd_check("sigmoid xent", d.z.data, g, B * C, sg_loss, &d);
    free(d.z.data); free(d.t.data); free(g);
}

/* ---- squared distance ---- */
typedef struct {
    cmir_tensor a, b;
} sq_ctx;

static double sq_loss(void *c)
{
    sq_ctx *d = c;
    float l;
    cmir_sqdist(&d->a, &d->b, 0.5f, &l, NULL, NULL);
    return l;
}

static void test_sqdist(void)
{
    const int n = 12;
    sq_ctx d = {cmir_tensor_2d(randv(n, 1), 3, 4), cmir_tensor_2d(randv(n, 1), 3, 4)};
    double want = 0;
    for (int i = 0; i < n; i++)
        want += 0.5 * (d.a.data[i] - d.b.data[i]) * (d.a.data[i] - d.b.data[i]);
    float loss, *ga = zeros(n), *gb = zeros(n);
    cmir_tensor ta = cmir_tensor_2d(ga, 3, 4), tb = cmir_tensor_2d(gb, 3, 4);
    ASSERT_OK(cmir_sqdist(&d.a, &d.b, 0.5f, &loss, &ta, &tb));
    ASSERT_NEAR(loss, want, 1e-5);
    fd_check("sqdist da", d.a.data, ga, n, sq_loss, &d);
    fd_check("sqdist db", d.b.data, gb, n, sq_loss, &d);
    free(d.a.data); free(d.b.data); free(ga); free(gb);
}

/* ---- orthogonality ---- */
typedef struct {
    cmir_tensor z;
    int per_batch;
} or_ctx;

static double or_loss(void *c)
{
    or_ctx *d = c;
    float l;
    cmir_ortho_penalty(ex, &d->z, d->per_batch, 0.3f, &l, NULL);
    return l;
}

static void test_ortho(void)
{
    /* Orthonormal columns give zero penalty. */
    float q[6] = {1, 0, 0, 1, 0, 0}; /* 3x2, Z^T Z = I */
    cmir_tensor tq = cmir_tensor_2d(q, 3, 2);
    float loss;
    ASSERT_OK(cmir_ortho_penalty(ex, &tq, 0, 1.0f, &loss, NULL));
    ASSERT_NEAR(loss, 0.0, 1e-7);
    /* Hand value: Z = [[1,1]] -> Z^T Z = [[1,1],[1,1]], minus I = [[0,1],[1,0]]: 2. */
    float o[2] = {1, 1};
    cmir_tensor to = cmir_tensor_2d(o, 1, 2);
    ASSERT_OK(cmir_ortho_penalty(ex, &to, 0, 1.0f, &loss, NULL));
    ASSERT_NEAR(loss, 2.0, 1e-6);
    for (int pb = 0; pb < 2; pb++) {
        const int B = 6, D = 4;
        or_ctx d = {cmir_tensor_2d(randv(B * D, 1), B, D), pb};
        float *g = zeros(B * D);
        cmir_tensor tg = cmir_tensor_2d(g, B, D);
        ASSERT_OK(cmir_ortho_penalty(ex, &d.z, pb, 0.3f, NULL, &tg));
        fd_check(pb ? "ortho (per batch) dZ" : "ortho dZ", d.z.data, g, B * D, or_loss, &d);
        free(d.z.data); free(g);
    }
}

/* ---- InfoNCE (stage 0) ---- */
typedef struct {
    cmir_tensor a, b;
    float tau;
} nce_ctx;

static double nce_loss(void *c)
{
    nce_ctx *d = c;
    float l;
    cmir_infonce(&d->a, &d->b, d->tau, 0.7f, &l, NULL, NULL);
    return l;
}

static void test_infonce(void)
{
    /* orthonormal pairs matched to themselves: every row picks its own
     * pair with probability e^(1/tau) / (e^(1/tau) + B - 1) */
    float e[9] = {1, 0, 0, 0, 2, 0, 0, 0, 3}, loss;
    cmir_tensor te = cmir_tensor_2d(e, 3, 3);
    ASSERT_OK(cmir_infonce(&te, &te, 0.5f, 1.0f, &loss, NULL, NULL));
    ASSERT_NEAR(loss, -log(exp(2.0) / (exp(2.0) + 2.0)), 1e-5);
    ASSERT_EQ_INT(cmir_infonce(&te, &te, 0.0f, 1.0f, &loss, NULL, NULL), CMIR_EINVAL);
    const int B = 5, D = 7;
    nce_ctx d = {cmir_tensor_2d(randv((size_t)B * D, 1), B, D), cmir_tensor_2d(randv((size_t)B * D, 1), B, D), 0.3f};
    float *ga = zeros((size_t)B * D), *gb = zeros((size_t)B * D);
    cmir_tensor tga = cmir_tensor_2d(ga, B, D), tgb = cmir_tensor_2d(gb, B, D);
    ASSERT_OK(cmir_infonce(&d.a, &d.b, d.tau, 0.7f, NULL, &tga, &tgb));
    fd_check("infonce dza", d.a.data, ga, (size_t)B * D, nce_loss, &d);
    fd_check("infonce dzb", d.b.data, gb, (size_t)B * D, nce_loss, &d);
    free(d.a.data); free(d.b.data); free(ga); free(gb);
}

/* ---- weight penalty ---- */
typedef struct {
    float *w;
    size_t n;
} wp_ctx;

static double wp_loss(void *c)
{
    wp_ctx *d = c;
    float l;
    cmir_weight_penalty(d->w, d->n, 1.0f, 0.25f, &l, NULL);
    return l;
}

static void test_weight_penalty(void)
{
    float w[3] = {1, 2, 4}, loss;
    ASSERT_OK(cmir_weight_penalty(w, 3, 1.0f, 1.0f, &loss, NULL));
    ASSERT_NEAR(loss, 0 + 1 + 9, 1e-6);
    wp_ctx d = {randv(10, 2), 10};
    float *g = zeros(10);
    ASSERT_OK(cmir_weight_penalty(d.w, d.n, 1.0f, 0.25f, NULL, g));
    fd_check("weight penalty", d.w, g, 10, wp_loss, &d);
    free(d.w); free(g);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = 2;
    ex = cmir_exec_new(ep);
    rng = cmir_rng_new(777);
    RUN(test_softmax_xent);
    RUN(test_sigmoid_xent);
    RUN(test_sqdist);
    RUN(test_ortho);
    RUN(test_weight_penalty);
    RUN(test_infonce);
    cmir_rng_free(rng);
    cmir_exec_free(ex);
    TEST_MAIN_END();
}
