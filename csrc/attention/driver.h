// One-pass fused attention (FlashAttention-2 style online softmax), shared tile loop.
//
//   q    float32 [N,  L, E]     N = batch*heads query heads, L queries, head dim E
//   k    float32 [Nk, S, E]     Nk key/value heads (N % Nk == 0: grouped-query attention,
//   v    float32 [Nk, S, Ev]    query head n reads kv head n / (N / Nk)), S keys
//   out  float32 [N,  L, Ev]
//
// For every block of BQ queries the loop walks the keys in tiles of BK and keeps, per query
// row, a running max m, a running denominator l and an unnormalised accumulator O[Ev]:
//   s_j   = scale * q . k_j                       (scores of one key tile)
//   m'    = max(m, max_j s_j)
//   p_j   = exp(s_j - m'),  alpha = exp(m - m')
//   l     = alpha * l + sum_j p_j,   O = alpha * O + sum_j p_j v_j
// and writes out = O / l after the last tile.
//
// Two-level blocking: one task owns up to MAX_SUB query blocks of one head (a "super-block" of
// up to 192 queries) and walks the key tiles once for all of them, block after block inside
// each tile. A key/value tile is then fetched from memory (L3/DRAM once S*(E+Ev) outgrows L2)
// once per 192 queries instead of once per 48, and reused from L2 by the other blocks; the
// AVX2 ops also pack the value tile once per super-block (avx2.h). The per-block state (Q^T,
// accumulator, m, l) stays per block, so every query sees exactly the same sequence of
// operations whatever the grouping: results do not depend on MAX_SUB or on the thread count.
//
// Extra memory is the per-thread workspace (workspace_floats below): it depends on BQ, BK,
// MAX_SUB, E and Ev, never on L or S.
//
// Causal masking is top-left aligned like torch's is_causal: query i sees keys j <= i. Key
// tiles entirely to the right of a query block are skipped, so causal costs about half.
//
// `Ops` supplies the arithmetic (serial.h: scalar loops + std::exp; avx2.h: register-blocked
// FMA micro-kernels + a vectorised exp; avx512.h: the same, 16 wide with taller tiles). The loop structure, and so the order of the online
// updates, is the same for both. Tile shapes and the Background hand-off: layout.h.
//
// Role: driver (tiling, threads, backend choice). Checked against: the float64 numpy reference
// (frugalnn/kernels/attention_ref.py) within a tolerance, on both backends, odd shapes, causal
// and GQA; and results invariant to MAX_SUB grouping and the thread count, bit for bit
// (tests/kernels/test_attention.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/attention/driver.h
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "attention/avx2.h"
#include "attention/avx512.h"
#include "attention/layout.h"
#include "attention/serial.h"
#include "common/cpu.h"
#include "common/threads.h"

namespace frugalnn {
namespace attention {

#ifndef FRUGALNN_ATTENTION_SUB
#define FRUGALNN_ATTENTION_SUB 4
#endif
constexpr int64_t MAX_SUB = FRUGALNN_ATTENTION_SUB;  // query blocks sharing each key/value tile

// Floats of per-thread workspace: per block Q^T, accumulator (Ev rounded up to whole strips),
// m, l, alpha; shared by the blocks: one score tile and two packed value tiles (this one, and
// the next one being packed).
inline int64_t workspace_floats(int64_t e, int64_t ev) {
  const int64_t evp = round_up(ev, VLANES);
  return MAX_SUB * (e * BQ + evp * BQ + 3 * BQ) + BK * BQ + 2 * BK * evp;
}

struct Problem {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  int64_t n, nk, l, s, e, ev;
  float scale;
  bool causal;
};

struct Workspace {
  std::vector<float> buf;
  // Every array starts on a 64-byte boundary (the AVX2 ops use aligned loads of Q^T and scores).
  float* take(int64_t floats, int64_t& used) {
    const uintptr_t base = (reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~static_cast<uintptr_t>(63);
    float* p = reinterpret_cast<float*>(base) + used;
    used += round_up(floats, 16);
    return p;
  }
};

inline Workspace& thread_workspace() {
  static thread_local Workspace ws;
  return ws;
}

// Per query block state, all transposed so the softmax statistics and the rescaling of BQ
// queries are vectors across queries: qt[d, i], acc[c, i].
struct BlockState {
  float* qt;     // [e, BQ]    (q * scale)^T, zero past `rows`
  float* acc;    // [evp, BQ]  unnormalised output, transposed
  float* m;      // [BQ]       running max
  float* lsum;   // [BQ]       running denominator
  float* alpha;  // [BQ]       exp(m_old - m_new) of the current tile
  int64_t q0, rows, last_key;
};

// Runs query blocks first_block .. first_block + blocks - 1 (blocks <= MAX_SUB) of head n.
template <class Ops>
void attention_task(const Problem& p, int64_t n, int64_t first_block, int64_t blocks) {
  const int64_t e = p.e, ev = p.ev, evp = round_up(ev, VLANES);
  const int64_t kv = n / (p.n / p.nk);
  const float* kn = p.k + kv * p.s * e;
  const float* vn = p.v + kv * p.s * ev;

  Workspace& ws = thread_workspace();
  const int64_t need = workspace_floats(e, ev) + (5 * MAX_SUB + 3) * 16 + 16;  // + rounding + alignment
  if (static_cast<int64_t>(ws.buf.size()) < need) ws.buf.assign(static_cast<size_t>(need), 0.0f);
  int64_t used = 0;
  BlockState blk[MAX_SUB];
  int64_t last_key = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    BlockState& s = blk[b];
    s.qt = ws.take(e * BQ, used);
    s.acc = ws.take(evp * BQ, used);
    s.m = ws.take(BQ, used);
    s.lsum = ws.take(BQ, used);
    s.alpha = ws.take(BQ, used);
    s.q0 = (first_block + b) * BQ;
    s.rows = std::min(BQ, p.l - s.q0);
    s.last_key = p.causal ? std::min(p.s, s.q0 + s.rows) : p.s;  // keys [0, last_key) matter
    last_key = std::max(last_key, s.last_key);
    const float* qn = p.q + (n * p.l + s.q0) * e;
    for (int64_t d = 0; d < e; ++d)
      for (int64_t i = 0; i < BQ; ++i) s.qt[d * BQ + i] = i < s.rows ? qn[i * e + d] * p.scale : 0.0f;
    for (int64_t i = 0; i < BQ; ++i) {
      s.m[i] = -std::numeric_limits<float>::infinity();
      s.lsum[i] = 0.0f;
    }
    std::fill(s.acc, s.acc + evp * BQ, 0.0f);
  }
  float* st = ws.take(BK * BQ, used);  // [BK, BQ]   scores, then probabilities, of one key tile
  float* vbuf[2] = {ws.take(BK * evp, used), ws.take(BK * evp, used)};  // packed values: this tile, next

  const float* values = Ops::pack_values(vn, std::min(BK, last_key), ev, vbuf[0]);
  for (int64_t k0 = 0, t = 0; k0 < last_key; k0 += BK, ++t) {
    const int64_t next0 = k0 + BK;
    const int64_t next_rows = std::max<int64_t>(0, std::min(BK, last_key - next0));
    const int64_t ahead_rows = std::max<int64_t>(0, std::min(BK, last_key - next0 - BK));
    float* next_vp = vbuf[(t + 1) & 1];
    // The next tile's rows are shared out over the blocks that work on this tile (with causal
    // masking the first blocks may be done already).
    int64_t active = 0;
    for (int64_t b = 0; b < blocks; ++b) active += k0 < blk[b].last_key;
    const int64_t share = (next_rows + active - 1) / active;
    for (int64_t b = 0, a = 0; b < blocks; ++b) {
      BlockState& s = blk[b];
      if (k0 >= s.last_key) continue;
      const int64_t r0 = std::min(next_rows, a * share), r1 = std::min(next_rows, r0 + share);
      ++a;
      const Background bg{next_rows ? kn + next0 * e : kn, next_rows ? vn + next0 * ev : vn,
                          ahead_rows ? vn + (next0 + BK) * ev : vn, next_vp, r0, r1, ahead_rows, e, ev};
      const int64_t cols = std::min(BK, s.last_key - k0);
      Ops::scores(kn + k0 * e, cols, e, s.qt, st, bg);
      if (p.causal && k0 + cols - 1 > s.q0) {  // the tile crosses the diagonal: hide keys j > query i
        for (int64_t j = 0; j < cols; ++j)
          for (int64_t i = 0; i < BQ; ++i)
            if (k0 + j > s.q0 + i) st[j * BQ + i] = -std::numeric_limits<float>::infinity();
      }
      Ops::online_softmax(st, cols, s.m, s.lsum, s.alpha);
      Ops::rescale(s.acc, evp, s.alpha);
      Ops::accumulate_pv(st, s.rows, values, cols, ev, s.acc);
    }
    if (next_rows) values = Ops::values_of(vn + next0 * ev, next_vp);
  }

  for (int64_t b = 0; b < blocks; ++b) {
    const BlockState& s = blk[b];
    float* on = p.out + (n * p.l + s.q0) * ev;
    for (int64_t i = 0; i < s.rows; ++i) s.alpha[i] = 1.0f / s.lsum[i];
    for (int64_t i = 0; i < s.rows; ++i)
      for (int64_t c = 0; c < ev; ++c) on[i * ev + c] = s.acc[c * BQ + i] * s.alpha[i];
  }
}

// Query blocks per task: MAX_SUB, unless that leaves too few tasks to keep `threads` busy
// (a few tasks per thread, so uneven causal tasks still balance). Only the grouping changes,
// never a result.
inline int64_t blocks_per_task(int64_t heads, int64_t l, int threads) {
  const int64_t blocks = (l + BQ - 1) / BQ;
  int64_t sub = MAX_SUB;
  while (sub > 1 && heads * ((blocks + sub - 1) / sub) < 4 * static_cast<int64_t>(threads)) sub /= 2;
  return sub;
}

// The whole problem on `threads` threads with the active backend's ops: one task per group of
// up to blocks_per_task query blocks of one head. Shapes were validated by the binding.
inline void fused_attention(const Problem& p, int threads) {
  const int64_t blocks = (p.l + BQ - 1) / BQ;
  const int64_t sub = blocks_per_task(p.n, p.l, threads);
  const int64_t tasks_per_head = (blocks + sub - 1) / sub;
  auto run = [&](auto ops) {
    using Ops = decltype(ops);
    parallel_for(p.n * tasks_per_head, threads, [&](int64_t task) {
      const int64_t first = (task % tasks_per_head) * sub;
      attention_task<Ops>(p, task / tasks_per_head, first, std::min(sub, blocks - first));
    });
  };
#if FRUGALNN_X86
  if (use_avx512()) return run(avx512::Ops{});
  if (use_avx2()) return run(avx2::Ops{});
#endif
  run(serial::Ops{});
}

// The active backend's softmax exp over an array (std::exp, or vec::exp256_softmax, valid for
// x <= 88.3), for the accuracy tests of the vectorised exp.
inline void exp_array(const float* x, int64_t n, float* y) {
#if FRUGALNN_X86
  if (use_avx512()) return avx512::exp_array(x, n, y);
  if (use_avx2()) return avx2::exp_array(x, n, y);
#endif
  serial::exp_array(x, n, y);
}

}  // namespace attention
}  // namespace frugalnn
