/* Query files (.cmirq) and tile files (.cmirt): small KEY=VALUE text files
 * that stand for a CMIR:QUERY or for one tile of an archive, so that programs
 * which accept only existing file paths (QGIS Processing, qgis_process) reach
 * them through the GDAL driver. Reading, with relative paths resolved
 * against the file's directory, and atomic writing. */
#define _DEFAULT_SOURCE /* realpath */
#include "../base/internal.h"
#include "cmir/index.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYFILE_MAX_BYTES 65536 /* a key file is a few lines; more is not one */

/* Keys whose values are file paths, resolved against the key file's directory. */
static int is_path_key(const char *kv)
{
    static const char *const keys[] = {"MODEL=", "INDEX=", "RASTER=", "AUDIO=", "ARCHIVE="};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strncmp(kv, keys[i], strlen(keys[i])))
            return (int)strlen(keys[i]);
    return 0;
}

/* "KEY=VALUE" with VALUE made relative to dir (dir/VALUE) unless absolute or a /vsi path. */
static char *resolved(const char *line, const char *dir)
{
    int at = is_path_key(line);
    const char *v = line + at;
    size_t n = strlen(line) + strlen(dir) + 2;
    char *s = cmir__malloc(n);
    if (!s)
        return NULL;
    if (at && v[0] && v[0] != '/' && dir[0])
        snprintf(s, n, "%.*s%s/%s", at, line, dir, v);
    else
        snprintf(s, n, "%s", line);
    return s;
}

void cmir_keyfile_free(char **kv)
{
    for (size_t i = 0; kv && kv[i]; i++)
        cmir__free(kv[i]);
    cmir__free(kv);
}

/* The lines of text after the magic line into *kv (resolved against dir). */
static int parse_lines(const char *path, char *text, const char *dir, char ***kv)
{
    size_t n = 0, cap = 8;
    char **out = cmir__calloc(cap + 1, sizeof *out);
    int rc = out ? 0 : CMIR_ENOMEM, lineno = 1;
    char *s = strchr(text, '\n');
    s = s ? s + 1 : text + strlen(text);
    while (!rc && *s) {
        char *line = s, *end = strchr(s, '\n');
        s = end ? end + 1 : s + strlen(s);
        if (end)
            *end = '\0';
        lineno++;
        line += strspn(line, " \t");
        size_t len = strlen(line);
        while (len && strchr(" \t\r", line[len - 1]))
            line[--len] = '\0';
        if (!len || line[0] == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq || eq == line || strcspn(line, " \t") < (size_t)(eq - line)) {
            rc = cmir__error(CMIR_EFORMAT, "%s:%d: expected KEY=VALUE, got '%.60s'", path, lineno, line);
            break;
        }
        for (char *k = line; k < eq; k++) /* keys are upper case, as GDAL's open options */
            *k = (char)(*k >= 'a' && *k <= 'z' ? *k - 32 : *k);
        if (n == cap) {
            char **g = cmir__realloc(out, sizeof *out * (cap * 2 + 1));
            if (!g) {
                rc = CMIR_ENOMEM;
                break;
            }
            out = g;
            cap *= 2;
        }
        if (!(out[n] = resolved(line, dir)))
            rc = CMIR_ENOMEM;
        else
            out[++n] = NULL;
    }
    if (rc) {
        cmir_keyfile_free(out);
        return rc;
    }
    *kv = out;
    return 0;
}

int cmir_keyfile_read(const char *path, const char *magic, char ***kv)
{
    if (kv)
        *kv = NULL;
    if (!path || !magic || !kv)
        return cmir__error(CMIR_EINVAL, "cmir_keyfile_read: need a path, a magic line and an output");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cmir__error(CMIR_EIO, "%s: cannot read: %s", path, strerror(errno));
    char *text = cmir__malloc(KEYFILE_MAX_BYTES + 1);
    size_t got = text ? fread(text, 1, KEYFILE_MAX_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!text)
        return CMIR_ENOMEM;
    int rc = 0;
    size_t ml = strlen(magic);
    if (bad)
        rc = cmir__error(CMIR_EIO, "%s: cannot read", path);
    else if (got > KEYFILE_MAX_BYTES)
        rc = cmir__error(CMIR_EFORMAT, "%s: larger than %d bytes: not a %s file", path, KEYFILE_MAX_BYTES, magic);
    else if (memchr(text, '\0', got))
        rc = cmir__error(CMIR_EFORMAT, "%s: binary data: not a %s file", path, magic);
    text[got] = '\0';
    if (!rc && (strncmp(text, magic, ml) != 0 || strncmp(text + ml, " 1", 2) != 0 ||
                !strchr("\r\n", text[ml + 2])))
        rc = cmir__error(CMIR_EFORMAT, "%s: the first line is not '%s 1'", path, magic);
    if (!rc) {
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 0, path);
        if (slash == path)
            snprintf(dir, sizeof dir, "/");
        rc = parse_lines(path, text, dir, kv);
    }
    cmir__free(text);
    return rc;
}

/* An absolute spelling of path (realpath, else as given) into buf. */
static const char *absolute(const char *path, char *buf)
{
    if (path[0] == '/' || !realpath(path, buf))
        return path;
    return buf;
}

/* Writes text to path atomically. */
static int write_text(const char *path, const char *text)
{
    cmir__atomic_file af;
    FILE *f = cmir__atomic_fopen(&af, path);
    if (!f)
        return cmir_last_error_code();
    fputs(text, f);
    return cmir__atomic_fclose(f, &af);
}

static const char *target_name(cmir_target t)
{
    switch (t) {
    case CMIR_TARGET_OTHER: return "other";
    case CMIR_TARGET_ANY: return "any";
    case CMIR_TARGET_PAN: return "pan";
    case CMIR_TARGET_MS: return "ms";
    }
    return "other";
}

int cmir_query_file_write(const char *path, const char *model, const char *index, const cmir_query *q,
                          cmir_search_params p)
{
    if (!path || !model || !index || !q)
        return cmir__error(CMIR_EINVAL, "cmir_query_file_write: need a path, a model, an index and a query");
    if (cmir_search_check_params(p))
        return CMIR_EINVAL;
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX], text[4 * PATH_MAX + 1024];
    int n = snprintf(text, sizeof text,
                     "%s 1\n# A CMIR retrieval query: open it with ogrinfo, ogr2ogr or QGIS (GDAL driver CMIR).\n"
                     "# Keys as CMIR:QUERY's (gdalinfo --format CMIR); relative paths are relative to this file.\n"
                     "MODEL=%s\nINDEX=%s\n", CMIR_QUERY_FILE_MAGIC, absolute(model, a), absolute(index, b));
    if (q->kind == CMIR_QUERY_ROW)
        n += snprintf(text + n, sizeof text - (size_t)n, "ROW=%lld\n", (long long)q->row);
    else if (q->kind == CMIR_QUERY_RASTER && q->raster) {
        n += snprintf(text + n, sizeof text - (size_t)n, "RASTER=%s\n", absolute(q->raster, c));
        if (q->has_window)
            n += snprintf(text + n, sizeof text - (size_t)n, "SRCWIN=%d,%d,%d,%d\n", q->window[0], q->window[1],
                          q->window[2], q->window[3]);
    } else if (q->kind == CMIR_QUERY_AUDIO && q->audio)
        n += snprintf(text + n, sizeof text - (size_t)n, "AUDIO=%s\n", absolute(q->audio, c));
    else
        return cmir__error(CMIR_EINVAL, "%s: the query is malformed", path);
    n += snprintf(text + n, sizeof text - (size_t)n, "K=%d\nTARGET=%s\n", p.k, target_name(p.filter.modality));
    if (p.filter.has_bbox)
        n += snprintf(text + n, sizeof text - (size_t)n, "BBOX=%.17g,%.17g,%.17g,%.17g\n", p.filter.bbox[0],
                      p.filter.bbox[1], p.filter.bbox[2], p.filter.bbox[3]);
    if (isfinite(p.filter.max_dist))
        n += snprintf(text + n, sizeof text - (size_t)n, "MAX_DIST=%.9g\n", (double)p.filter.max_dist);
    if (n < 0 || (size_t)n >= sizeof text)
        return cmir__error(CMIR_EINVAL, "%s: paths too long for a query file", path);
    for (const char *s = text; *s; s++)
        if (*s == '\r')
            return cmir__error(CMIR_EINVAL, "%s: a path holds a carriage return", path);
    return write_text(path, text);
}

int cmir_tile_file_write(const char *path, const char *archive, int modality, int64_t tile)
{
    if (!path || !archive || (modality != CMIR_PAN && modality != CMIR_MS) || tile < 0)
        return cmir__error(CMIR_EINVAL, "cmir_tile_file_write: need a path, an archive, PAN or MS and a tile >= 0");
    char a[PATH_MAX], text[PATH_MAX + 512];
    int n = snprintf(text, sizeof text,
                     "%s 1\n# One tile of a CMIR tile archive: open it with gdalinfo, gdal_translate or QGIS "
                     "(GDAL driver CMIR).\n# A relative ARCHIVE is relative to this file.\n"
                     "ARCHIVE=%s\nMODALITY=%s\nTILE=%lld\n",
                     CMIR_TILE_FILE_MAGIC, absolute(archive, a), modality == CMIR_MS ? "MS" : "PAN", (long long)tile);
    if (n < 0 || (size_t)n >= sizeof text || strchr(archive, '\n'))
        return cmir__error(CMIR_EINVAL, "%s: archive path unusable in a tile file", path);
    return write_text(path, text);
}
