// Vectorised exp, shared by the AVX2 kernels of several ops (csrc/README.md, "common").
// Role: common helper (AVX2; exp512_softmax AVX-512). Two variants, one per kind of caller:
//   vec::exp256          whole float range, for unbounded arguments (SiLU's exp(-v) in csrc/llama);
//   vec::exp256_softmax  x <= 88.3 only, cheaper, for softmax arguments x - max <= 0 (the fused
//                        attention kernel, csrc/attention, and the decode-step attention, csrc/llama).
// Checked against: float64 exp, by tests/kernels/test_llama_step.py (exp256, through SiLU) and
// tests/kernels/test_attention.py (exp256_softmax, through attention.exp); the serial kernels use
// std::exp, so results differ from the serial backend by the bounds below.
//
// exp256 (exp of 8 floats over the whole float range):
// n = round(x * log2 e), r = x - n ln2 with a two-constant (Cody-Waite) reduction, exp(r) by the
// degree-7 Cephes expf polynomial on |r| <= ln2/2, then the result is scaled by 2^n as
// 2^(n/2) * 2^(n - n/2) so that n = 128 and gradual underflow (results down to 2^-149) both come out
// right. Error (tests/kernels/test_llama_step.py sweeps SiLU over [-110, 110]): <= 2 ulp for results
// >= FLT_MIN, subnormal results within one subnormal spacing; x > 88.72284 gives +inf,
// x < -103.97 gives +0, exp(-inf) = 0, exp(+inf) = +inf, NaN stays NaN.
//
// exp256_softmax (exp of 8 floats, for x <= 88.3; the softmax only passes x <= 0):
// n = round(x log2 e) comes from one FMA with a shifter constant (1.5 * 2^23 + 127), whose low
// mantissa bits are then n + 127, already the biased exponent of 2^n, so no round/convert
// instructions; r = x - n ln2 by a two-constant (Cody-Waite) reduction, |r| <= ln2/2; exp(r)
// by a degree-6 polynomial (minimax for relative error; 1.7e-8 before float rounding);
// result = p(r) * 2^n. x is clamped at -88 first: below about -87.68 the biased exponent is 0
// and the result is exactly +0 (the true value is under 8.3e-39, below FLT_MIN), so exp(-inf),
// the masked keys of causal attention, is exactly 0 with no extra compare. NaN stays NaN.
// Measured against float64 (tests/kernels/test_attention.py sweeps [-104, 88.3] at a stride and
// checks this bound): at most 2 ulp for results >= FLT_MIN (1.4 ulp worst seen), subnormal
// results within one subnormal spacing, results below 8.3e-39 flushed to +0.
// 13 instructions, against 20 for the Cephes-style exp this replaced (degree 7, round +
// convert, separate underflow mask): the softmax cost per score roughly halves.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/common/vexp.h
#pragma once

#include "common/cpu.h"

#if FRUGALNN_X86
#include <immintrin.h>

#include <cmath>

namespace frugalnn {
namespace vec {

FRUGALNN_AVX2 inline __m256 exp256(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.72283935546875f);  // largest x with a finite exp(x)
  const __m256 lo = _mm256_set1_ps(-103.972084045410f);  // below this exp(x) rounds to 0
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n in two halves: each half lies in [-52, 65], a normal float's exponent range.
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));  // NaN in, NaN out
}

FRUGALNN_AVX2 inline __m256 exp256_softmax(__m256 x) {
  const __m256 xc = _mm256_max_ps(_mm256_set1_ps(-88.0f), x);  // max_ps returns its 2nd operand on NaN
  const __m256 shifter = _mm256_set1_ps(12583039.0f);           // 1.5 * 2^23 + 127
  const __m256 kn = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), shifter);
  const __m256 n = _mm256_sub_ps(kn, shifter);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.3843653723597527e-3f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.37415549904108e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.166800156235695e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666431725025177e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.999999403953552e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.0f));
  // kn's low mantissa bits hold n + 127 in [0, 254]; shifted into the exponent field they are 2^n
  // (the mantissa's leading bits shift out of the word), or +0 when n = -127.
  return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(kn), 23)));
}

// exp512_softmax: exp256_softmax on 16 lanes (AVX-512F), the same instructions lane for lane, so
// the same results bit for bit and the same bound (the avx512 kernels of csrc/attention).
FRUGALNN_AVX512 inline __m512 exp512_softmax(__m512 x) {
  const __m512 xc = _mm512_max_ps(_mm512_set1_ps(-88.0f), x);  // max_ps returns its 2nd operand on NaN
  const __m512 shifter = _mm512_set1_ps(12583039.0f);           // 1.5 * 2^23 + 127
  const __m512 kn = _mm512_fmadd_ps(xc, _mm512_set1_ps(1.44269504088896341f), shifter);
  const __m512 n = _mm512_sub_ps(kn, shifter);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.3843653723597527e-3f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.37415549904108e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.166800156235695e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666431725025177e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.999999403953552e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.0f));
  return _mm512_mul_ps(y, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(kn), 23)));
}

}  // namespace vec
}  // namespace frugalnn

#endif  // FRUGALNN_X86
