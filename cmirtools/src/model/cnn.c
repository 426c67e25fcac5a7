/* Stage-1 CMIR-NET feature extractor: three conv/leaky-ReLU/batch-norm/
 * max-pool blocks, an optional last pooling, dense -> 128-d ReLU features
 * (dropout in training) -> logits; for 1 x 1 inputs (feature vectors, the
 * speech branch) no blocks: an MLP. Forward, backward, parameters, save
 * and load. Activations live in buffers that grow once and are reused. */
#include "cmir/model.h"
#include "../nn/nn_export.h"
#include "../base/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define NBLK 3
static const int FILTERS[NBLK] = {32, 64, 128};

enum { P_W, P_B, P_G, P_BETA }; /* per block: conv W, conv b, BN gamma, BN beta */

struct cmir_cnn {
    cmir_cnn_params p;
    int nb;                   /* conv blocks: NBLK, or 0 for a 1 x 1 input (MLP) */
    int k[4];                 /* pooling windows; k[3] = 1 when no extra pool */
    int H[NBLK + 1], W[NBLK + 1]; /* input side of block l; [NBLK] = after the blocks */
    int Hf, Wf, F;            /* after the extra pool; F = Hf*Wf*128 */
    /* parameters and gradients, one allocation each */
    float *par, *grad;
    size_t n_par;
    float *cw[NBLK], *cb[NBLK], *bg[NBLK], *bb[NBLK], *rm[NBLK], *rv[NBLK];
    float *f1w, *f1b, *f2w, *f2b;
    float *gcw[NBLK], *gcb[NBLK], *gbg[NBLK], *gbb[NBLK], *gf1w, *gf1b, *gf2w, *gf2b;
    float sm[NBLK][128], si[NBLK][128];
    /* activations for up to nmax images */
    int nmax, n, training;
    /* a: leaky-ReLU outputs (batch-norm inputs); xw: the pool winners'
     * normalised values (the fused kernels need no normalised full tensor) */
    float *a[NBLK], *xw[NBLK], *pool[NBLK + 1], *Z, *zd, *logits, *g0, *g1, *dzd;
    unsigned bf[NBLK]; /* CMIR__BF_* held in bf16 by block l's last training forward */
    int32_t *idx[NBLK + 1];
    uint8_t *mask;
    const float *x;
};

cmir_cnn_params cmir_cnn_default_params(void)
{
    cmir_cnn_params p;
    memset(&p, 0, sizeof p);
    p.h = p.w = 64;
    p.bands = 4;
    p.n_classes = 8;
    p.slope = 0.01f;
    p.dropout = 0.5f;
    p.bn = cmir_bn_default_params();
    return p;
}

cmir_cnn_params cmir_cnn_get_params(const cmir_cnn *c) { return c->p; }

void cmir_cnn_pools(const cmir_cnn *c, int pools[4]) { memcpy(pools, c->k, sizeof c->k); }

double cmir_cnn_flops(const cmir_cnn *c)
{
    double f = 0;
    int cin = c->p.bands;
    for (int l = 0; l < c->nb; l++) {
        f += 2.0 * c->H[l] * c->W[l] * 9 * cin * FILTERS[l];
        cin = FILTERS[l];
    }
    return f + 2.0 * c->F * CMIR_FEAT_DIM + 2.0 * CMIR_FEAT_DIM * c->p.n_classes;
}

static void free_acts(cmir_cnn *c)
{
    for (int l = 0; l < NBLK; l++) {
        cmir__free_aligned(c->a[l]);
        cmir__free_aligned(c->xw[l]);
        c->a[l] = c->xw[l] = NULL;
    }
    for (int l = 0; l <= NBLK; l++) {
        cmir__free_aligned(c->pool[l]);
        cmir__free(c->idx[l]);
        c->pool[l] = NULL;
        c->idx[l] = NULL;
    }
    float **bufs[] = {&c->Z, &c->zd, &c->logits, &c->g0, &c->g1, &c->dzd};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) {
        cmir__free_aligned(*bufs[i]);
        *bufs[i] = NULL;
    }
    cmir__free(c->mask);
    c->mask = NULL;
    c->nmax = 0;
}

void cmir_cnn_free(cmir_cnn *c)
{
    if (!c)
        return;
    free_acts(c);
    cmir__free_aligned(c->par);
    cmir__free_aligned(c->grad);
    cmir__free(c);
}

int cmir_cnn_check_params(cmir_cnn_params p)
{
    const char *who = "cmir_cnn_params";
    if (p.h < 1 || p.h > 8192)
        return cmir__error(CMIR_EINVAL, "%s.h: must be in 1..8192, got %d", who, p.h);
    if (p.w < 1 || p.w > 8192)
        return cmir__error(CMIR_EINVAL, "%s.w: must be in 1..8192, got %d", who, p.w);
    if (p.bands < 1 || p.bands > 1024)
        return cmir__error(CMIR_EINVAL, "%s.bands: must be in 1..1024, got %d", who, p.bands);
    if (p.n_classes < 1)
        return cmir__error(CMIR_EINVAL, "%s.n_classes: must be >= 1, got %d", who, p.n_classes);
    if (!(p.dropout >= 0 && p.dropout < 1))
        return cmir__error(CMIR_EINVAL, "%s.dropout: must be in [0, 1), got %g", who, (double)p.dropout);
    if (p.slope < 0)
        return cmir__error(CMIR_EINVAL, "%s.slope: must be >= 0, got %g", who, (double)p.slope);
    return 0;
}

cmir_cnn *cmir_cnn_new(cmir_cnn_params p, uint64_t seed)
{
    if (cmir_cnn_check_params(p))
        return NULL;
    cmir_cnn *c = cmir__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->p = p;
    c->nb = p.h == 1 && p.w == 1 ? 0 : NBLK;
    int k = (p.h < p.w ? p.h : p.w) >= 256 ? 4 : 2;
    if (!c->nb)
        k = 1;
    c->H[0] = p.h;
    c->W[0] = p.w;
    for (int l = 0; l < NBLK; l++) {
        c->k[l] = k;
        c->H[l + 1] = c->H[l] / k;
        c->W[l + 1] = c->W[l] / k;
    }
    if (c->H[NBLK] < 1 || c->W[NBLK] < 1) {
        cmir__error(CMIR_EINVAL, "cmir_cnn_new: a %dx%d tile is too small for three poolings of %d",
                    p.h, p.w, k);
        cmir__free(c);
        return NULL;
    }
    int side = c->H[NBLK] < c->W[NBLK] ? c->H[NBLK] : c->W[NBLK];
    c->k[3] = side > 4 ? side / 4 : 1;
    c->Hf = c->H[NBLK] / c->k[3];
    c->Wf = c->W[NBLK] / c->k[3];
    c->F = c->nb ? c->Hf * c->Wf * FILTERS[NBLK - 1] : p.bands;
    /* parameter layout */
    size_t n = 0;
    int cin = p.bands;
    size_t off[NBLK][6];
    for (int l = 0; l < c->nb; l++) {
        size_t co = (size_t)FILTERS[l];
        off[l][0] = n; n += 9 * (size_t)cin * co;
        off[l][1] = n; n += co;
        off[l][2] = n; n += co;
        off[l][3] = n; n += co;
        off[l][4] = n; n += co; /* running mean */
        off[l][5] = n; n += co; /* running var */
        cin = FILTERS[l];
    }
    size_t o_f1w = n; n += (size_t)c->F * CMIR_FEAT_DIM;
    size_t o_f1b = n; n += CMIR_FEAT_DIM;
    size_t o_f2w = n; n += (size_t)CMIR_FEAT_DIM * p.n_classes;
    size_t o_f2b = n; n += (size_t)p.n_classes;
    c->n_par = n;
    c->par = cmir__malloc_aligned(n * sizeof(float));
    c->grad = cmir__malloc_aligned(n * sizeof(float));
    cmir_rng *r = cmir_rng_new(seed);
    if (!c->par || !c->grad || !r) {
        cmir_rng_free(r);
        cmir_cnn_free(c);
        return NULL;
    }
    memset(c->grad, 0, n * sizeof(float));
    cin = p.bands;
    for (int l = 0; l < c->nb; l++) {
        int co = FILTERS[l];
        c->cw[l] = c->par + off[l][0]; c->gcw[l] = c->grad + off[l][0];
        c->cb[l] = c->par + off[l][1]; c->gcb[l] = c->grad + off[l][1];
        c->bg[l] = c->par + off[l][2]; c->gbg[l] = c->grad + off[l][2];
        c->bb[l] = c->par + off[l][3]; c->gbb[l] = c->grad + off[l][3];
        c->rm[l] = c->par + off[l][4];
        c->rv[l] = c->par + off[l][5];
        cmir_init_he(r, c->cw[l], 9 * (size_t)cin * co, 9 * cin);
        cmir_fill(c->cb[l], co, 0.0f);
        cmir_fill(c->bg[l], co, 1.0f);
        cmir_fill(c->bb[l], co, 0.0f);
        cmir_fill(c->rm[l], co, 0.0f);
        cmir_fill(c->rv[l], co, 1.0f);
        cin = co;
    }
    c->f1w = c->par + o_f1w; c->gf1w = c->grad + o_f1w;
    c->f1b = c->par + o_f1b; c->gf1b = c->grad + o_f1b;
    c->f2w = c->par + o_f2w; c->gf2w = c->grad + o_f2w;
    c->f2b = c->par + o_f2b; c->gf2b = c->grad + o_f2b;
    cmir_init_xavier(r, c->f1w, (size_t)c->F * CMIR_FEAT_DIM, c->F, CMIR_FEAT_DIM);
    cmir_fill(c->f1b, CMIR_FEAT_DIM, 0.0f);
    cmir_init_xavier(r, c->f2w, (size_t)CMIR_FEAT_DIM * p.n_classes, CMIR_FEAT_DIM, p.n_classes);
    cmir_fill(c->f2b, (size_t)p.n_classes, 0.0f);
    cmir_rng_free(r);
    return c;
}

static float *abuf(size_t n) { return cmir__malloc_aligned(n * sizeof(float)); }

static int ensure(cmir_cnn *c, int n)
{
    if (n <= c->nmax)
        return 0;
    free_acts(c);
    size_t maxact = 0;
    int cin = c->p.bands;
    (void)cin;
    for (int l = 0; l < c->nb; l++) {
        size_t sz = (size_t)n * c->H[l] * c->W[l] * FILTERS[l];
        /* a[l] only where the conv has many input channels (see forward) */
        c->a[l] = (l ? FILTERS[l - 1] : c->p.bands) > 2 ? abuf(sz) : NULL;
        maxact = sz > maxact ? sz : maxact;
        size_t ps = (size_t)n * c->H[l + 1] * c->W[l + 1] * FILTERS[l];
        c->pool[l] = abuf(ps);
        c->idx[l] = cmir__malloc(ps * sizeof(int32_t));
        c->xw[l] = abuf(ps);
        if ((!c->a[l] && (l ? FILTERS[l - 1] : c->p.bands) > 2) || !c->pool[l] || !c->idx[l] ||
            !c->xw[l])
            goto oom;
    }
    size_t fs = (size_t)n * c->F;
    if (c->k[3] > 1) {
        c->pool[NBLK] = abuf(fs);
        c->idx[NBLK] = cmir__malloc(fs * sizeof(int32_t));
        if (!c->pool[NBLK] || !c->idx[NBLK])
            goto oom;
    }
    /* Gradient buffers hold pooled-size tensors and the flattened features
     * only: the blocks' full-size gradients are never stored. */
    size_t maxg = fs;
    for (int l = 0; l < c->nb; l++) {
        size_t ps = (size_t)n * c->H[l + 1] * c->W[l + 1] * FILTERS[l];
        maxg = ps > maxg ? ps : maxg;
    }
    (void)maxact;
    c->g0 = abuf(maxg);
    c->g1 = abuf(maxg);
    c->Z = abuf((size_t)n * CMIR_FEAT_DIM);
    c->zd = abuf((size_t)n * CMIR_FEAT_DIM);
    c->dzd = abuf((size_t)n * CMIR_FEAT_DIM);
    c->logits = abuf((size_t)n * c->p.n_classes);
    c->mask = cmir__malloc((size_t)n * CMIR_FEAT_DIM);
    if (!c->g0 || !c->g1 || !c->Z || !c->zd || !c->dzd || !c->logits || !c->mask)
        goto oom;
    c->nmax = n;
    return 0;
oom:
    free_acts(c);
    return CMIR_ENOMEM;
}

#define TRY(x)              \
    do {                    \
        int rc_ = (x);      \
        if (rc_)            \
            return rc_;     \
    } while (0)

int cmir_cnn_forward(cmir_cnn *c, cmir_exec *ex, const float *x, int n, int training, cmir_rng *r)
{
    if (!c || !x || n < 1 || (training && c->p.dropout > 0 && !r))
        return cmir__error(CMIR_EINVAL, "cmir_cnn_forward: bad arguments (n = %d)", n);
    TRY(ensure(c, n));
    c->n = n;
    c->training = training;
    c->x = x;
    const float *in = x;
    int cin = c->p.bands;
    for (int l = 0; l < c->nb; l++) {
        int co = FILTERS[l];
        cmir_tensor tx = cmir_tensor_4d((float *)in, n, c->H[l], c->W[l], cin);
        cmir_tensor ta = cmir_tensor_4d(c->a[l], n, c->H[l], c->W[l], co);
        cmir_tensor tp = cmir_tensor_4d(c->pool[l], n, c->H[l + 1], c->W[l + 1], co);
        /* conv -> leaky ReLU -> batch norm -> max-pool, fused: the batch-norm
         * output is never stored (the backward recomputes it from a[l]), and
         * for few input channels neither is the conv's (a[l] NULL: the conv
         * is cheaper to run again than its output is to store and read). */
        /* at the bf16 precision a[l] and pool[l] may hold bf16 (half the
         * traffic); pool[l] only where the next block's conv takes it */
        c->bf[l] = CMIR__BF_A | (l + 1 < c->nb ? CMIR__BF_Y : 0u) |
                   (l && (c->bf[l - 1] & CMIR__BF_Y) ? CMIR__BF_X : 0u);
        TRY(cmir__conv3x3_bn_maxpool_forward_bf(ex, &tx, c->cw[l], c->cb[l], c->p.slope,
                                               c->p.bn, training, c->k[l], c->bg[l], c->bb[l],
                                               c->rm[l], c->rv[l], c->sm[l], c->si[l],
                                               c->a[l] ? &ta : NULL, &tp, c->idx[l],
                                               training ? c->xw[l] : NULL, &c->bf[l]));
        in = c->pool[l];
        cin = co;
    }
    if (c->k[3] > 1) {
        cmir_tensor tx = cmir_tensor_4d((float *)in, n, c->H[NBLK], c->W[NBLK], cin);
        cmir_tensor tp = cmir_tensor_4d(c->pool[NBLK], n, c->Hf, c->Wf, cin);
        TRY(cmir_maxpool_forward(ex, c->k[3], &tx, &tp, c->idx[NBLK]));
        in = c->pool[NBLK];
    }
    cmir_tensor tf = cmir_tensor_2d((float *)in, n, c->F);
    cmir_tensor tz = cmir_tensor_2d(c->Z, n, CMIR_FEAT_DIM);
    cmir_tensor tzd = cmir_tensor_2d(c->zd, n, CMIR_FEAT_DIM);
    cmir_tensor tl = cmir_tensor_2d(c->logits, n, c->p.n_classes);
    TRY(cmir_dense_forward(ex, &tf, c->f1w, c->f1b, &tz));
    TRY(cmir_lrelu_forward(ex, 0.0f, &tz, &tz));
    if (training && c->p.dropout > 0)
        TRY(cmir_dropout_forward(r, c->p.dropout, &tz, c->mask, &tzd));
    else
        memcpy(c->zd, c->Z, sizeof(float) * (size_t)n * CMIR_FEAT_DIM);
    TRY(cmir_dense_forward(ex, &tzd, c->f2w, c->f2b, &tl));
    return 0;
}

float *cmir_cnn_features(cmir_cnn *c) { return c ? c->Z : NULL; }
float *cmir_cnn_logits(cmir_cnn *c) { return c ? c->logits : NULL; }

int cmir_cnn_backward(cmir_cnn *c, cmir_exec *ex, const float *dlogits, const float *dZ)
{
    if (!c || !dlogits || !c->n || !c->training)
        return cmir__error(CMIR_EINVAL, "cmir_cnn_backward: needs a training forward pass first");
    const int n = c->n;
    const size_t nz = (size_t)n * CMIR_FEAT_DIM;
    cmir_tensor tzd = cmir_tensor_2d(c->zd, n, CMIR_FEAT_DIM);
    cmir_tensor tdl = cmir_tensor_2d((float *)dlogits, n, c->p.n_classes);
    cmir_tensor tdz = cmir_tensor_2d(c->dzd, n, CMIR_FEAT_DIM);
    TRY(cmir_dense_backward(ex, &tzd, c->f2w, &tdl, &tdz, c->gf2w, c->gf2b));
    if (c->p.dropout > 0)
        TRY(cmir_dropout_backward(c->p.dropout, c->mask, &tdz, &tdz));
    if (dZ)
        for (size_t i = 0; i < nz; i++)
            c->dzd[i] += dZ[i];
    cmir_tensor tz = cmir_tensor_2d(c->Z, n, CMIR_FEAT_DIM);
    TRY(cmir_lrelu_backward(ex, 0.0f, &tz, &tdz, &tdz));
    /* Gradient of the flattened pooled features. */
    const float *fin = !c->nb ? c->x : c->k[3] > 1 ? c->pool[NBLK] : c->pool[NBLK - 1];
    float *cur = c->g1, *other = c->g0;
    cmir_tensor tf = cmir_tensor_2d((float *)fin, n, c->F), tdf = cmir_tensor_2d(cur, n, c->F);
    TRY(cmir_dense_backward(ex, &tf, c->f1w, &tdz, &tdf, c->gf1w, c->gf1b));
    if (c->k[3] > 1) {
        cmir_tensor dy = cmir_tensor_4d(cur, n, c->Hf, c->Wf, FILTERS[NBLK - 1]);
        cmir_tensor dx = cmir_tensor_4d(other, n, c->H[NBLK], c->W[NBLK], FILTERS[NBLK - 1]);
        TRY(cmir_maxpool_backward(ex, &dy, c->idx[NBLK], &dx));
        float *t = cur; cur = other; other = t;
    }
    for (int l = c->nb - 1; l >= 0; l--) {
        int co = FILTERS[l], cin = l ? FILTERS[l - 1] : c->p.bands;
        cmir_tensor dp = cmir_tensor_4d(cur, n, c->H[l + 1], c->W[l + 1], co);
        cmir_tensor ta = cmir_tensor_4d(c->a[l], n, c->H[l], c->W[l], co);
        const float *xin = l ? c->pool[l - 1] : c->x;
        cmir_tensor tx = cmir_tensor_4d((float *)xin, n, c->H[l], c->W[l], cin);
        cmir_tensor dx = cmir_tensor_4d(other, n, c->H[l], c->W[l], cin);
        /* max-pool, batch-norm, leaky-ReLU and conv backward in one call: the
         * gradient at the conv's output is made row by row, never stored */
        TRY(cmir__conv3x3_bn_maxpool_backward_bf(ex, c->p.slope, c->k[l], c->a[l] ? &ta : NULL,
                                                c->bg[l], c->sm[l], c->si[l], &dp, c->idx[l],
                                                c->xw[l], &tx, c->cw[l], c->cb[l],
                                                l ? &dx : NULL, c->gcw[l], c->gcb[l],
                                                c->gbg[l], c->gbb[l], c->bf[l]));
        /* dx (into other) is the next block's pooled-output gradient */
        float *t = cur; cur = other; other = t;
    }
    return 0;
}

/* ---- parameter table ---- */
typedef struct pinfo {
    char name[32];
    float *w, *g;
    size_t n;
    int trained;
    int ndim;
    int64_t shape[4];
} pinfo;

static int table(const cmir_cnn *cc, pinfo *t)
{
    cmir_cnn *c = (cmir_cnn *)cc;
    int k = 0, cin = c->p.bands;
    for (int l = 0; l < c->nb; l++) {
        int co = FILTERS[l];
        pinfo e[6] = {
            {"", c->cw[l], c->gcw[l], 9 * (size_t)cin * co, 1, 4, {3, 3, cin, co}},
            {"", c->cb[l], c->gcb[l], (size_t)co, 1, 1, {co}},
            {"", c->bg[l], c->gbg[l], (size_t)co, 1, 1, {co}},
            {"", c->bb[l], c->gbb[l], (size_t)co, 1, 1, {co}},
            {"", c->rm[l], NULL, (size_t)co, 0, 1, {co}},
            {"", c->rv[l], NULL, (size_t)co, 0, 1, {co}},
        };
        const char *nm[6] = {"conv%d_W", "conv%d_b", "bn%d_gamma", "bn%d_beta", "bn%d_mean", "bn%d_var"};
        for (int i = 0; i < 6; i++) {
            t[k] = e[i];
            snprintf(t[k].name, sizeof t[k].name, nm[i], l + 1);
            k++;
        }
        cin = co;
    }
    pinfo f[4] = {
        {"fc1_W", c->f1w, c->gf1w, (size_t)c->F * CMIR_FEAT_DIM, 1, 2, {c->F, CMIR_FEAT_DIM}},
        {"fc1_b", c->f1b, c->gf1b, CMIR_FEAT_DIM, 1, 1, {CMIR_FEAT_DIM}},
        {"fc2_W", c->f2w, c->gf2w, (size_t)CMIR_FEAT_DIM * c->p.n_classes, 1, 2, {CMIR_FEAT_DIM, c->p.n_classes}},
        {"fc2_b", c->f2b, c->gf2b, (size_t)c->p.n_classes, 1, 1, {c->p.n_classes}},
    };
    for (int i = 0; i < 4; i++)
        t[k++] = f[i];
    return k;
}

#define NTAB (NBLK * 6 + 4)

int cmir_cnn_n_params(const cmir_cnn *c)
{
    pinfo t[NTAB];
    int n = table(c, t), k = 0;
    for (int i = 0; i < n; i++)
        k += t[i].trained;
    return k;
}

int cmir_cnn_param(cmir_cnn *c, int i, const char **name, float **w, float **g, size_t *n)
{
    static _Thread_local pinfo t[NTAB];
    int m = table(c, t), k = 0;
    for (int j = 0; j < m; j++) {
        if (!t[j].trained)
            continue;
        if (k++ == i) {
            if (name) *name = t[j].name;
            if (w) *w = t[j].w;
            if (g) *g = t[j].g;
            if (n) *n = t[j].n;
            return 0;
        }
    }
    return cmir__error(CMIR_EINVAL, "cmir_cnn_param: no parameter %d", i);
}

int cmir_cnn_register(cmir_cnn *c, cmir_optim *o)
{
    pinfo t[NTAB];
    int m = table(c, t);
    for (int j = 0; j < m; j++)
        if (t[j].trained)
            TRY(cmir_optim_add(o, t[j].w, t[j].g, t[j].n));
    return 0;
}

int cmir_cnn_save(const cmir_cnn *c, cmir_tensorset *ts, const char *prefix)
{
    pinfo t[NTAB];
    int m = table(c, t);
    char nm[96];
    for (int j = 0; j < m; j++) {
        snprintf(nm, sizeof nm, "%.60s%.31s", prefix, t[j].name);
        cmir_tensor v = cmir_tensor_make(t[j].w, t[j].ndim, t[j].shape);
        TRY(cmir_tensorset_put(ts, nm, &v));
    }
    return 0;
}

int cmir_cnn_load(cmir_cnn *c, const cmir_tensorset *ts, const char *prefix)
{
    pinfo t[NTAB];
    int m = table(c, t);
    char nm[96];
    for (int j = 0; j < m; j++) {
        snprintf(nm, sizeof nm, "%.60s%.31s", prefix, t[j].name);
        TRY(cmir_tensorset_expect(ts, nm, t[j].ndim, t[j].shape));
        const cmir_tensor *v = cmir_tensorset_get(ts, nm);
        for (size_t i = 0; i < t[j].n; i++)
            if (!isfinite(v->data[i]))
                return cmir__error(CMIR_EFORMAT, "'%s' holds a non-finite value", nm);
        memcpy(t[j].w, v->data, t[j].n * sizeof(float));
    }
    return 0;
}
