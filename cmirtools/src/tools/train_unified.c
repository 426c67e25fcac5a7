/* cmir_train_unified(): the paper's step 2 on anyone's features. Two
 * feature files of paired rows and their labels are read and standardised
 * per dimension, the unified space is trained on every row by the stage-2
 * loop of cmir_train() (train_stage2.c), and unified.mat is written. */
#include "train_internal.h"

#include <math.h>
#include <string.h>

/* The inputs: both feature matrices (N x D) and the labels (N class
 * numbers, or N x C flags when multi-label), checked. */
typedef struct uni_in {
    cmir_tensorset *ta, *tb, *tl;
    const cmir_tensor *A, *B, *L;
    const char *lpath;
    int64_t N;
    int D, C;
} uni_in;

static const cmir_tensor *get_matrix(const cmir_tensorset *ts, const char *path, const char *name)
{
    const cmir_tensor *t = cmir_tensorset_get(ts, name);
    if (!t)
        cmir__error(CMIR_ENOTFOUND, "%s: no variable '%s'", path, name);
    else if (t->ndim != 2 || t->shape[0] < 1 || t->shape[1] < 1) {
        cmir__error(CMIR_EFORMAT, "%s: '%s' must be a non-empty matrix", path, name);
        t = NULL;
    }
    return t;
}

static void standardise(float *Z, int64_t n, int d)
{
    for (int j = 0; j < d; j++) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            s += Z[i * d + j];
            s2 += (double)Z[i * d + j] * Z[i * d + j];
        }
        double mu = s / (double)n, var = s2 / (double)n - mu * mu;
        double sd = var > CMIR__TRAIN_FEAT_VAR_MIN ? sqrt(var) : 1.0;
        for (int64_t i = 0; i < n; i++)
            Z[i * d + j] = (float)((Z[i * d + j] - mu) / sd);
    }
}

/* The class count: the labels' largest class number, or their columns. */
static int count_classes(uni_in *in, int ml)
{
    const cmir_tensor *L = in->L;
    if (ml) {
        in->C = (int)L->shape[1];
    } else {
        for (int64_t i = 0; i < in->N; i++) {
            float v = L->data[i];
            if (!(v >= 1 && v <= CMIR__TRAIN_MAX_LABEL) || v != floorf(v))
                return cmir__error(CMIR_EFORMAT, "%s: label %g of row %lld is not a class number 1..C", in->lpath,
                                   v, (long long)i + 1);
            if ((int)v > in->C)
                in->C = (int)v;
        }
    }
    return in->C < 2 ? cmir__error(CMIR_EINVAL, "%s: needs at least 2 classes", in->lpath) : 0;
}

static int read_inputs(uni_in *in, const char *features_a, const char *features_b, const char *labels_path, int ml)
{
    in->ta = cmir_tensorset_load(features_a);
    in->tb = in->ta ? cmir_tensorset_load(features_b) : NULL;
    in->tl = in->tb && labels_path ? cmir_tensorset_load(labels_path) : NULL;
    in->lpath = labels_path ? labels_path : features_a;
    if (!in->ta || !in->tb || (labels_path && !in->tl))
        return cmir__failed(CMIR_EIO);
    in->A = get_matrix(in->ta, features_a, "features");
    in->B = get_matrix(in->tb, features_b, "features");
    in->L = cmir_tensorset_get(labels_path ? in->tl : in->ta, "labels");
    if (!in->A || !in->B)
        return CMIR_EFORMAT;
    if (!in->L)
        return cmir__error(CMIR_ENOTFOUND, "%s: no variable 'labels'", in->lpath);
    const int64_t N = in->N = in->A->shape[0];
    const int D = in->D = (int)in->A->shape[1];
    if (in->B->shape[0] != N || in->B->shape[1] != D)
        return cmir__error(CMIR_EFORMAT, "%s is %lldx%lld but %s is %lldx%lld: the rows must pair up", features_a,
                           (long long)N, (long long)D, features_b, (long long)in->B->shape[0],
                           (long long)in->B->shape[1]);
    if (ml ? (in->L->ndim != 2 || in->L->shape[0] != N) : (cmir_tensor_numel(in->L) != N))
        return cmir__error(CMIR_EFORMAT, "%s: 'labels' must hold %lld %s", in->lpath, (long long)N,
                           ml ? "rows of 0/1 class flags" : "class numbers");
    return count_classes(in, ml);
}

/* unified.mat: featuresx, featuresy (N x d_v), the labels as read, and the
 * unified network's weights. */
static int write_unified(cmir_unified *u, cmir_exec *ex, float *const Z[2], const uni_in *in, const char *path)
{
    const int dv = cmir_unified_get_params(u).d_v;
    float *V[2] = {NULL, NULL};
    cmir_tensorset *out = cmir_tensorset_new();
    int rc = out ? cmir__train_encode_all(u, ex, Z, in->N, V) : CMIR_ENOMEM;
    if (!rc) {
        cmir_tensor tx = cmir_tensor_2d(V[0], in->N, dv), ty = cmir_tensor_2d(V[1], in->N, dv);
        rc = cmir_tensorset_put(out, "featuresx", &tx);
        if (!rc) rc = cmir_tensorset_put(out, "featuresy", &ty);
        if (!rc) rc = cmir_tensorset_put(out, "labels", in->L);
        if (!rc) rc = cmir_unified_save(u, out);
        if (!rc) rc = cmir_tensorset_save(out, path);
    }
    cmir_tensorset_free(out);
    cmir__free(V[0]);
    cmir__free(V[1]);
    return rc;
}

/* Every row a pair, in one order that each epoch shuffles further; labels
 * lab[row] (0-based; 0 when multi-label) and, multi-label, the flags. */
static void row_pairs(const uni_in *in, int ml, int32_t *lab, int64_t *rows, cmir__train_pairs *ps)
{
    for (int64_t i = 0; i < in->N; i++) {
        lab[i] = ml ? 0 : (int32_t)in->L->data[i] - 1;
        rows[i] = i;
    }
    memset(ps, 0, sizeof *ps);
    ps->rows = rows;
    ps->n_rows = in->N;
    ps->keep_order = 1;
    ps->row_class = lab;
    ps->row_targets = ml ? in->L->data : NULL;
    ps->per_epoch = in->N;
}

int cmir_train_unified(const char *features_a, const char *features_b, const char *labels_path,
                       const char *unified_path, cmir_train_params p, cmir_progress_fn progress, void *user,
                       cmir_train_report *rep_out)
{
    if (!features_a || !features_b || !unified_path)
        return cmir__error(CMIR_EINVAL, "cmir_train_unified: need two feature files and an output");
    int rc = cmir_train_unified_check_params(p);
    if (rc)
        return rc;
    cmir_train_report rep;
    memset(&rep, 0, sizeof rep);
    double t0 = cmir__train_now();
    const int ml = p.unified.multilabel;
    uni_in in;
    memset(&in, 0, sizeof in);
    rc = read_inputs(&in, features_a, features_b, labels_path, ml);
    const int64_t N = in.N;
    int32_t *lab = rc ? NULL : cmir__malloc(sizeof(int32_t) * (size_t)N);
    int64_t *rows = rc ? NULL : cmir__malloc(sizeof(int64_t) * (size_t)N);
    float *Z[2] = {rc ? NULL : cmir__malloc(sizeof(float) * (size_t)N * in.D),
                   rc ? NULL : cmir__malloc(sizeof(float) * (size_t)N * in.D)};
    if (!rc && (!lab || !rows || !Z[0] || !Z[1]))
        rc = CMIR_ENOMEM;
    for (int k = 0; !rc && k < 2; k++) {
        memcpy(Z[k], (k ? in.B : in.A)->data, sizeof(float) * (size_t)N * in.D);
        standardise(Z[k], N, in.D);
    }
    cmir_unified_params up = p.unified;
    up.d_in = in.D;
    up.n_classes = in.C;
    cmir__train_job J;
    memset(&J, 0, sizeof J);
    J.p = p;
    J.p.checkpoint = J.p.resume = NULL; /* stage 2 alone: no checkpoints */
    J.p.epochs2 = p.epochs2 ? p.epochs2
                            : cmir__train_epochs_for_steps((N + p.batch - 1) / p.batch, CMIR__TRAIN_AUTO_STEPS2,
                                                           CMIR__TRAIN_AUTO_EPOCHS2);
    J.progress = progress;
    J.user = user;
    J.total = CMIR__TRAIN_PROGRESS2 * (double)J.p.epochs2 * (double)N;
    cmir_unified *u = rc ? NULL : cmir_unified_new(up, p.seed + CMIR__UNIFIED_SEED_OFFSET);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = p.threads;
    J.ex = rc ? NULL : cmir_exec_new(ep);
    J.rng = cmir_rng_new(p.seed);
    if (!rc && (!u || !J.ex || !J.rng))
        rc = u ? CMIR_ENOMEM : cmir__failed(CMIR_EINVAL);
    cmir__train_pairs ps;
    if (!rc) {
        row_pairs(&in, ml, lab, rows, &ps);
        rc = cmir__train_stage2_run(&J, u, &ps, Z, &rep);
    }
    rep.n_train = N;
    if (!rc)
        rc = write_unified(u, J.ex, Z, &in, unified_path);
    rep.seconds = cmir__train_now() - t0;
    if (rep_out)
        *rep_out = rep;
    cmir__free(lab); cmir__free(rows); cmir__free(Z[0]); cmir__free(Z[1]);
    cmir_rng_free(J.rng);
    cmir_exec_free(J.ex);
    cmir_unified_free(u);
    cmir_tensorset_free(in.ta);
    cmir_tensorset_free(in.tb);
    cmir_tensorset_free(in.tl);
    return rc;
}
