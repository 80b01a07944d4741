// L-Mul, AVX-512 variant: the fast matmul micro-kernel on 16-lane registers. A packed strip is
// kNR = 16 columns (serial.h), so one zmm holds a whole row of the MR x 16 tile: per k step and
// row one broadcast (folded into the integer add as {1to16}), one vpaddd and one vaddps, against
// two of each on AVX2. Same integer logic and the same float additions in the same order per
// output as avx2.h and serial.h, so the same bits.
//
// Everything else -- packing (prepare_*), the every-rule micro-kernel `general` for blocks that
// may hold inf/NaN or leave the exponent range, the element-wise product -- is avx2.h's (inherited
// from avx2::Ops): they are a small part of a matmul's time.
//
// Role: avx512 (function-level target kernels, FRUGALNN_AVX512). Checked against:
// frugalnn/kernels/lmul_ref.py bit for bit, and the fast micro-kernel against the every-rule one
// (force_general) (tests/kernels/test_lmul_kernel.py under the avx512 backend; skipped with
// "CPU lacks AVX-512" elsewhere).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lmul/avx512.h
#pragma once

#include "common/cpu.h"
#include "lmul/avx2.h"
#include "lmul/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace lmul {
namespace avx512 {

static_assert(kNR == 16, "one zmm per row of a micro-tile");

struct Ops : avx2::Ops {
  // avx2::Ops::fast with one 16-lane accumulator per row.
  template <int MR, bool ZX, bool ZY>
  FRUGALNN_AVX512 static void fast(const uint32_t* xa, const uint32_t* kxa, const uint32_t* yb, const uint32_t* kyb,
                                   int64_t kc, float* c, int64_t ldc) {
    __m512 acc[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_loadu_ps(c + r * ldc);
    for (int64_t kk = 0; kk < kc; ++kk) {
      const __m512i y = _mm512_loadu_si512(yb + kk * kNR);
      __m512i ky = _mm512_setzero_si512();
      if (ZY) ky = _mm512_loadu_si512(kyb + kk * kNR);
#pragma GCC unroll 6
      for (int r = 0; r < MR; ++r) {
        __m512i prod = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(xa[kk * kMR + r])), y);
        if (ZX) prod = _mm512_and_si512(prod, _mm512_set1_epi32(static_cast<int>(kxa[kk * kMR + r])));
        if (ZY) prod = _mm512_and_si512(prod, ky);
        acc[r] = _mm512_add_ps(acc[r], _mm512_castsi512_ps(prod));
      }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) _mm512_storeu_ps(c + r * ldc, acc[r]);
  }
};

}  // namespace avx512
}  // namespace lmul
}  // namespace frugalnn
#endif  // FRUGALNN_X86
