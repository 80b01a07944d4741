// MixPE group GEMM, AVX-512, on layout.h's strips of 16 rows x quads of 4 k: one zmm holds all 16
// rows of a strip (lane r = row r), so a quad's 32 packed bytes become one vector of weights: the
// bytes broadcast to both 256-bit halves (vbroadcasti64x4), the upper half shifted right by 4
// (vpsrlvd with per-lane counts 0 / 4), then masked to nibbles: lanes 0-7 = rows 0-7 (low
// nibbles), lanes 8-15 = rows 8-15 (high nibbles), each lane the row's 4 uint4 weights of the quad.
//
// VNNI (vpdpbusd): acc[row] += sum_j q[row, 4 quad + j] * a[4 quad + j] in one instruction per
// quad and token. Operand order: vpdpbusd multiplies UNSIGNED bytes of its first source by SIGNED
// bytes of its second, so the weights (0..15) go first and the int8 activations second. The four
// products (|.| <= 15 * 128) and their int32 sum never saturate or wrap (|group sum| <= 128 * 15 *
// 128 < 2^31): the integer part is exact. Up to 16 tokens per call (activations interleaved by the
// driver, see interleave_tile); tiles of 1-4 tokens split each token's sum over 2-4 accumulator
// chains (the GEMV was bound by one chain of dependent vpdpbusd), added at the group's end.
// AVX512BW (no VNNI): vpmaddubsw (weights unsigned first, again) into int16, summed in int16 over a
// block of 8 quads (<= 30720, no saturation, as avx2.h), then vpmaddwd against ones into int32.
// Both give the exact int32 group sum d_g, and then, per output, exactly serial.h's float order:
// acc = fma(s, float(d_g - z * asum), acc) group after group; the driver applies sa and the bias.
// So W4A8 matches the serial and avx2 backends bit for bit, VNNI or not.
//
// W4A16: each weight byte widened to float, dot = fma(q, a, dot) per lane in k order, then per group
// acc = fma(s, dot - z * afsum, acc): avx2.h's operation order lane for lane (bit for bit with avx2).
//
// Role: avx512 (micro-kernels over one strip and 1..16 tokens, VNNI and AVX512BW variants; VNNI
// only where cpu_supports_avx512_vnni(), chosen in driver.h). Checked against: serial.h and
// frugalnn/kernels/mixpe_ref.py on odd shapes, every group size, VNNI on and off
// (tests/kernels/test_mixpe_kernel.py, test_mixpe_avx512.py under the avx512 backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/mixpe/avx512.h
#pragma once

#include <cstdint>

#include "common/cpu.h"
#include "mixpe/avx2.h"
#include "mixpe/layout.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace mixpe {
namespace avx512 {

// Tokens per micro-kernel call. VNNI: 16 int32 accumulators in registers (the float ones live in the
// L1 tile, touched once per group), so one weight unpack (2 instructions) serves 16 vpdpbusd.
// AVX512BW: 8 (8 int16 + 8 int32 + 8 float accumulators).
constexpr int kMR = 16;
constexpr int kMRBW = 8;

// The 16 rows x 4 weights of one quad, lane r = row r (see the header comment).
FRUGALNN_AVX512 inline __m512i unpack_quad(const uint8_t* p, __m512i shifts, __m512i mask) {
  // (maskz forms with a full mask: the unmasked intrinsics trip GCC 12's -Wmaybe-uninitialized)
  const __m512i both = _mm512_maskz_broadcast_i64x4(0xFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_and_si512(_mm512_maskz_srlv_epi32(0xFFFF, both, shifts), mask);
}

// Full-mask maskz forms of unmasked conversions and shifts: the same instructions (GCC drops a constant
// all-ones mask), but the unmasked intrinsics pass _mm512_undefined_* through, which GCC 12 reports as
// -Wmaybe-uninitialized once inlined here.
FRUGALNN_AVX512 inline __m512i widen_u8(const uint8_t* p) {
  return _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

FRUGALNN_AVX512 inline __m512 to_float(__m512i v) { return _mm512_maskz_cvtepi32_ps(0xFFFF, v); }

FRUGALNN_AVX512 inline __m512i nibble_shifts() {
  return _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4);
}

FRUGALNN_AVX512 inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  __builtin_memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// acc += vpdpbusd(w unsigned, the 4 int8 at p broadcast, signed), the broadcast folded into the
// instruction. Inline assembly: GCC 12 compiles _mm512_dpbusd_epi32 in this loop with a register
// copy per accumulator and quad (two vmovdqa per vpdpbusd), which the asm form avoids.
typedef int32_t word_alias __attribute__((may_alias));
FRUGALNN_AVX512_VNNI inline __m512i dpbusd_bcast(__m512i acc, __m512i w, const int8_t* p) {
  asm("vpdpbusd %[x]%{1to16%}, %[w], %[acc]"
      : [acc] "+v"(acc)
      : [w] "v"(w), [x] "m"(*reinterpret_cast<const word_alias*>(p)));
  return acc;
}

// Per token: facc = fma(s, float(d - z * asum), facc), serial.h's per-group step on 16 rows; the
// float accumulators are the tile rows tile[i * kRows ...] (zeroed before the first group).
template <int MR>
FRUGALNN_AVX512 inline void group_step(const float* sp, const uint8_t* zp, const int32_t* const* asum, int64_t g,
                                       const __m512i* acc32, float* tile) {
  const __m512 s = _mm512_loadu_ps(sp + g * kRows);
  const __m512i z = widen_u8(zp + g * kRows);
  for (int i = 0; i < MR; ++i) {
    const __m512i d = _mm512_sub_epi32(acc32[i], _mm512_mullo_epi32(z, _mm512_set1_epi32(asum[i][g])));
    _mm512_storeu_ps(tile + i * kRows, _mm512_fmadd_ps(s, to_float(d), _mm512_loadu_ps(tile + i * kRows)));
  }
}

template <int MR>
FRUGALNN_AVX512 inline void zero_tile(float* tile) {
  for (int i = 0; i < MR; ++i) _mm512_storeu_ps(tile + i * kRows, _mm512_setzero_ps());
}

// A tile of mr tokens' activations (rows of kp int8, row stride kp), interleaved quad by quad for
// the VNNI kernel: dst[(q * mr + i) * 4 + j] = a[i * kp + 4 q + j], so the 4-byte broadcasts of one
// quad for all tokens lie at fixed offsets from one pointer (16 per-token pointers do not fit the
// 16 general registers next to the loop's others: GCC spilled them, at half the speed).
inline void interleave_tile(const int8_t* a, int64_t mr, int64_t kp, int8_t* dst) {
  for (int64_t q = 0; q < kp / kQuad; ++q)
    for (int64_t i = 0; i < mr; ++i) __builtin_memcpy(dst + (q * mr + i) * kQuad, a + i * kp + q * kQuad, kQuad);
}

// One strip x MR tokens over all of K with vpdpbusd: writes the pre-scale accumulators
// tile[i * kRows + r] (as avx2::w4a8_strip). a[0]: the tile's activations interleaved by
// interleave_tile (the other a[i] are not read).
template <int MR>
FRUGALNN_AVX512_VNNI void w4a8_strip_vnni(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                                          const int8_t* const* a, const int32_t* const* asum, float* tile) {
  const __m512i mask = _mm512_set1_epi8(0x0F), shifts = nibble_shifts();
  const int64_t quads_per_group = S.group / kQuad;
  // Few tokens: one accumulator per token would be a chain of dependent vpdpbusd (latency ~5
  // cycles per quad: what bounded the GEMV); kChains accumulators per token take quads in turn and
  // are added at the group's end (int32, exact: the same sum in another order).
  constexpr int kChains = MR == 1 ? 4 : MR <= 4 ? 2 : 1;
  static_assert(kBlock / kQuad % kChains == 0, "every group's quad count is a multiple of the chains");
  zero_tile<MR>(tile);
  for (int64_t g = 0; g < S.groups; ++g) {
    __m512i acc[kChains][MR], acc32[MR];
    for (int c = 0; c < kChains; ++c)
      for (int i = 0; i < MR; ++i) acc[c][i] = _mm512_setzero_si512();
    for (int64_t q = g * quads_per_group; q < (g + 1) * quads_per_group; q += kChains) {
      for (int c = 0; c < kChains; ++c) {
        const __m512i w = unpack_quad(wp + (q + c) * kQuadBytes, shifts, mask);
        const int8_t* x = a[0] + (q + c) * (MR * kQuad);
        for (int i = 0; i < MR; ++i) acc[c][i] = dpbusd_bcast(acc[c][i], w, x + i * kQuad);
      }
    }
    for (int i = 0; i < MR; ++i) {
      acc32[i] = acc[0][i];
      for (int c = 1; c < kChains; ++c) acc32[i] = _mm512_add_epi32(acc32[i], acc[c][i]);
    }
    group_step<MR>(sp, zp, asum, g, acc32, tile);
  }
}

// The same without VNNI (AVX512BW): vpmaddubsw + int16 block sums + vpmaddwd, as avx2.h on 16 lanes.
template <int MR>
FRUGALNN_AVX512 void w4a8_strip_bw(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                                   const int8_t* const* a, const int32_t* const* asum, float* tile) {
  const __m512i mask = _mm512_set1_epi8(0x0F), shifts = nibble_shifts(), ones = _mm512_set1_epi16(1);
  const int64_t blocks_per_group = S.group / kBlock;
  zero_tile<MR>(tile);
  for (int64_t g = 0; g < S.groups; ++g) {
    __m512i acc32[MR];
    for (int i = 0; i < MR; ++i) acc32[i] = _mm512_setzero_si512();
    for (int64_t bb = 0; bb < blocks_per_group; ++bb) {
      const int64_t q0 = (g * blocks_per_group + bb) * (kBlock / kQuad);
      __m512i acc16[MR];
      for (int i = 0; i < MR; ++i) acc16[i] = _mm512_setzero_si512();
      for (int64_t q = q0; q < q0 + kBlock / kQuad; ++q) {
        const __m512i w = unpack_quad(wp + q * kQuadBytes, shifts, mask);
        for (int i = 0; i < MR; ++i)
          acc16[i] = _mm512_add_epi16(acc16[i], _mm512_maddubs_epi16(w, bcast4(a[i] + q * kQuad)));
      }
      for (int i = 0; i < MR; ++i) acc32[i] = _mm512_add_epi32(acc32[i], _mm512_madd_epi16(acc16[i], ones));
    }
    group_step<MR>(sp, zp, asum, g, acc32, tile);
  }
}

using StripFn = void (*)(const uint8_t*, const float*, const uint8_t*, const Shape&, const int8_t* const*,
                         const int32_t* const*, float*);

// The micro-kernel for mr tokens: 1..kMR with VNNI, 1..kMRBW without.
inline StripFn w4a8_kernel(int mr, bool vnni) {
  static const StripFn with_vnni[kMR] = {
      &w4a8_strip_vnni<1>,  &w4a8_strip_vnni<2>,  &w4a8_strip_vnni<3>,  &w4a8_strip_vnni<4>,
      &w4a8_strip_vnni<5>,  &w4a8_strip_vnni<6>,  &w4a8_strip_vnni<7>,  &w4a8_strip_vnni<8>,
      &w4a8_strip_vnni<9>,  &w4a8_strip_vnni<10>, &w4a8_strip_vnni<11>, &w4a8_strip_vnni<12>,
      &w4a8_strip_vnni<13>, &w4a8_strip_vnni<14>, &w4a8_strip_vnni<15>, &w4a8_strip_vnni<16>};
  static const StripFn without[kMRBW] = {&w4a8_strip_bw<1>, &w4a8_strip_bw<2>, &w4a8_strip_bw<3>, &w4a8_strip_bw<4>,
                                         &w4a8_strip_bw<5>, &w4a8_strip_bw<6>, &w4a8_strip_bw<7>, &w4a8_strip_bw<8>};
  return vnni ? with_vnni[mr - 1] : without[mr - 1];
}

// W4A16 over one strip x one token (avx2::w4a16_strip on 16 lanes; kEach: dequantize every weight).
template <bool kEach>
FRUGALNN_AVX512 void w4a16_strip(const uint8_t* wp, const float* sp, const uint8_t* zp, const Shape& S,
                                 const float* a, const float* afsum, float* tile) {
  const __m512i mask = _mm512_set1_epi8(0x0F), shifts = nibble_shifts(), byte = _mm512_set1_epi32(0xFF);
  const int64_t quads_per_group = S.group / kQuad;
  __m512 facc = _mm512_setzero_ps();
  for (int64_t g = 0; g < S.groups; ++g) {
    __m512 dot = _mm512_setzero_ps();
    const __m512 sv = _mm512_loadu_ps(sp + g * kRows);
    const __m512 zv = to_float(widen_u8(zp + g * kRows));
    for (int64_t q = g * quads_per_group; q < (g + 1) * quads_per_group; ++q) {
      const __m512i w = unpack_quad(wp + q * kQuadBytes, shifts, mask);
      for (int j = 0; j < 4; ++j) {
        const __m512 x = _mm512_set1_ps(a[q * kQuad + j]);
        __m512 wf = to_float(_mm512_and_si512(_mm512_maskz_srli_epi32(0xFFFF, w, 8 * j), byte));
        if (kEach) {
          wf = _mm512_mul_ps(_mm512_sub_ps(wf, zv), sv);
          facc = _mm512_fmadd_ps(wf, x, facc);
        } else {
          dot = _mm512_fmadd_ps(wf, x, dot);
        }
      }
    }
    if (kEach) continue;
    facc = _mm512_fmadd_ps(sv, _mm512_sub_ps(dot, _mm512_mul_ps(zv, _mm512_set1_ps(afsum[g]))), facc);
  }
  _mm512_storeu_ps(tile, facc);
}

}  // namespace avx512
}  // namespace mixpe
}  // namespace frugalnn
#endif
