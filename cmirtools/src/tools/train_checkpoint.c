/* cmir_train()'s checkpoints (every network so far, the normalisation, the
 * optimiser's moments, the RNG state and where the run stands) and the
 * reuse of another model's stage 1 (-stage1_from). */
#include "train_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the checkpoint: every network so far, the normalisation, the
 * current optimiser's moments, the RNG state, and where we are. */
int cmir__train_save_checkpoint(cmir__train_job *J, int stage, int epochs_done, cmir_optim *o)
{
    if (!J->p.checkpoint || cmir_dist_rank()) /* under MPI rank 0 writes */
        return 0;
    cmir_tensorset *ts = cmir_tensorset_new();
    if (!ts)
        return CMIR_ENOMEM;
    char buf[160];
    uint64_t st[4];
    cmir_rng_get_state(J->rng, st);
    int rc = cmir_tensorset_put_string(ts, "CKPT_FORMAT", CMIR__TRAIN_CKPT_FORMAT);
    snprintf(buf, sizeof buf, "%d %d %016llx %016llx %016llx %016llx", stage, epochs_done, (unsigned long long)st[0],
             (unsigned long long)st[1], (unsigned long long)st[2], (unsigned long long)st[3]);
    if (!rc) rc = cmir_tensorset_put_string(ts, "CKPT_STATE", buf);
    if (!rc) rc = cmir_tensorset_put_string(ts, "CKPT_SETTINGS", J->settings);
    if (!rc) rc = cmir_cnn_save(J->m->cnn[0], ts, "pan_");
    if (!rc) rc = cmir_cnn_save(J->m->cnn[1], ts, "ms_");
    if (!rc && stage == 2) rc = cmir_unified_save(J->m->uni, ts);
    for (int k = 0; !rc && k < 2; k++) {
        int64_t nb = k ? J->m->info.ms_bands : J->m->info.pan_bands;
        cmir_tensor mu = cmir_tensor_make(J->m->mean[k], 1, &nb), sd = cmir_tensor_make(J->m->std[k], 1, &nb);
        rc = cmir_tensorset_put(ts, k ? "MS_MEAN" : "PAN_MEAN", &mu);
        if (!rc)
            rc = cmir_tensorset_put(ts, k ? "MS_STD" : "PAN_STD", &sd);
    }
    snprintf(buf, sizeof buf, "%lld", (long long)cmir_optim_steps(o));
    if (!rc) rc = cmir_tensorset_put_string(ts, "OPT_STEPS", buf);
    for (int i = 0; !rc; i++) {
        float *m, *v;
        size_t n;
        if (cmir_optim_state(o, i, &m, &v, &n))
            break;
        int64_t nn = (int64_t)n;
        cmir_tensor tm = cmir_tensor_make(m, 1, &nn), tv = cmir_tensor_make(v, 1, &nn);
        snprintf(buf, sizeof buf, "opt_m_%d", i);
        rc = cmir_tensorset_put(ts, buf, &tm);
        snprintf(buf, sizeof buf, "opt_v_%d", i);
        if (!rc && v)
            rc = cmir_tensorset_put(ts, buf, &tv);
    }
    cmir__clear_error();
    if (!rc)
        rc = cmir_tensorset_save(ts, J->p.checkpoint);
    cmir_tensorset_free(ts);
    return rc;
}

/* Restores the optimiser's moments from the checkpoint. */
int cmir__train_restore_optim(cmir__train_job *J, cmir_optim *o)
{
    const char *s = cmir_tensorset_get_string(J->resume, "OPT_STEPS");
    if (!s)
        return cmir__error(CMIR_EFORMAT, "%s: no OPT_STEPS", J->p.resume);
    cmir_optim_set_steps(o, atoll(s));
    char name[32];
    for (int i = 0;; i++) {
        float *m, *v;
        size_t n;
        if (cmir_optim_state(o, i, &m, &v, &n))
            break;
        int64_t nn = (int64_t)n;
        snprintf(name, sizeof name, "opt_m_%d", i);
        int rc = cmir_tensorset_expect(J->resume, name, 1, &nn);
        if (rc)
            return rc;
        memcpy(m, cmir_tensorset_get(J->resume, name)->data, sizeof(float) * n);
        if (v) {
            snprintf(name, sizeof name, "opt_v_%d", i);
            if ((rc = cmir_tensorset_expect(J->resume, name, 1, &nn)))
                return rc;
            memcpy(v, cmir_tensorset_get(J->resume, name)->data, sizeof(float) * n);
        }
    }
    cmir__clear_error();
    return 0;
}

/* Stage-1 state from a tensor set (a model file or a checkpoint): both
 * CNNs and the per-band normalisation. Messages are prefixed with path. */
static int load_stage1(cmir__train_job *J, const cmir_tensorset *ts, const char *path)
{
    int rc = 0;
    for (int k = 0; !rc && k < 2; k++) {
        int64_t nb = k ? J->m->info.ms_bands : J->m->info.pan_bands;
        const char *mn = k ? "MS_MEAN" : "PAN_MEAN", *sn = k ? "MS_STD" : "PAN_STD";
        if (!(rc = cmir_cnn_load(J->m->cnn[k], ts, k ? "ms_" : "pan_")) &&
            !(rc = cmir_tensorset_expect(ts, mn, 1, &nb)) && !(rc = cmir_tensorset_expect(ts, sn, 1, &nb))) {
            memcpy(J->m->mean[k], cmir_tensorset_get(ts, mn)->data, sizeof(float) * (size_t)nb);
            memcpy(J->m->std[k], cmir_tensorset_get(ts, sn)->data, sizeof(float) * (size_t)nb);
        }
    }
    if (rc) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        cmir__error(rc, "%s: %s", path, msg);
    }
    return rc;
}

/* -stage1_from: the CNNs were trained on the other model's training tiles, so
 * its held-out set must be exactly this run's, or test tiles would have been
 * trained on (another -seed or -test_frac draws another split). A model's
 * TEST_TILES is its run's test list as written (modelfile.c), in split()'s
 * order, so the same split gives the same sequence. */
static int same_split(cmir__train_job *J, const cmir_tensorset *ts, const char *path)
{
    const cmir_tensor *nt = cmir_tensorset_get(ts, "N_TILES"), *tt = cmir_tensorset_get(ts, "TEST_TILES");
    if (!nt || cmir_tensor_numel(nt) != 1 || !tt)
        return cmir__error(CMIR_EFORMAT, "%s: no N_TILES or TEST_TILES: not a CMIR model", path);
    int same = nt->data[0] == (float)J->ai->n_tiles && cmir_tensor_numel(tt) == J->n_test;
    for (int64_t i = 0; same && i < J->n_test; i++)
        same = tt->data[i] == (float)J->test[i];
    if (!same)
        return cmir__error(CMIR_EINVAL,
                           "%s: its held-out tiles are not this run's split (another archive, -seed, -test_frac or "
                           "-split): its CNNs have seen this run's test tiles",
                           path);
    return 0;
}

/* Loads a checkpoint made with the same archive and settings. */
int cmir__train_load_checkpoint(cmir__train_job *J)
{
    const char *path = J->p.resume;
    J->resume = cmir_tensorset_load(path);
    if (!J->resume)
        return cmir__failed(CMIR_EIO);
    const char *f = cmir_tensorset_get_string(J->resume, "CKPT_FORMAT");
    const char *st = cmir_tensorset_get_string(J->resume, "CKPT_STATE");
    const char *se = cmir_tensorset_get_string(J->resume, "CKPT_SETTINGS");
    if (!f || strcmp(f, CMIR__TRAIN_CKPT_FORMAT) || !st || !se)
        return cmir__error(CMIR_EFORMAT, "%s: not a CMIR checkpoint", path);
    if (strcmp(se, J->settings) != 0)
        return cmir__error(CMIR_EINVAL, "%s: made with other settings or another archive; resume with the same ones",
                           path);
    unsigned long long s[4];
    if (sscanf(st, "%d %d %llx %llx %llx %llx", &J->r_stage, &J->r_epoch, &s[0], &s[1], &s[2], &s[3]) != 6 ||
        J->r_stage < 0 || J->r_stage > 2 || J->r_epoch < 0)
        return cmir__error(CMIR_EFORMAT, "%s: damaged CKPT_STATE", path);
    uint64_t state[4] = {s[0], s[1], s[2], s[3]};
    cmir_rng_set_state(J->rng, state);
    int rc = load_stage1(J, J->resume, path);
    if (!rc && J->r_stage == 2 && (rc = cmir_unified_load(J->m->uni, J->resume))) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        cmir__error(rc, "%s: %s", path, msg);
    }
    return rc;
}

int cmir__train_stage1_from(cmir__train_job *J, const char *path)
{
    cmir_tensorset *ts = cmir_tensorset_load(path);
    int rc = ts ? same_split(J, ts, path) : cmir__failed(CMIR_EIO);
    if (!rc)
        rc = load_stage1(J, ts, path);
    cmir_tensorset_free(ts);
    return rc;
}
