// The frugalnn._core extension: backend switch plus every op's bindings (discovered by CMake).
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>

#include <string>

#include "common/cpu.h"
#include "common/threads.h"
#include "ops.inc"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "frugalnn compiled kernels (serial reference + AVX2 variants).";
  m.def("cpu_supports_avx2", &frugalnn::cpu_supports_avx2,
        "True when this CPU has AVX2, FMA, F16C and BMI2 (what the avx2 kernels need).");
  m.def("hardware_threads", &frugalnn::hardware_threads);
  m.def("max_threads", &frugalnn::max_threads,
        "The most threads any call may ask for: max(256, 4 x hardware threads) (csrc/common/threads.h).");
  m.def("backend", [] { return std::string(frugalnn::use_avx2() ? "avx2" : "serial"); });
  m.def("set_backend", [](const std::string& name) {
    if (name == "serial") {
      frugalnn::backend_slot().store(static_cast<int>(frugalnn::Backend::Serial));
    } else if (name == "avx2") {
      if (!frugalnn::cpu_supports_avx2())
        throw nb::value_error("backend 'avx2' requested but this CPU lacks AVX2/FMA/F16C/BMI2");
      frugalnn::backend_slot().store(static_cast<int>(frugalnn::Backend::AVX2));
    } else {
      throw nb::value_error(("backend: expected 'serial' or 'avx2', got '" + name + "'").c_str());
    }
  });
  frugalnn_bind_all_ops(m);
}
