// Delta inference kernels, portable reference: the conv updates one output position gathers (each
// state += w * d, w the float32 weight held as double) and the activation of a band of positions,
// fused with the delta emission and the run index (semantics: layout.h). avx2.h and avx512.h compute
// the same bits: each update is a multiply then an add (no FMA; CMake passes -ffp-contract=off), and
// rounding is round-half-even on all (their reciprocal fast path is checked against the division).
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

// Every update one output position receives from a conv edge in a frame, gathered tap by tap: for
// each tap t < nt (in order) and each delta j < len[t] of the source position under it (in channel
// order), s[o] += w[t][ch[t][j] * n + o] * v[t][j] for o < n. w[t] is the tap's weight block
// W[ky, kx, :, :] ([cin, n]); ch[t] / v[t] are the source run's channels and values (Deltas). The
// SIMD versions keep the state row in registers across all the updates.
inline void gather(double* s, const double* const* w, const int32_t* const* ch, const double* const* v,
                   const int32_t* len, int64_t nt, int64_t n) {
  for (int64_t t = 0; t < nt; ++t)
    for (int32_t j = 0; j < len[t]; ++j) axpy(s, w[t] + static_cast<int64_t>(ch[t][j]) * n, v[t][j], n);
}

// The same updates pushed from one source run (channels ch, values v, len deltas) into the state rows
// of the nr outputs it reaches (rows[i], through the tap weight blocks w[i]): one call per run where
// gather makes one per output. Per element the order is gather's (a given output meets its source
// positions in tap raster order, which is the source's raster order), so the bits are the same.
inline void scatter_run(double* const* rows, const double* const* w, int64_t nr, const int32_t* ch, const double* v,
                        int32_t len, int64_t n) {
  for (int64_t i = 0; i < nr; ++i) gather(rows[i], w + i, &ch, &v, &len, 1, n);
}

// One element's activation (layout.h): returns whether it emits, and then the delta in *d (e updated).
inline bool activate1(double a, double* e, const double* q, bool relu, double threshold, bool dense, double* d) {
  if (relu) a = a > 0.0 ? a : 0.0;
  if (q) a = *q * std::nearbyint(a / *q);
  const double dd = a - *e;
  if (!(dense || (threshold > 0.0 ? std::fabs(dd) > threshold : dd != 0.0))) return false;
  *e = a;
  *d = dd;
  return true;
}

// Appends one delta (flat index f, channel c, value d) to out.
inline void emit(Emit& out, int32_t f, int32_t c, double d) {
  out.idx[out.n] = f;
  out.ch[out.n] = c;
  out.val[out.n++] = d;
}

// Closes position p's run if it emitted since `before` (the run index, Deltas).
inline void close_run(Emit& out, int64_t p, int64_t before) {
  if (out.n == before) return;
  out.run_start[p] = static_cast<int32_t>(before);
  out.run_len[p] = static_cast<int32_t>(out.n - before);
  out.run_pos[out.nruns++] = static_cast<int32_t>(p);
}

// Activates the dirty positions p in [lo, hi) of a layer (state s, emitted e, c channels, steps q or
// null, rq = 1 / q unused here: the SIMD kernels' fast path), clears their dirty flags, appends the
// emitted deltas and the run index to out.
inline void activate_rows(const double* s, double* e, uint8_t* dirty, const double* q, const double* rq, int64_t c,
                          bool relu, double threshold, bool dense, int64_t lo, int64_t hi, Emit& out) {
  for (int64_t p = lo; p < hi; ++p) {
    if (!dirty[p]) continue;
    dirty[p] = 0;
    const int64_t before = out.n;
    for (int64_t ch = 0; ch < c; ++ch) {
      double d;
      if (activate1(s[p * c + ch], e + p * c + ch, q ? q + ch : nullptr, relu, threshold, dense, &d))
        emit(out, static_cast<int32_t>(p * c + ch), static_cast<int32_t>(ch), d);
    }
    close_run(out, p, before);
  }
}

}  // namespace serial
}  // namespace delta
}  // namespace frugalnn
