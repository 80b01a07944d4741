// Which kernel variant runs: the serial reference or the AVX2 one. Chosen once at import (from
// CPU features and FRUGALNN_KERNELS, see frugalnn/kernels/__init__.py) and switchable at run
// time so one test process can cover both.
#pragma once

#include <atomic>

#if defined(__x86_64__) || defined(__i386__)
#define FRUGALNN_X86 1
// Every AVX2 kernel is compiled with this attribute; the rest of the module stays baseline x86-64.
#define FRUGALNN_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2")))
#else
#define FRUGALNN_X86 0
#define FRUGALNN_AVX2
#endif

namespace frugalnn {

enum class Backend : int { Serial = 0, AVX2 = 1 };

inline bool cpu_supports_avx2() {
#if FRUGALNN_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}

inline std::atomic<int>& backend_slot() {
  static std::atomic<int> slot{static_cast<int>(cpu_supports_avx2() ? Backend::AVX2 : Backend::Serial)};
  return slot;
}

inline Backend backend() { return static_cast<Backend>(backend_slot().load(std::memory_order_relaxed)); }
inline bool use_avx2() { return backend() == Backend::AVX2; }

}  // namespace frugalnn
