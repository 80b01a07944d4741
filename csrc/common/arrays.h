// Checks every binding runs on the arrays it receives, so that a wrong dtype, a strided view or
// a bad shape raises a Python error naming the argument and the value instead of crashing or
// being silently copied. Bindings take untyped `Array`/`OutArray` (nanobind then neither copies
// nor casts) and use these helpers to get typed pointers.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "common/checked.h"
#include "common/threads.h"

namespace frugalnn {

namespace nb = nanobind;

// Read-only inputs are accepted (GGUF tensors are read-only memory maps); outputs must be writable.
using Array = nb::ndarray<nb::ro, nb::device::cpu>;
using OutArray = nb::ndarray<nb::device::cpu>;

inline std::string dtype_name(nb::dlpack::dtype dt) {
  const char* kind = "?";
  switch (static_cast<nb::dlpack::dtype_code>(dt.code)) {
    case nb::dlpack::dtype_code::Int: kind = "int"; break;
    case nb::dlpack::dtype_code::UInt: kind = "uint"; break;
    case nb::dlpack::dtype_code::Float: kind = "float"; break;
    case nb::dlpack::dtype_code::Bfloat: kind = "bfloat"; break;
    case nb::dlpack::dtype_code::Complex: kind = "complex"; break;
    case nb::dlpack::dtype_code::Bool: kind = "bool"; break;
    default: break;
  }
  return std::string(kind) + std::to_string(static_cast<int>(dt.bits));
}

template <class A>
std::string shape_string(const A& a) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

template <class T, class A>
void require_dtype(const A& a, const char* name) {
  if (a.dtype() != nb::dtype<T>())
    throw nb::type_error((std::string(name) + ": expected dtype " + dtype_name(nb::dtype<T>()) +
                          ", got " + dtype_name(a.dtype()))
                             .c_str());
}

template <class A>
void require_c_contiguous(const A& a, const char* name) {
  for (size_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) == 0) return;  // nothing to read; exporters report arbitrary strides for empty arrays
  int64_t expected = 1;
  for (size_t i = a.ndim(); i-- > 0;) {
    if (a.shape(i) != 1 && a.stride(i) != expected)
      throw nb::type_error((std::string(name) + ": expected a C-contiguous array, got a strided view of shape " +
                            shape_string(a) + " (make it contiguous first)")
                               .c_str());
    expected *= a.shape(i);
  }
}

// dtype + contiguity + exact shape (-1 in `shape` means any size on that axis).
template <class T, class A>
T* typed(const A& a, const char* name, std::initializer_list<int64_t> shape) {
  require_dtype<T>(a, name);
  if (a.ndim() != shape.size()) {
    std::ostringstream s;
    s << name << ": expected a " << shape.size() << "-d array, got shape " << shape_string(a);
    throw nb::value_error(s.str().c_str());
  }
  size_t i = 0;
  for (int64_t want : shape) {
    if (want >= 0 && static_cast<int64_t>(a.shape(i)) != want) {
      std::ostringstream s;
      s << name << ": expected size " << want << " on axis " << i << ", got shape " << shape_string(a);
      throw nb::value_error(s.str().c_str());
    }
    ++i;
  }
  require_c_contiguous(a, name);
  return static_cast<T*>(const_cast<void*>(a.data()));
}

// Bindings take `threads` as int64 so that any Python int reaches this check (an `int` parameter
// made nanobind answer 2**31 with "incompatible function arguments").
inline int resolve_threads(int64_t threads) {
  if (threads == 0 || threads < -1 || threads > max_threads())
    throw nb::value_error(("threads: expected a positive count up to " + std::to_string(max_threads()) +
                           " or -1 (all cores), got " + std::to_string(threads)).c_str());
  return threads == -1 ? hardware_threads() : static_cast<int>(threads);
}

// Nothing to read or write: an empty array may still have a 2^40 axis (numpy allows (2^40, 0)), and
// a kernel looping over that axis doing nothing per step would run for minutes. Bindings return
// before calling the kernel when their output (or input) is empty.
template <class A>
bool is_empty(const A& a) {
  return a.size() == 0;
}

// The byte range [lo, hi) an array covers (C-contiguous: typed() checked it).
struct Span {
  uintptr_t lo = 0, hi = 0;
  template <class A>
  static Span of(const A& a) {
    auto lo = reinterpret_cast<uintptr_t>(a.data());
    return Span{lo, lo + a.nbytes()};
  }
  bool empty() const { return hi <= lo; }
  bool overlaps(const Span& o) const { return !empty() && !o.empty() && lo < o.hi && o.lo < hi; }
  bool same(const Span& o) const { return lo == o.lo && hi == o.hi; }
};

// Overlapping input and output memory would make results depend on the kernel's traversal order.
template <class A, class B>
void require_disjoint(const A& a, const B& b, const char* a_name, const char* b_name) {
  if (Span::of(a).overlaps(Span::of(b)))
    throw nb::value_error((std::string(a_name) + " and " + b_name + " share memory").c_str());
}

// For element-wise kernels, which read element i before they write element i: the output may be
// the input itself (in place), but never a shifted view of it.
template <class A, class B>
void require_disjoint_or_same(const A& a, const B& b, const char* a_name, const char* b_name) {
  const Span sa = Span::of(a), sb = Span::of(b);
  if (sa.overlaps(sb) && !sa.same(sb))
    throw nb::value_error((std::string(a_name) + " and " + b_name +
                           " partially overlap (pass the same array to work in place, or disjoint arrays)").c_str());
}

}  // namespace frugalnn
