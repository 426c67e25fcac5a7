/* The audio front-end an image-speech model was trained with, as its model
 * file records it: the feature kind and, for the pocketsphinx feature, the
 * vocabulary and the acoustic model's identity, checked on loading. */
#include "model_internal.h"
#include "cmir/audio.h"
#include "cmir/tensorset.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_name[3] = {"cepstral", "segmental", "sphinx"};

int cmir_model_set_audio(cmir_model *m, int feature, const char *vocabulary)
{
    if (!m || m->info.scenario != CMIR_SCENARIO_IMAGE_SPEECH || feature < 0 || feature > 2 ||
        (feature == CMIR_AUDIO_FEATURE_SPHINX && (!vocabulary || !*vocabulary)))
        return cmir__error(CMIR_EINVAL, "cmir_model_set_audio: an image-speech model and a feature kind "
                           "(with its vocabulary for sphinx) are needed");
    char sum[17] = "";
    int rc = feature == CMIR_AUDIO_FEATURE_SPHINX ? cmir_audio_sphinx_identity(NULL, NULL, sum) : 0;
    if (rc)
        return rc;
    char *v = feature == CMIR_AUDIO_FEATURE_SPHINX ? cmir__strdup(vocabulary) : NULL;
    char *h = feature == CMIR_AUDIO_FEATURE_SPHINX ? cmir__strdup(CMIR_AUDIO_SPHINX_HMM) : NULL;
    char *d = feature == CMIR_AUDIO_FEATURE_SPHINX ? cmir__strdup(CMIR_AUDIO_SPHINX_DICT) : NULL;
    if (feature == CMIR_AUDIO_FEATURE_SPHINX && (!v || !h || !d)) {
        cmir__free(v), cmir__free(h), cmir__free(d);
        return CMIR_ENOMEM;
    }
    cmir__free(m->audio_vocab), cmir__free(m->audio_hmm), cmir__free(m->audio_dict);
    m->audio_vocab = v;
    m->audio_hmm = h;
    m->audio_dict = d;
    memcpy(m->audio_sum, sum, sizeof sum);
    m->info.audio_feature = feature;
    return 0;
}

int cmir__model_save_audio(const cmir_model *m, cmir_tensorset *ts)
{
    int f = m->info.audio_feature;
    int rc = cmir_tensorset_put_string(ts, "AUDIO_FEATURE", kind_name[f >= 0 && f <= 2 ? f : 1]);
    if (rc || f != CMIR_AUDIO_FEATURE_SPHINX)
        return rc;
    if (!m->audio_vocab || !m->audio_hmm || !m->audio_dict)
        return cmir__error(CMIR_EINVAL, "a sphinx-feature model without its vocabulary and acoustic model");
    if (!rc) rc = cmir_tensorset_put_string(ts, "AUDIO_VOCABULARY", m->audio_vocab);
    if (!rc) rc = cmir_tensorset_put_string(ts, "AUDIO_ACOUSTIC_MODEL", m->audio_hmm);
    if (!rc) rc = cmir_tensorset_put_string(ts, "AUDIO_DICTIONARY", m->audio_dict);
    if (!rc) rc = cmir_tensorset_put_string(ts, "AUDIO_MODEL_SUM", m->audio_sum);
    return rc;
}

/* A string variable that must be there (the message names it). */
static int need(const cmir_tensorset *ts, const char *name, char **out)
{
    const char *s = cmir_tensorset_get_string(ts, name);
    if (!s || !*s)
        return cmir__error(CMIR_EFORMAT, "a sphinx-feature model needs %s", name);
    return (*out = cmir__strdup(s)) ? 0 : CMIR_ENOMEM;
}

int cmir__model_load_audio(cmir_model *m, const cmir_tensorset *ts)
{
    const char *af = cmir_tensorset_get_string(ts, "AUDIO_FEATURE");
    int f = -1;
    for (int k = 0; af && k < 3; k++)
        if (!strcmp(af, kind_name[k]))
            f = k;
    if (f < 0)
        return cmir__error(CMIR_EFORMAT, "AUDIO_FEATURE is %s%s%s (segmental, cepstral or sphinx expected)",
                           af ? "'" : "missing", af ? af : "", af ? "'" : "");
    m->info.audio_feature = f;
    if (f != CMIR_AUDIO_FEATURE_SPHINX)
        return 0;
    int rc = need(ts, "AUDIO_VOCABULARY", &m->audio_vocab);
    if (!rc) rc = need(ts, "AUDIO_ACOUSTIC_MODEL", &m->audio_hmm);
    if (!rc) rc = need(ts, "AUDIO_DICTIONARY", &m->audio_dict);
    const char *sum = rc ? NULL : cmir_tensorset_get_string(ts, "AUDIO_MODEL_SUM");
    if (!rc && (!sum || strlen(sum) != 16))
        rc = cmir__error(CMIR_EFORMAT, "a sphinx-feature model needs AUDIO_MODEL_SUM (16 hex digits)");
    if (rc)
        return rc;
    int lines = 1;
    for (const char *c = m->audio_vocab; *c; c++)
        lines += *c == '\n';
    if (lines > CMIR_AUDIO_FEATURE_DIM)
        return cmir__error(CMIR_EFORMAT, "AUDIO_VOCABULARY has %d labels, at most %d", lines,
                           CMIR_AUDIO_FEATURE_DIM);
    char now[17];
    if ((rc = cmir_audio_sphinx_identity(m->audio_hmm, m->audio_dict, now)) != 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", cmir_last_error());
        return cmir__error(CMIR_EFORMAT, "the acoustic model it was trained with is not readable (%s)", msg);
    }
    if (strcmp(now, sum))
        return cmir__error(CMIR_EFORMAT, "the acoustic model %s with %s is not the one it was trained with "
                           "(checksum %s, trained with %s)", m->audio_hmm, m->audio_dict, now, sum);
    memcpy(m->audio_sum, now, sizeof now);
    return 0;
}

void cmir__model_audio_params(const cmir_model *m, cmir_audio_params *p)
{
    if (m->info.audio_feature != CMIR_AUDIO_FEATURE_SPHINX)
        return;
    p->vocabulary = m->audio_vocab;
    p->sphinx_hmm = m->audio_hmm;
    p->sphinx_dict = m->audio_dict;
}

const char *cmir_model_audio_vocabulary(const cmir_model *m)
{
    return m && m->info.audio_feature == CMIR_AUDIO_FEATURE_SPHINX ? m->audio_vocab : NULL;
}
