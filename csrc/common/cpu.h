// Which kernel variant runs: the serial reference, the AVX2 one or the AVX-512 one. Chosen once at
// import (from CPU features and FRUGALNN_KERNELS, see frugalnn/kernels/__init__.py) and switchable
// at run time so one test process can cover every backend.
//
// The backends are ordered: avx512 implies avx2 (the AVX-512 CPUs we target all have AVX2/FMA),
// so use_avx2() is true under both, and an op without an avx512.h simply keeps running its AVX2
// kernels when avx512 is chosen. An op with an avx512.h asks use_avx512() first.
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#define FRUGALNN_X86 1
// Every AVX2 kernel is compiled with this attribute; the rest of the module stays baseline x86-64.
#define FRUGALNN_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2")))
// Every AVX-512 kernel: F/BW/VL (+ DQ, present on every CPU with BW/VL that ships) over the AVX2
// set. VNNI is not in the attribute: kernels that use vpdpbusd/vpdpwssd carry FRUGALNN_AVX512_VNNI
// and run only where cpu_supports_avx512_vnni() says so.
#define FRUGALNN_AVX512 __attribute__((target("avx2,fma,f16c,bmi,bmi2,avx512f,avx512bw,avx512vl,avx512dq")))
#define FRUGALNN_AVX512_VNNI \
  __attribute__((target("avx2,fma,f16c,bmi,bmi2,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define FRUGALNN_X86 0
#define FRUGALNN_AVX2
#define FRUGALNN_AVX512
#define FRUGALNN_AVX512_VNNI
#endif

namespace frugalnn {

enum class Backend : int { Serial = 0, AVX2 = 1, AVX512 = 2 };

inline bool cpu_supports_avx2() {
#if FRUGALNN_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}

// What the avx512 kernels need: AVX512F/BW/VL/DQ on top of everything avx2 needs.
inline bool cpu_supports_avx512() {
#if FRUGALNN_X86
  __builtin_cpu_init();
  return cpu_supports_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

// VNNI (vpdpbusd, vpdpwssd), used by the avx512 kernels where present; reported separately.
inline bool cpu_supports_avx512_vnni() {
#if FRUGALNN_X86
  __builtin_cpu_init();
  return cpu_supports_avx512() && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

inline Backend best_backend() {
  return cpu_supports_avx512() ? Backend::AVX512 : cpu_supports_avx2() ? Backend::AVX2 : Backend::Serial;
}

inline std::atomic<int>& backend_slot() {
  static std::atomic<int> slot{static_cast<int>(best_backend())};
  return slot;
}

inline Backend backend() { return static_cast<Backend>(backend_slot().load(std::memory_order_relaxed)); }

// Whether the avx512 kernels may use VNNI (vpdpbusd, vpdpwssd): on where the CPU has it, and
// switchable off (set_avx512_vnni(False), FRUGALNN_VNNI=0) so one process can test the AVX512BW
// fallback that CPUs with AVX-512 but no VNNI (Skylake-SP) run. Never on where the CPU lacks it.
inline std::atomic<bool>& vnni_slot() {
  static std::atomic<bool> slot{cpu_supports_avx512_vnni()};
  return slot;
}
// True under avx2 and avx512 (an op without avx512 kernels runs its AVX2 ones).
inline bool use_avx2() { return backend() >= Backend::AVX2; }
inline bool use_avx512() { return backend() == Backend::AVX512; }
// The avx512 kernels' VNNI variants: the avx512 backend, a VNNI CPU and the switch on.
inline bool use_avx512_vnni() { return use_avx512() && vnni_slot().load(std::memory_order_relaxed); }

inline const char* backend_name(Backend b) {
  return b == Backend::AVX512 ? "avx512" : b == Backend::AVX2 ? "avx2" : "serial";
}

// The backend an op runs under the active one: avx512 only if the op has avx512 kernels.
inline const char* op_backend_name(bool op_has_avx512) {
  const Backend b = backend();
  return backend_name(b == Backend::AVX512 && !op_has_avx512 ? Backend::AVX2 : b);
}

}  // namespace frugalnn
