// Fused attention, AVX2+FMA ops: register-blocked micro-kernels and a vectorised exp.
//
// Both matrix products use one micro-kernel shape, 4 rows x 24 queries: 12 ymm accumulators,
// per step 3 vector loads (queries are the vector lanes), 4 broadcasts and 12 FMAs, so the two
// FMA ports, not the loads, set the pace; head dims that are multiples of 4 (64, 128, 80, ...)
// waste no lanes.
// - Scores st[key, query] = K . Q^T: rows are keys, the step runs over the head dim; K is
//   broadcast straight from its rows (contiguous, no packing), Q^T is packed once per block.
// - P.V acc[column, query] += V^T . P: rows are value columns, the step runs over the keys.
//   V is packed once per key tile and super-block into strips of 4 columns ([strip][key][4]),
//   so each micro-kernel streams one contiguous 2 KiB strip. Unpacked, a strip would be read
//   down a column with the row stride (512 B at Ev = 128): 128 keys land in 8 of the 64 L1
//   sets, more lines than the 12 ways hold, and every reuse missed L1.
// Scores and the accumulator are transposed (queries in lanes), so the online softmax and the
// rescaling run across 8 queries per vector with no horizontal reductions.
//
// The softmax exp is vec::exp256_softmax (common/vexp.h, shared with the decode-step attention
// of csrc/llama): 13 instructions, at most 2 ulp for results >= FLT_MIN, exp(-inf) = +0 exactly
// (the masked keys of causal attention).
//
// Role: avx2 (function-level target kernels). Checked against: the float64 numpy reference
// (frugalnn/kernels/attention_ref.py) within a tolerance (FMA and the polynomial exp round
// differently from serial.h), and the exp's error bound over [-104, 88.3], by
// tests/kernels/test_attention.py under the avx2 backend.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/attention/avx2.h
#pragma once

#include "attention/layout.h"
#include "common/cpu.h"
#include "common/vexp.h"

#if FRUGALNN_X86
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace frugalnn {
namespace attention {
namespace avx2 {

using vec::exp256_softmax;

// Row pointer r of a 4-row micro-kernel; rows past `rows` repeat the last real one (computed,
// never stored), so tails need no separate kernels.
inline const float* row_ptr(const float* base, int64_t stride, int64_t r, int64_t rows) {
  return base + (r < rows ? r : rows - 1) * stride;
}

// st[j0:j0+4, i0:i0+24] = K[j0:j0+4, :] . qt[:, i0:i0+24]: twelve named accumulators (an array
// of them is spilled to the stack by GCC), 3 loads + 4 broadcasts + 12 FMAs per head-dim step.
FRUGALNN_AVX2 inline void scores_tile(const float* k, int64_t keys, int64_t e, const float* qt, float* st) {
  const float *k0 = k, *k1 = row_ptr(k, e, 1, keys), *k2 = row_ptr(k, e, 2, keys), *k3 = row_ptr(k, e, 3, keys);
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  for (int64_t d = 0; d < e; ++d) {
    const float* qd = qt + d * BQ;
    const __m256 q0 = _mm256_load_ps(qd), q1 = _mm256_load_ps(qd + 8), q2 = _mm256_load_ps(qd + 16);
    __m256 b = _mm256_broadcast_ss(k0 + d);
    a00 = _mm256_fmadd_ps(b, q0, a00);
    a01 = _mm256_fmadd_ps(b, q1, a01);
    a02 = _mm256_fmadd_ps(b, q2, a02);
    b = _mm256_broadcast_ss(k1 + d);
    a10 = _mm256_fmadd_ps(b, q0, a10);
    a11 = _mm256_fmadd_ps(b, q1, a11);
    a12 = _mm256_fmadd_ps(b, q2, a12);
    b = _mm256_broadcast_ss(k2 + d);
    a20 = _mm256_fmadd_ps(b, q0, a20);
    a21 = _mm256_fmadd_ps(b, q1, a21);
    a22 = _mm256_fmadd_ps(b, q2, a22);
    b = _mm256_broadcast_ss(k3 + d);
    a30 = _mm256_fmadd_ps(b, q0, a30);
    a31 = _mm256_fmadd_ps(b, q1, a31);
    a32 = _mm256_fmadd_ps(b, q2, a32);
  }
  const __m256 out[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
  for (int64_t r = 0; r < keys && r < 4; ++r) {
    _mm256_store_ps(st + r * BQ, out[r][0]);
    _mm256_store_ps(st + r * BQ + 8, out[r][1]);
    _mm256_store_ps(st + r * BQ + 16, out[r][2]);
  }
}

// acc[c0:c0+4, i0:i0+24] += strip[0:cols, 0:4]^T . pt[0:cols, i0:i0+24], strip = 4 packed value
// columns [key][4]: 3 loads of P (which stays in L1) + 4 broadcasts + 12 FMAs per key.
FRUGALNN_AVX2 inline void pv_tile(const float* pt, const float* strip, int64_t cols, float* acc) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  for (int64_t j = 0; j < cols; ++j) {
    const float* pj = pt + j * BQ;
    const float* vj = strip + j * VLANES;
    const __m256 p0 = _mm256_load_ps(pj), p1 = _mm256_load_ps(pj + 8), p2 = _mm256_load_ps(pj + 16);
    __m256 b = _mm256_broadcast_ss(vj);
    a00 = _mm256_fmadd_ps(b, p0, a00);
    a01 = _mm256_fmadd_ps(b, p1, a01);
    a02 = _mm256_fmadd_ps(b, p2, a02);
    b = _mm256_broadcast_ss(vj + 1);
    a10 = _mm256_fmadd_ps(b, p0, a10);
    a11 = _mm256_fmadd_ps(b, p1, a11);
    a12 = _mm256_fmadd_ps(b, p2, a12);
    b = _mm256_broadcast_ss(vj + 2);
    a20 = _mm256_fmadd_ps(b, p0, a20);
    a21 = _mm256_fmadd_ps(b, p1, a21);
    a22 = _mm256_fmadd_ps(b, p2, a22);
    b = _mm256_broadcast_ss(vj + 3);
    a30 = _mm256_fmadd_ps(b, p0, a30);
    a31 = _mm256_fmadd_ps(b, p1, a31);
    a32 = _mm256_fmadd_ps(b, p2, a32);
  }
  const __m256 sum[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
  for (int64_t r = 0; r < 4; ++r)
    for (int64_t x = 0; x < 3; ++x) {
      float* ar = acc + r * BQ + 8 * x;
      _mm256_store_ps(ar, _mm256_add_ps(_mm256_load_ps(ar), sum[r][x]));
    }
}

struct Ops {
  // Value row j of a tile -> position j of the strips [ceil(ev/4)][BK][4], the last strip
  // zero-padded; a whole 64-byte line (4 strips) at a time.
  FRUGALNN_AVX2 static void pack_row(const float* vj, int64_t j, int64_t ev, float* vp) {
    constexpr int64_t SB = BK * VLANES;  // floats per strip
    const int64_t lines = ev / 16;
    for (int64_t g = 0; g < lines; ++g) {
      const __m256 a = _mm256_loadu_ps(vj + 16 * g), b = _mm256_loadu_ps(vj + 16 * g + 8);
      float* d = vp + 4 * g * SB + j * VLANES;
      _mm_store_ps(d, _mm256_castps256_ps128(a));
      _mm_store_ps(d + SB, _mm256_extractf128_ps(a, 1));
      _mm_store_ps(d + 2 * SB, _mm256_castps256_ps128(b));
      _mm_store_ps(d + 3 * SB, _mm256_extractf128_ps(b, 1));
    }
    for (int64_t s = 4 * lines; s * VLANES < ev; ++s) {  // columns past the last whole line
      float* d = vp + s * SB + j * VLANES;
      for (int64_t c = 0; c < VLANES; ++c) d[c] = s * VLANES + c < ev ? vj[s * VLANES + c] : 0.0f;
    }
  }

  FRUGALNN_AVX2 static const float* pack_values(const float* v, int64_t cols, int64_t ev, float* vp) {
    for (int64_t j = 0; j < cols; ++j) pack_row(v + j * ev, j, ev, vp);
    return vp;
  }

  static const float* values_of(const float* /*v*/, float* vp) { return vp; }

  FRUGALNN_AVX2 static void prefetch_l2(const float* p, int64_t floats) {
    for (int64_t x = 0; x < floats; x += 16) _mm_prefetch(reinterpret_cast<const char*>(p + x), _MM_HINT_T1);
  }

  FRUGALNN_AVX2 static void background_rows(const Background& bg, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      prefetch_l2(bg.k + r * bg.e, bg.e);
      if (r < bg.ahead_rows) prefetch_l2(bg.v_ahead + r * bg.ev, bg.ev);
      pack_row(bg.v + r * bg.ev, r, bg.ev, bg.vp);
    }
  }

  // The background rows are spread over the 4-key groups, one or two rows between micro-kernels.
  FRUGALNN_AVX2 static void scores(const float* k, int64_t cols, int64_t e, const float* qt, float* st,
                                   const Background& bg) {
    const int64_t groups = (cols + 3) / 4, per_group = (bg.r1 - bg.r0 + groups - 1) / groups;
    for (int64_t j = 0, g = 0; j < cols; j += 4, ++g) {
      background_rows(bg, std::min(bg.r1, bg.r0 + g * per_group), std::min(bg.r1, bg.r0 + (g + 1) * per_group));
      for (int64_t i = 0; i < BQ; i += 24) scores_tile(k + j * e, cols - j, e, qt + i, st + j * BQ + i);
    }
  }

  // Vectorised across 8 queries at a time: no horizontal reductions. Several max and sum
  // accumulators so the loops are not bound by the 4-cycle latency of one dependency chain.
  FRUGALNN_AVX2 static void online_softmax(float* st, int64_t cols, float* m, float* l, float* alpha) {
    for (int64_t i = 0; i < BQ; i += 8) {
      const __m256 m_old = _mm256_load_ps(m + i);
      __m256 mx0 = m_old, mx1 = m_old, mx2 = m_old, mx3 = m_old;
      int64_t j = 0;
      for (; j + 4 <= cols; j += 4) {
        mx0 = _mm256_max_ps(mx0, _mm256_load_ps(st + j * BQ + i));
        mx1 = _mm256_max_ps(mx1, _mm256_load_ps(st + (j + 1) * BQ + i));
        mx2 = _mm256_max_ps(mx2, _mm256_load_ps(st + (j + 2) * BQ + i));
        mx3 = _mm256_max_ps(mx3, _mm256_load_ps(st + (j + 3) * BQ + i));
      }
      for (; j < cols; ++j) mx0 = _mm256_max_ps(mx0, _mm256_load_ps(st + j * BQ + i));
      const __m256 mx = _mm256_max_ps(_mm256_max_ps(mx0, mx1), _mm256_max_ps(mx2, mx3));
      __m256 sum0 = _mm256_setzero_ps(), sum1 = sum0;
      j = 0;
      for (; j + 2 <= cols; j += 2) {
        const __m256 p0 = exp256_softmax(_mm256_sub_ps(_mm256_load_ps(st + j * BQ + i), mx));
        const __m256 p1 = exp256_softmax(_mm256_sub_ps(_mm256_load_ps(st + (j + 1) * BQ + i), mx));
        _mm256_store_ps(st + j * BQ + i, p0);
        _mm256_store_ps(st + (j + 1) * BQ + i, p1);
        sum0 = _mm256_add_ps(sum0, p0);
        sum1 = _mm256_add_ps(sum1, p1);
      }
      if (j < cols) {
        const __m256 p0 = exp256_softmax(_mm256_sub_ps(_mm256_load_ps(st + j * BQ + i), mx));
        _mm256_store_ps(st + j * BQ + i, p0);
        sum0 = _mm256_add_ps(sum0, p0);
      }
      const __m256 a = exp256_softmax(_mm256_sub_ps(m_old, mx));  // exactly 1 where the max held
      _mm256_store_ps(alpha + i, a);
      _mm256_store_ps(l + i, _mm256_fmadd_ps(_mm256_load_ps(l + i), a, _mm256_add_ps(sum0, sum1)));
      _mm256_store_ps(m + i, mx);
    }
  }

  // acc[c, i] *= alpha[i], skipped for groups of 8 queries whose running max did not move
  // (alpha = exp(0) = 1 exactly, so skipping changes no bit). Past the first few tiles the max
  // rarely moves, and most tiles skip the pass over the accumulator.
  FRUGALNN_AVX2 static void rescale(float* acc, int64_t evp, const float* alpha) {
    for (int64_t i = 0; i < BQ; i += 8) {
      const __m256 a = _mm256_load_ps(alpha + i);
      if (_mm256_movemask_ps(_mm256_cmp_ps(a, _mm256_set1_ps(1.0f), _CMP_EQ_OQ)) == 0xff) continue;
      for (int64_t c = 0; c < evp; ++c)
        _mm256_store_ps(acc + c * BQ + i, _mm256_mul_ps(_mm256_load_ps(acc + c * BQ + i), a));
    }
  }

  FRUGALNN_AVX2 static void accumulate_pv(const float* pt, int64_t rows, const float* vp, int64_t cols, int64_t ev,
                                          float* acc) {
    const int64_t strips = (ev + VLANES - 1) / VLANES;
    for (int64_t s = 0; s < strips; ++s)
      for (int64_t i = 0; i < rows; i += 24) pv_tile(pt + i, vp + s * BK * VLANES, cols, acc + s * VLANES * BQ + i);
  }
};

// Lane mask with the first n (0..8) lanes set.
FRUGALNN_AVX2 inline __m256i first_lanes(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

// The kernel's exp over an array, for its accuracy test.
FRUGALNN_AVX2 inline void exp_array(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256_softmax(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mask = first_lanes(n - i);
    _mm256_maskstore_ps(y + i, mask, exp256_softmax(_mm256_maskload_ps(x + i, mask)));
  }
}

}  // namespace avx2
}  // namespace attention
}  // namespace frugalnn

#endif  // FRUGALNN_X86
