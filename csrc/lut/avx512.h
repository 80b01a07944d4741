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
// the AVX2 code (avx2.h); register blocks (R units, NC columns) are those of the tuner. Two-level
// (K-quant) weights have their own kernel, kernel_kq below (one unit, up to 4 columns).
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

// Two-level (K-quant) weights (layout.h; avx2::kernel_kq's contract, serial.h gemv_kq_units' integer
// and float order): one unit, NC columns. The lookups are those of `kernel` above (one 64-byte
// load per plane pair, accumulators A = [acc0 | acc2], B = [acc1 | acc3]). Per sub-block the fold
// is cheaper than avx2's:
//   s = chunk-lane sum of A, B (2 vpermt2q + add): int16 lane 8q + j = row(q, j) (accumulator_row);
//   P_e = (s[2i], isub) pairs, P_o = (s[2i+1], isub) pairs (blend; shift + blend);
//   S_e += vpmaddwd(P_e, (sc, cz sc)) = sc (acc + cz isub) for the rows of the even lanes, S_o
//   likewise, and Mn_e += vpmaddwd(P_e, (0, mn)) = mn isub: the zero and min terms ride in the
//   same multiply-adds, no separate isub products.
// The multipliers (sc, cz sc) and (0, mn) per row come from the 32 natural-order scale bytes by
// one vpermt2w / vpermw each. S_e / S_o hold rows [0-3, 4-7, 16-19, 20-23] / [8-11, 12-15,
// 24-27, 28-31] (fold's even/odd order) and are put in row order once per super-block.
// Integer ranges: s fits int16 exactly when the avx2 kernel needs no SPLIT (kq_needs_split), isub
// <= 2 * 8 * 127 (sub <= 64), and cz sc must fit int16 (kq_fits below); the int32 sums are the
// avx2 ones. Elsewhere the driver runs avx2::kernel_kq.
inline bool kq_fits(int bits, const KQuant& kq) {
  const int64_t cz = ((int64_t{1} << bits) - 1) - 2 * int64_t{kq.zero};
  const int64_t max_sc = kq.format == kScaleOne ? 1 : kq.format == kScaleNib ? 15 : kq.format == kScaleI8 ? 128 : 255;
  return !avx2::kq_needs_split(bits, kq.sub / 8) && (cz < 0 ? -cz : cz) * max_sc <= 32767 && kq.sub <= 64;
}

// int16 lane L of s holds row accumulator_row(L / 8, L % 8); idx[2i], idx[2i+1] select for the
// pair of int32 lane i the row of s lane 2i + odd from a two-source [N | cz N] (32 + row).
FRUGALNN_AVX512 inline __m512i kq_pair_index(int odd) {
  alignas(64) int16_t idx[32];
  for (int i = 0; i < 16; ++i) {
    const int L = 2 * i + odd, row = accumulator_row(L / 8, L % 8);
    idx[2 * i] = static_cast<int16_t>(row);
    idx[2 * i + 1] = static_cast<int16_t>(32 + row);
  }
  return _mm512_load_si512(idx);
}

template <int BITS, int NC>
FRUGALNN_AVX512 void kernel_kq(const Block& b, const KQuant& kq, const Shape& s, int64_t u) {
  constexpr int PAIRS = BITS / 2;
  constexpr bool ODD = BITS % 2;
  const int64_t groups = s.groups(), spg = s.steps_per_group(), gbytes = s.group_bytes();
  const int64_t merge = avx2::kq_merge(BITS, kq, s);
  const int64_t nsub = kq.nsub(s) / merge, sps = kq.sub / 8 * merge;
  const int16_t cz = static_cast<int16_t>(((1 << BITS) - 1) - 2 * kq.zero);
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const __m512i w_even = _mm512_set1_epi16(static_cast<int16_t>(1 << (BITS - 1)));
  const __m512i w_odd = _mm512_set1_epi16(static_cast<int16_t>((1 << (BITS - 1)) << 8));
  const __m512i first = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i second = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
  const __m512i idx_e = kq_pair_index(0), idx_o = kq_pair_index(1);
  const __mmask32 odd_lanes = 0xAAAAAAAAu;
  const __m256i nib8 = _mm256_set1_epi8(0x0f);
  // kScaleOne: sc = 1 (and mn = 1 with mins) for every row
  const __m512i one_w = _mm512_set1_epi32((static_cast<int32_t>(static_cast<uint16_t>(cz)) << 16) | 1);
  const __m512i one_m = _mm512_set1_epi32(kq.has_min ? (1 << 16) : 0);
  __m512 yacc[NC][2];
  for (int c = 0; c < NC; ++c) yacc[c][0] = yacc[c][1] = _mm512_setzero_ps();
  const uint8_t* unit = b.packed + u * s.unit_bytes();
  for (int64_t g = 0; g < groups; ++g) {
    __m512i Se[NC], So[NC], Me[NC], Mo[NC];
    for (int c = 0; c < NC; ++c) Se[c] = So[c] = Me[c] = Mo[c] = _mm512_setzero_si512();
    for (int64_t sb = 0; sb < nsub; ++sb) {
      __m512i acc[NC][2];
      int32_t isub[NC];
      for (int c = 0; c < NC; ++c) {
        isub[c] = 0;
        acc[c][0] = acc[c][1] = _mm512_setzero_si512();
      }
      for (int64_t st = sb * sps; st < (sb + 1) * sps; ++st) {
        __m512i tv[NC];
        for (int c = 0; c < NC; ++c) {
          const int8_t* t = b.tables[c] + (g * spg + st) * kSlabBytes;
          tv[c] = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)));
          isub[c] += t[15] + t[31];
        }
        const uint8_t* w = unit + g * gbytes + st * (BITS * kSlabBytes);
        if (b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(w + b.prefetch), _MM_HINT_T0);
        for (int p = 0; p < PAIRS; ++p) {
          const __m512i wp = _mm512_set1_epi16(static_cast<int16_t>((1 << 2 * p) | ((1 << (2 * p + 1)) << 8)));
          const __m512i v = _mm512_loadu_si512(w + 2 * p * kSlabBytes);
          const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
          for (int c = 0; c < NC; ++c) {
            acc[c][0] = _mm512_add_epi16(acc[c][0], _mm512_maddubs_epi16(wp, _mm512_shuffle_epi8(tv[c], lo)));
            acc[c][1] = _mm512_add_epi16(acc[c][1], _mm512_maddubs_epi16(wp, _mm512_shuffle_epi8(tv[c], hi)));
          }
        }
        if (ODD) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (BITS - 1) * kSlabBytes));
          const __m512i idx =
              _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1), nib);
          for (int c = 0; c < NC; ++c) {
            const __m512i lh = _mm512_shuffle_epi8(tv[c], idx);
            acc[c][0] = _mm512_add_epi16(acc[c][0], _mm512_maddubs_epi16(w_even, lh));
            acc[c][1] = _mm512_add_epi16(acc[c][1], _mm512_maddubs_epi16(w_odd, lh));
          }
        }
      }
      // multipliers of this sub-block: We/Wo = (sc, cz sc) pairs, Ne/No = (0, mn) pairs
      __m512i We = one_w, Wo = one_w, Ne = one_m, No = one_m;
      if (kq.format != kScaleOne) {
        const int64_t base = ((u * groups + g) * nsub + sb) * kUnitRows;
        const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kq.sc + base));
        __m512i N;
        if (kq.format == kScaleI8) N = _mm512_cvtepi8_epi16(raw);
        else N = _mm512_cvtepu8_epi16(kq.format == kScaleNib ? _mm256_and_si256(raw, nib8) : raw);
        const __m512i CN = _mm512_mullo_epi16(N, _mm512_set1_epi16(cz));
        We = _mm512_permutex2var_epi16(N, idx_e, CN);
        Wo = _mm512_permutex2var_epi16(N, idx_o, CN);
        if (kq.has_min) {
          const __m256i mraw = kq.format == kScaleNib
                                   ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib8)
                                   : _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kq.mn + base));
          const __m512i M = _mm512_cvtepu8_epi16(mraw);
          // (0, mn): the odd index of each pair selects 32 + row, i.e. from the second source
          Ne = _mm512_maskz_permutex2var_epi16(odd_lanes, M, idx_e, M);
          No = _mm512_maskz_permutex2var_epi16(odd_lanes, M, idx_o, M);
        }
      }
      for (int c = 0; c < NC; ++c) {
        const __m512i iv = _mm512_set1_epi16(static_cast<int16_t>(isub[c]));  // |isub| <= 2 * sps * 127 < 2^15
        const __m512i sum = _mm512_add_epi16(_mm512_permutex2var_epi64(acc[c][0], first, acc[c][1]),
                                             _mm512_permutex2var_epi64(acc[c][0], second, acc[c][1]));
        const __m512i pe = _mm512_mask_blend_epi16(odd_lanes, sum, iv);
        const __m512i po = _mm512_mask_blend_epi16(odd_lanes, _mm512_srli_epi32(sum, 16), iv);
        Se[c] = _mm512_add_epi32(Se[c], _mm512_madd_epi16(pe, We));
        So[c] = _mm512_add_epi32(So[c], _mm512_madd_epi16(po, Wo));
        if (kq.has_min) {
          Me[c] = _mm512_add_epi32(Me[c], _mm512_madd_epi16(pe, Ne));
          Mo[c] = _mm512_add_epi32(Mo[c], _mm512_madd_epi16(po, No));
        }
      }
    }
    const int64_t dbase = (u * groups + g) * kUnitRows;
    for (int a = 0; a < 2; ++a) {
      const __m512 dh = _mm512_mul_ps(
          _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kq.d + dbase + 16 * a))),
          _mm512_set1_ps(0.5f));
      __m512 dm = _mm512_setzero_ps();
      if (kq.has_min)
        dm = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(kq.dmin + dbase + 16 * a)));
      for (int c = 0; c < NC; ++c) {
        const __m512 vts = _mm512_set1_ps(b.ts[c][g]);
        const __m512i S = a ? _mm512_shuffle_i64x2(Se[c], So[c], _MM_SHUFFLE(3, 2, 3, 2))
                            : _mm512_shuffle_i64x2(Se[c], So[c], _MM_SHUFFLE(1, 0, 1, 0));
        __m512 y = _mm512_add_ps(yacc[c][a], _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(S), dh), vts));
        if (kq.has_min) {
          const __m512i Mn = a ? _mm512_shuffle_i64x2(Me[c], Mo[c], _MM_SHUFFLE(3, 2, 3, 2))
                               : _mm512_shuffle_i64x2(Me[c], Mo[c], _MM_SHUFFLE(1, 0, 1, 0));
          y = _mm512_sub_ps(y, _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(Mn), dm), vts));
        }
        yacc[c][a] = y;
      }
    }
  }
  const int64_t row0 = u * kUnitRows;
  const int64_t rows = s.m - row0 < kUnitRows ? s.m - row0 : kUnitRows;
  for (int c = 0; c < NC; ++c) {
    alignas(64) float out[kUnitRows];
    _mm512_store_ps(out, yacc[c][0]);
    _mm512_store_ps(out + 16, yacc[c][1]);
    std::memcpy(b.y[c] + row0, out, static_cast<size_t>(rows) * sizeof(float));
  }
}

}  // namespace avx512
}  // namespace lut
}  // namespace frugalnn
#endif  // FRUGALNN_X86
