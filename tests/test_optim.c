/* Tests of the optimisers and of training as a whole: Adam and SGD on a
 * convex toy loss, and a small CNN (conv, leaky ReLU, batch norm, pool,
 * dense, softmax + orthogonality) trained twice with the same seed and
 * thread count giving bit-identical weights, and learning its task. */
#include <string.h>
#include <math.h>
#include "cmir/nn.h"
#include "test_util.h"

static void toy(cmir_optim_kind kind, float lr, int steps)
{
    /* L(w) = sum_i c_i (w_i - t_i)^2, badly conditioned (c from 0.1 to 10). */
    enum { N = 20 };
    float w[N], g[N], t[N], c[N];
    cmir_rng *r = cmir_rng_new(5);
    for (int i = 0; i < N; i++) {
        w[i] = 0.0f;
        t[i] = 2.0f * cmir_rng_uniform(r) - 1.0f;
        c[i] = 0.1f + 9.9f * (float)i / (N - 1);
    }
    cmir_optim_params p = cmir_optim_default_params();
    p.kind = kind;
    p.lr = lr;
    p.momentum = kind == CMIR_OPTIM_SGD ? 0.9f : 0.0f;
    cmir_optim *o = cmir_optim_new(p);
    ASSERT_OK(cmir_optim_add(o, w, g, N));
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        double L = 0;
        for (int i = 0; i < N; i++) {
            L += c[i] * (w[i] - t[i]) * (w[i] - t[i]);
            g[i] = 2.0f * c[i] * (w[i] - t[i]);
        }
        if (s == 0)
            first = L;
        last = L;
        ASSERT_OK(cmir_optim_step(o));
    }
    printf("  %s: loss %.3g -> %.3g after %d steps\n", kind == CMIR_OPTIM_ADAM ? "adam" : "sgd",
           first, last, steps);
    ASSERT_LE(last, first * 1e-4);
    ASSERT_EQ_INT(cmir_optim_steps(o), steps);
    cmir_optim_free(o);
    cmir_rng_free(r);
}

static void test_adam(void) { toy(CMIR_OPTIM_ADAM, 0.05f, 600); }
static void test_sgd(void) { toy(CMIR_OPTIM_SGD, 0.005f, 600); }

static void test_bad_params(void)
{
    cmir_optim_params p = cmir_optim_default_params();
    p.lr = -1.0f;
    ASSERT_TRUE(cmir_optim_new(p) == NULL);
    ASSERT_TRUE(strstr(cmir_last_error(), "cmir_optim_params.lr: must be > 0, got -1") != NULL);
    cmir_optim_free(NULL); /* no-op */
}

/* ---- a small CNN: 8x8x2 images of two classes ---- */
enum { B = 16, H = 8, W = 8, CI = 2, C1 = 4, NCLS = 2, HP = 4, FEAT = HP * HP * C1 };

typedef struct net {
    float Wc[9 * CI * C1], bc[C1], gam[C1], bet[C1], rm[C1], rv[C1], Wd[FEAT * NCLS], bd[NCLS];
    float gWc[9 * CI * C1], gbc[C1], ggam[C1], gbet[C1], gWd[FEAT * NCLS], gbd[NCLS];
} net;

static void make_batch(cmir_rng *r, float *x, int32_t *lab)
{
    /* Class 1 has a bright 3x3 blob in channel 0; class 0 in channel 1. */
    for (int b = 0; b < B; b++) {
        lab[b] = (int32_t)cmir_rng_below(r, 2);
        int cy = 1 + (int)cmir_rng_below(r, H - 2), cx = 1 + (int)cmir_rng_below(r, W - 2);
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++)
                for (int c = 0; c < CI; c++) {
                    float v = 0.3f * cmir_rng_normal(r);
                    if (abs(i - cy) <= 1 && abs(j - cx) <= 1 && c == (lab[b] ? 0 : 1))
                        v += 1.5f;
                    x[((b * H + i) * W + j) * CI + c] = v;
                }
    }
}

/* Trains `steps` Adam steps from seed; returns final-batch accuracy. */
static double train(net *n, int threads, int steps)
{
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = threads;
    cmir_exec *ex = cmir_exec_new(ep);
    cmir_rng *r = cmir_rng_new(2024);
    memset(n, 0, sizeof *n);
    cmir_init_he(r, n->Wc, 9 * CI * C1, 9 * CI);
    cmir_fill(n->gam, C1, 1.0f);
    cmir_fill(n->rv, C1, 1.0f);
    cmir_init_xavier(r, n->Wd, FEAT * NCLS, FEAT, NCLS);
    cmir_optim *o = cmir_optim_new(cmir_optim_default_params());
    cmir_optim_set_lr(o, 0.01f);
    cmir_optim_add(o, n->Wc, n->gWc, 9 * CI * C1);
    cmir_optim_add(o, n->bc, n->gbc, C1);
    cmir_optim_add(o, n->gam, n->ggam, C1);
    cmir_optim_add(o, n->bet, n->gbet, C1);
    cmir_optim_add(o, n->Wd, n->gWd, FEAT * NCLS);
    cmir_optim_add(o, n->bd, n->gbd, NCLS);
    static float x[B * H * W * CI], a[B * H * W * C1], bn[B * H * W * C1], p[B * FEAT];
    static float lg[B * NCLS], glg[B * NCLS], gp[B * FEAT], gbn[B * H * W * C1], ga[B * H * W * C1];
    static int32_t lab[B], arg[B * FEAT];
    float sm[C1], si[C1];
    cmir_tensor tx = cmir_tensor_4d(x, B, H, W, CI), ta = cmir_tensor_4d(a, B, H, W, C1);
    cmir_tensor tbn = cmir_tensor_4d(bn, B, H, W, C1), tp = cmir_tensor_4d(p, B, HP, HP, C1);
    cmir_tensor tpf = cmir_tensor_2d(p, B, FEAT), tlg = cmir_tensor_2d(lg, B, NCLS);
    cmir_tensor tglg = cmir_tensor_2d(glg, B, NCLS), tgpf = cmir_tensor_2d(gp, B, FEAT);
    cmir_tensor tgp = cmir_tensor_4d(gp, B, HP, HP, C1), tgbn = cmir_tensor_4d(gbn, B, H, W, C1);
    cmir_tensor tga = cmir_tensor_4d(ga, B, H, W, C1);
    double acc = 0;
    for (int s = 0; s < steps; s++) {
        make_batch(r, x, lab);
        ASSERT_OK(cmir_conv3x3_forward(ex, &tx, n->Wc, n->bc, &ta));
        ASSERT_OK(cmir_lrelu_forward(ex, 0.01f, &ta, &ta));
        ASSERT_OK(cmir_batchnorm_forward(ex, cmir_bn_default_params(), 1, &ta, n->gam, n->bet,
                                         n->rm, n->rv, sm, si, &tbn));
        ASSERT_OK(cmir_maxpool_forward(ex, 2, &tbn, &tp, arg));
        ASSERT_OK(cmir_dense_forward(ex, &tpf, n->Wd, n->bd, &tlg));
        memset(glg, 0, sizeof glg);
        memset(gp, 0, sizeof gp);
        float loss;
        ASSERT_OK(cmir_softmax_xent(&tlg, lab, 1.0f, &loss, &tglg));
        ASSERT_OK(cmir_dense_backward(ex, &tpf, n->Wd, &tglg, &tgpf, n->gWd, n->gbd));
        ASSERT_OK(cmir_ortho_penalty(ex, &tpf, 1, 1e-4f, NULL, &tgpf));
        ASSERT_OK(cmir_maxpool_backward(ex, &tgp, arg, &tgbn));
        ASSERT_OK(cmir_batchnorm_backward(ex, &ta, n->gam, sm, si, &tgbn, &tga, n->ggam, n->gbet));
        ASSERT_OK(cmir_lrelu_backward(ex, 0.01f, &ta, &tga, &tga));
        ASSERT_OK(cmir_conv3x3_backward(ex, &tx, n->Wc, &tga, NULL, n->gWc, n->gbc));
        ASSERT_OK(cmir_optim_step(o));
        int right = 0;
        for (int b = 0; b < B; b++)
            right += (lg[b * 2 + 1] > lg[b * 2]) == (lab[b] == 1);
        acc = (double)right / B;
    }
    cmir_optim_free(o);
    cmir_rng_free(r);
    cmir_exec_free(ex);
    return acc;
}

static void test_determinism_and_learning(void)
{
    static net a, b, c;
    double acc = train(&a, 2, 150);
    train(&b, 2, 150);
    train(&c, 1, 150);
    printf("  accuracy on the last batch after 150 steps: %.2f\n", acc);
    ASSERT_TRUE(acc >= 0.9);
    /* Same seed, same thread count: bit-identical. */
    ASSERT_EQ_INT(memcmp(&a, &b, sizeof a), 0);
    /* Another thread count: same up to rounding. */
    double d = 0;
    for (size_t i = 0; i < sizeof a.Wd / sizeof(float); i++)
        d = fmax(d, fabs(a.Wd[i] - c.Wd[i]));
    printf("  max |Wd(T=2) - Wd(T=1)| = %.2e\n", d);
    ASSERT_LE(d, 1e-2);
}

static void test_check_params(void)
{
    cmir_optim_params p = cmir_optim_default_params();
    ASSERT_OK(cmir_optim_check_params(p));
    p.kind = (cmir_optim_kind)7;
    REFUSES(cmir_optim_check_params(p), "cmir_optim_params.kind");
    p = cmir_optim_default_params();
    p.lr = NAN;
    REFUSES(cmir_optim_check_params(p), "cmir_optim_params.lr");
    p = cmir_optim_default_params();
    p.beta1 = 1.0f;
    REFUSES(cmir_optim_check_params(p), "cmir_optim_params.beta1");
    p = cmir_optim_default_params();
    p.beta2 = -0.1f;
    REFUSES(cmir_optim_check_params(p), "cmir_optim_params.beta2");
    p = cmir_optim_default_params();
    p.eps = 0.0f;
    REFUSES(cmir_optim_check_params(p), "cmir_optim_params.eps");
    p = cmir_optim_default_params();
    p.kind = CMIR_OPTIM_SGD;
    p.momentum = 1.5f;
    REFUSES(cmir_optim_check_params(p), "cmir_optim_params.momentum");
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    RUN(test_adam);
    RUN(test_sgd);
    RUN(test_bad_params);
    RUN(test_determinism_and_learning);
    RUN(test_check_params);
    TEST_MAIN_END();
}
