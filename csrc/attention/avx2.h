// Fused attention, AVX2+FMA ops: register-blocked micro-kernels and a vectorised exp.
//
// Scores: a 6-key x 16-query block of accumulators (12 ymm) is held in registers while the loop
// runs over the head dim: per step 2 loads of the transposed Q block (packed once per query
// block), 6 broadcasts straight from K's rows and 12 FMAs, so the FMA ports, not the loads, set
// the pace (a GEMM micro-kernel's shape; K needs no packing). The scores land transposed,
// st[key, query], so the online softmax runs across 8 queries per vector with no horizontal
// reductions. P.V: a 6-query x 16-column block of the accumulator stays in registers while the
// loop runs over the keys of the tile: 2 loads of a V row, 6 broadcasts of P, 12 FMAs.
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

// acc[i0:i0+6, c0:c0+16] += P[i0:i0+6, 0:cols] . V[0:cols, c0:c0+16], P read from the transposed
// tile pt[j, i]. `mask0/mask1` select the columns that exist: V's rows end at ev, so loads past
// it are masked. 2 loads + 6 broadcasts + 12 FMAs per key.
template <bool MASKED>
FRUGALNN_AVX2 inline void pv_tile(const float* pt, int64_t rows, const float* v, int64_t cols, int64_t ev,
                                  float* acc, int64_t ldo, __m256i mask0, __m256i mask1) {
  const int64_t r1 = rows > 1 ? 1 : 0, r2 = rows > 2 ? 2 : rows - 1, r3 = rows > 3 ? 3 : rows - 1;
  const int64_t r4 = rows > 4 ? 4 : rows - 1, r5 = rows > 5 ? 5 : rows - 1;
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
  __m256 a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
  for (int64_t j = 0; j < cols; ++j) {
    const float* vj = v + j * ev;
    const float* pj = pt + j * BQ;
    const __m256 v0 = MASKED ? _mm256_maskload_ps(vj, mask0) : _mm256_loadu_ps(vj);
    const __m256 v1 = MASKED ? _mm256_maskload_ps(vj + 8, mask1) : _mm256_loadu_ps(vj + 8);
    __m256 b = _mm256_broadcast_ss(pj);
    a00 = _mm256_fmadd_ps(b, v0, a00);
    a01 = _mm256_fmadd_ps(b, v1, a01);
    b = _mm256_broadcast_ss(pj + r1);
    a10 = _mm256_fmadd_ps(b, v0, a10);
    a11 = _mm256_fmadd_ps(b, v1, a11);
    b = _mm256_broadcast_ss(pj + r2);
    a20 = _mm256_fmadd_ps(b, v0, a20);
    a21 = _mm256_fmadd_ps(b, v1, a21);
    b = _mm256_broadcast_ss(pj + r3);
    a30 = _mm256_fmadd_ps(b, v0, a30);
    a31 = _mm256_fmadd_ps(b, v1, a31);
    b = _mm256_broadcast_ss(pj + r4);
    a40 = _mm256_fmadd_ps(b, v0, a40);
    a41 = _mm256_fmadd_ps(b, v1, a41);
    b = _mm256_broadcast_ss(pj + r5);
    a50 = _mm256_fmadd_ps(b, v0, a50);
    a51 = _mm256_fmadd_ps(b, v1, a51);
  }
  const __m256 sum[6][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}, {a40, a41}, {a50, a51}};
  for (int64_t r = 0; r < rows && r < 6; ++r) {
    float* ar = acc + r * ldo;  // rows of the accumulator are padded to a multiple of 8 floats
    _mm256_storeu_ps(ar, _mm256_add_ps(_mm256_loadu_ps(ar), sum[r][0]));
    if (MASKED) {
      _mm256_maskstore_ps(ar + 8, mask1, _mm256_add_ps(_mm256_maskload_ps(ar + 8, mask1), sum[r][1]));
    } else {
      _mm256_storeu_ps(ar + 8, _mm256_add_ps(_mm256_loadu_ps(ar + 8), sum[r][1]));
    }
  }
}

struct Ops {
  FRUGALNN_AVX2 static void scores(const float* k, int64_t cols, int64_t e, const float* qt, float* st) {
    for (int64_t j = 0; j < cols; j += 6)
      for (int64_t i = 0; i < BQ; i += 16) scores_tile(k + j * e, cols - j, e, qt + i, st + j * BQ + i);
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

  FRUGALNN_AVX2 static void scale_row(float* x, int64_t n, float a) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), av));
    for (; j < n; ++j) x[j] *= a;
  }

  FRUGALNN_AVX2 static void accumulate_pv(const float* pt, int64_t rows, const float* v, int64_t cols, int64_t ev,
                                          float* acc, int64_t ldo) {
    const __m256i all = _mm256_set1_epi32(-1);
    for (int64_t i = 0; i < rows; i += 6) {
      const int64_t r = rows - i;
      int64_t c = 0;
      for (; c + 16 <= ev; c += 16) pv_tile<false>(pt + i, r, v + c, cols, ev, acc + i * ldo + c, ldo, all, all);
      if (c < ev) {
        const int64_t left = ev - c;  // 1..15 columns
        pv_tile<true>(pt + i, r, v + c, cols, ev, acc + i * ldo + c, ldo, first_lanes(left < 8 ? left : 8),
                      first_lanes(left > 8 ? left - 8 : 0));
      }
    }
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
