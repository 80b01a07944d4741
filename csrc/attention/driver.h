// One-pass fused attention (FlashAttention-2 style online softmax), shared tile loop.
//
//   q    float32 [N,  L, E]     N = batch*heads query heads, L queries, head dim E
//   k    float32 [Nk, S, E]     Nk key/value heads (N % Nk == 0: grouped-query attention,
//   v    float32 [Nk, S, Ev]    query head n reads kv head n / (N / Nk)), S keys
//   out  float32 [N,  L, Ev]
//
// For every (head, block of BQ queries) the loop walks the keys in tiles of BK and keeps, per
// query row, a running max m, a running denominator l and an unnormalised accumulator O[Ev]:
//   s_j   = scale * q . k_j                       (scores of one key tile)
//   m'    = max(m, max_j s_j)
//   p_j   = exp(s_j - m'),  alpha = exp(m - m')
//   l     = alpha * l + sum_j p_j,   O = alpha * O + sum_j p_j v_j
// and writes out = O / l after the last tile. Extra memory is the per-thread workspace
// (workspace_floats below): it depends on BQ, BK, E and Ev, never on L or S.
//
// Causal masking is top-left aligned like torch's is_causal: query i sees keys j <= i. Key
// tiles entirely to the right of a query block are skipped, so causal costs about half.
//
// `Ops` supplies the arithmetic (serial.h: scalar loops + std::exp; avx2.h: register-blocked
// FMA micro-kernels + a vectorised exp). The loop structure, and so the order of the online
// updates, is the same for both.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace frugalnn {
namespace attention {

#ifndef FRUGALNN_ATTENTION_BQ
#define FRUGALNN_ATTENTION_BQ 48
#endif
#ifndef FRUGALNN_ATTENTION_BK
#define FRUGALNN_ATTENTION_BK 128
#endif
constexpr int64_t BQ = FRUGALNN_ATTENTION_BQ;  // queries per block (a multiple of the 16-query micro-kernel)
constexpr int64_t BK = FRUGALNN_ATTENTION_BK;  // keys per tile

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Floats of per-thread workspace: Q^T block, score tile, accumulator, m, l, alpha.
inline int64_t workspace_floats(int64_t e, int64_t ev) {
  return e * BQ + BK * BQ + ev * BQ + 3 * BQ;
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
  // Every array starts on a 64-byte boundary (the AVX2 ops use aligned loads of K^T and scores).
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

// Runs one (head n, query block starting at q0) task. Scores and the accumulator are kept
// transposed, st[j, i] for key j and query i, acc[c, i] for output column c: the softmax
// statistics and the rescaling of BQ queries are then vectors across queries.
template <class Ops>
void attention_block(const Problem& p, int64_t n, int64_t q0) {
  const int64_t rows = std::min(BQ, p.l - q0);
  const int64_t e = p.e, ev = p.ev;
  const int64_t kv = n / (p.n / p.nk);
  const float* qn = p.q + (n * p.l + q0) * e;
  const float* kn = p.k + kv * p.s * e;
  const float* vn = p.v + kv * p.s * ev;

  Workspace& ws = thread_workspace();
  const int64_t need = workspace_floats(e, ev) + 6 * 16 + 16;  // + rounding + alignment
  if (static_cast<int64_t>(ws.buf.size()) < need) ws.buf.assign(static_cast<size_t>(need), 0.0f);
  int64_t used = 0;
  float* qt = ws.take(e * BQ, used);     // [e, BQ]     (q * scale)^T, zero past `rows`
  float* st = ws.take(BK * BQ, used);    // [BK, BQ]    scores, then probabilities, of one key tile
  float* acc = ws.take(ev * BQ, used);   // [ev, BQ]    unnormalised output, transposed
  float* m = ws.take(BQ, used);          // running max per query
  float* lsum = ws.take(BQ, used);       // running denominator per query
  float* alpha = ws.take(BQ, used);      // exp(m_old - m_new) of the current tile

  for (int64_t d = 0; d < e; ++d)
    for (int64_t i = 0; i < BQ; ++i) qt[d * BQ + i] = i < rows ? qn[i * e + d] * p.scale : 0.0f;
  for (int64_t i = 0; i < BQ; ++i) {
    m[i] = -std::numeric_limits<float>::infinity();
    lsum[i] = 0.0f;
  }
  std::fill(acc, acc + ev * BQ, 0.0f);

  const int64_t last_key = p.causal ? std::min(p.s, q0 + rows) : p.s;  // keys [0, last_key) matter
  for (int64_t k0 = 0; k0 < last_key; k0 += BK) {
    const int64_t cols = std::min(BK, last_key - k0);
    const int64_t next = k0 + BK < last_key ? std::min(BK, last_key - k0 - BK) : 0;
    Ops::scores(kn + k0 * e, cols, e, qt, st, next ? kn + (k0 + BK) * e : nullptr, vn + (k0 + BK) * ev, next, ev);
    if (p.causal && k0 + cols - 1 > q0) {  // the tile crosses the diagonal: hide keys j > query i
      for (int64_t j = 0; j < cols; ++j)
        for (int64_t i = 0; i < BQ; ++i)
          if (k0 + j > q0 + i) st[j * BQ + i] = -std::numeric_limits<float>::infinity();
    }
    Ops::online_softmax(st, cols, m, lsum, alpha);
    Ops::rescale(acc, ev, alpha);
    Ops::accumulate_pv(st, rows, vn + k0 * ev, cols, ev, acc);
  }

  float* on = p.out + (n * p.l + q0) * ev;
  for (int64_t i = 0; i < rows; ++i) alpha[i] = 1.0f / lsum[i];
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < ev; ++c) on[i * ev + c] = acc[c * BQ + i] * alpha[i];
}

}  // namespace attention
}  // namespace frugalnn
