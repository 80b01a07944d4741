// DFP16 GEMM (Das et al. 2018): int16 mantissas, int32 sums over K-chunks, float32 out. The
// portable reference: plain loops, no packing. avx2.h + driver.h compute the same bits with packed
// panels and vpmaddwd; frugalnn/kernels/dfp_ref.py is the numpy twin of this file.
//
// Shapes: A [M, K] int16 row-major; B [K, N] int16 row-major, or B^T [N, K] (transpose_b);
// C [M, N] float32; bias [N] float32 or none. Exponents ea, eb: C ~= (A * 2^ea) @ (B * 2^eb).
//
// Semantics, per output (i, j), chunk length c >= 1 (chunk q covers k in [q*c, min(K, (q+1)*c))):
//   s_q = sum_{k in chunk q} A[i,k] * B[k,j]     exact integer sum, reduced modulo 2^32 into an
//                                                int32 (two's complement): what int32 hardware
//                                                accumulation gives, in any order. It equals the
//                                                exact sum whenever c * max|A| * max|B| < 2^31
//                                                (the binding refuses any other c unless asked).
//   acc = 0.0f;  acc = acc + float(s_q) for q = 0, 1, ...   float32 adds, in ascending q, each
//                                                float(s_q) rounded to nearest even
//   C[i,j] = (acc * 2^s1) * 2^s2 (+ bias[j])     s = ea + eb, s1 = clamp(s, -126, 127),
//                                                s2 = clamp(s - s1, -126, 127): both powers are
//                                                normal floats; this is ldexp(acc, s) correctly
//                                                rounded (acc is 0 or an integer >= 1 in magnitude,
//                                                so the first product is exact unless it
//                                                overflows, and only the second one rounds), then
//                                                one float32 add of the bias.
// K = 0 gives C = 0 (+ bias). Threads split outputs, never a sum: results do not depend on them.
// No FMA contraction anywhere (CMake passes -ffp-contract=off), so every backend rounds alike.
//
// Role: serial (portable reference kernels: the GEMM, max |x|, quantize). Checked against:
// frugalnn/kernels/dfp_ref.py bit for bit, outputs compared as uint32 bit patterns
// (tests/kernels/test_dfp_kernel.py under the serial backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/dfp/serial.h
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/threads.h"

namespace frugalnn {
namespace dfp {

// The two normal powers of two whose product applies 2^(ea + eb) (see the header comment).
struct Scale {
  float p1 = 1.0f, p2 = 1.0f;
};

inline float pow2(int e) {  // e in [-126, 127]: built from the bits, exact
  uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  __builtin_memcpy(&f, &bits, 4);
  return f;
}

inline Scale make_scale(int64_t s) {
  const int64_t s1 = std::clamp<int64_t>(s, -126, 127);
  const int64_t s2 = std::clamp<int64_t>(s - s1, -126, 127);
  return Scale{pow2(static_cast<int>(s1)), pow2(static_cast<int>(s2))};
}

inline float finish(float acc, const Scale& sc, const float* bias, int64_t j) {
  float v = (acc * sc.p1) * sc.p2;
  return bias ? v + bias[j] : v;
}

// Modular int32 arithmetic without signed-overflow UB: products of int16 fit int32 exactly.
inline uint32_t product(int16_t a, int16_t b) {
  return static_cast<uint32_t>(static_cast<int32_t>(a) * static_cast<int32_t>(b));
}

inline float chunk_float(uint32_t s) { return static_cast<float>(static_cast<int32_t>(s)); }

namespace serial {

// Rows [r0, r1) of C. B [K, N]: a row of int32 partial sums, k-outer so the inner loop streams B.
inline void gemm_rows_nt(const int16_t* a, const int16_t* b, float* c, int64_t r0, int64_t r1, int64_t n,
                         int64_t k, int64_t chunk, const Scale& sc, const float* bias) {
  std::vector<uint32_t> s(static_cast<size_t>(n));
  std::vector<float> acc(static_cast<size_t>(n));
  for (int64_t i = r0; i < r1; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    const int16_t* ai = a + i * k;
    for (int64_t k0 = 0; k0 < k; k0 += chunk) {
      const int64_t k1 = std::min(k, k0 + chunk);
      std::fill(s.begin(), s.end(), 0u);
      for (int64_t kk = k0; kk < k1; ++kk) {
        const int16_t av = ai[kk];
        const int16_t* bk = b + kk * n;
        for (int64_t j = 0; j < n; ++j) s[j] += product(av, bk[j]);
      }
      for (int64_t j = 0; j < n; ++j) acc[j] = acc[j] + chunk_float(s[j]);
    }
    for (int64_t j = 0; j < n; ++j) c[i * n + j] = finish(acc[j], sc, bias, j);
  }
}

// Rows [r0, r1) of C with B^T [N, K]: one dot product per output, chunk by chunk.
inline void gemm_rows_tn(const int16_t* a, const int16_t* bt, float* c, int64_t r0, int64_t r1, int64_t n,
                         int64_t k, int64_t chunk, const Scale& sc, const float* bias) {
  for (int64_t i = r0; i < r1; ++i) {
    const int16_t* ai = a + i * k;
    for (int64_t j = 0; j < n; ++j) {
      const int16_t* bj = bt + j * k;
      float acc = 0.0f;
      for (int64_t k0 = 0; k0 < k; k0 += chunk) {
        const int64_t k1 = std::min(k, k0 + chunk);
        uint32_t s = 0;
        for (int64_t kk = k0; kk < k1; ++kk) s += product(ai[kk], bj[kk]);
        acc = acc + chunk_float(s);
      }
      c[i * n + j] = finish(acc, sc, bias, j);
    }
  }
}

inline void gemm(const int16_t* a, const int16_t* b, float* c, int64_t m, int64_t n, int64_t k, int64_t chunk,
                 bool transpose_b, int64_t scale_exp, const float* bias, int threads) {
  if (m == 0 || n == 0) return;
  const Scale sc = make_scale(scale_exp);
  const int64_t min_rows = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, n * std::max<int64_t>(k, 1)));
  parallel_range(m, threads, min_rows, [&](int64_t r0, int64_t r1) {
    if (transpose_b) {
      gemm_rows_tn(a, b, c, r0, r1, n, k, chunk, sc, bias);
    } else {
      gemm_rows_nt(a, b, c, r0, r1, n, k, chunk, sc, bias);
    }
  });
}

// max |x| over n int16 values, as an unsigned count (|-32768| = 32768).
inline uint32_t max_abs(const int16_t* x, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int32_t v = x[i];
    const uint32_t a = static_cast<uint32_t>(v < 0 ? -v : v);
    m = a > m ? a : m;
  }
  return m;
}

// ---- Quantization (formats/dfp.py DFP.from_float, per tensor, round to nearest even) ----
// e = floor(log2 max|x|) + 1 - (bits - 1 - headroom) (0 for an all-zero tensor), then
// m = clip(rint(x * 2^-e), +-(2^(bits-1) - 1)). The scaling is applied as two float32 products
// by normal powers of two (like Scale). Both are exact for every x whose scaled value is at least
// 2^-126 in magnitude (the first only scales up, or down by at most 2^-126 with |x| >= 1 for any
// value that survives), and anything smaller rounds to 0 whatever its last bits: so the float32
// path gives DFP.from_float's float64 answer bit for bit.

// Largest |x| bit pattern (sign cleared) over x[0..n): >= 0x7F800000 means inf or NaN is present.
inline uint32_t max_abs_bits(const float* x, int64_t n) {
  uint32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    b &= 0x7FFFFFFFu;
    m = b > m ? b : m;
  }
  return m;
}

inline int64_t first_non_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

// The exponent from the largest magnitude (bit pattern, finite).
inline int32_t exponent_for(uint32_t amax_bits, int bits, int headroom) {
  if (amax_bits == 0) return 0;
  float amax;
  std::memcpy(&amax, &amax_bits, 4);
  int ex;
  std::frexp(amax, &ex);  // amax = f 2^ex, f in [0.5, 1): exact, subnormals included
  return ex - (bits - 1 - headroom);
}

template <class T>
inline void quantize(const float* x, int64_t n, int32_t e, int bits, T* m) {
  const Scale sc = make_scale(-static_cast<int64_t>(e));
  const float top = static_cast<float>((1 << (bits - 1)) - 1);
  for (int64_t i = 0; i < n; ++i) {
    float v = std::nearbyint((x[i] * sc.p1) * sc.p2);  // nearest even (the default rounding mode)
    v = std::min(std::max(v, -top), top);
    m[i] = static_cast<T>(v);
  }
}

}  // namespace serial
}  // namespace dfp
}  // namespace frugalnn
