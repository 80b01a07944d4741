// Blocked L-Mul matmul driver, shared by the serial and AVX2 backends (they differ only in the
// micro-kernels they plug in). Semantics and summation order: serial.h.
//
// Shapes (one batch entry; the binding loops over the batch):
//   A [M, K] row-major; B [K, N] row-major, or B^T [N, K] row-major (transpose_b); C [M, N].
// Memory stays O(M*K + K*N + M*N): operands are prepared once into packed panels, products are
// formed in registers and summed straight into C, never materialised as an M*K*N tensor.
//
// Per (tile or strip, K panel) the packer records min/max magnitude of the nonzero operands and
// whether zeros or inf/NaN occur. A (tile, strip, panel) block whose magnitudes prove that no
// product can underflow or overflow runs the fast micro-kernel (one integer add and one float
// add per product, plus a mask when zeros occur); any other block runs the general micro-kernel,
// which applies every rule of serial.h per product. Both give identical bits, so the choice is
// invisible except in speed. The packed-panel format (x_side, y_side, keep): serial.h.
//
// Role: driver (packing tasks, blocking, threads, backend choice). Checked against: the numpy
// reference bit for bit, with and without the fast micro-kernels, for any thread count
// (tests/kernels/test_lmul_kernel.py on both backends).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/lmul/driver.h
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/cpu.h"
#include "common/threads.h"
#include "lmul/avx2.h"
#include "lmul/avx512.h"
#include "lmul/serial.h"

namespace frugalnn {
namespace lmul {

constexpr int64_t kMC = 8 * kMR;   // rows per task
constexpr int64_t kNC = 16 * kNR;  // columns per task
constexpr int64_t kGroup = 8;      // B strips per packing task

// True when no product of these two panels can leave the normal range (d in [2^23, 255 << 23)).
inline bool fast_path_safe(const PanelStats& a, const PanelStats& b, const Params& p) {
  if (a.special || b.special) return false;
  if (a.hi == 0 || b.hi == 0) return true;  // one side is all zeros: every product is a signed zero
  const uint64_t lo = static_cast<uint64_t>(a.lo) + b.lo, hi = static_cast<uint64_t>(a.hi) + b.hi;
  return lo >= static_cast<uint64_t>(p.offset) + kMinNormal && hi < static_cast<uint64_t>(p.offset) + kInf;
}

struct Packed {
  int64_t m, n, k, tiles, strips, panels;
  // Few rows (m <= kMR, e.g. a decoding step): B is read once, so it is prepared strip by strip into an
  // L1 buffer right before use instead of being packed whole (which costs twice B's bytes in traffic).
  bool fused_b = false;
  const uint32_t* b_raw = nullptr;
  bool transpose_b = false;
  std::vector<uint32_t> xa, kxa, yb, kyb;
  std::vector<PanelStats> sa, sb;  // [tile][panel], [strip][panel]
};

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Sizes the packed buffers of one batch entry (reusing their capacity: the packers write every
// slot the micro-kernels read, so nothing needs clearing).
inline void pack_init(Packed& out, int64_t m, int64_t n, int64_t k, const float* b, bool transpose_b) {
  out.m = m; out.n = n; out.k = k;
  out.tiles = ceil_div(m, kMR);
  out.strips = ceil_div(n, kNR);
  out.panels = ceil_div(k, kKC);
  out.fused_b = m <= kMR;
  out.b_raw = reinterpret_cast<const uint32_t*>(b);
  out.transpose_b = transpose_b;
  const int64_t packed_strips = out.fused_b ? 0 : out.strips;
  out.xa.resize(static_cast<size_t>(out.tiles * k * kMR));
  out.kxa.resize(out.xa.size());
  out.yb.resize(static_cast<size_t>(packed_strips * k * kNR));
  out.kyb.resize(out.yb.size());
  out.sa.assign(static_cast<size_t>(out.tiles * out.panels), PanelStats{});
  out.sb.assign(static_cast<size_t>(packed_strips * out.panels), PanelStats{});
}

// One strip (16 columns) x one K panel of B, prepared into ys/ks[kk * 16 + c] (the fused path).
template <class Ops>
void pack_strip_panel(const Packed& pk, int64_t s, int64_t k0, int64_t kc, const Params& p, uint32_t* ys,
                      uint32_t* ks, PanelStats& st) {
  const int64_t j0 = s * kNR, cols = std::min<int64_t>(kNR, pk.n - j0);
  if (pk.transpose_b) {
    Ops::prepare_columns(pk.b_raw + j0 * pk.k + k0, pk.k, cols, kc, p, ys, ks, st);
  } else {
    Ops::prepare_rows(pk.b_raw + k0 * pk.n + j0, pk.n, kc, cols, p, ys, ks, st);
  }
  if (cols < kNR)
    for (int64_t kk = 0; kk < kc; ++kk)
      for (int64_t c = cols; c < kNR; ++c) ys[kk * kNR + c] = ks[kk * kNR + c] = 0u;
}

inline size_t packed_bytes(const Packed& pk) {
  return 4 * (pk.xa.capacity() + pk.kxa.capacity() + pk.yb.capacity() + pk.kyb.capacity());
}

// Packs task `task` of one entry: tiles of A first (0 <= task < tiles), then groups of B strips.
// Ops::prepare_run(src, count, y_side, params, side, keep, step, stats) prepares `count`
// contiguous operands into side/keep[0], [step], ... and folds them into `stats`;
// Ops::prepare_columns(src, ld, cols, count, ...) prepares the y sides of `cols` rows of B^T
// (row c at src + c * ld, `count` values each) into a strip slice side[kk * 16 + c].
template <class Ops>
void pack_task(const float* a, const float* b, bool transpose_b, const Params& p, Packed& out, int64_t task) {
  const int64_t m = out.m, n = out.n, k = out.k, panels = out.panels;
  const uint32_t* ab = reinterpret_cast<const uint32_t*>(a);
  const uint32_t* bb = reinterpret_cast<const uint32_t*>(b);
  if (task < out.tiles) {
    const int64_t t = task, rows = std::min<int64_t>(kMR, m - t * kMR);
    uint32_t* xs = out.xa.data() + t * k * kMR;
    uint32_t* ks = out.kxa.data() + t * k * kMR;
    for (int64_t pnl = 0; pnl < panels; ++pnl) {
      const int64_t k0 = pnl * kKC, kc = std::min(kKC, k - k0);
      PanelStats& st = out.sa[static_cast<size_t>(t * panels + pnl)];
      for (int64_t r = 0; r < rows; ++r)  // row r of the tile: contiguous in A, every kMR-th slot in the tile
        Ops::prepare_run(ab + (t * kMR + r) * k + k0, kc, false, p, xs + k0 * kMR + r, ks + k0 * kMR + r, kMR, st);
    }
  } else {  // a group of kGroup strips of B: rows of B are read kGroup * 16 values at a time
    const int64_t s0 = (task - out.tiles) * kGroup, s1 = std::min(out.strips, s0 + kGroup);
    for (int64_t pnl = 0; pnl < panels; ++pnl) {
      const int64_t k0 = pnl * kKC, kc = std::min(kKC, k - k0);
      for (int64_t s = s0; s < s1 && transpose_b; ++s) {  // column j of B is row j of B^T: contiguous in k
        const int64_t j0 = s * kNR, cols = std::min<int64_t>(kNR, n - j0);
        Ops::prepare_columns(bb + j0 * k + k0, k, cols, kc, p, out.yb.data() + (s * k + k0) * kNR,
                             out.kyb.data() + (s * k + k0) * kNR, out.sb[static_cast<size_t>(s * panels + pnl)]);
      }
      for (int64_t kk = k0; kk < k0 + kc && !transpose_b; ++kk)
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t j0 = s * kNR, cols = std::min<int64_t>(kNR, n - j0);
          Ops::prepare_run(bb + kk * n + j0, cols, true, p, out.yb.data() + (s * k + kk) * kNR,
                           out.kyb.data() + (s * k + kk) * kNR, 1, out.sb[static_cast<size_t>(s * panels + pnl)]);
        }
    }
    const int64_t cols = n - (out.strips - 1) * kNR;
    if (s1 == out.strips && cols < kNR) {  // padding lanes are computed and discarded: keep them plain zeros
      uint32_t* ys = out.yb.data() + (out.strips - 1) * k * kNR;
      uint32_t* ks = out.kyb.data() + (out.strips - 1) * k * kNR;
      for (int64_t kk = 0; kk < k; ++kk)
        for (int64_t c = cols; c < kNR; ++c) ys[kk * kNR + c] = ks[kk * kNR + c] = 0u;
    }
  }
}

// Micro-kernel table: Ops provides
//   template <int MR, bool ZX, bool ZY> static void fast(xa, kxa, yb, kyb, kc, c, ldc)
//   template <int MR> static void general(xa, kxa, yb, kyb, kc, c, ldc, params)
// each adding the products of kc steps into the MR x 16 tile at c (row stride ldc).
using FastFn = void (*)(const uint32_t*, const uint32_t*, const uint32_t*, const uint32_t*, int64_t, float*, int64_t);
using GeneralFn = void (*)(const uint32_t*, const uint32_t*, const uint32_t*, const uint32_t*, int64_t, float*,
                           int64_t, const Params&);

template <class Ops, int MR>
FastFn fast_for(bool zx, bool zy) {
  if (zx) return zy ? &Ops::template fast<MR, true, true> : &Ops::template fast<MR, true, false>;
  return zy ? &Ops::template fast<MR, false, true> : &Ops::template fast<MR, false, false>;
}

template <class Ops>
FastFn fast_kernel(int mr, bool zx, bool zy) {
  switch (mr) {
    case 1: return fast_for<Ops, 1>(zx, zy);
    case 2: return fast_for<Ops, 2>(zx, zy);
    case 3: return fast_for<Ops, 3>(zx, zy);
    case 4: return fast_for<Ops, 4>(zx, zy);
    case 5: return fast_for<Ops, 5>(zx, zy);
    default: return fast_for<Ops, 6>(zx, zy);
  }
}

template <class Ops>
GeneralFn general_kernel(int mr) {
  switch (mr) {
    case 1: return &Ops::template general<1>;
    case 2: return &Ops::template general<2>;
    case 3: return &Ops::template general<3>;
    case 4: return &Ops::template general<4>;
    case 5: return &Ops::template general<5>;
    default: return &Ops::template general<6>;
  }
}

// C[rows r0..r1, cols c0..c1] for one packed batch entry, every K panel in order.
template <class Ops>
void compute_block(const Packed& pk, float* c, int64_t r0, int64_t r1, int64_t c0, int64_t c1, const Params& p,
                   bool force_general) {
  const int64_t n = pk.n, k = pk.k;
  const float neg_zero = bits_float(kSign);
  for (int64_t i = r0; i < r1; ++i) std::fill(c + i * n + c0, c + i * n + c1, neg_zero);
  float tail[kMR * kNR];
  std::vector<uint32_t> strip(pk.fused_b ? static_cast<size_t>(2 * kKC * kNR) : 0);
  for (int64_t pnl = 0; pnl < pk.panels; ++pnl) {
    const int64_t k0 = pnl * kKC, kc = std::min(kKC, k - k0);
    for (int64_t j0 = c0; j0 < c1; j0 += kNR) {
      const int64_t s = j0 / kNR, cols = std::min<int64_t>(kNR, n - j0);
      PanelStats fused_stats;
      const PanelStats* sbp = &fused_stats;
      const uint32_t* yb = strip.data();
      const uint32_t* kyb = strip.data() + kKC * kNR;
      if (pk.fused_b) {
        pack_strip_panel<Ops>(pk, s, k0, kc, p, strip.data(), strip.data() + kKC * kNR, fused_stats);
      } else {
        sbp = &pk.sb[static_cast<size_t>(s * pk.panels + pnl)];
        yb = pk.yb.data() + (s * k + k0) * kNR;
        kyb = pk.kyb.data() + (s * k + k0) * kNR;
      }
      const PanelStats& sb = *sbp;
      for (int64_t i0 = r0; i0 < r1; i0 += kMR) {
        const int64_t t = i0 / kMR;
        const int mr = static_cast<int>(std::min<int64_t>(kMR, pk.m - i0));
        const PanelStats& sa = pk.sa[static_cast<size_t>(t * pk.panels + pnl)];
        const uint32_t* xa = pk.xa.data() + (t * k + k0) * kMR;
        const uint32_t* kxa = pk.kxa.data() + (t * k + k0) * kMR;
        float* dst = c + i0 * n + j0;
        int64_t ldc = n;
        if (cols < kNR) {  // partial strip: work on a full-width copy, write back the valid columns
          for (int r = 0; r < mr; ++r) std::copy(dst + r * n, dst + r * n + cols, tail + r * kNR);
          dst = tail;
          ldc = kNR;
        }
        if (!force_general && fast_path_safe(sa, sb, p)) {
          fast_kernel<Ops>(mr, sa.zero, sb.zero)(xa, kxa, yb, kyb, kc, dst, ldc);
        } else {
          general_kernel<Ops>(mr)(xa, kxa, yb, kyb, kc, dst, ldc, p);
        }
        if (cols < kNR)
          for (int r = 0; r < mr; ++r) std::copy(tail + r * kNR, tail + r * kNR + cols, c + (i0 + r) * n + j0);
      }
    }
  }
  const float qnan = bits_float(kQNaN);
  for (int64_t i = r0; i < r1; ++i)
    for (int64_t j = c0; j < c1; ++j)
      if (c[i * n + j] != c[i * n + j]) c[i * n + j] = qnan;
  if (k == 0)
    for (int64_t i = r0; i < r1; ++i) std::fill(c + i * n + c0, c + i * n + c1, 0.0f);
}

// a [batch, M, K], b [batch, K, N] (or [batch, N, K]), c [batch, M, N]; all C-contiguous.
template <class Ops>
void matmul_with(const float* a, const float* b, float* c, int64_t batch, int64_t m, int64_t n, int64_t k,
            bool transpose_b, const Params& p, int threads, bool force_general) {
  if (batch == 0 || m == 0 || n == 0) return;
  // Packed operands live in a per-calling-thread workspace, so repeated calls (every layer of a
  // model) reuse warm pages instead of faulting in fresh ones; more than kKeepBytes is released.
  constexpr size_t kKeepBytes = size_t(64) << 20;
  thread_local std::vector<Packed> workspace;
  std::vector<Packed>& packs = workspace;  // a named reference: workers must see the caller's buffers, not their own
  if (packs.size() < static_cast<size_t>(batch)) packs.resize(static_cast<size_t>(batch));
  for (int64_t e = 0; e < batch; ++e)
    pack_init(packs[static_cast<size_t>(e)], m, n, k, b + e * k * n, transpose_b);
  const int64_t per_entry = packs[0].tiles + (packs[0].fused_b ? 0 : ceil_div(packs[0].strips, kGroup));
  parallel_for(batch * per_entry, threads, [&](int64_t task) {
    const int64_t e = task / per_entry;
    pack_task<Ops>(a + e * m * k, b + e * k * n, transpose_b, p, packs[static_cast<size_t>(e)], task % per_entry);
  });
  const int64_t mblocks = ceil_div(m, kMC), nblocks = ceil_div(n, kNC);
  parallel_for(batch * mblocks * nblocks, threads, [&](int64_t task) {
    const int64_t e = task / (mblocks * nblocks), rest = task % (mblocks * nblocks);
    const int64_t mb = rest / nblocks, nb = rest % nblocks;
    compute_block<Ops>(packs[static_cast<size_t>(e)], c + e * m * n, mb * kMC, std::min(m, (mb + 1) * kMC),
                       nb * kNC, std::min(n, (nb + 1) * kNC), p, force_general);
  });
  size_t held = 0;
  for (const Packed& pk : packs) held += packed_bytes(pk);
  if (held > kKeepBytes) std::vector<Packed>().swap(packs);
}

// The blocked matmul with the active backend's micro-kernels. force_general runs the every-rule
// micro-kernel on every block (tests use it to show the fast path changes nothing).
inline void matmul(const float* a, const float* b, float* c, int64_t batch, int64_t m, int64_t n, int64_t k,
                   bool transpose_b, const Params& p, int threads, bool force_general) {
#if FRUGALNN_X86
  if (use_avx512()) return matmul_with<avx512::Ops>(a, b, c, batch, m, n, k, transpose_b, p, threads, force_general);
  if (use_avx2()) return matmul_with<avx2::Ops>(a, b, c, batch, m, n, k, transpose_b, p, threads, force_general);
#endif
  matmul_with<serial::Ops>(a, b, c, batch, m, n, k, transpose_b, p, threads, force_general);
}

// out = lmul(a, b) elementwise over n floats, in slices of at least 32K per thread.
inline void elementwise(const float* a, const float* b, float* out, int64_t n, const Params& p, int threads) {
  const bool avx = FRUGALNN_X86 && use_avx2();
  parallel_range(n, threads, 1 << 15, [&](int64_t lo, int64_t hi) {
#if FRUGALNN_X86
    if (avx) return avx2::elementwise(a + lo, b + lo, out + lo, hi - lo, p);
#endif
    serial::elementwise(a + lo, b + lo, out + lo, hi - lo, p);
  });
}

}  // namespace lmul
}  // namespace frugalnn
