// MixPE group GEMM, AVX2: vpmaddubsw (uint4 weights x int8 activations -> int16 pairs) summed in
// int16 over the group's blocks (at most 4 blocks: 4 * 2 * 15 * 128 = 15360 < 32767, no
// saturation), one vpmaddwd per group to int32, a horizontal reduction of the strip's 4 rows into
// one xmm, the zero correction in int32 and one fp32 FMA per group and output. The operation order
// per output is serial.h's, so W4A8 matches the serial backend bit for bit. W4A16 widens the
// nibbles to float and sums each group in 8 float lanes (the serial backend sums in k order: the
// two agree within float rounding).
//
// Role: avx2 (micro-kernels over one strip of kRows rows and MR tokens; activation quantization).
// Checked against: serial.h and frugalnn/kernels/mixpe_ref.py on odd shapes, every group size
// (tests/kernels/test_mixpe_kernel.py under the avx2 backend).
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

// 16 packed bytes -> 32 uint8 weights in k order (low nibbles, then high nibbles).
FRUGALNN_AVX2 inline __m256i expand(const uint8_t* p, __m256i mask) {
  const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), mask);
}

// Four int32 x 8 vectors -> their four sums (lane r = sum of v_r).
FRUGALNN_AVX2 inline __m128i hsum4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

FRUGALNN_AVX2 inline __m128 hsum4(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(v0, v1), _mm256_hadd_ps(v2, v3));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

// One strip (kRows rows) x MR tokens over all of K; writes the pre-scale accumulators
// tile[i * kRows + r] (the driver multiplies by sa and adds the bias, as serial.h does).
template <int MR>
FRUGALNN_AVX2 void w4a8_strip(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                              const int8_t* const* a, const int32_t* const* asum, float* tile) {
  const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  const int64_t bpg = S.group / kBlock;
  __m128 facc[MR];
  for (int i = 0; i < MR; ++i) facc[i] = _mm_setzero_ps();
  for (int64_t g = 0; g < S.groups; ++g) {
    __m256i acc[MR][kRows];
    for (int i = 0; i < MR; ++i)
      for (int r = 0; r < kRows; ++r) acc[i][r] = _mm256_setzero_si256();
    for (int64_t bb = 0; bb < bpg; ++bb) {
      const int64_t b = g * bpg + bb;
      const uint8_t* wb = wp + b * kRows * kBlockBytes;
      for (int r = 0; r < kRows; ++r) {
        const __m256i w = expand(wb + r * kBlockBytes, mask);
        for (int i = 0; i < MR; ++i) {
          const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i] + b * kBlock));
          acc[i][r] = _mm256_add_epi16(acc[i][r], _mm256_maddubs_epi16(w, x));
        }
      }
    }
    const __m128 s = _mm_loadu_ps(sp + g * kRows);
    uint32_t z4;
    __builtin_memcpy(&z4, zp + g * kRows, 4);
    const __m128i z = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(z4)));
    for (int i = 0; i < MR; ++i) {
      __m128i d = hsum4(_mm256_madd_epi16(acc[i][0], ones), _mm256_madd_epi16(acc[i][1], ones),
                        _mm256_madd_epi16(acc[i][2], ones), _mm256_madd_epi16(acc[i][3], ones));
      d = _mm_sub_epi32(d, _mm_mullo_epi32(z, _mm_set1_epi32(asum[i][g])));
      facc[i] = _mm_fmadd_ps(s, _mm_cvtepi32_ps(d), facc[i]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm_storeu_ps(tile + i * kRows, facc[i]);
}

// W4A16 over one strip x one token: weights widened to float, 8-lane FMAs per row, group sums
// reduced per group, then acc = fma(s, dot - z * afsum, acc). kEach: the conventional kernel MixPE
// removes, for comparison: every weight dequantized, w = (q - z) * s, before its FMA; one sum over K.
template <bool kEach>
FRUGALNN_AVX2 void w4a16_strip(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                               const float* a, const float* afsum, float* tile) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const int64_t bpg = S.group / kBlock;
  __m128 facc = _mm_setzero_ps();
  __m256 each[kRows];
  for (int r = 0; r < kRows; ++r) each[r] = _mm256_setzero_ps();
  for (int64_t g = 0; g < S.groups; ++g) {
    __m256 acc[kRows], sv[kRows], zv[kRows];
    for (int r = 0; r < kRows; ++r) {
      acc[r] = _mm256_setzero_ps();
      if (kEach) {
        sv[r] = _mm256_set1_ps(sp[g * kRows + r]);
        zv[r] = _mm256_set1_ps(static_cast<float>(zp[g * kRows + r]));
      }
    }
    for (int64_t bb = 0; bb < bpg; ++bb) {
      const int64_t b = g * bpg + bb;
      const float* ab = a + b * kBlock;
      const __m256 x[4] = {_mm256_loadu_ps(ab), _mm256_loadu_ps(ab + 8), _mm256_loadu_ps(ab + 16),
                           _mm256_loadu_ps(ab + 24)};
      const uint8_t* wb = wp + b * kRows * kBlockBytes;
      for (int r = 0; r < kRows; ++r) {
        const __m256i w = expand(wb + r * kBlockBytes, mask);
        const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
        const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
        for (int j = 0; j < 4; ++j) {
          __m256 wf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[j]));
          if (kEach) {
            wf = _mm256_mul_ps(_mm256_sub_ps(wf, zv[r]), sv[r]);
            each[r] = _mm256_fmadd_ps(wf, x[j], each[r]);
          } else {
            acc[r] = _mm256_fmadd_ps(wf, x[j], acc[r]);
          }
        }
      }
    }
    if (kEach) continue;
    const __m128 dot = hsum4(acc[0], acc[1], acc[2], acc[3]);
    uint32_t z4;
    __builtin_memcpy(&z4, zp + g * kRows, 4);
    const __m128 z = _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(static_cast<int>(z4))));
    const __m128 d = _mm_sub_ps(dot, _mm_mul_ps(z, _mm_set1_ps(afsum[g])));
    facc = _mm_fmadd_ps(_mm_loadu_ps(sp + g * kRows), d, facc);
  }
  if (kEach) facc = hsum4(each[0], each[1], each[2], each[3]);
  _mm_storeu_ps(tile, facc);
}

}  // namespace avx2
}  // namespace mixpe
}  // namespace frugalnn
#endif
