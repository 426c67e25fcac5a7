/* cmir_search under MPI over a sharded index: each rank opens its own
 * shard; queries embedded where their data is and sent to all; each
 * rank's exact top k gathered and merged by (distance, global row); the
 * hits' attributes packed by their ranks and written by rank 0. */
#include "search_internal.h"
#include "cmir/dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float d;
    int64_t r;
} cand;

static int by_dist_row(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    return x->d < y->d ? -1 : x->d > y->d ? 1 : (x->r > y->r) - (x->r < y->r);
}

/* The job's state: the manifest, this rank's shard, model, buffers. */
typedef struct job {
    cmir__shard *sh;
    int n_sh, rank, size, dim, m, k;
    int64_t first, count; /* this rank's rows in the whole */
    cmir_model *model;    /* freed once the queries are embedded */
    char *model_id;       /* what is kept of it: identity, d_v, row kinds */
    int d_v;
    const char *kind[2];
    cmir_index *ix;
    cmir_exec *ex;
    float *codes;      /* m x dim */
    int *qmod;         /* m */
    char **desc;       /* m: rank 0's descriptions of the non-row queries */
    int64_t *rows;     /* size x m x k candidates, then m x k merged */
    float *dist;
    char *pack;        /* this rank's packed hits */
    size_t pack_len, pack_cap;
} job;

/* Reads the manifest and the model (each rank), keeping what the search
 * needs of the model once the queries are embedded. */
static int open_model(job *J, const char *model_path, const char *index_path, int threads)
{
    int rc = cmir__manifest_read(index_path, &J->sh, &J->n_sh);
    if (!rc && J->n_sh % J->size != 0)
        rc = cmir__error(CMIR_EINVAL, "%s lists %d shards for %d ranks: run as many ranks as shards, or a divisor "
                         "(mpirun -np %d)", index_path, J->n_sh, J->size, J->n_sh);
    cmir_exec_params ep = cmir_exec_default_params();
    ep.threads = threads;
    if (!rc && !(J->ex = cmir_exec_new(ep)))
        rc = CMIR_ENOMEM;
    if (!rc && !(J->model = cmir_model_load(model_path)))
        rc = cmir__failed(CMIR_EFORMAT);
    if (!rc && !(J->model_id = cmir__strdup(cmir_model_get_info(J->model)->id)))
        rc = CMIR_ENOMEM;
    if (!rc) {
        J->d_v = cmir_model_get_info(J->model)->d_v;
        J->kind[0] = cmir__search_row_kind(J->model, 0);
        J->kind[1] = cmir__search_row_kind(J->model, 1);
    }
    return rc;
}

/* Opens this rank's shards (each rank its own). */
static int open_shards(job *J, const char *model_path, const char *index_path, int scan)
{
    const int g = J->n_sh / J->size, from = J->rank * g; /* this rank's shards: from..from+g-1 */
    char what[4200];
    snprintf(what, sizeof what, "searching %s%s", J->sh[from].path, g > 1 ? " and the next shards" : "");
    int rc = cmir_dist_doing(what); /* for the line a dead rank gets (cmir_dist_watch) */
    /* unless int8 codes are asked for, a rank holds its shards' matrix and
     * modalities, and no norms (each tile's are computed in the scan) */
    if (!(J->ix = cmir__index_open_range(index_path, from, from + g, scan != CMIR_SCAN_INT8)))
        rc = cmir__failed(CMIR_EIO);
    int64_t rows = rc ? 0 : J->sh[from + g - 1].first + J->sh[from + g - 1].count - J->sh[from].first;
    if (!rc && cmir_index_count(J->ix) != rows)
        rc = cmir__error(CMIR_EFORMAT, "%s holds %lld rows, %s says %lld", J->sh[from].path,
                         (long long)cmir_index_count(J->ix), index_path, (long long)rows);
    if (!rc)
        rc = cmir__search_check_ids(J->model_id, J->d_v, J->ix, model_path);
    if (!rc) /* a rank holds its shards' matrix and, unless asked, no codes beside it */
        rc = cmir_index_set_scan(J->ix, scan == CMIR_SCAN_AUTO ? CMIR_SCAN_FLOAT : scan);
    if (!rc) {
        J->first = J->sh[from].first;
        J->count = rows;
        J->dim = cmir_index_dim(J->ix);
    }
    return rc;
}

/* Rank 0 embeds the raster and spoken queries, before any rank holds its
 * shards: then the model is freed everywhere, so that the CNN weights
 * never sit beside a shard's matrix. */
static int embed_others(job *J, const cmir_query *qs, const char *const *oo)
{
    int rc = 0;
    for (int i = 0; !rc && i < J->m; i++) {
        const cmir_query *q = &qs[i];
        float *c = J->codes + (size_t)i * J->d_v;
        J->qmod[i] = -1;
        if (q->kind == CMIR_QUERY_ROW || J->rank != 0)
            continue;
        char d[1024];
        float *lc = NULL;
        int nl = 0;
        rc = cmir__search_embed_query(J->model, J->ex, NULL, q, i, oo, c, &J->qmod[i], d, sizeof d, &lc, &nl);
        cmir__free(lc);
        if (!rc && nl > 1)
            rc = cmir__error(CMIR_EUNSUPPORTED, "query %d names several labels: a sharded search under MPI "
                             "cannot rank phrases; search the manifest in one process", i);
        if (!rc && !(J->desc[i] = cmir__strdup(d)))
            rc = CMIR_ENOMEM;
    }
    cmir_model_free(J->model);
    J->model = NULL;
    return cmir_dist_agree(rc);
}

/* The row queries' codes from the rank holding them, then every rank gets
 * every code by a rank-ordered sum (the others add zeros, which keeps each
 * code exact); rank 0 describes the queries. */
static int embed_rows(job *J, const cmir_query *qs, cmir_hits *H, const char *index_path)
{
    for (int i = 0; i < J->m; i++) {
        const cmir_query *q = &qs[i];
        if (q->kind == CMIR_QUERY_ROW && q->row >= J->first && q->row < J->first + J->count) {
            memcpy(J->codes + (size_t)i * J->dim, cmir_index_vector(J->ix, q->row - J->first),
                   sizeof(float) * (size_t)J->dim);
            J->qmod[i] = cmir_index_modality(J->ix, q->row - J->first);
        }
    }
    int rc;
    if ((rc = cmir_dist_sum_float(J->codes, (int64_t)J->m * J->dim)) || (rc = cmir_dist_max_int(J->qmod, J->m)))
        return rc;
    for (int i = 0; i < J->m; i++)
        if (J->qmod[i] < 0) /* no rank holds the row */
            return cmir__error(CMIR_EINVAL, "%s: no row %lld (the index has %lld)", index_path,
                               (long long)qs[i].row, (long long)J->sh[J->n_sh - 1].first + J->sh[J->n_sh - 1].count);
    for (int i = 0; J->rank == 0 && i < J->m; i++) {
        char d[1024];
        if (qs[i].kind == CMIR_QUERY_ROW)
            cmir__search_row_desc(J->kind[J->qmod[i] != 0], qs[i].row, index_path, d, sizeof d);
        if ((rc = cmir__hits_set_query(H, i, J->qmod[i], qs[i].kind == CMIR_QUERY_ROW ? d : J->desc[i])) != 0)
            break;
    }
    return rc;
}

/* This rank's exact top k per query, in global rows, gathered on every
 * rank: J->rows/dist hold size blocks of m x k. */
static int search_local(job *J, const cmir_query *qs, cmir_search_params p, cmir_progress_fn progress, void *user)
{
    size_t mk = (size_t)J->m * (size_t)J->k;
    int64_t *r = cmir__malloc(sizeof(int64_t) * mk), *excl = cmir__malloc(sizeof(int64_t) * (size_t)J->m);
    float *d = cmir__malloc(sizeof(float) * mk);
    int rc = r && d && excl ? 0 : CMIR_ENOMEM, blk = cmir__search_block(J->k, J->m);
    for (int i = 0; !rc && i < J->m; i++) { /* the row each query leaves out, in this shard's rows */
        int64_t x = qs[i].kind == CMIR_QUERY_ROW ? qs[i].row : p.filter.exclude;
        excl[i] = x >= J->first && x < J->first + J->count ? x - J->first : -1;
    }
    if (!rc && progress && progress(0.0, NULL, user)) /* the search starts */
        rc = cmir__error(CMIR_ECANCEL, "cancelled");
    for (int b = 0; !rc && b < J->m; b += blk) {
        int nb = J->m - b < blk ? J->m - b : blk;
        rc = cmir__search_batch(J->ix, J->ex, J->codes + (size_t)b * J->dim, nb, J->qmod + b, excl + b, p.filter,
                                J->k, r + (size_t)b * J->k, d + (size_t)b * J->k);
        for (size_t t = (size_t)b * J->k; !rc && t < (size_t)(b + nb) * J->k; t++)
            if (r[t] >= 0)
                r[t] += J->first; /* global rows */
        if (!rc && progress && progress((double)(b + nb) / J->m, NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    rc = cmir_dist_agree(rc);
    if (!rc)
        rc = cmir_dist_allgather(r, sizeof(int64_t) * mk, J->rows);
    if (!rc)
        rc = cmir_dist_allgather(d, sizeof(float) * mk, J->dist);
    cmir__free(r);
    cmir__free(d);
    cmir__free(excl);
    return rc;
}

/* Merges the candidates of every rank into rows/dist[0 .. m x k) (every
 * rank computes the same), and packs the hits this rank holds. */
static int merge_and_pack(job *J)
{
    cand *c = cmir__malloc(sizeof(cand) * (size_t)J->k * (size_t)J->size);
    int rc = c ? 0 : CMIR_ENOMEM;
    for (int i = 0; !rc && i < J->m; i++) {
        int n = 0;
        for (int s = 0; s < J->size; s++)
            for (int t = 0; t < J->k; t++) {
                size_t at = ((size_t)s * J->m + i) * J->k + t;
                if (J->rows[at] >= 0)
                    c[n++] = (cand){J->dist[at], J->rows[at]};
            }
        qsort(c, (size_t)n, sizeof *c, by_dist_row);
        for (int t = 0; t < J->k; t++) { /* block 0 is read above only for query i, written here */
            J->rows[(size_t)i * J->k + t] = t < n ? c[t].r : -1;
            J->dist[(size_t)i * J->k + t] = t < n ? c[t].d : INFINITY;
        }
        for (int t = 0; !rc && t < n && t < J->k; t++)
            if (c[t].r >= J->first && c[t].r < J->first + J->count)
                rc = cmir__hits_pack(J->ix, c[t].r - J->first, &J->pack, &J->pack_len, &J->pack_cap);
    }
    cmir__free(c);
    return cmir_dist_agree(rc);
}

/* Rank 0: the hits, their attributes unpacked in order from their ranks. */
static int collect(job *J, cmir_hits *H)
{
    void *all = NULL;
    size_t *cnt = cmir__calloc((size_t)J->size, sizeof(size_t));
    int rc = cnt ? 0 : CMIR_ENOMEM;
    rc = cmir_dist_agree(rc);
    if (!rc)
        rc = cmir_dist_gatherv(J->pack, J->pack_len, &all, cnt, 0);
    size_t *at = J->rank == 0 && !rc ? cmir__calloc((size_t)J->size, sizeof(size_t)) : NULL;
    if (J->rank == 0 && !rc && !at)
        rc = CMIR_ENOMEM;
    for (int i = 0; !rc && J->rank == 0 && i < J->m; i++)
        for (int t = 0; !rc && t < J->k && J->rows[(size_t)i * J->k + t] >= 0; t++) {
            int64_t row = J->rows[(size_t)i * J->k + t];
            int s = 0;
            while (s + 1 < J->n_sh && J->sh[s + 1].first <= row)
                s++;
            s /= J->n_sh / J->size; /* the rank holding shard s */
            size_t off = 0;
            for (int u = 0; u < s; u++)
                off += cnt[u];
            rc = cmir__hits_add_packed(H, i, J->dist[(size_t)i * J->k + t], row, (const char *)all + off, cnt[s],
                                       &at[s]);
        }
    cmir__free(at);
    cmir_dist_free(all);
    cmir__free(cnt);
    return rc;
}

int cmir_search_ranks(const char *model_path, const char *index_path, const cmir_query *queries, int n_queries,
                      const char *out_path, cmir_search_params p, cmir_progress_fn progress, void *user)
{
    if (!model_path || !index_path || !queries || n_queries < 1 || !out_path)
        return cmir__error(CMIR_EINVAL, "cmir_search_ranks: need a model, an index, queries and an output");
    if (cmir_search_check_params(p))
        return CMIR_EINVAL;
    if (p.quicklook || p.qgs) /* both draw the query's tile beside hits that other ranks hold */
        return cmir__error(CMIR_EUNSUPPORTED, "%s: no %s from a sharded search under MPI; search the manifest in "
                           "one process", p.quicklook ? p.quicklook : p.qgs,
                           p.quicklook ? "quick-look" : "QGIS project");
    if (p.query_file && n_queries != 1)
        return cmir__error(CMIR_EINVAL, "%s: a query file holds one query, not %d", p.query_file, n_queries);
    job J;
    memset(&J, 0, sizeof J);
    J.rank = cmir_dist_rank();
    J.size = cmir_dist_size();
    J.m = n_queries;
    J.k = p.k;
    cmir__gdal_quiet_begin();
    int rc = cmir_dist_agree(open_model(&J, model_path, index_path, p.threads));
    cmir_hits *H = NULL;
    size_t mk = (size_t)J.m * (size_t)J.k;
    if (!rc) {
        J.codes = cmir__calloc((size_t)J.m * (size_t)J.d_v, sizeof(float));
        J.qmod = cmir__malloc(sizeof(int) * (size_t)J.m);
        J.desc = cmir__calloc((size_t)J.m, sizeof(char *));
        rc = cmir_dist_agree(J.codes && J.qmod && J.desc ? 0 : CMIR_ENOMEM);
    }
    if (!rc)
        rc = embed_others(&J, queries, p.open_options);
    if (!rc)
        rc = cmir_dist_agree(open_shards(&J, model_path, index_path, p.scan));
    if (!rc) {
        J.rows = cmir__malloc(sizeof(int64_t) * mk * (size_t)J.size);
        J.dist = cmir__malloc(sizeof(float) * mk * (size_t)J.size);
        H = J.rank == 0 ? cmir__hits_new(J.ix, J.m) : NULL;
        rc = cmir_dist_agree(J.rows && J.dist && (J.rank || H) ? 0 : CMIR_ENOMEM);
    }
    if (!rc)
        rc = cmir_dist_agree(embed_rows(&J, queries, H, index_path));
    if (!rc)
        rc = search_local(&J, queries, p, progress, user);
    if (!rc)
        rc = merge_and_pack(&J);
    if (!rc)
        rc = collect(&J, H);
    cmir__gdal_quiet_end();
    if (J.rank == 0 && !rc)
        rc = cmir_hits_write(H, out_path, p);
    if (J.rank == 0 && !rc && p.query_file) /* the query, re-runnable in one process (GDAL, QGIS) */
        rc = cmir_query_file_write(p.query_file, model_path, index_path, &queries[0], p);
    rc = cmir_dist_agree(rc);
    cmir_hits_free(H);
    cmir__free(J.codes);
    cmir__free(J.qmod);
    for (int i = 0; J.desc && i < J.m; i++)
        cmir__free(J.desc[i]);
    cmir__free(J.desc);
    cmir__free(J.model_id);
    cmir__free(J.rows);
    cmir__free(J.dist);
    cmir__free(J.pack);
    cmir_index_close(J.ix);
    cmir_model_free(J.model);
    cmir_exec_free(J.ex);
    cmir__manifest_free(J.sh, J.n_sh);
    return rc;
}
