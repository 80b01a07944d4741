// Delta inference kernels, portable reference: the conv updates one output position gathers (each
// state += w * d, w the float32 weight held as double) and the activation of one position (semantics:
// layout.h). avx2.h and avx512.h compute the same bits: each update is a multiply then an add (no FMA; CMake passes -ffp-contract=off), and
// rounding is round-half-even on both.
//
// Role: serial (portable reference kernels). Checked against: frugalnn/kernels/delta_ref.py, per
// frame outputs and counters (tests/kernels/test_delta.py under the serial backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/delta/serial.h
#pragma once

#include <cmath>
#include <cstdint>

#include "delta/layout.h"

namespace frugalnn {
namespace delta {
namespace serial {

// s[o] += w[o] * d for o < n (w: float32 weights widened to double)
inline void axpy(double* s, const double* w, double d, int64_t n) {
  for (int64_t o = 0; o < n; ++o) s[o] += w[o] * d;
}

// Every update one output position receives from a conv edge in a frame, gathered: s[o] += w[k][o] * v[k]
// for k < m (in that order) and o < n; w[k] is the weight row W[ky, kx, c, :] of a (tap, channel) and
// v[k] the delta there. The SIMD versions keep the state row in registers across all m updates.
inline void gather(double* s, const double* const* w, const double* v, int64_t m, int64_t n) {
  for (int64_t k = 0; k < m; ++k) axpy(s, w[k], v[k], n);
}

// Activates the c channels of one position (state s, emitted e, steps q or null) and appends the
// emitted deltas (flat index base + channel) to out. Returns how many it emitted.
inline int64_t activate(const double* s, double* e, const double* q, int64_t c, bool relu, double threshold,
                        bool dense, int32_t base, Deltas& out) {
  int64_t n = 0;
  for (int64_t ch = 0; ch < c; ++ch) {
    double a = s[ch];
    if (relu) a = a > 0.0 ? a : 0.0;
    if (q) a = q[ch] * std::nearbyint(a / q[ch]);
    const double d = a - e[ch];
    const bool emit = dense || (threshold > 0.0 ? std::fabs(d) > threshold : d != 0.0);
    if (emit) {
      e[ch] = a;
      out.idx.push_back(base + static_cast<int32_t>(ch));
      out.val.push_back(d);
      ++n;
    }
  }
  return n;
}

}  // namespace serial
}  // namespace delta
}  // namespace frugalnn
