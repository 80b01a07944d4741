// Fused attention, portable reference ops: plain loops and std::exp (correctly rounded to
// about 0.5 ulp by glibc). Same tile loop as the AVX2 kernel (driver.h); the AVX2 ops differ
// only in summation order and in their exp (common/vexp.h documents its error).
//
// Role: serial (portable reference kernels). Checked against: the float64 numpy reference
// (frugalnn/kernels/attention_ref.py), within float32 rounding, by tests/kernels/test_attention.py
// under the serial backend.
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/attention/serial.h
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "attention/layout.h"

namespace frugalnn {
namespace attention {
namespace serial {

struct Ops {
  // Values are read in place: the row layout is already what accumulate_pv walks, and there is
  // no background work (layout.h Background) to do.
  static const float* pack_values(const float* v, int64_t /*cols*/, int64_t /*ev*/, float* /*vp*/) { return v; }
  static const float* values_of(const float* v, float* /*vp*/) { return v; }

  // st[j, i] = sum_d k[j, d] * qt[d, i]  for keys j < cols, all BQ queries i.
  static void scores(const float* k, int64_t cols, int64_t e, const float* qt, float* st, const Background& /*bg*/) {
    for (int64_t j = 0; j < cols; ++j) {
      float* srow = st + j * BQ;
      for (int64_t i = 0; i < BQ; ++i) srow[i] = 0.0f;
      for (int64_t d = 0; d < e; ++d) {
        const float kd = k[j * e + d];
        const float* qrow = qt + d * BQ;
        for (int64_t i = 0; i < BQ; ++i) srow[i] += kd * qrow[i];
      }
    }
  }

  // Per query i: m' = max(m, max_j st[j, i]); st[j, i] = exp(st[j, i] - m');
  // alpha[i] = exp(m - m'); l = alpha * l + sum_j st[j, i]; m = m'.
  static void online_softmax(float* st, int64_t cols, float* m, float* l, float* alpha) {
    for (int64_t i = 0; i < BQ; ++i) {
      float mx = m[i];
      for (int64_t j = 0; j < cols; ++j) mx = std::max(mx, st[j * BQ + i]);
      float sum = 0.0f;
      for (int64_t j = 0; j < cols; ++j) {
        const float pij = std::exp(st[j * BQ + i] - mx);
        st[j * BQ + i] = pij;
        sum += pij;
      }
      alpha[i] = std::exp(m[i] - mx);
      l[i] = l[i] * alpha[i] + sum;
      m[i] = mx;
    }
  }

  // acc[c, i] *= alpha[i]
  static void rescale(float* acc, int64_t evp, const float* alpha) {
    for (int64_t c = 0; c < evp; ++c)
      for (int64_t i = 0; i < BQ; ++i) acc[c * BQ + i] *= alpha[i];
  }

  // acc[c, i] += sum_j pt[j, i] * v[j, c]   (j < cols, i < rows)
  static void accumulate_pv(const float* pt, int64_t rows, const float* v, int64_t cols, int64_t ev, float* acc) {
    for (int64_t c = 0; c < ev; ++c) {
      float* arow = acc + c * BQ;
      for (int64_t j = 0; j < cols; ++j) {
        const float vjc = v[j * ev + c];
        const float* prow = pt + j * BQ;
        for (int64_t i = 0; i < rows; ++i) arow[i] += prow[i] * vjc;
      }
    }
  }
};

// exp over an array, for the accuracy tests of the vectorised exp.
inline void exp_array(const float* x, int64_t n, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

}  // namespace serial
}  // namespace attention
}  // namespace frugalnn
