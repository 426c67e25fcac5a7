/* model_diff: compares two model (or checkpoint) files tensor by tensor,
 * for test_train_mpi.sh. Usage: model_diff A.mat B.mat TOL [BASE.mat].
 * Exit 0 when both hold the same names and shapes and every value differs
 * by at most TOL * max(1, largest |value| of its tensor); TOL 0 asks for the
 * same bits and the same MODEL_ID. With BASE (the untrained model), only
 * the stage-1 CNNs (pan_*, ms_*) are compared, by what training changed:
 * |(A - BASE) - (B - BASE)| / |A - BASE| (Euclidean norms) per tensor: Adam
 * moves a weight by about the learning rate whatever its gradient, so a
 * weight whose gradient is rounding noise may move either way; the norm of
 * the change is what a wrong gradient would spoil. Prints the worst tensor. */
#include "cmir/tensorset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: model_diff A.mat B.mat TOL [BASE.mat]\n");
        return 2;
    }
    cmir_tensorset *base = argc == 5 ? cmir_tensorset_load(argv[4]) : NULL;
    if (argc == 5 && !base) {
        fprintf(stderr, "model_diff: %s\n", cmir_last_error());
        return 2;
    }
    double tol = atof(argv[3]), worst = 0;
    const char *worst_name = "-";
    cmir_tensorset *a = cmir_tensorset_load(argv[1]), *b = cmir_tensorset_load(argv[2]);
    if (!a || !b) {
        fprintf(stderr, "model_diff: %s\n", cmir_last_error());
        return 2;
    }
    int bad = cmir_tensorset_count(a) != cmir_tensorset_count(b), tensors = 0;
    for (int i = 0; !bad && i < cmir_tensorset_count(a); i++) {
        const char *nm = cmir_tensorset_name(a, i);
        const cmir_tensor *ta = cmir_tensorset_get(a, nm), *tb = cmir_tensorset_get(b, nm);
        if (!ta || !tb) { /* strings: MODEL_ID differs with any bit */
            const char *sa = cmir_tensorset_get_string(a, nm), *sb = cmir_tensorset_get_string(b, nm);
            bad = !sa || !sb || (strcmp(nm, "MODEL_ID") ? strcmp(sa, sb) != 0 : tol == 0 && strcmp(sa, sb) != 0);
            if (bad)
                fprintf(stderr, "model_diff: %s differs\n", nm);
            continue;
        }
        int64_t n = cmir_tensor_numel(ta);
        if (ta->ndim != tb->ndim || n != cmir_tensor_numel(tb)) {
            fprintf(stderr, "model_diff: %s has another shape\n", nm);
            bad = 1;
            break;
        }
        double mx = 1, d = 0;
        if (base) {
            const cmir_tensor *t0 = cmir_tensorset_get(base, nm);
            if (strncmp(nm, "pan_", 4) && strncmp(nm, "ms_", 3))
                continue;
            if (!t0 || cmir_tensor_numel(t0) != n) {
                fprintf(stderr, "model_diff: %s: not in the base model\n", nm);
                bad = 1;
                break;
            }
            double sa = 0, sd = 0;
            for (int64_t k = 0; k < n; k++) {
                double da = (double)ta->data[k] - t0->data[k], db = (double)tb->data[k] - t0->data[k];
                sa += da * da;
                sd += (da - db) * (da - db);
            }
            mx = sa > 0 ? sqrt(sa) : 1;
            d = sqrt(sd);
            goto compare;
        }
        for (int64_t k = 0; k < n; k++) {
            mx = fmax(mx, fabs(ta->data[k]));
            d = fmax(d, fabs((double)ta->data[k] - tb->data[k]));
        }
        if (tol == 0 && memcmp(ta->data, tb->data, sizeof(float) * (size_t)n))
            d = d > 0 ? d : 1e-300; /* -0 against 0, NaN payloads */
    compare:
        if (getenv("MODEL_DIFF_VERBOSE"))
            printf("%-16s %.3g\n", nm, d / mx);
        if (d / mx > worst) {
            worst = d / mx;
            worst_name = nm;
        }
        tensors++;
    }
    printf("model_diff: %d tensors, worst relative difference %.3g (%s)\n", tensors, worst, worst_name);
    cmir_tensorset_free(a);
    cmir_tensorset_free(b);
    cmir_tensorset_free(base);
    return bad || worst > tol ? 1 : 0;
}
