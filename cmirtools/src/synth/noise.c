/* Procedural noise for the synth module's textures: value noise, fractal
 * sums of it, and Worley (cellular) distance, all pure functions of a key
 * and a position so that rendering is deterministic in any order. */
#include "synth_internal.h"

static inline float fade(float t) { return t * t * (3.0f - 2.0f * t); }

float cmir__sy_vnoise(uint32_t key, double x, double y)
{
    double fx = floor(x), fy = floor(y);
    int32_t i = (int32_t)fx, j = (int32_t)fy;
    float tx = fade((float)(x - fx)), ty = fade((float)(y - fy));
    float a = sy_hashf(key, i, j), b = sy_hashf(key, i + 1, j);
    float c = sy_hashf(key, i, j + 1), d = sy_hashf(key, i + 1, j + 1);
    float v = sy_lerp(sy_lerp(a, b, tx), sy_lerp(c, d, tx), ty);
    return 2.0f * v - 1.0f;
}

float cmir__sy_fbm(uint32_t key, double x, double y, int oct)
{
    float sum = 0.0f, amp = 0.5f, norm = 0.0f;
    for (int o = 0; o < oct; o++) {
        /* A rotation-free offset per octave hides the lattice alignment. */
        sum += amp * cmir__sy_vnoise(key + (uint32_t)o * 0x51ED27U, x + 17.31 * o, y - 9.17 * o);
        norm += amp;
        amp *= 0.5f;
        x *= 2.03;
        y *= 2.03;
    }
    return sum / norm * 1.6f;
}

float cmir__sy_worley(uint32_t key, double x, double y, int32_t *ci, int32_t *cj, float *dx,
                      float *dy)
{
    int32_t i0 = (int32_t)floor(x), j0 = (int32_t)floor(y);
    float best = 1e30f;
    for (int32_t j = j0 - 1; j <= j0 + 1; j++)
        for (int32_t i = i0 - 1; i <= i0 + 1; i++) {
            uint32_t h = sy_hash(key, i, j);
            float px = (float)i + 0.1f + 0.8f * (float)(h & 0xFFFF) / 65536.0f;
            float py = (float)j + 0.1f + 0.8f * (float)(h >> 16) / 65536.0f;
            float ex = px - (float)x, ey = py - (float)y;
            float d = ex * ex + ey * ey;
            if (d < best) {
                best = d;
                *ci = i;
                *cj = j;
                *dx = ex;
                *dy = ey;
            }
        }
    return sqrtf(best);
}
