/* Shared by the bf16 tests (test_bf16.c, test_conv_bf16.c): seeded random
 * operands and the error bound of a bf16 dot product. Each includer sets
 * rng before calling rnd. */
#ifndef CMIR_BF16_TEST_H
#define CMIR_BF16_TEST_H

#include <math.h>
#include <stdlib.h>
#include "cmir/base.h"

static cmir_rng *rng;

/* n uniform values in [-scale, scale) from rng (one element when n is 0). */
static float *rnd(size_t n, float scale)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        v[i] = (2.0f * cmir_rng_uniform(rng) - 1.0f) * scale;
    return v;
}

/* Error bound of a bf16 dot product of length k with float32
 * accumulation: each operand rounded with unit roundoff 2^-8 (product
 * error <= 2^-7 + 2^-16), k float32 additions (k 2^-24), relative to
 * sum |a||b|. */
static double bound(int k, double absdot)
{
    return (ldexp(1.0, -7) + ldexp(1.0, -15) + k * ldexp(1.0, -23)) * absdot + 1e-30;
}

#endif
