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
    memset(&af, 0, sizeof af);
    af.fd = -1;
    int rc = cmir__atomic_open(&af, path, 0);
    if (rc)
        return rc;
    FILE *f = fdopen(af.fd, "w");
    if (!f) {
        cmir__atomic_abort(&af);
        return cmir__error(CMIR_EIO, "%s: %s", path, strerror(errno));
    }
    int64_t first = 0;
    fprintf(f, "%s\n# %d shards of one CMIR index; rows FIRST..FIRST+COUNT-1 of the whole are rows 0.. of PATH\n",
            MAGIC, n);
    for (int i = 0; i < n; i++) {
        fprintf(f, "shard %lld %lld %s\n", (long long)first, (long long)counts[i], names[i]);
        first += counts[i];
    }
    if (fflush(f) != 0)
        rc = cmir__error(CMIR_EIO, "%s: write failed: %s", path, strerror(errno));
    af.fd = dup(fileno(f)); /* commit fsyncs and closes its own descriptor */
    fclose(f);
    if (rc || af.fd < 0) {
        cmir__atomic_abort(&af);
        return rc ? rc : cmir__error(CMIR_EIO, "%s: %s", path, strerror(errno));
    }
    return cmir__atomic_commit(&af);
}

/* Appends part p's matrix, modalities and norms to ix at row first, then
 * drops them from p (whose features stay reachable). */
static int take_rows(cmir_index *ix, cmir_index *p, int64_t first)
{
    memcpy(ix->v + (size_t)first * ix->dim, p->v, sizeof(float) * (size_t)p->n * ix->dim);
    memcpy(ix->mod + first, p->mod, (size_t)p->n);
    memcpy(ix->norms + first, p->norms, sizeof(float) * (size_t)p->n);
    cmir__free(p->v);
    cmir__free(p->norms);
    p->v = p->norms = NULL;
    return 0;
}

int cmir__index_open_shards(cmir_index *ix)
{
    cmir__shard *s = NULL;
    int n = 0, rc = cmir__manifest_read(ix->path, &s, &n);
    if (rc)
        return rc;
    ix->parts = cmir__calloc((size_t)n, sizeof *ix->parts);
    ix->part_first = cmir__malloc(sizeof(int64_t) * ((size_t)n + 1));
    if (!ix->parts || !ix->part_first)
        rc = CMIR_ENOMEM;
    for (int i = 0; !rc && i < n; i++) {
        ix->n_parts = i + 1;
        if (cmir__is_manifest(s[i].path))
            rc = cmir__error(CMIR_EFORMAT, "%s: shard %s is itself a manifest", ix->path, s[i].path);
        else if (!(ix->parts[i] = cmir_index_open(s[i].path)))
            rc = cmir__failed(CMIR_EIO);
        else if (cmir_index_count(ix->parts[i]) != s[i].count)
            rc = cmir__error(CMIR_EFORMAT, "%s: shard %s holds %lld rows, the manifest says %lld", ix->path,
                             s[i].path, (long long)cmir_index_count(ix->parts[i]), (long long)s[i].count);
        else if (i && (strcmp(ix->parts[i]->model_id, ix->parts[0]->model_id) || ix->parts[i]->dim != ix->parts[0]->dim ||
                       !OSRIsSame(ix->parts[i]->srs, ix->parts[0]->srs)))
            rc = cmir__error(CMIR_EFORMAT, "%s: shard %s was built with another model or CRS than %s", ix->path,
                             s[i].path, s[0].path);
        ix->part_first[i] = s[i].first;
    }
    if (!rc) {
        cmir_index *p0 = ix->parts[0];
        ix->part_first[n] = s[n - 1].first + s[n - 1].count;
        ix->n = ix->part_first[n];
        ix->dim = p0->dim;
        ix->model_id = cmir__strdup(p0->model_id);
        ix->crs_wkt = p0->crs_wkt ? cmir__strdup(p0->crs_wkt) : NULL;
        ix->srs = OSRClone(p0->srs);
        size_t N = (size_t)(ix->n ? ix->n : 1);
        ix->v = cmir__malloc(sizeof(float) * N * (size_t)ix->dim);
        ix->mod = cmir__malloc(N);
        ix->norms = cmir__malloc(sizeof(float) * N);
        if (!ix->model_id || (p0->crs_wkt && !ix->crs_wkt) || !ix->srs || !ix->v || !ix->mod || !ix->norms)
            rc = CMIR_ENOMEM;
        else
            OSRSetAxisMappingStrategy(ix->srs, OAMS_TRADITIONAL_GIS_ORDER);
    }
    for (int i = 0; !rc && i < n; i++)
        rc = take_rows(ix, ix->parts[i], s[i].first);
    cmir__manifest_free(s, n);
    return rc;
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
