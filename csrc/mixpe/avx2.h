// MixPE group GEMM, AVX2, on layout.h's strips of 16 rows x quads of 4 k. Per quad and token:
// one broadcast of the token's 4 int8 activations, vpmaddubsw against the two vectors of 8 rows x
// 4 uint4 weights (int16 pair sums), added in int16 over a block of 8 quads (at most 30720: no
// saturation), then one vpmaddwd per block to int32 lanes = rows. Per group: the zero correction in
// int32 and one fp32 FMA per output. Lanes are rows, so nothing is ever summed horizontally, and
// the operation order per output is serial.h's: W4A8 matches the serial backend bit for bit.
// W4A16 widens each weight byte to float and sums each group in k order per lane: the same float
// order as serial.h as well (one FMA per product here, a multiply then an add there: within float
// rounding, not bit for bit).
//
// Role: avx2 (micro-kernels over one strip and 1..4 tokens). Checked against: serial.h and
// frugalnn/kernels/mixpe_ref.py on odd shapes, every group size (tests/kernels/test_mixpe_kernel.py
// under the avx2 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/mixpe/avx2.h
#pragma once

#include <cstdint>

#include "common/cpu.h"
#include "mixpe/layout.h"
#include "mixpe/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace mixpe {
namespace avx2 {

FRUGALNN_AVX2 inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Zeros of 8 rows as int32 lanes.
FRUGALNN_AVX2 inline __m256i zeros8(const uint8_t* z) {
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(z)));
}

// One strip x MR tokens over all of K: writes the pre-scale accumulators tile[i * kRows + r] (the
// driver multiplies by sa and adds the bias, as serial.h does).
template <int MR>
FRUGALNN_AVX2 void w4a8_strip(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                              const int8_t* const* a, const int32_t* const* asum, float* tile) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const int64_t blocks_per_group = S.group / kBlock;
  __m256 facc[MR][2];
  for (int i = 0; i < MR; ++i) facc[i][0] = facc[i][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < S.groups; ++g) {
    __m256i acc32[MR][2];
    for (int i = 0; i < MR; ++i) acc32[i][0] = acc32[i][1] = _mm256_setzero_si256();
    for (int64_t bb = 0; bb < blocks_per_group; ++bb) {
      const int64_t q0 = (g * blocks_per_group + bb) * (kBlock / kQuad);
      __m256i acc16[MR][2];
      for (int i = 0; i < MR; ++i) acc16[i][0] = acc16[i][1] = _mm256_setzero_si256();
      for (int64_t q = q0; q < q0 + kBlock / kQuad; ++q) {
        const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + q * kQuadBytes));
        const __m256i lo = _mm256_and_si256(p, mask), hi = _mm256_and_si256(_mm256_srli_epi16(p, 4), mask);
        for (int i = 0; i < MR; ++i) {
          const __m256i x = bcast4(a[i] + q * kQuad);
          acc16[i][0] = _mm256_add_epi16(acc16[i][0], _mm256_maddubs_epi16(lo, x));
          acc16[i][1] = _mm256_add_epi16(acc16[i][1], _mm256_maddubs_epi16(hi, x));
        }
      }
      for (int i = 0; i < MR; ++i)
        for (int h = 0; h < 2; ++h) acc32[i][h] = _mm256_add_epi32(acc32[i][h], _mm256_madd_epi16(acc16[i][h], ones));
    }
    for (int h = 0; h < 2; ++h) {
      const __m256 s = _mm256_loadu_ps(sp + g * kRows + 8 * h);
      const __m256i z = zeros8(zp + g * kRows + 8 * h);
      for (int i = 0; i < MR; ++i) {
        const __m256i d = _mm256_sub_epi32(acc32[i][h], _mm256_mullo_epi32(z, _mm256_set1_epi32(asum[i][g])));
        facc[i][h] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(d), facc[i][h]);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(tile + i * kRows + 8 * h, facc[i][h]);
}

// W4A16 over one strip x one token: each weight byte widened to float, acc = acc + q * a per lane
// (row) in k order, then per group acc = fma(s, dot - z * afsum, acc). kEach: the conventional
// kernel MixPE removes, for comparison: w = (q - z) * s per weight before its FMA, one sum over K.
template <bool kEach>
FRUGALNN_AVX2 void w4a16_strip(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                               const float* a, const float* afsum, float* tile) {
  const __m256i mask = _mm256_set1_epi8(0x0F), byte = _mm256_set1_epi32(0xFF);
  const int64_t quads_per_group = S.group / kQuad;
  __m256 facc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  for (int64_t g = 0; g < S.groups; ++g) {
    __m256 dot[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()}, sv[2], zv[2];
    for (int h = 0; h < 2; ++h) {
      sv[h] = _mm256_loadu_ps(sp + g * kRows + 8 * h);
      zv[h] = _mm256_cvtepi32_ps(zeros8(zp + g * kRows + 8 * h));
    }
    for (int64_t q = g * quads_per_group; q < (g + 1) * quads_per_group; ++q) {
      const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + q * kQuadBytes));
      const __m256i w[2] = {_mm256_and_si256(p, mask), _mm256_and_si256(_mm256_srli_epi16(p, 4), mask)};
      for (int j = 0; j < 4; ++j) {
        const __m256 x = _mm256_set1_ps(a[q * kQuad + j]);
        for (int h = 0; h < 2; ++h) {
          __m256 wf = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(w[h], 8 * j), byte));
          if (kEach) {
            wf = _mm256_mul_ps(_mm256_sub_ps(wf, zv[h]), sv[h]);
            facc[h] = _mm256_fmadd_ps(wf, x, facc[h]);
          } else {
            dot[h] = _mm256_fmadd_ps(wf, x, dot[h]);
          }
        }
      }
    }
    if (kEach) continue;
    const __m256 fs = _mm256_set1_ps(afsum[g]);
    for (int h = 0; h < 2; ++h) facc[h] = _mm256_fmadd_ps(sv[h], _mm256_sub_ps(dot[h], _mm256_mul_ps(zv[h], fs)), facc[h]);
  }
  _mm256_storeu_ps(tile, facc[0]);
  _mm256_storeu_ps(tile + 8, facc[1]);
}

}  // namespace avx2
}  // namespace mixpe
}  // namespace frugalnn
#endif
