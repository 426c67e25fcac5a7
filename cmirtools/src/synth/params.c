/* The synth module's settings (defaults, validation, class names) and the
 * DSRSID-like tool: scenes written as PAN/MS/class GeoTIFF triples with
 * provenance metadata, progress over the whole run. */
#include "synth_internal.h"

#include <gdal.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const class_names[CMIR_SYNTH_NCLASSES] = {
    "aquafarm", "cloud", "forest", "high building", "low building", "farm land", "river", "water"};

const char *cmir_synth_class_name(int c)
{
    return c >= 1 && c <= CMIR_SYNTH_NCLASSES ? class_names[c - 1] : NULL;
}

cmir_synth_params cmir_synth_default_params(void)
{
    cmir_synth_params p;
    memset(&p, 0, sizeof p);
    p.size = 2048;
    p.n_scenes = 1;
    p.seed = 1;
    p.epsg = 32650;
    p.origin_x = 420000.0;
    p.origin_y = 3900000.0;
    p.pan_res = 2.0;
    p.oversample = 2;
    p.cell_size = 1000.0;
    p.variation = 0.6;
    p.noise = 1.0;
    p.confusion = 0.3;
    p.ratio = 4;
    p.mtf = 0.3;
    p.pan_weights[0] = 0.20;
    p.pan_weights[1] = 0.25;
    p.pan_weights[2] = 0.25;
    p.pan_weights[3] = 0.30;
    /* Radiometric calibration: one gain for PAN and all MS bands (so PAN
     * DN - offset = the weighted sum of MS DN - offsets), offsets as path
     * radiance. Fitted on 32 default scenes of 1024 x 1024 to DSRSID's PAN
     * mean 74 / std 23 and MS band means 113, 112, 85, 53. */
    p.pan_gain = 167.0;
    p.pan_offset = 48.4;
    for (int b = 0; b < 4; b++)
        p.ms_gain[b] = 167.0;
    p.ms_offset[0] = 91.3;
    p.ms_offset[1] = 88.4;
    p.ms_offset[2] = 62.3;
    p.ms_offset[3] = 20.7;
    p.class_res = CMIR_SYNTH_CLASS_AT_MS;
    return p;
}

static int finite_in(double v, double lo, double hi) { return isfinite(v) && v >= lo && v <= hi; }

int cmir__sy_check_common(const cmir_synth_params *p)
{
    if (p->n_scenes < 1 || p->first_index < 0 || p->first_index > INT_MAX - p->n_scenes)
        return cmir__error(CMIR_EINVAL, "synth: n_scenes must be >= 1 and first_index >= 0 (got %d, %d)",
                           p->n_scenes, p->first_index);
    if (!finite_in(p->variation, 0.0, 1.0))
        return cmir__error(CMIR_EINVAL, "synth: variation must be in [0, 1], got %g", p->variation);
    if (!finite_in(p->noise, 0.0, 100.0))
        return cmir__error(CMIR_EINVAL, "synth: noise must be in [0, 100], got %g", p->noise);
    if (p->threads < 0 || p->threads > 1024)
        return cmir__error(CMIR_EINVAL, "synth: threads must be in 0..1024, got %d", p->threads);
    return 0;
}

int cmir__sy_check_render(const cmir_synth_params *p, int index)
{
    if (index < 0)
        return cmir__error(CMIR_EINVAL, "synth: scene index must be >= 0, got %d", index);
    char *wkt = cmir__sy_epsg_wkt(p->epsg);
    if (!wkt)
        return CMIR_EINVAL;
    cmir__free(wkt);
    return 0;
}

int cmir_synth_check_params(const cmir_synth_params *p)
{
    if (!p)
        return cmir__error(CMIR_EINVAL, "synth: no parameters");
    if (p->ratio < 1 || p->ratio > 16)
        return cmir__error(CMIR_EINVAL, "synth: ratio must be in 1..16, got %d", p->ratio);
    if (p->size < p->ratio || p->size > 16384 || p->size % p->ratio)
        return cmir__error(CMIR_EINVAL,
                           "synth: size must be a positive multiple of ratio (%d) up to 16384, got %d",
                           p->ratio, p->size);
    int rc = cmir__sy_check_common(p);
    if (rc)
        return rc;
    if (!finite_in(p->pan_res, 1e-3, 1e4))
        return cmir__error(CMIR_EINVAL, "synth: pan_res must be in [0.001, 10000] m, got %g", p->pan_res);
    if (p->oversample < 1 || p->oversample > 4)
        return cmir__error(CMIR_EINVAL, "synth: oversample must be in 1..4, got %d", p->oversample);
    if (!finite_in(p->cell_size, 50.0, 1e6) || p->size * p->pan_res / p->cell_size > 4000.0)
        return cmir__error(CMIR_EINVAL,
                           "synth: cell_size must be >= 50 m and >= scene width / 4000, got %g",
                           p->cell_size);
    if (!finite_in(p->confusion, 0.0, 1.0))
        return cmir__error(CMIR_EINVAL, "synth: confusion must be in [0, 1], got %g", p->confusion);
    if (!finite_in(p->mtf, 0.05, 0.95))
        return cmir__error(CMIR_EINVAL, "synth: mtf must be in [0.05, 0.95], got %g", p->mtf);
    double s = 0.0;
    for (int b = 0; b < 4; b++) {
        if (!finite_in(p->pan_weights[b], 0.0, 1e6))
            return cmir__error(CMIR_EINVAL, "synth: pan_weights[%d] must be >= 0, got %g", b,
                               p->pan_weights[b]);
        s += p->pan_weights[b];
        if (!finite_in(p->ms_gain[b], 1e-9, 1e9) || !finite_in(p->ms_offset[b], -1e9, 1e9))
            return cmir__error(CMIR_EINVAL, "synth: ms_gain[%d] must be > 0 and ms_offset finite", b);
    }
    if (s <= 0.0)
        return cmir__error(CMIR_EINVAL, "synth: pan_weights must not all be 0");
    if (!finite_in(p->pan_gain, 1e-9, 1e9) || !finite_in(p->pan_offset, -1e9, 1e9))
        return cmir__error(CMIR_EINVAL, "synth: pan_gain must be > 0 and pan_offset finite");
    if (p->class_res != CMIR_SYNTH_CLASS_AT_MS && p->class_res != CMIR_SYNTH_CLASS_AT_PAN)
        return cmir__error(CMIR_EINVAL, "synth: class_res must be CLASS_AT_MS or CLASS_AT_PAN");
    int zero = !p->bands[0] && !p->bands[1] && !p->bands[2] && !p->bands[3];
    for (int b = 0; b < 4 && !zero; b++)
        if (p->bands[b] < 1)
            return cmir__error(CMIR_EINVAL, "synth: bands must be 4 band numbers >= 1, got %d",
                               p->bands[b]);
    if (p->wald_type != CMIR_SYNTH_FLOAT32 && p->wald_type != CMIR_SYNTH_UINT16)
        return cmir__error(CMIR_EINVAL, "synth: wald_type must be FLOAT32 or UINT16");
    return 0;
}

/* "CMIR_SYNTH=..." provenance line: everything that decides the pixels. */
static void provenance(const cmir_synth_params *p, int index, char *buf, size_t n)
{
    snprintf(buf, n,
             "CMIR_SYNTH=cmir_synth %s seed=%llu scene=%d size=%d res=%g ratio=%d oversample=%d "
             "cell=%g variation=%g noise=%g confusion=%g mtf=%g epsg=%d",
             cmir_version(), (unsigned long long)p->seed, index, p->size, p->pan_res, p->ratio,
             p->oversample, p->cell_size, p->variation, p->noise, p->confusion, p->mtf, p->epsg);
}

int cmir_synth_scene_write(const cmir_synth_params *p, const cmir_synth_scene *s,
                           const char *prefix)
{
    if (!p || !s || !s->pan || !s->ms || !s->cls || !prefix)
        return cmir__error(CMIR_EINVAL, "synth: nothing to write");
    int rc = cmir__sy_check_options(p->creation_options);
    if (rc)
        return rc;
    char *wkt = cmir__sy_epsg_wkt(s->epsg);
    if (!wkt)
        return CMIR_EINVAL;
    size_t pl = strlen(prefix) + 16;
    char *name = cmir__malloc(pl);
    if (!name) {
        cmir__free(wkt);
        return CMIR_ENOMEM;
    }
    char prov[512];
    provenance(p, s->index, prov, sizeof prov);
    char cls_meta[CMIR_SYNTH_NCLASSES][48];
    char *meta[CMIR_SYNTH_NCLASSES + 2] = {prov};
    for (int c = 1; c <= CMIR_SYNTH_NCLASSES; c++) {
        snprintf(cls_meta[c - 1], sizeof cls_meta[c - 1], "CLASS_%d=%s", c, cmir_synth_class_name(c));
        meta[c] = cls_meta[c - 1];
    }
    char *meta_img[2] = {prov, NULL};
    static const char *const pan_desc[1] = {"PAN"};
    static const char *const ms_desc[4] = {"Blue", "Green", "Red", "NIR"};
    static const char *const cls_desc[1] = {"class"};
    static const int pan_ci[1] = {GCI_GrayIndex};
    static const int ms_ci[4] = {GCI_BlueBand, GCI_GreenBand, GCI_RedBand, GCI_Undefined};
    sy_raster pan = {.w = s->pan_w, .h = s->pan_h, .nbands = 1, .gdt = GDT_Byte, .data = s->pan,
                     .wkt = wkt, .band_desc = pan_desc, .color_interp = pan_ci, .metadata = meta_img};
    sy_raster ms = {.w = s->ms_w, .h = s->ms_h, .nbands = 4, .gdt = GDT_Byte, .data = s->ms,
                    .wkt = wkt, .band_desc = ms_desc, .color_interp = ms_ci, .metadata = meta_img};
    sy_raster cls = {.w = s->class_w, .h = s->class_h, .nbands = 1, .gdt = GDT_Byte,
                     .data = s->cls, .wkt = wkt, .band_desc = cls_desc, .is_class = 1,
                     .metadata = meta};
    memcpy(pan.gt, s->pan_gt, sizeof pan.gt);
    memcpy(ms.gt, s->ms_gt, sizeof ms.gt);
    memcpy(cls.gt, s->class_gt, sizeof cls.gt);
    sy_outset o = {0};
    snprintf(name, pl, "%s_pan.tif", prefix);
    rc = cmir__sy_write(&o, name, &pan, p->creation_options);
    if (!rc) {
        snprintf(name, pl, "%s_ms.tif", prefix);
        rc = cmir__sy_write(&o, name, &ms, p->creation_options);
    }
    if (!rc) {
        snprintf(name, pl, "%s_class.tif", prefix);
        rc = cmir__sy_write(&o, name, &cls, p->creation_options);
    }
    if (!rc)
        rc = cmir__sy_commit(&o);
    cmir__sy_outset_clear(&o);
    cmir__free(name);
    cmir__free(wkt);
    return rc;
}

/* Progress of one scene mapped into its share of the run. */
typedef struct sub_progress {
    cmir_progress_fn fn;
    void *user;
    double base, span;
} sub_progress;

static int sub_cb(double frac, const char *msg, void *user)
{
    sub_progress *s = user;
    return s->fn(s->base + s->span * frac, msg, s->user);
}

int cmir__sy_run(const cmir_synth_params *p, const char *dir, const char *name, double render_share,
                 cmir__sy_scene_fn scene, cmir_progress_fn progress, void *user)
{
    int rc;
    if ((rc = cmir__sy_check_options(p->creation_options)))
        return rc;
    if (!dir || !*dir)
        dir = ".";
    if (!name || !*name || strchr(name, '/'))
        return cmir__error(CMIR_EINVAL, "synth: the name must be a non-empty file name prefix");
    ptrdiff_t made;
    if ((rc = cmir__sy_make_dirs(dir, &made)))
        return rc;
    size_t pl = strlen(dir) + strlen(name) + 32;
    char *prefix = cmir__malloc(pl);
    if (!prefix) {
        cmir__sy_unmake_dirs(dir, made);
        return CMIR_ENOMEM;
    }
    sub_progress sp = {progress, user, 0, 0};
    for (int k = 0; k < p->n_scenes && !rc; k++) {
        int index = p->first_index + k;
        sp.base = (double)k / p->n_scenes;
        sp.span = render_share / p->n_scenes;
        snprintf(prefix, pl, "%s/%s_%03d", dir, name, index);
        rc = scene(p, index, prefix, progress ? sub_cb : NULL, &sp);
        if (!rc && progress && progress((double)(k + 1) / p->n_scenes, "scene written", user))
            rc = cmir__error(CMIR_ECANCEL, "synth: cancelled by the progress callback");
    }
    cmir__free(prefix);
    if (rc)
        cmir__sy_unmake_dirs(dir, made);
    return rc;
}

/* One DSRSID-like scene: rendered, written, freed. */
static int dsrsid_scene(const cmir_synth_params *p, int index, const char *prefix, cmir_progress_fn progress,
                        void *user)
{
    cmir_synth_scene s;
    int rc = cmir_synth_render(p, index, &s, progress, user);
    if (!rc)
        rc = cmir_synth_scene_write(p, &s, prefix);
    cmir_synth_scene_free(&s);
    return rc;
}

int cmir_synth_run(const cmir_synth_params *p, const char *dir, const char *name,
                   cmir_progress_fn progress, void *user)
{
    int rc = cmir_synth_check_params(p);
    return rc ? rc : cmir__sy_run(p, dir, name, 0.95, dsrsid_scene, progress, user);
}

/* mkdir -p: creates dir and its missing parents (mode 0777 less the
 * umask). *made is set to the length of the prefix of dir that existed
 * before (-1 when nothing was created), for cmir__sy_unmake_dirs. */
int cmir__sy_make_dirs(const char *dir, ptrdiff_t *made)
{
    *made = -1;
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : cmir__error(CMIR_EINVAL, "%s: not a directory", dir);
    size_t n = strlen(dir);
    char *p = cmir__malloc(n + 1);
    if (!p)
        return CMIR_ENOMEM;
    memcpy(p, dir, n + 1);
    int rc = 0;
    for (size_t i = 1; i <= n && !rc; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        if (p[i - 1] == '/')
            continue; /* "a//b" */
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) == 0) {
            if (*made < 0)
                *made = (ptrdiff_t)(strrchr(p, '/') ? strrchr(p, '/') - p : 0);
        } else if (errno != EEXIST) {
            rc = cmir__error(errno == ENOENT ? CMIR_ENOTFOUND : CMIR_EIO, "%s: cannot create the directory: %s",
                             p, strerror(errno));
        } else if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc = cmir__error(CMIR_EINVAL, "%s: not a directory", p);
        }
        p[i] = c;
    }
    cmir__free(p);
    if (rc)
        cmir__sy_unmake_dirs(dir, *made);
    return rc;
}

/* Removes the directories cmir__sy_make_dirs created for dir, deepest
 * first, as far as they are empty (a run that wrote nothing leaves none). */
void cmir__sy_unmake_dirs(const char *dir, ptrdiff_t made)
{
    if (made < 0)
        return;
    size_t n = strlen(dir);
    char *p = cmir__malloc(n + 1);
    if (!p)
        return;
    memcpy(p, dir, n + 1);
    while (n > 0 && p[n - 1] == '/')
        p[--n] = '\0';
    while ((ptrdiff_t)n > made && rmdir(p) == 0) {
        char *s = strrchr(p, '/');
        if (!s)
            break;
        while (s > p && s[-1] == '/')
            s--;
        *s = '\0';
        n = (size_t)(s - p);
    }
    cmir__free(p);
}
