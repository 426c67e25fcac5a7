/* Tests of cmir_eval's floors and report files on a tiny archive:
 * cmir_eval_floor() against a brute force from the tiles' pixels (PAN mean
 * and deviation, MS band means, normal equations, sorted distances); the
 * floors in -json and -csv; the -plot SVG parses as XML (xmllint) and holds
 * the 8 curves with the library's PR values. */
#include "cmir/train.h"
#include "floor_naive.h"
#include "test_data.h"
#include "test_util.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/cmir_eval_XXXXXX";
static char arch[600];
static cmir_eval_report rep; /* the floors of the tiny archive, for the writers' tests */
static int have_rep;

/* Tiles 0..39: every third one held out. */
static int64_t train_ids[40], test_ids[40], ntr, nte;

static void split(void)
{
    ntr = nte = 0;
    for (int64_t i = 0; i < 40; i++) {
        if (i % 3 == 1)
            test_ids[nte++] = i;
        else
            train_ids[ntr++] = i;
    }
}

/* Statistics straight from the pixels. */
static void stats(cmir_archive *a, const int64_t *ids, int64_t n, double *pan, double *ms, int32_t *cls)
{
    float p[TD_PAN * TD_PAN], m[TD_MS * TD_MS * 4];
    for (int64_t i = 0; i < n; i++) {
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_PAN, ids[i], p));
        ASSERT_OK(cmir_archive_read_tile(a, CMIR_MS, ids[i], m));
        double s = 0, ss = 0;
        for (int k = 0; k < TD_PAN * TD_PAN; k++)
            s += p[k];
        double mu = s / (TD_PAN * TD_PAN);
        for (int k = 0; k < TD_PAN * TD_PAN; k++)
            ss += (p[k] - mu) * (p[k] - mu);
        pan[i * 2] = mu;
        pan[i * 2 + 1] = sqrt(ss / (TD_PAN * TD_PAN));
        for (int b = 0; b < 4; b++) {
            double t = 0;
            for (int k = 0; k < TD_MS * TD_MS; k++)
                t += m[k * 4 + b];
            ms[i * 4 + b] = t / (TD_MS * TD_MS);
        }
        if (cls)
            cls[i] = cmir_archive_label(a, ids[i]);
    }
}

static void test_floor_vs_brute_force(void)
{
    split();
    cmir_eval_params p = cmir_eval_default_params();
    p.threads = 2;
    REQUIRE(cmir_eval_floor(arch, train_ids, ntr, test_ids, nte, 0, p, &rep) == 0);
    have_rep = 1;
    cmir_archive *a = cmir_archive_open(arch);
    REQUIRE(a != NULL);
    double tp[80], tm[160], ep[80], em[160], map[4], pr[4][11];
    int32_t cls[40];
    stats(a, train_ids, ntr, tp, tm, NULL);
    stats(a, test_ids, nte, ep, em, cls);
    cmir_archive_close(a);
    fn_floors(tp, tm, ntr, ep, em, cls, nte, 4, map, pr);
    ASSERT_EQ_INT(rep.floor_fit_tiles, ntr);
    ASSERT_EQ_INT(rep.n_items, nte);
    for (int k = 0; k < 4; k++) {
        const cmir_eval_direction *d = &rep.dir[k];
        printf("  %-8s floor mAP %.4f (brute force %.4f)\n", d->name, d->floor.map, map[k]);
        ASSERT_TRUE(d->has_floor);
        ASSERT_NEAR(d->floor.map, map[k], 1e-9);
        for (int l = 0; l < 11; l++)
            ASSERT_NEAR(d->floor.pr[l], pr[k][l], 1e-9);
        ASSERT_EQ_INT(d->floor.n_queries, nte);
    }
    ASSERT_TRUE(strcmp(rep.dir[0].name, "PAN->MS") == 0 && strcmp(rep.dir[3].name, "MS->MS") == 0);
    /* a tile that does not exist is refused by number */
    int64_t bad = 40;
    REFUSES(cmir_eval_floor(arch, &bad, 1, test_ids, nte, 0, p, &rep), "tile 40 does not exist");
    REQUIRE(cmir_eval_floor(arch, train_ids, ntr, test_ids, nte, 0, p, &rep) == 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *s = calloc(1, 1 << 20);
    size_t n = fread(s, 1, (1 << 20) - 1, f);
    s[n] = 0;
    fclose(f);
    return s;
}

static void test_json_csv_floors(void)
{
    REQUIRE(have_rep);
    char path[700], want[200];
    snprintf(path, sizeof path, "%s/e.json", dir);
    ASSERT_OK(cmir_eval_write_json(&rep, path));
    char *j = slurp(path);
    REQUIRE(j != NULL);
    snprintf(want, sizeof want, "\"floor_fit_tiles\": %lld", (long long)ntr);
    ASSERT_TRUE(strstr(j, want) != NULL);
    ASSERT_TRUE(strstr(j, "\"floor_in_sample\": false") != NULL);
    for (int k = 0; k < 4; k++) {
        /* "direction": "NAME", ... "floor": {"map": M, ... "pr_11pt": [P0, ... */
        snprintf(want, sizeof want, "\"direction\": \"%s\"", rep.dir[k].name);
        const char *at = strstr(j, want);
        REQUIRE(at != NULL);
        const char *fl = strstr(at, "\"floor\": {\"map\": ");
        REQUIRE(fl != NULL);
        ASSERT_NEAR(strtod(fl + 17, NULL), rep.dir[k].floor.map, 1e-6);
        const char *p10 = strstr(fl, "\"p_at\": {\"5\": ");
        REQUIRE(p10 != NULL);
        ASSERT_NEAR(strtod(p10 + 15, NULL), rep.dir[k].floor_p_at[0], 1e-6);
    }
    free(j);
    snprintf(path, sizeof path, "%s/e.csv", dir);
    ASSERT_OK(cmir_eval_write_csv(&rep, path));
    char *c = slurp(path);
    REQUIRE(c != NULL);
    ASSERT_TRUE(strstr(c, ",floor_map,floor_anmrr,floor_paper_protocol,floor_p_at_5,") != NULL);
    /* the column named floor_map holds each direction's floor mAP */
    int col = 0;
    char *line = strtok(c, "\n");
    char *cells[64];
    int nc = 0;
    for (char *s = line, *e; s && nc < 64; s = e ? e + 1 : NULL) {
        e = strchr(s, ',');
        if (e)
            *e = 0;
        cells[nc++] = s;
    }
    for (int i = 0; i < nc; i++)
        if (!strcmp(cells[i], "floor_map"))
            col = i;
    ASSERT_TRUE(col > 0);
    for (int k = 0; k < 4; k++) {
        char *row = strtok(NULL, "\n");
        REQUIRE(row != NULL);
        char *s = row;
        for (int i = 0; i < col && s; i++)
            s = strchr(s, ',') ? strchr(s, ',') + 1 : NULL;
        REQUIRE(s != NULL);
        ASSERT_TRUE(strncmp(row, rep.dir[k].name, strlen(rep.dir[k].name)) == 0);
        ASSERT_NEAR(strtod(s, NULL), rep.dir[k].floor.map, 1e-6);
    }
    free(c);
}

/* Points "x,y x,y ..." of the polyline of class `kind` and direction name,
 * mapped back to (recall, precision) with the frame; returns the count. */
static int curve_points(const char *svg, const char *kind, const char *name, double fr[4], double *rec,
                        double *prec)
{
    char key[200];
    snprintf(key, sizeof key, "<polyline class=\"%s\" data-direction=\"%s\"", kind, name);
    const char *at = strstr(svg, key);
    if (!at || strstr(at + 1, key))
        return -1; /* none, or more than one */
    const char *pts = strstr(at, "points=\"");
    if (!pts)
        return -1;
    pts += 8;
    int n = 0;
    while (*pts && *pts != '"' && n < 64) {
        char *e;
        double x = strtod(pts, &e);
        if (*e != ',')
            return -1;
        double y = strtod(e + 1, &e);
        rec[n] = (x - fr[0]) / fr[2];
        prec[n] = 1 - (y - fr[1]) / fr[3];
        n++;
        pts = e;
        while (*pts == ' ')
            pts++;
    }
    return n;
}

static void test_plot_svg(void)
{
    REQUIRE(have_rep);
    cmir_eval_report r = rep;
    /* learned curves that differ from the floors, as cmir_eval gives */
    for (int k = 0; k < 4; k++)
        for (int l = 0; l < 11; l++)
            r.dir[k].r.pr[l] = 1.0 - 0.05 * l - 0.01 * k;
    char path[700], cmd[800];
    snprintf(path, sizeof path, "%s/pr.svg", dir);
    ASSERT_OK(cmir_eval_write_svg(&r, path, "tiny <archive> & floors"));
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", path);
    if (system("command -v xmllint >/dev/null 2>&1") != 0) {
        printf("  xmllint missing (Debian: libxml2-utils)\n");
        t_failures++;
        return;
    }
    ASSERT_EQ_INT(system(cmd), 0);
    char *s = slurp(path);
    REQUIRE(s != NULL);
    int curves = 0;
    for (const char *t = s; (t = strstr(t, "<polyline")); t++)
        curves++;
    ASSERT_EQ_INT(curves, 8);
    const char *fr = strstr(s, "<rect id=\"frame\"");
    REQUIRE(fr != NULL);
    double g[4];
    REQUIRE(sscanf(fr, "<rect id=\"frame\" x=\"%lf\" y=\"%lf\" width=\"%lf\" height=\"%lf\"", &g[0], &g[1], &g[2],
                   &g[3]) == 4);
    static const char *esc[4] = {"PAN-&gt;MS", "MS-&gt;PAN", "PAN-&gt;PAN", "MS-&gt;MS"};
    for (int k = 0; k < 4; k++)
        for (int f = 0; f < 2; f++) {
            double rec[64], prec[64];
            const double *want = f ? r.dir[k].floor.pr : r.dir[k].r.pr;
            int n = curve_points(s, f ? "floor" : "learned", esc[k], g, rec, prec);
            ASSERT_EQ_INT(n, 11);
            if (n != 11)
                continue;
            ASSERT_NEAR(rec[0], 0, 1e-4);
            ASSERT_NEAR(rec[10], 1, 1e-4);
            ASSERT_NEAR(prec[0], want[0], 1e-4);
            ASSERT_NEAR(prec[10], want[10], 1e-4);
            ASSERT_NEAR(prec[5], want[5], 1e-4);
        }
    ASSERT_TRUE(strstr(s, "stroke-dasharray") != NULL);
    ASSERT_TRUE(strstr(s, "tiny &lt;archive&gt; &amp; floors") != NULL);
    free(s);
    /* an unwritable place is refused */
    snprintf(path, sizeof path, "%s/no/such/dir/pr.svg", dir);
    ASSERT_TRUE(cmir_eval_write_svg(&r, path, NULL) != 0);
}

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (!mkdtemp(dir))
        return 1;
    snprintf(arch, sizeof arch, "%s/a.mat", dir);
    if (td_make_archive(arch, 40, 7) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", arch, cmir_last_error());
        return 1;
    }
    RUN(test_floor_vs_brute_force);
    RUN(test_json_csv_floors);
    RUN(test_plot_svg);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
