/* cmir_index under MPI: every rank builds one shard of the index (a run
 * of whole 64-tile batches, cmir_index_build's n_shards), then rank 0
 * writes the manifest listing them or merges them; failures agreed so
 * that every rank fails with the failing rank's message. */
#include "../index/index_tools.h"
#include "cmir/dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The shard file of rank r: OUT.TAG.RofN.gpkg (full path, and its name
 * without the folder for the manifest). */
static char *shard_path(const char *out, const char *tag, int r, int n)
{
    size_t len = strlen(out) + strlen(tag) + 64;
    char *s = cmir__malloc(len);
    if (s)
        snprintf(s, len, "%s.%s.%dof%d.gpkg", out, tag, r, n);
    return s;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Rank 0: the manifest out, listing the shards; then the files of the
 * manifest it replaced, that it no longer lists, are removed. */
static int write_manifest(const char *out, char **paths, const int64_t *counts, int n)
{
    cmir__shard *old = NULL;
    int n_old = 0;
    if (cmir__is_manifest(out) && cmir__manifest_read(out, &old, &n_old))
        n_old = 0, old = NULL; /* a damaged old manifest: nothing to clean */
    const char **names = cmir__malloc(sizeof(char *) * (size_t)n);
    int rc = names ? 0 : CMIR_ENOMEM;
    for (int i = 0; !rc && i < n; i++)
        names[i] = base_name(paths[i]);
    if (!rc)
        rc = cmir__manifest_write(out, names, counts, n);
    for (int i = 0; !rc && i < n_old; i++) {
        int listed = 0;
        for (int j = 0; j < n; j++)
            listed |= !strcmp(base_name(old[i].path), names[j]);
        if (!listed)
            unlink(old[i].path);
    }
    cmir__free(names);
    cmir__manifest_free(old, n_old);
    return rc;
}

int cmir_index_build_ranks(const char *model_path, const char *const *archives, int n_archives, const char *out,
                           int sharded, cmir_index_params p, cmir_progress_fn progress, void *user,
                           int64_t *n_added)
{
    if (n_added)
        *n_added = 0;
    if (!out)
        return cmir__error(CMIR_EINVAL, "cmir_index_build_ranks: need an output");
    const int rank = cmir_dist_rank(), size = cmir_dist_size();
    char tag[32] = "";
    if (rank == 0) /* one per run, so that a run never overwrites the shards a manifest lists */
        snprintf(tag, sizeof tag, "%lx%05lx", (unsigned long)time(NULL), (unsigned long)getpid() & 0xfffff);
    int rc = cmir_dist_bcast(tag, sizeof tag, 0);
    if (rc)
        return rc;
    char *mine = shard_path(out, tag, rank, size);
    int64_t added = 0, *counts = cmir__calloc((size_t)size, sizeof(int64_t));
    char **paths = cmir__calloc((size_t)size, sizeof(char *));
    for (int r = 0; paths && r < size; r++)
        paths[r] = shard_path(out, tag, r, size);
    rc = mine && counts && paths && paths[size - 1] ? 0 : CMIR_ENOMEM;
    { /* for the line a dead rank gets (cmir_dist_watch); collective, so every rank */
        char what[4200];
        snprintf(what, sizeof what, "writing %s", mine ? mine : "its shard");
        int e = cmir_dist_doing(what);
        rc = rc ? rc : e;
    }
    p.n_shards = size;
    p.shard = rank;
    if (!rc)
        rc = cmir_index_build(model_path, archives, n_archives, mine, p, progress,
                              user, &added);
    int built = !rc;
    rc = cmir_dist_agree(rc);
    if (!rc)
        rc = cmir_dist_allgather(&added, sizeof added, counts);
    if (!rc && rank == 0) {
        if (sharded)
            rc = write_manifest(out, paths, counts, size);
        else
            rc = cmir_index_merge((const char *const *)paths, size, out, NULL, NULL);
    }
    rc = cmir_dist_agree(rc);
    if (built && (rc || !sharded)) /* a failed run leaves no shard; a merged one needs none */
        unlink(mine);
    for (int r = 0; !rc && n_added && r < size; r++)
        *n_added += counts[r];
    for (int r = 0; paths && r < size; r++)
        cmir__free(paths[r]);
    cmir__free(paths);
    cmir__free(counts);
    cmir__free(mine);
    return rc;
}
