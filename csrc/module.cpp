// The frugalnn._core extension: backend switch plus every op's bindings (discovered by CMake).
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>

#include <map>
#include <string>

#include "common/cpu.h"
#include "common/threads.h"
#include "ops.inc"

namespace nb = nanobind;

NB_MODULE(_core, m) {
  m.doc() = "frugalnn compiled kernels (serial reference + AVX2 and AVX-512 variants).";
  m.def("cpu_supports_avx2", &frugalnn::cpu_supports_avx2,
        "True when this CPU has AVX2, FMA, F16C and BMI2 (what the avx2 kernels need).");
  m.def("hardware_threads", &frugalnn::hardware_threads);
  m.def("max_threads", &frugalnn::max_threads,
        "The most threads any call may ask for: max(256, 4 x hardware threads) (csrc/common/threads.h).");
  m.def("cpu_supports_avx512", &frugalnn::cpu_supports_avx512,
        "True when this CPU has what the avx512 kernels need: AVX512F/BW/VL/DQ on top of the avx2 set.");
  m.def("cpu_supports_avx512_vnni", &frugalnn::cpu_supports_avx512_vnni,
        "True when the avx512 kernels may also use AVX512-VNNI (vpdpbusd, vpdpwssd).");
  m.def("avx512_vnni", [] { return frugalnn::vnni_slot().load(); },
        "Whether the avx512 kernels use VNNI now (a VNNI CPU and set_avx512_vnni not turned off).");
  m.def("set_avx512_vnni", [](bool on) {
    if (on && !frugalnn::cpu_supports_avx512_vnni())
      throw nb::value_error("avx512_vnni requested but this CPU lacks AVX512-VNNI");
    frugalnn::vnni_slot().store(on);
  }, "Let the avx512 kernels use VNNI (True, only on a VNNI CPU) or force their AVX512BW path (False).");
  m.def("backend", [] { return std::string(frugalnn::backend_name(frugalnn::backend())); });
  m.def("set_backend", [](const std::string& name) {
    if (name == "serial") {
      frugalnn::backend_slot().store(static_cast<int>(frugalnn::Backend::Serial));
    } else if (name == "avx2") {
      if (!frugalnn::cpu_supports_avx2())
        throw nb::value_error("backend 'avx2' requested but this CPU lacks AVX2/FMA/F16C/BMI2");
      frugalnn::backend_slot().store(static_cast<int>(frugalnn::Backend::AVX2));
    } else if (name == "avx512") {
      if (!frugalnn::cpu_supports_avx512())
        throw nb::value_error("backend 'avx512' requested but this CPU lacks AVX-512 (AVX512F/BW/VL/DQ)");
      frugalnn::backend_slot().store(static_cast<int>(frugalnn::Backend::AVX512));
    } else {
      throw nb::value_error(("backend: expected 'serial', 'avx2' or 'avx512', got '" + name + "'").c_str());
    }
  });
  m.def("op_backends", [] {
    std::map<std::string, std::string> out;
    for (const FrugalnnOp& op : frugalnn_ops) out[op.name] = frugalnn::op_backend_name(op.has_avx512);
    return out;
  }, "Per op, the backend its kernels run under the active one (avx512 falls back to avx2 for an op "
     "without csrc/<op>/avx512.h).");
  frugalnn_bind_all_ops(m);
}
