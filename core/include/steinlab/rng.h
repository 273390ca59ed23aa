/* steinlab/rng.h — counter-based random numbers (Philox 4x32-10).
 *
 * Every random number in a run is a pure function of (seed, step, stream, sample, index):
 * no generator state is carried between calls, so results do not depend on the thread
 * count or on the order in which work is done, and a resumed run draws exactly what an
 * uninterrupted one would. Philox 4x32-10 is the generator of Salmon et al., "Parallel
 * random numbers: as easy as 1, 2, 3" (SC'11); the key is the 64-bit seed, the counter is
 * (step, stream, sample, block) with four 32-bit outputs per block. */
#ifndef STEINLAB_RNG_H
#define STEINLAB_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Streams used by the core. A plugin instance gets its own range of streams from its host
 * (sl_host.rng_stream_base), so plugins never draw the same numbers as the core. */
enum {
    SL_STREAM_CAMERA = 1,     /* camera sampler */
    SL_STREAM_TIMESTEP = 2,   /* diffusion time t */
    SL_STREAM_NOISE = 3,      /* injected noise eps */
    SL_STREAM_INIT = 4,       /* parameter initialisation */
    SL_STREAM_PROBE = 5,      /* variance probes: the injected noise */
    SL_STREAM_PROBE_T = 6,    /* variance probes: diffusion times */
    SL_STREAM_PROBE_CAMERA = 7,  /* variance probes: cameras */
    SL_STREAM_PLUGIN_BASE = 0x10000   /* first stream handed to plugins */
};

typedef struct sl_rng_key {
    uint64_t seed;
    uint32_t step;
    uint32_t stream;
    uint32_t sample;
} sl_rng_key;

/* One Philox 4x32-10 block: out = philox(ctr, key). */
void sl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Element i (i = offset .. offset+n-1) of the stream `k`, written to out[i - offset].
 * Element i is taken from word i % 4 of block i / 4, so any sub-range gives the same
 * values as the whole. uniform: in the open interval (0, 1), 24-bit resolution.
 * normal: standard normal by the Box-Muller transform of the block's two word pairs. */
void sl_rng_uniform(sl_rng_key k, uint64_t offset, size_t n, float *out);  /* out: (n,) */
void sl_rng_normal(sl_rng_key k, uint64_t offset, size_t n, float *out);   /* out: (n,) */

/* Single draws in double precision (53-bit uniform in (0, 1)), element `index`. */
double sl_rng_uniform1(sl_rng_key k, uint64_t index);

/* Uniform integer in [lo, hi] (inclusive), element `index`; unbiased by rejection. */
int64_t sl_rng_int1(sl_rng_key k, uint64_t index, int64_t lo, int64_t hi);

#ifdef __cplusplus
}
#endif
#endif
