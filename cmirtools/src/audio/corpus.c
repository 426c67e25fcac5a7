/* Spoken-label corpora for the image <-> speech scenario: a manifest CSV
 * (file,label,voice,held_out) read strictly, and the clip feature of every
 * file it lists, computed once with one extractor. */
#include "audio_internal.h"
#include "../base/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

struct cmir_audio_corpus {
    int64_t n;
    float *feat;             /* n x CMIR_AUDIO_FEATURE_DIM */
    char **file, **label, **voice;
    uint8_t *held;
    char *vocab;             /* sphinx: the resolved vocabulary */
    int64_t silent;          /* sphinx: clips in which nothing was heard */
};

void cmir_audio_corpus_free(cmir_audio_corpus *c)
{
    if (!c)
        return;
    for (int64_t i = 0; i < c->n; i++) {
        cmir__free(c->file[i]);
        cmir__free(c->label[i]);
        cmir__free(c->voice[i]);
    }
    cmir__free(c->file);
    cmir__free(c->label);
    cmir__free(c->voice);
    cmir__free(c->held);
    cmir__free(c->feat);
    cmir__free(c->vocab);
    cmir__free(c);
}

/* Splits line (modified) at commas into at most 4 trimmed fields. */
static int split4(char *line, char *f[4])
{
    int k = 0;
    char *s = line;
    for (;;) {
        char *e = strchr(s, ',');
        if (k == 4)
            return 5;
        if (e)
            *e = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        size_t len = strlen(s);
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' || s[len - 1] == '\n'))
            s[--len] = '\0';
        f[k++] = s;
        if (!e)
            return k;
        s = e + 1;
    }
}

static int grow(cmir_audio_corpus *c, int64_t *cap)
{
    if (c->n < *cap)
        return 0;
    int64_t nc = *cap ? 2 * *cap : 256;
    char **f = cmir__realloc(c->file, sizeof(char *) * (size_t)nc);
    if (f) c->file = f;
    char **l = f ? cmir__realloc(c->label, sizeof(char *) * (size_t)nc) : NULL;
    if (l) c->label = l;
    char **v = l ? cmir__realloc(c->voice, sizeof(char *) * (size_t)nc) : NULL;
    if (v) c->voice = v;
    uint8_t *h = v ? cmir__realloc(c->held, (size_t)nc) : NULL;
    if (h) c->held = h;
    if (!h)
        return CMIR_ENOMEM;
    *cap = nc;
    return 0;
}

/* Reads the manifest's rows; files are resolved against its folder. */
static int read_manifest(cmir_audio_corpus *c, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return cmir__error(CMIR_EIO, "%s: cannot open the manifest", path);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    char line[4096];
    int64_t cap = 0, ln = 0;
    int rc = 0;
    while (!rc && fgets(line, sizeof line, fp)) {
        ln++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = cmir__error(CMIR_EFORMAT, "%s:%lld: line too long", path, (long long)ln);
            break;
        }
        for (size_t i = 0; i < len; i++)
            if (!line[i] || (!isprint((unsigned char)line[i]) && !isspace((unsigned char)line[i]) &&
                             (unsigned char)line[i] < 0x80)) {
                rc = cmir__error(CMIR_EFORMAT, "%s:%lld: not a text line", path, (long long)ln);
                break;
            }
        if (rc)
            break;
        char *f[4];
        int k = split4(line, f);
        if (k == 1 && !f[0][0])
            continue; /* blank line */
        if (ln == 1) {
            if (k != 4 || strcmp(f[0], "file") || strcmp(f[1], "label") || strcmp(f[2], "voice") ||
                strcmp(f[3], "held_out"))
                rc = cmir__error(CMIR_EFORMAT, "%s: not a speech manifest (the header must be "
                                 "file,label,voice,held_out)", path);
            continue;
        }
        if (k != 4 || !f[0][0] || !f[1][0] || (strcmp(f[3], "0") && strcmp(f[3], "1"))) {
            rc = cmir__error(CMIR_EFORMAT, "%s:%lld: expected file,label,voice,held_out (0 or 1)", path,
                             (long long)ln);
            break;
        }
        if ((rc = grow(c, &cap)))
            break;
        size_t fl = strlen(f[0]);
        int absolute = f[0][0] == '/';
        char *full = cmir__malloc((absolute ? 0 : dlen) + fl + 1);
        char *lab = cmir__strdup(f[1]), *voi = cmir__strdup(f[2]);
        if (!full || !lab || !voi) {
            cmir__free(full); cmir__free(lab); cmir__free(voi);
            rc = CMIR_ENOMEM;
            break;
        }
        if (!absolute)
            memcpy(full, path, dlen);
        memcpy(full + (absolute ? 0 : dlen), f[0], fl + 1);
        c->file[c->n] = full;
        c->label[c->n] = lab;
        c->voice[c->n] = voi;
        c->held[c->n] = f[3][0] == '1';
        c->n++;
    }
    if (!rc && ferror(fp))
        rc = cmir__error(CMIR_EIO, "%s: read error", path);
    if (!rc && ln == 0)
        rc = cmir__error(CMIR_EFORMAT, "%s: empty manifest", path);
    else if (!rc && c->n == 0)
        rc = cmir__error(CMIR_EFORMAT, "%s: the manifest lists no clips", path);
    fclose(fp);
    return rc;
}

/* The manifest's distinct labels (cmir_audio_label_match) in order of first
 * appearance, one a line: the default sphinx vocabulary. */
static char *manifest_labels(const cmir_audio_corpus *c)
{
    size_t len = 1;
    for (int64_t i = 0; i < c->n; i++)
        len += strlen(c->label[i]) + 1;
    char *v = cmir__malloc(len);
    if (!v)
        return NULL;
    size_t at = 0;
    for (int64_t i = 0; i < c->n; i++) {
        int seen = 0;
        for (int64_t j = 0; j < i && !seen; j++)
            seen = cmir_audio_label_match(c->label[i], c->label[j]);
        if (!seen)
            at += (size_t)sprintf(v + at, "%s%s", at ? "\n" : "", c->label[i]);
    }
    v[at] = '\0';
    return v;
}

cmir_audio_corpus *cmir_audio_corpus_load(const char *manifest, cmir_audio_params p,
                                          cmir_progress_fn progress, void *user)
{
    if (!manifest) {
        cmir__error(CMIR_EINVAL, "cmir_audio_corpus_load: no manifest");
        return NULL;
    }
    cmir_audio_corpus *c = cmir__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int rc = read_manifest(c, manifest);
    cmir_audio_extractor *ex = NULL;
    if (!rc && !(c->feat = cmir__malloc(sizeof(float) * CMIR_AUDIO_FEATURE_DIM * (size_t)c->n)))
        rc = CMIR_ENOMEM;
    char *labels = NULL;
    if (!rc && p.feature == CMIR_AUDIO_FEATURE_SPHINX && !p.vocabulary) {
        if (!(labels = manifest_labels(c)))
            rc = CMIR_ENOMEM;
        p.vocabulary = labels;
    }
    if (!rc && !(ex = cmir_audio_extractor_new(p)))
        rc = cmir__failed(CMIR_EINVAL);
    if (!rc && ex->sphinx && !(c->vocab = cmir__strdup(cmir_audio_extractor_vocabulary(ex))))
        rc = CMIR_ENOMEM;
    for (int64_t i = 0; !rc && i < c->n; i++) {
        float *x = NULL, *f = c->feat + (size_t)i * CMIR_AUDIO_FEATURE_DIM;
        int64_t n = 0;
        int heard = 1;
        rc = cmir_audio_load(c->file[i], p, &x, &n);
        if (!rc && ex->sphinx) /* a clip with nothing heard keeps an all-zero feature */
            rc = cmir__sphinx_feature(ex->sphinx, x, n, f, &heard);
        else if (!rc)
            rc = cmir_audio_extractor_feature(ex, x, n, f);
        c->silent += !heard;
        cmir__free(x);
        if (!rc && progress && progress((double)(i + 1) / (double)c->n, NULL, user))
            rc = cmir__error(CMIR_ECANCEL, "cancelled");
    }
    cmir_audio_extractor_free(ex);
    cmir__free(labels);
    if (rc) {
        cmir_audio_corpus_free(c);
        return NULL;
    }
    return c;
}

const char *cmir_audio_corpus_vocabulary(const cmir_audio_corpus *c) { return c ? c->vocab : NULL; }
int64_t cmir_audio_corpus_silent(const cmir_audio_corpus *c) { return c ? c->silent : 0; }

int cmir_audio_corpus_heard_own(const cmir_audio_corpus *c, int64_t i)
{
    if (!c || i < 0 || i >= c->n)
        return 0;
    if (!c->vocab)
        return 1;
    const char *v = c->vocab;
    for (int k = 0; *v && k < CMIR_AUDIO_FEATURE_DIM; k++) {
        size_t len = strcspn(v, "\t\n");
        char l[256];
        snprintf(l, sizeof l, "%.*s", (int)(len < 255 ? len : 255), v);
        if (cmir_audio_label_match(l, c->label[i]))
            return c->feat[(size_t)i * CMIR_AUDIO_FEATURE_DIM + (size_t)k] > 0.5f;
        v += strcspn(v, "\n");
        v += *v == '\n';
    }
    return 0;
}

int64_t cmir_audio_corpus_count(const cmir_audio_corpus *c) { return c ? c->n : 0; }
const float *cmir_audio_corpus_features(const cmir_audio_corpus *c) { return c ? c->feat : NULL; }

static int in_range(const cmir_audio_corpus *c, int64_t i) { return c && i >= 0 && i < c->n; }

const char *cmir_audio_corpus_file(const cmir_audio_corpus *c, int64_t i)
{
    return in_range(c, i) ? c->file[i] : NULL;
}
const char *cmir_audio_corpus_label(const cmir_audio_corpus *c, int64_t i)
{
    return in_range(c, i) ? c->label[i] : NULL;
}
const char *cmir_audio_corpus_voice(const cmir_audio_corpus *c, int64_t i)
{
    return in_range(c, i) ? c->voice[i] : NULL;
}
int cmir_audio_corpus_held_out(const cmir_audio_corpus *c, int64_t i)
{
    return in_range(c, i) ? c->held[i] : 0;
}

int cmir_audio_label_match(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    for (; *a && *b; a++, b++) {
        int x = tolower((unsigned char)*a), y = tolower((unsigned char)*b);
        if (x == '_') x = ' ';
        if (y == '_') y = ' ';
        if (x != y)
            return 0;
    }
    return *a == *b;
}
