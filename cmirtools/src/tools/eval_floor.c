/* The training-free floors of cmir_eval(): each tile's PAN mean and
 * deviation and MS band means, read from the archive, then
 * cmir_floor_eval() (knn layer) fitted on the training tiles. */
#include "eval_internal.h"
#include "../base/internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* pan (n x 2) and ms (n x B) statistics of tiles ids[0..n). */
static int tile_stats(cmir_archive *a, const int64_t *ids, int64_t n, double *pan, double *ms)
{
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    const size_t np = (size_t)ai->pan_h * ai->pan_w * ai->pan_bands, px = (size_t)ai->ms_h * ai->ms_w;
    const int B = ai->ms_bands;
    float *buf = cmir__malloc(sizeof(float) * (np > px * B ? np : px * B));
    if (!buf)
        return CMIR_ENOMEM;
    int rc = 0;
    for (int64_t i = 0; !rc && i < n; i++) {
        if ((rc = cmir_archive_read_tile(a, CMIR_PAN, ids[i], buf)))
            break;
        double s = 0.0, ss = 0.0;
        for (size_t k = 0; k < np; k++)
            s += buf[k];
        double mu = s / (double)np;
        for (size_t k = 0; k < np; k++)
            ss += (buf[k] - mu) * (buf[k] - mu);
        pan[(size_t)i * 2] = mu;
        pan[(size_t)i * 2 + 1] = sqrt(ss / (double)np);
        if ((rc = cmir_archive_read_tile(a, CMIR_MS, ids[i], buf)))
            break;
        for (int b = 0; b < B; b++) {
            double t = 0.0;
            for (size_t k = 0; k < px; k++) /* H x W x bands, band fastest */
                t += buf[k * B + b];
            ms[(size_t)i * B + b] = t / (double)px;
        }
    }
    cmir__free(buf);
    return rc;
}

/* Labels of tiles ids[0..n): classes into cls, or multi-label rows into
 * multi (n x C) when multi is not NULL. */
static int tile_labels(cmir_archive *a, const int64_t *ids, int64_t n, int32_t *cls, uint8_t *multi, int C)
{
    for (int64_t i = 0; i < n; i++) {
        cls[i] = cmir_archive_label(a, ids[i]);
        if (multi) {
            int rc = cmir_archive_multilabel(a, ids[i], multi + (size_t)i * C);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int cmir__eval_floor(cmir_exec *ex, cmir_archive *a, const int64_t *train, int64_t n_train, const int64_t *test,
                     int64_t n_test, int multilabel, cmir_eval_params p, cmir_eval_report *out)
{
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    const int B = ai->ms_bands, C = ai->n_classes;
    const int ml = multilabel && ai->has_multilabel && C > 0;
    const size_t nt = (size_t)(n_train ? n_train : 1), ne = (size_t)(n_test ? n_test : 1);
    double *tp = cmir__malloc(sizeof(double) * 2 * nt), *tm = cmir__malloc(sizeof(double) * B * nt);
    double *ep = cmir__malloc(sizeof(double) * 2 * ne), *em = cmir__malloc(sizeof(double) * B * ne);
    int32_t *cls = cmir__malloc(sizeof(int32_t) * ne);
    uint8_t *multi = ml ? cmir__malloc(ne * (size_t)C) : NULL;
    double mapk[4 * CMIR_EVAL_MAX_CUTOFFS], pk[4 * CMIR_EVAL_MAX_CUTOFFS];
    cmir_metrics_result res[4];
    int rc = (!tp || !tm || !ep || !em || !cls || (ml && !multi)) ? CMIR_ENOMEM : 0;
    if (!rc)
        rc = tile_stats(a, train, n_train, tp, tm);
    if (!rc)
        rc = tile_stats(a, test, n_test, ep, em);
    if (!rc)
        rc = tile_labels(a, test, n_test, cls, multi, C);
    if (!rc) {
        cmir_floor_tiles tr = {n_train, tp, tm}, te = {n_test, ep, em};
        cmir_metrics_labels lab;
        memset(&lab, 0, sizeof lab);
        if (ml) {
            lab.q_multi = lab.db_multi = multi;
            lab.n_labels = C;
        } else {
            lab.q_class = lab.db_class = cls;
        }
        cmir_metrics_params mp = cmir_metrics_default_params();
        mp.cutoffs = p.cutoffs;
        mp.n_cutoffs = p.n_cutoffs;
        mp.paper_queries = p.paper_queries;
        mp.seed = p.seed;
        rc = cmir_floor_eval(ex, &tr, &te, B, &lab, mp, cmir_floor_default_params(), NULL, NULL, res, mapk, pk,
                             NULL);
    }
    for (int k = 0; !rc && k < 4; k++) {
        cmir_eval_direction *d = &out->dir[k];
        d->has_floor = 1;
        d->floor = res[k];
        memcpy(d->floor_map_at, mapk + k * p.n_cutoffs, sizeof(double) * (size_t)p.n_cutoffs);
        memcpy(d->floor_p_at, pk + k * p.n_cutoffs, sizeof(double) * (size_t)p.n_cutoffs);
    }
    if (!rc)
        out->floor_fit_tiles = n_train;
    else
        cmir__error_prefix("floors");
    cmir__free(tp); cmir__free(tm); cmir__free(ep); cmir__free(em);
    cmir__free(cls); cmir__free(multi);
    return rc;
}

int cmir_eval_floor(const char *archive_path, const int64_t *train, int64_t n_train, const int64_t *test,
                    int64_t n_test, int multilabel, cmir_eval_params p, cmir_eval_report *out)
{
    int rc = cmir_eval_check_params(p);
    if (rc)
        return rc;
    if (!archive_path || !out || (!train && n_train > 0) || (!test && n_test > 0) || n_train < 0 || n_test < 0)
        return cmir__error(CMIR_EINVAL, "cmir_eval_floor: need an archive, tile lists and a report");
    cmir_archive *a = cmir_archive_open(archive_path);
    if (!a)
        return cmir__failed(CMIR_EIO);
    const cmir_archive_info *ai = cmir_archive_get_info(a);
    for (int64_t i = 0; !rc && i < n_train + n_test; i++) {
        int64_t t = i < n_train ? train[i] : test[i - n_train];
        if (t < 0 || t >= ai->n_tiles)
            rc = cmir__error(CMIR_EINVAL, "%s: tile %lld does not exist (%lld tiles)", archive_path, (long long)t,
                             (long long)ai->n_tiles);
    }
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = p.threads;
    cmir_exec *ex = rc ? NULL : cmir_exec_new(ep);
    if (!rc && !ex)
        rc = CMIR_ENOMEM;
    if (!rc) {
        memset(out, 0, sizeof *out);
        out->n_items = out->n_items_b = n_test;
        out->n_cutoffs = p.n_cutoffs;
        memcpy(out->cutoffs, p.cutoffs, sizeof out->cutoffs);
        static const char *names[4] = {"PAN->MS", "MS->PAN", "PAN->PAN", "MS->MS"};
        for (int k = 0; k < 4; k++)
            snprintf(out->dir[k].name, sizeof out->dir[k].name, "%s", names[k]);
        rc = cmir__eval_floor(ex, a, train, n_train, test, n_test, multilabel, p, out);
    }
    cmir_exec_free(ex);
    cmir_archive_close(a);
    return rc;
}
