// T-MAC lookup-table GEMV/GEMM: the offline weight layout and the activation-table layout,
// shared by the serial reference (serial.h), the AVX2 kernels (avx2.h) and the numpy reference
// (frugalnn/kernels/lut_ref.py).
//
// Math. A weight w[m,k] = q * scale + offset with a b-bit code q, one (scale, offset) per group
// of G consecutive k. Split q into bit planes and map each bit to a sign s_i = 2 bit_i - 1:
//   q - h = sum_i 2^(i-1) s_i,   h = (2^b - 1) / 2
// so  w = (scale / 2) * sum_i 2^i s_i + (scale * h + offset).
// For 4 activations a[4c..4c+3] ("chunk" c) and a 4-bit plane index j (bit t = bit i of q[4c+t]):
//   sum_t s_i a_t = T_c[j],  T_c[j] = sum_t (2 bit_t(j) - 1) a[4c+t]   (16 entries, T[15-j] = -T[j])
// T_c is quantized to int8 with one scale per weight group (ts_g = max|T| / 127), looked up with
// vpshufb, weighted by 2^i and summed exactly in integers:
//   acc[m,g] = sum_{c in g} sum_i 2^i qT_c[j_i(m,c)]
//   y[m] += float(acc[m,g]) * (ws[m,g] * ts_g)          ws = scale / 2
//   y[m] += zt[m,g] * (float(isum_g) * ts_g)             zt = scale*h + offset,  isum_g = sum qT_c[15]
// (the second line only for asymmetric weights; each product is formed in this order, see the float
// steps below). With a single group (G = K) the integer sum runs over all of K: the exact integer
// path for per-tensor / per-row scales (BitNet).
//
// Integer ranges. One step (two chunks) adds at most 2 (2^b - 1) 127 to a row's sum, so a group of
// more than int32_steps() steps could overflow int32 (8-bit codes from G of about 265k, 4-bit
// about 4.5M, ternary about 22.5M): such groups carry the sum in int64 (acc32 is flushed into it
// in time), and float(acc) is then the one rounding of the exact sum, as for short groups.
// isum_g sums G/4 entries of at most 127 in int32, hence G <= kMaxGroup = 2^26 (make_shape).
//
// Float steps and their domain. Per group: y += (float(acc) * ws) * ts, then y += (zt * float(isum))
// * ts: the int-times-weight product first, so an intermediate overflows only where the term it
// belongs to does. (With zs = isum * ts first, a group of activations near 2^124 overflowed zs,
// the sum of the group's activations, even when zt times it was small: NaN for a finite dense
// result.) Activations with |x| >= 2^125 (and NaN/inf) never enter the tables (driver.h). For
// |x| < 2^125 every table entry is below 2^127; the result is finite whenever every group's
// terms ws * sum(level x) and zt * sum(x) and their running sum are (the dense matmul overflows
// in the same places, up to rounding).
//
// Weight layout (uint8), "units" of 32 rows, unit-major so one unit streams contiguously over K:
//   packed[unit][group][step][slab][32]          step = 2 chunks (8 activations) of one group
// A group of G/4 chunks takes ceil(G/8) steps; an odd last chunk is padding (its table is zero).
// Byte i (0..15) of lane L (0,1) of a slab holds two 4-bit plane indices of chunk 2*step+L:
//   pair slab 2p+r (planes 2p, 2p+1; r = 0,1 picks rows 0-15 / 16-31):
//       plane 2p + i%2, accumulator a = 2r + h, int16 lane j = i/2      (h = 0 low nibble, 1 high)
//   single slab b-1 (only for odd b; plane b-1):
//       plane b-1,      accumulator a = 2h + i%2, int16 lane j = i/2
// After vpshufb + vpmaddubsw with plane weights (2^2p, 2^2p+1) -- or (2^(b-1), 0) / (0, 2^(b-1))
// for the single slab -- every int16 lane j of accumulator a (0..3) holds one row,
//   row(a, j) = 16 (a/2) + 8 (j%2) + 4 (a%2) + j/2,
// its two 128-bit lanes being chunks 2*step and 2*step+1. One 32-byte load feeds 32 rows (or 16
// rows x 2 planes). The odd-looking row order makes the fold cheap: the lane sums of accumulators
// (0,1) sign-extended in place (even int16 lanes, then odd ones) are rows 0-7 and 8-15, in order.
// Rows past M are zero codes (padding); their outputs are never written.
//
// Table layout (int8) per activation column: tables[group][step][32], lane L = T_{2 step + L}.
//
// Two-level (K-quant) weights, llama.cpp's Q2_K..Q6_K kept as stored (frugalnn/tmac/kquants.py):
//   w[m,k] = (d * sc) * (q - z0) - (dmin * mn)
// with one fp16 d / dmin per row and 256-element super-block, one small integer sc / mn per row and
// sub-block of `sub` (16 or 32) elements, and a fixed integer zero z0 (Q3_K 4, Q6_K 32). The codes
// use the layout above with group = the super-block (one table scale ts per 256 activations, as
// llama.cpp's Q8_K), so a sub-block is sub/8 consecutive steps. With top = 2^b - 1, acc_s the
// sub-block's plane sum and isum_s its table sum (sum of entries 15 of its chunks):
//   2 sum_k (q - z0) a_k = acc_s + (top - 2 z0) isum_s        (up to table rounding)
//   S[m]  = sum_s sc_s * (acc_s + (top - 2 z0) isum_s)        int32, exact
//   Mn[m] = sum_s mn_s * isum_s                                int32, exact
//   y[m] = y[m] + (float(S) * (float(d) * 0.5f)) * ts;  y[m] = y[m] - (float(Mn) * float(dmin)) * ts
// the float conversion once per super-block and row. int32 suffices for any byte sc/mn: a 32-wide
// sub-block's |acc + c isum| <= 8 * 127 * (2 top) < 2^16, times 255, times 8 sub-blocks < 2^31
// (16-wide: 4 * 127 * 2 * 63 * 255 * 16 < 2^31). Sub-scales are stored per (unit, super-block,
// sub-block, row): sc[units][groups][nsub][32] bytes in one of four formats (KFormat), d and
// dmin as fp16 bit patterns [units][groups][32].
//
// Role: layout (the contract serial.h, avx2.h, driver.h and lut_ref.py share), no kernels. Checked
// against: lut_ref.py's own slab_position / transform, which must give the same bytes
// (tests/kernels/test_lut.py, transform round trip).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lut/layout.h
#pragma once

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/checked.h"

namespace frugalnn {
namespace lut {

constexpr int kUnitRows = 32;
constexpr int kSlabBytes = 32;
constexpr int kMaxBits = 8;
// Activations at or beyond this magnitude (and NaN/inf) bypass the tables: 4 of them could
// overflow a float32 table entry. They are added back exactly, as the dense matmul would.
constexpr float kSpecialMagnitude = 4.2535296e37f;  // 2^125
// Largest group: isum (G/4 entries of at most 127) must fit int32.
constexpr int64_t kMaxGroup = int64_t{1} << 26;
// A group whose largest table entry is below this is quantized from 2^64 T (an exact power-of-two
// scaling): 127 / maxabs overflows float32 below 2^-121 (tiny or subnormal activations), and the
// infinite scale turned the AVX2 tables into -128s (a result of the wrong sign).
constexpr float kTinyTable = 7.8886091e-31f;  // 2^-100
constexpr float kTinyScale = 1.8446744e19f;   // 2^64

struct Shape {
  int64_t m = 0, k = 0, group = 0;
  int bits = 0;

  int64_t units() const { return (m + kUnitRows - 1) / kUnitRows; }
  int64_t groups() const { return group ? k / group : 0; }
  int64_t chunks_per_group() const { return group / 4; }
  int64_t steps_per_group() const { return (group + 7) / 8; }
  int64_t step_bytes() const { return static_cast<int64_t>(bits) * kSlabBytes; }
  int64_t group_bytes() const { return steps_per_group() * step_bytes(); }
  int64_t unit_bytes() const { return groups() * group_bytes(); }
  int64_t packed_bytes() const { return units() * unit_bytes(); }
  int64_t table_bytes() const { return groups() * steps_per_group() * kSlabBytes; }  // per column
  // Steps an int16 lane can take before it could overflow: each adds at most (2^b - 1) * 127, and
  // the fold adds the two chunk lanes in int16 too (hence the factor 2).
  int sub_steps() const {
    int64_t per_step = 2 * ((int64_t{1} << bits) - 1) * 127;
    int64_t s = 32767 / per_step;
    return static_cast<int>(s < 1 ? 1 : s);
  }
  // Steps an int32 row sum can take before it could overflow (the same bound per step).
  int64_t int32_steps() const { return 2147483647 / (2 * ((int64_t{1} << bits) - 1) * 127); }
  bool wide_sums() const { return steps_per_group() > int32_steps(); }
};

// A validated shape: std::invalid_argument (ValueError in Python) names the bad value, and every
// size the layout derives from it (packed bytes, table bytes) is known to fit int64.
inline Shape make_shape(int64_t m, int64_t k, int64_t group, int64_t bits) {
  auto fail = [](const std::string& msg) { throw std::invalid_argument(msg); };
  if (bits < 1 || bits > kMaxBits) fail("bits: expected 1..8, got " + std::to_string(bits));
  if (m < 0) fail("M: expected >= 0, got " + std::to_string(m));
  if (k <= 0 || k % 4) fail("K: expected a positive multiple of 4, got " + std::to_string(k));
  if (group < 4 || group % 4) fail("group_size: expected a positive multiple of 4, got " + std::to_string(group));
  if (k % group) fail("group_size: " + std::to_string(group) + " does not divide K = " + std::to_string(k));
  if (group > kMaxGroup)
    fail("group_size: " + std::to_string(group) + " exceeds the kernel's limit of 2^26 = " +
         std::to_string(kMaxGroup) + " (the int32 table sum of one group)");
  Shape s;
  s.m = m;
  s.k = k;
  s.group = group;
  s.bits = static_cast<int>(bits);
  const int64_t units = m / kUnitRows + (m % kUnitRows != 0);
  checked_product({units, k / group, s.steps_per_group(), bits, kSlabBytes}, "packed bytes (units x groups x steps x bits x 32)");
  checked_product({k / group, s.steps_per_group(), kSlabBytes}, "table bytes");
  return s;
}

// How a K-quant weight stores its sub-block scale bytes (sc[units][groups][nsub][32]).
enum KFormat : int {
  kScaleU8 = 0,   // sc one unsigned byte, mn another array of unsigned bytes (Q4_K, Q5_K)
  kScaleNib = 1,  // one byte: sc = low nibble, mn = high nibble (Q2_K's own byte)
  kScaleI8 = 2,   // sc a signed byte, no min (Q3_K as sc - 32, Q6_K)
  kScaleOne = 3,  // no sub-scale bytes: sc = 1 (and mn = 1 with mins): one-level fp16 blocks, Q4_0 as
                  // d (q - 8), Q4_1 as d q - (-m) 1, with super-block = sub-block = the file's block
};

struct KQuant {
  int format = kScaleU8;
  int sub = 32;  // sub-block elements, a multiple of 8 dividing the group
  int zero = 0;  // z0
  bool has_min = false;
  const uint8_t* sc = nullptr;   // [units][groups][group/sub][32]
  const uint8_t* mn = nullptr;   // same shape, kScaleU8 with mins only
  const uint16_t* d = nullptr;   // fp16 bits [units][groups][32]
  const uint16_t* dmin = nullptr;
  int64_t nsub(const Shape& s) const { return s.group / sub; }
  // sub-block scale and min of (unit u, group g, sub-block b, row r)
  int scale(int64_t idx) const {
    if (format == kScaleOne) return 1;
    return format == kScaleI8 ? static_cast<int8_t>(sc[idx]) : format == kScaleNib ? (sc[idx] & 15) : sc[idx];
  }
  int min(int64_t idx) const {
    if (format == kScaleOne) return has_min ? 1 : 0;
    return format == kScaleNib ? (sc[idx] >> 4) : (has_min ? mn[idx] : 0);
  }
};

// IEEE half -> float, exact (every half is a float32 value).
inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const int exp = (h >> 10) & 31;
  const uint32_t mant = h & 1023;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float32
    float v = static_cast<float>(mant) * 5.9604645e-8f;
    return sign ? -v : v;
  }
  uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (mant << 13)) : (sign | (static_cast<uint32_t>(exp + 112) << 23) | (mant << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline int accumulator_row(int a, int j) { return 16 * (a / 2) + 8 * (j & 1) + 4 * (a & 1) + j / 2; }

// Where the nibble (slab, lane-byte i, h) of a unit lives: which row of the unit and which plane.
inline void slab_position(int bits, int slab, int i, int h, int* row, int* plane) {
  if (slab < (bits / 2) * 2) {
    *plane = 2 * (slab / 2) + (i & 1);
    *row = accumulator_row(2 * (slab % 2) + h, i >> 1);
  } else {
    *plane = bits - 1;
    *row = accumulator_row(2 * h + (i & 1), i >> 1);
  }
}

// Byte offset of (row-in-unit, plane, chunk-in-group) inside one group's block, with its nibble.
inline void nibble_address(int bits, int row, int plane, int64_t chunk, int64_t* offset, int* h) {
  // invert accumulator_row: row = 16 (a/2) + 8 (j%2) + 4 (a%2) + j/2
  const int a = 2 * (row / 16) + ((row >> 2) & 1), j = 2 * (row & 3) + ((row >> 3) & 1);
  int slab, i;
  if (plane < (bits / 2) * 2) {
    slab = 2 * (plane / 2) + a / 2;
    *h = a & 1;
    i = 2 * j + (plane & 1);
  } else {
    slab = bits - 1;
    *h = a / 2;
    i = 2 * j + (a & 1);
  }
  int64_t step = chunk / 2;
  int lane = static_cast<int>(chunk & 1);
  *offset = step * bits * kSlabBytes + slab * kSlabBytes + lane * 16 + i;
}

}  // namespace lut
}  // namespace frugalnn
