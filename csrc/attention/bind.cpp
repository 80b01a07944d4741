// Bindings for the one-pass fused attention kernel (algorithm in driver.h, tiles in layout.h).
// Role: bind (argument checks, then one call into driver.h with the GIL released).
#include <cmath>
#include <string>

#include "attention/driver.h"
#include "common/arrays.h"

namespace frugalnn {
namespace {

void require_positive(int64_t value, const char* what) {
  if (value < 1)
    throw nb::value_error((std::string(what) + " must be >= 1, got " + std::to_string(value)).c_str());
}

// The kernel multiplies q by scale in float32: a scale that is finite as a double but not as a
// float32 (1e300) made every score inf and every output NaN. Any finite float32 value is allowed,
// zero and negative ones included, as torch's SDPA allows them (scale is folded into q).
float float32_scale(double scale) {
  const float s = static_cast<float>(scale);
  if (!std::isfinite(scale) || !std::isfinite(s))
    throw nb::value_error(("scale: expected a finite float32 value (|scale| <= 3.4e38), got " + std::to_string(scale)).c_str());
  return s;
}

// q [N, L, E], k [Nk, S, E], v [Nk, S, Ev] -> out [N, L, Ev]; N must be a multiple of Nk.
void fused_attention(Array q, Array k, Array v, bool causal, double scale, OutArray out, int64_t threads) {
  const float* qp = typed<float>(q, "q", {-1, -1, -1});
  const int64_t n = q.shape(0), l = q.shape(1), e = q.shape(2);
  const float* kp = typed<float>(k, "k", {-1, -1, e});
  const int64_t nk = k.shape(0), s = k.shape(1);
  const float* vp = typed<float>(v, "v", {nk, s, -1});
  const int64_t ev = v.shape(2);
  float* op = typed<float>(out, "out", {n, l, ev});
  require_positive(n, "q: number of heads (axis 0)");
  require_positive(l, "q: query length (axis 1)");
  require_positive(e, "q: head dim (axis 2)");
  require_positive(nk, "k: number of heads (axis 0)");
  require_positive(s, "k: key length (axis 1)");
  require_positive(ev, "v: head dim (axis 2)");
  if (n % nk != 0)
    throw nb::value_error(("q has " + std::to_string(n) + " heads, not a multiple of the " + std::to_string(nk) +
                           " key/value heads").c_str());
  const float scale32 = float32_scale(scale);
  require_disjoint(q, out, "q", "out");
  require_disjoint(k, out, "k", "out");
  require_disjoint(v, out, "v", "out");
  const int nthreads = resolve_threads(threads);

  const attention::Problem prob{qp, kp, vp, op, n, nk, l, s, e, ev, scale32, causal};
  nb::gil_scoped_release release;
  attention::fused_attention(prob, nthreads);
}

// Bytes of per-thread scratch for head dims e, ev (caller-given integers: checked, common/checked.h).
int64_t workspace_bytes(int64_t e, int64_t ev) {
  require_positive(e, "e");
  require_positive(ev, "ev");
  // workspace_floats(e, ev) = MAX_SUB (e + evp + 3) BQ + BK BQ + 2 BK evp, term by term
  const int64_t evp = checked_add(ev, attention::VLANES, "ev");
  const int64_t per_row = checked_add(checked_add(e, evp, "e + ev"), 3, "e + ev");
  const int64_t t1 = checked_product({attention::MAX_SUB, per_row, attention::BQ}, "workspace");
  const int64_t t3 = checked_product({2, attention::BK, evp}, "workspace");
  const int64_t floats = checked_add(checked_add(t1, attention::BK * attention::BQ, "workspace"), t3, "workspace");
  checked_mul(floats, 4, "workspace bytes");
  return 4 * attention::workspace_floats(e, ev);
}

// exp of a float32 vector with the active backend's softmax exp (std::exp, or the AVX2 polynomial,
// valid for x <= 88.3, see common/vexp.h).
void exp_f32(Array x, OutArray y) {
  const float* xp = typed<float>(x, "x", {-1});
  float* yp = typed<float>(y, "y", {static_cast<int64_t>(x.shape(0))});
  require_disjoint(x, y, "x", "y");
  nb::gil_scoped_release release;
  attention::exp_array(xp, x.shape(0), yp);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_attention(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("attention", "One-pass fused attention (online softmax over key tiles).");
  s.def("fused_attention", &fused_attention, nb::arg("q"), nb::arg("k"), nb::arg("v"), nb::arg("causal"),
        nb::arg("scale"), nb::arg("out"), nb::arg("threads") = -1);
  s.def("exp", &exp_f32, nb::arg("x"), nb::arg("y"));
  s.def("workspace_bytes", &workspace_bytes,
        nb::arg("e"), nb::arg("ev"), "Per-thread scratch of the kernel, independent of the sequence lengths.");
  s.attr("BLOCK_Q") = attention::BQ;
  s.attr("BLOCK_K") = attention::BK;
  s.attr("MAX_SUB_BLOCKS") = attention::MAX_SUB;
}
