/* CPU kernels for beam search and training, called through ctypes (attnlab/native/__init__.py
 * builds and loads this file). Each fuses what ATen runs as several passes over memory: on a
 * 2-core CPU a beam search step streams more than the L3 cache holds, so passes, not FLOPs, set
 * its time; the loss reads [tokens, V] logits, the largest tensor of a training step. The
 * training attention, dropout and transposes replace ATen kernels that, at short sequences,
 * spend their time on per-call overheads or on one thread.
 *
 * Tensors arrive as raw pointers to contiguous data; the Python side checks shapes, dtypes and
 * layouts. Arithmetic is fp32 whatever the storage (fp32 or bf16). Threads: OpenMP, the same
 * libgomp that torch loaded (same soname), never more than `threads`.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline float bf16_to_float(uint16_t v) {
  union { uint32_t u; float f; } c;
  c.u = (uint32_t)v << 16;
  return c.f;
}

static inline uint16_t float_to_bf16(float f) {  /* round to nearest even, as torch does */
  union { uint32_t u; float f; } c;
  c.f = f;
  if (f != f) return (uint16_t)((c.u >> 16) | 0x40);  /* quiet NaN */
  return (uint16_t)((c.u + 0x7FFFu + ((c.u >> 16) & 1u)) >> 16);
}

/* Loads n values (fp32, or bf16 when `bf16`) as fp32 into dst; returns dst, or src itself for
 * fp32 (no copy). */
static inline const float *as_float(const void *src, int bf16, int64_t n, float *dst) {
  if (!bf16) return (const float *)src;
  const uint16_t *s = (const uint16_t *)src;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(s[i]);
  return dst;
}

/* exp(x) for x <= 0 (Cephes' expf: x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial in r,
 * within 2 ulp), in a form the loops below vectorise; 0 below -87. Rounding by adding and
 * subtracting 1.5 * 2^23: roundf does not vectorise. */
#pragma omp declare simd notinbranch
static inline float exp_nonpositive(float x) {
  float below = x < -87.f ? 0.f : 1.f;
  x = x < -87.f ? -87.f : x;
  float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  union { uint32_t u; float f; } scale;
  scale.u = (uint32_t)((int32_t)n + 127) << 23;
  return p * scale.f * below;
}

/* q . k over d elements, k stored as fp32 or bf16. */
static inline float dot(const float *q, const char *k, int bf16, int64_t d) {
  float sum = 0.f;
  if (bf16) {
    const uint16_t *kb = (const uint16_t *)k;
#pragma omp simd reduction(+ : sum)
    for (int64_t x = 0; x < d; ++x) sum += q[x] * bf16_to_float(kb[x]);
  } else {
    const float *kf = (const float *)k;
#pragma omp simd reduction(+ : sum)
    for (int64_t x = 0; x < d; ++x) sum += q[x] * kf[x];
  }
  return sum;
}

/* acc += w * v over d elements, v stored as fp32 or bf16. */
static inline void add_scaled(float *acc, float w, const char *v, int bf16, int64_t d) {
  if (bf16) {
    const uint16_t *vb = (const uint16_t *)v;
#pragma omp simd
    for (int64_t x = 0; x < d; ++x) acc[x] += w * bf16_to_float(vb[x]);
  } else {
    const float *vf = (const float *)v;
#pragma omp simd
    for (int64_t x = 0; x < d; ++x) acc[x] += w * vf[x];
  }
}

/* scores[j] = exp(scores[j] - max) over n scores; returns their sum. */
static inline float exp_shifted(float *scores, int64_t n, float max) {
  float sum = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    scores[j] = exp_nonpositive(scores[j] - max);
    sum += scores[j];
  }
  return sum;
}

/* out = acc * scale over d elements, stored as fp32 or bf16. */
static inline void store_scaled(char *out, const float *acc, float scale, int bf16, int64_t d) {
  if (bf16) {
    for (int64_t x = 0; x < d; ++x) ((uint16_t *)out)[x] = float_to_bf16(acc[x] * scale);
  } else {
    for (int64_t x = 0; x < d; ++x) ((float *)out)[x] = acc[x] * scale;
  }
}

/* ------------------------------------------------------------------ log_softmax + top-k */

/* For each row of `logits` [rows, V] (row stride `ld` elements): the log-softmax values of its
 * k best tokens, best first, ties in log-prob to the lowest index (as
 * decoding._topk_lowest_index_first, up to the rounding of the log of the sum of exps),
 * in out_value / out_index [rows, k]. The log-softmax runs over the raw row; then token
 * `banned` (if >= 0) counts as -inf, and in a row with force[row] != 0 every token but `eos`
 * does (max-length rows: eos keeps its value even if banned), as decoding._next_log_probs.
 * One read of the row for its max, one for its sum of exps and one for the top-k, which skips
 * blocks of 16 whose max cannot enter it. k <= 64. */
void log_softmax_topk(const void *logits, int bf16, int64_t rows, int64_t vocab, int64_t ld,
                      int64_t k, int64_t eos, int64_t banned, const uint8_t *force,
                      float *out_value, int64_t *out_index, int threads) {
#pragma omp parallel num_threads(threads)
  {
    float *scratch = bf16 ? (float *)malloc(sizeof(float) * vocab) : NULL;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const char *row = (const char *)logits + r * ld * (bf16 ? 2 : 4);
      const float *x = as_float(row, bf16, vocab, scratch);
      float max = -INFINITY;
#pragma omp simd reduction(max : max)
      for (int64_t j = 0; j < vocab; ++j) max = x[j] > max ? x[j] : max;
      float sum = 0.f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < vocab; ++j) sum += exp_nonpositive(x[j] - max);
      float log_sum = logf(sum);

      float top_value[64];
      int64_t top_index[64];
      int64_t filled = 0;
      int forced = force != NULL && force[r];
      for (int64_t start = 0; start < vocab; start += 16) {
        int64_t end = start + 16 < vocab ? start + 16 : vocab;
        if (filled == k && !forced) {  /* nothing in this block can enter: skip it */
          float block_max = -INFINITY;
#pragma omp simd reduction(max : block_max)
          for (int64_t j = start; j < end; ++j) block_max = x[j] > block_max ? x[j] : block_max;
          if (!((block_max - max) - log_sum > top_value[k - 1])) continue;
        }
        for (int64_t j = start; j < end; ++j) {
          /* Ranked by the log-prob itself: two logits may round to one log-prob, a tie. */
          float v = (x[j] - max) - log_sum;
          if (forced ? j != eos : j == banned) v = -INFINITY;
          if (filled == k && !(v > top_value[k - 1])) continue;  /* ties: the earlier stays */
          int64_t p = filled < k ? filled++ : k - 1;
          while (p > 0 && v > top_value[p - 1]) {
            top_value[p] = top_value[p - 1];
            top_index[p] = top_index[p - 1];
            --p;
          }
          top_value[p] = v;
          top_index[p] = j;
        }
      }
      for (int64_t i = 0; i < k; ++i) {
        out_value[r * k + i] = top_value[i];
        out_index[r * k + i] = top_index[i];
      }
    }
    free(scratch);
  }
}

/* ------------------------------------------------------------------------- attention */

/* One query's softmax(q k^T * scale) v into out (fp32 or bf16), over `length` keys and values:
 * key j is row (j * stride + (slot ? slot[j] : 0)) of `keys` / `values`, masked out where
 * mask[j] == 0 (mask may be NULL). With skip_zero, values whose weight is 0 (masked keys,
 * underflow) are not read. scores holds `length` floats, acc d_v. */
static inline void attend_row(const float *q, const char *keys, const char *values,
                              const int64_t *slot, int64_t stride, const uint8_t *mask,
                              int skip_zero, int64_t length, int64_t d_k, int64_t d_v,
                              float scale, int bf16, float *scores, float *acc, char *out) {
  const int64_t elem = bf16 ? 2 : 4;
  float max = -INFINITY;
  for (int64_t j = 0; j < length; ++j) {
    int64_t at = j * stride + (slot != NULL ? slot[j] : 0);
    int masked = mask != NULL && !mask[j];
    scores[j] = masked ? -INFINITY : dot(q, keys + at * d_k * elem, bf16, d_k) * scale;
    max = scores[j] > max ? scores[j] : max;
  }
  float sum = exp_shifted(scores, length, max);
  memset(acc, 0, sizeof(float) * d_v);
  for (int64_t j = 0; j < length; ++j) {
    if (skip_zero && scores[j] == 0.f) continue;
    int64_t at = j * stride + (slot != NULL ? slot[j] : 0);
    add_scaled(acc, scores[j], values + at * d_v * elem, bf16, d_v);
  }
  store_scaled(out, acc, 1.f / sum, bf16, d_v);
}

/* ------------------------------------------------- beam search decoder self-attention */

/* softmax(q k^T * scale) v of each decoder row over its own past, with beams sharing their
 * sentence's steps (models/kv_cache.BeamKVCache): row r = sentence s, slot b (r = s * beams +
 * b); its step j is slot ancestry[r, j] of step j in the buffers. Reads only those keys and
 * values, where the batched-matmul form reads every slot's.
 *   query [rows, heads, d_k], key [n, heads, capacity, beams, d_k],
 *   value [n, heads, capacity, beams, d_v], ancestry [rows, length] -> out [rows, heads, d_v]
 * in the buffers' dtype (fp32 or bf16; fp32 arithmetic, softmax included). */
void beam_self_attention(const void *query, const void *key, const void *value,
                         const int64_t *ancestry, void *out, int bf16, int64_t sentences,
                         int64_t beams, int64_t heads, int64_t d_k, int64_t d_v,
                         int64_t capacity, int64_t length, float scale, int threads) {
  const int64_t elem = bf16 ? 2 : 4;
#pragma omp parallel num_threads(threads)
  {
    float *scores = (float *)malloc(sizeof(float) * (length + d_k + d_v));
    float *q = scores + length, *acc = q + d_k;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < sentences * heads; ++task) {
      int64_t s = task / heads, h = task % heads;
      const char *keys = (const char *)key + task * capacity * beams * d_k * elem;
      const char *values = (const char *)value + task * capacity * beams * d_v * elem;
      for (int64_t b = 0; b < beams; ++b) {
        int64_t r = s * beams + b;
        const float *qr = as_float((const char *)query + (r * heads + h) * d_k * elem, bf16, d_k, q);
        attend_row(qr, keys, values, ancestry + r * length, beams, NULL, 0, length, d_k, d_v,
                   scale, bf16, scores, acc, (char *)out + (r * heads + h) * d_v * elem);
      }
    }
    free(scores);
  }
}

/* ------------------------------------------------------- a decoding step's cross-attention */

/* softmax(q k^T * scale) v for a few queries per (batch row, head) against that row's keys,
 * keys where allowed[row, j] == 0 masked out (allowed may be NULL: all allowed):
 *   query [batch, heads, queries, d_k], key [batch, heads, S, d_k], value [batch, heads, S, d_v]
 *   -> out [batch, heads, queries, d_v], in fp32 or bf16 storage, fp32 arithmetic. A row with
 * every key masked gets NaN, as the softmax of all -inf does. */
void attention(const void *query, const void *key, const void *value, const uint8_t *allowed,
               void *out, int bf16, int64_t batch, int64_t heads, int64_t queries,
               int64_t keys_len, int64_t d_k, int64_t d_v, float scale, int threads) {
  const int64_t elem = bf16 ? 2 : 4;
#pragma omp parallel num_threads(threads)
  {
    float *scores = (float *)malloc(sizeof(float) * (keys_len + d_k + d_v));
    float *q = scores + keys_len, *acc = q + d_k;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < batch * heads; ++task) {
      const char *keys = (const char *)key + task * keys_len * d_k * elem;
      const char *values = (const char *)value + task * keys_len * d_v * elem;
      const uint8_t *mask = allowed == NULL ? NULL : allowed + (task / heads) * keys_len;
      for (int64_t i = 0; i < queries; ++i) {
        int64_t row = task * queries + i;
        const float *qi = as_float((const char *)query + row * d_k * elem, bf16, d_k, q);
        attend_row(qi, keys, values, NULL, 1, mask, 1, keys_len, d_k, d_v, scale, bf16, scores,
                   acc, (char *)out + row * d_v * elem);
      }
    }
    free(scores);
  }
}

/* ---------------------------------------------- transposes for linear layers' weight gradients */

#if defined(__AVX__)
#include <immintrin.h>

/* The 8 x 8 block at src (row stride ld) into dst (row stride ldd), transposed; with sums, each
 * of its 8 columns' sum added to sums[0..7] (fp64). */
static inline void transpose8x8(const float *src, int64_t ld, float *dst, int64_t ldd,
                                double *sums) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + ld);
  __m256 r2 = _mm256_loadu_ps(src + 2 * ld), r3 = _mm256_loadu_ps(src + 3 * ld);
  __m256 r4 = _mm256_loadu_ps(src + 4 * ld), r5 = _mm256_loadu_ps(src + 5 * ld);
  __m256 r6 = _mm256_loadu_ps(src + 6 * ld), r7 = _mm256_loadu_ps(src + 7 * ld);
  if (sums) {
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(r0, r1), _mm256_add_ps(r2, r3)),
                             _mm256_add_ps(_mm256_add_ps(r4, r5), _mm256_add_ps(r6, r7)));
    _mm256_storeu_pd(sums, _mm256_add_pd(_mm256_loadu_pd(sums),
                                         _mm256_cvtps_pd(_mm256_castps256_ps128(s))));
    _mm256_storeu_pd(sums + 4, _mm256_add_pd(_mm256_loadu_pd(sums + 4),
                                             _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1))));
  }
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#define BLOCK 8
#else
static inline void transpose8x8(const float *src, int64_t ld, float *dst, int64_t ldd,
                                double *sums) {
  (void)src, (void)ld, (void)dst, (void)ldd, (void)sums;
}
#define BLOCK 0 /* no vector transpose: every element by the scalar loop */
#endif

/* Columns [c0, c1) of src [rows, *] (row stride ld) into rows c0..c1 of dst (row stride ldd),
 * transposed: 8 x 8 blocks in registers, what they leave one by one. With acc, each column's
 * sum is added to acc[c - c0] (fp64). */
static void transpose_columns(const float *src, int64_t ld, int64_t rows, int64_t c0,
                              int64_t c1, float *dst, int64_t ldd, double *acc) {
  const int64_t full_rows = BLOCK ? rows / BLOCK * BLOCK : 0;
  int64_t c = c0;
  for (; BLOCK && c + BLOCK <= c1; c += BLOCK)
    for (int64_t r = 0; r < full_rows; r += BLOCK)
      transpose8x8(src + r * ld + c, ld, dst + c * ldd + r, ldd, acc ? acc + (c - c0) : NULL);
  for (int64_t cc = c0; cc < c1; ++cc)  /* the blocks' last rows, and the last columns */
    for (int64_t r = cc < c ? full_rows : 0; r < rows; ++r) {
      const float v = src[r * ld + cc];
      dst[cc * ldd + r] = v;
      if (acc) acc[cc - c0] += v;
    }
}

/* dst [cols, rows] = src [rows, cols] transposed (src's row stride ld, fp32), and with sums,
 * sums[c] = the sum of column c (accumulated in fp64). torch copies a transposed matrix on one
 * thread; here the threads take columns 16 at a time (a cache line of each source row), each
 * walking all rows in 8 x 8 blocks transposed in registers. */
void transpose(const float *src, int64_t rows, int64_t cols, int64_t ld, float *dst,
               float *sums, int threads) {
  const int64_t width = 16, blocks = (cols + width - 1) / width;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t c0 = block * width, c1 = c0 + width < cols ? c0 + width : cols;
    double acc[16] = {0};
    transpose_columns(src, ld, rows, c0, c1, dst, rows, sums ? acc : NULL);
    if (sums)
      for (int64_t cc = c0; cc < c1; ++cc) sums[cc] = (float)acc[cc - c0];
  }
}

/* ----------------------------------------------------- training attention (fp32, short) */

/* 16 floats; GCC and Clang lower it to one AVX-512 register or two AVX2 ones. */
typedef float vec16 __attribute__((vector_size(64), aligned(4), may_alias));

static inline vec16 load16(const float *p) { return *(const vec16 *)p; }
static inline void store16(float *p, vec16 v) { *(vec16 *)p = v; }

/* c[r, j] = sum_d a[r, d] bt[d, j] for mr rows (constant after inlining) and j < width (a
 * multiple of 16): a row block against a panel, its sums in registers. */
static inline __attribute__((always_inline)) void panel_rows(const float *a, int64_t lda,
                                                            const float *bt, int64_t ldb,
                                                            float *c, int64_t ldc, const int mr,
                                                            int64_t width, int64_t depth) {
  int64_t j = 0;
  for (; j + 32 <= width; j += 32) {
    vec16 acc[4][2] = {{0}};
    for (int64_t d = 0; d < depth; ++d) {
      const vec16 b0 = load16(bt + d * ldb + j), b1 = load16(bt + d * ldb + j + 16);
      for (int r = 0; r < mr; ++r) {
        const float x = a[r * lda + d];
        acc[r][0] += x * b0;
        acc[r][1] += x * b1;
      }
    }
    for (int r = 0; r < mr; ++r) {
      store16(c + r * ldc + j, acc[r][0]);
      store16(c + r * ldc + j + 16, acc[r][1]);
    }
  }
  if (j < width) {
    vec16 acc[4] = {0};
    for (int64_t d = 0; d < depth; ++d) {
      const vec16 b0 = load16(bt + d * ldb + j);
      for (int r = 0; r < mr; ++r) acc[r] += a[r * lda + d] * b0;
    }
    for (int r = 0; r < mr; ++r) store16(c + r * ldc + j, acc[r]);
  }
}

/* c [rows, width] = a [rows, depth] @ bt [depth, width] (row strides lda, ldb, ldc; width a
 * multiple of 16). */
static void panel_product(const float *a, int64_t lda, const float *bt, int64_t ldb, float *c,
                          int64_t ldc, int64_t rows, int64_t width, int64_t depth) {
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) panel_rows(a + r * lda, lda, bt, ldb, c + r * ldc, ldc, 4, width, depth);
  for (; r < rows; ++r) panel_rows(a + r * lda, lda, bt, ldb, c + r * ldc, ldc, 1, width, depth);
}

/* c[r, e] = sum_j w[r * wr + j * wj] x[j, e] for mr rows (constant after inlining), e in
 * [e0, e0 + 16 nv) (nv constant): weighted sums of rows of x, in registers. */
static inline __attribute__((always_inline)) void weighted_block(const float *w, int64_t wr,
                                                                int64_t wj, const float *x,
                                                                int64_t ldx, float *c,
                                                                int64_t ldc, const int mr,
                                                                const int nv, int64_t count) {
  vec16 acc[4][4] = {{0}};
  for (int64_t j = 0; j < count; ++j) {
    vec16 row[4];
    for (int v = 0; v < nv; ++v) row[v] = load16(x + j * ldx + 16 * v);
    for (int r = 0; r < mr; ++r) {
      const float weight = w[r * wr + j * wj];
      for (int v = 0; v < nv; ++v) acc[r][v] += weight * row[v];
    }
  }
  for (int r = 0; r < mr; ++r)
    for (int v = 0; v < nv; ++v) store16(c + r * ldc + 16 * v, acc[r][v]);
}

/* c [rows, width] = W [rows, count] @ x [count, width], W's element (r, j) at
 * w[r * wr + j * wj] (so W may be a transposed view), width a multiple of 16. */
static void weighted_rows(const float *w, int64_t wr, int64_t wj, const float *x, int64_t ldx,
                          float *c, int64_t ldc, int64_t rows, int64_t width, int64_t count) {
  for (int64_t e = 0; e < width;) {
    const int64_t left = (width - e) / 16;
    int64_t r = 0;
    if (left >= 4) {
      for (; r + 4 <= rows; r += 4)
        weighted_block(w + r * wr, wr, wj, x + e, ldx, c + r * ldc + e, ldc, 4, 4, count);
      for (; r < rows; ++r)
        weighted_block(w + r * wr, wr, wj, x + e, ldx, c + r * ldc + e, ldc, 1, 4, count);
      e += 64;
    } else {
      for (; r + 4 <= rows; r += 4)
        weighted_block(w + r * wr, wr, wj, x + e, ldx, c + r * ldc + e, ldc, 4, 1, count);
      for (; r < rows; ++r)
        weighted_block(w + r * wr, wr, wj, x + e, ldx, c + r * ldc + e, ldc, 1, 1, count);
      e += 16;
    }
  }
}

/* xt [d, pad] = x [len, d] (row stride ld) transposed, zero in columns [len, pad). */
static void rows_transposed(const float *x, int64_t ld, int64_t len, int64_t d, int64_t pad,
                            float *xt) {
  memset(xt, 0, sizeof(float) * d * pad);
  transpose_columns(x, ld, len, 0, d, xt, pad, NULL);
}

/* Strides (in elements) of a [batch, heads, len, d] operand whose last dimension is unit-strided:
 * layout[0..2] = batch, head, position. */
#define AT(ptr, layout, b, h) ((ptr) + (b) * (layout)[0] + (h) * (layout)[1])

/* Scores s [T, pad] (raw q . k) into softmax weights in place: p = exp(s * scale - lse) over the
 * keys each query may attend to (allowed[j] != 0, allowed may be NULL; with causal, j <= i), 0
 * elsewhere. With lse NULL, the forward: each row's log-sum-exp goes to lse_out and p is
 * normalised by it. */
static void softmax_rows(float *s, int64_t T, int64_t S, int64_t pad, const uint8_t *allowed,
                         int causal, float scale, const float *lse, float *lse_out) {
  for (int64_t i = 0; i < T; ++i) {
    float *row = s + i * pad;
    const int64_t limit = causal ? i + 1 : S;
    float max = -INFINITY;
    for (int64_t j = 0; j < limit; ++j) {
      row[j] = (allowed == NULL || allowed[j]) ? row[j] * scale : -INFINITY;
      max = row[j] > max ? row[j] : max;
    }
    const float shift = lse != NULL ? lse[i] : max;
    float sum = 0.f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < limit; ++j) {
      row[j] = exp_nonpositive(row[j] - shift);
      sum += row[j];
    }
    memset(row + limit, 0, sizeof(float) * (pad - limit));
    if (lse == NULL) {
      const float inv = 1.f / sum;
#pragma omp simd
      for (int64_t j = 0; j < limit; ++j) row[j] *= inv;
      lse_out[i] = max + logf(sum);
    }
  }
}

/* softmax(q k^T * scale + mask) v for training, where SDPA's CPU kernel spends most of its time
 * on per-block overheads at short lengths. Per (batch row, head): the keys transposed into a
 * panel, all queries' scores as one register-blocked product, the softmax, and the weighted
 * sums of values likewise.
 *   q [B, H, T, d_k], k [B, H, S, d_k], v [B, H, S, d_v] (strides in `layout`: q, k, v, 3 each;
 *   d_k, d_v multiples of 16) -> out [B, T, H, d_v] (contiguous; the caller views it as
 *   [B, H, T, d_v]) and the log of each query's sum of exps lse [B, H, T], for the backward.
 * Keys are masked where allowed[b, j] == 0 (allowed [B, S] may be NULL) and, with causal
 * (T == S), after the query's own position. Every query must have a key it may attend to. */
void attention_train_forward(const float *q, const float *k, const float *v,
                             const uint8_t *allowed, int causal, float *out, float *lse,
                             int64_t batch, int64_t heads, int64_t T, int64_t S, int64_t d_k,
                             int64_t d_v, const int64_t *layout, float scale, int threads) {
  const int64_t pad = (S + 15) / 16 * 16;
#pragma omp parallel num_threads(threads)
  {
    float *kt = (float *)malloc(sizeof(float) * (d_k + T) * pad);
    float *p = kt + d_k * pad;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < batch * heads; ++task) {
      const int64_t b = task / heads, h = task % heads;
      rows_transposed(AT(k, layout + 3, b, h), layout[5], S, d_k, pad, kt);
      panel_product(AT(q, layout, b, h), layout[2], kt, pad, p, pad, T, pad, d_k);
      softmax_rows(p, T, S, pad, allowed == NULL ? NULL : allowed + b * S, causal, scale, NULL,
                   lse + task * T);
      weighted_rows(p, pad, 1, AT(v, layout + 6, b, h), layout[8],
                    out + (b * T * heads + h) * d_v, heads * d_v, T, d_v, S);
    }
    free(kt);
  }
}

/* The backward of attention_train_forward, from its out and lse, for dout (the gradient of
 * out): with p = exp(scores - lse) and ds = p (dout v^T - rowsum(dout * out)) * scale,
 *   dq = ds k -> [B, T, H, d_k], dk = ds^T q -> [B, S, H, d_k], dv = p^T dout -> [B, S, H, d_v]
 * (all contiguous). layout: the strides of q, k, v, out, dout (3 each), as in the forward. */
void attention_train_backward(const float *q, const float *k, const float *v, const float *out,
                              const float *dout, const float *lse, const uint8_t *allowed,
                              int causal, float *dq, float *dk, float *dv, int64_t batch,
                              int64_t heads, int64_t T, int64_t S, int64_t d_k, int64_t d_v,
                              const int64_t *layout, float scale, int threads) {
  const int64_t pad = (S + 15) / 16 * 16;
#pragma omp parallel num_threads(threads)
  {
    float *kt = (float *)malloc(sizeof(float) * (d_k + d_v + 2 * T) * pad);
    float *vt = kt + d_k * pad, *p = vt + d_v * pad, *ds = p + T * pad;
#pragma omp for schedule(static)
    for (int64_t task = 0; task < batch * heads; ++task) {
      const int64_t b = task / heads, h = task % heads;
      const float *qb = AT(q, layout, b, h), *kb = AT(k, layout + 3, b, h);
      const float *vb = AT(v, layout + 6, b, h), *ob = AT(out, layout + 9, b, h);
      const float *gb = AT(dout, layout + 12, b, h);
      rows_transposed(kb, layout[5], S, d_k, pad, kt);
      rows_transposed(vb, layout[8], S, d_v, pad, vt);
      panel_product(qb, layout[2], kt, pad, p, pad, T, pad, d_k);
      softmax_rows(p, T, S, pad, allowed == NULL ? NULL : allowed + b * S, causal, scale,
                   lse + task * T, NULL);
      panel_product(gb, layout[14], vt, pad, ds, pad, T, pad, d_v);
      for (int64_t i = 0; i < T; ++i) {
        const float *oi = ob + i * layout[11], *gi = gb + i * layout[14];
        float rowsum = 0.f;
#pragma omp simd reduction(+ : rowsum)
        for (int64_t e = 0; e < d_v; ++e) rowsum += gi[e] * oi[e];
        float *dsi = ds + i * pad;
        const float *pi = p + i * pad;
#pragma omp simd
        for (int64_t j = 0; j < pad; ++j) dsi[j] = pi[j] * (dsi[j] - rowsum) * scale;
      }
      weighted_rows(ds, pad, 1, kb, layout[5], dq + (b * T * heads + h) * d_k, heads * d_k, T,
                    d_k, S);
      weighted_rows(ds, 1, pad, qb, layout[2], dk + (b * S * heads + h) * d_k, heads * d_k, S,
                    d_k, T);
      weighted_rows(p, 1, pad, gb, layout[14], dv + (b * S * heads + h) * d_v, heads * d_v, S,
                    d_v, T);
    }
    free(kt);
  }
}

/* ---------------------------------------------------------------------------- dropout */

/* Philox4x32-10 (Salmon et al. 2011, the generator of cuRAND and of torch's CUDA dropout): 128
 * random bits from a 128-bit counter and a 64-bit key, as a pure function of both, so any
 * thread can draw any block's bits, and the backward draws the forward's again. */
#pragma omp declare simd notinbranch
static inline void philox(uint32_t counter, uint32_t counter_hi, uint32_t key0, uint32_t key1,
                          uint32_t *r0, uint32_t *r1, uint32_t *r2, uint32_t *r3) {
  uint32_t c0 = counter, c1 = counter_hi, c2 = 0, c3 = 0;
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ key0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ key1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    key0 += 0x9E3779B9u;
    key1 += 0xBB67AE85u;
  }
  *r0 = c0, *r1 = c1, *r2 = c2, *r3 = c3;
}

#define DROPOUT_BLOCKS 256 /* Philox blocks per chunk of 8 * 256 elements */

/* out = x * scale where kept, 0 where dropped, for n elements of x (fp32 or bf16, contiguous):
 * element o of chunk c (2,048 elements) is decided by 16 bits of Philox block c * 256 + o % 256
 * (its (o / 256)-th 16-bit slice) under key `seed`, and kept when those bits, as a number, are
 * at least `drop` (so p = drop / 65536). The forward and the backward (x the gradient) call it
 * with the same seed: the same elements are dropped, and no mask is stored. */
void dropout_apply(const void *x, void *out, int bf16, int64_t n, uint64_t seed, uint32_t drop,
                   float scale, int threads) {
  const int64_t chunk = 8 * DROPOUT_BLOCKS, chunks = (n + chunk - 1) / chunk;
  const uint32_t key0 = (uint32_t)seed, key1 = (uint32_t)(seed >> 32);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    uint32_t bits[4][DROPOUT_BLOCKS];
    const uint64_t first = (uint64_t)c * DROPOUT_BLOCKS;
#pragma omp simd
    for (int b = 0; b < DROPOUT_BLOCKS; ++b) {
      const uint64_t counter = first + b;
      philox((uint32_t)counter, (uint32_t)(counter >> 32), key0, key1, &bits[0][b], &bits[1][b],
             &bits[2][b], &bits[3][b]);
    }
    const int64_t start = c * chunk, len = n - start < chunk ? n - start : chunk;
    for (int slice = 0; slice < 8; ++slice) {
      const int64_t o0 = (int64_t)slice * DROPOUT_BLOCKS;
      if (o0 >= len) break;
      const int64_t m = len - o0 < DROPOUT_BLOCKS ? len - o0 : DROPOUT_BLOCKS;
      const uint32_t *word = bits[slice / 2];
      const int shift = 16 * (slice % 2);
      if (bf16) {
        const uint16_t *xs = (const uint16_t *)x + start + o0;
        uint16_t *os = (uint16_t *)out + start + o0;
        for (int64_t b = 0; b < m; ++b) {
          const int keep = ((word[b] >> shift) & 0xFFFFu) >= drop;
          os[b] = keep ? float_to_bf16(bf16_to_float(xs[b]) * scale) : 0;
        }
      } else {
        const float *xs = (const float *)x + start + o0;
        float *os = (float *)out + start + o0;
#pragma omp simd
        for (int64_t b = 0; b < m; ++b) {
          const float keep = ((word[b] >> shift) & 0xFFFFu) >= drop ? scale : 0.f;
          os[b] = xs[b] * keep;
        }
      }
    }
  }
}

/* ------------------------------------------------ label-smoothed cross entropy (training) */

/* Per row r of `logits` [rows, V] (fp32 or bf16) with target t = target[r]: the log of the sum
 * of exps `lse[r]` and, where t != ignore, nll[r] = lse - x_t and loss[r] = (1 - eps) * nll +
 * eps * (lse - mean(x)); both 0 where t == ignore. Two reads of the row (its max and sum, then
 * its exps), where log_softmax, gather and mean take four and write [rows, V]. */
void smoothed_ce_forward(const void *logits, int bf16, int64_t rows, int64_t vocab,
                         const int64_t *target, int64_t ignore, float eps, float *lse,
                         float *nll, float *loss, int threads) {
#pragma omp parallel num_threads(threads)
  {
    float *scratch = bf16 ? (float *)malloc(sizeof(float) * vocab) : NULL;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float *x = as_float((const char *)logits + r * vocab * (bf16 ? 2 : 4), bf16, vocab,
                                scratch);
      float max = -INFINITY, total = 0.f;
#pragma omp simd reduction(max : max) reduction(+ : total)
      for (int64_t j = 0; j < vocab; ++j) {
        max = x[j] > max ? x[j] : max;
        total += x[j];
      }
      float sum = 0.f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < vocab; ++j) sum += exp_nonpositive(x[j] - max);
      lse[r] = max + logf(sum);
      if (target[r] == ignore) {
        nll[r] = loss[r] = 0.f;
      } else {
        nll[r] = lse[r] - x[target[r]];
        loss[r] = (1.f - eps) * nll[r] + eps * (lse[r] - total / (float)vocab);
      }
    }
    free(scratch);
  }
}

/* The loss's gradient w.r.t. the logits, into grad [rows, V] (stored as the logits are):
 * weight[r] * (softmax(x_r) - eps / V - (1 - eps) * onehot(target[r])), from the forward's
 * lse. Rows with weight 0 (ignored targets) get zeros. One read of the logits, one write. */
void smoothed_ce_backward(const void *logits, int bf16, int64_t rows, int64_t vocab,
                          const int64_t *target, const float *lse, const float *weight,
                          float eps, void *grad, int threads) {
  const int64_t elem = bf16 ? 2 : 4;
#pragma omp parallel num_threads(threads)
  {
    /* bf16: the row as fp32, then its gradient in fp32 before rounding; fp32 needs neither. */
    float *scratch = bf16 ? (float *)malloc(sizeof(float) * vocab * 2) : NULL;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      char *out = (char *)grad + r * vocab * elem;
      float w = weight[r];
      if (w == 0.f) {
        memset(out, 0, vocab * elem);
        continue;
      }
      const float *x = as_float((const char *)logits + r * vocab * elem, bf16, vocab, scratch);
      float *dst = bf16 ? scratch + vocab : (float *)out;
      float shift = lse[r], floor = eps / (float)vocab;
#pragma omp simd
      for (int64_t j = 0; j < vocab; ++j) dst[j] = (exp_nonpositive(x[j] - shift) - floor) * w;
      /* A NaN or inf weight reaches ignored rows too (0 * inf); their target may be any index. */
      if (target[r] >= 0 && target[r] < vocab) dst[target[r]] -= (1.f - eps) * w;
      if (bf16) store_scaled(out, dst, 1.f, 1, vocab);
    }
    free(scratch);
  }
}

/* -------------------------------------------- Bahdanau's additive scores (teacher forcing) */

/* tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|) <= 1; below |x| = 0.1, where 1 - e
 * would cancel, its Taylor series to x^7 (truncation under 3e-11). Within a few ulp. */
#pragma omp declare simd notinbranch
static inline float tanh_approx(float x) {
  float ax = x < 0.f ? -x : x;
  float e = exp_nonpositive(-2.f * ax);
  float big = (1.f - e) / (1.f + e);
  float x2 = ax * ax;
  float small = ax * (1.f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  float t = ax < 0.1f ? small : big;
  return x < 0.f ? -t : t;
}

/* scores[b, s] = sum_a v[a] tanh(keys[b, s, a] + query[b, a]): the projected keys U h_j
 * [batch, len, dim] read once, the [batch, len, dim] tanh never written. fp32. */
void additive_scores(const float *keys, const float *query, const float *v, float *scores,
                     int64_t batch, int64_t len, int64_t dim, int threads) {
#pragma omp parallel for collapse(2) num_threads(threads) schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t s = 0; s < len; ++s) {
      const float *k = keys + (b * len + s) * dim, *q = query + b * dim;
      float sum = 0.f;
#pragma omp simd reduction(+ : sum)
      for (int64_t a = 0; a < dim; ++a) sum += v[a] * tanh_approx(k[a] + q[a]);
      scores[b * len + s] = sum;
    }
}

/* The backward of additive_scores for grad_scores [batch, len], the tanh recomputed:
 * d = g[b, s] v (1 - t^2) is added into grad_keys [batch, len, dim] (a running sum over the
 * decoder's steps; NULL: not wanted) and summed over s into grad_query [batch, dim];
 * grad_v_rows [batch, dim] gets sum_s g[b, s] t (the caller sums it over b). Positions with
 * g = 0 (padding, after the masked softmax) are skipped. */
void additive_scores_backward(const float *keys, const float *query, const float *v,
                              const float *grad_scores, float *grad_keys, float *grad_query,
                              float *grad_v_rows, int64_t batch, int64_t len, int64_t dim,
                              int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    float *gq = grad_query + b * dim, *gv = grad_v_rows + b * dim;
    const float *q = query + b * dim;
    memset(gq, 0, sizeof(float) * dim);
    memset(gv, 0, sizeof(float) * dim);
    for (int64_t s = 0; s < len; ++s) {
      float g = grad_scores[b * len + s];
      if (g == 0.f) continue;
      const float *k = keys + (b * len + s) * dim;
      if (grad_keys) {
        float *gk = grad_keys + (b * len + s) * dim;
#pragma omp simd
        for (int64_t a = 0; a < dim; ++a) {
          float t = tanh_approx(k[a] + q[a]);
          float d = g * v[a] * (1.f - t * t);
          gk[a] += d;
          gq[a] += d;
          gv[a] += g * t;
        }
      } else {
#pragma omp simd
        for (int64_t a = 0; a < dim; ++a) {
          float t = tanh_approx(k[a] + q[a]);
          gq[a] += g * v[a] * (1.f - t * t);
          gv[a] += g * t;
        }
      }
    }
  }
}
