/* Allocation-failure injection through whole public entry points: the
 * allocator hook fails the n-th allocation libcmir makes, for n = 1, 2, 3,
 * ... through a small training run, an index search and an archive read;
 * every run must end in CMIR_ENOMEM (or success once n passes the last
 * allocation), never a crash, and under LeakSanitizer never a leak.
 * `test_faults full` tries every n; the quick tier every 7th. */
#include "cmir/index.h"
#include "cmir/train.h"
#include "test_data.h"
#include "test_util.h"

#include <unistd.h>

static char dir[] = "/tmp/cmir_faults_XXXXXX";

static const char *in_dir(const char *name)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return t_keep(strdup(buf));
}

static int train_once(void *u)
{
    (void)u;
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 8;
    p.epochs1 = 1;
    p.epochs2 = 2;
    p.unified.d_v = 8;
    p.max_stat_tiles = 8;
    return cmir_train(in_dir("a.mat"), in_dir("m.mat"), p, NULL, NULL, NULL);
}

static int search_once(void *u)
{
    (void)u;
    cmir_query q = {CMIR_QUERY_ROW, 3, NULL, 0, {0}, NULL};
    cmir_search_params p = cmir_search_default_params();
    p.k = 5;
    return cmir_search(in_dir("model.mat"), in_dir("i.gpkg"), &q, 1, in_dir("hits.geojson"), p, NULL, NULL);
}

static int read_once(void *u)
{
    (void)u;
    cmir_archive *a = cmir_archive_open(in_dir("a.mat"));
    if (!a) /* constructors return NULL: the message says why */
        return cmir_last_error_code();
    float t[TD_PAN * TD_PAN];
    int rc = cmir_archive_read_tile(a, CMIR_PAN, 5, t);
    cmir_archive_close(a);
    return rc;
}

static int step = 7;

/* Runs fn with allocation n failing, for n = 1, 1 + step, ... until a run
 * makes fewer than n allocations (it then must succeed): more than 5
 * failures injected, each reported as CMIR_ENOMEM. */
static void sweep(const char *what, t_sweep_fn fn, int step)
{
    ASSERT_TRUE(t_sweep(what, fn, NULL, step, 1 << 30) > 5 * step);
}

static void test_train(void) { sweep("cmir_train", train_once, step); }
static void test_search(void) { sweep("cmir_search", search_once, step > 1 ? 3 : 1); }
static void test_read(void) { sweep("archive read", read_once, 1); }

int main(int argc, char **argv)
{
    TEST_INIT(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "full"))
        step = 1;
    if (!mkdtemp(dir))
        return 1;
    if (td_make_archive(in_dir("a.mat"), 24, 4)) {
        fprintf(stderr, "fixture: %s\n", cmir_last_error());
        return 1;
    }
    cmir_train_params p = cmir_train_default_params();
    p.threads = 2;
    p.batch = 8;
    p.epochs1 = 1;
    p.epochs2 = 2;
    p.unified.d_v = 8;
    const char *arch = in_dir("a.mat");
    if (cmir_train(arch, in_dir("model.mat"), p, NULL, NULL, NULL) ||
        cmir_index_build(in_dir("model.mat"), &arch, 1, in_dir("i.gpkg"), cmir_index_default_params(), NULL, NULL,
                         NULL)) {
        fprintf(stderr, "fixture: %s\n", cmir_last_error());
        return 1;
    }
    RUN(test_read);
    RUN(test_search);
    RUN(test_train);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    TEST_MAIN_END();
}
