// DFP16 GEMM, AVX2: the micro-kernel and epilogue for driver.h (packed layout: layout.h). Same bits as serial.h: integer
// sums are exact modulo 2^32 in any order, and the float adds happen in the same order per output.
//
// Micro-kernel (MR x 16 outputs, one pair of K per step): per step two loads of B (16 columns x
// 2 k) and MR broadcasts of an A pair; vpmaddwd forms A[i,k] B[k,j] + A[i,k+1] B[k+1,j] in each
// int32 lane (16 MACs per instruction, twice an 8-lane fp32 FMA) and vpaddd accumulates. At the
// end of a chunk the int32 sums are converted (vcvtdq2ps, round to nearest even like the serial
// static_cast) and added to the float tile.
//
// Role: avx2 (function-level target kernels: the micro-kernel, the epilogue, packing primitives,
// max |x|, quantize, the peak-rate probes). Checked against: frugalnn/kernels/dfp_ref.py bit for
// bit, as serial.h is (tests/kernels/test_dfp_kernel.py under the avx2 backend, outputs compared
// as uint32 bit patterns).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/dfp/avx2.h
#pragma once

#include "common/cpu.h"
#include "dfp/layout.h"
#include "dfp/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace dfp {
namespace avx2 {

// One chunk of MR rows in inline assembly: GCC 12 spills the 12 accumulators of this kernel to
// the stack whatever the intrinsic formulation (it hoists the six broadcasts and runs out of
// the 16 ymm registers), which halves its speed. Registers: ymm0..11 hold the int32 sums (row r
// in ymm(2r), ymm(2r+1)), ymm12/13 the B pair-rows, ymm14 the A broadcast then a product, ymm15 a
// product.
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
#define FRUGALNN_DFP_SET(off, c0, c1)                                          \
  "vcvtdq2ps %%ymm" #c0 ", %%ymm" #c0 "\n\t"                                   \
  "vmovaps %%ymm" #c0 ", " #off "(%[t])\n\t"                                   \
  "vcvtdq2ps %%ymm" #c1 ", %%ymm" #c1 "\n\t"                                   \
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

// FIRST: the tile is written (0 + x = x exactly), not read and added to.
template <int MR, bool FIRST>
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
#define S0 FRUGALNN_DFP_SET(0, 0, 1)
#define S1 S0 FRUGALNN_DFP_SET(64, 2, 3)
#define S2 S1 FRUGALNN_DFP_SET(128, 4, 5)
#define S3 S2 FRUGALNN_DFP_SET(192, 6, 7)
#define S4 S3 FRUGALNN_DFP_SET(256, 8, 9)
#define S5 S4 FRUGALNN_DFP_SET(320, 10, 11)
  if constexpr (MR == 1 && FIRST) FRUGALNN_DFP_CHUNK(Z0, R0, S0);
  if constexpr (MR == 1 && !FIRST) FRUGALNN_DFP_CHUNK(Z0, R0, O0);
  if constexpr (MR == 2 && FIRST) FRUGALNN_DFP_CHUNK(Z1, R1, S1);
  if constexpr (MR == 2 && !FIRST) FRUGALNN_DFP_CHUNK(Z1, R1, O1);
  if constexpr (MR == 3 && FIRST) FRUGALNN_DFP_CHUNK(Z2, R2, S2);
  if constexpr (MR == 3 && !FIRST) FRUGALNN_DFP_CHUNK(Z2, R2, O2);
  if constexpr (MR == 4 && FIRST) FRUGALNN_DFP_CHUNK(Z3, R3, S3);
  if constexpr (MR == 4 && !FIRST) FRUGALNN_DFP_CHUNK(Z3, R3, O3);
  if constexpr (MR == 5 && FIRST) FRUGALNN_DFP_CHUNK(Z4, R4, S4);
  if constexpr (MR == 5 && !FIRST) FRUGALNN_DFP_CHUNK(Z4, R4, O4);
  if constexpr (MR == 6 && FIRST) FRUGALNN_DFP_CHUNK(Z5, R5, S5);
  if constexpr (MR == 6 && !FIRST) FRUGALNN_DFP_CHUNK(Z5, R5, O5);
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
#undef S0
#undef S1
#undef S2
#undef S3
#undef S4
#undef S5
}

// The tile (MR x 16 floats, 32-byte aligned) gets float(chunk sum) added, chunk after chunk
// (written by the first chunk when `first`).
template <int MR>
FRUGALNN_AVX2 void kernel(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                          int64_t last_pairs, float* tile, bool first) {
  for (int64_t q = 0; q < n_chunks; ++q) {
    const int64_t pairs = q + 1 == n_chunks ? last_pairs : chunk_pairs;
    if (first && q == 0) {
      chunk<MR, true>(a, b, pairs, tile);
    } else {
      chunk<MR, false>(a, b, pairs, tile);
    }
  }
  // the compiler cannot see the ymm registers the assembly dirtied: clear their upper halves
  // before returning to baseline (SSE) code, which would otherwise pay transition penalties
  _mm256_zeroupper();
}

#undef FRUGALNN_DFP_ZERO
#undef FRUGALNN_DFP_ROW
#undef FRUGALNN_DFP_OUT
#undef FRUGALNN_DFP_SET
#undef FRUGALNN_DFP_CHUNK

// 8 x 8 transpose of 32-bit words: r[i] holds row i, out[j] gets column j.
FRUGALNN_AVX2 inline void transpose8x8(const __m256i r[8], __m256i out[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);      // per 128-bit lane: r_i[0] r_i+1[0] r_i[1] r_i+1[1]
    t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);  //                   r_i[2] r_i+1[2] r_i[3] r_i+1[3]
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);       // rows i..i+3 of word 0 (lane 1: word 4)
    u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);   // word 1 (5)
    u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);  // word 2 (6)
    u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);  // word 3 (7)
  }
  for (int j = 0; j < 4; ++j) {
    out[j] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x20);
    out[j + 4] = _mm256_permute2x128_si256(u[j], u[j + 4], 0x31);
  }
}

struct Ops {
  // dst[p * stride + r] = the int16 pair at src[r] + 2p (r < R, R = 6 or 16), 8 pairs at a time
  // as 8 x 8 word transposes; returns the pairs written (a multiple of 8, at most `pairs`).
  template <int R>
  FRUGALNN_AVX2 static int64_t gather_pairs(const int16_t* const* src, int64_t pairs, uint32_t* dst, int64_t stride) {
    static_assert(R == 6 || R == 16, "row groups of 6 (A tiles) or 16 (B^T strips)");
    int64_t p = 0;
    for (; p + 8 <= pairs; p += 8) {
      for (int g = 0; g < R; g += 8) {
        __m256i rows[8], cols[8];
        for (int i = 0; i < 8; ++i)
          rows[i] = g + i < R ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src[g + i] + 2 * p))
                              : _mm256_setzero_si256();
        transpose8x8(rows, cols);
        for (int j = 0; j < 8; ++j) {
          uint32_t* d = dst + (p + j) * stride + g;
          if (R == 16) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(d), cols[j]);
          } else {  // 6 words: 4 + 2, never past the pair's slots (tiles are packed concurrently)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm256_castsi256_si128(cols[j]));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(d + 4), _mm256_extracti128_si256(cols[j], 1));
          }
        }
      }
    }
    return p;
  }

  FRUGALNN_AVX2 static void fence() { _mm_sfence(); }

  // dst[c] = (lo[c], hi[c]) for c < 16 (hi null: zeros): vpunpck{l,h}wd interleave within each
  // 128-bit lane (columns 0-3 + 8-11, and 4-7 + 12-15), vperm2i128 restores the column order.
  FRUGALNN_AVX2 static void interleave16(const int16_t* lo, const int16_t* hi, uint32_t* dst) {
    const __m256i l = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo));
    const __m256i h = hi ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi)) : _mm256_setzero_si256();
    const __m256i a = _mm256_unpacklo_epi16(l, h), b = _mm256_unpackhi_epi16(l, h);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(a, b, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), _mm256_permute2x128_si256(a, b, 0x31));
  }

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

  // dst[r][c] = (tile[r][c] * p1) * p2 (+ bias[c]) for the valid mr x cols corner; full rows with
  // streaming stores when `stream` (the caller checked the alignment).
  FRUGALNN_AVX2 static void finish(const float* tile, int mr, int64_t cols, const Scale& sc, const float* bias,
                                   float* dst, int64_t ldc, bool stream) {
    const __m256 p1 = _mm256_set1_ps(sc.p1), p2 = _mm256_set1_ps(sc.p2);

    alignas(32) float bias_pad[kNR] = {};
    if (bias && cols < kNR) std::memcpy(bias_pad, bias, static_cast<size_t>(cols) * sizeof(float));
    const float* bias_row = cols == kNR ? bias : bias_pad;  // a full tile reads the bias in place
    alignas(32) float out[kNR];
    for (int r = 0; r < mr; ++r) {
      for (int h = 0; h < kNR; h += 8) {
        __m256 v = _mm256_mul_ps(_mm256_mul_ps(_mm256_load_ps(tile + r * kNR + h), p1), p2);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias_row + h));  // no bias: no add (it would turn -0 into +0)
        if (cols == kNR && stream) {
          _mm256_stream_ps(dst + r * ldc + h, v);
        } else if (cols == kNR) {
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

// Peak probes (one thread, registers only, no memory traffic): how many multiply-accumulates per
// second this core sustains with 8-lane fp32 FMAs, and with vpmaddwd + vpaddd as the GEMM's inner
// loop issues them. `frugalnn bench dfp` reports both sides' GEMM rates against these. Each
// iteration issues 12 independent instructions (latency hidden), repeated `iters` times.
FRUGALNN_AVX2 inline double probe_fma_macs(int64_t iters) {
  asm volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovaps %%ymm0, %%ymm1\n\t vmovaps %%ymm0, %%ymm2\n\t vmovaps %%ymm0, %%ymm3\n\t"
      "vmovaps %%ymm0, %%ymm4\n\t vmovaps %%ymm0, %%ymm5\n\t vmovaps %%ymm0, %%ymm6\n\t"
      "vmovaps %%ymm0, %%ymm7\n\t vmovaps %%ymm0, %%ymm8\n\t vmovaps %%ymm0, %%ymm9\n\t"
      "vmovaps %%ymm0, %%ymm10\n\t vmovaps %%ymm0, %%ymm11\n\t vmovaps %%ymm0, %%ymm14\n\t vmovaps %%ymm0, %%ymm15\n"
      "1:\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm8\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm9\n\t"
      "vfmadd231ps %%ymm14, %%ymm15, %%ymm10\n\t vfmadd231ps %%ymm14, %%ymm15, %%ymm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n"
      : [n] "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm14", "xmm15");
  return 12.0 * 8.0;  // MACs per iteration
}

FRUGALNN_AVX2 inline double probe_madd_macs(int64_t iters) {
  asm volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovdqa %%ymm0, %%ymm1\n\t vmovdqa %%ymm0, %%ymm2\n\t vmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\t vmovdqa %%ymm0, %%ymm5\n\t vmovdqa %%ymm0, %%ymm14\n\t vmovdqa %%ymm0, %%ymm15\n"
      "1:\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm6\n\t vpmaddwd %%ymm14, %%ymm15, %%ymm7\n\t"
      "vpaddd %%ymm6, %%ymm0, %%ymm0\n\t vpaddd %%ymm7, %%ymm1, %%ymm1\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n\t vpmaddwd %%ymm14, %%ymm15, %%ymm9\n\t"
      "vpaddd %%ymm8, %%ymm2, %%ymm2\n\t vpaddd %%ymm9, %%ymm3, %%ymm3\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n\t vpmaddwd %%ymm14, %%ymm15, %%ymm11\n\t"
      "vpaddd %%ymm10, %%ymm4, %%ymm4\n\t vpaddd %%ymm11, %%ymm5, %%ymm5\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm6\n\t vpmaddwd %%ymm14, %%ymm15, %%ymm7\n\t"
      "vpaddd %%ymm6, %%ymm0, %%ymm0\n\t vpaddd %%ymm7, %%ymm1, %%ymm1\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n\t vpmaddwd %%ymm14, %%ymm15, %%ymm9\n\t"
      "vpaddd %%ymm8, %%ymm2, %%ymm2\n\t vpaddd %%ymm9, %%ymm3, %%ymm3\n\t"
      "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n\t vpmaddwd %%ymm14, %%ymm15, %%ymm11\n\t"
      "vpaddd %%ymm10, %%ymm4, %%ymm4\n\t vpaddd %%ymm11, %%ymm5, %%ymm5\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n"
      : [n] "+r"(iters)
      :
      : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
        "xmm14", "xmm15");
  return 12.0 * 16.0;
}

}  // namespace avx2
}  // namespace dfp
}  // namespace frugalnn

#endif  // FRUGALNN_X86
