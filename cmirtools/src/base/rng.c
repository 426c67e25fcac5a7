/* Seeded pseudo-random numbers: xoshiro256** (Blackman & Vigna) seeded
 * through splitmix64; uniform, bounded integer and normal variates. */
#include "internal.h"

#include <math.h>

struct cmir_rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void cmir_rng_seed(cmir_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

cmir_rng *cmir_rng_new(uint64_t seed)
{
    cmir_rng *r = cmir__malloc(sizeof *r);
    if (r)
        cmir_rng_seed(r, seed);
    return r;
}

void cmir_rng_free(cmir_rng *r) { cmir__free(r); }

uint64_t cmir_rng_u64(cmir_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float cmir_rng_uniform(cmir_rng *r)
{
    return (float)(cmir_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

uint64_t cmir_rng_below(cmir_rng *r, uint64_t n)
{
    /* Rejection sampling removes modulo bias. */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do
        x = cmir_rng_u64(r);
    while (x >= lim);
    return x % n;
}

float cmir_rng_normal(cmir_rng *r)
{
    double u1 = ((double)(cmir_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (double)(cmir_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void cmir_rng_get_state(const cmir_rng *r, uint64_t state[4])
{
    for (int i = 0; i < 4; i++)
        state[i] = r->s[i];
}

void cmir_rng_set_state(cmir_rng *r, const uint64_t state[4])
{
    for (int i = 0; i < 4; i++)
        r->s[i] = state[i];
}
