/* rng: splitmix64 (Steele, Lea, Flood 2014): one 64-bit word of state, passes BigCrush. */
#include "sattn/rng.h"

#include <math.h>

void rng_seed(rng_t *r, uint64_t seed) { r->state = seed; }

uint64_t rng_u64(rng_t *r) {
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Lemire's multiply-shift: bias < n / 2^32, negligible for our n. */
uint32_t rng_below(rng_t *r, uint32_t n) {
    return (uint32_t)(((rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

float rng_uniform(rng_t *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(rng_t *r) {
    /* u1 in (0, 1] so the log is finite */
    double u1 = ((double)(rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
