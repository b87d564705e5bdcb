/* peak: the machine's measured FP32 peak, from register-only FMA chains (issue 11: `sattn
 * bench` prints it beside the attention rates and a "% of peak" column; docs/flash.md).
 *
 * Each OpenMP thread runs PEAK_CHAINS independent chains acc_a = acc_a * one + one of vector
 * FMAs (the build's widest: AVX-512 16 lanes, AVX2 + FMA 8 lanes, else 4 scalar lanes that
 * the compiler may vectorise), all in registers: no loads or stores inside the loop, so only
 * the FMA pipes limit it. Chains needed to keep the pipes full = FMA latency x pipes
 * (4-5 cycles x 2 pipes on current x86 cores), hence 12 with 16 vector registers (AVX2) and
 * 24 with 32 (AVX-512). FLOPs = 2 (multiply and add) x lanes x chains x iterations per
 * thread; the rate is all threads' FLOPs over the wall time from the start barrier to the
 * last thread's end, the median of several runs. */
#ifndef SATTN_PEAK_H
#define SATTN_PEAK_H

typedef struct {
    double gflops;      /* median over the runs, all threads */
    double gflops_max;  /* the best run */
    int threads, lanes, chains, runs;
    long iters;         /* loop iterations per thread per run */
    const char *isa;    /* "avx512f", "avx2+fma" or "scalar" */
} peak_result;

/* Vector lanes and independent chains of this build's probe loop, and its ISA's name. */
int peak_lanes(void);
int peak_chains(void);
const char *peak_isa(void);

/* FLOPs of one thread's loop of iters iterations: 2 * lanes * chains * iters. */
double peak_loop_flops(long iters);

/* One thread's loop, iters iterations. Chain a of lane l starts at a + l / 1024 (exact) and
 * adds `one` per iteration (one = 1 normally: acc*1 + 1, read from a volatile so the compiler
 * cannot drop the multiply). Returns the sum of all lanes of all chains, so a test can check
 * that exactly the counted FMAs ran: for iters < 8000 it is exact,
 *   chains * lanes * iters * one + lanes * chains (chains - 1) / 2 + chains * lanes (lanes - 1) / 2048. */
double peak_loop(long iters, float one);

/* Measures the peak with the current OpenMP thread count: iterations calibrated so that one
 * run lasts about 20 ms, then the median of `runs` (>= 1) runs. */
peak_result peak_measure(int runs);

#endif
