// Group-wise k-bit weight quantization and bit packing: the portable reference.
//
// Layout (shared with frugalnn/kernels/pack_ref.py, the numpy reference):
//   w       float32 [N, K]                 N rows (output features), K along the reduction
//   codes   uint8   [N, K]                 q in [0, 2^bits)
//   packed  uint8   [N, row_bytes(K,bits)] per row an LSB-first bit stream: code k occupies
//                                          bits [k*bits, (k+1)*bits) of the row
//   scales  float32 [N, K/group]           one per group of `group` consecutive k
//   offsets float32 [N, K/group]           w ~= q * scale + offset  (multiply, then add)
// Symmetric: scale = max|w| / h, offset = -h * scale, with h = (2^bits - 1) / 2 (mid-rise
// levels, zero not representable: exactly the +-1 sign planes T-MAC decomposes into).
// Asymmetric: scale = (max w - min w) / (2^bits - 1), offset = min w.
// q = clamp(rint(w * (1/scale) + h), 0, 2^bits - 1) (symmetric) or rint((w - min) * (1/scale));
// a zero scale (constant group) uses 1/scale = 0. Every step is a float32 operation in this
// order, so the AVX2 kernel and the numpy reference agree bit for bit.
//
// Role: serial (portable reference kernels, and the layout both backends share). Checked against:
// frugalnn/kernels/pack_ref.py bit for bit on odd shapes and every bit width, plus a property test
// (tests/kernels/test_pack.py under the serial backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/pack/serial.h
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace frugalnn {
namespace pack {

inline int64_t packed_row_bytes(int64_t k, int bits) { return (k * bits + 7) / 8; }

struct GroupParams {
  float scale, offset, inv_scale, bias;  // q = rint(w * inv_scale + bias); w' = q * scale + offset
};

// Returns false when the group holds a non-finite value or its range overflows float32.
inline bool group_params(float lo, float hi, float amax, int bits, bool symmetric, GroupParams* p) {
  const float levels = static_cast<float>((1 << bits) - 1);
  const float half = levels * 0.5f;
  if (symmetric) {
    p->scale = amax / half;
    p->offset = -half * p->scale;
  } else {
    p->scale = (hi - lo) / levels;
    p->offset = lo;
  }
  // The top code must dequantize to a finite value too (q * scale overflows for |w| > max/2).
  if (!std::isfinite(p->scale) || !std::isfinite(p->offset) || !std::isfinite(levels * p->scale)) return false;
  p->inv_scale = p->scale != 0.0f ? 1.0f / p->scale : 0.0f;
  // A scale below 2^-128 (a group of subnormal weights) has no float32 reciprocal: 1/scale was inf,
  // and w * inf + bias NaN for w = 0 (a NaN converted to uint8 is undefined behaviour, which the
  // sanitizer build caught). Such a group is one code: scale 0, every weight dequantizes to offset.
  if (!std::isfinite(p->inv_scale)) {
    p->scale = 0.0f;
    p->inv_scale = 0.0f;
    if (symmetric) p->offset = -half * p->scale;
  }
  // Asymmetric codes are rint((w - lo) * inv); written as w * inv + bias it would round twice
  // differently, so the asymmetric path subtracts first (see serial::quantize_group).
  p->bias = symmetric ? half : 0.0f;
  return true;
}

namespace serial {

inline void pack_row(const uint8_t* codes, int64_t k, int bits, uint8_t* out) {
  const int64_t nbytes = packed_row_bytes(k, bits);
  std::memset(out, 0, static_cast<size_t>(nbytes));
  int64_t bitpos = 0;
  for (int64_t i = 0; i < k; ++i, bitpos += bits) {
    uint32_t v = codes[i] & ((1u << bits) - 1u);
    int64_t byte = bitpos >> 3;
    int shift = static_cast<int>(bitpos & 7);
    uint32_t wide = v << shift;  // at most 8 + 7 bits: spans two bytes
    out[byte] |= static_cast<uint8_t>(wide);
    if (shift + bits > 8) out[byte + 1] |= static_cast<uint8_t>(wide >> 8);
  }
}

inline void unpack_row(const uint8_t* packed, int64_t k, int bits, uint8_t* codes) {
  const uint32_t mask = (1u << bits) - 1u;
  int64_t bitpos = 0;
  const int64_t nbytes = packed_row_bytes(k, bits);
  for (int64_t i = 0; i < k; ++i, bitpos += bits) {
    int64_t byte = bitpos >> 3;
    int shift = static_cast<int>(bitpos & 7);
    uint32_t wide = packed[byte];
    if (byte + 1 < nbytes) wide |= static_cast<uint32_t>(packed[byte + 1]) << 8;
    codes[i] = static_cast<uint8_t>((wide >> shift) & mask);
  }
}

// Min, max and max|.| of a group; returns false on NaN/inf.
inline bool group_stats(const float* w, int64_t n, float* lo, float* hi, float* amax) {
  float mn = w[0], mx = w[0], am = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    float v = w[i];
    if (!std::isfinite(v)) return false;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
    float a = std::fabs(v);
    am = a > am ? a : am;
  }
  *lo = mn;
  *hi = mx;
  *amax = am;
  return true;
}

inline void quantize_group(const float* w, int64_t n, const GroupParams& p, bool symmetric, int bits,
                           uint8_t* codes) {
  const float top = static_cast<float>((1 << bits) - 1);
  for (int64_t i = 0; i < n; ++i) {
    float t = symmetric ? w[i] * p.inv_scale + p.bias : (w[i] - p.offset) * p.inv_scale;
    float q = std::nearbyint(t);
    q = q > 0.0f ? (q < top ? q : top) : 0.0f;  // NaN -> 0, as avx2's max_ps does
    codes[i] = static_cast<uint8_t>(q);
  }
}

inline void dequantize_group(const uint8_t* codes, int64_t n, float scale, float offset, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    float prod = static_cast<float>(codes[i]) * scale;
    out[i] = prod + offset;
  }
}

}  // namespace serial
}  // namespace pack
}  // namespace frugalnn
