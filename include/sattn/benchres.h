/* benchres: the results of `sattn bench` (docs/bench.md), on the CPU (attnbench.h) and
 * the GPU (cuda_bench.h): one row type, one column table, the CSV writer and its reader.
 * crossover.h, report.h and the CLI read and write rows only through here.
 *
 * The CSV: the header line
 *   variant,phase,C,H,T,k,median_s,gflops,speedup_vs_flash,peak_bytes,cpu_pressure_avg10,pct_peak
 * then one row per line. variant names the kernel ("dense-flash", "index+softmax",
 * "block+softmax-cuda", a head spec); phase is "prefill", "decode" or "backward";
 * speedup_vs_flash is dense-flash's median at (phase, C, T) over the row's, and -1 where
 * there is no dense-flash row; cpu_pressure_avg10 is /proc/pressure/cpu "some avg10"
 * before the row, -1 where it is not available (the GPU's rows); pct_peak is gflops as a
 * percentage of the FP32 peak measured by peak.h's FMA probe at the run's thread count, -1
 * where none was measured (the GPU's rows). Files without the last column (written before
 * issue 11) are read with pct_peak = -1. */
#ifndef SATTN_BENCHRES_H
#define SATTN_BENCHRES_H

#include <stddef.h>

#include "sattn/core.h"

#define BENCH_NAME_LEN 96

/* The phases. backward: d qkv from d out for the prefill of T (attnbench.h). */
enum { BENCH_PREFILL = 0, BENCH_DECODE = 1, BENCH_BACKWARD = 2, BENCH_NPHASE = 3 };

/* "prefill", "decode", "backward" ("?" outside); bench_phase_parse: the phase, or -1. */
const char *bench_phase_name(int phase);
int bench_phase_parse(const char *s);

/* One measured row; the fields are the CSV's columns, in order. */
typedef struct {
    char variant[BENCH_NAME_LEN];
    int phase;                /* BENCH_PREFILL, BENCH_DECODE or BENCH_BACKWARD */
    int C, H, T, k;           /* k = 0 for the dense variants */
    double median_s, gflops;  /* gflops: costmodel's attention FLOPs / median */
    double speedup_vs_flash;  /* -1: no dense-flash row */
    double peak_bytes;        /* costmodel's peak activation memory (+ what the row adds) */
    double cpu_pressure;      /* column cpu_pressure_avg10; -1: not available */
    double pct_peak;          /* 100 gflops / measured FP32 peak; -1: no peak measured */
} bench_row;

typedef struct {
    int n;
    bench_row *rows;
} bench_table;

/* The CSV header line (with '\n'). */
const char *bench_csv_header(void);
/* Row r as one CSV line (with '\n'), or as one JSON object {"variant": ..., ...} with
 * the same keys and number formats (no newline), into buf. */
void bench_csv_line(const bench_row *r, char *buf, size_t n);
void bench_json_object(const bench_row *r, char *buf, size_t n);
/* Header and rows written atomically to path. */
int bench_csv_write(const char *path, const bench_row *rows, int n, sattn_err *e);

/* Reads a bench CSV (the header above, then one row per line; empty lines skipped).
 * Errors are one line naming "path:line" and the column: a wrong or missing header
 * column, a row with too few or too many fields, a field that is not a finite decimal
 * number or is outside its column's range (times > 0, sizes and rates bounded; -1
 * where bench writes it for "not available"), an unknown phase, a variant name with a
 * byte other than letters, digits and + - _ . : = (names reach gnuplot), a NUL byte,
 * more than 2^18 rows or 64 MiB. */
int bench_csv_read(const char *path, bench_table *t, sattn_err *e);
void bench_table_free(bench_table *t);

#endif
