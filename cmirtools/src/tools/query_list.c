/* Query list files for the search tool: one query per line ('row N',
 * 'raster FILE [X Y W H]', 'audio FILE'), read whole and parsed in place,
 * so that memory is bounded by the file's size. */
#include "../base/internal.h"
#include "cmir/index.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cmir_query_list {
    char *text;       /* the file, NUL-terminated; the queries' strings point into it */
    cmir_query *q;
    int n;
};

static const char EXPECTED[] = "expected 'row N', 'raster FILE [X Y W H]' or 'audio FILE'";

/* The whole file, NUL-terminated (*len bytes before the NUL). */
static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cmir__error(CMIR_EIO, "%s: cannot read the query list: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0, got;
    char *buf = cmir__malloc(cap + 1);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *g = cap > SIZE_MAX / 4 ? NULL : cmir__realloc(buf, cap * 2 + 1);
            if (!g) {
                cmir__free(buf);
                buf = NULL;
                break;
            }
            buf = g;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        cmir__error(CMIR_EIO, "%s: cannot read the query list: %s", path, strerror(errno));
        cmir__free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* Splits s (one line, NUL-terminated) into at most max blank-separated
 * tokens in place; returns their number, or max + 1 when there are more. */
static int tokens(char *s, char **tok, int max)
{
    int n = 0;
    for (;;) {
        s += strspn(s, " \t\r\v\f");
        if (!*s)
            return n;
        if (n == max)
            return max + 1;
        tok[n++] = s;
        s += strcspn(s, " \t\r\v\f");
        if (*s)
            *s++ = '\0';
    }
}

/* A whole decimal integer in [lo, hi]. */
static int parse_int(const char *s, long long lo, long long hi, long long *v)
{
    char *end;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return end != s && !*end && !errno && *v >= lo && *v <= hi;
}

/* One query line (tokens in place) into e; 0 or -1 when malformed. */
static int parse_line(char *line, cmir_query *e)
{
    char *t[7];
    int n = tokens(line, t, 6);
    long long v[4];
    memset(e, 0, sizeof *e);
    if (n == 2 && !strcmp(t[0], "row") && parse_int(t[1], 0, INT64_MAX, &v[0])) {
        e->kind = CMIR_QUERY_ROW;
        e->row = v[0];
        return 0;
    }
    if (n == 2 && !strcmp(t[0], "audio")) {
        e->kind = CMIR_QUERY_AUDIO;
        e->audio = t[1];
        return 0;
    }
    if ((n != 2 && n != 6) || strcmp(t[0], "raster"))
        return -1;
    e->kind = CMIR_QUERY_RASTER;
    e->raster = t[1];
    for (int j = 0; n == 6 && j < 4; j++) {
        if (!parse_int(t[2 + j], 0, INT_MAX, &v[j]))
            return -1;
        e->window[j] = (int)v[j];
    }
    e->has_window = n == 6;
    return 0;
}

/* Lines that may hold a query: not a comment, and at least 5 bytes from
 * the first non-blank one ("row N"); shorter ones are refused anyway. */
static size_t count_candidates(const char *text, size_t len)
{
    size_t n = 0, i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        i += strspn(text + i, " \t\r\v\f");
        n += i < end && text[i] != '#' && end - i >= 5;
        i = end + 1;
    }
    return n;
}

int cmir_query_list_load(const char *path, cmir_query_list **out)
{
    if (!out || !path)
        return cmir__error(CMIR_EINVAL, "cmir_query_list_load: need a path and an output");
    *out = NULL;
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text)
        return cmir__failed(CMIR_EIO);
    /* one query per candidate line of 6 bytes or more (with its newline):
     * the array (56-byte queries) stays under ten times the file's size */
    size_t cand = count_candidates(text, len);
    cmir_query_list *L = cmir__calloc(1, sizeof *L);
    cmir_query *q = cmir__malloc(sizeof *q * (cand ? cand : 1));
    if (!L || !q) {
        cmir__free(text);
        cmir__free(L);
        cmir__free(q);
        return CMIR_ENOMEM;
    }
    L->text = text;
    L->q = q;
    int rc = 0, ln = 0;
    for (char *s = text; !rc && s <= text + len; ln++) {
        char *nl = memchr(s, '\n', (size_t)(text + len - s));
        char *end = nl ? nl : text + len;
        if (memchr(s, '\0', (size_t)(end - s)))
            rc = cmir__error(CMIR_EFORMAT, "%s:%d: a NUL byte in the line", path, ln + 1);
        *end = '\0';
        const char *first = s + strspn(s, " \t\r\v\f");
        if (!rc && *first && *first != '#') {
            if ((size_t)L->n >= cand || L->n == INT_MAX || parse_line(s, &q[L->n]))
                rc = cmir__error(CMIR_EFORMAT, "%s:%d: %s", path, ln + 1, EXPECTED);
            else
                L->n++;
        }
        s = end + 1;
    }
    if (!rc && !L->n)
        rc = cmir__error(CMIR_EFORMAT, "%s: no queries in the list (%s)", path, EXPECTED);
    if (rc)
        cmir_query_list_free(L);
    else
        *out = L;
    return rc;
}

int cmir_query_list_count(const cmir_query_list *l) { return l ? l->n : 0; }
const cmir_query *cmir_query_list_queries(const cmir_query_list *l) { return l ? l->q : NULL; }

void cmir_query_list_free(cmir_query_list *l)
{
    if (!l)
        return;
    cmir__free(l->text);
    cmir__free(l->q);
    cmir__free(l);
}
