// ODL matmul kernel family, AVX2 + FMA + F16C: C[M, N] = A . B on packed float panels, one
// register tile of MR rows x NV*8 columns per call (the tiles in layout.h kTiles). Packing
// widens fp16 storage to float (F16C vcvtph2ps) and handles any strides, so one kernel serves the
// forward (W . col), the weight grad (dY . col^T) and the input grad (W^T . dY). The whole K is
// summed in registers in ascending k (no K blocking: K <= a few thousand at batch 1).
// fp16 accumulation (acc16) rounds every accumulator through vcvtps2ph/vcvtph2ps after each FMA:
// x86 has no fp16 arithmetic in AVX2, so fp16 "compute" costs two conversions per step, never saves.
//
// Role: avx2 (packing, micro-kernels, tile store). Checked against: frugalnn/kernels/odl_ref.py
// bit for bit for fp16 storage (a product of two fp16 values is exact in float, so FMA rounds as
// the serial add does), within float rounding for fp32 (tests/kernels/test_odl_kernel.py).
//
// compile check: g++ -std=c++17 -O3 -fsyntax-only -I csrc csrc/odl/avx2.h
#pragma once

#include "common/cpu.h"
#include "odl/layout.h"
#include "odl/serial.h"

#if FRUGALNN_X86
#include <immintrin.h>

namespace frugalnn {
namespace odl {
namespace avx2 {

template <class T>
FRUGALNN_AVX2 inline float load1(const T* p);
template <>
FRUGALNN_AVX2 inline float load1<float>(const float* p) { return *p; }
template <>
FRUGALNN_AVX2 inline float load1<uint16_t>(const uint16_t* p) { return _cvtsh_ss(*p); }

// dst[q*width + r] = A(row0 + r, q) for r < rows (zero beyond), q < k.
template <class T>
FRUGALNN_AVX2 void pack(const T* a, int64_t s_row, int64_t s_k, int64_t row0, int64_t rows, int64_t width, int64_t k,
                        float* dst) {
  if (s_k == 1) {  // each row contiguous along k: read rows, write the transpose
    for (int64_t r = 0; r < rows; ++r) {
      const T* src = a + (row0 + r) * s_row;
      float* d = dst + r;
      if constexpr (sizeof(T) == 4) {
        for (int64_t q = 0; q < k; ++q) d[q * width] = src[q];
      } else {
        int64_t q = 0;
        for (; q + 8 <= k; q += 8) {
          alignas(32) float tmp[8];
          _mm256_store_ps(tmp, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + q))));
          for (int e = 0; e < 8; ++e) d[(q + e) * width] = tmp[e];
        }
        for (; q < k; ++q) d[q * width] = load1(src + q);
      }
    }
    for (int64_t r = rows; r < width; ++r)
      for (int64_t q = 0; q < k; ++q) dst[q * width + r] = 0.0f;
    return;
  }
  if (rows < width) {
    for (int64_t q = 0; q < k; ++q) {
      float* d = dst + q * width;
      for (int64_t r = 0; r < width; ++r) d[r] = r < rows ? load1(a + (row0 + r) * s_row + q * s_k) : 0.0f;
    }
    return;
  }
  // rows contiguous along the tile (s_row == 1 typical): full vectors of 8
  for (int64_t q = 0; q < k; ++q) {
    const T* src = a + row0 * s_row + q * s_k;
    float* d = dst + q * width;
    if (s_row == 1) {
      int64_t r = 0;
      for (; r + 8 <= width; r += 8) {
        if constexpr (sizeof(T) == 4) {
          _mm256_storeu_ps(d + r, _mm256_loadu_ps(reinterpret_cast<const float*>(src) + r));
        } else {
          _mm256_storeu_ps(d + r, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + r))));
        }
      }
      for (; r < width; ++r) d[r] = load1(src + r);
    } else {
      for (int64_t r = 0; r < width; ++r) d[r] = load1(src + r * s_row);
    }
  }
}

// tile (MR x NV*8) = (first ? 0 : tile) + A-panel . B-strip over k steps; the running sums stay in
// registers within a call and in the tile between K blocks, so the order per output is k ascending.
template <int MR, int NV, bool ACC16>
FRUGALNN_AVX2 void kernel(const float* ap, const float* bp, int64_t k, float* tile, bool first) {
  __m256 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(tile + r * NV * 8 + v * 8);
  for (int64_t q = 0; q < k; ++q) {
    __m256 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm256_loadu_ps(bp + q * NV * 8 + v * 8);
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(ap + q * MR + r);
      for (int v = 0; v < NV; ++v) {
        acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
        if constexpr (ACC16)
          acc[r][v] = _mm256_cvtph_ps(_mm256_cvtps_ph(acc[r][v], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      }
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(tile + r * NV * 8 + v * 8, acc[r][v]);
}

using KernelFn = void (*)(const float*, const float*, int64_t, float*, bool);

constexpr int64_t kKC = 256;  // K block: a B strip block (kKC x 32 floats) stays in L1

template <int MR, int NV>
inline KernelFn pick(bool acc16) {
  return acc16 ? &kernel<MR, NV, true> : &kernel<MR, NV, false>;
}

inline KernelFn kernel_for(int id, bool acc16) {
  switch (id) {
    case 1: return pick<1, 1>(acc16);
    case 2: return pick<4, 1>(acc16);
    case 3: return pick<8, 1>(acc16);
    case 4: return pick<2, 2>(acc16);
    case 5: return pick<4, 2>(acc16);
    case 6: return pick<6, 2>(acc16);
    case 7: return pick<3, 3>(acc16);
    case 8: return pick<4, 3>(acc16);
    default: return pick<1, 4>(acc16);
  }
}

// Store rows x cols of the float tile (row stride ld_tile) into C (row stride n), rounding to T.
template <class T>
FRUGALNN_AVX2 void store_tile(const float* tile, int64_t ld_tile, int64_t rows, int64_t cols, T* c, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = tile + r * ld_tile;
    T* d = c + r * n;
    if constexpr (sizeof(T) == 4) {
      std::memcpy(d, s, cols * sizeof(float));
    } else {
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(d + j),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + j), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      for (; j < cols; ++j) d[j] = _cvtss_sh(s[j], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
  }
}

// Columns [n_lo, n_hi) of C with kernel `id`; apk: A packed in tiles of MR rows, [q][r] per tile
// (see driver.h); bbuf: room for one B strip block (kKC x NV*8 floats); tiles: m_pad x NV*8 floats.
template <class T>
FRUGALNN_AVX2 void matmul_cols(const float* apk, const T* b, int64_t sbk, int64_t sbn, T* c, int64_t m, int64_t n,
                               int64_t k, int id, bool acc16, int64_t n_lo, int64_t n_hi, float* bbuf, float* tiles) {
  const int mr = kTiles[id].mr, nr = kTiles[id].nv * 8;
  const KernelFn fn = kernel_for(id, acc16);
  for (int64_t j0 = n_lo; j0 < n_hi; j0 += nr) {
    const int64_t cols = std::min<int64_t>(nr, n_hi - j0);
    for (int64_t k0 = 0; k0 < k || k0 == 0; k0 += kKC) {
      const int64_t kc = std::min(kKC, k - k0);
      pack(b + k0 * sbk, sbn, sbk, j0, cols, nr, kc, bbuf);
      for (int64_t i0 = 0; i0 < m; i0 += mr) fn(apk + i0 * k + k0 * mr, bbuf, kc, tiles + i0 * nr, k0 == 0);
      if (kc <= 0) break;
    }
    for (int64_t i0 = 0; i0 < m; i0 += mr)
      store_tile(tiles + i0 * nr, nr, std::min<int64_t>(mr, m - i0), cols, c + i0 * n + j0, n);
  }
}

// The dot-product kernel (fp32 only): C[i, j] = sum_k A[i*sam + k] B[j*sbn + k] when both operands
// are contiguous along k (the weight gradient dY . col^T): 8-lane partial sums, no packing, then a
// horizontal add and the scalar tail. Its summation order differs from the serial loop's (fp32
// results agree within rounding; fp16 storage never comes here, so its bit-exactness holds).
template <int R, int C>
FRUGALNN_AVX2 void dot_tile(const float* a, int64_t sam, const float* b, int64_t sbn, int64_t k, float* c, int64_t n) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) acc[r][j] = _mm256_setzero_ps();
  int64_t q = 0;
  for (; q + 8 <= k; q += 8) {
    __m256 av[R];
    for (int r = 0; r < R; ++r) av[r] = _mm256_loadu_ps(a + r * sam + q);
    for (int j = 0; j < C; ++j) {
      const __m256 bv = _mm256_loadu_ps(b + j * sbn + q);
      for (int r = 0; r < R; ++r) acc[r][j] = _mm256_fmadd_ps(av[r], bv, acc[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < C; ++j) {
      const __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc[r][j]), _mm256_extractf128_ps(acc[r][j], 1));
      const __m128 h2 = _mm_add_ps(h, _mm_movehl_ps(h, h));
      float sum = _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
      for (int64_t t = q; t < k; ++t) sum += a[r * sam + t] * b[j * sbn + t];
      c[r * n + j] = sum;
    }
}

// Columns [n_lo, n_hi) with 2 x 4 dot tiles (1 x 1 at the edges).
FRUGALNN_AVX2 inline void dot_cols(const float* a, int64_t sam, const float* b, int64_t sbn, float* c, int64_t m,
                                   int64_t n, int64_t k, int64_t n_lo, int64_t n_hi) {
  int64_t i = 0;
  for (; i + 2 <= m; i += 2) {
    int64_t j = n_lo;
    for (; j + 4 <= n_hi; j += 4) dot_tile<2, 4>(a + i * sam, sam, b + j * sbn, sbn, k, c + i * n + j, n);
    for (; j < n_hi; ++j) dot_tile<2, 1>(a + i * sam, sam, b + j * sbn, sbn, k, c + i * n + j, n);
  }
  for (; i < m; ++i)
    for (int64_t j = n_lo; j < n_hi; ++j) dot_tile<1, 1>(a + i * sam, sam, b + j * sbn, sbn, k, c + i * n + j, n);
}

}  // namespace avx2
}  // namespace odl
}  // namespace frugalnn
#endif
