/* The CMIR-NET model file: building a model from sizes and names, saving it as
 * a .mat tensor set with a weight hash as its identity, loading it with
 * full validation, and embedding raw tiles into the unified space. */
#include "model_internal.h"
#include "cmir/audio.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FORMAT "cmir-model 1"

static int side_dims(const cmir_model_info *i, int k, int d[3])
{
    d[0] = k ? i->ms_h : i->pan_h;
    d[1] = k ? i->ms_w : i->pan_w;
    d[2] = k ? i->ms_bands : i->pan_bands;
    return d[0] * d[1] * d[2];
}

void cmir_model_free(cmir_model *m)
{
    if (!m)
        return;
    for (int k = 0; k < 2; k++) {
        cmir_cnn_free(m->cnn[k]);
        cmir__free(m->mean[k]);
        cmir__free(m->std[k]);
        cmir__free(m->band_names[k]);
    }
    cmir_unified_free(m->uni);
    for (int c = 0; m->class_names && c < m->info.n_classes; c++)
        cmir__free(m->class_names[c]);
    cmir__free(m->class_names);
    cmir__free(m->settings);
    cmir__free(m->audio_vocab);
    cmir__free(m->audio_hmm);
    cmir__free(m->audio_dict);
    cmir__free(m->test);
    cmir__free(m->valid);
    cmir__free_aligned(m->norm);
    cmir_exec_free(m->own_ex);
    cmir__free(m);
}

static char *join_names(int n, const char *const *names)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    char *s = cmir__malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(s, "\n");
        strcat(s, names[i]);
    }
    return s;
}

static int alloc_common(cmir_model *m)
{
    for (int k = 0; k < 2; k++) {
        int d[3];
        side_dims(&m->info, k, d);
        m->mean[k] = cmir__calloc((size_t)d[2], sizeof(float));
        m->std[k] = cmir__calloc((size_t)d[2], sizeof(float));
        if (!m->mean[k] || !m->std[k])
            return CMIR_ENOMEM;
        for (int b = 0; b < d[2]; b++)
            m->std[k][b] = 1.0f;
        for (int j = 0; j < CMIR_FEAT_DIM; j++) {
            m->zmean[k][j] = 0.0f;
            m->zstd[k][j] = 1.0f;
        }
    }
    m->class_names = cmir__calloc((size_t)m->info.n_classes, sizeof(char *));
    return m->class_names ? 0 : CMIR_ENOMEM;
}

cmir_model *cmir__model_new(const cmir__model_spec *s, cmir_cnn_params base, cmir_unified_params up,
                            uint64_t seed)
{
    cmir_model *m = cmir__calloc(1, sizeof *m);
    if (!m)
        return NULL;
    int scenario = s->scenario;
    m->info.pan_h = s->pan_h; m->info.pan_w = s->pan_w; m->info.pan_bands = s->pan_bands;
    m->info.ms_h = s->ms_h; m->info.ms_w = s->ms_w; m->info.ms_bands = s->ms_bands;
    m->info.ratio = s->ms_h ? s->pan_h / s->ms_h : 0;
    m->info.scenario = s->scenario;
    if (scenario == CMIR_SCENARIO_IMAGE_SPEECH) {
        m->info.ms_h = m->info.ms_w = 1;
        m->info.ms_bands = CMIR_AUDIO_FEATURE_DIM;
        m->info.ratio = 1;
    }
    m->info.n_classes = s->n_classes;
    m->info.multilabel = up.multilabel;
    m->info.d_v = up.d_v;
    m->info.cnn_weight = 1.0f;
    m->info.id = m->id;
    int rc = alloc_common(m);
    for (int c = 0; !rc && c < s->n_classes; c++)
        if (!(m->class_names[c] = cmir__strdup(s->class_names[c])))
            rc = CMIR_ENOMEM;
    if (!rc) {
        m->band_names[0] = join_names(s->pan_bands, s->pan_band_names);
        m->band_names[1] = scenario == CMIR_SCENARIO_IMAGE_SPEECH
                               ? cmir__strdup("clip feature (cmir/audio.h)")
                               : join_names(s->ms_bands, s->ms_band_names);
        if (!m->band_names[0] || !m->band_names[1])
            rc = CMIR_ENOMEM;
    }
    for (int k = 0; !rc && k < 2; k++) {
        cmir_cnn_params p = base;
        int d[3];
        side_dims(&m->info, k, d);
        p.h = d[0];
        p.w = d[1];
        p.bands = d[2];
        p.n_classes = s->n_classes;
        if (!(m->cnn[k] = cmir_cnn_new(p, seed + CMIR__CNN_SEED_STEP * (uint64_t)(k + 1))))
            rc = CMIR_EINVAL;
    }
    up.d_in = CMIR_FEAT_DIM;
    up.n_classes = s->n_classes;
    if (!rc && !(m->uni = cmir_unified_new(up, seed + CMIR__UNIFIED_SEED_OFFSET)))
        rc = CMIR_EINVAL;
    if (rc) {
        cmir_model_free(m);
        return NULL;
    }
    return m;
}

void cmir__model_normalise(const cmir_model *m, int k, const float *src, int n, float *dst)
{
    int d[3];
    size_t all = (size_t)side_dims(&m->info, k, d); /* sets d before it is read */
    size_t px = all / (size_t)d[2];
    const float *mu = m->mean[k], *sd = m->std[k];
    for (size_t i = 0; i < (size_t)n * px; i++)
        for (int b = 0; b < d[2]; b++) {
            float v = src[i * d[2] + b];
            dst[i * d[2] + b] = isfinite(v) ? (v - mu[b]) / sd[b] : 0.0f;
        }
}

void cmir__model_zstd(const cmir_model *m, int k, float *Z, int64_t n)
{
    int cnn = CMIR_FEAT_DIM - cmir__model_desc_dims(&m->info, k);
    float w = m->info.cnn_weight;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < CMIR_FEAT_DIM; j++) {
            float v = (Z[i * CMIR_FEAT_DIM + j] - m->zmean[k][j]) / m->zstd[k][j];
            Z[i * CMIR_FEAT_DIM + j] = j < cnn && w != 1.0f ? v * w : v;
        }
}

/* FNV-1a over the bytes of every weight: the model's identity. */
static void make_id(cmir_model *m)
{
    uint64_t h = 1469598103934665603ull;
    for (int k = 0; k < 3; k++) {
        int np = k < 2 ? cmir_cnn_n_params(m->cnn[k]) : cmir_unified_n_params(m->uni);
        for (int i = 0; i < np; i++) {
            float *w;
            size_t n;
            if (k < 2)
                cmir_cnn_param(m->cnn[k], i, NULL, &w, NULL, &n);
            else
                cmir_unified_param(m->uni, i, NULL, &w, NULL, &n);
            const unsigned char *b = (const unsigned char *)w;
            for (size_t j = 0; j < n * sizeof(float); j++)
                h = (h ^ b[j]) * 1099511628211ull;
        }
    }
    snprintf(m->id, sizeof m->id, "%016llx", (unsigned long long)h);
}

static int put_vec(cmir_tensorset *ts, const char *name, const float *v, int64_t n)
{
    cmir_tensor t = cmir_tensor_make((float *)v, 1, &n);
    return cmir_tensorset_put(ts, name, &t);
}

static int put_scalar(cmir_tensorset *ts, const char *name, double v)
{
    float f = (float)v;
    return put_vec(ts, name, &f, 1);
}

int cmir__model_save(cmir_model *m, const char *path)
{
    make_id(m);
    cmir_tensorset *ts = cmir_tensorset_new();
    if (!ts)
        return CMIR_ENOMEM;
    const cmir_model_info *i = &m->info;
    float pan[3] = {(float)i->pan_h, (float)i->pan_w, (float)i->pan_bands};
    float ms[3] = {(float)i->ms_h, (float)i->ms_w, (float)i->ms_bands};
    int rc = cmir_tensorset_put_string(ts, "CMIR_MODEL_FORMAT", FORMAT);
    if (!rc) rc = cmir_tensorset_put_string(ts, "MODEL_ID", m->id);
    if (!rc) rc = cmir_tensorset_put_string(ts, "SCENARIO", i->scenario ? "image-speech" : "pan-ms");
    if (!rc) rc = cmir_tensorset_put_string(ts, "PRECISION", cmir_precision_name(i->precision));
    if (!rc && i->scenario == CMIR_SCENARIO_IMAGE_SPEECH)
        rc = cmir__model_save_audio(m, ts);
    if (!rc) rc = cmir_cnn_save(m->cnn[0], ts, "pan_");
    if (!rc) rc = cmir_cnn_save(m->cnn[1], ts, "ms_");
    if (!rc) rc = cmir_unified_save(m->uni, ts);
    if (!rc) rc = put_vec(ts, "PAN_SIZE", pan, 3);
    if (!rc) rc = put_vec(ts, "MS_SIZE", ms, 3);
    if (!rc) rc = put_scalar(ts, "RATIO", i->ratio);
    if (!rc) rc = put_scalar(ts, "D_V", i->d_v);
    if (!rc) rc = put_scalar(ts, "HIDDEN", cmir_unified_get_params(m->uni).hidden);
    if (!rc) rc = put_scalar(ts, "N_CLASSES", i->n_classes);
    if (!rc) rc = put_scalar(ts, "MULTILABEL", i->multilabel);
    if (!rc) rc = put_scalar(ts, "DESCRIPTOR", i->descriptor);
    if (!rc) rc = put_scalar(ts, "CNN_WEIGHT", i->cnn_weight);
    if (!rc) rc = put_vec(ts, "PAN_MEAN", m->mean[0], i->pan_bands);
    if (!rc) rc = put_vec(ts, "PAN_STD", m->std[0], i->pan_bands);
    if (!rc) rc = put_vec(ts, "MS_MEAN", m->mean[1], i->ms_bands);
    if (!rc) rc = put_vec(ts, "MS_STD", m->std[1], i->ms_bands);
    if (!rc) rc = put_vec(ts, "PAN_Z_MEAN", m->zmean[0], CMIR_FEAT_DIM);
    if (!rc) rc = put_vec(ts, "PAN_Z_STD", m->zstd[0], CMIR_FEAT_DIM);
    if (!rc) rc = put_vec(ts, "MS_Z_MEAN", m->zmean[1], CMIR_FEAT_DIM);
    if (!rc) rc = put_vec(ts, "MS_Z_STD", m->zstd[1], CMIR_FEAT_DIM);
    if (!rc) {
        size_t len = 1;
        for (int c = 0; c < i->n_classes; c++)
            len += strlen(m->class_names[c]) + 1;
        char *s = cmir__malloc(len);
        if (!s) {
            rc = CMIR_ENOMEM;
        } else {
            s[0] = '\0';
            for (int c = 0; c < i->n_classes; c++) {
                if (c)
                    strcat(s, "\n");
                strcat(s, m->class_names[c]);
            }
            rc = cmir_tensorset_put_string(ts, "CLASS_NAMES", s);
            cmir__free(s);
        }
    }
    if (!rc) rc = cmir_tensorset_put_string(ts, "PAN_BAND_NAMES", m->band_names[0]);
    if (!rc) rc = cmir_tensorset_put_string(ts, "MS_BAND_NAMES", m->band_names[1]);
    if (!rc) rc = cmir_tensorset_put_string(ts, "TRAIN_SETTINGS", m->settings ? m->settings : "");
    if (!rc) rc = put_scalar(ts, "N_TILES", (double)m->n_tiles);
    if (!rc) {
        float *t = cmir__malloc(sizeof(float) * (size_t)(m->n_test ? m->n_test : 1));
        if (!t) {
            rc = CMIR_ENOMEM;
        } else {
            for (int64_t k = 0; k < m->n_test; k++)
                t[k] = (float)m->test[k];
            rc = put_vec(ts, "TEST_TILES", t, m->n_test);
            cmir__free(t);
        }
    }
    if (!rc && m->n_valid > 0) {
        float *t = cmir__malloc(sizeof(float) * (size_t)m->n_valid);
        if (!t) {
            rc = CMIR_ENOMEM;
        } else {
            for (int64_t k = 0; k < m->n_valid; k++)
                t[k] = (float)m->valid[k];
            rc = put_vec(ts, "VALID_TILES", t, m->n_valid);
            cmir__free(t);
        }
    }
    if (!rc)
        rc = cmir_tensorset_save(ts, path);
    cmir_tensorset_free(ts);
    return rc;
}

/* ---- loading ---- */
static int get_int(const cmir_tensorset *ts, const char *name, int lo, int hi, int *out)
{
    int64_t one = 1;
    int rc = cmir_tensorset_expect(ts, name, 1, &one);
    if (rc)
        return rc;
    float v = cmir_tensorset_get(ts, name)->data[0];
    if (!(v >= lo && v <= hi) || v != floorf(v))
        return cmir__error(CMIR_EFORMAT, "'%s' is %g, expected an integer in [%d, %d]", name, v, lo, hi);
    *out = (int)v;
    return 0;
}

static int get_vec(const cmir_tensorset *ts, const char *name, int n, float *out, int positive)
{
    int64_t nn = n;
    int rc = cmir_tensorset_expect(ts, name, 1, &nn);
    if (rc)
        return rc;
    const float *v = cmir_tensorset_get(ts, name)->data;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]) || (positive && !(v[i] > 0)))
            return cmir__error(CMIR_EFORMAT, "'%s' holds an invalid value", name);
        out[i] = v[i];
    }
    return 0;
}

static int load_sizes(const cmir_tensorset *ts, cmir_model_info *i)
{
    float s[2][3];
    int rc;
    if ((rc = get_vec(ts, "PAN_SIZE", 3, s[0], 1)) || (rc = get_vec(ts, "MS_SIZE", 3, s[1], 1)))
        return rc;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            if (s[k][j] != floorf(s[k][j]) || s[k][j] > 65536)
                return cmir__error(CMIR_EFORMAT, "%s holds an invalid size", k ? "MS_SIZE" : "PAN_SIZE");
    i->pan_h = (int)s[0][0]; i->pan_w = (int)s[0][1]; i->pan_bands = (int)s[0][2];
    i->ms_h = (int)s[1][0]; i->ms_w = (int)s[1][1]; i->ms_bands = (int)s[1][2];
    if (i->pan_bands > 1024 || i->ms_bands > 1024)
        return cmir__error(CMIR_EFORMAT, "too many bands");
    if ((rc = get_int(ts, "RATIO", 1, 1024, &i->ratio)) || (rc = get_int(ts, "D_V", 1, 4096, &i->d_v)) ||
        (rc = get_int(ts, "N_CLASSES", 1, 65535, &i->n_classes)) ||
        (rc = get_int(ts, "MULTILABEL", 0, 1, &i->multilabel)))
        return rc;
    i->descriptor = 0; /* files from before the descriptor */
    i->cnn_weight = 1.0f;
    if (cmir_tensorset_get(ts, "DESCRIPTOR") && (rc = get_int(ts, "DESCRIPTOR", 0, 1, &i->descriptor)))
        return rc;
    if (cmir_tensorset_get(ts, "CNN_WEIGHT") && (rc = get_vec(ts, "CNN_WEIGHT", 1, &i->cnn_weight, 1)))
        return rc;
    return 0;
}

static char *dup_string(const cmir_tensorset *ts, const char *name)
{
    const char *s = cmir_tensorset_get_string(ts, name);
    return s ? cmir__strdup(s) : NULL;
}

/* Format, sizes, scenario and the recorded identity. */
static int load_header(cmir_model *m, const cmir_tensorset *ts)
{
    const char *fmt = cmir_tensorset_get_string(ts, "CMIR_MODEL_FORMAT");
    if (!fmt)
        return cmir__error(CMIR_EFORMAT, "not a CMIR model (no CMIR_MODEL_FORMAT)");
    if (strcmp(fmt, FORMAT) != 0)
        return cmir__error(CMIR_EFORMAT, "model format '%s' is not supported (this build reads '%s')", fmt, FORMAT);
    int rc = load_sizes(ts, &m->info);
    if (rc)
        return rc;
    const char *sc = cmir_tensorset_get_string(ts, "SCENARIO");
    if (!sc || !strcmp(sc, "pan-ms"))
        m->info.scenario = CMIR_SCENARIO_PAN_MS;
    else if (!strcmp(sc, "image-speech"))
        m->info.scenario = CMIR_SCENARIO_IMAGE_SPEECH;
    else
        return cmir__error(CMIR_EFORMAT, "SCENARIO '%s' is not known (pan-ms or image-speech)", sc);
    const char *pr = cmir_tensorset_get_string(ts, "PRECISION");
    cmir_precision prec = CMIR_PRECISION_FP32;
    if (pr && cmir_precision_parse(pr, &prec))
        return cmir__error(CMIR_EFORMAT, "PRECISION '%s' is not known (fp32 or bf16)", pr);
    m->info.precision = (int)prec;
    if (m->info.scenario == CMIR_SCENARIO_IMAGE_SPEECH && (rc = cmir__model_load_audio(m, ts)) != 0)
        return rc;
    if (m->info.scenario == CMIR_SCENARIO_IMAGE_SPEECH &&
        (m->info.ms_h != 1 || m->info.ms_w != 1 || m->info.ms_bands != CMIR_AUDIO_FEATURE_DIM))
        return cmir__error(CMIR_EFORMAT, "an image-speech model needs MS_SIZE 1 x 1 x %d (the clip feature)",
                           CMIR_AUDIO_FEATURE_DIM);
    m->info.id = m->id;
    const char *id = cmir_tensorset_get_string(ts, "MODEL_ID");
    if (!id || strlen(id) != 16)
        return cmir__error(CMIR_EFORMAT, "MODEL_ID is missing or malformed");
    return 0;
}

/* The weights that the recorded sizes imply (a lower bound: the two CNN
 * classifiers and the unified space's layers) against the values the
 * file stores, before anything is allocated for them: sizes that claim
 * gigabytes in a small file are refused, not allocated. */
static int check_claims(const cmir_model *m, const cmir_tensorset *ts, int hidden)
{
    const int64_t C = m->info.n_classes, dv = m->info.d_v, F = CMIR_FEAT_DIM;
    const int64_t hid = hidden ? hidden : dv;
    int64_t need = 2 * F * C + 2 * F * hid + (hidden ? 2 * (int64_t)hidden * dv : 0) + 2 * dv * F +
                   dv * C, stored = 0;
    for (int i = 0; i < cmir_tensorset_count(ts); i++) {
        const cmir_tensor *t = cmir_tensorset_get(ts, cmir_tensorset_name(ts, i));
        stored += t ? cmir_tensor_numel(t) : 0;
    }
    if (need > stored)
        return cmir__error(CMIR_EFORMAT,
                           "its sizes (%lld classes, hidden %d, d_v %lld) need at least %lld weights "
                           "but the file stores %lld values", (long long)C, hidden, (long long)dv,
                           (long long)need, (long long)stored);
    return 0;
}

/* Class names (newline-separated, exactly n_classes of them), band names,
 * settings; every variable cmir__model_save writes is required: a file cut
 * between two of them is damaged, not an older model. */
static int load_texts(cmir_model *m, const cmir_tensorset *ts)
{
    const char *cn = cmir_tensorset_get_string(ts, "CLASS_NAMES");
    if (!cn)
        return cmir__error(CMIR_EFORMAT, "CLASS_NAMES is missing");
    for (int c = 0; c < m->info.n_classes; c++) {
        const char *e = strchr(cn, '\n');
        size_t len = e ? (size_t)(e - cn) : strlen(cn);
        if ((!e && c + 1 < m->info.n_classes) || (e && c + 1 == m->info.n_classes))
            return cmir__error(CMIR_EFORMAT, "CLASS_NAMES does not hold %d names", m->info.n_classes);
        if (!(m->class_names[c] = cmir__malloc(len + 1)))
            return CMIR_ENOMEM;
        memcpy(m->class_names[c], cn, len);
        m->class_names[c][len] = '\0';
        cn = e ? e + 1 : cn + len;
    }
    static const char *const texts[3] = {"PAN_BAND_NAMES", "MS_BAND_NAMES", "TRAIN_SETTINGS"};
    for (int k = 0; k < 3; k++)
        if (!cmir_tensorset_get_string(ts, texts[k]))
            return cmir__error(CMIR_EFORMAT, "%s is missing", texts[k]);
    if (!cmir_tensorset_get(ts, "TEST_TILES"))
        return cmir__error(CMIR_EFORMAT, "TEST_TILES is missing");
    m->band_names[0] = dup_string(ts, "PAN_BAND_NAMES");
    m->band_names[1] = dup_string(ts, "MS_BAND_NAMES");
    m->settings = dup_string(ts, "TRAIN_SETTINGS");
    if (!m->band_names[0] || !m->band_names[1] || !m->settings)
        return CMIR_ENOMEM;
    return 0;
}

/* Both CNNs and the unified space, then the identity recomputed from the
 * weights, which must match the recorded one. */
static int load_nets(cmir_model *m, const cmir_tensorset *ts, int hidden)
{
    int rc;
    for (int k = 0; k < 2; k++) {
        cmir_cnn_params p = cmir_cnn_default_params();
        int d[3];
        side_dims(&m->info, k, d);
        p.h = d[0]; p.w = d[1]; p.bands = d[2];
        p.n_classes = m->info.n_classes;
        if (!(m->cnn[k] = cmir_cnn_new(p, 0)))
            return cmir__failed(CMIR_EFORMAT);
        if ((rc = cmir_cnn_load(m->cnn[k], ts, k ? "ms_" : "pan_")))
            return rc;
    }
    cmir_unified_params up = cmir_unified_default_params();
    up.d_v = m->info.d_v;
    up.hidden = hidden;
    up.n_classes = m->info.n_classes;
    up.multilabel = m->info.multilabel;
    if (!(m->uni = cmir_unified_new(up, 0)))
        return cmir__failed(CMIR_EFORMAT);
    if ((rc = cmir_unified_load(m->uni, ts)))
        return rc;
    const char *id = cmir_tensorset_get_string(ts, "MODEL_ID");
    make_id(m);
    if (strcmp(m->id, id) != 0)
        return cmir__error(CMIR_EFORMAT, "MODEL_ID %s does not match its weights (%s): damaged or edited", id, m->id);
    return 0;
}

/* The tile indices in `name` (each in [0, n_tiles)) into a new *out, *n. */
static int load_tiles(const cmir_tensorset *ts, const char *name, int64_t n_tiles, int64_t **out,
                      int64_t *n)
{
    const cmir_tensor *tt = cmir_tensorset_get(ts, name);
    int64_t k, nt = cmir_tensor_numel(tt);
    *out = cmir__malloc(sizeof(int64_t) * (size_t)(nt ? nt : 1));
    if (!*out)
        return CMIR_ENOMEM;
    for (k = 0; k < nt; k++) {
        float v = tt->data[k];
        if (!(v >= 0 && v < (float)n_tiles) || v != floorf(v))
            return cmir__error(CMIR_EFORMAT, "%s holds an invalid index", name);
        (*out)[k] = (int64_t)v;
    }
    *n = nt;
    return 0;
}

/* N_TILES, the held-out tiles of the training split and, when saved, the
 * validation tiles. */
static int load_split(cmir_model *m, const cmir_tensorset *ts)
{
    int nt = 0, rc;
    if ((rc = get_int(ts, "N_TILES", 0, 1 << 30, &nt)))
        return rc;
    m->n_tiles = nt;
    if ((rc = load_tiles(ts, "TEST_TILES", nt, &m->test, &m->n_test)))
        return rc;
    if (cmir_tensorset_get(ts, "VALID_TILES"))
        return load_tiles(ts, "VALID_TILES", nt, &m->valid, &m->n_valid);
    return 0;
}

static int load_body(cmir_model *m, const cmir_tensorset *ts)
{
    int rc, hidden = 0;
    if ((rc = load_header(m, ts)) || (rc = get_int(ts, "HIDDEN", 0, 65536, &hidden)) ||
        (rc = check_claims(m, ts, hidden)) || (rc = alloc_common(m)))
        return rc;
    if ((rc = get_vec(ts, "PAN_MEAN", m->info.pan_bands, m->mean[0], 0)) ||
        (rc = get_vec(ts, "PAN_STD", m->info.pan_bands, m->std[0], 1)) ||
        (rc = get_vec(ts, "MS_MEAN", m->info.ms_bands, m->mean[1], 0)) ||
        (rc = get_vec(ts, "MS_STD", m->info.ms_bands, m->std[1], 1)) ||
        (rc = get_vec(ts, "PAN_Z_MEAN", CMIR_FEAT_DIM, m->zmean[0], 0)) ||
        (rc = get_vec(ts, "PAN_Z_STD", CMIR_FEAT_DIM, m->zstd[0], 1)) ||
        (rc = get_vec(ts, "MS_Z_MEAN", CMIR_FEAT_DIM, m->zmean[1], 0)) ||
        (rc = get_vec(ts, "MS_Z_STD", CMIR_FEAT_DIM, m->zstd[1], 1)))
        return rc;
    if ((rc = load_texts(m, ts)) || (rc = load_nets(m, ts, hidden)))
        return rc;
    return load_split(m, ts);
}

cmir_model *cmir_model_load(const char *path)
{
    cmir_tensorset *ts = cmir_tensorset_load(path);
    if (!ts)
        return NULL;
    cmir_model *m = cmir__calloc(1, sizeof *m);
    int rc = m ? load_body(m, ts) : CMIR_ENOMEM;
    cmir_tensorset_free(ts);
    if (rc) {
        if (rc != CMIR_ENOMEM) {
            char msg[900];
            snprintf(msg, sizeof msg, "%s", cmir_last_error());
            cmir__error(rc, "%s: %s", path, msg);
        }
        cmir_model_free(m);
        return NULL;
    }
    return m;
}

const cmir_model_info *cmir_model_get_info(const cmir_model *m) { return &m->info; }

void cmir_model_audio_params(const cmir_model *m, cmir_audio_params *p)
{
    *p = cmir_audio_default_params();
    if (m && m->info.scenario == CMIR_SCENARIO_IMAGE_SPEECH) {
        p->feature = m->info.audio_feature;
        cmir__model_audio_params(m, p);
    }
}

const char *cmir_model_modality_name(const cmir_model *m, cmir_modality k)
{
    static const char *const n[2][2] = {{"PAN", "MS"}, {"image", "audio"}};
    int s = m && m->info.scenario == CMIR_SCENARIO_IMAGE_SPEECH;
    return n[s][k ? 1 : 0];
}

const char *cmir_model_class_name(const cmir_model *m, int c)
{
    static _Thread_local char buf[32];
    if (m && c >= 1 && c <= m->info.n_classes && m->class_names[c - 1])
        return m->class_names[c - 1];
    snprintf(buf, sizeof buf, "class_%d", c);
    return buf;
}

int cmir_model_class_of(const cmir_model *m, const char *name)
{
    for (int c = 1; m && c <= m->info.n_classes; c++)
        if (cmir_audio_label_match(name, m->class_names[c - 1]))
            return c;
    return 0;
}

const int64_t *cmir_model_test_tiles(const cmir_model *m, int64_t *n, int64_t *n_tiles)
{
    if (n)
        *n = m->n_test;
    if (n_tiles)
        *n_tiles = m->n_tiles;
    return m->test;
}

const int64_t *cmir_model_valid_tiles(const cmir_model *m, int64_t *n)
{
    if (n)
        *n = m->n_valid;
    return m->n_valid > 0 ? m->valid : NULL;
}

int cmir_model_embed(cmir_model *m, cmir_exec *ex, cmir_modality modality, const float *tiles, int n,
                     float *Z, float *V)
{
    if (!m || !tiles || n < 0 || (modality != 0 && modality != 1))
        return cmir__error(CMIR_EINVAL, "cmir_model_embed: bad arguments");
    if (!ex) {
        if (!m->own_ex && !(m->own_ex = cmir_exec_new(cmir_exec_default_params())))
            return CMIR_ENOMEM;
        ex = m->own_ex;
    }
    int d[3];
    size_t per = (size_t)side_dims(&m->info, modality, d);
    size_t need = per * CMIR_EMBED_BATCH;
    if (m->norm_cap < need) {
        cmir__free_aligned(m->norm);
        m->norm = cmir__malloc_aligned(need * sizeof(float));
        m->norm_cap = m->norm ? need : 0;
        if (!m->norm)
            return CMIR_ENOMEM;
    }
    for (int i = 0; i < n; i += CMIR_EMBED_BATCH) {
        int b = n - i < CMIR_EMBED_BATCH ? n - i : CMIR_EMBED_BATCH;
        cmir__model_normalise(m, modality, tiles + per * i, b, m->norm);
        int rc = cmir_cnn_forward(m->cnn[modality], ex, m->norm, b, 0, NULL);
        if (rc)
            return rc;
        float *z = cmir_cnn_features(m->cnn[modality]);
        cmir__model_describe(m, modality, m->norm, b, z);
        if (Z)
            memcpy(Z + (size_t)i * CMIR_FEAT_DIM, z, sizeof(float) * (size_t)b * CMIR_FEAT_DIM);
        cmir__model_zstd(m, modality, z, b); /* in the network's buffer: overwritten next forward */
        if (V && (rc = cmir_unified_encode(m->uni, ex, modality, z, b, V + (size_t)i * m->info.d_v)))
            return rc;
    }
    return 0;
}
