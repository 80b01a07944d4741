// T-MAC lookup-table GEMV/GEMM, AVX-512 variant (AVX512F/BW). Same weight and table layouts
// (layout.h) and the same integer and float32 operation order as avx2.h and serial.h, so results
// are bit-identical to both.
//
// What 64-byte registers change. The two slabs of a plane pair (rows 0-15 and 16-31, layout.h)
// are adjacent in memory, so one 64-byte load brings both, and the step's 32-byte table is
// broadcast to both halves of a zmm: one vpshufb does 64 lookups (32 rows x 2 planes of one
// nibble), one vpmaddubsw weights and widens them. Per plane pair, unit and column: 1 load, 3 ops
// to split nibbles, 2 vpshufb, 2 vpmaddubsw, 2 adds (the AVX2 kernel does twice that). The four
// int16 accumulators of avx2.h become two zmm, A = [acc0 | acc2] and B = [acc1 | acc3]; the
// fold (fold_unit) regroups their 128-bit lanes with two vpermt2q and gives rows 0-15 and 16-31 as
// two zmm of int32. The int16 and int32 ranges are the avx2 ones (Shape::sub_steps, int32_steps),
// since every int16 lane sums exactly the same terms. VNNI does not help here: vpdpbusd sums four
// adjacent bytes, and adjacent bytes of a slab belong to different rows.
//
// Tables (build_tables) and special activations (add_special_units) are O(K) per column and reuse
// the AVX2 code (avx2.h); register blocks (R units, NC columns) are those of the tuner.
//
// Role: avx512 (function-level target kernels, FRUGALNN_AVX512). Checked against:
// frugalnn/kernels/lut_ref.py bit for bit, as serial.h and avx2.h are (tests/kernels/test_lut.py
// under the avx512 backend; skipped with "CPU lacks AVX-512" elsewhere).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lut/avx512.h
#pragma once

#include <cstdint>
#include <cstring>

#include "common/cpu.h"
#include "lut/avx2.h"
#include "lut/layout.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace lut {
namespace avx512 {

using avx2::Block;

// Accumulators A = [acc0 | acc2], B = [acc1 | acc3] (avx2.h's four, 128-bit lanes = chunks 2s,
// 2s+1) -> int32 rows 0-15 and 16-31 in order (layout.h accumulator_row).
FRUGALNN_AVX512 inline void fold(__m512i a, __m512i b, __m512i* rows0, __m512i* rows1) {
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);    // [a0L0, a1L0, a2L0, a3L0]
  const __m512i second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);  // [a0L1, a1L1, a2L1, a3L1]
  const __m512i s = _mm512_add_epi16(_mm512_permutex2var_epi64(a, first, b), _mm512_permutex2var_epi64(a, second, b));
  const __m512i even = _mm512_srai_epi32(_mm512_slli_epi32(s, 16), 16);  // rows 0-3, 4-7, 16-19, 20-23
  const __m512i odd = _mm512_srai_epi32(s, 16);                           // rows 8-11, 12-15, 24-27, 28-31
  *rows0 = _mm512_shuffle_i64x2(even, odd, _MM_SHUFFLE(1, 0, 1, 0));
  *rows1 = _mm512_shuffle_i64x2(even, odd, _MM_SHUFFLE(3, 2, 3, 2));
}

// All 32 rows of a unit; above 4 bits the high plane set is recombined as lo + 16 hi (avx2.h).
template <bool SPLIT>
FRUGALNN_AVX512 inline void fold_unit(const __m512i* lo, const __m512i* hi, __m512i* out) {
  fold(lo[0], lo[1], &out[0], &out[1]);
  if (SPLIT) {
    __m512i h0, h1;
    fold(hi[0], hi[1], &h0, &h1);
    out[0] = _mm512_add_epi32(out[0], _mm512_slli_epi32(h0, 4));
    out[1] = _mm512_add_epi32(out[1], _mm512_slli_epi32(h1, 4));
  }
}

// R units starting at unit u0, NC columns: y[c][rows of the units] = result (avx2::kernel's contract).
template <int BITS, int R, int NC>
FRUGALNN_AVX512 void kernel(const Block& b, const Shape& s, int64_t u0) {
  constexpr int PAIRS = BITS / 2;
  constexpr bool ODD = BITS % 2;
  constexpr bool SPLIT = BITS > 4;
  constexpr int SPLIT_SUB = 32767 / (2 * 15 * 127);
  const int64_t groups = s.groups(), spg = s.steps_per_group(), gbytes = s.group_bytes();
  const int sub = SPLIT ? SPLIT_SUB : s.sub_steps();
  const __m512i nib = _mm512_set1_epi8(0x0f);
  constexpr int ODD_SHIFT = SPLIT ? BITS - 5 : BITS - 1;
  const __m512i w_even = _mm512_set1_epi16(static_cast<int16_t>(1 << ODD_SHIFT));
  const __m512i w_odd = _mm512_set1_epi16(static_cast<int16_t>((1 << ODD_SHIFT) << 8));
  alignas(64) float yacc[NC][R][kUnitRows];
  alignas(64) int32_t acc32[NC][R][kUnitRows];
  alignas(64) int64_t acc64[NC][R][kUnitRows];
  const bool wide = s.wide_sums();
  const int64_t i32_steps = s.int32_steps();
  std::memset(yacc, 0, sizeof(yacc));
  for (int64_t g = 0; g < groups; ++g) {
    const bool single_sub = spg <= sub;
    if (!single_sub) std::memset(acc32, 0, sizeof(acc32));
    if (wide) std::memset(acc64, 0, sizeof(acc64));
    int64_t flushed = 0;
    __m512i acc[NC][R][2], acch[NC][R][2];
    for (int64_t st0 = 0; st0 < spg; st0 += sub) {
      const int64_t st1 = st0 + sub < spg ? st0 + sub : spg;
      for (int c = 0; c < NC; ++c)
        for (int r = 0; r < R; ++r)
          for (int a = 0; a < 2; ++a) acc[c][r][a] = acch[c][r][a] = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int64_t st = st0; st < st1; ++st) {
        __m512i tv[NC];
        for (int c = 0; c < NC; ++c)
          tv[c] = _mm512_broadcast_i64x4(
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.tables[c] + (g * spg + st) * kSlabBytes)));
        for (int r = 0; r < R; ++r) {
          const uint8_t* w = b.packed + (u0 + r) * s.unit_bytes() + g * gbytes + st * (BITS * kSlabBytes);
          if (b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(w + b.prefetch), _MM_HINT_T0);
          for (int p = 0; p < PAIRS; ++p) {
            const bool high = SPLIT && p >= 2;
            const int e = high ? 2 * p - 4 : 2 * p;
            const __m512i wp = _mm512_set1_epi16(static_cast<int16_t>((1 << e) | ((1 << (e + 1)) << 8)));
            const __m512i v = _mm512_loadu_si512(w + 2 * p * kSlabBytes);  // slabs 2p (rows 0-15), 2p+1 (16-31)
            const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
            for (int c = 0; c < NC; ++c) {
              __m512i* dst = high ? acch[c][r] : acc[c][r];
              dst[0] = _mm512_add_epi16(dst[0], _mm512_maddubs_epi16(wp, _mm512_shuffle_epi8(tv[c], lo)));
              dst[1] = _mm512_add_epi16(dst[1], _mm512_maddubs_epi16(wp, _mm512_shuffle_epi8(tv[c], hi)));
            }
          }
          if (ODD) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (BITS - 1) * kSlabBytes));
            // [low nibbles | high nibbles]: one vpshufb gives avx2.h's l and h side by side
            const __m512i idx = _mm512_and_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1), nib);
            for (int c = 0; c < NC; ++c) {
              const __m512i lh = _mm512_shuffle_epi8(tv[c], idx);
              __m512i* dst = SPLIT ? acch[c][r] : acc[c][r];
              dst[0] = _mm512_add_epi16(dst[0], _mm512_maddubs_epi16(w_even, lh));  // [acc0 | acc2]
              dst[1] = _mm512_add_epi16(dst[1], _mm512_maddubs_epi16(w_odd, lh));   // [acc1 | acc3]
            }
          }
        }
      }
      if (!single_sub) {
        for (int c = 0; c < NC; ++c)
          for (int r = 0; r < R; ++r) {
            __m512i rows[2];
            fold_unit<SPLIT>(acc[c][r], acch[c][r], rows);
            for (int a = 0; a < 2; ++a) {
              int32_t* p = acc32[c][r] + 16 * a;
              _mm512_store_si512(p, _mm512_add_epi32(_mm512_load_si512(p), rows[a]));
            }
          }
        if (wide && (st1 == spg || st1 + sub - flushed > i32_steps)) {
          for (int c = 0; c < NC; ++c)
            for (int r = 0; r < R; ++r)
              for (int i = 0; i < kUnitRows; ++i) acc64[c][r][i] += acc32[c][r][i];
          std::memset(acc32, 0, sizeof(acc32));
          flushed = st1;
        }
      }
    }
    // float steps, in layout.h's order: y += (acc * ws) * ts; y += (zt * isum) * ts
    for (int c = 0; c < NC; ++c) {
      const float ts = b.ts[c][g], zi = static_cast<float>(b.isum[c][g]);
      const __m512 vts = _mm512_set1_ps(ts), vzi = _mm512_set1_ps(zi);
      for (int r = 0; r < R; ++r) {
        const float* wsg = b.ws + ((u0 + r) * groups + g) * kUnitRows;
        const float* ztg = b.zt + ((u0 + r) * groups + g) * kUnitRows;
        if (wide) {  // int64 sums, once per long group: the scalar steps of avx2.h
          float* yr = yacc[c][r];
          for (int i = 0; i < kUnitRows; ++i) {
            yr[i] = yr[i] + (static_cast<float>(acc64[c][r][i]) * wsg[i]) * ts;
            if (b.has_zero) yr[i] = yr[i] + (ztg[i] * zi) * ts;
          }
          continue;
        }
        __m512i rows[2];
        if (single_sub) fold_unit<SPLIT>(acc[c][r], acch[c][r], rows);
        for (int a = 0; a < 2; ++a) {
          const __m512i i32 = single_sub ? rows[a] : _mm512_load_si512(acc32[c][r] + 16 * a);
          const __m512 t = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(i32), _mm512_loadu_ps(wsg + 16 * a)), vts);
          __m512 y = _mm512_add_ps(_mm512_load_ps(yacc[c][r] + 16 * a), t);
          if (b.has_zero) y = _mm512_add_ps(y, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(ztg + 16 * a), vzi), vts));
          _mm512_store_ps(yacc[c][r] + 16 * a, y);
        }
      }
    }
  }
  for (int c = 0; c < NC; ++c)
    for (int r = 0; r < R; ++r) {
      const int64_t row0 = (u0 + r) * kUnitRows;
      const int64_t rows = s.m - row0 < kUnitRows ? s.m - row0 : kUnitRows;
      if (rows > 0) std::memcpy(b.y[c] + row0, yacc[c][r], static_cast<size_t>(rows) * sizeof(float));
    }
}

}  // namespace avx512
}  // namespace lut
}  // namespace frugalnn
#endif  // FRUGALNN_X86
