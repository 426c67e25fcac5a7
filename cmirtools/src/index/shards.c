/* Sharded indexes: the manifest file listing the shards of one index (a
 * text file, "cmir-shards 1", then "shard FIRST COUNT PATH" per shard, in
 * row order, PATH relative to the manifest's folder), written atomically,
 * and opening a manifest in one process as if it were the merged index. */
#include "index_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAGIC "cmir-shards 1"

int cmir__is_manifest(const char *path)
{
    char head[sizeof MAGIC + 1] = "";
    FILE *f = path && strncmp(path, "/vsi", 4) ? fopen(path, "rb") : NULL;
    if (!f)
        return 0;
    size_t n = fread(head, 1, sizeof MAGIC, f);
    fclose(f);
    return n == sizeof MAGIC && !memcmp(head, MAGIC, sizeof MAGIC - 1) &&
           (head[sizeof MAGIC - 1] == '\n' || head[sizeof MAGIC - 1] == '\r');
}

void cmir__manifest_free(cmir__shard *s, int n)
{
    for (int i = 0; s && i < n; i++)
        cmir__free(s[i].path);
    cmir__free(s);
}

/* dir of path joined with rel (rel itself when absolute or dir is "."). */
static char *resolve(const char *path, const char *rel)
{
    const char *slash = strrchr(path, '/');
    size_t nd = rel[0] == '/' || !slash ? 0 : (size_t)(slash - path) + 1, nr = strlen(rel);
    char *s = cmir__malloc(nd + nr + 1);
    if (s) {
        memcpy(s, path, nd);
        memcpy(s + nd, rel, nr + 1);
    }
    return s;
}

int cmir__manifest_read(const char *path, cmir__shard **out, int *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!cmir__is_manifest(path))
        return cmir__error(CMIR_EINVAL, "%s: not a shard manifest (its first line is not '%s'; cmir_index -shards "
                           "writes one)", path, MAGIC);
    FILE *f = fopen(path, "rb");
    if (!f)
        return cmir__error(CMIR_EIO, "%s: cannot open the shard manifest: %s", path, strerror(errno));
    char line[4096];
    int n = 0, cap = 0, ln = 0, rc = 0;
    cmir__shard *s = NULL;
    while (!rc && fgets(line, sizeof line, f)) {
        ln++;
        size_t len = strcspn(line, "\r\n");
        if (line[len] == '\0' && !feof(f))
            rc = cmir__error(CMIR_EFORMAT, "%s:%d: line too long", path, ln);
        line[len] = '\0';
        if (rc || ln == 1 || !line[0] || line[0] == '#')
            continue;
        long long first = -1, count = -1;
        int at = 0;
        if (sscanf(line, "shard %lld %lld %n", &first, &count, &at) != 2 || at == 0 || !line[at] ||
            first < 0 || count < 0 || count > ((int64_t)1 << 31) ||
            first != (n ? s[n - 1].first + s[n - 1].count : 0)) {
            rc = cmir__error(CMIR_EFORMAT, "%s:%d: not 'shard FIRST COUNT PATH' following the previous shard", path,
                             ln);
            break;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            cmir__shard *g = cmir__realloc(s, sizeof *s * (size_t)cap);
            if (!g) {
                rc = CMIR_ENOMEM;
                break;
            }
            s = g;
        }
        s[n].first = first;
        s[n].count = count;
        if (!(s[n].path = resolve(path, line + at)))
            rc = CMIR_ENOMEM;
        else
            n++;
    }
    fclose(f);
    if (!rc && n == 0)
        rc = cmir__error(CMIR_EFORMAT, "%s: the shard manifest lists no shard", path);
    if (rc) {
        cmir__manifest_free(s, n);
        return rc;
    }
    *out = s;
    *n_out = n;
    return 0;
}

int cmir__manifest_write(const char *path, const char *const *names, const int64_t *counts, int n)
{
    cmir__atomic_file af;
    FILE *f = cmir__atomic_fopen(&af, path);
    if (!f)
        return cmir_last_error_code();
    int64_t first = 0;
    fprintf(f, "%s\n# %d shards of one CMIR index; rows FIRST..FIRST+COUNT-1 of the whole are rows 0.. of PATH\n",
            MAGIC, n);
    for (int i = 0; i < n; i++) {
        fprintf(f, "shard %lld %lld %s\n", (long long)first, (long long)counts[i], names[i]);
        first += counts[i];
    }
    return cmir__atomic_fclose(f, &af);
}

/* Opens shards s[0..n) into ix as one index whose row 0 is s[0]'s first
 * row. The first part's arrays are grown to the whole (realloc: large
 * blocks move without a copy) and every other part loads its rows
 * straight into them, so the peak is the whole, not the whole plus a part. */
static int open_list(cmir_index *ix, const cmir__shard *s, int n, const char *what, int lean)
{
    int64_t base = s[0].first, total = s[n - 1].first + s[n - 1].count - base;
    ix->parts = cmir__calloc((size_t)n, sizeof *ix->parts);
    ix->part_first = cmir__malloc(sizeof(int64_t) * ((size_t)n + 1));
    int rc = ix->parts && ix->part_first ? 0 : CMIR_ENOMEM;
    for (int i = 0; !rc && i < n; i++) {
        ix->n_parts = i + 1;
        ix->part_first[i] = s[i].first - base;
        cmir__index_into into = {0};
        into.lean = lean;
        if (i) {
            into.v = ix->v + (size_t)(s[i].first - base) * (size_t)ix->dim;
            into.norms = lean ? NULL : ix->norms + (s[i].first - base);
            into.mod = ix->mod + (s[i].first - base);
            into.n = s[i].count;
            into.dim = ix->dim;
        }
        cmir_index *p = NULL;
        if (cmir__is_manifest(s[i].path))
            rc = cmir__error(CMIR_EFORMAT, "%s: shard %s is itself a manifest", what, s[i].path);
        else if (!(p = ix->parts[i] = cmir__index_open_into(s[i].path, i || lean ? &into : NULL)))
            rc = cmir__failed(CMIR_EIO);
        else if (cmir_index_count(p) != s[i].count)
            rc = cmir__error(CMIR_EFORMAT, "%s: shard %s holds %lld rows, the manifest says %lld", what, s[i].path,
                             (long long)cmir_index_count(p), (long long)s[i].count);
        else if (i && (strcmp(p->model_id, ix->model_id) || !OSRIsSame(p->srs, ix->srs)))
            rc = cmir__error(CMIR_EFORMAT, "%s: shard %s was built with another model or CRS than %s", what,
                             s[i].path, s[0].path);
        if (!rc && i == 0) { /* the whole's arrays: part 0's, grown */
            size_t N = (size_t)(total ? total : 1);
            ix->n = total;
            ix->dim = p->dim;
            ix->model_id = cmir__strdup(p->model_id);
            ix->crs_wkt = p->crs_wkt ? cmir__strdup(p->crs_wkt) : NULL;
            ix->srs = OSRClone(p->srs);
            float *v = cmir__realloc(p->v, sizeof(float) * N * (size_t)ix->dim);
            if (v)
                p->v = NULL, ix->v = v;
            float *nr = lean ? NULL : cmir__realloc(p->norms, sizeof(float) * N);
            if (nr)
                p->norms = NULL, ix->norms = nr;
            uint8_t *md = cmir__realloc(p->mod, N);
            if (md)
                p->mod = NULL, ix->mod = md;
            if (!ix->model_id || (p->crs_wkt && !ix->crs_wkt) || !ix->srs || !v || (!nr && !lean) || !md)
                rc = CMIR_ENOMEM;
            else
                OSRSetAxisMappingStrategy(ix->srs, OAMS_TRADITIONAL_GIS_ORDER);
        }
    }
    if (!rc)
        ix->part_first[n] = total;
    for (int i = 0; !rc && i < n; i++)
        ix->norm_max = ix->parts[i]->norm_max > ix->norm_max ? ix->parts[i]->norm_max : ix->norm_max;
    return rc;
}

int cmir__index_open_shards(cmir_index *ix)
{
    cmir__shard *s = NULL;
    int n = 0, rc = cmir__manifest_read(ix->path, &s, &n);
    if (!rc)
        rc = open_list(ix, s, n, ix->path, 0);
    cmir__manifest_free(s, n);
    return rc;
}

cmir_index *cmir__index_open_range(const char *manifest, int from, int to, int lean)
{
    cmir__shard *s = NULL;
    int n = 0;
    if (cmir__manifest_read(manifest, &s, &n))
        return NULL;
    cmir_index *ix = NULL;
    if (from < 0 || to > n || from >= to)
        cmir__error(CMIR_EINVAL, "%s: no shards %d..%d (it lists %d)", manifest, from, to - 1, n);
    else if ((ix = cmir__calloc(1, sizeof *ix)) != NULL && !(ix->path = cmir__strdup(s[from].path))) {
        cmir__free(ix);
        ix = NULL;
    }
    if (ix) {
        cmir__gdal_quiet_begin();
        int rc = to - from == 1 ? 0 : open_list(ix, s + from, to - from, manifest, lean);
        cmir__gdal_quiet_end();
        if (to - from == 1) { /* one shard: the file itself */
            cmir__free(ix->path);
            cmir__free(ix);
            cmir__index_into own = {0}; /* v NULL: its own arrays */
            own.lean = lean;
            ix = cmir__is_manifest(s[from].path) ? NULL : cmir__index_open_into(s[from].path, &own);
            if (!ix && cmir__is_manifest(s[from].path))
                cmir__error(CMIR_EFORMAT, "%s: shard %s is itself a manifest", manifest, s[from].path);
        } else if (rc) {
            cmir_index_close(ix);
            ix = NULL;
        }
    }
    cmir__manifest_free(s, n);
    return ix;
}

/* The part holding global row r (binary search). */
static int part_of(const cmir_index *ix, int64_t r)
{
    int lo = 0, hi = ix->n_parts - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ix->part_first[mid] <= r)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

OGRFeatureH cmir__index_shard_feature(cmir_index *ix, int64_t r)
{
    int p = part_of(ix, r);
    OGRFeatureH f = cmir__index_feature(ix->parts[p], r - ix->part_first[p]);
    if (f) /* the merged index's numbering */
        OGR_F_SetFieldInteger64(f, OGR_F_GetFieldIndex(f, "row"), r);
    return f;
}

int cmir__index_shard_envelopes(cmir_index *ix)
{
    for (int p = 0; p < ix->n_parts; p++) {
        int rc = cmir__index_load_envelopes(ix->parts[p]);
        if (rc) {
            cmir__free(ix->env); /* not half-filled for the next call */
            ix->env = NULL;
            return rc;
        }
        memcpy(ix->env + 4 * ix->part_first[p], ix->parts[p]->env, sizeof(double) * 4 * (size_t)ix->parts[p]->n);
    }
    return 0;
}
