// Bindings for the MixPE group GEMM (semantics in serial.h, layout in layout.h, threads and backend
// choice in driver.h). Outputs are allocated by frugalnn/kernels/mixpe.py and passed in.
#include <nanobind/stl/optional.h>

#include <optional>
#include <string>
#include <vector>

#include "common/arrays.h"
#include "mixpe/driver.h"

namespace frugalnn {
namespace {

constexpr int64_t kMaxDim = int64_t(1) << 40;

mixpe::Weights weights(Array wp, Array sp, Array zp, int64_t n, int64_t k, int64_t group) {
  if (!mixpe::valid_group(group))
    throw nb::value_error(("group: expected 32, 64 or 128, got " + std::to_string(group)).c_str());
  if (n < 0 || n > kMaxDim) throw nb::value_error(("n: expected 0..2^40, got " + std::to_string(n)).c_str());
  if (k < 0 || k > kMaxDim) throw nb::value_error(("k: expected 0..2^40, got " + std::to_string(k)).c_str());
  const mixpe::Shape S(n, k, group);
  const uint8_t* w = typed<uint8_t>(wp, "wp", {S.strips, S.blocks, mixpe::kQuadBytes});
  const float* s = typed<float>(sp, "sp", {S.strips, S.groups, mixpe::kRows});
  const uint8_t* z = typed<uint8_t>(zp, "zp", {S.strips, S.groups, mixpe::kRows});
  return mixpe::Weights{w, s, z, S};
}

const float* bias_of(const std::optional<Array>& bias, const mixpe::Shape& S) {
  return bias ? typed<float>(*bias, "bias", {S.n}) : nullptr;
}

// What w4a8 and w4a16 check alike: the weights, x [M, K] float32, out [M, n], bias [n], no input overlapping out.
struct FloatCall {
  mixpe::Weights W;
  const float* x;
  int64_t m;
  float* out;
  const float* bias;
  int threads;
  bool empty;  // out has no elements: nothing to compute
};

FloatCall float_call(Array wp, Array sp, Array zp, int64_t n, int64_t k, int64_t group, Array x,
                     const std::optional<Array>& bias, OutArray out, int64_t threads_arg) {
  const mixpe::Weights W = weights(wp, sp, zp, n, k, group);
  const float* xp = typed<float>(x, "x", {-1, k});
  const int64_t m = x.shape(0);
  float* op = typed<float>(out, "out", {m, n});
  const float* bp = bias_of(bias, W.S);
  for (const Array* a : {&wp, &sp, &zp, &x}) require_disjoint(*a, out, "input", "out");
  if (bias) require_disjoint(*bias, out, "bias", "out");
  const int threads = resolve_threads(threads_arg);
  return FloatCall{W, xp, m, op, bp, threads, is_empty(out)};
}

// out [M, n] = x [M, K] @ W^T with int8 per-token activations (quantized here, serial.h).
void w4a8(Array wp, Array sp, Array zp, int64_t n, int64_t k, int64_t group, Array x, std::optional<Array> bias,
          OutArray out, int64_t threads_arg) {
  const FloatCall c = float_call(wp, sp, zp, n, k, group, x, bias, out, threads_arg);
  if (c.empty) return;
  const mixpe::Weights& W = c.W;
  const float *xp = c.x, *bp = c.bias;
  float* op = c.out;
  const int64_t m = c.m;
  const int threads = c.threads;
  const int64_t aq_count = checked_mul(m, W.S.kp, "x rows * padded K"), as_count = checked_mul(m, W.S.groups, "groups");
  thread_local std::vector<int8_t> aq_buf;
  thread_local std::vector<int32_t> as_buf;
  thread_local std::vector<float> sa_buf;
  nb::gil_scoped_release release;
  int8_t* aq = mixpe::workspace(aq_buf, aq_count);
  int32_t* as = mixpe::workspace(as_buf, as_count);
  float* sa = mixpe::workspace(sa_buf, m);
  mixpe::quantize_activations(xp, m, W.S, aq, as, sa, threads);
  mixpe::w4a8_gemm(W, aq, as, sa, m, bp, op, threads);
}

// The same GEMM on activations already quantized: aq [M, Kp] int8, asum [M, groups] int32, sa [M].
void w4a8_quantized(Array wp, Array sp, Array zp, int64_t n, int64_t k, int64_t group, Array aq, Array asum, Array sa,
                    std::optional<Array> bias, OutArray out, int64_t threads_arg) {
  const mixpe::Weights W = weights(wp, sp, zp, n, k, group);
  const int8_t* ap = typed<int8_t>(aq, "aq", {-1, W.S.kp});
  const int64_t m = aq.shape(0);
  const int32_t* asp = typed<int32_t>(asum, "asum", {m, W.S.groups});
  const float* sap = typed<float>(sa, "sa", {m});
  float* op = typed<float>(out, "out", {m, n});
  const float* bp = bias_of(bias, W.S);
  for (const Array* a : {&wp, &sp, &zp, &aq, &asum, &sa}) require_disjoint(*a, out, "input", "out");
  if (bias) require_disjoint(*bias, out, "bias", "out");
  const int threads = resolve_threads(threads_arg);
  if (is_empty(out)) return;
  nb::gil_scoped_release release;
  mixpe::w4a8_gemm(W, ap, asp, sap, m, bp, op, threads);
}

// x [M, K] float32 -> aq [M, Kp] int8, asum [M, groups] int32, sa [M] float32 (serial.h).
void quantize(Array x, int64_t group, OutArray aq, OutArray asum, OutArray sa, int64_t threads_arg) {
  if (!mixpe::valid_group(group))
    throw nb::value_error(("group: expected 32, 64 or 128, got " + std::to_string(group)).c_str());
  const float* xp = typed<float>(x, "x", {-1, -1});
  const int64_t m = x.shape(0), k = x.shape(1);
  const mixpe::Shape S(0, k, group);
  int8_t* ap = typed<int8_t>(aq, "aq", {m, S.kp});
  int32_t* asp = typed<int32_t>(asum, "asum", {m, S.groups});
  float* sap = typed<float>(sa, "sa", {m});
  require_disjoint(x, aq, "x", "aq");
  require_disjoint(x, asum, "x", "asum");
  require_disjoint(x, sa, "x", "sa");
  require_disjoint(aq, asum, "aq", "asum");
  require_disjoint(aq, sa, "aq", "sa");
  require_disjoint(asum, sa, "asum", "sa");
  const int threads = resolve_threads(threads_arg);
  if (m == 0) return;
  nb::gil_scoped_release release;
  mixpe::quantize_activations(xp, m, S, ap, asp, sap, threads);
}

// out [M, n] = x [M, K] @ W^T with float activations (fp16/bf16 values widened to float32). dequant_each:
// the conventional kernel (every weight dequantized before its multiply-add), for comparison.
void w4a16(Array wp, Array sp, Array zp, int64_t n, int64_t k, int64_t group, Array x, std::optional<Array> bias,
           OutArray out, int64_t threads_arg, bool dequant_each) {
  const FloatCall c = float_call(wp, sp, zp, n, k, group, x, bias, out, threads_arg);
  if (c.empty) return;
  const mixpe::Weights& W = c.W;
  const float *xp = c.x, *bp = c.bias;
  float* op = c.out;
  const int64_t m = c.m;
  const int threads = c.threads;
  const int64_t af_count = checked_mul(m, W.S.kp, "x rows * padded K"), fs_count = checked_mul(m, W.S.groups, "groups");
  thread_local std::vector<float> af_buf, fs_buf;
  nb::gil_scoped_release release;
  float* af = mixpe::workspace(af_buf, af_count);
  float* fs = mixpe::workspace(fs_buf, fs_count);
  mixpe::widen_activations(xp, m, W.S, af, fs, threads);
  mixpe::w4a16_gemm(W, af, fs, m, bp, op, threads, dequant_each);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_mixpe(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("mixpe", "MixPE W4A8 / W4A16 group GEMM: dequantization after the group sum.");
  s.def("w4a8", &w4a8, nb::arg("wp"), nb::arg("sp"), nb::arg("zp"), nb::arg("n"), nb::arg("k"), nb::arg("group"),
        nb::arg("x"), nb::arg("bias").none(), nb::arg("out"), nb::arg("threads") = -1);
  s.def("w4a8_quantized", &w4a8_quantized, nb::arg("wp"), nb::arg("sp"), nb::arg("zp"), nb::arg("n"), nb::arg("k"),
        nb::arg("group"), nb::arg("aq"), nb::arg("asum"), nb::arg("sa"), nb::arg("bias").none(), nb::arg("out"),
        nb::arg("threads") = -1);
  s.def("quantize", &quantize, nb::arg("x"), nb::arg("group"), nb::arg("aq"), nb::arg("asum"), nb::arg("sa"),
        nb::arg("threads") = -1);
  s.def("w4a16", &w4a16, nb::arg("wp"), nb::arg("sp"), nb::arg("zp"), nb::arg("n"), nb::arg("k"), nb::arg("group"),
        nb::arg("x"), nb::arg("bias").none(), nb::arg("out"), nb::arg("threads") = -1,
        nb::arg("dequant_each") = false);
}
