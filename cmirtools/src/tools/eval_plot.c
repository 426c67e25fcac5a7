/* cmir_eval_write_svg(): the 11-point precision-recall curves of the four
 * directions, each beside its training-free floor (dashed), as a small
 * self-contained SVG written atomically (pure text, no library). */
#include "eval_internal.h"

#include <math.h>
#include <string.h>

/* Geometry (pixels): the frame and the legend to its right. */
#define SVG_W 820
#define SVG_H 520
#define FX 80
#define FY 60
#define FW 480
#define FH 380

static const char *const colours[4] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

/* Text with XML's special characters escaped. */
static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t')
                fputc(*s, f);
        }
    }
}

static int finite_curve(const double *pr)
{
    for (int i = 0; i < CMIR_METRICS_PR_POINTS; i++)
        if (!isfinite(pr[i]))
            return 0;
    return 1;
}

static void axes(FILE *f)
{
    fprintf(f, "<rect id=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"white\" stroke=\"black\"/>\n",
            FX, FY, FW, FH);
    for (int t = 0; t <= 10; t += 2) {
        double v = t / 10.0, x = FX + v * FW, y = FY + (1 - v) * FH;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"#ddd\"/>\n", x, FY, x, FY + FH);
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"#ddd\"/>\n", FX, y, FX + FW, y);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%d\" x2=\"%.2f\" y2=\"%d\" stroke=\"black\"/>\n", x, FY + FH, x,
                FY + FH + 5);
        fprintf(f, "<line x1=\"%d\" y1=\"%.2f\" x2=\"%d\" y2=\"%.2f\" stroke=\"black\"/>\n", FX - 5, y, FX, y);
        fprintf(f, "<text x=\"%.2f\" y=\"%d\" text-anchor=\"middle\">%.1f</text>\n", x, FY + FH + 20, v);
        fprintf(f, "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">%.1f</text>\n", FX - 8, y + 4, v);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">recall</text>\n", FX + FW / 2, FY + FH + 42);
    fprintf(f,
            "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 %d %d)\">"
            "interpolated precision</text>\n",
            FX - 48, FY + FH / 2, FX - 48, FY + FH / 2);
}

static void curve(FILE *f, const char *name, const char *kind, const char *colour, const double *pr)
{
    fprintf(f, "<polyline class=\"%s\" data-direction=\"", kind);
    xml_text(f, name);
    fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", colour,
            strcmp(kind, "floor") ? "" : " stroke-dasharray=\"7 4\"");
    for (int i = 0; i < CMIR_METRICS_PR_POINTS; i++)
        fprintf(f, "%s%.3f,%.3f", i ? " " : "", FX + (i / 10.0) * FW, FY + (1.0 - pr[i]) * FH);
    fputs("\"/>\n", f);
}

/* Legend entry k: a solid and a dashed sample and the two mAPs. */
static void legend(FILE *f, int k, const cmir_eval_direction *d)
{
    int y = FY + 10 + 46 * k, x = FX + FW + 20;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\"/>\n", x, y, x + 30, y,
            colours[k]);
    fprintf(f, "<text x=\"%d\" y=\"%d\">", x + 38, y + 4);
    xml_text(f, d->name);
    if (isfinite(d->r.map))
        fprintf(f, " mAP %.3f", d->r.map);
    fputs("</text>\n", f);
    if (!d->has_floor)
        return;
    fprintf(f,
            "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"2\" "
            "stroke-dasharray=\"7 4\"/>\n",
            x, y + 20, x + 30, y + 20, colours[k]);
    fprintf(f, "<text x=\"%d\" y=\"%d\">floor", x + 38, y + 24);
    if (isfinite(d->floor.map))
        fprintf(f, " mAP %.3f", d->floor.map);
    fputs("</text>\n", f);
}

int cmir_eval_write_svg(const cmir_eval_report *r, const char *path, const char *title)
{
    if (!r || !path)
        return cmir__error(CMIR_EINVAL, "cmir_eval_write_svg: need a report and a path");
    cmir__atomic_file af;
    FILE *f = cmir__atomic_fopen(&af, path);
    if (!f)
        return cmir__failed(CMIR_EIO);
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"sans-serif\" font-size=\"13\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<title>");
    xml_text(f, title ? title : "Precision-recall, learned (solid) and training-free floor (dashed)");
    fprintf(f, "</title>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"16\">", SVG_W / 2, FY - 28);
    xml_text(f, title ? title : "Precision-recall, learned (solid) and training-free floor (dashed)");
    fprintf(f, "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%lld items, 11-point "
               "interpolated precision averaged over queries</text>\n",
            SVG_W / 2, FY - 10, (long long)r->n_items);
    axes(f);
    for (int k = 0; k < 4; k++) {
        const cmir_eval_direction *d = &r->dir[k];
        if (d->has_floor && finite_curve(d->floor.pr))
            curve(f, d->name, "floor", colours[k], d->floor.pr);
        if (finite_curve(d->r.pr))
            curve(f, d->name, "learned", colours[k], d->r.pr);
        legend(f, k, d);
    }
    fputs("</svg>\n", f);
    return cmir__atomic_fclose(f, &af);
}
