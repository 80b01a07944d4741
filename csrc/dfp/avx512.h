// DFP16 GEMM, AVX-512: the micro-kernel for driver.h on layout.h's packed operands, whose B strips
// are 16 columns of int16 pairs = 64 bytes = exactly one zmm. Per pair of K: one load of B, MR
// broadcasts of an A pair and MR instructions:
//   VNNI:     vpdpwssd acc, bcast(A pair), B   (A[i,k] B[k,j] + A[i,k+1] B[k+1,j] + acc per lane)
//   AVX512BW: vpmaddwd then vpaddd (what avx2.h does on two ymm per row).
// Overflow: the AVX2 kernel's sums are modulo 2^32 (vpmaddwd wraps its one overflowing case,
// (-32768)^2 * 2 = 2^31, to -2^31; vpaddd wraps), and so are vpdpwssd's (the non-saturating form:
// each product is exact in int32 and the three-term sum is taken modulo 2^32), so every backend
// gives serial.h's documented int32 wrap-around, bit for bit. At the end of a chunk the int32 sums
// are converted (vcvtdq2ps, round to nearest even) and added to the float tile in chunk order:
// serial.h's float order per output. Packing, the epilogue (scale, bias) and the rest: avx2.h.
//
// Role: avx512 (function-level target kernels: one micro-kernel template over the MAC step, its VNNI
// and AVX512BW instances; VNNI only where cpu_supports_avx512_vnni(), chosen in driver.h). Checked against:
// frugalnn/kernels/dfp_ref.py bit for bit, outputs compared as uint32 bit patterns, VNNI on and off,
// int32 wrap-around included (tests/kernels/test_dfp_kernel.py, test_dfp_avx512.py under the avx512
// backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/dfp/avx512.h
#pragma once

#include "common/cpu.h"
#include "dfp/avx2.h"
#include "dfp/layout.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace dfp {
namespace avx512 {

static_assert(kNR == 16, "one B pair-row of a strip is one zmm of 16 int32 words");

// The float tile (MR x 16, 64-byte aligned rows) takes float(acc[r]) (written when `set`). The maskz
// conversion with a full mask is vcvtdq2ps as the unmasked form; that form's undefined pass-through
// trips GCC 12's -Wmaybe-uninitialized.
template <int MR>
FRUGALNN_AVX512 inline void add_sums(const __m512i* acc, float* tile, bool set) {
  for (int r = 0; r < MR; ++r) {
    const __m512 v = _mm512_maskz_cvtepi32_ps(0xFFFF, acc[r]);
    _mm512_storeu_ps(tile + r * kNR, set ? v : _mm512_add_ps(_mm512_loadu_ps(tile + r * kNR), v));
  }
}

// acc += (the int16 pair at p, broadcast) . (the pair-row b), lane by lane, modulo 2^32. The micro-kernel
// below takes one of these as its MAC step:
//   MacVnni: vpdpwssd with the broadcast folded into the instruction. Inline assembly: GCC 12 compiles
//            _mm512_dpwssd_epi32 here with a register copy per accumulator and step, which the asm form
//            avoids. The asm needs no VNNI target of its own; kernel_vnni (the only caller) carries it.
//   MacBw:   vpmaddwd then vpaddd (what avx2.h does on two ymm per row).
typedef uint32_t word_alias __attribute__((may_alias));
struct MacVnni {
  static FRUGALNN_AVX512 inline __m512i step(__m512i acc, __m512i b, const uint32_t* p) {
    asm("vpdpwssd %[a]%{1to16%}, %[b], %[acc]"
        : [acc] "+v"(acc)
        : [b] "v"(b), [a] "m"(*reinterpret_cast<const word_alias*>(p)));
    return acc;
  }
};
struct MacBw {
  static FRUGALNN_AVX512 inline __m512i step(__m512i acc, __m512i b, const uint32_t* p) {
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_set1_epi32(static_cast<int>(*p)), b));
  }
};

// The micro-kernel: per chunk, MR x 16 int32 sums from zero over its pairs (one B load, MR MAC steps per
// pair), then into the float tile. Always inlined into kernel_vnni / kernel_bw, which give it their target.
template <int MR, class Mac>
FRUGALNN_AVX512 inline __attribute__((always_inline)) void kernel_body(const uint32_t* a, const uint32_t* b,
                                                                       int64_t n_chunks, int64_t chunk_pairs,
                                                                       int64_t last_pairs, float* tile, bool first) {
  for (int64_t q = 0; q < n_chunks; ++q) {
    const int64_t pairs = q + 1 == n_chunks ? last_pairs : chunk_pairs;
    __m512i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_si512();
    for (int64_t p = 0; p < pairs; ++p, a += kMR, b += kNR) {
      const __m512i bv = _mm512_loadu_si512(b);
      for (int r = 0; r < MR; ++r) acc[r] = Mac::step(acc[r], bv, a + r);
    }
    add_sums<MR>(acc, tile, first && q == 0);
  }
}

template <int MR>
FRUGALNN_AVX512_VNNI void kernel_vnni(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                                      int64_t last_pairs, float* tile, bool first) {
  kernel_body<MR, MacVnni>(a, b, n_chunks, chunk_pairs, last_pairs, tile, first);
}

template <int MR>
FRUGALNN_AVX512 void kernel_bw(const uint32_t* a, const uint32_t* b, int64_t n_chunks, int64_t chunk_pairs,
                               int64_t last_pairs, float* tile, bool first) {
  kernel_body<MR, MacBw>(a, b, n_chunks, chunk_pairs, last_pairs, tile, first);
}

// driver.h's Ops with the AVX-512 micro-kernels (packing, finish and fence as avx2.h).
template <bool kVnni>
struct Ops : avx2::Ops {
  template <int MR>
  static constexpr KernelFn pick() { return kVnni ? &kernel_vnni<MR> : &kernel_bw<MR>; }
  static KernelFn kernel(int mr) {
    switch (mr) {
      case 1: return pick<1>();
      case 2: return pick<2>();
      case 3: return pick<3>();
      case 4: return pick<4>();
      case 5: return pick<5>();
      default: return pick<6>();
    }
  }
};

}  // namespace avx512
}  // namespace dfp
}  // namespace frugalnn

#endif  // FRUGALNN_X86
