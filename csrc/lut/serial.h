// T-MAC lookup-table GEMV/GEMM: the portable reference. Layouts and math: layout.h.
// Every float32 operation happens in the order written here; the AVX2 kernels and the numpy
// reference (frugalnn/kernels/lut_ref.py) follow the same order, and the integer sums are exact,
// so all three agree bit for bit.
//
// Role: serial (portable reference kernels; the weight transform, which both backends use, lives
// here too). Checked against: frugalnn/kernels/lut_ref.py, bit for bit, on every bit width, group
// size and tile configuration (tests/kernels/test_lut.py under the serial backend).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lut/serial.h
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lut/layout.h"

namespace frugalnn {
namespace lut {

// codes [M, K] (uint8 in [0, 2^b)) -> packed (layout.h) for units [u0, u1).
inline void transform_units(const uint8_t* codes, const Shape& s, int64_t u0, int64_t u1, uint8_t* packed) {
  const int64_t groups = s.groups(), cpg = s.chunks_per_group();
  for (int64_t u = u0; u < u1; ++u) {
    uint8_t* unit = packed + u * s.unit_bytes();
    std::memset(unit, 0, static_cast<size_t>(s.unit_bytes()));
    for (int row = 0; row < kUnitRows; ++row) {
      int64_t m = u * kUnitRows + row;
      if (m >= s.m) break;
      const uint8_t* q = codes + m * s.k;
      for (int64_t g = 0; g < groups; ++g) {
        uint8_t* block = unit + g * s.group_bytes();
        for (int64_t c = 0; c < cpg; ++c) {
          const uint8_t* q4 = q + g * s.group + 4 * c;
          for (int plane = 0; plane < s.bits; ++plane) {
            int idx = 0;
            for (int t = 0; t < 4; ++t) idx |= ((q4[t] >> plane) & 1) << t;
            int64_t off;
            int h;
            nibble_address(s.bits, row, plane, c, &off, &h);
            block[off] = static_cast<uint8_t>(block[off] | (idx << (4 * h)));
          }
        }
      }
    }
  }
}

// packed -> codes [M, K] for rows [m0, m1): the inverse of transform_units.
inline void untransform_rows(const uint8_t* packed, const Shape& s, int64_t m0, int64_t m1, uint8_t* codes) {
  const int64_t groups = s.groups(), cpg = s.chunks_per_group();
  for (int64_t m = m0; m < m1; ++m) {
    const uint8_t* unit = packed + (m / kUnitRows) * s.unit_bytes();
    int row = static_cast<int>(m % kUnitRows);
    uint8_t* q = codes + m * s.k;
    std::memset(q, 0, static_cast<size_t>(s.k));
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t* block = unit + g * s.group_bytes();
      for (int64_t c = 0; c < cpg; ++c) {
        for (int plane = 0; plane < s.bits; ++plane) {
          int64_t off;
          int h;
          nibble_address(s.bits, row, plane, c, &off, &h);
          int idx = (block[off] >> (4 * h)) & 15;
          for (int t = 0; t < 4; ++t) q[g * s.group + 4 * c + t] |= static_cast<uint8_t>(((idx >> t) & 1) << plane);
        }
      }
    }
  }
}

// The float32 table of one chunk, entries j >= 8 (a3 enters with +); T[j] = -T[15 - j] for j < 8.
// Order: u = s0 a0 + s1 a1; v = u + s2 a2; T = v + a3 (written so the vector code matches).
inline void chunk_table_upper(const float* a, float* t8) {
  for (int j = 8; j < 16; ++j) {
    float u = ((j & 1) ? a[0] : -a[0]) + ((j & 2) ? a[1] : -a[1]);
    float v = u + ((j & 4) ? a[2] : -a[2]);
    t8[j - 8] = v + a[3];
  }
}

// Rounds one chunk's 8 upper float entries to int8 (scale `inv`, clamped to +-127) and writes all
// 16 entries of its table, the lower half mirrored: t16[8 + e] = v, t16[7 - e] = -v. Returns
// t16[15], the chunk's contribution to the group's table sum. Shared by both backends, so their
// tables agree bit for bit.
inline int32_t store_chunk_table(const float* upper8, float inv, int8_t* t16) {
  for (int e = 0; e < 8; ++e) {
    float r = std::nearbyint(upper8[e] * inv);
    r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
    int v = static_cast<int>(r);
    t16[8 + e] = static_cast<int8_t>(v);
    t16[7 - e] = static_cast<int8_t>(-v);
  }
  return t16[15];
}

namespace serial {

// One activation column x [K] (already free of special values) -> int8 tables, per-group table
// scales ts [groups] and isum [groups] (sum of the quantized all-plus entries, for zero points).
// A group whose largest entry is below kTinyTable is quantized from kTinyScale * T (exact; see
// layout.h), with ts still maxabs / 127.
inline void build_tables(const float* x, const Shape& s, int8_t* tables, float* ts, int32_t* isum) {
  const int64_t groups = s.groups(), cpg = s.chunks_per_group(), spg = s.steps_per_group();
  std::vector<float> upper(static_cast<size_t>(cpg) * 8);
  for (int64_t g = 0; g < groups; ++g) {
    float maxabs = 0.0f;
    for (int64_t c = 0; c < cpg; ++c) {
      float* t8 = upper.data() + c * 8;
      chunk_table_upper(x + g * s.group + 4 * c, t8);
      for (int e = 0; e < 8; ++e) {
        float a = std::fabs(t8[e]);
        maxabs = a > maxabs ? a : maxabs;
      }
    }
    float top = maxabs;
    if (maxabs > 0.0f && maxabs < kTinyTable) {
      for (float& v : upper) v *= kTinyScale;
      top = maxabs * kTinyScale;
    }
    const float inv = top > 0.0f ? 127.0f / top : 0.0f;
    ts[g] = maxabs / 127.0f;
    int8_t* tg = tables + g * spg * kSlabBytes;
    std::memset(tg, 0, static_cast<size_t>(spg * kSlabBytes));
    int32_t sum = 0;
    for (int64_t c = 0; c < cpg; ++c)  // chunk c = step c/2, lane c%2
      sum += store_chunk_table(upper.data() + c * 8, inv, tg + c * 16);
    isum[g] = sum;
  }
}

// (row, plane) of every nibble of a step, computed once per call: [slab][i][h] (layout.h, slab_position).
struct SlabMap {
  int row[kMaxBits][16][2], plane[kMaxBits][16][2];
  explicit SlabMap(int bits) {
    for (int slab = 0; slab < bits; ++slab)
      for (int i = 0; i < 16; ++i)
        for (int h = 0; h < 2; ++h) slab_position(bits, slab, i, h, &row[slab][i][h], &plane[slab][i][h]);
  }
  // acc[row] += every code of one step times its chunk's table entry, weighted by its plane: `step` is the
  // step's slabs, `t` its two 16-entry chunk tables (exact in int64 for any group, layout.h).
  void add_step(const uint8_t* step, const int8_t* t, int bits, int64_t* acc) const {
    for (int slab = 0; slab < bits; ++slab) {
      const uint8_t* sb = step + slab * kSlabBytes;
      for (int lane = 0; lane < 2; ++lane) {
        const int8_t* t16 = t + lane * 16;
        for (int i = 0; i < 16; ++i) {
          uint8_t byte = sb[lane * 16 + i];
          acc[row[slab][i][0]] += static_cast<int64_t>(t16[byte & 15]) * (1 << plane[slab][i][0]);
          acc[row[slab][i][1]] += static_cast<int64_t>(t16[byte >> 4]) * (1 << plane[slab][i][1]);
        }
      }
    }
  }
};

// y[M] for one column given its tables; ws/zt are [units][groups][32] (layout.h).
inline void gemv_units(const uint8_t* packed, const float* ws, const float* zt, bool has_zero, const Shape& s,
                       const int8_t* tables, const float* ts, const int32_t* isum, int64_t u0, int64_t u1,
                       float* y) {
  const int64_t groups = s.groups(), spg = s.steps_per_group();
  const SlabMap map(s.bits);
  for (int64_t u = u0; u < u1; ++u) {
    float acc_y[kUnitRows] = {0};
    const uint8_t* unit = packed + u * s.unit_bytes();
    for (int64_t g = 0; g < groups; ++g) {
      int64_t acc[kUnitRows] = {0};  // exact for any group (layout.h, integer ranges)
      const uint8_t* block = unit + g * s.group_bytes();
      const int8_t* tg = tables + g * spg * kSlabBytes;
      for (int64_t st = 0; st < spg; ++st) {
        map.add_step(block + st * s.step_bytes(), tg + st * kSlabBytes, s.bits, acc);
      }
      const float* wsg = ws + (u * groups + g) * kUnitRows;
      const float* ztg = zt + (u * groups + g) * kUnitRows;
      const float zi = static_cast<float>(isum[g]);
      for (int r = 0; r < kUnitRows; ++r) {  // float steps and their order: layout.h
        acc_y[r] = acc_y[r] + (static_cast<float>(acc[r]) * wsg[r]) * ts[g];
        if (has_zero) acc_y[r] = acc_y[r] + (ztg[r] * zi) * ts[g];
      }
    }
    int64_t rows = s.m - u * kUnitRows < kUnitRows ? s.m - u * kUnitRows : kUnitRows;
    std::memcpy(y + u * kUnitRows, acc_y, static_cast<size_t>(rows) * sizeof(float));
  }
}

// The decode both add_special_* share: for each unit u in [u0, u1) and each k of `ks` in order, the unit's
// codes q[0..31] of column k, then f(u, row0, rows, k, q).
template <class F>
inline void for_each_special_code(const uint8_t* packed, const Shape& s, const int64_t* ks, int64_t n_ks, int64_t u0,
                                  int64_t u1, F&& f) {
  const SlabMap map(s.bits);
  for (int64_t u = u0; u < u1; ++u) {
    const int64_t row0 = u * kUnitRows;
    const int rows = static_cast<int>(s.m - row0 < kUnitRows ? s.m - row0 : kUnitRows);
    for (int64_t n = 0; n < n_ks; ++n) {
      const int64_t k = ks[n], g = k / s.group, c = (k % s.group) / 4;
      const int t = static_cast<int>(k % 4);
      const uint8_t* step = packed + u * s.unit_bytes() + g * s.group_bytes() + (c / 2) * s.step_bytes() + (c % 2) * 16;
      int q[kUnitRows] = {0};
      for (int slab = 0; slab < s.bits; ++slab)
        for (int i = 0; i < 16; ++i) {
          const uint8_t byte = step[slab * kSlabBytes + i];
          for (int h = 0; h < 2; ++h) q[map.row[slab][i][h]] |= ((byte >> (4 * h + t)) & 1) << map.plane[slab][i][h];
        }
      f(u, row0, rows, k, q);
    }
  }
}

// Special activations (NaN-free: driver.h handles NaN columns whole), added back exactly as a dense
// matmul would: for k in `ks` ascending, y[m] = y[m] + w[m,k] * x[k] with
// w = (2q - (2^b - 1)) * ws + zt (or without zt), for the rows of units [u0, u1).
// Decodes each unit's 32 codes of column k from one step's slabs (the nibble map of gemv_units),
// not row by row through code_at: ~b*32 operations per unit instead of ~15 b per weight.
inline void add_special_units(const uint8_t* packed, const float* ws, const float* zt, bool has_zero,
                              const Shape& s, const float* x, const int64_t* ks, int64_t n_ks, int64_t u0,
                              int64_t u1, float* y) {
  const int64_t groups = s.groups();
  const float top = static_cast<float>((1 << s.bits) - 1);
  for_each_special_code(packed, s, ks, n_ks, u0, u1, [&](int64_t u, int64_t row0, int rows, int64_t k, const int* q) {
    const int64_t g = k / s.group;
    const float xv = x[k];
    const float* wsg = ws + (u * groups + g) * kUnitRows;
    const float* ztg = zt + (u * groups + g) * kUnitRows;
    for (int r = 0; r < rows; ++r) {
      const float level = 2.0f * static_cast<float>(q[r]) - top;  // exact: small integers
      const float wv = has_zero ? level * wsg[r] + ztg[r] : level * wsg[r];
      y[row0 + r] = y[row0 + r] + wv * xv;
    }
  });
}

// Two-level (K-quant) weights, layout.h: y[M] for one column, units [u0, u1). Sub-block sums in
// integers, sub-scales applied in integers, one float conversion per super-block and row.
inline void gemv_kq_units(const uint8_t* packed, const KQuant& kq, const Shape& s, const int8_t* tables,
                          const float* ts, int64_t u0, int64_t u1, float* y) {
  const int64_t groups = s.groups(), spg = s.steps_per_group(), nsub = kq.nsub(s), sps = kq.sub / 8;
  const int64_t cz = ((int64_t{1} << s.bits) - 1) - 2 * int64_t{kq.zero};
  const SlabMap map(s.bits);
  for (int64_t u = u0; u < u1; ++u) {
    float acc_y[kUnitRows] = {0};
    const uint8_t* unit = packed + u * s.unit_bytes();
    for (int64_t g = 0; g < groups; ++g) {
      int64_t S[kUnitRows] = {0}, Mn[kUnitRows] = {0};
      const uint8_t* block = unit + g * s.group_bytes();
      const int8_t* tg = tables + g * spg * kSlabBytes;
      for (int64_t b = 0; b < nsub; ++b) {
        int64_t acc[kUnitRows] = {0};
        int64_t isub = 0;
        for (int64_t st = b * sps; st < (b + 1) * sps; ++st) {
          isub += tg[st * kSlabBytes + 15] + tg[st * kSlabBytes + 16 + 15];
          map.add_step(block + st * s.step_bytes(), tg + st * kSlabBytes, s.bits, acc);
        }
        const int64_t base = ((u * groups + g) * nsub + b) * kUnitRows;
        for (int r = 0; r < kUnitRows; ++r) {
          S[r] += static_cast<int64_t>(kq.scale(base + r)) * (acc[r] + cz * isub);
          Mn[r] += static_cast<int64_t>(kq.min(base + r)) * isub;
        }
      }
      const int64_t dbase = (u * groups + g) * kUnitRows;
      for (int r = 0; r < kUnitRows; ++r) {  // float steps and their order: layout.h
        const float dh = half_to_float(kq.d[dbase + r]) * 0.5f;
        acc_y[r] = acc_y[r] + (static_cast<float>(S[r]) * dh) * ts[g];
        if (kq.has_min) acc_y[r] = acc_y[r] - (static_cast<float>(Mn[r]) * half_to_float(kq.dmin[dbase + r])) * ts[g];
      }
    }
    int64_t rows = s.m - u * kUnitRows < kUnitRows ? s.m - u * kUnitRows : kUnitRows;
    std::memcpy(y + u * kUnitRows, acc_y, static_cast<size_t>(rows) * sizeof(float));
  }
}

// The dequantized K-quant weight of row r of unit u at column k given its code q, in gguf's order:
// (d * sc) * (q - z0) - dmin * mn.
inline float kq_weight(const KQuant& kq, const Shape& s, int64_t u, int64_t k, int r, int q) {
  const int64_t g = k / s.group, b = (k % s.group) / kq.sub, groups = s.groups();
  const int64_t idx = ((u * groups + g) * kq.nsub(s) + b) * kUnitRows + r;
  const int64_t di = (u * groups + g) * kUnitRows + r;
  const float w = (half_to_float(kq.d[di]) * static_cast<float>(kq.scale(idx))) * static_cast<float>(q - kq.zero);
  if (!kq.has_min) return w;
  return w - half_to_float(kq.dmin[di]) * static_cast<float>(kq.min(idx));
}

// Special activations for K-quant weights: y[m] = y[m] + w[m,k] * x[k], k ascending (as
// add_special_units; both backends use this one).
inline void add_special_kq(const uint8_t* packed, const KQuant& kq, const Shape& s, const float* x, const int64_t* ks,
                           int64_t n_ks, int64_t u0, int64_t u1, float* y) {
  for_each_special_code(packed, s, ks, n_ks, u0, u1, [&](int64_t u, int64_t row0, int rows, int64_t k, const int* q) {
    for (int r = 0; r < rows; ++r) y[row0 + r] = y[row0 + r] + kq_weight(kq, s, u, k, r, q[r]) * x[k];
  });
}

}  // namespace serial
}  // namespace lut
}  // namespace frugalnn
