/* Stage-2 CMIR-NET: encoders E_a, E_b (128 -> hidden -> d_v), cross
 * decoders w_ab: V_a -> Z_b and w_ba: V_b -> Z_a, and a classifier on V,
 * trained with L2 (pairing), L3 (classification on [V_a; V_b]), L4 (code
 * norm), L5 (cross reconstruction) and R (encoder weights towards alpha). */
#include "cmir/model.h"
#include "../base/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Parameter arrays, in table order. */
enum { E1W_A, E1B_A, E2W_A, E2B_A, E1W_B, E1B_B, E2W_B, E2B_B, DAB_W, DAB_B, DBA_W, DBA_B, CLS_W, CLS_B, NPAR };
static const char *PNAME[NPAR] = {"enc_a_W1", "enc_a_b1", "enc_a_W2", "enc_a_b2", "enc_b_W1", "enc_b_b1",
                                  "enc_b_W2", "enc_b_b2", "dec_ab_W", "dec_ab_b", "dec_ba_W", "dec_ba_b",
                                  "cls_W", "cls_b"};

struct cmir_unified {
    cmir_unified_params p;
    int din[NPAR], dout[NPAR]; /* W: din x dout; b: 1 x dout; din 0 = unused */
    float *w[NPAR], *g[NPAR];
    float *par, *grad;
    size_t n_par;
    int nmax;
    /* activations (per side: 0 = a, 1 = b) */
    float *h[2], *V, *dV, *dh, *rec[2], *drec, *logits, *dlogits, *tgt2, *tmpV;
    int32_t *lab2;
};

cmir_unified_params cmir_unified_default_params(void)
{
    cmir_unified_params p;
    memset(&p, 0, sizeof p);
    p.d_in = CMIR_FEAT_DIM;
    p.d_v = 64;
    p.hidden = 128;
    p.n_classes = 8;
    p.w_pair = 1.0f;
    p.w_class = 5.0f; /* 1 gave 0.002-0.007 less mAP (bench/quality.sh) */
    p.w_norm = 1e-3f;
    p.w_cross = 1e-3f; /* 0.01 cost 0.004-0.015 mAP (0.03 with L3 at 1), 0.1 more (bench/quality.sh) */
    p.w_reg = 1e-3f;
    p.alpha = 1.0f;
    p.slope = 0.01f;
    return p;
}

cmir_unified_params cmir_unified_get_params(const cmir_unified *u) { return u->p; }

static void free_acts(cmir_unified *u)
{
    float **b[] = {&u->h[0], &u->h[1], &u->V, &u->dV, &u->dh, &u->rec[0], &u->rec[1], &u->drec,
                   &u->logits, &u->dlogits, &u->tgt2, &u->tmpV};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
        cmir__free_aligned(*b[i]);
        *b[i] = NULL;
    }
    cmir__free(u->lab2);
    u->lab2 = NULL;
    u->nmax = 0;
}

void cmir_unified_free(cmir_unified *u)
{
    if (!u)
        return;
    free_acts(u);
    cmir__free_aligned(u->par);
    cmir__free_aligned(u->grad);
    cmir__free(u);
}

int cmir_unified_check_params(cmir_unified_params p)
{
    const char *who = "cmir_unified_params:";
    if (p.d_in < 1 || p.d_in > CMIR_UNIFIED_MAX_D_IN)
        return cmir__error(CMIR_EINVAL, "%s d_in must be in 1..%d, got %d", who, CMIR_UNIFIED_MAX_D_IN, p.d_in);
    if (p.d_v < 1 || p.d_v > CMIR_UNIFIED_MAX_D_V)
        return cmir__error(CMIR_EINVAL, "%s d_v must be in 1..%d, got %d", who, CMIR_UNIFIED_MAX_D_V, p.d_v);
    if (p.hidden < 0)
        return cmir__error(CMIR_EINVAL, "%s hidden must be >= 0 (0: linear encoders), got %d", who, p.hidden);
    if (p.n_classes < 1)
        return cmir__error(CMIR_EINVAL, "%s n_classes must be >= 1, got %d", who, p.n_classes);
    return 0;
}

cmir_unified *cmir_unified_new(cmir_unified_params p, uint64_t seed)
{
    if (cmir_unified_check_params(p))
        return NULL;
    cmir_unified *u = cmir__calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->p = p;
    int hid = p.hidden ? p.hidden : p.d_v;
    for (int s = 0; s < 2; s++) {
        int o = s ? E1W_B : E1W_A;
        u->din[o] = p.d_in;
        u->dout[o] = hid;
        u->din[o + 1] = 1;
        u->dout[o + 1] = hid;
        u->din[o + 2] = p.hidden ? hid : 0; /* second layer only with a hidden layer */
        u->dout[o + 2] = p.d_v;
        u->din[o + 3] = p.hidden ? 1 : 0;
        u->dout[o + 3] = p.d_v;
    }
    u->din[DAB_W] = p.d_v; u->dout[DAB_W] = p.d_in;
    u->din[DAB_B] = 1; u->dout[DAB_B] = p.d_in;
    u->din[DBA_W] = p.d_v; u->dout[DBA_W] = p.d_in;
    u->din[DBA_B] = 1; u->dout[DBA_B] = p.d_in;
    u->din[CLS_W] = p.d_v; u->dout[CLS_W] = p.n_classes;
    u->din[CLS_B] = 1; u->dout[CLS_B] = p.n_classes;
    size_t n = 0;
    for (int i = 0; i < NPAR; i++)
        n += (size_t)u->din[i] * u->dout[i];
    u->n_par = n;
    u->par = cmir__malloc_aligned(n * sizeof(float));
    u->grad = cmir__malloc_aligned(n * sizeof(float));
    cmir_rng *r = cmir_rng_new(seed);
    if (!u->par || !u->grad || !r) {
        cmir_rng_free(r);
        cmir_unified_free(u);
        return NULL;
    }
    memset(u->grad, 0, n * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < NPAR; i++) {
        size_t k = (size_t)u->din[i] * u->dout[i];
        u->w[i] = k ? u->par + off : NULL;
        u->g[i] = k ? u->grad + off : NULL;
        if (k && u->din[i] > 1)
            cmir_init_xavier(r, u->w[i], k, u->din[i], u->dout[i]);
        else if (k)
            cmir_fill(u->w[i], k, 0.0f);
        off += k;
    }
    cmir_rng_free(r);
    return u;
}

static float *abuf(size_t n) { return cmir__malloc_aligned((n ? n : 1) * sizeof(float)); }

static int ensure(cmir_unified *u, int n)
{
    if (n <= u->nmax)
        return 0;
    free_acts(u);
    const cmir_unified_params *p = &u->p;
    int hid = p->hidden ? p->hidden : p->d_v;
    size_t N = (size_t)n;
    u->h[0] = abuf(N * hid);
    u->h[1] = abuf(N * hid);
    u->V = abuf(2 * N * p->d_v);
    u->dV = abuf(2 * N * p->d_v);
    u->dh = abuf(N * hid);
    u->rec[0] = abuf(N * p->d_in);
    u->rec[1] = abuf(N * p->d_in);
    u->drec = abuf(N * p->d_in);
    u->logits = abuf(2 * N * p->n_classes);
    u->dlogits = abuf(2 * N * p->n_classes);
    u->tgt2 = abuf(2 * N * p->n_classes);
    u->tmpV = abuf(2 * N * p->d_v);
    u->lab2 = cmir__malloc(2 * N * sizeof(int32_t));
    if (!u->h[0] || !u->h[1] || !u->V || !u->dV || !u->dh || !u->rec[0] || !u->rec[1] || !u->drec ||
        !u->logits || !u->dlogits || !u->tgt2 || !u->tmpV || !u->lab2) {
        free_acts(u);
        return CMIR_ENOMEM;
    }
    u->nmax = n;
    return 0;
}

#define TRY(x)          \
    do {                \
        int rc_ = (x);  \
        if (rc_)        \
            return rc_; \
    } while (0)

/* V (n x d_v) of one side from Z; keeps the hidden activation in h[side]. */
static int encode(cmir_unified *u, cmir_exec *ex, int side, const float *Z, int n, float *V)
{
    const cmir_unified_params *p = &u->p;
    int o = side ? E1W_B : E1W_A;
    cmir_tensor tz = cmir_tensor_2d((float *)Z, n, p->d_in), tv = cmir_tensor_2d(V, n, p->d_v);
    if (!p->hidden)
        return cmir_dense_forward(ex, &tz, u->w[o], u->w[o + 1], &tv);
    cmir_tensor th = cmir_tensor_2d(u->h[side], n, p->hidden);
    TRY(cmir_dense_forward(ex, &tz, u->w[o], u->w[o + 1], &th));
    TRY(cmir_lrelu_forward(ex, p->slope, &th, &th));
    return cmir_dense_forward(ex, &th, u->w[o + 2], u->w[o + 3], &tv);
}

/* Gradients of one encoder from dV (overwrites its parameter gradients). */
static int encode_back(cmir_unified *u, cmir_exec *ex, int side, const float *Z, int n, float *dV)
{
    const cmir_unified_params *p = &u->p;
    int o = side ? E1W_B : E1W_A;
    cmir_tensor tz = cmir_tensor_2d((float *)Z, n, p->d_in), tdv = cmir_tensor_2d(dV, n, p->d_v);
    if (!p->hidden)
        return cmir_dense_backward(ex, &tz, u->w[o], &tdv, NULL, u->g[o], u->g[o + 1]);
    cmir_tensor th = cmir_tensor_2d(u->h[side], n, p->hidden), tdh = cmir_tensor_2d(u->dh, n, p->hidden);
    TRY(cmir_dense_backward(ex, &th, u->w[o + 2], &tdv, &tdh, u->g[o + 2], u->g[o + 3]));
    TRY(cmir_lrelu_backward(ex, p->slope, &th, &tdh, &tdh));
    return cmir_dense_backward(ex, &tz, u->w[o], &tdh, NULL, u->g[o], u->g[o + 1]);
}

int cmir_unified_encode(cmir_unified *u, cmir_exec *ex, int side, const float *Z, int n, float *V)
{
    if (!u || !Z || !V || n < 1 || (side != 0 && side != 1))
        return cmir__error(CMIR_EINVAL, "cmir_unified_encode: bad arguments");
    TRY(ensure(u, n));
    return encode(u, ex, side, Z, n, V);
}

int cmir_unified_step(cmir_unified *u, cmir_exec *ex, const float *Za, const float *Zb,
                      const int32_t *labels, const float *targets, int n, cmir_unified_losses *out)
{
    const cmir_unified_params *p = &u->p;
    const int unlabelled = !labels && !targets; /* L3 left out */
    if (!u || !Za || !Zb || n < 1 || (!unlabelled && (p->multilabel ? !targets : !labels)))
        return cmir__error(CMIR_EINVAL, "cmir_unified_step: bad arguments");
    TRY(ensure(u, n));
    const int dv = p->d_v, C = p->n_classes;
    float *Va = u->V, *Vb = u->V + (size_t)n * dv, *dVa = u->dV, *dVb = u->dV + (size_t)n * dv;
    TRY(encode(u, ex, 0, Za, n, Va));
    TRY(encode(u, ex, 1, Zb, n, Vb));
    memset(u->dV, 0, sizeof(float) * 2 * (size_t)n * dv);
    cmir_unified_losses L;
    memset(&L, 0, sizeof L);
    const float inv = 1.0f / (float)n;
    cmir_tensor tva = cmir_tensor_2d(Va, n, dv), tvb = cmir_tensor_2d(Vb, n, dv);
    cmir_tensor tdva = cmir_tensor_2d(dVa, n, dv), tdvb = cmir_tensor_2d(dVb, n, dv);
    /* L2: pairing */
    if (p->w_pair)
        TRY(cmir_sqdist(&tva, &tvb, p->w_pair * inv, &L.pair, &tdva, &tdvb));
    /* L3: classification of [Va; Vb] */
    if (p->w_class && !unlabelled) {
        cmir_tensor tv2 = cmir_tensor_2d(u->V, 2 * n, dv), tl = cmir_tensor_2d(u->logits, 2 * n, C);
        cmir_tensor tdl = cmir_tensor_2d(u->dlogits, 2 * n, C);
        TRY(cmir_dense_forward(ex, &tv2, u->w[CLS_W], u->w[CLS_B], &tl));
        memset(u->dlogits, 0, sizeof(float) * 2 * (size_t)n * C);
        if (p->multilabel) {
            memcpy(u->tgt2, targets, sizeof(float) * (size_t)n * C);
            memcpy(u->tgt2 + (size_t)n * C, targets, sizeof(float) * (size_t)n * C);
            cmir_tensor tt = cmir_tensor_2d(u->tgt2, 2 * n, C);
            TRY(cmir_sigmoid_xent(&tl, &tt, p->w_class, &L.cls, &tdl));
        } else {
            memcpy(u->lab2, labels, sizeof(int32_t) * (size_t)n);
            memcpy(u->lab2 + n, labels, sizeof(int32_t) * (size_t)n);
            TRY(cmir_softmax_xent(&tl, u->lab2, p->w_class, &L.cls, &tdl));
        }
        /* dV += dlogits Wc^T (both halves in one call) */
        cmir_tensor ttmp = cmir_tensor_2d(u->tmpV, 2 * n, dv);
        TRY(cmir_dense_backward(ex, &tv2, u->w[CLS_W], &tdl, &ttmp, u->g[CLS_W], u->g[CLS_B]));
        for (size_t i = 0; i < 2 * (size_t)n * dv; i++)
            u->dV[i] += u->tmpV[i];
    } else {
        memset(u->g[CLS_W], 0, sizeof(float) * (size_t)dv * C);
        memset(u->g[CLS_B], 0, sizeof(float) * (size_t)C);
    }
    /* L4: code norms */
    if (p->w_norm) {
        float l1 = 0, l2 = 0;
        memset(u->tmpV, 0, sizeof(float) * (size_t)n * dv);
        cmir_tensor zero = cmir_tensor_2d(u->tmpV, n, dv);
        TRY(cmir_sqdist(&tva, &zero, p->w_norm * inv, &l1, &tdva, NULL));
        TRY(cmir_sqdist(&tvb, &zero, p->w_norm * inv, &l2, &tdvb, NULL));
        L.norm = l1 + l2;
    }
    /* L5: cross reconstruction w_ab Va -> Zb, w_ba Vb -> Za */
    for (int s = 0; s < 2; s++) {
        int W = s ? DBA_W : DAB_W;
        if (!p->w_cross) {
            memset(u->g[W], 0, sizeof(float) * (size_t)dv * p->d_in);
            memset(u->g[W + 1], 0, sizeof(float) * (size_t)p->d_in);
            continue;
        }
        const float *target = s ? Za : Zb;
        cmir_tensor tv = s ? tvb : tva, tdv = s ? tdvb : tdva;
        cmir_tensor trec = cmir_tensor_2d(u->rec[s], n, p->d_in), tdrec = cmir_tensor_2d(u->drec, n, p->d_in);
        cmir_tensor ttg = cmir_tensor_2d((float *)target, n, p->d_in);
        TRY(cmir_dense_forward(ex, &tv, u->w[W], u->w[W + 1], &trec));
        memset(u->drec, 0, sizeof(float) * (size_t)n * p->d_in);
        float l;
        TRY(cmir_sqdist(&trec, &ttg, p->w_cross * inv, &l, &tdrec, NULL));
        L.cross += l;
        /* dV += drec W^T */
        cmir_tensor ttmp = cmir_tensor_2d(u->tmpV, n, dv);
        TRY(cmir_dense_backward(ex, &tv, u->w[W], &tdrec, &ttmp, u->g[W], u->g[W + 1]));
        for (size_t i = 0; i < (size_t)n * dv; i++)
            tdv.data[i] += u->tmpV[i];
    }
    /* Encoders back, then R on their weights (per-element mean). */
    TRY(encode_back(u, ex, 0, Za, n, dVa));
    TRY(encode_back(u, ex, 1, Zb, n, dVb));
    if (p->w_reg) {
        int ws[4] = {E1W_A, E2W_A, E1W_B, E2W_B};
        for (int i = 0; i < 4; i++) {
            size_t k = (size_t)u->din[ws[i]] * u->dout[ws[i]];
            if (!k)
                continue;
            float l;
            TRY(cmir_weight_penalty(u->w[ws[i]], k, p->alpha, p->w_reg / (float)k, &l, u->g[ws[i]]));
            L.reg += l;
        }
    }
    L.total = L.pair + L.cls + L.norm + L.cross + L.reg;
    if (out)
        *out = L;
    return isfinite(L.total) ? 0 : cmir__error(CMIR_EINVAL, "cmir_unified_step: the loss is not finite");
}

/* ---- parameters ---- */
int cmir_unified_n_params(const cmir_unified *u)
{
    int k = 0;
    for (int i = 0; i < NPAR; i++)
        k += u->din[i] > 0;
    return k;
}

int cmir_unified_param(cmir_unified *u, int i, const char **name, float **w, float **g, size_t *n)
{
    int k = 0;
    for (int j = 0; j < NPAR; j++) {
        if (!u->din[j])
            continue;
        if (k++ == i) {
            if (name) *name = PNAME[j];
            if (w) *w = u->w[j];
            if (g) *g = u->g[j];
            if (n) *n = (size_t)u->din[j] * u->dout[j];
            return 0;
        }
    }
    return cmir__error(CMIR_EINVAL, "cmir_unified_param: no parameter %d", i);
}

int cmir_unified_register(cmir_unified *u, cmir_optim *o)
{
    for (int j = 0; j < NPAR; j++)
        if (u->din[j])
            TRY(cmir_optim_add(o, u->w[j], u->g[j], (size_t)u->din[j] * u->dout[j]));
    return 0;
}

int cmir_unified_save(const cmir_unified *u, cmir_tensorset *ts)
{
    for (int j = 0; j < NPAR; j++) {
        if (!u->din[j])
            continue;
        int64_t s[2] = {u->din[j], u->dout[j]};
        cmir_tensor t = u->din[j] == 1 ? cmir_tensor_make(u->w[j], 1, s + 1) : cmir_tensor_make(u->w[j], 2, s);
        TRY(cmir_tensorset_put(ts, PNAME[j], &t));
    }
    return 0;
}

int cmir_unified_load(cmir_unified *u, const cmir_tensorset *ts)
{
    for (int j = 0; j < NPAR; j++) {
        if (!u->din[j])
            continue;
        int64_t s[2] = {u->din[j], u->dout[j]};
        if (u->din[j] == 1)
            TRY(cmir_tensorset_expect(ts, PNAME[j], 1, s + 1));
        else
            TRY(cmir_tensorset_expect(ts, PNAME[j], 2, s));
        const cmir_tensor *t = cmir_tensorset_get(ts, PNAME[j]);
        size_t k = (size_t)u->din[j] * u->dout[j];
        for (size_t i = 0; i < k; i++)
            if (!isfinite(t->data[i]))
                return cmir__error(CMIR_EFORMAT, "'%s' holds a non-finite value", PNAME[j]);
        memcpy(u->w[j], t->data, k * sizeof(float));
    }
    return 0;
}
