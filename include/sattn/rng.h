/* rng: a tiny seeded generator (splitmix64). Its whole state is one uint64,
 * so checkpoints can store it and a resumed run draws the same batches. */
#ifndef SATTN_RNG_H
#define SATTN_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t state;
} rng_t;

void rng_seed(rng_t *r, uint64_t seed);
uint64_t rng_u64(rng_t *r);
/* Uniform in [0, n) without modulo bias worth caring about (n < 2^32). */
uint32_t rng_below(rng_t *r, uint32_t n);
/* Uniform float in [0, 1). */
float rng_uniform(rng_t *r);
/* Standard normal (Box-Muller, no cached spare so the state stays one word). */
float rng_normal(rng_t *r);

#endif
