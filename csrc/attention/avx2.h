// Fused attention, AVX2+FMA ops: register-blocked micro-kernels and a vectorised exp.
//
// Scores: a 6-key x 16-query block of accumulators (12 ymm) is held in registers while the loop
// runs over the head dim: per step 2 loads of the transposed Q block (packed once per query
// block), 6 broadcasts straight from K's rows and 12 FMAs, so the FMA ports, not the loads, set
// the pace (a GEMM micro-kernel's shape; K needs no packing). The scores land transposed,
// st[key, query], so the online softmax runs across 8 queries per vector with no horizontal
// reductions. P.V is computed transposed too, acc[column, query], by the same 6x16 kernel shape:
// per key 2 loads of P (which stays in L1), 6 broadcasts of V, 12 FMAs.
//
// exp256 (exp of 8 floats): n = round(x * log2 e), r = x - n ln2 with a two-constant
// (Cody-Waite) reduction, exp(r) by the degree-7 Cephes expf polynomial on |r| <= ln2/2, then
// the result is scaled by 2^n as 2^(n/2) * 2^(n - n/2) so that n = 128 and gradual underflow
// (results down to 2^-149) both come out right. Measured error (tests/kernels/test_attention.py
// sweeps every float in [-104, 89] at a stride): at most 2 ulp for results >= FLT_MIN; subnormal
// results within 1 ulp of the subnormal spacing. x > 88.72284 gives +inf, x < -103.97 gives +0,
// exp(-inf) = 0, exp(+inf) = +inf, NaN stays NaN.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/attention/avx2.h
#pragma once

#include "common/cpu.h"

#if FRUGALNN_X86
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "attention/driver.h"

namespace frugalnn {
namespace attention {
namespace avx2 {

FRUGALNN_AVX2 inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.72283935546875f);  // largest x with a finite exp(x)
  const __m256 lo = _mm256_set1_ps(-103.972084045410f);  // below this exp(x) rounds to 0
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n in two halves: each half lies in [-52, 65], a normal float's exponent range.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN in, NaN out
}

// exp for x <= 0 (softmax arguments x - max): no overflow path and a single 2^n scale, about
// half the work of exp256. Same polynomial, so the same <= 2 ulp for results >= FLT_MIN; results
// below FLT_MIN (x < -87.34) are returned as +0, which is below the rounding of any softmax sum.
// NaN stays NaN (max_ps returns its second operand when either is NaN); -inf gives 0.
FRUGALNN_AVX2 inline __m256 exp256_nonpositive(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365478515625f);  // ln(FLT_MIN), rounded up
  const __m256 xc = _mm256_max_ps(lo, x);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e2n));
  return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}

// Lane mask with the first n (0..8) lanes set.
FRUGALNN_AVX2 inline __m256i first_lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

// Row pointer r of a 6-row micro-kernel; rows past `rows` repeat the last real one (computed,
// never stored), so tails need no separate kernels.
inline const float* row_ptr(const float* base, int64_t stride, int64_t r, int64_t rows) {
  return base + (r < rows ? r : rows - 1) * stride;
}

// st[j0:j0+6, i0:i0+16] = K[j0:j0+6, :] . qt[:, i0:i0+16]: twelve named accumulators (an array
// of them is spilled to the stack by GCC), 2 loads + 6 broadcasts + 12 FMAs per head-dim step.
FRUGALNN_AVX2 inline void scores_tile(const float* k, int64_t keys, int64_t e, const float* qt, float* st) {
  const float *k0 = k, *k1 = row_ptr(k, e, 1, keys), *k2 = row_ptr(k, e, 2, keys);
  const float *k3 = row_ptr(k, e, 3, keys), *k4 = row_ptr(k, e, 4, keys), *k5 = row_ptr(k, e, 5, keys);
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (int64_t d = 0; d < e; ++d) {
    const __m256 q0 = _mm256_load_ps(qt + d * BQ), q1 = _mm256_load_ps(qt + d * BQ + 8);
    __m256 b = _mm256_broadcast_ss(k0 + d);
    a00 = _mm256_fmadd_ps(b, q0, a00);
    a01 = _mm256_fmadd_ps(b, q1, a01);
    b = _mm256_broadcast_ss(k1 + d);
    a10 = _mm256_fmadd_ps(b, q0, a10);
    a11 = _mm256_fmadd_ps(b, q1, a11);
    b = _mm256_broadcast_ss(k2 + d);
    a20 = _mm256_fmadd_ps(b, q0, a20);
    a21 = _mm256_fmadd_ps(b, q1, a21);
    b = _mm256_broadcast_ss(k3 + d);
    a30 = _mm256_fmadd_ps(b, q0, a30);
    a31 = _mm256_fmadd_ps(b, q1, a31);
    b = _mm256_broadcast_ss(k4 + d);
    a40 = _mm256_fmadd_ps(b, q0, a40);
    a41 = _mm256_fmadd_ps(b, q1, a41);
    b = _mm256_broadcast_ss(k5 + d);
    a50 = _mm256_fmadd_ps(b, q0, a50);
    a51 = _mm256_fmadd_ps(b, q1, a51);
  }
  const __m256 out[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
  for (int64_t r = 0; r < keys && r < 6; ++r) {
    _mm256_store_ps(st + r * BQ, out[r][0]);
    _mm256_store_ps(st + r * BQ + 8, out[r][1]);
  }
}

// acc[c0:c0+6, i0:i0+16] += V[0:cols, c0:c0+6]^T . pt[0:cols, i0:i0+16]: the transposed output
// block, the same shape as the score micro-kernel (2 loads of P, 6 broadcasts of V, 12 FMAs per
// key). P's tile stays in L1 while the loop walks V's columns; columns past `ncols` repeat the
// last real one and are not stored.
FRUGALNN_AVX2 inline void pv_tile(const float* pt, const float* v, int64_t ncols, int64_t cols, int64_t ev,
                                  float* acc) {
  const int64_t c1 = ncols > 1 ? 1 : 0, c2 = ncols > 2 ? 2 : ncols - 1, c3 = ncols > 3 ? 3 : ncols - 1;
  const int64_t c4 = ncols > 4 ? 4 : ncols - 1, c5 = ncols > 5 ? 5 : ncols - 1;
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (int64_t j = 0; j < cols; ++j) {
    const float* vj = v + j * ev;
    const __m256 p0 = _mm256_load_ps(pt + j * BQ), p1 = _mm256_load_ps(pt + j * BQ + 8);
    __m256 b = _mm256_broadcast_ss(vj);
    a00 = _mm256_fmadd_ps(b, p0, a00);
    a01 = _mm256_fmadd_ps(b, p1, a01);
    b = _mm256_broadcast_ss(vj + c1);
    a10 = _mm256_fmadd_ps(b, p0, a10);
    a11 = _mm256_fmadd_ps(b, p1, a11);
    b = _mm256_broadcast_ss(vj + c2);
    a20 = _mm256_fmadd_ps(b, p0, a20);
    a21 = _mm256_fmadd_ps(b, p1, a21);
    b = _mm256_broadcast_ss(vj + c3);
    a30 = _mm256_fmadd_ps(b, p0, a30);
    a31 = _mm256_fmadd_ps(b, p1, a31);
    b = _mm256_broadcast_ss(vj + c4);
    a40 = _mm256_fmadd_ps(b, p0, a40);
    a41 = _mm256_fmadd_ps(b, p1, a41);
    b = _mm256_broadcast_ss(vj + c5);
    a50 = _mm256_fmadd_ps(b, p0, a50);
    a51 = _mm256_fmadd_ps(b, p1, a51);
  }
  const __m256 sum[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
  for (int64_t r = 0; r < ncols && r < 6; ++r) {
    float* ar = acc + r * BQ;
    _mm256_store_ps(ar, _mm256_add_ps(_mm256_load_ps(ar), sum[r][0]));
    _mm256_store_ps(ar + 8, _mm256_add_ps(_mm256_load_ps(ar + 8), sum[r][1]));
  }
}

struct Ops {
  // `next_k`/`next_v` (or null): the next tile's keys and values, prefetched into L2 a few rows
  // per micro-kernel call. Past the L2 size (about 4K keys at d = 64) every query block streams
  // K and V from L3, and without this the first touch of each row stalls.
  FRUGALNN_AVX2 static void scores(const float* k, int64_t cols, int64_t e, const float* qt, float* st,
                                   const float* next_k, const float* next_v, int64_t next_cols, int64_t ev) {
    for (int64_t j = 0; j < cols; j += 6) {
      if (next_k != nullptr)
        for (int64_t r = j; r < j + 6 && r < next_cols; ++r) {
          for (int64_t x = 0; x < e; x += 16) _mm_prefetch(reinterpret_cast<const char*>(next_k + r * e + x), _MM_HINT_T1);
          for (int64_t x = 0; x < ev; x += 16) _mm_prefetch(reinterpret_cast<const char*>(next_v + r * ev + x), _MM_HINT_T1);
        }
      for (int64_t i = 0; i < BQ; i += 16) scores_tile(k + j * e, cols - j, e, qt + i, st + j * BQ + i);
    }
  }

  // Vectorised across 8 queries at a time: no horizontal reductions.
  FRUGALNN_AVX2 static void online_softmax(float* st, int64_t cols, float* m, float* l, float* alpha) {
    for (int64_t i = 0; i < BQ; i += 8) {
      const __m256 m_old = _mm256_loadu_ps(m + i);
      __m256 mx = m_old;
      for (int64_t j = 0; j < cols; ++j) mx = _mm256_max_ps(mx, _mm256_load_ps(st + j * BQ + i));
      __m256 sum = _mm256_setzero_ps();
      for (int64_t j = 0; j < cols; ++j) {
        const __m256 pj = exp256_nonpositive(_mm256_sub_ps(_mm256_load_ps(st + j * BQ + i), mx));
        _mm256_store_ps(st + j * BQ + i, pj);
        sum = _mm256_add_ps(sum, pj);
      }
      const __m256 a = exp256_nonpositive(_mm256_sub_ps(m_old, mx));
      _mm256_storeu_ps(alpha + i, a);
      _mm256_storeu_ps(l + i, _mm256_fmadd_ps(_mm256_loadu_ps(l + i), a, sum));
      _mm256_storeu_ps(m + i, mx);
    }
  }

  FRUGALNN_AVX2 static void rescale(float* acc, int64_t ev, const float* alpha) {
    for (int64_t i = 0; i < BQ; i += 8) {
      const __m256 a = _mm256_loadu_ps(alpha + i);
      for (int64_t c = 0; c < ev; ++c)
        _mm256_store_ps(acc + c * BQ + i, _mm256_mul_ps(_mm256_load_ps(acc + c * BQ + i), a));
    }
  }

  FRUGALNN_AVX2 static void accumulate_pv(const float* pt, int64_t rows, const float* v, int64_t cols, int64_t ev,
                                          float* acc) {
    for (int64_t c = 0; c < ev; c += 6)
      for (int64_t i = 0; i < rows; i += 16) pv_tile(pt + i, v + c, ev - c, cols, ev, acc + c * BQ + i);
  }
};

FRUGALNN_AVX2 inline void exp_array(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = first_lanes(n - i);
    _mm256_maskstore_ps(y + i, mask, exp256(_mm256_maskload_ps(x + i, mask)));
  }
}

}  // namespace avx2
}  // namespace attention
}  // namespace frugalnn

#endif  // FRUGALNN_X86
