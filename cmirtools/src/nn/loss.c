/* Losses and penalties of CMIR-NET: softmax and sigmoid cross-entropy,
 * squared Frobenius distance, soft orthogonality ||Z^T Z - I||_F^2 and the
 * weight penalty towards alpha. Gradients are added, scaled. */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

int cmir_softmax_xent(const cmir_tensor *logits, const int32_t *labels, float scale,
                      float *loss, cmir_tensor *dlogits)
{
    const char *fn = "cmir_softmax_xent";
    int rc;
    if ((rc = cmir__check_tensor(logits, 2, fn, "logits")))
        return rc;
    if (dlogits && ((rc = cmir__check_tensor(dlogits, 2, fn, "dlogits")) ||
                    (rc = cmir__check_same(logits, dlogits, fn, "logits", "dlogits"))))
        return rc;
    if (!labels)
        return cmir__error(CMIR_EINVAL, "%s: labels is NULL", fn);
    const int64_t B = logits->shape[0], C = logits->shape[1];
    if (B <= 0 || C <= 0)
        return cmir__error(CMIR_EINVAL, "%s: empty logits", fn);
    for (int64_t b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= C)
            return cmir__error(CMIR_EINVAL, "%s: label %d of sample %lld outside [0, %lld)",
                               fn, labels[b], (long long)b, (long long)C);
    double total = 0.0;
    for (int64_t b = 0; b < B; b++) {
        const float *z = logits->data + b * C;
        float mx = z[0];
        for (int64_t c = 1; c < C; c++)
            mx = z[c] > mx ? z[c] : mx;
        double se = 0.0;
        for (int64_t c = 0; c < C; c++)
            se += exp((double)z[c] - mx);
        double lse = log(se) + mx;
        total += lse - z[labels[b]];
        if (dlogits) {
            float *g = dlogits->data + b * C;
            double k = (double)scale / (double)B;
            for (int64_t c = 0; c < C; c++) {
                double p = exp((double)z[c] - lse);
                g[c] += (float)(k * (p - (c == labels[b] ? 1.0 : 0.0)));
            }
        }
    }
    if (loss)
        *loss = (float)(scale * total / (double)B);
    return 0;
}

int cmir_sigmoid_xent(const cmir_tensor *logits, const cmir_tensor *targets, float scale,
                      float *loss, cmir_tensor *dlogits)
{
    const char *fn = "cmir_sigmoid_xent";
    int rc;
    if ((rc = cmir__check_tensor(logits, 2, fn, "logits")) ||
        (rc = cmir__check_tensor(targets, 2, fn, "targets")) ||
        (rc = cmir__check_same(logits, targets, fn, "logits", "targets")))
        return rc;
    if (dlogits && ((rc = cmir__check_tensor(dlogits, 2, fn, "dlogits")) ||
                    (rc = cmir__check_same(logits, dlogits, fn, "logits", "dlogits"))))
        return rc;
    size_t n = (size_t)cmir_tensor_numel(logits);
    if (n == 0)
        return cmir__error(CMIR_EINVAL, "%s: empty logits", fn);
    double total = 0.0, k = (double)scale / (double)n;
    for (size_t i = 0; i < n; i++) {
        double z = logits->data[i], t = targets->data[i];
        total += (z > 0 ? z : 0) - z * t + log1p(exp(-fabs(z)));
        if (dlogits) {
            double s = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
            dlogits->data[i] += (float)(k * (s - t));
        }
    }
    if (loss)
        *loss = (float)(total * k);
    return 0;
}

int cmir_sqdist(const cmir_tensor *a, const cmir_tensor *b, float scale, float *loss,
                cmir_tensor *da, cmir_tensor *db)
{
    const char *fn = "cmir_sqdist";
    int rc;
    if ((rc = cmir__check_tensor(a, 0, fn, "a")) || (rc = cmir__check_tensor(b, 0, fn, "b")) ||
        (rc = cmir__check_same(a, b, fn, "a", "b")))
        return rc;
    if (da && ((rc = cmir__check_tensor(da, 0, fn, "da")) || (rc = cmir__check_same(a, da, fn, "a", "da"))))
        return rc;
    if (db && ((rc = cmir__check_tensor(db, 0, fn, "db")) || (rc = cmir__check_same(a, db, fn, "a", "db"))))
        return rc;
    size_t n = (size_t)cmir_tensor_numel(a);
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        float d = a->data[i] - b->data[i];
        total += (double)d * d;
        if (da)
            da->data[i] += 2.0f * scale * d;
        if (db)
            db->data[i] -= 2.0f * scale * d;
    }
    if (loss)
        *loss = (float)(scale * total);
    return 0;
}

int cmir_ortho_penalty(cmir_exec *ex, const cmir_tensor *Z, int per_batch, float scale,
                       float *loss, cmir_tensor *dZ)
{
    const char *fn = "cmir_ortho_penalty";
    int rc;
    if ((rc = cmir__check_tensor(Z, 2, fn, "Z")))
        return rc;
    if (dZ && ((rc = cmir__check_tensor(dZ, 2, fn, "dZ")) || (rc = cmir__check_same(Z, dZ, fn, "Z", "dZ"))))
        return rc;
    const int B = (int)Z->shape[0], D = (int)Z->shape[1];
    if (B <= 0 || D <= 0)
        return cmir__error(CMIR_EINVAL, "%s: empty Z", fn);
    float s = per_batch ? (float)B : 1.0f;
    float *E = cmir__exec_scratch(ex, sizeof(float) * (size_t)D * D);
    if (!E)
        return CMIR_ENOMEM;
    /* E = Z^T Z / s - I */
    cmir__sgemm(cmir_exec_threads(ex), 1, 0, D, D, B, 1.0f / s, Z->data, D, Z->data, D, 0.0f,
                E, D);
    double total = 0.0;
    for (int i = 0; i < D; i++) {
        E[(size_t)i * D + i] -= 1.0f;
        for (int k = 0; k < D; k++)
            total += (double)E[(size_t)i * D + k] * E[(size_t)i * D + k];
    }
    if (loss)
        *loss = (float)(scale * total);
    /* dZ += (4 scale / s) Z E  (E is symmetric) */
    if (dZ)
        cmir__sgemm(cmir_exec_threads(ex), 0, 0, B, D, D, 4.0f * scale / s, Z->data, D, E, D,
                    1.0f, dZ->data, D);
    return 0;
}

int cmir_weight_penalty(const float *w, size_t n, float alpha, float scale, float *loss,
                        float *dw)
{
    if (!w && n)
        return cmir__error(CMIR_EINVAL, "cmir_weight_penalty: w is NULL");
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        float d = w[i] - alpha;
        total += (double)d * d;
        if (dw)
            dw[i] += 2.0f * scale * d;
    }
    if (loss)
        *loss = (float)(scale * total);
    return 0;
}
