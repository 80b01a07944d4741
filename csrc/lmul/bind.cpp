// Bindings for L-Mul: elementwise products and the blocked matmul (semantics in serial.h,
// blocking in driver.h). Outputs are allocated by frugalnn/kernels/lmul.py and passed in.
// Role: bind (argument checks, then one call into driver.h with the GIL released).
#include <string>

#include "common/arrays.h"
#include "lmul/driver.h"

namespace frugalnn {
namespace {

lmul::Params make_params(int mantissa_bits, bool nearest, int offset) {
  if (mantissa_bits < 1 || mantissa_bits > 23)
    throw nb::value_error(("mantissa_bits: expected 1..23, got " + std::to_string(mantissa_bits)).c_str());
  if (offset < 0 || offset > 23)
    throw nb::value_error(("offset: expected 0..23, got " + std::to_string(offset)).c_str());
  return lmul::Params(mantissa_bits, nearest, offset);
}

void require_same_shape(const Array& a, const OutArray& b, const char* a_name, const char* b_name) {
  bool same = a.ndim() == b.ndim();
  for (size_t i = 0; same && i < a.ndim(); ++i) same = a.shape(i) == b.shape(i);
  if (!same)
    throw nb::value_error((std::string(b_name) + ": expected the shape of " + a_name + " " + shape_string(a) +
                           ", got " + shape_string(b)).c_str());
}

// out = lmul(a, b) elementwise; a, b, out float32 1-d of equal length.
void elementwise(Array a, Array b, int mantissa_bits, bool nearest, int offset, OutArray out, int threads) {
  const lmul::Params p = make_params(mantissa_bits, nearest, offset);
  const float* ap = typed<float>(a, "a", {-1});
  const int64_t n = a.shape(0);
  const float* bp = typed<float>(b, "b", {n});
  float* op = typed<float>(out, "out", {n});
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  lmul::elementwise(ap, bp, op, n, p, threads);
}

// out[e] = sum_k lmul(a[e, :, k], b[e, k, :]); a [B, M, K], b [B, K, N] (or [B, N, K] with
// transpose_b), out [B, M, N]. force_general runs the every-rule micro-kernel on every block
// (tests use it to show the fast path changes nothing).
void matmul(Array a, Array b, int mantissa_bits, bool nearest, int offset, bool transpose_b, OutArray out,
            int threads, bool force_general) {
  const lmul::Params p = make_params(mantissa_bits, nearest, offset);
  const float* ap = typed<float>(a, "a", {-1, -1, -1});
  const int64_t batch = a.shape(0), m = a.shape(1), k = a.shape(2);
  const float* bp = transpose_b ? typed<float>(b, "b", {batch, -1, k}) : typed<float>(b, "b", {batch, k, -1});
  const int64_t n = transpose_b ? b.shape(1) : b.shape(2);
  float* op = typed<float>(out, "out", {batch, m, n});
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  threads = resolve_threads(threads);
  nb::gil_scoped_release release;
  lmul::matmul(ap, bp, op, batch, m, n, k, transpose_b, p, threads, force_general);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_lmul(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("lmul", "L-Mul: float32 products as one integer addition on the bit patterns.");
  s.def("paper_offset", &lmul::paper_offset, nb::arg("mantissa_bits"),
        "The paper's l(m): m for m <= 3, 3 for m = 4, 4 above.");
  s.def("elementwise", &elementwise, nb::arg("a"), nb::arg("b"), nb::arg("mantissa_bits"), nb::arg("nearest"),
        nb::arg("offset"), nb::arg("out"), nb::arg("threads") = -1);
  s.def("matmul", &matmul, nb::arg("a"), nb::arg("b"), nb::arg("mantissa_bits"), nb::arg("nearest"),
        nb::arg("offset"), nb::arg("transpose_b"), nb::arg("out"), nb::arg("threads") = -1,
        nb::arg("force_general") = false);
}
