// DFP16 GEMM, AVX2: the micro-kernel and epilogue for driver.h. Same bits as serial.h: integer
// sums are exact modulo 2^32 in any order, and the float adds happen in the same order per output.
//
// Micro-kernel (MR x 16 outputs, one pair of K per step): per step two loads of B (16 columns x
// 2 k) and MR broadcasts of an A pair; vpmaddwd forms A[i,k] B[k,j] + A[i,k+1] B[k+1,j] in each
// int32 lane (16 MACs per instruction, twice an 8-lane fp32 FMA) and vpaddd accumulates. At the
// end of a chunk the int32 sums are converted (vcvtdq2ps, round to nearest even like the serial
// static_cast) and added to the float tile.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/dfp/avx2.h
#pragma once

#include "common/cpu.h"
#include "dfp/driver.h"
#include "dfp/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace dfp {
namespace avx2 {

// One chunk of MR rows in inline assembly: GCC 12 spills the 12 accumulators of this kernel to
// the stack whatever the intrinsic formulation (it hoists the six broadcasts and runs out of
// the 16 ymm registers), which halves its speed. Registers: ymm0..11 hold the int32 sums
// (row r in ymm(2r), ymm(2r+1)), ymm12/13 the B pair-rows, ymm14 the A broadcast then a product, ymm15 a product.
#define FRUGALNN_DFP_ZERO(c0, c1) "vpxor %%xmm" #c0 ", %%xmm" #c0 ", %%xmm" #c0 "\n\t" \
                                   "vpxor %%xmm" #c1 ", %%xmm" #c1 ", %%xmm" #c1 "\n\t"
// (the second product overwrites the broadcast, so both products are in flight before the adds:
// about 5% faster than product-add, product-add on Zen 4)
#define FRUGALNN_DFP_ROW(off, c0, c1)                  \
  "vpbroadcastd " #off "(%[a]), %%ymm14\n\t"           \
  "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"             \
  "vpmaddwd %%ymm13, %%ymm14, %%ymm14\n\t"             \
  "vpaddd %%ymm15, %%ymm" #c0 ", %%ymm" #c0 "\n\t"     \
  "vpaddd %%ymm14, %%ymm" #c1 ", %%ymm" #c1 "\n\t"
#define FRUGALNN_DFP_OUT(off, c0, c1)                                          \
  "vcvtdq2ps %%ymm" #c0 ", %%ymm" #c0 "\n\t"                                   \
  "vaddps " #off "(%[t]), %%ymm" #c0 ", %%ymm" #c0 "\n\t"                      \
  "vmovaps %%ymm" #c0 ", " #off "(%[t])\n\t"                                   \
  "vcvtdq2ps %%ymm" #c1 ", %%ymm" #c1 "\n\t"                                   \
  "vaddps 32+" #off "(%[t]), %%ymm" #c1 ", %%ymm" #c1 "\n\t"                   \
  "vmovaps %%ymm" #c1 ", 32+" #off "(%[t])\n\t"
#define FRUGALNN_DFP_CHUNK(ZEROS, ROWS, OUTS)                                     \
  asm volatile(ZEROS                                                              \
               "test %[n], %[n]\n\t"                                              \
               "jz 2f\n\t"                                                        \
               ".p2align 5\n"                                                     \
               "1:\n\t"                                                           \
               "vmovdqu (%[b]), %%ymm12\n\t"                                      \
               "vmovdqu 32(%[b]), %%ymm13\n\t" ROWS                               \
               "add $24, %[a]\n\t"                                                \
               "add $64, %[b]\n\t"                                                \
               "dec %[n]\n\t"                                                     \
               "jnz 1b\n"                                                         \
               "2:\n\t" OUTS                                                      \
               : [a] "+r"(a), [b] "+r"(b), [n] "+r"(n)                            \
               : [t] "r"(tile)                                                    \
               : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
                 "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")

static_assert(kMR == 6 && kNR == 16, "the assembly below hard-codes 6 x 16 tiles (A stride 24 bytes, B 64)");

template <int MR>
FRUGALNN_AVX2 void chunk(const uint32_t*& a, const uint32_t*& b, int64_t n, float* tile) {
#define Z0 FRUGALNN_DFP_ZERO(0, 1)
#define Z1 Z0 FRUGALNN_DFP_ZERO(2, 3)
#define Z2 Z1 FRUGALNN_DFP_ZERO(4, 5)
#define Z3 Z2 FRUGALNN_DFP_ZERO(6, 7)
#define Z4 Z3 FRUGALNN_DFP_ZERO(8, 9)
#define Z5 Z4 FRUGALNN_DFP_ZERO(10, 11)
#define R0 FRUGALNN_DFP_ROW(0, 0, 1)
#define R1 R0 FRUGALNN_DFP_ROW(4, 2, 3)
#define R2 R1 FRUGALNN_DFP_ROW(8, 4, 5)
#define R3 R2 FRUGALNN_DFP_ROW(12, 6, 7)
#define R4 R3 FRUGALNN_DFP_ROW(16, 8, 9)
#define R5 R4 FRUGALNN_DFP_ROW(20, 10, 11)
#define O0 FRUGALNN_DFP_OUT(0, 0, 1)
#define O1 O0 FRUGALNN_DFP_OUT(64, 2, 3)
#define O2 O1 FRUGALNN_DFP_OUT(128, 4, 5)
#define O3 O2 FRUGALNN_DFP_OUT(192, 6, 7)
#define O4 O3 FRUGALNN_DFP_OUT(256, 8, 9)
#define O5 O4 FRUGALNN_DFP_OUT(320, 10, 11)
  if constexpr (MR == 1) FRUGALNN_DFP_CHUNK(Z0, R0, O0);
  if constexpr (MR == 2) FRUGALNN_DFP_CHUNK(Z1, R1, O1);
  if constexpr (MR == 3) FRUGALNN_DFP_CHUNK(Z2, R2, O2);
  if constexpr (MR == 4) FRUGALNN_DFP_CHUNK(Z3, R3, O3);
  if constexpr (MR == 5) FRUGALNN_DFP_CHUNK(Z4, R4, O4);
  if constexpr (MR == 6) FRUGALNN_DFP_CHUNK(Z5, R5, O5);
#undef Z0
#undef Z1
#undef Z2
#undef Z3
#undef Z4
#undef Z5
#undef R0
#undef R1
#undef R2
#undef R3
#undef R4
#undef R5
#undef O0
#undef O1
#undef O2
#undef O3
#undef O4
#undef O5
}

// The tile (MR x 16 floats, 32-byte aligned) gets float(chunk sum) added, chunk after chunk.
template <int MR>
FRUGALNN_AVX2 void kernel(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                          int64_t last_pairs, float* tile) {
  for (int64_t q = 0; q < n_chunks; ++q) chunk<MR>(a, b, q + 1 == n_chunks ? last_pairs : chunk_pairs, tile);
}

#undef FRUGALNN_DFP_ZERO
#undef FRUGALNN_DFP_ROW
#undef FRUGALNN_DFP_OUT
#undef FRUGALNN_DFP_CHUNK

struct Ops {
  static KernelFn kernel(int mr) {
    switch (mr) {
      case 1: return &avx2::kernel<1>;
      case 2: return &avx2::kernel<2>;
      case 3: return &avx2::kernel<3>;
      case 4: return &avx2::kernel<4>;
      case 5: return &avx2::kernel<5>;
      default: return &avx2::kernel<6>;
    }
  }

  // dst[r][c] = (tile[r][c] * p1) * p2 (+ bias[c]) for the valid mr x cols corner.
  FRUGALNN_AVX2 static void finish(const float* tile, int mr, int64_t cols, const Scale& sc, const float* bias,
                                   float* dst, int64_t ldc) {
    const __m256 p1 = _mm256_set1_ps(sc.p1), p2 = _mm256_set1_ps(sc.p2);
    alignas(32) float bias_pad[kNR] = {};
    if (bias) std::memcpy(bias_pad, bias, static_cast<size_t>(cols) * sizeof(float));
    alignas(32) float out[kNR];
    for (int r = 0; r < mr; ++r) {
      for (int h = 0; h < kNR; h += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_load_ps(tile + r * kNR + h), p1), p2);
        if (bias) v = _mm256_add_ps(v, _mm256_load_ps(bias_pad + h));
        if (cols == kNR) {
          _mm256_storeu_ps(dst + r * ldc + h, v);
        } else {
          _mm256_store_ps(out + h, v);
        }
      }
      if (cols < kNR) std::memcpy(dst + r * ldc, out, static_cast<size_t>(cols) * sizeof(float));
    }
  }
};

// max |x| over n int16 values (|-32768| = 32768): vpabsw leaves 0x8000 for -32768, which is
// 32768 read unsigned, so an unsigned max gives the exact answer.
FRUGALNN_AVX2 inline uint32_t max_abs(const int16_t* x, int64_t n) {
  __m256i m = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    m = _mm256_max_epu16(m, _mm256_abs_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
  alignas(32) uint16_t lanes[16];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  uint32_t r = serial::max_abs(x + i, n - i);
  for (uint16_t v : lanes) r = v > r ? v : r;
  return r;
}

// serial::max_abs_bits on 8 lanes: the sign-cleared bit patterns of finite floats order like
// their magnitudes, and inf/NaN patterns lie above every finite one.
FRUGALNN_AVX2 inline uint32_t max_abs_bits(const float* x, int64_t n) {
  const __m256i abs = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i m = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)), abs));
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  uint32_t r = serial::max_abs_bits(x + i, n - i);
  for (uint32_t v : lanes) r = v > r ? v : r;
  return r;
}

// serial::quantize for int16 mantissas: vcvtps2dq rounds to nearest even (MXCSR default), like
// nearbyint; the clip happens in int32 before the saturating pack (which would allow -32768).
FRUGALNN_AVX2 inline void quantize16(const float* x, int64_t n, int32_t e, int bits, int16_t* m) {
  const Scale sc = make_scale(-static_cast<int64_t>(e));
  const __m256 p1 = _mm256_set1_ps(sc.p1), p2 = _mm256_set1_ps(sc.p2);
  const __m256i top = _mm256_set1_epi32((1 << (bits - 1)) - 1), bottom = _mm256_set1_epi32(-((1 << (bits - 1)) - 1));
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i lo = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), p1), p2));
    __m256i hi = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), p1), p2));
    lo = _mm256_min_epi32(_mm256_max_epi32(lo, bottom), top);
    hi = _mm256_min_epi32(_mm256_max_epi32(hi, bottom), top);
    // packs works per 128-bit lane: [lo0-3 hi0-3 | lo4-7 hi4-7]; the permute restores element order
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(m + i), packed);
  }
  serial::quantize(x + i, n - i, e, bits, m + i);
}

}  // namespace avx2
}  // namespace dfp
}  // namespace frugalnn

#endif  // FRUGALNN_X86
