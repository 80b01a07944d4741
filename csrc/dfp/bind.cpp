// Bindings for the DFP16 GEMM (semantics in serial.h, blocking in driver.h). The output is
// allocated by frugalnn/kernels/dfp.py and passed in.
#include <nanobind/stl/optional.h>

#include <optional>
#include <string>

#include "common/arrays.h"
#include "common/cpu.h"
#include "dfp/avx2.h"
#include "dfp/driver.h"
#include "dfp/serial.h"

namespace frugalnn {
namespace {

constexpr int64_t kInt32Max = 2147483647;

// Largest chunk whose int32 sums cannot overflow for operands bounded by max_a, max_b.
int64_t safe_chunk(uint32_t max_a, uint32_t max_b) {
  const uint64_t worst = static_cast<uint64_t>(max_a) * max_b;
  return worst == 0 ? INT64_MAX : static_cast<int64_t>(static_cast<uint64_t>(kInt32Max) / worst);
}

uint32_t max_abs(const int16_t* x, int64_t n) {
#if FRUGALNN_X86
  if (use_avx2()) return dfp::avx2::max_abs(x, n);
#endif
  return dfp::serial::max_abs(x, n);
}

// out = sum over K-chunks of float(int32 chunk sum) * 2^(ea + eb) (+ bias); a [M, K] int16,
// b [K, N] int16 (or [N, K] with transpose_b), bias [N] float32 or None, out [M, N] float32.
// Unless allow_overflow, a chunk that could overflow int32 for these operands is refused.
void gemm(Array a, Array b, int64_t ea, int64_t eb, int64_t chunk, bool transpose_b, std::optional<Array> bias,
          OutArray out, int threads, bool allow_overflow) {
  const int16_t* ap = typed<int16_t>(a, "a", {-1, -1});
  const int64_t m = a.shape(0), k = a.shape(1);
  const int16_t* bp = transpose_b ? typed<int16_t>(b, "b", {-1, k}) : typed<int16_t>(b, "b", {k, -1});
  const int64_t n = transpose_b ? b.shape(0) : b.shape(1);
  float* op = typed<float>(out, "out", {m, n});
  const float* biasp = bias ? typed<float>(*bias, "bias", {n}) : nullptr;
  if (chunk < 1) throw nb::value_error(("chunk: expected >= 1, got " + std::to_string(chunk)).c_str());
  int64_t scale_exp;
  if (__builtin_add_overflow(ea, eb, &scale_exp))
    throw nb::value_error(("ea + eb overflows int64: ea = " + std::to_string(ea) + ", eb = " + std::to_string(eb)).c_str());
  require_disjoint(a, out, "a", "out");
  require_disjoint(b, out, "b", "out");
  if (bias) require_disjoint(*bias, out, "bias", "out");
  threads = resolve_threads(threads);
  const bool avx2 = FRUGALNN_X86 && use_avx2();
  if (avx2 && m && n && dfp::packed_words(m, n, k, chunk) < 0)
    throw nb::value_error(("a " + shape_string(a) + ", b " + shape_string(b) + ": packed operand size overflows").c_str());

  if (!allow_overflow && k > 0 && m > 0 && n > 0) {
    uint32_t max_a, max_b;
    {
      nb::gil_scoped_release release;
      max_a = max_abs(ap, m * k);
      max_b = max_abs(bp, k * n);
    }
    const int64_t safe = safe_chunk(max_a, max_b), effective = std::min(chunk, k);
    if (effective > safe)
      throw nb::value_error(("chunk: " + std::to_string(chunk) + " can overflow int32 with these operands (max|a| = " +
                             std::to_string(max_a) + ", max|b| = " + std::to_string(max_b) + ", K = " +
                             std::to_string(k) + "); the largest safe chunk for them is " + std::to_string(safe) +
                             " (pass allow_overflow=True for int32 wrap-around)")
                                .c_str());
  }

  nb::gil_scoped_release release;
#if FRUGALNN_X86
  if (avx2) {
    const dfp::Problem pr{ap, bp, op, m, n, k, transpose_b, dfp::make_scale(scale_exp), biasp};
    return dfp::gemm<dfp::avx2::Ops>(pr, chunk, threads);
  }
#endif
  dfp::serial::gemm(ap, bp, op, m, n, k, chunk, transpose_b, scale_exp, biasp, threads);
}

}  // namespace
}  // namespace frugalnn

void frugalnn_bind_dfp(nanobind::module_& m) {
  using namespace frugalnn;
  auto s = m.def_submodule("dfp", "DFP16 GEMM: int16 x int16 with int32 chunk sums, float32 out.");
  s.def("gemm", &gemm, nb::arg("a"), nb::arg("b"), nb::arg("ea"), nb::arg("eb"), nb::arg("chunk"),
        nb::arg("transpose_b"), nb::arg("bias").none(), nb::arg("out"), nb::arg("threads") = -1,
        nb::arg("allow_overflow") = false);
  s.def("safe_chunk", &safe_chunk, nb::arg("max_a"), nb::arg("max_b"),
        "Largest chunk whose int32 sums cannot overflow for |a| <= max_a, |b| <= max_b.");
}
