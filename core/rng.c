/* core/rng.c — Philox 4x32-10 counter-based random numbers (steinlab/rng.h).
 *
 * Philox (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3",
 * SC'11) is a keyed bijection of a 128-bit counter. One round maps the counter words
 * (c0, c1, c2, c3) with key (k0, k1) to
 *     (hi(M1*c2) ^ c1 ^ k0,  lo(M1*c2),  hi(M0*c0) ^ c3 ^ k1,  lo(M0*c0))
 * with M0 = 0xD2511F53, M1 = 0xCD9E8D57 (64-bit products split into high and low words);
 * between rounds the key is bumped by the Weyl constants (0x9E3779B9, 0xBB67AE85).
 * The paper finds 7 rounds already pass BigCrush; 10 is its default, with a margin.
 * The known-answer vectors of the Random123 distribution are checked in tests/test_rng.c.
 *
 * Layout of a stream (see rng.h): key = (seed & 0xffffffff, seed >> 32); counter =
 * (step, stream, sample, block). Element i of the array-filling functions comes from word
 * i % 4 of block i / 4. The block word is 32 bits, so a stream holds 2^34 elements;
 * indices beyond that wrap around (block i/4 mod 2^32). No caller comes near this.
 *
 * Because every block is a pure function of its counter, the fills are split over OpenMP
 * threads by block, and the result is bit-identical for any thread count and any
 * sub-range (no state is carried from one element to the next). */
#include <math.h>
#include <stdint.h>

#include "steinlab/rng.h"

enum {
    PHILOX_ROUNDS = 10,
    /* Below this many blocks a fill runs on the calling thread: the fork/join of an
     * OpenMP team costs more than generating a few thousand numbers. */
    PARALLEL_MIN_BLOCKS = 4096
};

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void philox_round(uint32_t c[4], uint32_t k0, uint32_t k1)
{
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
    uint32_t n1 = (uint32_t)p1;
    uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
    uint32_t n3 = (uint32_t)p0;
    c[0] = n0;
    c[1] = n1;
    c[2] = n2;
    c[3] = n3;
}

void sl_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c[4] = {ctr[0], ctr[1], ctr[2], ctr[3]};
    uint32_t k0 = key[0], k1 = key[1];
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        philox_round(c, k0, k1);
        /* The key bump after the last round would be unused. */
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

/* Block `block` of stream k. */
static inline void stream_block(const sl_rng_key *k, uint32_t block, uint32_t out[4])
{
    const uint32_t key[2] = {(uint32_t)(k->seed & 0xffffffffu), (uint32_t)(k->seed >> 32)};
    const uint32_t ctr[4] = {k->step, k->stream, k->sample, block};
    sl_philox4x32_10(ctr, key, out);
}

/* 24-bit uniform float in (0, 1): u = ((x >> 8) + 0.5) 2^-24, the centre of one of 2^24
 * equal cells, so neither 0 nor 1 is a value. u is exact in double; converting to float
 * is exact below 0.5 but above 0.5 the cell centres fall halfway between adjacent floats
 * (float spacing there is 2^-24) and round to even, which keeps the mean unbiased. The
 * last centre, 1 - 2^-25, would round to 1.0f: it is replaced by the largest float
 * below 1 so the interval stays open. */
static inline float word_to_uniform(uint32_t x)
{
    double u = ((double)(x >> 8) + 0.5) * (1.0 / 16777216.0);
    float f = (float)u;
    return f < 1.0f ? f : 0x1.fffffep-1f;
}

/* 32-bit uniform double in (0, 1) for Box-Muller: (x + 0.5) 2^-32 is exact in double and
 * never 0 or 1, so log(u1) is finite (|z| <= sqrt(-2 log(2^-33)) ~ 6.8). */
static inline double word_to_open_double(uint32_t x)
{
    return ((double)x + 0.5) * (1.0 / 4294967296.0);
}

/* Box-Muller: (u1, u2) -> (r cos(2 pi u2), r sin(2 pi u2)), r = sqrt(-2 log u1). */
static inline void box_muller(uint32_t a, uint32_t b, double *z0, double *z1)
{
    const double two_pi = 6.283185307179586476925286766559;
    double r = sqrt(-2.0 * log(word_to_open_double(a)));
    double th = two_pi * word_to_open_double(b);
    *z0 = r * cos(th);
    *z1 = r * sin(th);
}

/* The four values of block b of a stream, in element order. */
static inline void block_uniform(const sl_rng_key *k, uint32_t b, float v[4])
{
    uint32_t w[4];
    stream_block(k, b, w);
    for (int j = 0; j < 4; j++)
        v[j] = word_to_uniform(w[j]);
}

static inline void block_normal(const sl_rng_key *k, uint32_t b, float v[4])
{
    uint32_t w[4];
    double z[4];
    stream_block(k, b, w);
    box_muller(w[0], w[1], &z[0], &z[1]);
    box_muller(w[2], w[3], &z[2], &z[3]);
    for (int j = 0; j < 4; j++)
        v[j] = (float)z[j];
}

typedef void (*block_fn)(const sl_rng_key *k, uint32_t b, float v[4]);

/* Fills out[0..n) with elements offset..offset+n-1: element i is word i%4 of block i/4.
 * Each block is generated once and scattered to the elements it owns inside the range,
 * so the first and last blocks may be partially used. */
static void fill(sl_rng_key k, uint64_t offset, size_t n, float *out, block_fn gen)
{
    if (n == 0)
        return;
    const uint64_t first = offset / 4;
    const uint64_t last = (offset + n - 1) / 4;   /* inclusive */
    const int64_t nblocks = (int64_t)(last - first + 1);
#pragma omp parallel for schedule(static) if (nblocks >= PARALLEL_MIN_BLOCKS)
    for (int64_t bi = 0; bi < nblocks; bi++) {
        uint64_t b = first + (uint64_t)bi;
        float v[4];
        gen(&k, (uint32_t)b, v);   /* block counter wraps mod 2^32 (file comment) */
        for (int j = 0; j < 4; j++) {
            uint64_t e = 4 * b + (uint64_t)j;   /* element index in the stream */
            if (e >= offset && e - offset < n)
                out[e - offset] = v[j];
        }
    }
}

void sl_rng_uniform(sl_rng_key k, uint64_t offset, size_t n, float *out)
{
    fill(k, offset, n, out, block_uniform);
}

void sl_rng_normal(sl_rng_key k, uint64_t offset, size_t n, float *out)
{
    fill(k, offset, n, out, block_normal);
}

/* 53-bit uniform from the first two words of block `index` (NOTE: here `index` numbers
 * blocks, not the elements of the fills above, so uniform1(k, i) shares its block with
 * elements 4i..4i+3 of sl_rng_uniform(k, ...): do not draw both kinds from one key).
 * x = (w0 >> 5) 2^26 + (w1 >> 6) is uniform on [0, 2^53); (x + 0.5) 2^-53 is exact in
 * double and lies in (0, 1). */
double sl_rng_uniform1(sl_rng_key k, uint64_t index)
{
    uint32_t w[4];
    stream_block(&k, (uint32_t)index, w);
    uint64_t x = ((uint64_t)(w[0] >> 5) << 26) | (uint64_t)(w[1] >> 6);
    return ((double)x + 0.5) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [lo, hi] by rejection, without modulo bias.
 *
 * Scheme. Let r = hi - lo + 1 (as uint64; r = 0 encodes the full 2^64 range). Candidates
 * are 64-bit words: first (w0 << 32 | w1), then (w2 << 32 | w3) of block `index` (the
 * block numbering of sl_rng_uniform1). A candidate x is accepted when x >= 2^64 mod r:
 * the accepted set [2^64 mod r, 2^64) has a size divisible by r, so x mod r is exactly
 * uniform. When both candidates of a block are rejected, the block's four output words
 * are fed back through Philox as the next counter (same key) and the next two candidates
 * come from that block, and so on. The chain is a pure function of (key, index), so the
 * result is deterministic. Each candidate is rejected with probability < r / 2^64, so a
 * chain longer than one block is astronomically rare for ranges below 2^32 and has
 * probability below 1/4 per block even in the worst case r = 2^63 + 1.
 *
 * hi < lo breaks the precondition; it returns lo. */
int64_t sl_rng_int1(sl_rng_key k, uint64_t index, int64_t lo, int64_t hi)
{
    if (hi <= lo)
        return lo;
    const uint64_t r = (uint64_t)hi - (uint64_t)lo + 1u;   /* mod 2^64 */
    /* 2^64 mod r, computed as (2^64 - r) mod r = (-r) mod r in uint64 arithmetic. */
    const uint64_t threshold = (r == 0) ? 0 : (0 - r) % r;
    const uint32_t key[2] = {(uint32_t)(k.seed & 0xffffffffu), (uint32_t)(k.seed >> 32)};
    uint32_t w[4];
    stream_block(&k, (uint32_t)index, w);
    for (;;) {
        for (int p = 0; p < 2; p++) {
            uint64_t x = ((uint64_t)w[2 * p] << 32) | w[2 * p + 1];
            if (x >= threshold) {
                uint64_t off = (r == 0) ? x : x % r;
                /* lo + off never exceeds hi; the sum is formed in uint64 (wrapping) and
                 * converted back, which GCC and Clang define as modular. */
                return (int64_t)((uint64_t)lo + off);
            }
        }
        uint32_t next[4];
        sl_philox4x32_10(w, key, next);
        w[0] = next[0];
        w[1] = next[1];
        w[2] = next[2];
        w[3] = next[3];
    }
}
