// Bindings for L-Mul: elementwise products and the blocked matmul (semantics in serial.h,
// blocking in driver.h). Outputs are allocated by frugalnn/kernels/lmul.py and passed in.
// Role: bind (argument checks, then one call into driver.h with the GIL released).
#include <string>

#include "common/arrays.h"
#include "lmul/driver.h"

namespace frugalnn {
namespace {

lmul::Params make_params(int64_t mantissa_bits, bool nearest, int64_t offset) {
  if (mantissa_bits < 1 || mantissa_bits > 23)
    throw nb::value_error(("mantissa_bits: expected 1..23, got " + std::to_string(mantissa_bits)).c_str());
  if (offset < 0 || offset > 23)
    throw nb::value_error(("offset: expected 0..23, got " + std::to_string(offset)).c_str());
  return lmul::Params(static_cast<int>(mantissa_bits), nearest, static_cast<int>(offset));
}

// out = lmul(a, b) elementwise; a, b, out float32 1-d of equal length.
void elementwise(Array a, Array b, int64_t mantissa_bits, bool nearest, int64_t offset, OutArray out, int64_t threads) {
  const lmul::Params p = make_params(mantissa_bits, nearest, offset);
  const float* ap = typed<float>(a, "a", {-1});
  const int64_t n = a.shape(0);
  const float* bp = typed<float>(b, "b", {n});
  float* op = typed<float>(out, "out", {n});
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  const int nthreads = resolve_threads(threads);
  nb::gil_scoped_release release;
  lmul::elementwise(ap, bp, op, n, p, nthreads);
}

// out[e] = sum_k lmul(a[e, :, k], b[e, k, :]); a [B, M, K], b [B, K, N] (or [B, N, K] with
// transpose_b), out [B, M, N]. force_general runs the every-rule micro-kernel on every block
// (tests use it to show the fast path changes nothing).
void matmul(Array a, Array b, int64_t mantissa_bits, bool nearest, int64_t offset, bool transpose_b, OutArray out,
            int64_t threads, bool force_general) {
  const lmul::Params p = make_params(mantissa_bits, nearest, offset);
  const float* ap = typed<float>(a, "a", {-1, -1, -1});
  const int64_t batch = a.shape(0), m = a.shape(1), k = a.shape(2);
  const float* bp = transpose_b ? typed<float>(b, "b", {batch, -1, k}) : typed<float>(b, "b", {batch, k, -1});
  const int64_t n = transpose_b ? b.shape(1) : b.shape(2);
  float* op = typed<float>(out, "out", {batch, m, n});
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  const int nthreads = resolve_threads(threads);
  if (is_empty(out)) return;  // e.g. (2^40, 0, K): nothing to write, and nothing to loop over
  nb::gil_scoped_release release;
  lmul::matmul(ap, bp, op, batch, m, n, k, transpose_b, p, nthreads, force_general);
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
