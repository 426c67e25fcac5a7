/* cmir_synth: makes PAN/MS scene pairs, either DSRSID-like simulated scenes
 * with class rasters or, with -wald, a pair derived from a real
 * multispectral raster, or with -rgb very-high-resolution RGB scenes with a
 * 17-label raster; a thin main() over cmir_synth_run/_wald/_rgb_run. */
#include "cmir/synth.h"
#include "cmir_app.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cmir_synth [--help] [--version] [-q] [-n N] [-size PIXELS] [-seed S] [-first K]\n"
    "                  [-o DIR] [-prefix NAME] [-epsg CODE] [-origin X Y] [-res METRES]\n"
    "                  [-ratio R] [-oversample F] [-cell METRES] [-variation V] [-noise N]\n"
    "                  [-confusion C] [-mtf M] [-pan_weights B,G,R,NIR] [-class_res ms|pan]\n"
    "                  [-threads T] [-co NAME=VALUE]... [-overwrite]\n"
    "       cmir_synth -wald INPUT [INPUT]... [-bands B,G,R,NIR] [-ratio R] [-mtf M]\n"
    "                  [-pan_weights B,G,R,NIR] [-ot Float32|UInt16] [-labels RASTER]\n"
    "                  [-class_res ms|pan] [-o DIR] [-prefix NAME] [-co NAME=VALUE]... [-q]\n"
    "                  [-oo NAME=VALUE]... [-overwrite]\n"
    "       cmir_synth -indices MS_RASTER [-bands B,G,R,NIR] [-o DIR] [-prefix NAME] [-co NAME=VALUE]...\n"
    "                  [-oo NAME=VALUE]... [-overwrite]\n"
    "       cmir_synth -rgb [-n N] [-size PIXELS] [-seed S] [-first K] [-o DIR] [-prefix NAME]\n"
    "                  [-epsg CODE] [-origin X Y] [-res METRES] [-cell METRES] [-variation V]\n"
    "                  [-noise N] [-threads T] [-co NAME=VALUE]... [-q] [-overwrite]\n"
    "\n"
    "DSRSID-like mode (default) renders N georeferenced scenes of the 8 DSRSID classes\n"
    "(1 aquafarm, 2 cloud, 3 forest, 4 high building, 5 low building, 6 farm land, 7 river,\n"
    "8 water) as a 4-band reflectance field and observes it with a PAN/MS sensor. Scene K\n"
    "is written as DIR/NAME_KKK_pan.tif (1 band Byte, RES m), DIR/NAME_KKK_ms.tif (4 bands\n"
    "Byte Blue, Green, Red, NIR at R x RES m, same extent) and DIR/NAME_KKK_class.tif (Byte\n"
    "classes, colour table; category names in its .aux.xml). Same options + seed give\n"
    "byte-identical files; scene K does not depend on -n or -threads.\n"
    "  -n N           number of scenes (default 1)\n"
    "  -size PIXELS   PAN width and height, a multiple of R (default 2048)\n"
    "  -seed S        random seed, unsigned 64-bit (default 1)\n"
    "  -first K       index of the first scene (default 0): scenes K..K+N-1\n"
    "  -epsg CODE     projected CRS in metres (default 32650, WGS 84 / UTM 50N)\n"
    "  -origin X Y    upper-left corner of scene 0 in CRS metres (default 420000 3900000);\n"
    "                 scene K is placed at column K%8, row K/8 with 1024 m gaps\n"
    "  -res METRES    PAN pixel size (default 2)\n"
    "  -oversample F  render the ground at RES/F and average, 1..4 (default 2)\n"
    "  -cell METRES   mean size of the class regions (default 1000)\n"
    "  -variation V   0..1 intra-class variation of spectra and textures (default 0.6)\n"
    "  -noise N       sensor noise multiplier, 0 = none (default 1)\n"
    "  -confusion C   0..1, makes water/river/aquafarm and low/high building closer (0.3)\n"
    "  -class_res ms|pan  grid of the class raster: MS (mode of each block; default) or PAN\n"
    "  -threads T     rendering threads, 0 = all CPUs (default); never changes the output\n"
    "\n"
    "Index mode (-indices) writes DIR/NAME_class.tif (default NAME 'indices'), land-cover classes\n"
    "of a real multispectral raster from spectral indices, for scenes without labels: 1 water\n"
    "(NDWI > 0), 2 cloud (very bright, NDVI < 0.2), then the other land by NDVI terciles:\n"
    "3 built or bare, 4 sparse vegetation, 5 dense vegetation (-bands as below).\n\n"
"Wald mode (-wald) reads a real multispectral raster: INPUT is one multi-band raster, a\n"
    "VRT, or several single-band rasters of the same grid whose bands are stacked in order.\n"
    "It writes DIR/NAME_pan.tif (weighted band sum at the input resolution) and\n"
    "DIR/NAME_ms.tif (bands blurred and decimated by R: pixel size R x input, same origin\n"
    "and CRS), cropped to a multiple of R pixels. Nodata (or NaN) in any band is nodata in\n"
    "PAN; an MS pixel is nodata when any pixel under the blur kernel is.\n"
    "  -bands B,G,R,NIR   1-based stack bands of blue, green, red, NIR; required unless\n"
    "                 the inputs hold exactly 4 bands (then 1,2,3,4)\n"
    "  -ot Float32|UInt16 Float32 (default) keeps the input's units, nodata = blue band's\n"
    "                 nodata or -99999; UInt16 scales the valid range to 1..65535 (nodata 0)\n"
    "                 and records GDAL scale/offset to recover the values\n"
    "  -labels RASTER land-cover raster resampled onto the class grid (mode or nearest;\n"
    "                 reprojected if needed) and written as DIR/NAME_class.tif\n"
    "\n"
    "RGB mode (-rgb) renders N very-high-resolution true-colour scenes (UC-Merced-like) with\n"
    "a per-pixel raster of the 17 UC-Merced multi-labels (1 airplane, 2 bare soil,\n"
    "3 buildings, 4 cars, 5 chaparral, 6 court, 7 dock, 8 field, 9 grass, 10 mobile home,\n"
    "11 pavement, 12 sand, 13 sea, 14 ship, 15 tanks, 16 trees, 17 water): land-cover regions\n"
    "with objects on suitable ground. Scene K is written as DIR/NAME_KKK_rgb.tif (3 bands\n"
    "Byte Red, Green, Blue) and DIR/NAME_KKK_class.tif (Byte labels 1..17 on the same grid,\n"
    "colour table; category names in its .aux.xml). Tile them with `cmir_tile -pan\n"
    "NAME_KKK_rgb.tif -labels NAME_KKK_class.tif -multilabel 0.01 ARCHIVE` (no -ms).\n"
    "It takes -n, -size (default 2048), -seed, -first, -epsg (default 32610, UTM 10N),\n"
    "-origin (default 720000 4134000), -res (pixel size, default 0.3), -cell (region\n"
    "spacing, default 110), -variation, -noise and -threads as above.\n"
    "\n"
    "DSRSID-like and Wald modes:\n"
    "  -ratio R       MS/PAN pixel-size ratio, 1..16 (default 4)\n"
    "  -mtf M         Gaussian MTF at the MS Nyquist frequency, 0.05..0.95 (default 0.3)\n"
    "  -pan_weights B,G,R,NIR  PAN spectral weights, normalised (default 0.2,0.25,0.25,0.3)\n"
    "\n"
    "All modes:\n"
    "  -o DIR         output directory, created if missing (default .)\n"
    "  -prefix NAME   file name prefix (default 'scene', 'wald' with -wald, 'rgb' with -rgb)\n"
    "  -co NAME=VALUE GTiff creation option, repeatable; overrides the defaults TILED=YES,\n"
    "                 COMPRESS=DEFLATE (and PHOTOMETRIC=MINISBLACK for the MS file,\n"
    "                 PHOTOMETRIC=RGB for the RGB file)\n"
    "  -overwrite     replace existing scene files (otherwise an existing one is refused)\n"
    "  -oo NAME=VALUE Wald mode: GDAL open option for the inputs and -labels, repeatable\n"
    "  -q             quiet: no progress bar, no summary\n"
    "Files are written under temporary names and renamed when complete: an error or an\n"
    "interrupt (Ctrl-C, SIGTERM; exit code 130) leaves no partial output. GDAL's general options (--config, --debug,\n"
    "--formats, --help-general) are accepted.\n";

static const char *prog = "cmir_synth";

/* Options that take values (all take one, -origin two). */
static const char *const valued[] = {
    "-n", "-size", "-seed", "-first", "-epsg", "-origin", "-res", "-ratio", "-oversample",
    "-cell", "-variation", "-noise", "-confusion", "-mtf", "-threads", "-o", "-prefix",
    "-labels", "-co", "-ot", "-class_res", "-pan_weights", "-bands", NULL};

static int is_valued(const char *a)
{
    for (int i = 0; valued[i]; i++)
        if (!strcmp(a, valued[i]))
            return 1;
    return 0;
}


/* Scene files are never replaced silently: 1 (after one line naming the
 * first) when one of the files this run would write exists, unless
 * overwrite. */
static int outputs_exist(const cmir_synth_params *p, const char *dir, const char *prefix, int wald, int indices,
                         int rgb, int overwrite)
{
    static const char *const dsrsid[] = {"pan", "ms", "class"}, *const rgbs[] = {"rgb", "class"};
    char path[4096];
    if (overwrite)
        return 0;
    if (indices) {
        snprintf(path, sizeof path, "%s/%s_class.tif", dir, prefix ? prefix : "indices");
        return cmir_app_output(prog, path, 0);
    }
    if (wald) {
        for (int k = 0; k < (p->labels ? 3 : 2); k++) {
            snprintf(path, sizeof path, "%s/%s_%s.tif", dir, prefix ? prefix : "wald", dsrsid[k]);
            if (cmir_app_output(prog, path, 0))
                return 1;
        }
        return 0;
    }
    for (int s = p->first_index; s < p->first_index + p->n_scenes; s++)
        for (int k = 0; k < (rgb ? 2 : 3); k++) {
            snprintf(path, sizeof path, "%s/%s_%03d_%s.tif", dir, prefix ? prefix : rgb ? "rgb" : "scene", s,
                     rgb ? rgbs[k] : dsrsid[k]);
            if (cmir_app_output(prog, path, 0))
                return 1;
        }
    return 0;
}
/* Ctrl-C / SIGTERM: the next progress call cancels, and the library then
 * removes its temporary files before returning. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int progress(double frac, const char *msg, void *user)
{
    if (interrupted)
        return 1;
    return cmir_app_progress(frac, msg, user);
}

/* Where the outputs go and how (-o, -prefix, -ot, -co). */
typedef struct outs {
    const char *dir, *prefix, *type;
    const char **co;
    int n_co;
} outs;

/* Option a with its value v (-origin also takes argv[++*i]) into p or o:
 * 0, or non-zero after a one-line message naming the option. */
static int value_option(const char *a, const char *v, char **argv, int *i, cmir_synth_params *p, outs *o)
{
    int bad = 0;
    double d4[4];
    if (!strcmp(a, "-n")) bad = cmir_app_int(prog, a, v, 1, 1000000, &p->n_scenes);
    else if (!strcmp(a, "-size")) bad = cmir_app_int(prog, a, v, 0, 1 << 30, &p->size);
    else if (!strcmp(a, "-seed")) bad = cmir_app_u64(prog, a, v, &p->seed);
    else if (!strcmp(a, "-first")) bad = cmir_app_int(prog, a, v, 0, 1 << 30, &p->first_index);
    else if (!strcmp(a, "-epsg")) bad = cmir_app_int(prog, a, v, 1, 1 << 30, &p->epsg);
    else if (!strcmp(a, "-origin"))
        bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->origin_x) ||
              cmir_app_double(prog, a, argv[++*i], -HUGE_VAL, HUGE_VAL, &p->origin_y);
    else if (!strcmp(a, "-res")) bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->pan_res);
    else if (!strcmp(a, "-ratio")) bad = cmir_app_int(prog, a, v, -1000, 1000, &p->ratio);
    else if (!strcmp(a, "-oversample")) bad = cmir_app_int(prog, a, v, -1000, 1000, &p->oversample);
    else if (!strcmp(a, "-cell")) bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->cell_size);
    else if (!strcmp(a, "-variation")) bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->variation);
    else if (!strcmp(a, "-noise")) bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->noise);
    else if (!strcmp(a, "-confusion")) bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->confusion);
    else if (!strcmp(a, "-mtf")) bad = cmir_app_double(prog, a, v, -HUGE_VAL, HUGE_VAL, &p->mtf);
    else if (!strcmp(a, "-threads")) bad = cmir_app_int(prog, a, v, 0, 1024, &p->threads);
    else if (!strcmp(a, "-o")) o->dir = v;
    else if (!strcmp(a, "-prefix")) o->prefix = v;
    else if (!strcmp(a, "-labels")) p->labels = v;
    else if (!strcmp(a, "-co")) o->co[o->n_co++] = v;
    else if (!strcmp(a, "-ot")) o->type = v;
    else if (!strcmp(a, "-class_res")) {
        if (!strcmp(v, "ms")) p->class_res = CMIR_SYNTH_CLASS_AT_MS;
        else if (!strcmp(v, "pan")) p->class_res = CMIR_SYNTH_CLASS_AT_PAN;
        else bad = cmir_app_fail(prog, "-class_res: '%s' is not ms or pan", v);
    } else if (!strcmp(a, "-pan_weights")) {
        if (!(bad = cmir_app_doubles(prog, a, v, 4, -HUGE_VAL, HUGE_VAL, d4)))
            memcpy(p->pan_weights, d4, sizeof d4);
    } else if (!strcmp(a, "-bands")) {
        if (!(bad = cmir_app_doubles(prog, a, v, 4, -HUGE_VAL, HUGE_VAL, d4)))
            for (int k = 0; k < 4 && !bad; k++) {
                if (d4[k] != (int)d4[k] || d4[k] < 1 || d4[k] > 65535)
                    bad = cmir_app_fail(prog, "-bands: '%s' must be 4 band numbers >= 1", v);
                else
                    p->bands[k] = (int)d4[k];
            }
    } else {
        bad = cmir_app_fail(prog, "unknown option '%s' (see --help)", a);
    }
    return bad;
}

/* Runs the chosen mode (-indices, -wald, -rgb or DSRSID-like scenes) and
 * says what it wrote: 0, the library's (negative) CMIR_E* code, or > 0
 * after its own one-line refusal. */
static int run_mode(cmir_synth_params *p, const char **inputs, int n_in, outs *o, int indices, int wald, int rgb,
                    int *quiet)
{
    char out[4096];
    int err;
    if (!o->prefix)
        o->prefix = indices ? "indices" : wald ? "wald" : rgb ? "rgb" : "scene";
    if (snprintf(out, sizeof out, indices ? "%s/%s_class.tif" : "%s/%s", o->dir, o->prefix) >= (int)sizeof out)
        return cmir_app_fail(prog, "%s/%s: output path too long", o->dir, o->prefix);
    if (indices) {
        int bd[4] = {1, 2, 3, 4};
        if (p->bands[0])
            memcpy(bd, p->bands, sizeof bd);
        err = cmir_synth_index_classes(inputs[0], bd, out, p->creation_options);
        if (!err && !*quiet)
            printf("%s: wrote %s\n", prog, out);
    } else if (wald) {
        err = cmir_synth_wald(p, inputs, n_in, out, progress, quiet);
        if (!err && !*quiet)
            printf("%s: wrote %s_pan.tif, %s_ms.tif%s%s%s\n", prog, out, out, p->labels ? " and " : "",
                   p->labels ? out : "", p->labels ? "_class.tif" : "");
    } else {
        err = rgb ? cmir_synth_rgb_run(p, o->dir, o->prefix, progress, quiet)
                  : cmir_synth_run(p, o->dir, o->prefix, progress, quiet);
        if (!err && !*quiet)
            printf("%s: wrote %d %sscene%s (%s/%s_%03d..%03d_{%s}.tif)\n", prog, p->n_scenes, rgb ? "RGB " : "",
                   p->n_scenes == 1 ? "" : "s", o->dir, o->prefix, p->first_index, p->first_index + p->n_scenes - 1,
                   rgb ? "rgb,class" : "pan,ms,class");
    }
    return err;
}

int main(int argc, char **argv)
{
    int done, rc = cmir_app_init(prog, usage, &argc, &argv, &done);
    if (done)
        return rc;
    int rgb = 0;
    for (int i = 1; i < argc; i++) /* the mode decides the defaults */
        if (!strcmp(argv[i], "-rgb"))
            rgb = 1;
    cmir_synth_params p = rgb ? cmir_synth_rgb_default_params() : cmir_synth_default_params();
    const char *not_rgb = NULL; /* first option the RGB mode does not take */
    const char **inputs = calloc((size_t)argc, sizeof(char *));
    outs o = {".", NULL, NULL, calloc((size_t)argc + 1, sizeof(char *)), 0};
    int n_in = 0, quiet = 0, wald = 0, indices = 0, bad = 0, used;
    cmir_app_common c = {.takes_oo = 1};
    if (!inputs || !o.co) {
        rc = cmir_app_fail(prog, "out of memory");
        goto end;
    }
    for (int i = 1; i < argc && !bad; i++) {
        const char *a = argv[i];
        int nv = !strcmp(a, "-origin") ? 2 : 1;
        if (!strcmp(a, "-q") || !strcmp(a, "-quiet")) {
            quiet = 1;
            continue;
        }
        if (!strcmp(a, "-wald")) {
            wald = 1;
            continue;
        }
        if (!strcmp(a, "-indices")) {
            wald = indices = 1;
            continue;
        }
        if (!strcmp(a, "-rgb"))
            continue;
        if ((used = cmir_app_common_option(prog, argc, argv, &i, &c)) != 0) {
            bad = used < 0;
            continue;
        }
        if (!not_rgb && (!strcmp(a, "-ratio") || !strcmp(a, "-oversample") || !strcmp(a, "-confusion") ||
                         !strcmp(a, "-mtf") || !strcmp(a, "-pan_weights") || !strcmp(a, "-class_res")))
            not_rgb = a;
        if (a[0] != '-' || !a[1]) {
            inputs[n_in++] = a;
            continue;
        }
        if (!is_valued(a)) {
            bad = cmir_app_fail(prog, "unknown option '%s' (see --help)", a);
            break;
        }
        if (i + nv >= argc) {
            bad = cmir_app_fail(prog, "option %s needs %s", a, nv == 2 ? "two values" : "a value");
            break;
        }
        const char *v = argv[++i];
        bad = value_option(a, v, argv, &i, &p, &o);
    }
    if (bad) {
        rc = 2;
        goto end;
    }
    if (o.type) {
        if (!strcmp(o.type, "Float32")) p.wald_type = CMIR_SYNTH_FLOAT32;
        else if (!strcmp(o.type, "UInt16")) p.wald_type = CMIR_SYNTH_UINT16;
        else {
            rc = cmir_app_fail(prog, "-ot: '%s' is not Float32 or UInt16", o.type) + 1;
            goto end;
        }
    }
    if (!wald && (n_in || p.labels || o.type || p.bands[0] || c.n_oo)) {
        rc = cmir_app_fail(prog, "%s is only for Wald mode (-wald INPUT...)",
                           n_in ? inputs[0] : p.labels ? "-labels" : o.type ? "-ot" : c.n_oo ? "-oo" : "-bands") + 1;
        goto end;
    }
    if (rgb && (wald || not_rgb)) {
        rc = cmir_app_fail(prog, "%s is not an option of the RGB mode (-rgb)", wald ? "-wald" : not_rgb) + 1;
        goto end;
    }
    if (wald && !n_in) {
        rc = cmir_app_fail(prog, "-wald needs at least one input raster") + 1;
        goto end;
    }
    if (indices && n_in != 1) {
        rc = cmir_app_fail(prog, "-indices takes one multispectral raster (a VRT stacks several)") + 1;
        goto end;
    }
    p.creation_options = o.n_co ? o.co : NULL;
    p.open_options = (const char *const *)c.oo;
    if ((rc = outputs_exist(&p, o.dir, o.prefix, wald, indices, rgb, c.overwrite)))
        goto end;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int err = run_mode(&p, inputs, n_in, &o, indices, wald, rgb, &quiet);
    if (err > 0) { /* refused by run_mode itself, already said */
        rc = 2;
        goto end;
    }
    if (err && !quiet) { /* end the progress line */
        fputc('\n', stdout);
        fflush(stdout);
    }
    if (err == CMIR_ECANCEL && interrupted)
        rc = cmir_app_fail(prog, "interrupted; the scene in progress was not written") + 129;
    else
        rc = err ? cmir_app_fail(prog, "%s", cmir_last_error()) : 0;
end:
    free(inputs);
    free(o.co);
    cmir_app_common_free(&c);
    cmir_app_done(argv);
    return rc;
}
