// Fused attention, AVX-512 ops: 16-wide micro-kernels twice as tall as the AVX2 ones, and the
// 16-wide softmax exp.
//
// Micro-kernel shape 8 rows x 48 queries (a whole query block, BQ = 48 = 3 zmm): 24 zmm
// accumulators, per step 3 vector loads, 8 broadcasts (folded into the FMAs as {1to16}) and 24
// FMAs. Against the AVX2 4 x 24 tile: 4x the FMA work per loaded query vector, and half the
// broadcasts per FMA.
// - Scores: rows are 8 keys, the step runs over the head dim (K rows broadcast in place).
// - P.V: rows are 8 value columns = two of avx2.h's packed 4-column strips, the step runs over
//   the keys; an odd last strip takes a 4-row variant.
// Values are packed, and the background work (layout.h) done, by the AVX2 code (avx2::Ops): same
// strips, same prefetches.
//
// Same numbers as the AVX2 backend, bit for bit: every output element gets the same FMA chain in
// the same order (scores over d, P.V over the keys of a tile from zero, then added to the
// accumulator), the softmax keeps the AVX2 split of max and sum accumulators per query lane, and
// vec::exp512_softmax is exp256_softmax lane for lane. So the AVX2 bound (FMA and the polynomial
// exp, against the float64 reference) is this backend's bound.
//
// Role: avx512 (function-level target kernels, FRUGALNN_AVX512). Checked against: the float64
// numpy reference (frugalnn/kernels/attention_ref.py) within the avx2 tolerance, and the avx2
// backend bit for bit (tests/kernels/test_attention.py under the avx512 backend; skipped with
// "CPU lacks AVX-512" elsewhere).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/attention/avx512.h
#pragma once

#include "attention/avx2.h"
#include "attention/layout.h"
#include "common/cpu.h"
#include "common/vexp.h"

#if FRUGALNN_X86
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace frugalnn {
namespace attention {
namespace avx512 {

static_assert(BQ % 48 == 0, "the avx512 micro-kernels cover 48 queries (3 zmm)");

using vec::exp512_softmax;

// Three accumulators (48 queries) of one row: acc += b * {x0, x1, x2}.
#define FRUGALNN_ATT_ROW(a, bval)           \
  do {                                      \
    const __m512 b_ = _mm512_set1_ps(bval); \
    a##0 = _mm512_fmadd_ps(b_, x0, a##0);   \
    a##1 = _mm512_fmadd_ps(b_, x1, a##1);   \
    a##2 = _mm512_fmadd_ps(b_, x2, a##2);   \
  } while (0)

#define FRUGALNN_ATT_ZERO(a) __m512 a##0 = _mm512_setzero_ps(), a##1 = a##0, a##2 = a##0

// st[j0:j0+8, 0:48] = K[j0:j0+8, :] . qt[:, 0:48]; key rows past `keys` repeat the last real one
// (computed, never stored).
FRUGALNN_AVX512 inline void scores_tile(const float* k, int64_t keys, int64_t e, const float* qt, float* st) {
  const float* kr[8];
  for (int r = 0; r < 8; ++r) kr[r] = avx2::row_ptr(k, e, r, keys);
  const float *k0 = kr[0], *k1 = kr[1], *k2 = kr[2], *k3 = kr[3], *k4 = kr[4], *k5 = kr[5], *k6 = kr[6], *k7 = kr[7];
  FRUGALNN_ATT_ZERO(a0);
  FRUGALNN_ATT_ZERO(a1);
  FRUGALNN_ATT_ZERO(a2);
  FRUGALNN_ATT_ZERO(a3);
  FRUGALNN_ATT_ZERO(a4);
  FRUGALNN_ATT_ZERO(a5);
  FRUGALNN_ATT_ZERO(a6);
  FRUGALNN_ATT_ZERO(a7);
  for (int64_t d = 0; d < e; ++d) {
    const float* qd = qt + d * BQ;
    const __m512 x0 = _mm512_load_ps(qd), x1 = _mm512_load_ps(qd + 16), x2 = _mm512_load_ps(qd + 32);
    FRUGALNN_ATT_ROW(a0, k0[d]);
    FRUGALNN_ATT_ROW(a1, k1[d]);
    FRUGALNN_ATT_ROW(a2, k2[d]);
    FRUGALNN_ATT_ROW(a3, k3[d]);
    FRUGALNN_ATT_ROW(a4, k4[d]);
    FRUGALNN_ATT_ROW(a5, k5[d]);
    FRUGALNN_ATT_ROW(a6, k6[d]);
    FRUGALNN_ATT_ROW(a7, k7[d]);
  }
  const __m512 out[8][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32},
                            {a40, a41, a42}, {a50, a51, a52}, {a60, a61, a62}, {a70, a71, a72}};
  for (int64_t r = 0; r < keys && r < 8; ++r)
    for (int x = 0; x < 3; ++x) _mm512_store_ps(st + r * BQ + 16 * x, out[r][x]);
}

// acc[c0:c0+8, 0:48] += strips s, s+1 ^T . pt[0:cols, 0:48] (two packed 4-column strips).
FRUGALNN_AVX512 inline void pv_tile8(const float* pt, const float* strip0, const float* strip1, int64_t cols,
                                     float* acc) {
  FRUGALNN_ATT_ZERO(a0);
  FRUGALNN_ATT_ZERO(a1);
  FRUGALNN_ATT_ZERO(a2);
  FRUGALNN_ATT_ZERO(a3);
  FRUGALNN_ATT_ZERO(a4);
  FRUGALNN_ATT_ZERO(a5);
  FRUGALNN_ATT_ZERO(a6);
  FRUGALNN_ATT_ZERO(a7);
  for (int64_t j = 0; j < cols; ++j) {
    const float* pj = pt + j * BQ;
    const float *u = strip0 + j * VLANES, *w = strip1 + j * VLANES;
    const __m512 x0 = _mm512_load_ps(pj), x1 = _mm512_load_ps(pj + 16), x2 = _mm512_load_ps(pj + 32);
    FRUGALNN_ATT_ROW(a0, u[0]);
    FRUGALNN_ATT_ROW(a1, u[1]);
    FRUGALNN_ATT_ROW(a2, u[2]);
    FRUGALNN_ATT_ROW(a3, u[3]);
    FRUGALNN_ATT_ROW(a4, w[0]);
    FRUGALNN_ATT_ROW(a5, w[1]);
    FRUGALNN_ATT_ROW(a6, w[2]);
    FRUGALNN_ATT_ROW(a7, w[3]);
  }
  const __m512 sum[8][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32},
                            {a40, a41, a42}, {a50, a51, a52}, {a60, a61, a62}, {a70, a71, a72}};
  for (int r = 0; r < 8; ++r)
    for (int x = 0; x < 3; ++x) {
      float* ar = acc + r * BQ + 16 * x;
      _mm512_store_ps(ar, _mm512_add_ps(_mm512_load_ps(ar), sum[r][x]));
    }
}

// The 4-column variant, for an odd last strip.
FRUGALNN_AVX512 inline void pv_tile4(const float* pt, const float* strip, int64_t cols, float* acc) {
  FRUGALNN_ATT_ZERO(a0);
  FRUGALNN_ATT_ZERO(a1);
  FRUGALNN_ATT_ZERO(a2);
  FRUGALNN_ATT_ZERO(a3);
  for (int64_t j = 0; j < cols; ++j) {
    const float* pj = pt + j * BQ;
    const float* u = strip + j * VLANES;
    const __m512 x0 = _mm512_load_ps(pj), x1 = _mm512_load_ps(pj + 16), x2 = _mm512_load_ps(pj + 32);
    FRUGALNN_ATT_ROW(a0, u[0]);
    FRUGALNN_ATT_ROW(a1, u[1]);
    FRUGALNN_ATT_ROW(a2, u[2]);
    FRUGALNN_ATT_ROW(a3, u[3]);
  }
  const __m512 sum[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
  for (int r = 0; r < 4; ++r)
    for (int x = 0; x < 3; ++x) {
      float* ar = acc + r * BQ + 16 * x;
      _mm512_store_ps(ar, _mm512_add_ps(_mm512_load_ps(ar), sum[r][x]));
    }
}

#undef FRUGALNN_ATT_ROW
#undef FRUGALNN_ATT_ZERO

struct Ops : avx2::Ops {  // pack_values, values_of, background_rows: avx2.h's
  // Background rows spread over the 8-key groups, as avx2.h spreads them over its 4-key groups.
  FRUGALNN_AVX512 static void scores(const float* k, int64_t cols, int64_t e, const float* qt, float* st,
                                     const Background& bg) {
    const int64_t groups = (cols + 7) / 8, per_group = (bg.r1 - bg.r0 + groups - 1) / groups;
    for (int64_t j = 0, g = 0; j < cols; j += 8, ++g) {
      avx2::Ops::background_rows(bg, std::min(bg.r1, bg.r0 + g * per_group),
                                 std::min(bg.r1, bg.r0 + (g + 1) * per_group));
      for (int64_t i = 0; i < BQ; i += 48) scores_tile(k + j * e, cols - j, e, qt + i, st + j * BQ + i);
    }
  }

  // avx2.h's softmax on 16 queries per vector: per lane the same max (4 accumulators over j mod 4)
  // and sum (2 accumulators over j mod 2) chains, so the same bits.
  FRUGALNN_AVX512 static void online_softmax(float* st, int64_t cols, float* m, float* l, float* alpha) {
    for (int64_t i = 0; i < BQ; i += 16) {
      const __m512 m_old = _mm512_load_ps(m + i);
      __m512 mx0 = m_old, mx1 = m_old, mx2 = m_old, mx3 = m_old;
      int64_t j = 0;
      for (; j + 4 <= cols; j += 4) {
        mx0 = _mm512_max_ps(mx0, _mm512_load_ps(st + j * BQ + i));
        mx1 = _mm512_max_ps(mx1, _mm512_load_ps(st + (j + 1) * BQ + i));
        mx2 = _mm512_max_ps(mx2, _mm512_load_ps(st + (j + 2) * BQ + i));
        mx3 = _mm512_max_ps(mx3, _mm512_load_ps(st + (j + 3) * BQ + i));
      }
      for (; j < cols; ++j) mx0 = _mm512_max_ps(mx0, _mm512_load_ps(st + j * BQ + i));
      const __m512 mx = _mm512_max_ps(_mm512_max_ps(mx0, mx1), _mm512_max_ps(mx2, mx3));
      __m512 sum0 = _mm512_setzero_ps(), sum1 = sum0;
      j = 0;
      for (; j + 2 <= cols; j += 2) {
        const __m512 p0 = exp512_softmax(_mm512_sub_ps(_mm512_load_ps(st + j * BQ + i), mx));
        const __m512 p1 = exp512_softmax(_mm512_sub_ps(_mm512_load_ps(st + (j + 1) * BQ + i), mx));
        _mm512_store_ps(st + j * BQ + i, p0);
        _mm512_store_ps(st + (j + 1) * BQ + i, p1);
        sum0 = _mm512_add_ps(sum0, p0);
        sum1 = _mm512_add_ps(sum1, p1);
      }
      if (j < cols) {
        const __m512 p0 = exp512_softmax(_mm512_sub_ps(_mm512_load_ps(st + j * BQ + i), mx));
        _mm512_store_ps(st + j * BQ + i, p0);
        sum0 = _mm512_add_ps(sum0, p0);
      }
      const __m512 a = exp512_softmax(_mm512_sub_ps(m_old, mx));
      _mm512_store_ps(alpha + i, a);
      _mm512_store_ps(l + i, _mm512_fmadd_ps(_mm512_load_ps(l + i), a, _mm512_add_ps(sum0, sum1)));
      _mm512_store_ps(m + i, mx);
    }
  }

  // acc[c, i] *= alpha[i], skipped for 16 queries whose running max did not move (alpha = 1 exactly).
  FRUGALNN_AVX512 static void rescale(float* acc, int64_t evp, const float* alpha) {
    for (int64_t i = 0; i < BQ; i += 16) {
      const __m512 a = _mm512_load_ps(alpha + i);
      if (_mm512_cmp_ps_mask(a, _mm512_set1_ps(1.0f), _CMP_EQ_OQ) == 0xffff) continue;
      for (int64_t c = 0; c < evp; ++c)
        _mm512_store_ps(acc + c * BQ + i, _mm512_mul_ps(_mm512_load_ps(acc + c * BQ + i), a));
    }
  }

  FRUGALNN_AVX512 static void accumulate_pv(const float* pt, int64_t rows, const float* vp, int64_t cols, int64_t ev,
                                            float* acc) {
    const int64_t strips = (ev + VLANES - 1) / VLANES;
    constexpr int64_t SB = BK * VLANES;
    int64_t s = 0;
    for (; s + 2 <= strips; s += 2) pv_tile8(pt, vp + s * SB, vp + (s + 1) * SB, cols, acc + s * VLANES * BQ);
    if (s < strips) pv_tile4(pt, vp + s * SB, cols, acc + s * VLANES * BQ);
  }
};

// The kernel's exp over an array, for its accuracy test.
FRUGALNN_AVX512 inline void exp_array(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512_softmax(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask, exp512_softmax(_mm512_maskz_loadu_ps(mask, x + i)));
  }
}

}  // namespace avx512
}  // namespace attention
}  // namespace frugalnn

#endif  // FRUGALNN_X86
