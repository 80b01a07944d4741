// T-MAC lookup-table GEMV/GEMM, AVX2 variant. Layout and math: layout.h; the float32 operation
// order is the one serial.h documents, so results are bit-identical to the reference.
//
// Inner step (one unit of 32 rows, one pair of chunks = 8 activations, one column):
//   per slab: 1 load, 3 ops to split nibbles, 2 vpshufb (32 lookups each), 2 vpmaddubsw (weight
//   the two planes by 2^i and widen to int16 in one go), 2 int16 adds.
// int16 lanes are widened to int32 every Shape::sub_steps() steps (never overflow), int32 sums
// of groups too long for them flushed into int64 (layout.h, integer ranges), and converted to
// float32 once per weight group. Templates: BITS (1..8), R units and NC columns per register
// block (chosen per shape by the tuner in frugalnn/tmac/tune.py).
//
// Role: avx2 (function-level target kernels). Checked against: frugalnn/kernels/lut_ref.py bit for
// bit, as serial.h is, tables included (tests/kernels/test_lut.py under the avx2 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lut/avx2.h
#pragma once

#include <cstdint>
#include <cstring>

#include "common/cpu.h"
#include "lut/layout.h"
#include "lut/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace lut {
namespace avx2 {

// Chunk tables of 8 chunks (32 activations at a): entry vectors e[0..7] = T[8..15] of chunks in
// the order (0,2,4,6 | 1,3,5,7), so that after quantization lane L of each vector is chunk 2s+L.
FRUGALNN_AVX2 inline void chunk_tables8(const float* a, __m256* e) {
  __m256 r0 = _mm256_loadu_ps(a), r1 = _mm256_loadu_ps(a + 8), r2 = _mm256_loadu_ps(a + 16),
         r3 = _mm256_loadu_ps(a + 24);
  // 4x4 transpose inside each 128-bit lane: lane 0 holds chunks 0,2,4,6, lane 1 chunks 1,3,5,7.
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 a0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  __m256 a1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  __m256 a2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  __m256 a3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 n0 = _mm256_xor_ps(a0, sign), n1 = _mm256_xor_ps(a1, sign), n2 = _mm256_xor_ps(a2, sign);
  __m256 u[4] = {_mm256_add_ps(n0, n1), _mm256_add_ps(a0, n1), _mm256_add_ps(n0, a1), _mm256_add_ps(a0, a1)};
  for (int j = 0; j < 8; ++j) {  // entry 8 + j: bit0 -> a0, bit1 -> a1, bit2 -> a2 positive
    __m256 v = _mm256_add_ps(u[j & 3], (j & 4) ? a2 : n2);
    e[j] = _mm256_add_ps(v, a3);
  }
}

FRUGALNN_AVX2 inline void build_tables(const float* x, const Shape& s, int8_t* tables, float* ts, int32_t* isum,
                                       float* scratch /* chunks_per_group * 8 floats */) {
  const int64_t groups = s.groups(), cpg = s.chunks_per_group(), spg = s.steps_per_group();
  const int64_t vec_chunks = cpg - cpg % 8;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // Byte shuffles that turn per-entry int8 rows into chunk tables [-q7..-q0, q0..q7].
  const __m128i transpose4 = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  const __m256i tr = _mm256_broadcastsi128_si256(transpose4);
  const __m256i neg_a = _mm256_broadcastsi128_si256(_mm_setr_epi8(7, 6, 5, 4, 3, 2, 1, 0, -1, -1, -1, -1, -1, -1, -1, -1));
  const __m256i pos_a = _mm256_broadcastsi128_si256(_mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i neg_b = _mm256_broadcastsi128_si256(_mm_setr_epi8(15, 14, 13, 12, 11, 10, 9, 8, -1, -1, -1, -1, -1, -1, -1, -1));
  const __m256i pos_b = _mm256_broadcastsi128_si256(_mm_setr_epi8(-1, -1, -1, -1, -1, -1, -1, -1, 8, 9, 10, 11, 12, 13, 14, 15));
  for (int64_t g = 0; g < groups; ++g) {
    const float* xg = x + g * s.group;
    __m256 vmax = _mm256_setzero_ps();
    for (int64_t c = 0; c < vec_chunks; c += 8) {
      __m256 e[8];
      chunk_tables8(xg + 4 * c, e);
      for (int j = 0; j < 8; ++j) {
        vmax = _mm256_max_ps(vmax, _mm256_and_ps(e[j], abs_mask));
        _mm256_storeu_ps(scratch + c * 8 + j * 8, e[j]);
      }
    }
    alignas(32) float m8[8];
    _mm256_store_ps(m8, vmax);
    float maxabs = 0.0f;
    for (int j = 0; j < 8; ++j) maxabs = m8[j] > maxabs ? m8[j] : maxabs;
    for (int64_t c = vec_chunks; c < cpg; ++c) {
      float* t8 = scratch + c * 8;
      chunk_table_upper(xg + 4 * c, t8);
      for (int j = 0; j < 8; ++j) {
        float v = t8[j] < 0 ? -t8[j] : t8[j];
        maxabs = v > maxabs ? v : maxabs;
      }
    }
    float top = maxabs;
    if (maxabs > 0.0f && maxabs < kTinyTable) {  // as serial.h: quantize 2^64 T (exact)
      for (int64_t i = 0; i < cpg * 8; ++i) scratch[i] *= kTinyScale;
      top = maxabs * kTinyScale;
    }
    const float inv = top > 0.0f ? 127.0f / top : 0.0f;
    ts[g] = maxabs / 127.0f;
    const __m256 vinv = _mm256_set1_ps(inv);
    int8_t* tg = tables + g * spg * kSlabBytes;
    if (cpg % 2) std::memset(tg + cpg * 16, 0, 16);  // padding chunk of the last step
    __m256i vsum = _mm256_setzero_si256();
    for (int64_t c = 0; c < vec_chunks; c += 8) {
      __m256i q[8];
      // cvtps_epi32 rounds to nearest even (the MXCSR default, as nearbyint in serial.h), and
      // |T * inv| <= 127 (1 + 2^-23)^2 < 127.5, so the serial clamp never fires: no round, no clamp.
      for (int j = 0; j < 8; ++j)
        q[j] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(scratch + c * 8 + j * 8), vinv));
      vsum = _mm256_add_epi32(vsum, q[7]);
      // per lane: entry-major bytes [e][chunk-in-lane] -> chunk-major [chunk][e]
      __m256i b0 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      __m256i b1 = _mm256_packs_epi16(_mm256_packs_epi32(q[4], q[5]), _mm256_packs_epi32(q[6], q[7]));
      b0 = _mm256_shuffle_epi8(b0, tr);
      b1 = _mm256_shuffle_epi8(b1, tr);
      __m256i up[2] = {_mm256_unpacklo_epi32(b0, b1), _mm256_unpackhi_epi32(b0, b1)};  // 2 chunks per lane
      for (int h = 0; h < 2; ++h) {
        __m256i neg = _mm256_sub_epi8(_mm256_setzero_si256(), up[h]);
        __m256i ta = _mm256_or_si256(_mm256_shuffle_epi8(neg, neg_a), _mm256_shuffle_epi8(up[h], pos_a));
        __m256i tb = _mm256_or_si256(_mm256_shuffle_epi8(neg, neg_b), _mm256_shuffle_epi8(up[h], pos_b));
        // lanes of ta are chunks (c + 4h, c + 4h + 1) = one step; tb the next step
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tg + (c + 4 * h) * 16), ta);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tg + (c + 4 * h + 2) * 16), tb);
      }
    }
    alignas(32) int32_t s8[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(s8), vsum);
    int32_t sum = 0;
    for (int j = 0; j < 8; ++j) sum += s8[j];
    for (int64_t c = vec_chunks; c < cpg; ++c) sum += store_chunk_table(scratch + c * 8, inv, tg + c * 16);
    isum[g] = sum;
  }
}

// Two int16 accumulators (a, a+1; 128-bit lanes = the two chunks of a step) -> int32 row sums of
// rows 16(a/2)..+7 and +8..+15 in order (layout.h, accumulator_row): add the chunk lanes in int16
// (Shape::sub_steps leaves room), then sign-extend even and odd int16 lanes in place. Two
// cross-lane permutes per 16 rows instead of an extract and two widening shuffles per 8.
FRUGALNN_AVX2 inline void fold_pair(__m256i a0, __m256i a1, __m256i* rows_lo, __m256i* rows_hi) {
  __m256i s = _mm256_add_epi16(_mm256_permute2x128_si256(a0, a1, 0x20), _mm256_permute2x128_si256(a0, a1, 0x31));
  *rows_lo = _mm256_srai_epi32(_mm256_slli_epi32(s, 16), 16);
  *rows_hi = _mm256_srai_epi32(s, 16);
}

// All 32 rows of a unit: out[q] = int32 sums of rows 8q..8q+7. Above 4 bits the high plane set
// (weights 2^(plane-4)) is recombined as lo + 16 hi.
template <bool SPLIT>
FRUGALNN_AVX2 inline void fold_unit(const __m256i* lo, const __m256i* hi, __m256i* out) {
  for (int q = 0; q < 2; ++q) {
    fold_pair(lo[2 * q], lo[2 * q + 1], &out[2 * q], &out[2 * q + 1]);
    if (SPLIT) {
      __m256i e, o;
      fold_pair(hi[2 * q], hi[2 * q + 1], &e, &o);
      out[2 * q] = _mm256_add_epi32(out[2 * q], _mm256_slli_epi32(e, 4));
      out[2 * q + 1] = _mm256_add_epi32(out[2 * q + 1], _mm256_slli_epi32(o, 4));
    }
  }
}

struct Block {
  const uint8_t* packed;
  const float *ws, *zt;
  bool has_zero;
  const int8_t* tables[4];  // one per column of the block
  const float* ts[4];
  const int32_t* isum[4];
  float* y[4];  // output column pointers (length M)
  int64_t prefetch;  // bytes ahead to prefetch in each unit's weight stream (0 = off; tuned)
};

// R units starting at unit u0, NC columns: y[c][rows of the units] = result.
template <int BITS, int R, int NC>
FRUGALNN_AVX2 void kernel(const Block& b, const Shape& s, int64_t u0) {
  constexpr int PAIRS = BITS / 2;
  constexpr bool ODD = BITS % 2;
  // Above 4 bits, planes 4.. go to a second set of int16 accumulators with weights 2^(plane-4),
  // recombined as lo + 16 hi in int32: both sets then widen every 17 steps instead of every step.
  constexpr bool SPLIT = BITS > 4;
  constexpr int SPLIT_SUB = 32767 / (2 * 15 * 127);
  const int64_t groups = s.groups(), spg = s.steps_per_group(), gbytes = s.group_bytes();
  const int sub = SPLIT ? SPLIT_SUB : s.sub_steps();
  const __m256i nib = _mm256_set1_epi8(0x0f);
  constexpr int ODD_SHIFT = SPLIT ? BITS - 5 : BITS - 1;  // weight of the single plane in its set
  const __m256i w_even = _mm256_set1_epi16(static_cast<int16_t>(1 << ODD_SHIFT));
  const __m256i w_odd = _mm256_set1_epi16(static_cast<int16_t>((1 << ODD_SHIFT) << 8));
  alignas(32) float yacc[NC][R][kUnitRows];
  alignas(32) int32_t acc32[NC][R][kUnitRows];
  // Groups too long for int32 row sums (layout.h) flush acc32 into acc64 before it could overflow.
  alignas(32) int64_t acc64[NC][R][kUnitRows];
  const bool wide = s.wide_sums();
  const int64_t i32_steps = s.int32_steps();
  std::memset(yacc, 0, sizeof(yacc));
  for (int64_t g = 0; g < groups; ++g) {
    const bool single_sub = spg <= sub;
    if (!single_sub) std::memset(acc32, 0, sizeof(acc32));
    if (wide) std::memset(acc64, 0, sizeof(acc64));
    int64_t flushed = 0;  // acc32 holds the sums of steps [flushed, st1)
    __m256i acc[NC][R][4], acch[NC][R][4];
    for (int64_t st0 = 0; st0 < spg; st0 += sub) {
      const int64_t st1 = st0 + sub < spg ? st0 + sub : spg;
      for (int c = 0; c < NC; ++c)
        for (int r = 0; r < R; ++r)
          for (int a = 0; a < 4; ++a) acc[c][r][a] = acch[c][r][a] = _mm256_setzero_si256();
#pragma GCC unroll 4
      for (int64_t st = st0; st < st1; ++st) {
        __m256i tv[NC];
        for (int c = 0; c < NC; ++c)
          tv[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.tables[c] + (g * spg + st) * kSlabBytes));
        for (int r = 0; r < R; ++r) {
          const uint8_t* w = b.packed + (u0 + r) * s.unit_bytes() + g * gbytes + st * (BITS * kSlabBytes);
          // Each unit is its own sequential stream; run ahead of the hardware prefetcher (which
          // stops at 4 KiB pages) so large weights that spill L3 still arrive in time.
          if (b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(w + b.prefetch), _MM_HINT_T0);
          for (int p = 0; p < PAIRS; ++p) {
            const bool high = SPLIT && p >= 2;
            const int e = high ? 2 * p - 4 : 2 * p;
            const __m256i wp = _mm256_set1_epi16(static_cast<int16_t>((1 << e) | ((1 << (e + 1)) << 8)));
            for (int half = 0; half < 2; ++half) {
              __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (2 * p + half) * kSlabBytes));
              __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
              for (int c = 0; c < NC; ++c) {
                __m256i* dst = high ? acch[c][r] : acc[c][r];
                dst[2 * half] = _mm256_add_epi16(dst[2 * half], _mm256_maddubs_epi16(wp, _mm256_shuffle_epi8(tv[c], lo)));
                dst[2 * half + 1] = _mm256_add_epi16(dst[2 * half + 1],
                                                     _mm256_maddubs_epi16(wp, _mm256_shuffle_epi8(tv[c], hi)));
              }
            }
          }
          if (ODD) {
            __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (BITS - 1) * kSlabBytes));
            __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            for (int c = 0; c < NC; ++c) {
              __m256i l = _mm256_shuffle_epi8(tv[c], lo), h = _mm256_shuffle_epi8(tv[c], hi);
              __m256i* dst = SPLIT ? acch[c][r] : acc[c][r];
              dst[0] = _mm256_add_epi16(dst[0], _mm256_maddubs_epi16(w_even, l));
              dst[1] = _mm256_add_epi16(dst[1], _mm256_maddubs_epi16(w_odd, l));
              dst[2] = _mm256_add_epi16(dst[2], _mm256_maddubs_epi16(w_even, h));
              dst[3] = _mm256_add_epi16(dst[3], _mm256_maddubs_epi16(w_odd, h));
            }
          }
        }
      }
      if (!single_sub) {
        for (int c = 0; c < NC; ++c)
          for (int r = 0; r < R; ++r) {
            __m256i rows[4];
            fold_unit<SPLIT>(acc[c][r], acch[c][r], rows);
            for (int a = 0; a < 4; ++a) {
              __m256i* p = reinterpret_cast<__m256i*>(acc32[c][r] + 8 * a);
              _mm256_store_si256(p, _mm256_add_epi32(_mm256_load_si256(p), rows[a]));
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
      const __m256 vts = _mm256_set1_ps(ts), vzi = _mm256_set1_ps(zi);
      for (int r = 0; r < R; ++r) {
        const float* wsg = b.ws + ((u0 + r) * groups + g) * kUnitRows;
        const float* ztg = b.zt + ((u0 + r) * groups + g) * kUnitRows;
        if (wide) {  // int64 sums: AVX2 has no int64 -> float conversion, and this is once per long group
          float* yr = yacc[c][r];
          for (int i = 0; i < kUnitRows; ++i) {
            yr[i] = yr[i] + (static_cast<float>(acc64[c][r][i]) * wsg[i]) * ts;
            if (b.has_zero) yr[i] = yr[i] + (ztg[i] * zi) * ts;
          }
          continue;
        }
        __m256i rows[4];
        if (single_sub) fold_unit<SPLIT>(acc[c][r], acch[c][r], rows);
        for (int a = 0; a < 4; ++a) {
          __m256i i32 = single_sub ? rows[a] : _mm256_load_si256(reinterpret_cast<const __m256i*>(acc32[c][r] + 8 * a));
          __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(i32), _mm256_loadu_ps(wsg + 8 * a)), vts);
          __m256 y = _mm256_add_ps(_mm256_load_ps(yacc[c][r] + 8 * a), t);
          if (b.has_zero) y = _mm256_add_ps(y, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(ztg + 8 * a), vzi), vts));
          _mm256_store_ps(yacc[c][r] + 8 * a, y);
        }
      }
    }
  }
  for (int c = 0; c < NC; ++c)
    for (int r = 0; r < R; ++r) {
      int64_t row0 = (u0 + r) * kUnitRows;
      int64_t rows = s.m - row0 < kUnitRows ? s.m - row0 : kUnitRows;
      if (rows > 0) std::memcpy(b.y[c] + row0, yacc[c][r], static_cast<size_t>(rows) * sizeof(float));
    }
}

// Special activations: serial.h add_special_units, same contract, same per-row operations in the
// same order (so bit-identical). One unit's 32 codes of column k come from the chunk's 16-byte
// lane of each slab: bit t of every nibble (shift, mask), weighted by its plane with vpmaddubsw
// into the kernel's four int16 accumulators (layout.h), then put in row order as fold_pair does
// (codes are < 256, so zero-extension is sign-extension). About 8b + 30 vector operations per
// unit and special activation, where the scalar path took ~15 b per weight.
FRUGALNN_AVX2 inline void add_special_units(const uint8_t* packed, const float* ws, const float* zt, bool has_zero,
                                            const Shape& s, const float* x, const int64_t* ks, int64_t n_ks,
                                            int64_t u0, int64_t u1, float* y) {
  const int bits = s.bits;
  const int64_t groups = s.groups();
  const __m128i one = _mm_set1_epi8(1);
  __m128i wpair[kMaxBits / 2];  // u8 plane weights of pair p: even bytes 2^(2p), odd bytes 2^(2p+1)
  for (int p = 0; p < bits / 2; ++p)
    wpair[p] = _mm_set1_epi16(static_cast<int16_t>((1 << (2 * p)) | ((1 << (2 * p + 1)) << 8)));
  const int single = bits - 1;  // odd bits: the single slab's plane, at most 6
  const __m128i w_even = _mm_set1_epi16(static_cast<int16_t>((1 << single) & 0xFF));
  const __m128i w_odd = _mm_set1_epi16(static_cast<int16_t>(((1 << single) & 0xFF) << 8));
  const __m256i low16 = _mm256_set1_epi32(0xFFFF);
  const __m256 top = _mm256_set1_ps(static_cast<float>((1 << bits) - 1));
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t row0 = u * kUnitRows;
    const int rows = static_cast<int>(s.m - row0 < kUnitRows ? s.m - row0 : kUnitRows);
    alignas(32) float part[kUnitRows] = {0};  // a last unit's rows past M are never read or written
    float* yu = rows == kUnitRows ? y + row0 : part;
    if (rows < kUnitRows) std::memcpy(part, y + row0, static_cast<size_t>(rows) * sizeof(float));
    __m256 yv[4];
    for (int a = 0; a < 4; ++a) yv[a] = _mm256_loadu_ps(yu + 8 * a);
    for (int64_t n = 0; n < n_ks; ++n) {
      const int64_t k = ks[n], g = k / s.group, c = (k % s.group) / 4;
      const int t = static_cast<int>(k % 4);
      const uint8_t* step = packed + u * s.unit_bytes() + g * s.group_bytes() + (c / 2) * s.step_bytes() + (c % 2) * 16;
      const __m128i sh_lo = _mm_cvtsi32_si128(t), sh_hi = _mm_cvtsi32_si128(t + 4);
      __m128i acc[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
      for (int p = 0; p < bits / 2; ++p)
        for (int r = 0; r < 2; ++r) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(step + (2 * p + r) * kSlabBytes));
          const __m128i lo = _mm_and_si128(_mm_srl_epi16(v, sh_lo), one), hi = _mm_and_si128(_mm_srl_epi16(v, sh_hi), one);
          acc[2 * r] = _mm_add_epi16(acc[2 * r], _mm_maddubs_epi16(wpair[p], lo));
          acc[2 * r + 1] = _mm_add_epi16(acc[2 * r + 1], _mm_maddubs_epi16(wpair[p], hi));
        }
      if (bits % 2) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(step + (bits - 1) * kSlabBytes));
        const __m128i lo = _mm_and_si128(_mm_srl_epi16(v, sh_lo), one), hi = _mm_and_si128(_mm_srl_epi16(v, sh_hi), one);
        acc[0] = _mm_add_epi16(acc[0], _mm_maddubs_epi16(w_even, lo));
        acc[1] = _mm_add_epi16(acc[1], _mm_maddubs_epi16(w_odd, lo));
        acc[2] = _mm_add_epi16(acc[2], _mm_maddubs_epi16(w_even, hi));
        acc[3] = _mm_add_epi16(acc[3], _mm_maddubs_epi16(w_odd, hi));
      }
      const __m256i s01 = _mm256_set_m128i(acc[1], acc[0]), s23 = _mm256_set_m128i(acc[3], acc[2]);
      const __m256i q[4] = {_mm256_and_si256(s01, low16), _mm256_srli_epi32(s01, 16), _mm256_and_si256(s23, low16),
                            _mm256_srli_epi32(s23, 16)};  // rows 0-7, 8-15, 16-23, 24-31
      const __m256 xv = _mm256_set1_ps(x[k]);
      const float* wsg = ws + (u * groups + g) * kUnitRows;
      const float* ztg = zt + (u * groups + g) * kUnitRows;
      for (int a = 0; a < 4; ++a) {
        const __m256 qf = _mm256_cvtepi32_ps(q[a]);
        const __m256 level = _mm256_sub_ps(_mm256_mul_ps(_mm256_set1_ps(2.0f), qf), top);
        __m256 wv = _mm256_mul_ps(level, _mm256_loadu_ps(wsg + 8 * a));
        if (has_zero) wv = _mm256_add_ps(wv, _mm256_loadu_ps(ztg + 8 * a));
        yv[a] = _mm256_add_ps(yv[a], _mm256_mul_ps(wv, xv));
      }
    }
    for (int a = 0; a < 4; ++a) _mm256_storeu_ps(yu + 8 * a, yv[a]);
    if (rows < kUnitRows) std::memcpy(y + row0, part, static_cast<size_t>(rows) * sizeof(float));
  }
}

// 16 sub-scale bytes of rows 16q..16q+15 -> vpmaddwd multipliers: lo = row 16q+i's scale in int16 lane 2i
// (lane 2i+1 zero), hi = row 16q+8+i's in lane 2i+1 (the row order fold_pair leaves in int16 lane sums).
FRUGALNN_AVX2 inline void kq_multipliers(__m128i bytes, bool is_signed, __m256i* lo, __m256i* hi) {
  const __m128i pairs = _mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15);
  const __m128i b = _mm_shuffle_epi8(bytes, pairs);
  const __m256i w = is_signed ? _mm256_cvtepi8_epi16(b) : _mm256_cvtepu8_epi16(b);
  *lo = _mm256_and_si256(w, _mm256_set1_epi32(0x0000FFFF));
  *hi = _mm256_and_si256(w, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
}

// Whether a sub-block of `steps` steps at `bits` needs the split int16 sets: one step adds at most
// 2 (2^b - 1) 127 to an int16 lane (both chunk lanes, as the fold sums them).
inline bool kq_needs_split(int bits, int64_t steps) { return 2 * steps * ((int64_t{1} << bits) - 1) * 127 > 32767; }

// Sub-blocks folded at once: one, except without sub-scales (kScaleOne: TQ2_0's 256 as 4 x 64), where a run of
// sub-blocks is one sub-block of sc = 1 as long as its int16 sums still fit (kq_needs_split; isub, 2 * steps * 127,
// an int16 too). Fewer folds; the same integers.
inline int64_t kq_merge(int bits, const KQuant& kq, const Shape& s) {
  int64_t merge = 1;
  if (kq.format == kScaleOne)
    while (kq.nsub(s) % (2 * merge) == 0 && !kq_needs_split(bits, kq.sub / 8 * 2 * merge) &&
           2 * (kq.sub / 8 * 2 * merge) * 127 <= 32767)
      merge *= 2;
  return merge;
}

// Two-level (K-quant) weights (layout.h): one unit, NC columns. Per sub-block (sub/8 steps, at
// most 8 even above 4 bits, see SPLIT) the int16 plane sums fold to int32 rows, take the sub-scale
// (vpmulld) and the zero term in int32; once per super-block the int32 sums become float, in the
// order serial.h gemv_kq_units documents.
template <int BITS, int NC, bool SPLIT>
FRUGALNN_AVX2 void kernel_kq(const Block& b, const KQuant& kq, const Shape& s, int64_t u) {
  constexpr int PAIRS = BITS / 2;
  constexpr bool ODD = BITS % 2;
  // SPLIT (planes 4.. in a second int16 set) only where one sub-block could overflow int16 otherwise:
  // kq_needs_split. Q5_K (4 steps) and Q6_K (2 steps) fit: 2 * steps * (2^b - 1) * 127 <= 32767.
  const int64_t groups = s.groups(), spg = s.steps_per_group(), gbytes = s.group_bytes();
  const int64_t merge = kq_merge(BITS, kq, s), nsub = kq.nsub(s) / merge, sps = kq.sub / 8 * merge;
  const int32_t cz = ((1 << BITS) - 1) - 2 * kq.zero;
  const __m256i nib = _mm256_set1_epi8(0x0f);
  constexpr int ODD_SHIFT = SPLIT ? BITS - 5 : BITS - 1;
  const __m256i w_even = _mm256_set1_epi16(static_cast<int16_t>(1 << ODD_SHIFT));
  const __m256i w_odd = _mm256_set1_epi16(static_cast<int16_t>((1 << ODD_SHIFT) << 8));
  __m256 yacc[NC][4];
  for (int c = 0; c < NC; ++c)
    for (int a = 0; a < 4; ++a) yacc[c][a] = _mm256_setzero_ps();
  const uint8_t* unit = b.packed + u * s.unit_bytes();
  for (int64_t g = 0; g < groups; ++g) {
    __m256i S[NC][4], Mn[NC][4], Z[NC][4];
    for (int c = 0; c < NC; ++c)
      for (int a = 0; a < 4; ++a) S[c][a] = Mn[c][a] = Z[c][a] = _mm256_setzero_si256();
    for (int64_t sb = 0; sb < nsub; ++sb) {
      __m256i acc[NC][4], acch[NC][4];
      int32_t isub[NC];
      for (int c = 0; c < NC; ++c) {
        isub[c] = 0;
        for (int a = 0; a < 4; ++a) acc[c][a] = acch[c][a] = _mm256_setzero_si256();
      }
      for (int64_t st = sb * sps; st < (sb + 1) * sps; ++st) {
        __m256i tv[NC];
        for (int c = 0; c < NC; ++c) {
          const int8_t* t = b.tables[c] + (g * spg + st) * kSlabBytes;
          tv[c] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t));
          isub[c] += t[15] + t[31];
        }
        const uint8_t* w = unit + g * gbytes + st * (BITS * kSlabBytes);
        if (b.prefetch) _mm_prefetch(reinterpret_cast<const char*>(w + b.prefetch), _MM_HINT_T0);
        for (int p = 0; p < PAIRS; ++p) {
          const bool high = SPLIT && p >= 2;
          const int e = high ? 2 * p - 4 : 2 * p;
          const __m256i wp = _mm256_set1_epi16(static_cast<int16_t>((1 << e) | ((1 << (e + 1)) << 8)));
          for (int half = 0; half < 2; ++half) {
            __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (2 * p + half) * kSlabBytes));
            __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
            for (int c = 0; c < NC; ++c) {
              __m256i* dst = high ? acch[c] : acc[c];
              dst[2 * half] = _mm256_add_epi16(dst[2 * half], _mm256_maddubs_epi16(wp, _mm256_shuffle_epi8(tv[c], lo)));
              dst[2 * half + 1] =
                  _mm256_add_epi16(dst[2 * half + 1], _mm256_maddubs_epi16(wp, _mm256_shuffle_epi8(tv[c], hi)));
            }
          }
        }
        if (ODD) {
          __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (BITS - 1) * kSlabBytes));
          __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
          for (int c = 0; c < NC; ++c) {
            __m256i l = _mm256_shuffle_epi8(tv[c], lo), h = _mm256_shuffle_epi8(tv[c], hi);
            __m256i* dst = SPLIT ? acch[c] : acc[c];
            dst[0] = _mm256_add_epi16(dst[0], _mm256_maddubs_epi16(w_even, l));
            dst[1] = _mm256_add_epi16(dst[1], _mm256_maddubs_epi16(w_odd, l));
            dst[2] = _mm256_add_epi16(dst[2], _mm256_maddubs_epi16(w_even, h));
            dst[3] = _mm256_add_epi16(dst[3], _mm256_maddubs_epi16(w_odd, h));
          }
        }
      }
      // Sub-scales as int16 multipliers for vpmaddwd: per 16 rows (q), W_lo holds row 16q+i's scale in int16
      // lane 2i (0 in 2i+1), W_hi row 16q+8+i's in lane 2i+1 -- where fold_pair's int16 lane sums keep those
      // rows. vpmaddwd then sign-extends, scales and widens in one step (products exact in int32).
      const int64_t base = ((u * groups + g) * nsub + sb) * kUnitRows;
      __m256i wlo[2], whi[2], mlo[2], mhi[2];
      for (int q = 0; q < 2; ++q) {
        if (kq.format == kScaleOne) {
          wlo[q] = _mm256_set1_epi32(1);
          whi[q] = _mm256_set1_epi32(1 << 16);
          mlo[q] = kq.has_min ? wlo[q] : _mm256_setzero_si256();
          mhi[q] = kq.has_min ? whi[q] : _mm256_setzero_si256();
          continue;
        }
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kq.sc + base + 16 * q));
        __m128i scb = raw, mnb = _mm_setzero_si128();
        if (kq.format == kScaleNib) {
          scb = _mm_and_si128(raw, _mm_set1_epi8(15));
          mnb = _mm_and_si128(_mm_srli_epi16(raw, 4), _mm_set1_epi8(15));
        } else if (kq.format == kScaleU8 && kq.has_min) {
          mnb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kq.mn + base + 16 * q));
        }
        kq_multipliers(scb, kq.format == kScaleI8, &wlo[q], &whi[q]);
        kq_multipliers(mnb, false, &mlo[q], &mhi[q]);
      }
      for (int c = 0; c < NC; ++c) {
        const __m256i iv = _mm256_set1_epi16(static_cast<int16_t>(isub[c]));  // |isub| <= 2 * sps * 127 < 2^15
        for (int q = 0; q < 2; ++q) {
          const __m256i* lo = acc[c] + 2 * q;
          __m256i sum = _mm256_add_epi16(_mm256_permute2x128_si256(lo[0], lo[1], 0x20),
                                         _mm256_permute2x128_si256(lo[0], lo[1], 0x31));
          __m256i r0 = _mm256_madd_epi16(sum, wlo[q]), r1 = _mm256_madd_epi16(sum, whi[q]);
          if (SPLIT) {
            const __m256i* hi = acch[c] + 2 * q;
            __m256i sh = _mm256_add_epi16(_mm256_permute2x128_si256(hi[0], hi[1], 0x20),
                                          _mm256_permute2x128_si256(hi[0], hi[1], 0x31));
            r0 = _mm256_add_epi32(r0, _mm256_slli_epi32(_mm256_madd_epi16(sh, wlo[q]), 4));
            r1 = _mm256_add_epi32(r1, _mm256_slli_epi32(_mm256_madd_epi16(sh, whi[q]), 4));
          }
          S[c][2 * q] = _mm256_add_epi32(S[c][2 * q], r0);
          S[c][2 * q + 1] = _mm256_add_epi32(S[c][2 * q + 1], r1);
          Z[c][2 * q] = _mm256_add_epi32(Z[c][2 * q], _mm256_madd_epi16(iv, wlo[q]));
          Z[c][2 * q + 1] = _mm256_add_epi32(Z[c][2 * q + 1], _mm256_madd_epi16(iv, whi[q]));
          if (kq.has_min) {
            Mn[c][2 * q] = _mm256_add_epi32(Mn[c][2 * q], _mm256_madd_epi16(iv, mlo[q]));
            Mn[c][2 * q + 1] = _mm256_add_epi32(Mn[c][2 * q + 1], _mm256_madd_epi16(iv, mhi[q]));
          }
        }
      }
    }
    // S += (top - 2 z0) * sum_s sc_s isum_s: the zero term of every sub-block at once (exact integers)
    const __m256i vcz = _mm256_set1_epi32(cz);
    for (int c = 0; c < NC; ++c)
      for (int a = 0; a < 4; ++a) S[c][a] = _mm256_add_epi32(S[c][a], _mm256_mullo_epi32(Z[c][a], vcz));
    const int64_t dbase = (u * groups + g) * kUnitRows;
    for (int a = 0; a < 4; ++a) {
      const __m256 dh = _mm256_mul_ps(
          _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kq.d + dbase + 8 * a))), _mm256_set1_ps(0.5f));
      __m256 dm = _mm256_setzero_ps();
      if (kq.has_min) dm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kq.dmin + dbase + 8 * a)));
      for (int c = 0; c < NC; ++c) {
        const __m256 vts = _mm256_set1_ps(b.ts[c][g]);
        __m256 y = _mm256_add_ps(yacc[c][a], _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(S[c][a]), dh), vts));
        if (kq.has_min) y = _mm256_sub_ps(y, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(Mn[c][a]), dm), vts));
        yacc[c][a] = y;
      }
    }
  }
  const int64_t row0 = u * kUnitRows;
  const int64_t rows = s.m - row0 < kUnitRows ? s.m - row0 : kUnitRows;
  for (int c = 0; c < NC; ++c) {
    alignas(32) float out[kUnitRows];
    for (int a = 0; a < 4; ++a) _mm256_store_ps(out + 8 * a, yacc[c][a]);
    std::memcpy(b.y[c] + row0, out, static_cast<size_t>(rows) * sizeof(float));
  }
}

}  // namespace avx2
}  // namespace lut
}  // namespace frugalnn
#endif  // FRUGALNN_X86
