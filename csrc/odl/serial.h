// ODL primitives, portable reference: plain loops that define every result, including the rounding
// of fp16 storage. The numpy twin is frugalnn/kernels/odl_ref.py; shapes and geometry: layout.h.
//
// Storage T is float (fp32) or uint16_t (IEEE binary16 bits). Loads widen to float exactly; every
// store rounds to T to nearest even (h2f / f2h below, the same rounding as F16C's vcvtps2ph).
// Arithmetic is float32 unless stated. With fp16 storage:
//   matmul, acc16 = false: acc = acc + a*b in float over k ascending, one rounding at the store;
//   matmul, acc16 = true:  acc = f2h(acc + a*b) after every k (fp16 accumulation, the paper's
//                          kernels); a*b of two fp16 values is exact in float, so a fused
//                          multiply-add gives the same bits and the AVX2 kernels match bit for bit.
// With fp32 storage the AVX2 kernels use FMA: results differ from these loops by rounding only.
//
// Role: serial (the reference kernels: matmul, im2col/col2im, depthwise, bias, ReLU, pools,
// cross-entropy, SGD). Checked against: frugalnn/kernels/odl_ref.py and torch autograd
// (tests/kernels/test_odl_kernel.py, tests/odl/test_primitives.py under the serial backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/odl/serial.h
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "odl/layout.h"

namespace frugalnn {
namespace odl {

inline float h2f_exact(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: value man * 2^-24, exact in float
    float f = static_cast<float>(man) * 5.9604644775390625e-08f;
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// h2f through a table of all 65536 halves (256 KiB, built once): the elementwise ops widen every
// fp16 value they touch, and the bit-by-bit conversion costs more than the op itself.
inline const float* h2f_table() {
  static const float* table = [] {
    static float t[65536];
    for (uint32_t i = 0; i < 65536; ++i) t[i] = h2f_exact(static_cast<uint16_t>(i));
    return t;
  }();
  return table;
}
inline float h2f(uint16_t h) { return h2f_table()[h]; }

// Round to nearest even, overflow to inf, NaN kept quiet.
inline uint16_t f2h(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | (ax > 0x7f800000u ? 0x7e00 | ((ax >> 13) & 0x3ff) : 0x7c00);
  if (ax >= 0x477ff000u) return sign | 0x7c00;  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {                        // below 2^-14: subnormal half (or zero)
    float a;
    std::memcpy(&a, &ax, 4);
    // a * 2^24 in [0, 1024): rint (nearest even in the default mode) gives the mantissa
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));
  }
  const uint32_t lsb = (ax >> 13) & 1u;
  const uint32_t r = ax + 0xfffu + lsb;  // round to nearest even on the 13 dropped bits
  return sign | static_cast<uint16_t>((r - 0x38000000u) >> 13);
}

template <class T>
inline float ld(T v);
template <>
inline float ld<float>(float v) { return v; }
template <>
inline float ld<uint16_t>(uint16_t v) { return h2f(v); }
template <class T>
inline T st(float v);
template <>
inline float st<float>(float v) { return v; }
template <>
inline uint16_t st<uint16_t>(float v) { return f2h(v); }
template <class T>
inline float acc_round(float v, bool acc16) { return acc16 ? h2f(f2h(v)) : v; }

namespace serial {

// C[M, N] = sum_k A(m, k) B(k, n); A(m, k) = a[m*sam + k*sak], B(k, n) = b[k*sbk + n*sbn], C row-major.
template <class T>
void matmul(const T* a, int64_t sam, int64_t sak, const T* b, int64_t sbk, int64_t sbn, T* c, int64_t m,
            int64_t n, int64_t k, bool acc16, int64_t n_lo = 0, int64_t n_hi = -1) {
  if (n_hi < 0) n_hi = n;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = n_lo; j < n_hi; ++j) {
      float acc = 0.0f;
      for (int64_t q = 0; q < k; ++q) {
        const float p = ld(a[i * sam + q * sak]) * ld(b[q * sbk + j * sbn]);
        acc = acc + p;
        if (acc16) acc = h2f(f2h(acc));
      }
      c[i * n + j] = st<T>(acc);
    }
}

// Output columns ox whose input column ox*stride + j - pad lies in [0, size): [lo, hi).
inline void valid_range(int64_t size, int64_t out, int64_t stride, int64_t j, int64_t pad, int64_t& lo, int64_t& hi) {
  const int64_t off = j - pad;  // input index of output 0
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = size - 1 - off < 0 ? 0 : std::min(out, (size - 1 - off) / stride + 1);
  if (hi < lo) hi = lo;
}

template <class T>
void im2col(const T* x, const Geom& g, T* col) {
  const int64_t ho = g.ho(), wo = g.wo();
  int64_t row = 0;
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j, ++row) {
        int64_t lo, hi;
        valid_range(g.w, wo, g.stride, j, g.pl, lo, hi);
        T* out = col + row * ho * wo;
        for (int64_t oy = 0; oy < ho; ++oy, out += wo) {
          const int64_t y = oy * g.stride + i - g.pt;
          if (y < 0 || y >= g.h) {
            for (int64_t ox = 0; ox < wo; ++ox) out[ox] = T(0);
            continue;
          }
          const T* src = x + (c * g.h + y) * g.w + lo * g.stride + j - g.pl;
          // plain loops, not std::fill / std::copy: rows are 5..32 wide, where a memmove call per
          // row costs more than the copy
          for (int64_t ox = 0; ox < lo; ++ox) out[ox] = T(0);
          if (g.stride == 1) {
            for (int64_t ox = lo; ox < hi; ++ox) out[ox] = src[ox - lo];
          } else {
            for (int64_t ox = lo; ox < hi; ++ox, src += g.stride) out[ox] = *src;
          }
          for (int64_t ox = hi; ox < wo; ++ox) out[ox] = T(0);
        }
      }
}

// dx += col2im(dcol): rows in im2col order, outputs in (oy, ox) order; each add rounds to T.
template <class T>
void col2im_add(const T* col, const Geom& g, T* dx) {
  const int64_t ho = g.ho(), wo = g.wo();
  int64_t row = 0;
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j, ++row) {
        int64_t lo, hi;
        valid_range(g.w, wo, g.stride, j, g.pl, lo, hi);
        const T* in = col + row * ho * wo;
        for (int64_t oy = 0; oy < ho; ++oy, in += wo) {
          const int64_t y = oy * g.stride + i - g.pt;
          if (y < 0 || y >= g.h) continue;
          T* d = dx + (c * g.h + y) * g.w + lo * g.stride + j - g.pl;
          if (g.stride == 1) {  // contiguous: a loop the compiler vectorises
            for (int64_t ox = lo; ox < hi; ++ox) d[ox - lo] = st<T>(ld(d[ox - lo]) + ld(in[ox]));
          } else {
            for (int64_t ox = lo; ox < hi; ++ox, d += g.stride) *d = st<T>(ld(*d) + ld(in[ox]));
          }
        }
      }
}

// Depthwise (groups == Cin == Cout), on the im2col of the input (col [C*Kh*Kw, P], zeros in the
// padding), per channel c with taps t = (i, j) in ascending order:
//   forward      y[c, p]  = sum_t w[c, t] col[c*T + t, p]      (t ascending per output)
//   weight grad  dw[c, t] = sum_p dy[c, p] col[c*T + t, p]     (p ascending)
//   input grad   dcol[c*T + t, p] = w[c, t] dy[c, p], then col2im adds dcol into dx
// Sums round like the matmul (acc16). A padded tap adds w * 0 = 0, which leaves a sum unchanged.
template <class T>
void dw_forward(const T* col, const T* w, const Geom& g, T* y, bool acc16, float* plane) {
  const int64_t p = g.p(), taps = g.kh * g.kw;
  for (int64_t c = 0; c < g.cin; ++c) {
    std::fill(plane, plane + p, 0.0f);
    for (int64_t t = 0; t < taps; ++t) {
      const float wv = ld(w[c * taps + t]);
      const T* cr = col + (c * taps + t) * p;
      if (acc16) {
        for (int64_t q = 0; q < p; ++q) plane[q] = acc_round<T>(plane[q] + wv * ld(cr[q]), true);
      } else {  // separate loop: vectorises
        for (int64_t q = 0; q < p; ++q) plane[q] = plane[q] + wv * ld(cr[q]);
      }
    }
    for (int64_t q = 0; q < p; ++q) y[c * p + q] = st<T>(plane[q]);
  }
}

// Up to 16 taps summed side by side (independent chains, each in p order).
template <class T>
void dw_wgrad(const T* col, const T* dy, const Geom& g, T* dw, bool acc16) {
  const int64_t p = g.p(), taps = g.kh * g.kw;
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t t0 = 0; t0 < taps; t0 += 16) {
      const int64_t nt = std::min<int64_t>(16, taps - t0);
      float acc[16] = {0};
      const T* d = dy + c * p;
      for (int64_t q = 0; q < p; ++q) {
        const float dv = ld(d[q]);
        const T* cq = col + (c * taps + t0) * p + q;
        if (acc16) {
          for (int64_t t = 0; t < nt; ++t) acc[t] = acc_round<T>(acc[t] + dv * ld(cq[t * p]), true);
        } else {
          for (int64_t t = 0; t < nt; ++t) acc[t] = acc[t] + dv * ld(cq[t * p]);
        }
      }
      for (int64_t t = 0; t < nt; ++t) dw[c * taps + t0 + t] = st<T>(acc[t]);
    }
}

template <class T>
void dw_igrad_col(const T* w, const T* dy, const Geom& g, T* dcol) {
  const int64_t p = g.p(), taps = g.kh * g.kw;
  for (int64_t c = 0; c < g.cin; ++c)
    for (int64_t t = 0; t < taps; ++t) {
      const float wv = ld(w[c * taps + t]);
      for (int64_t q = 0; q < p; ++q) dcol[(c * taps + t) * p + q] = st<T>(wv * ld(dy[c * p + q]));
    }
}

// Depthwise at stride 1 without im2col ("wide rows"): the input is copied once into a zero-padded
// float plane of width Wp = W + left + right (plus kw slack), and outputs are computed on a grid of
// the same width, so every tap is ONE contiguous loop of Ho*Wp elements instead of Ho loops of Wo
// (DS-CNN's maps are 5 wide: per-row overhead would dominate). The columns past Wo are scratch:
// never stored, and zero in the gradient grids, so they add nothing. Per output the taps still run
// in ascending order, so the sums are the ones defined above.
struct Wide {
  int64_t wp, hp, ho, wo, rows;  // padded width/height, output size, grid elements Ho*Wp
  explicit Wide(const Geom& g)
      : wp(g.w + g.pl + g.pr), hp(g.h + g.pt + g.pb), ho(g.ho()), wo(g.wo()), rows(g.ho() * (g.w + g.pl + g.pr)) {}
  int64_t padded_floats() const { return hp * wp + wp; }  // + slack for the scratch columns' reads
};

template <class T>
void pad_plane(const T* x, const Geom& g, const Wide& d, float* xp) {
  std::fill(xp, xp + d.padded_floats(), 0.0f);
  for (int64_t y = 0; y < g.h; ++y)
    for (int64_t xx = 0; xx < g.w; ++xx) xp[(y + g.pt) * d.wp + xx + g.pl] = ld(x[y * g.w + xx]);
}

// y[c] (forward), using planes xp (padded input) and acc (grid).
template <class T>
void dw_forward_wide(const T* x, const T* w, const Geom& g, T* y, bool acc16, float* xp, float* acc) {
  const Wide d(g);
  const int64_t taps = g.kh * g.kw;
  for (int64_t c = 0; c < g.cin; ++c) {
    pad_plane(x + c * g.h * g.w, g, d, xp);
    std::fill(acc, acc + d.rows, 0.0f);
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const float wv = ld(w[c * taps + i * g.kw + j]);
        const float* src = xp + i * d.wp + j;
        if (acc16) {
          for (int64_t r = 0; r < d.rows; ++r) acc[r] = acc_round<T>(acc[r] + wv * src[r], true);
        } else {
          for (int64_t r = 0; r < d.rows; ++r) acc[r] = acc[r] + wv * src[r];
        }
      }
    for (int64_t oy = 0; oy < d.ho; ++oy)
      for (int64_t ox = 0; ox < d.wo; ++ox) y[(c * d.ho + oy) * d.wo + ox] = st<T>(acc[oy * d.wp + ox]);
  }
}

// dw (weight grad) and dx += input grad, with planes xp (padded input), dyw (dy on the grid, zero
// scratch columns) and dxp (padded input grad).
template <class T>
void dw_backward_wide(const T* x, const T* w, const T* dy, const Geom& g, T* dw, T* dx, bool acc16, float* xp,
                      float* dyw, float* dxp) {
  const Wide d(g);
  const int64_t taps = g.kh * g.kw;
  for (int64_t c = 0; c < g.cin; ++c) {
    pad_plane(x + c * g.h * g.w, g, d, xp);
    std::fill(dyw, dyw + d.rows, 0.0f);
    for (int64_t oy = 0; oy < d.ho; ++oy)
      for (int64_t ox = 0; ox < d.wo; ++ox) dyw[oy * d.wp + ox] = ld(dy[(c * d.ho + oy) * d.wo + ox]);
    if (dx) std::fill(dxp, dxp + d.padded_floats(), 0.0f);
    // weight grad: up to 16 taps side by side (independent chains, each in grid order)
    for (int64_t t0 = 0; t0 < taps; t0 += 16) {
      const int64_t nt = std::min<int64_t>(16, taps - t0);
      float a[16] = {0};
      int64_t off[16];
      for (int64_t t = 0; t < nt; ++t) off[t] = ((t0 + t) / g.kw) * d.wp + (t0 + t) % g.kw;
      for (int64_t r = 0; r < d.rows; ++r) {
        const float dv = dyw[r];
        if (acc16) {
          for (int64_t t = 0; t < nt; ++t) a[t] = acc_round<T>(a[t] + dv * xp[r + off[t]], true);
        } else {
          for (int64_t t = 0; t < nt; ++t) a[t] = a[t] + dv * xp[r + off[t]];
        }
      }
      for (int64_t t = 0; t < nt; ++t) dw[c * taps + t0 + t] = st<T>(a[t]);
    }
    if (dx)
      for (int64_t i = 0; i < g.kh; ++i)
        for (int64_t j = 0; j < g.kw; ++j) {
          const float wv = ld(w[c * taps + i * g.kw + j]);
          float* dst = dxp + i * d.wp + j;
          if (acc16) {
            for (int64_t r = 0; r < d.rows; ++r) dst[r] = acc_round<T>(dst[r] + wv * dyw[r], true);
          } else {
            for (int64_t r = 0; r < d.rows; ++r) dst[r] = dst[r] + wv * dyw[r];
          }
        }
    if (!dx) continue;
    T* o = dx + c * g.h * g.w;
    for (int64_t y = 0; y < g.h; ++y)
      for (int64_t xx = 0; xx < g.w; ++xx) o[y * g.w + xx] = st<T>(ld(o[y * g.w + xx]) + dxp[(y + g.pt) * d.wp + xx + g.pl]);
  }
}

// y[c, p] += bias[c] (one rounding); db[c] = sum_p dy[c, p] (float, p ascending).
template <class T>
void bias_add(T* y, const T* bias, int64_t c, int64_t p) {
  for (int64_t i = 0; i < c; ++i)
    for (int64_t j = 0; j < p; ++j) y[i * p + j] = st<T>(ld(y[i * p + j]) + ld(bias[i]));
}
template <class T>
void bias_grad(const T* dy, int64_t c, int64_t p, T* db) {
  for (int64_t i = 0; i < c; ++i) {
    float acc = 0.0f;
    for (int64_t j = 0; j < p; ++j) acc += ld(dy[i * p + j]);
    db[i] = st<T>(acc);
  }
}

template <class T>
void relu(const T* x, int64_t n, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = ld(x[i]) > 0.0f ? x[i] : T(0);
}
// dx += (y > 0 ? dy : 0) (branch-free: the signs of y are random).
template <class T>
void relu_grad_add(const T* y, const T* dy, int64_t n, T* dx) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = ld(dy[i]);  // loaded unconditionally: a select, not a branch, so the loop vectorises
    dx[i] = st<T>(ld(dx[i]) + (ld(y[i]) > 0.0f ? g : 0.0f));
  }
}
template <class T>
void add(const T* a, const T* b, int64_t n, T* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = st<T>(ld(a[i]) + ld(b[i]));
}
template <class T>
void add_into(const T* dy, int64_t n, T* dx) {
  for (int64_t i = 0; i < n; ++i) dx[i] = st<T>(ld(dx[i]) + ld(dy[i]));
}

// Pools without padding: window kh x kw, stride s; Ho = (H - kh) / s + 1. Average: float sum in
// (i, j) order, times 1 / (kh*kw). Max: the first maximum in (i, j) order gets the gradient.
template <class T>
void avgpool(const T* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t s, T* y) {
  const int64_t ho = (h - kh) / s + 1, wo = (w - kw) / s + 1;
  const float inv = 1.0f / static_cast<float>(kh * kw);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        float acc = 0.0f;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) acc += ld(x[(ch * h + oy * s + i) * w + ox * s + j]);
        y[(ch * ho + oy) * wo + ox] = st<T>(acc * inv);
      }
}
template <class T>
void avgpool_grad_add(const T* dy, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t s, T* dx) {
  const int64_t ho = (h - kh) / s + 1, wo = (w - kw) / s + 1;
  const float inv = 1.0f / static_cast<float>(kh * kw);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        const float g = ld(dy[(ch * ho + oy) * wo + ox]) * inv;
        for (int64_t i = 0; i < kh; ++i)
          for (int64_t j = 0; j < kw; ++j) {
            T& d = dx[(ch * h + oy * s + i) * w + ox * s + j];
            d = st<T>(ld(d) + g);
          }
      }
}
template <class T>
int64_t maxpool_arg(const T* x, int64_t ch, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t s, int64_t oy,
                    int64_t ox) {
  int64_t best = (ch * h + oy * s) * w + ox * s;
  for (int64_t i = 0; i < kh; ++i)
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t idx = (ch * h + oy * s + i) * w + ox * s + j;
      if (ld(x[idx]) > ld(x[best])) best = idx;
    }
  return best;
}
template <class T>
void maxpool(const T* x, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t s, T* y) {
  const int64_t ho = (h - kh) / s + 1, wo = (w - kw) / s + 1;
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) y[(ch * ho + oy) * wo + ox] = x[maxpool_arg(x, ch, h, w, kh, kw, s, oy, ox)];
}
template <class T>
void maxpool_grad_add(const T* x, const T* dy, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t s,
                      T* dx) {
  const int64_t ho = (h - kh) / s + 1, wo = (w - kw) / s + 1;
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t oy = 0; oy < ho; ++oy)
      for (int64_t ox = 0; ox < wo; ++ox) {
        T& d = dx[maxpool_arg(x, ch, h, w, kh, kw, s, oy, ox)];
        d = st<T>(ld(d) + ld(dy[(ch * ho + oy) * wo + ox]));
      }
}

// Softmax cross-entropy of one sample, in float: loss = logsumexp(z) - z[label]; dz = softmax - onehot.
template <class T>
float cross_entropy(const T* z, int64_t n, int64_t label, T* dz) {
  float m = ld(z[0]);
  for (int64_t i = 1; i < n; ++i) m = std::max(m, ld(z[i]));
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += std::exp(ld(z[i]) - m);
  const float lse = m + std::log(s);
  for (int64_t i = 0; i < n; ++i) dz[i] = st<T>(std::exp(ld(z[i]) - lse) - (i == label ? 1.0f : 0.0f));
  return lse - ld(z[label]);
}

// SGD: v = mu * v + g; w = w - lr * v (mu == 0: w = w - lr * g, v untouched), in float, stored as T.
template <class T>
void sgd(T* w, const T* g, T* v, int64_t n, float lr, float mu) {
  for (int64_t i = 0; i < n; ++i) {
    float d = ld(g[i]);
    if (mu != 0.0f) {
      d = mu * ld(v[i]) + d;
      v[i] = st<T>(d);
      d = ld(v[i]);
    }
    w[i] = st<T>(ld(w[i]) - lr * d);
  }
}

}  // namespace serial
}  // namespace odl
}  // namespace frugalnn
