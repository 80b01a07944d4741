// T-MAC matmul driver: special activations, table building, tiling over units and columns,
// threads. Backend-independent; the per-block kernels come from serial.h / avx2.h / avx512.h (the
// avx512 backend builds its tables and adds special activations with the AVX2 code; two-level weights
// run avx512::kernel_kq where avx512::kq_fits, else the AVX2 two-level kernel).
//
//   for each block of `col_block` columns (their tables stay in L2):
//     parallel over blocks of R units (each thread streams its own weight rows):
//       for each group of NC columns: kernel<BITS, R, NC>
// Activations that are NaN/inf or too large for float32 tables (layout.h) are zeroed before the
// tables are built and added back afterwards as w[m,k] * x[k] in ascending k, which is how the
// dense matmul propagates them (inf * w = +-inf, inf - inf = nan, nan -> nan). A NaN makes its
// whole output column NaN at once; inf and huge values go through add_special_units (serial.h,
// avx2.h), which decodes 32 rows per unit and activation at a time, split over threads like the
// kernel. (It used to decode every weight through code_at, on one thread. A 1536 x 576 4-bit GEMV
// at one thread, against the same call on finite activations: all NaN 1.2x (was 470x), one in 16
// inf 1.5x (15x), all inf or all 6e37 6.5x (460x). The floor for inf/huge is the exact per-weight
// float work, w * x added row by row; tests/kernels/test_lut.py checks these ratios loosely.)
//
// Role: driver (special values, tiling, threads, backend choice). Also the entry point of the
// compiled Llama decoder's LUT layers (csrc/llama/driver.h calls matmul below): a cross-op
// dependency on this driver, not on the kernels. Checked against: the numpy reference bit for bit
// for every tile configuration and thread count, and NaN/inf/huge activations against a dense
// matmul (tests/kernels/test_lut.py on both backends).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lut/driver.h
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "lut/avx2.h"
#include "lut/avx512.h"
#include "lut/layout.h"
#include "lut/serial.h"

namespace frugalnn {
namespace lut {

struct Config {
  int units = 1;          // R: units (32 rows each) per register block
  int cols = 1;           // NC: columns per register block
  int64_t col_block = 32;  // columns whose tables are built and consumed together
  int64_t prefetch = 0;    // software prefetch distance in each unit's weight stream (bytes)
};

struct Weights {
  const uint8_t* packed;
  const float *ws, *zt;
  bool has_zero;
  const KQuant* kq = nullptr;  // two-level (K-quant) scales instead of ws/zt (layout.h)
};

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

template <class T>
std::unique_ptr<T[], AlignedFree> aligned_array(int64_t n) {
  size_t bytes = static_cast<size_t>(n > 0 ? n : 1) * sizeof(T);
  bytes = (bytes + 63) / 64 * 64;
  return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(std::aligned_alloc(64, bytes)));
}

inline bool is_special(float v) { return !(std::fabs(v) < kSpecialMagnitude); }  // NaN too

inline bool any_special(const float* x, int64_t n) {
  int bad = 0;
  for (int64_t k = 0; k < n; ++k) bad |= !(std::fabs(x[k]) < kSpecialMagnitude);
  return bad != 0;
}

// Per-thread scratch reused across calls (a GEMV is ~0.1 ms: allocations would show).
template <class T>
T* scratch_buffer(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

#if FRUGALNN_X86
// One register block with the kernels of ISA (avx2::kernel or avx512::kernel; same contract).
template <class ISA, int BITS>
void run_block(const avx2::Block& blk, const Shape& s, int64_t u0, int r, int nc) {
  if (BITS <= 4) {
    // the register blocks the tuner picks from (frugalnn/tmac/tune.py) ...
    if (nc == 1 && r == 4) return ISA::template kernel<BITS, 4, 1>(blk, s, u0);
    if (nc == 1 && r == 2) return ISA::template kernel<BITS, 2, 1>(blk, s, u0);
    if (nc == 2 && r == 2) return ISA::template kernel<BITS, 2, 2>(blk, s, u0);
    // ... and any other (units, cols) a caller passes: one unit at a time. (This used to run the
    // first unit only, leaving the others' outputs unwritten, e.g. for units=3 or units=2, cols=3.)
    for (int i = 0; i < r; ++i) {
      switch (nc) {
        case 1: ISA::template kernel<BITS, 1, 1>(blk, s, u0 + i); break;
        case 2: ISA::template kernel<BITS, 1, 2>(blk, s, u0 + i); break;
        case 3: ISA::template kernel<BITS, 1, 3>(blk, s, u0 + i); break;
        default: ISA::template kernel<BITS, 1, 4>(blk, s, u0 + i); break;
      }
    }
    return;
  }
  // wide codes: one unit, one column at a time
  avx2::Block one = blk;
  for (int c = 0; c < nc; ++c) {
    one.tables[0] = blk.tables[c];
    one.ts[0] = blk.ts[c];
    one.isum[0] = blk.isum[c];
    one.y[0] = blk.y[c];
    for (int i = 0; i < r; ++i) ISA::template kernel<BITS, 1, 1>(one, s, u0 + i);
  }
}

struct Avx2Kernels {
  template <int BITS, int R, int NC>
  static void kernel(const avx2::Block& b, const Shape& s, int64_t u0) { avx2::kernel<BITS, R, NC>(b, s, u0); }
};
struct Avx512Kernels {
  template <int BITS, int R, int NC>
  static void kernel(const avx2::Block& b, const Shape& s, int64_t u0) { avx512::kernel<BITS, R, NC>(b, s, u0); }
};

template <class ISA>
inline void run_isa(const avx2::Block& blk, const Shape& s, int64_t u0, int r, int nc) {
  switch (s.bits) {
    case 1: return run_block<ISA, 1>(blk, s, u0, r, nc);
    case 2: return run_block<ISA, 2>(blk, s, u0, r, nc);
    case 3: return run_block<ISA, 3>(blk, s, u0, r, nc);
    case 4: return run_block<ISA, 4>(blk, s, u0, r, nc);
    case 5: return run_block<ISA, 5>(blk, s, u0, r, nc);
    case 6: return run_block<ISA, 6>(blk, s, u0, r, nc);
    case 7: return run_block<ISA, 7>(blk, s, u0, r, nc);
    default: return run_block<ISA, 8>(blk, s, u0, r, nc);
  }
}

template <int BITS, bool SPLIT>
inline void run_kq_cols(const avx2::Block& blk, const KQuant& kq, const Shape& s, int64_t u, int nc) {
  switch (nc) {
    case 1: return avx2::kernel_kq<BITS, 1, SPLIT>(blk, kq, s, u);
    case 2: return avx2::kernel_kq<BITS, 2, SPLIT>(blk, kq, s, u);
    case 3: return avx2::kernel_kq<BITS, 3, SPLIT>(blk, kq, s, u);
    default: return avx2::kernel_kq<BITS, 4, SPLIT>(blk, kq, s, u);
  }
}

template <int BITS>
inline void run_kq512(const avx2::Block& blk, const KQuant& kq, const Shape& s, int64_t u, int nc) {
  switch (nc) {
    case 1: return avx512::kernel_kq<BITS, 1>(blk, kq, s, u);
    case 2: return avx512::kernel_kq<BITS, 2>(blk, kq, s, u);
    case 3: return avx512::kernel_kq<BITS, 3>(blk, kq, s, u);
    default: return avx512::kernel_kq<BITS, 4>(blk, kq, s, u);
  }
}

// One unit: the avx512 kernel (up to 6 bits, where the caller found its ranges hold), else the AVX2 one.
template <int BITS>
inline void run_kq_unit(bool avx512, const avx2::Block& blk, const KQuant& kq, const Shape& s, int64_t u, int nc) {
  if constexpr (BITS <= 6) {
    if (avx512) return run_kq512<BITS>(blk, kq, s, u, nc);
  }
  if (BITS > 4 && avx2::kq_needs_split(BITS, kq.sub / 8)) return run_kq_cols<BITS, true>(blk, kq, s, u, nc);
  run_kq_cols<BITS, false>(blk, kq, s, u, nc);
}

// K-quant weights, one unit at a time: avx512::kernel_kq under the avx512 backend where its int16
// ranges hold (avx512::kq_fits; all of llama.cpp's K-quants and one-level types up to 6 bits), else
// the AVX2 kernel.
inline void run_kq(bool avx512, const avx2::Block& blk, const KQuant& kq, const Shape& s, int64_t u0, int r, int nc) {
  const bool wide = avx512 && s.bits <= 6 && avx512::kq_fits(s.bits, kq);
  for (int64_t u = u0; u < u0 + r; ++u) {
    switch (s.bits) {
      case 1: run_kq_unit<1>(wide, blk, kq, s, u, nc); break;
      case 2: run_kq_unit<2>(wide, blk, kq, s, u, nc); break;
      case 3: run_kq_unit<3>(wide, blk, kq, s, u, nc); break;
      case 4: run_kq_unit<4>(wide, blk, kq, s, u, nc); break;
      case 5: run_kq_unit<5>(wide, blk, kq, s, u, nc); break;
      case 6: run_kq_unit<6>(wide, blk, kq, s, u, nc); break;
      case 7: run_kq_unit<7>(wide, blk, kq, s, u, nc); break;
      default: run_kq_unit<8>(wide, blk, kq, s, u, nc); break;
    }
  }
}

inline void run_avx(bool avx512, const avx2::Block& blk, const Shape& s, int64_t u0, int r, int nc) {
  if (avx512) return run_isa<Avx512Kernels>(blk, s, u0, r, nc);
  run_isa<Avx2Kernels>(blk, s, u0, r, nc);
}
#endif

// x [N, K] -> out [N, M]. Validation happens in the binding.
inline void matmul(const float* x, int64_t n, const Weights& w, const Shape& s, float* out, int threads,
                   const Config& cfg) {
  const int64_t K = s.k, M = s.m, groups = s.groups(), units = s.units();
  if (n == 0 || M == 0) return;
#if FRUGALNN_X86
  const bool avx = use_avx2();  // avx2 or avx512
  const bool avx512 = use_avx512();
#else
  const bool avx = false;
#endif
  // Special activations per column: zeroed copies, positions kept for the fix-up. The first pass
  // is a branch-free reduction (vectorized by the compiler); the slow pass runs only if needed.
  // A column holding a NaN comes out all NaN (NaN times any weight is NaN), without a fix-up.
  std::vector<std::vector<int64_t>> special(static_cast<size_t>(n));
  std::vector<char> nan_col(static_cast<size_t>(n), 0);
  std::vector<float> clean;
  std::vector<int64_t> clean_row(static_cast<size_t>(n), -1);
  for (int64_t c = 0; c < n; ++c) {
    const float* xc = x + c * K;
    if (!any_special(xc, K)) continue;
    for (int64_t k = 0; k < K; ++k)
      if (is_special(xc[k])) {
        if (std::isnan(xc[k])) nan_col[c] = 1;
        special[c].push_back(k);
      }
    if (nan_col[c]) special[c].clear();
    clean_row[c] = static_cast<int64_t>(clean.size() / K);
    clean.insert(clean.end(), xc, xc + K);
    float* cc = clean.data() + clean_row[c] * K;
    for (int64_t k = 0; k < K; ++k)
      if (is_special(cc[k])) cc[k] = 0.0f;
  }
  auto column = [&](int64_t c) { return clean_row[c] >= 0 ? clean.data() + clean_row[c] * K : x + c * K; };

  const int64_t col_block = cfg.col_block > 0 ? cfg.col_block : 32;
  const int64_t tb = s.table_bytes();
  const int64_t cb_cols = n < col_block ? n : col_block;
  auto tables = aligned_array<int8_t>(cb_cols * tb);
  auto ts = aligned_array<float>(cb_cols * groups);
  auto isum = aligned_array<int32_t>(cb_cols * groups);
  const int r_units = cfg.units >= 1 && cfg.units <= 4 ? cfg.units : 1;
  const int nc_max = cfg.cols >= 1 && cfg.cols <= 4 ? cfg.cols : 1;

  for (int64_t c0 = 0; c0 < n; c0 += col_block) {
    const int64_t nb = n - c0 < col_block ? n - c0 : col_block;
    parallel_for(nb, nb > 1 ? threads : 1, [&](int64_t i) {
      const float* xc = column(c0 + i);
#if FRUGALNN_X86
      if (avx) {
        thread_local std::vector<float> scratch;
        avx2::build_tables(xc, s, tables.get() + i * tb, ts.get() + i * groups, isum.get() + i * groups,
                           scratch_buffer(scratch, s.chunks_per_group() * 8 + 8));
        return;
      }
#endif
      serial::build_tables(xc, s, tables.get() + i * tb, ts.get() + i * groups, isum.get() + i * groups);
    });
    const int64_t blocks = (units + r_units - 1) / r_units;
    parallel_for(blocks, threads, [&](int64_t blk_i) {
      const int64_t u0 = blk_i * r_units;
      const int r = static_cast<int>(units - u0 < r_units ? units - u0 : r_units);
      for (int64_t i = 0; i < nb; i += nc_max) {
        const int nc = static_cast<int>(nb - i < nc_max ? nb - i : nc_max);
#if FRUGALNN_X86
        if (avx) {
          avx2::Block b{w.packed, w.ws, w.zt, w.has_zero, {}, {}, {}, {}, cfg.prefetch};
          for (int c = 0; c < nc; ++c) {
            b.tables[c] = tables.get() + (i + c) * tb;
            b.ts[c] = ts.get() + (i + c) * groups;
            b.isum[c] = isum.get() + (i + c) * groups;
            b.y[c] = out + (c0 + i + c) * M;
          }
          if (w.kq) {
            run_kq(avx512, b, *w.kq, s, u0, r, nc);
          } else if (r == r_units) {
            run_avx(avx512, b, s, u0, r, nc);
          } else {
            for (int u = 0; u < r; ++u) run_avx(avx512, b, s, u0 + u, 1, nc);
          }
          continue;
        }
#endif
        for (int c = 0; c < nc; ++c)
          if (w.kq) serial::gemv_kq_units(w.packed, *w.kq, s, tables.get() + (i + c) * tb, ts.get() + (i + c) * groups,
                                          u0, u0 + r, out + (c0 + i + c) * M);
          else serial::gemv_units(w.packed, w.ws, w.zt, w.has_zero, s, tables.get() + (i + c) * tb,
                             ts.get() + (i + c) * groups, isum.get() + (i + c) * groups, u0, u0 + r,
                             out + (c0 + i + c) * M);
      }
    });
  }

  // Add the special activations back exactly: out[m] += w[m,k] * x[k], k ascending, the columns'
  // units split over threads (a GEMV's fix-up is as parallel as its kernel).
  std::vector<int64_t> fix;
  for (int64_t c = 0; c < n; ++c)
    if (nan_col[c] || !special[c].empty()) fix.push_back(c);
  if (fix.empty()) return;
  const int64_t per_col = threads > 1 ? (units < 4 * threads ? units : 4 * threads) : 1;
  const int64_t step = (units + per_col - 1) / per_col;
  parallel_for(static_cast<int64_t>(fix.size()) * per_col, threads, [&](int64_t task) {
    const int64_t c = fix[static_cast<size_t>(task / per_col)];
    const int64_t u0 = (task % per_col) * step, u1 = u0 + step < units ? u0 + step : units;
    if (u0 >= u1) return;
    float* y = out + c * M;
    if (nan_col[c]) {
      const int64_t m1 = u1 * kUnitRows < M ? u1 * kUnitRows : M;
      for (int64_t m = u0 * kUnitRows; m < m1; ++m) y[m] = std::numeric_limits<float>::quiet_NaN();
      return;
    }
    const std::vector<int64_t>& ks = special[static_cast<size_t>(c)];
    if (w.kq) return serial::add_special_kq(w.packed, *w.kq, s, x + c * K, ks.data(), static_cast<int64_t>(ks.size()),
                                            u0, u1, y);
#if FRUGALNN_X86
    if (avx) return avx2::add_special_units(w.packed, w.ws, w.zt, w.has_zero, s, x + c * K, ks.data(),
                                            static_cast<int64_t>(ks.size()), u0, u1, y);
#endif
    serial::add_special_units(w.packed, w.ws, w.zt, w.has_zero, s, x + c * K, ks.data(),
                              static_cast<int64_t>(ks.size()), u0, u1, y);
  });
}

// codes [M, K] -> packed (layout.h), units split over threads.
inline void transform(const uint8_t* codes, const Shape& s, uint8_t* packed, int threads) {
  parallel_range(s.units(), threads, 1,
                 [&](int64_t u0, int64_t u1) { transform_units(codes, s, u0, u1, packed); });
}

// packed -> codes [M, K], rows split over threads.
inline void untransform(const uint8_t* packed, const Shape& s, uint8_t* codes, int threads) {
  parallel_range(s.m, threads, 32, [&](int64_t m0, int64_t m1) { untransform_rows(packed, s, m0, m1, codes); });
}

// One activation column's tables with the active backend (x free of special values), for tests.
inline void build_tables(const float* x, const Shape& s, int8_t* tables, float* ts, int32_t* isum) {
#if FRUGALNN_X86
  if (use_avx2()) {
    std::vector<float> scratch(static_cast<size_t>(s.chunks_per_group() * 8 + 8));
    avx2::build_tables(x, s, tables, ts, isum, scratch.data());
    return;
  }
#endif
  serial::build_tables(x, s, tables, ts, isum);
}

}  // namespace lut
}  // namespace frugalnn
