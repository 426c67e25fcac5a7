/* Adam (with bias correction) and SGD with momentum over a list of
 * registered parameter arrays; moments are allocated once, at add time. */
#include "nn_internal.h"

#include <math.h>
#include <string.h>

typedef struct slot {
    float *w;
    const float *g;
    float *m, *v;
    size_t n;
} slot;

struct cmir_optim {
    cmir_optim_params p;
    slot *s;
    int n, cap;
    int64_t t;
};

cmir_optim_params cmir_optim_default_params(void)
{
    cmir_optim_params p = {CMIR_OPTIM_ADAM, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f};
    return p;
}

int cmir_optim_check_params(cmir_optim_params p)
{
    const char *who = "cmir_optim_params";
    if (p.kind != CMIR_OPTIM_ADAM && p.kind != CMIR_OPTIM_SGD)
        return cmir__error(CMIR_EINVAL, "%s.kind: must be CMIR_OPTIM_ADAM or CMIR_OPTIM_SGD, got %d", who,
                           (int)p.kind);
    if (!(p.lr > 0.0f))
        return cmir__error(CMIR_EINVAL, "%s.lr: must be > 0, got %g", who, (double)p.lr);
    if (!(p.beta1 >= 0.0f && p.beta1 < 1.0f))
        return cmir__error(CMIR_EINVAL, "%s.beta1: must be in [0, 1), got %g", who, (double)p.beta1);
    if (!(p.beta2 >= 0.0f && p.beta2 < 1.0f))
        return cmir__error(CMIR_EINVAL, "%s.beta2: must be in [0, 1), got %g", who, (double)p.beta2);
    if (!(p.eps > 0.0f))
        return cmir__error(CMIR_EINVAL, "%s.eps: must be > 0, got %g", who, (double)p.eps);
    if (!(p.momentum >= 0.0f && p.momentum < 1.0f))
        return cmir__error(CMIR_EINVAL, "%s.momentum: must be in [0, 1), got %g", who, (double)p.momentum);
    return 0;
}

cmir_optim *cmir_optim_new(cmir_optim_params p)
{
    if (cmir_optim_check_params(p))
        return NULL;
    cmir_optim *o = cmir__calloc(1, sizeof *o);
    if (o)
        o->p = p;
    return o;
}

void cmir_optim_free(cmir_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++) {
        cmir__free_aligned(o->s[i].m);
        cmir__free_aligned(o->s[i].v);
    }
    cmir__free(o->s);
    cmir__free(o);
}

int cmir_optim_add(cmir_optim *o, float *w, const float *g, size_t n)
{
    if (!o || !w || !g)
        return cmir__error(CMIR_EINVAL, "cmir_optim_add: NULL argument");
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        slot *s = cmir__realloc(o->s, sizeof(slot) * (size_t)cap);
        if (!s)
            return CMIR_ENOMEM;
        o->s = s;
        o->cap = cap;
    }
    slot sl = {w, g, NULL, NULL, n};
    sl.m = cmir__malloc_aligned(sizeof(float) * (n ? n : 1));
    if (o->p.kind == CMIR_OPTIM_ADAM)
        sl.v = cmir__malloc_aligned(sizeof(float) * (n ? n : 1));
    if (!sl.m || (o->p.kind == CMIR_OPTIM_ADAM && !sl.v)) {
        cmir__free_aligned(sl.m);
        cmir__free_aligned(sl.v);
        return CMIR_ENOMEM;
    }
    memset(sl.m, 0, sizeof(float) * n);
    if (sl.v)
        memset(sl.v, 0, sizeof(float) * n);
    o->s[o->n++] = sl;
    return 0;
}

int cmir_optim_step(cmir_optim *o)
{
    if (!o)
        return cmir__error(CMIR_EINVAL, "cmir_optim_step: NULL optimiser");
    const cmir_optim_params p = o->p;
    o->t++;
    if (p.kind == CMIR_OPTIM_ADAM) {
        double bc1 = 1.0 - pow(p.beta1, (double)o->t), bc2 = 1.0 - pow(p.beta2, (double)o->t);
        float a = (float)(p.lr * sqrt(bc2) / bc1);
        float eps = (float)(p.eps * sqrt(bc2)); /* eps on the corrected v, as in the paper */
        for (int i = 0; i < o->n; i++) {
            slot *s = &o->s[i];
            for (size_t k = 0; k < s->n; k++) {
                float g = s->g[k] + p.weight_decay * s->w[k];
                s->m[k] = p.beta1 * s->m[k] + (1.0f - p.beta1) * g;
                s->v[k] = p.beta2 * s->v[k] + (1.0f - p.beta2) * g * g;
                s->w[k] -= a * s->m[k] / (sqrtf(s->v[k]) + eps);
            }
        }
    } else {
        for (int i = 0; i < o->n; i++) {
            slot *s = &o->s[i];
            for (size_t k = 0; k < s->n; k++) {
                float g = s->g[k] + p.weight_decay * s->w[k];
                s->m[k] = p.momentum * s->m[k] + g;
                s->w[k] -= p.lr * s->m[k];
            }
        }
    }
    return 0;
}

void cmir_optim_set_lr(cmir_optim *o, float lr)
{
    if (o && lr > 0.0f)
        o->p.lr = lr;
}

int64_t cmir_optim_steps(const cmir_optim *o) { return o ? o->t : 0; }
void cmir_optim_set_steps(cmir_optim *o, int64_t t)
{
    if (o && t >= 0)
        o->t = t;
}

int cmir_optim_state(cmir_optim *o, int i, float **m, float **v, size_t *n)
{
    if (!o || i < 0 || i >= o->n)
        return cmir__error(CMIR_EINVAL, "cmir_optim_state: no parameter %d", i);
    if (m)
        *m = o->s[i].m;
    if (v)
        *v = o->s[i].v;
    if (n)
        *n = o->s[i].n;
    return 0;
}
