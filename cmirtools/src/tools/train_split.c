/* The train/test split of cmir_train(): the labelled tiles, held out by
 * whole scenes when the archive records scenes (and it is asked), else by
 * tiles, in a seeded order; and the seeded shuffle every stage uses. */
#include "train_internal.h"

#include <math.h>
#include <string.h>

void cmir__train_shuffle(cmir_rng *r, int64_t *v, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)cmir_rng_below(r, (uint64_t)i + 1);
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

static int is_labelled(const cmir_archive *a, int64_t i, int multilabel, uint8_t *tmp)
{
    if (!multilabel)
        return cmir_archive_label(a, i) > 0;
    if (cmir_archive_multilabel(a, i, tmp))
        return 0;
    for (int c = 0; c < cmir_archive_get_info(a)->n_classes; c++)
        if (tmp[c])
            return 1;
    return 0;
}

static const char *scene_of(const cmir__train_job *J, int64_t tile)
{
    const char *s = cmir_archive_scene(J->a, tile);
    return s ? s : "";
}

/* Scenes in a seeded order; whole scenes go to the test side until `want`
 * tiles, keeping at least one scene to train on. Returns 1 when done, 0
 * when there is only one scene (the caller splits by tiles). */
static int split_scenes(cmir__train_job *J, const int64_t *lab, int64_t nl, int64_t want)
{
    int64_t ns = 0;
    const char **names = cmir__malloc(sizeof(char *) * (size_t)nl);
    int64_t *order = cmir__malloc(sizeof(int64_t) * (size_t)nl);
    uint8_t *is_test = cmir__calloc((size_t)nl, 1);
    if (!names || !order || !is_test) {
        cmir__free(names); cmir__free(order); cmir__free(is_test);
        return CMIR_ENOMEM;
    }
    for (int64_t i = 0; i < nl; i++) {
        const char *s = scene_of(J, lab[i]);
        int64_t k;
        for (k = 0; k < ns; k++)
            if (!strcmp(names[k], s))
                break;
        if (k == ns)
            names[ns++] = s;
    }
    for (int64_t k = 0; k < ns; k++)
        order[k] = k;
    cmir__train_shuffle(J->rng, order, ns);
    int64_t got = 0;
    for (int64_t t = 0; t < ns - 1 && got < want; t++) { /* keep at least one scene to train on */
        const char *s = names[order[t]];
        for (int64_t i = 0; i < nl; i++)
            if (!strcmp(scene_of(J, lab[i]), s)) {
                is_test[i] = 1;
                got++;
            }
    }
    if (ns >= 2)
        for (int64_t i = 0; i < nl; i++) {
            if (is_test[i])
                J->test[J->n_test++] = lab[i];
            else
                J->train[J->n_train++] = lab[i];
        }
    cmir__free(names); cmir__free(order); cmir__free(is_test);
    return ns >= 2;
}

/* The first `want` tiles of a seeded order are held out; the test list is
 * kept in archive order. */
static void split_tiles(cmir__train_job *J, int64_t *lab, int64_t nl, int64_t want)
{
    cmir__train_shuffle(J->rng, lab, nl);
    for (int64_t i = 0; i < nl; i++) {
        if (i < want)
            J->test[J->n_test++] = lab[i];
        else
            J->train[J->n_train++] = lab[i];
    }
    for (int64_t i = 1; i < J->n_test; i++)
        for (int64_t k = i; k > 0 && J->test[k - 1] > J->test[k]; k--) {
            int64_t t = J->test[k]; J->test[k] = J->test[k - 1]; J->test[k - 1] = t;
        }
}

/* The archive's unlabelled tiles (unl, n of them, archive order) into
 * J->unlab, but for a split by scene only those of scenes with no test
 * tile: stage 2 may train on their pairs, never on a held-out scene's.
 * The test scenes are listed once (few), then each tile looked up there. */
static int keep_unlabelled(cmir__train_job *J, const int64_t *unl, int64_t n, int by_scene)
{
    if (!n)
        return 0;
    const char **held = by_scene ? cmir__malloc(sizeof(char *) * (size_t)(J->n_test ? J->n_test : 1)) : NULL;
    if (!(J->unlab = cmir__malloc(sizeof(int64_t) * (size_t)n)) || (by_scene && !held)) {
        cmir__free(held);
        return CMIR_ENOMEM;
    }
    int64_t nh = 0;
    for (int64_t t = 0; by_scene && t < J->n_test; t++) {
        const char *s = scene_of(J, J->test[t]);
        int64_t k = 0;
        while (k < nh && strcmp(held[k], s))
            k++;
        if (k == nh)
            held[nh++] = s;
    }
    for (int64_t i = 0; i < n; i++) {
        const char *s = scene_of(J, unl[i]);
        int64_t k = 0;
        while (k < nh && strcmp(held[k], s))
            k++;
        if (k == nh) /* not a held-out scene's */
            J->unlab[J->n_unlab++] = unl[i];
    }
    cmir__free(held);
    return 0;
}

/* Train/test split: whole scenes when recorded (and asked), else tiles. */
int cmir__train_split(cmir__train_job *J)
{
    const int64_t N = J->ai->n_tiles;
    int ml = J->ml1[0];
    uint8_t *tmp = cmir__malloc((size_t)J->ai->n_classes + 1);
    int64_t *lab = cmir__malloc(sizeof(int64_t) * (size_t)N);
    J->train = cmir__malloc(sizeof(int64_t) * (size_t)N);
    J->test = cmir__malloc(sizeof(int64_t) * (size_t)N);
    if (!tmp || !lab || !J->train || !J->test) {
        cmir__free(tmp);
        cmir__free(lab);
        return CMIR_ENOMEM;
    }
    int64_t nl = 0, nu = 0; /* labelled tiles from the front of lab, the others from its back */
    for (int64_t i = 0; i < N; i++) {
        if (is_labelled(J->a, i, ml, tmp))
            lab[nl++] = i;
        else
            lab[N - 1 - nu++] = i;
    }
    for (int64_t i = 0; i < nu / 2; i++) { /* the unlabelled ones in archive order */
        int64_t t = lab[N - nu + i]; lab[N - nu + i] = lab[N - 1 - i]; lab[N - 1 - i] = t;
    }
    cmir__free(tmp);
    if (nl < 4) {
        cmir__free(lab);
        return cmir__error(CMIR_EINVAL, "only %lld labelled tiles: too few to train on", (long long)nl);
    }
    int64_t want = (int64_t)llround(J->p.test_frac * (double)nl);
    if (J->p.test_frac > 0 && want < 1)
        want = 1;
    int rc = 0;
    if (J->p.split_by_scene && cmir_archive_scene(J->a, lab[0]) != NULL)
        rc = split_scenes(J, lab, nl, want);
    if (rc == 0) /* not asked, no scenes, or one scene: by tiles */
        split_tiles(J, lab, nl, want);
    if (rc >= 0 && !cmir__train_is_speech(J)) {
        int r2 = keep_unlabelled(J, lab + N - nu, nu, rc == 1);
        rc = r2 ? r2 : rc;
    }
    cmir__free(lab);
    if (rc < 0)
        return rc;
    if (J->n_train < 2)
        return cmir__error(CMIR_EINVAL, "the split leaves %lld training tiles", (long long)J->n_train);
    return 0;
}
