/* The speaker-independent clip feature CMIR_AUDIO_FEATURE_SPHINX: the clip
 * decoded by pocketsphinx (acoustic model trained on real speech) against a
 * JSGF grammar of the vocabulary's labels, joined by "and"; the labels on
 * the best path make the feature. Also the acoustic model's identity. */
#include "audio_internal.h"
#include "../base/internal.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <pocketsphinx.h>
#include <sphinxbase/err.h>
#include <sphinxbase/fsg_model.h>
#include <sphinxbase/jsgf.h>

#define MAXPHONES 1024 /* characters of one label's pronunciation */

struct cmir__sphinx {
    cmd_ln_t *cfg;
    ps_decoder_t *ps;
    int n;            /* labels */
    char **token;     /* [n] the grammar word of each label */
    char *vocab;      /* the resolved vocabulary (cmir_audio_extractor_vocabulary) */
    int16_t *pcm;     /* scratch */
    int64_t pcm_cap;
};

static const char *hmm_of(const cmir_audio_params *p)
{
    return p->sphinx_hmm ? p->sphinx_hmm : CMIR_AUDIO_SPHINX_HMM;
}
static const char *dict_of(const cmir_audio_params *p)
{
    return p->sphinx_dict ? p->sphinx_dict : CMIR_AUDIO_SPHINX_DICT;
}

/* FNV-1a 64 of a file's bytes folded into *h. */
static int hash_file(const char *path, uint64_t *h)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return cmir__error(CMIR_EIO, "%s: cannot open (acoustic model or dictionary)", path);
    unsigned char buf[65536];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0)
        for (size_t i = 0; i < got; i++)
            *h = (*h ^ buf[i]) * 0x100000001b3ULL;
    int bad = ferror(fp);
    fclose(fp);
    return bad ? cmir__error(CMIR_EIO, "%s: read error", path) : 0;
}

int cmir_audio_sphinx_identity(const char *hmm, const char *dict, char sum[17])
{
    if (!sum)
        return cmir__error(CMIR_EINVAL, "cmir_audio_sphinx_identity: NULL output");
    hmm = hmm ? hmm : CMIR_AUDIO_SPHINX_HMM;
    dict = dict ? dict : CMIR_AUDIO_SPHINX_DICT;
    uint64_t h = 0xcbf29ce484222325ULL;
    char path[4096];
    static const char *const parts[] = {"mdef", "means", "variances", "transition_matrices"};
    for (int i = 0; i < 4; i++) {
        if (snprintf(path, sizeof path, "%s/%s", hmm, parts[i]) >= (int)sizeof path)
            return cmir__error(CMIR_EINVAL, "%s: acoustic model path too long", hmm);
        int rc = hash_file(path, &h);
        if (rc)
            return rc;
    }
    int rc = hash_file(dict, &h);
    if (rc)
        return rc;
    snprintf(sum, 17, "%016llx", (unsigned long long)h);
    return 0;
}

void cmir__sphinx_free(cmir__sphinx *s)
{
    if (!s)
        return;
    if (s->ps)
        ps_free(s->ps);
    if (s->cfg)
        cmd_ln_free_r(s->cfg);
    for (int i = 0; s->token && i < s->n; i++)
        cmir__free(s->token[i]);
    cmir__free(s->token);
    cmir__free(s->vocab);
    cmir__free(s->pcm);
    cmir__free(s);
}

/* Appends text to the growing string *buf (length *len, capacity *cap). */
static int append(char **buf, size_t *len, size_t *cap, const char *text)
{
    size_t t = strlen(text);
    if (*len + t + 1 > *cap) {
        size_t nc = (*len + t + 1) * 2;
        char *b = cmir__realloc(*buf, nc);
        if (!b)
            return CMIR_ENOMEM;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, text, t + 1);
    *len += t;
    return 0;
}

/* Looks word up in the extra dictionary file (CMUdict format: "WORD PH PH",
 * ";;;" comments, "WORD(2)" variants skipped): 1 and its phones in out, 0
 * when absent, or a negative code for a malformed file. */
static int extra_lookup(const char *path, const char *word, char *out, size_t outsz)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return cmir__error(CMIR_EIO, "%s: cannot open the dictionary", path);
    char line[2048];
    long ln = 0;
    int found = 0, rc = 0;
    while (!found && !rc && fgets(line, sizeof line, fp)) {
        ln++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = cmir__error(CMIR_EFORMAT, "%s:%ld: line too long for a dictionary", path, ln);
            break;
        }
        if (!strncmp(line, ";;;", 3))
            continue;
        char *w = line, *ph;
        while (*w == ' ' || *w == '\t')
            w++;
        if (!*w || *w == '\n' || *w == '\r')
            continue;
        for (ph = w; *ph && !isspace((unsigned char)*ph); ph++)
            if (!isgraph((unsigned char)*ph)) break;
        if (*ph && !isspace((unsigned char)*ph)) {
            rc = cmir__error(CMIR_EFORMAT, "%s:%ld: not a dictionary line (WORD PHONE ...)", path, ln);
            break;
        }
        size_t wl = (size_t)(ph - w);
        while (*ph == ' ' || *ph == '\t')
            ph++;
        len = strlen(ph);
        while (len && isspace((unsigned char)ph[len - 1]))
            ph[--len] = '\0';
        int ok = len > 0;
        for (size_t i = 0; ok && i < len; i++)
            ok = isupper((unsigned char)ph[i]) || isdigit((unsigned char)ph[i]) || ph[i] == ' ' ||
                 ph[i] == '\t' || ph[i] == '_';
        if (!ok) {
            rc = cmir__error(CMIR_EFORMAT, "%s:%ld: not a dictionary line (WORD PHONE ..., phones "
                             "in capitals)", path, ln);
            break;
        }
        if (wl == strlen(word) && !strncasecmp(w, word, wl)) {
            if (len + 1 > outsz)
                rc = cmir__error(CMIR_EFORMAT, "%s:%ld: pronunciation too long", path, ln);
            else
                memcpy(out, ph, len + 1), found = 1;
        }
    }
    if (!rc && ferror(fp))
        rc = cmir__error(CMIR_EIO, "%s: read error", path);
    fclose(fp);
    return rc ? rc : found;
}

/* The phones of one label: an explicit "label<TAB>PHONES" entry, else each
 * word from the extra dictionary or the main one. *from_extra says whether
 * the resolved vocabulary must carry the phones. */
static int label_phones(cmir__sphinx *s, const cmir_audio_params *p, const char *label, const char *given,
                        char *out, int *n_words, int *from_extra)
{
    char words[256], one[MAXPHONES];
    size_t ol = 0;
    *n_words = 0;
    *from_extra = 0;
    out[0] = '\0';
    if (given) {
        if (strlen(given) >= MAXPHONES)
            return cmir__error(CMIR_EINVAL, "vocabulary: the pronunciation of '%s' is too long", label);
        strcpy(out, given);
        *from_extra = 1;
        *n_words = 2; /* always a grammar word of its own */
        return 0;
    }
    snprintf(words, sizeof words, "%s", label);
    char *save = NULL;
    for (char *w = strtok_r(words, " _", &save); w; w = strtok_r(NULL, " _", &save)) {
        for (char *c = w; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        int got = p->extra_dict ? extra_lookup(p->extra_dict, w, one, sizeof one) : 0;
        if (got < 0)
            return got;
        if (got) {
            *from_extra = 1;
        } else {
            char *ph = ps_lookup_word(s->ps, w);
            if (!ph)
                return cmir__error(CMIR_EINVAL, "vocabulary: no pronunciation for '%s' (word '%s') in %s; "
                                   "give one in a CMUdict-format file (-dict)", label, w, dict_of(p));
            snprintf(one, sizeof one, "%s", ph);
            free(ph); /* allocated by pocketsphinx */
        }
        int wrote = snprintf(out + ol, MAXPHONES - ol, "%s%s", ol ? " " : "", one);
        if (wrote < 0 || ol + (size_t)wrote >= MAXPHONES)
            return cmir__error(CMIR_EINVAL, "vocabulary: the pronunciation of '%s' is too long", label);
        ol += (size_t)wrote;
        (*n_words)++;
    }
    if (!*n_words)
        return cmir__error(CMIR_EINVAL, "vocabulary: an empty label");
    return 0;
}

/* Checks a label's characters: letters, digits, ' ', '_', '-', '\''. */
static int label_ok(const char *l)
{
    if (!*l || strlen(l) > 200)
        return 0;
    for (; *l; l++)
        if (!isalnum((unsigned char)*l) && !strchr(" _-'", *l))
            return 0;
    return 1;
}

/* 1 when label is already a line (before any tab) of the vocabulary v. */
static int listed(const char *v, const char *label)
{
    while (*v) {
        size_t len = strcspn(v, "\t\n");
        char l[256];
        snprintf(l, sizeof l, "%.*s", (int)(len < 255 ? len : 255), v);
        if (cmir_audio_label_match(l, label))
            return 1;
        v += strcspn(v, "\n");
        v += *v == '\n';
    }
    return 0;
}

/* Adds label k (entry "label" or "label<TAB>PHONES") to the dictionary and
 * to the grammar g and the resolved vocabulary v. */
static int add_label(cmir__sphinx *s, const cmir_audio_params *p, int k, char *entry, char **g, size_t *gl,
                     size_t *gc, char **v, size_t *vl, size_t *vc)
{
    char *tab = strchr(entry, '\t'), phones[MAXPHONES], tok[32];
    if (tab)
        *tab++ = '\0';
    if (!label_ok(entry))
        return cmir__error(CMIR_EINVAL, "vocabulary: label '%s' has characters other than letters, digits, "
                           "' ', '_', '-' and '''", entry);
    if (cmir_audio_label_match(entry, "and"))
        return cmir__error(CMIR_EINVAL, "vocabulary: 'and' joins labels in a phrase and cannot be one");
    if (*v && listed(*v, entry))
        return cmir__error(CMIR_EINVAL, "vocabulary: label '%s' is listed twice", entry);
    int nw, extra, rc = label_phones(s, p, entry, tab, phones, &nw, &extra);
    if (rc)
        return rc;
    if (nw == 1 && !extra) { /* the dictionary's own word, with all its variants */
        char w[256];
        snprintf(w, sizeof w, "%s", entry);
        for (char *c = w; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        s->token[k] = cmir__strdup(w);
    } else {
        snprintf(tok, sizeof tok, "cmir_label_%d", k);
        if (ps_add_word(s->ps, tok, phones, 0) < 0)
            return cmir__error(CMIR_EINVAL, "vocabulary: pronunciation '%s' of '%s' has phones the acoustic "
                               "model %s does not know", phones, entry, hmm_of(p));
        s->token[k] = cmir__strdup(tok);
    }
    if (!s->token[k])
        return CMIR_ENOMEM;
    if ((rc = append(g, gl, gc, k ? " | " : "<l> = ")) || (rc = append(g, gl, gc, s->token[k])))
        return rc;
    if ((rc = append(v, vl, vc, k ? "\n" : "")) || (rc = append(v, vl, vc, entry)))
        return rc;
    if (extra && ((rc = append(v, vl, vc, "\t")) || (rc = append(v, vl, vc, phones))))
        return rc;
    return 0;
}

/* What ps_set_jsgf_string does, without its leak (Debian 12's
 * pocketsphinx never frees the parsed grammar): JSGF text to an FSG
 * search, made the decoder's search. 0 or -1. */
static int set_grammar(ps_decoder_t *ps, const char *g)
{
    jsgf_t *jg = jsgf_parse_string(g, NULL);
    jsgf_rule_t *rule = jg ? jsgf_get_public_rule(jg) : NULL;
    fsg_model_t *fsg = rule ? jsgf_build_fsg(jg, rule, ps_get_logmath(ps),
                                             cmd_ln_float32_r(ps_get_config(ps), "-lw"))
                            : NULL;
    int rc = fsg && ps_set_fsg(ps, "cmir", fsg) >= 0 && ps_set_search(ps, "cmir") >= 0 ? 0 : -1;
    if (fsg)
        fsg_model_free(fsg); /* the search keeps its own reference */
    if (jg)
        jsgf_grammar_free(jg);
    return rc;
}

/* Splits the vocabulary into entries and builds the grammar. */
static int build_grammar(cmir__sphinx *s, const cmir_audio_params *p)
{
    size_t vlen = strlen(p->vocabulary);
    char *copy = cmir__strdup(p->vocabulary), *g = NULL, *v = NULL;
    size_t gl = 0, gc = 0, vl = 0, vc = 0;
    int n = 1, rc = 0;
    if (!copy)
        return CMIR_ENOMEM;
    for (size_t i = 0; i < vlen; i++)
        if (copy[i] == '\n' || copy[i] == '|')
            n++, copy[i] = '\n';
    if (n > CMIR_AUDIO_FEATURE_DIM)
        rc = cmir__error(CMIR_EUNSUPPORTED, "vocabulary: %d labels, at most %d", n, CMIR_AUDIO_FEATURE_DIM);
    if (!rc && !(s->token = cmir__calloc((size_t)n, sizeof(char *))))
        rc = CMIR_ENOMEM;
    if (!rc)
        rc = append(&g, &gl, &gc, "#JSGF V1.0;\ngrammar cmir;\npublic <q> = <l> ( and <l> )*;\n");
    char *e = copy;
    for (int k = 0; !rc && k < n; k++) {
        char *nl = strchr(e, '\n');
        if (nl)
            *nl = '\0';
        while (*e == ' ')
            e++;
        size_t el = strlen(e);
        while (el && (e[el - 1] == ' ' || e[el - 1] == '\r'))
            e[--el] = '\0';
        s->n = k + 1;
        if (!rc)
            rc = add_label(s, p, k, e, &g, &gl, &gc, &v, &vl, &vc);
        e = nl ? nl + 1 : e + el;
    }
    if (!rc)
        rc = append(&g, &gl, &gc, ";\n");
    if (!rc && set_grammar(s->ps, g))
        rc = cmir__error(CMIR_EINVAL, "vocabulary: pocketsphinx refused the grammar of the labels");
    cmir__free(copy);
    cmir__free(g);
    if (rc)
        cmir__free(v);
    else
        s->vocab = v;
    return rc;
}

cmir__sphinx *cmir__sphinx_new(const cmir_audio_params *p)
{
    if (!p->vocabulary || !*p->vocabulary) {
        cmir__error(CMIR_EINVAL, "audio: the sphinx feature needs a vocabulary (the labels)");
        return NULL;
    }
    cmir__sphinx *s = cmir__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    char mdef[4096];
    snprintf(mdef, sizeof mdef, "%s/mdef", hmm_of(p));
    FILE *fp = fopen(mdef, "rb");
    if (!fp) {
        cmir__error(CMIR_EIO, "%s: no acoustic model there (install pocketsphinx-en-us)", hmm_of(p));
        cmir__sphinx_free(s);
        return NULL;
    }
    fclose(fp);
    if (!(fp = fopen(dict_of(p), "r"))) {
        cmir__error(CMIR_EIO, "%s: cannot open the pronunciation dictionary", dict_of(p));
        cmir__sphinx_free(s);
        return NULL;
    }
    fclose(fp);
    err_set_logfp(NULL); /* the library never prints: pocketsphinx logs nothing */
    /* Whole clips are decoded at once, so cepstral mean normalisation runs
     * over the whole clip (batch) rather than from a live estimate. */
    s->cfg = cmd_ln_init(NULL, ps_args(), TRUE, "-hmm", hmm_of(p), "-dict", dict_of(p), "-cmn", "batch", NULL);
    s->ps = s->cfg ? ps_init(s->cfg) : NULL;
    if (!s->ps) {
        cmir__error(CMIR_EFORMAT, "%s: pocketsphinx cannot load this acoustic model with %s", hmm_of(p),
                    dict_of(p));
        cmir__sphinx_free(s);
        return NULL;
    }
    if (build_grammar(s, p)) {
        cmir__sphinx_free(s);
        return NULL;
    }
    return s;
}

const char *cmir__sphinx_vocabulary(const cmir__sphinx *s) { return s ? s->vocab : NULL; }
int cmir__sphinx_n_labels(const cmir__sphinx *s) { return s ? s->n : 0; }

/* Decodes x; *heard gets the labels of the best hypothesis (up to max). */
static int decode(cmir__sphinx *s, const float *x, int64_t n, int *heard, int max, int *n_heard)
{
    if (n > s->pcm_cap) {
        int16_t *b = cmir__realloc(s->pcm, sizeof(int16_t) * (size_t)n);
        if (!b)
            return CMIR_ENOMEM;
        s->pcm = b;
        s->pcm_cap = n;
    }
    float peak = 0.0f;
    for (int64_t i = 0; i < n; i++)
        peak = fabsf(x[i]) > peak ? fabsf(x[i]) : peak;
    float g = peak > 0.0f ? 16384.0f / peak : 0.0f; /* peak at -6 dBFS: gain does not matter */
    for (int64_t i = 0; i < n; i++)
        s->pcm[i] = (int16_t)lrintf(x[i] * g);
    *n_heard = 0;
    if (ps_start_utt(s->ps) < 0 || ps_process_raw(s->ps, s->pcm, (size_t)n, FALSE, TRUE) < 0 ||
        ps_end_utt(s->ps) < 0)
        return cmir__error(CMIR_EFORMAT, "audio: pocketsphinx could not decode the clip");
    int32 score;
    const char *hyp = ps_get_hyp(s->ps, &score);
    if (!hyp)
        return 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", hyp);
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save))
        for (int k = 0; k < s->n; k++)
            if (!strcmp(w, s->token[k]) && *n_heard < max) {
                int dup = 0;
                for (int j = 0; j < *n_heard; j++)
                    dup |= heard[j] == k;
                if (!dup)
                    heard[(*n_heard)++] = k;
            }
    return 0;
}

int cmir__sphinx_feature(cmir__sphinx *s, const float *x, int64_t n, float feat[CMIR_AUDIO_FEATURE_DIM],
                         int *n_heard)
{
    int heard[CMIR_AUDIO_FEATURE_DIM];
    int rc = decode(s, x, n, heard, CMIR_AUDIO_FEATURE_DIM, n_heard);
    if (rc)
        return rc;
    memset(feat, 0, sizeof(float) * CMIR_AUDIO_FEATURE_DIM);
    if (!*n_heard)
        return 0;
    for (int j = 0; j < *n_heard; j++)
        feat[heard[j]] = 1.0f; /* the labels of the best path */
    return 0;
}

int cmir__sphinx_heard(cmir__sphinx *s, const float *x, int64_t n, int *labels, int max, int *n_heard)
{
    return decode(s, x, n, labels, max, n_heard);
}
