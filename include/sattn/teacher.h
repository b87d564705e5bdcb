/* teacher: what each attention head of a trained full-attention model does —
 * per-head statistics, extraction of the per-query signals the sparse heads are
 * distilled against, and the shard file that stores them.
 *
 * Notation (DESIGN.md): layer l, head h, head dim d = C/H, one sequence of T
 * positions. After gpt_forward, q_t, k_t, v_t are rows of acts.qkv, the teacher's
 * probabilities p_t(s) (s <= t) are rows of acts.att, and o_t = sum_s p_t(s) v_s
 * is the head's slice of acts.atty.
 *
 * Statistics of one head, each a mean over every query t of every sequence added
 * (query 0 included: it has one key, so its argmax is both itself and position 0):
 *   entropy      H_t = -sum_{s<=t} p_t(s) ln p_t(s)            (nats, in [0, ln(t+1)])
 *   mass@k       sum of the k largest p_t(s), s <= t (1 when k > t), for
 *                k = 1, 2, 4, ... (powers of two below T) and T itself
 *   argmax_dist  t - a_t, a_t = argmax_s p_t(s) (the smallest s among ties)
 *   self_frac    [a_t == t]      sink_frac  [a_t == 0]
 *
 * Shard file (little-endian; TEACHER_MAGIC "STCH", version 2):
 *   header, 64 x uint32:
 *     [0] magic 0x48435453  [1] version 2
 *     [2] L  [3] H  [4] C  [5] max_seq (the model's context)  [6] V
 *     [7] n_seqs  [8] T (positions per sequence, <= max_seq)  [9] kmax (<= T)
 *     [10] n_pairs  [11] n_ks
 *     [12..13] FNV-1a 64 (low word first) of the whole file: the header with words
 *              12..13 read as 0, then every byte after it
 *     [14..63] reserved, must be 0
 *   int32 pairs[n_pairs][2]         (layer, head), distinct, 0 <= layer < L, 0 <= head < H
 *   int32 ks[n_ks]                  the k of each mass@k column (teacher_ks(T))
 *   records, sequence-major: for n in 0..n_seqs-1, for p in 0..n_pairs-1, record (n, p):
 *     float32 q[T][d], k[T][d], v[T][d], o[T][d]
 *     int32   top_idx[T][kmax]      keys in descending p_t (ties: smaller position first);
 *                                   row t holds min(kmax, t+1) keys s <= t, then -1
 *     float32 top_p[T][kmax]        their probabilities, 0 for the -1 padding
 *   float64 stats[n_pairs][4 + n_ks] entropy, argmax_dist, self_frac, sink_frac, mass@ks...
 * Version 1 (still read): the checksum covers only the bytes after the header and the
 * reserved words are not checked.
 * The writer streams records as batches are produced (memory: one record), writes a
 * zero checksum and patches it in place before the atomic rename. The reader checks
 * magic, version, dimensions, reserved words, the pair list, the exact size, the
 * checksum, and every record (q, k, v, o finite; top-k causal, descending, padding) and
 * stat (finite); errors name the file. */
#ifndef SATTN_TEACHER_H
#define SATTN_TEACHER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sattn/core.h"
#include "sattn/model.h"

#define TEACHER_MAGIC 0x48435453u
#define TEACHER_VERSION 2    /* written: the checksum covers the header */
#define TEACHER_VERSION_V1 1 /* still read */
#define TEACHER_HEADER_WORDS 64
#define TEACHER_MAX_KS 33 /* powers of two below 2^31, plus T */
#define TEACHER_NSTAT_FIXED 4 /* entropy, argmax_dist, self_frac, sink_frac */

typedef struct {
    int layer, head;
} teacher_pair;

/* The (layer, head) pairs of the model named by two lists, each "all" or comma-separated
 * indices and ranges ("0,2", "1-3"): their product, layer-major, ascending. Errors (empty
 * item, not a number, out of range, listed twice) are one line naming the list
 * ("layers '0,9': 9 is outside 0..3"). *pairs is malloc'd on success. */
int teacher_select_pairs(const gpt_config *c, const char *layers, const char *heads,
                         teacher_pair **pairs, int *n_pairs, sattn_err *e);
/* One list: marks sel[i] = 1 for each index in it, 0 <= i < n. */
int teacher_parse_list(const char *what, const char *s, int n, unsigned char *sel, sattn_err *e);

/* The k of the mass@k columns for sequences of T: 1, 2, 4, ... < T, then T. Returns n_ks. */
int teacher_ks(int T, int ks[TEACHER_MAX_KS]);

/* ---- statistics ---- */

typedef struct {
    double entropy, argmax_dist, self_frac, sink_frac;
    double mass[TEACHER_MAX_KS]; /* mass@ks[i] */
} teacher_head_stats;

typedef struct {
    int n_pairs, T, n_ks;
    teacher_pair *pairs; /* owned copy */
    int ks[TEACHER_MAX_KS];
    long long queries;         /* per pair, so far */
    double *sum;               /* (n_pairs, 4 + n_ks) running sums */
    teacher_head_stats *head;  /* (n_pairs) means, valid after finish */
} teacher_stats;

/* Accumulator for the given pairs over sequences of length T. */
void teacher_stats_init(teacher_stats *s, const teacher_pair *pairs, int n_pairs, int T);
/* Adds the B sequences of the model's last forward (B, T must be that forward's; T as in init).
 * The result does not depend on the thread count. */
void teacher_stats_add(teacher_stats *s, const gpt_model *m, int B, int T);
/* Turns the sums into means (head[]). */
void teacher_stats_finish(teacher_stats *s);
void teacher_stats_free(teacher_stats *s);

/* Per-query pieces (p is the row p_t(0..t)), exposed for tests and other modules. */
/* -sum p ln p over s <= t (0 * ln 0 = 0). */
double teacher_entropy(const float *p, int t);
/* The min(kmax, t+1) largest entries of p[0..t] in descending order (ties: smaller
 * position first): idx[j], prob[j]; the rest of the kmax slots get -1 and 0. */
void teacher_topk(const float *p, int t, int kmax, int32_t *idx, float *prob);

/* ---- extraction ---- */

/* One head on positions t0 .. t0+n-1 of one sequence; row i is position t0 + i. */
typedef struct {
    int n, hs, kmax;
    float *q, *k, *v, *o; /* (n, hs) each */
    int32_t *top_idx;     /* (n, kmax) */
    float *top_p;         /* (n, kmax) */
} teacher_record;

void teacher_record_alloc(teacher_record *r, int n, int hs, int kmax);
void teacher_record_free(teacher_record *r);
/* Bytes of one record as stored: n * (4 hs + 2 kmax) * 4. */
size_t teacher_record_bytes(int n, int hs, int kmax);
/* Fills r (allocated for n = t1 - t0 rows, r->kmax <= T) from the model's last forward
 * (B, T): sequence b, head pair, positions [t0, t1). q/k/v/o are copied bitwise. */
void teacher_extract(const gpt_model *m, int B, int T, teacher_pair pair, int b, int t0, int t1,
                     teacher_record *r);

/* ---- shard files ---- */

typedef struct {
    int layers, heads, channels, max_seq, vocab; /* the model */
    int n_seqs, T, kmax;
    int n_pairs;
    teacher_pair *pairs;
    int n_ks;
    int ks[TEACHER_MAX_KS];
    uint64_t checksum; /* reader: as stored */
} teacher_shard_info;

/* Info for a shard of n_seqs sequences of T from model c (pairs is borrowed). */
teacher_shard_info teacher_shard_info_make(const gpt_config *c, const teacher_pair *pairs,
                                           int n_pairs, int n_seqs, int T, int kmax);
/* Exact file size the info implies (0 if it would overflow). */
uint64_t teacher_shard_bytes(const teacher_shard_info *info);

typedef struct {
    afile f;
    teacher_shard_info info; /* pairs: owned copy */
    int seqs_written;
    uint64_t sum;
    teacher_record rec; /* scratch: one record */
} teacher_writer;

/* Creates the temporary file and writes the header (zero checksum), pairs and ks.
 * Checks the info (dims, pairs in range, kmax <= T <= max_seq) first. */
int teacher_writer_open(teacher_writer *w, const char *path, const teacher_shard_info *info,
                        sattn_err *e);
/* Writes the records of sequences 0..B-1 of the model's last forward (B, info.T), every
 * pair, and counts them; too many sequences is an error. */
int teacher_writer_add(teacher_writer *w, const gpt_model *m, int B, sattn_err *e);
/* Writes the stats (of the same pairs, finished), patches the checksum, renames into place.
 * Fails (and removes the temporary) unless exactly n_seqs sequences were written. Always
 * releases w. */
int teacher_writer_finish(teacher_writer *w, const teacher_stats *s, sattn_err *e);
/* Removes the temporary file and releases w. */
void teacher_writer_abort(teacher_writer *w);

typedef struct {
    FILE *f;
    char *path;
    teacher_shard_info info; /* pairs: owned */
    teacher_head_stats *stats; /* (n_pairs) */
    size_t rec_bytes;
    uint64_t records_off; /* byte offset of record (0, 0) */
} teacher_shard;

/* Opens and fully validates a shard (streams it once: memory is one record). */
int teacher_shard_open(teacher_shard *s, const char *path, sattn_err *e);
/* Reads record (seq, pair index) into r (allocated for T rows, hs, kmax of the shard). */
int teacher_shard_read(teacher_shard *s, int seq, int pair, teacher_record *r, sattn_err *e);
void teacher_shard_close(teacher_shard *s);

#endif
