/* One Conv2d training step (forward, weight grad, input grad; batch 1, CHW, im2col) for the spike
 * RISC-V ISA simulator, bare metal, in the loop order of csrc/odl/serial.h. Built four ways by
 * frugalnn/odl/riscv.py: scalar fp32 (F/D), scalar fp16 (Zfh: flh / fmadd.h / fsh), and RVV with
 * SEW 32 / 16 (vfmacc.vf over the output's contiguous axis; fp16 vectors need Zvfh), the RVV pair
 * standing in for the paper's packed-SIMD fp16. GCC 12 has no _Float16 for RISC-V, so every
 * floating-point operation is inline assembly and the element type is just its width.
 * Prints "instret <n> macs <m>": minstret around the step. */
#include <stdint.h>

#ifndef HALF
#define HALF 0
#endif
#ifndef VEC
#define VEC 0
#endif
#if HALF
typedef uint16_t elem;
#define FL "flh"
#define FS "fsh"
#define FMADD "fmadd.h"
#define FADD "fadd.h"
#define VL "vle16.v"
#define VLS "vlse16.v"
#define VS "vse16.v"
#define SEW "e16"
#else
typedef uint32_t elem;
#define FL "flw"
#define FS "fsw"
#define FMADD "fmadd.s"
#define FADD "fadd.s"
#define VL "vle32.v"
#define VLS "vlse32.v"
#define VS "vse32.v"
#define SEW "e32"
#endif

#define CIN 8
#define COUT 8
#define H 8
#define W 8
#define KH 3
#define KW 3
#define PAD 1
#define HO H
#define WO W
#define K (CIN * KH * KW)
#define P (HO * WO)

volatile uint64_t tohost __attribute__((section(".tohost"), aligned(64)));
volatile uint64_t fromhost __attribute__((section(".tohost"), aligned(64)));

void* memset(void* d, int c, unsigned long n) { char* p = d; while (n--) *p++ = (char)c; return d; }
void* memcpy(void* d, const void* s, unsigned long n) { char* p = d; const char* q = s; while (n--) *p++ = *q++; return d; }

static void htif_write(const char* buf, uint64_t len) {
  volatile uint64_t magic[8] __attribute__((aligned(64)));
  magic[0] = 64; magic[1] = 1; magic[2] = (uintptr_t)buf; magic[3] = len;
  __sync_synchronize();
  tohost = (uintptr_t)magic;
  while (fromhost == 0) {}
  fromhost = 0;
  __sync_synchronize();
}

static int utoa(uint64_t v, char* out) {
  char tmp[24]; int n = 0, i = 0;
  do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (n) out[i++] = tmp[--n];
  return i;
}

static elem x[CIN * H * W], w[COUT * K], dy[COUT * P], dw[COUT * K], dx[CIN * H * W], y[COUT * P];
static elem col[K * P], dcol[K * P];

/* C[r*scr + c] = sum_q A[r*sar + q*saq] * B[q*sbq + c*sbc], rows r < nr, columns c < nc, q < nq */
static void mm(const elem* a, long sar, long saq, const elem* b, long sbq, long sbc, elem* c, long scr,
               long nr, long nc, long nq) {
  for (long r = 0; r < nr; ++r) {
#if VEC
    for (long c0 = 0; c0 < nc;) {
      long vl;
      __asm__ volatile("vsetvli %0, %1, " SEW ", m1, ta, ma" : "=r"(vl) : "r"(nc - c0));
      __asm__ volatile("vmv.v.i v8, 0");
      const elem* pa = a + r * sar;
      const elem* pb = b + c0 * sbc;
      for (long q = 0; q < nq; ++q, pa += saq, pb += sbq) {
        float s;
        __asm__ volatile(FL " %0, 0(%1)" : "=f"(s) : "r"(pa));
        if (sbc == 1) __asm__ volatile(VL " v16, (%0)" ::"r"(pb) : "memory");
        else __asm__ volatile(VLS " v16, (%0), %1" ::"r"(pb), "r"(sbc * (long)sizeof(elem)) : "memory");
        __asm__ volatile("vfmacc.vf v8, %0, v16" ::"f"(s));
      }
      __asm__ volatile(VS " v8, (%0)" ::"r"(c + r * scr + c0) : "memory");
      c0 += vl;
    }
#else
    for (long cc = 0; cc < nc; ++cc) {
      float acc;
      __asm__ volatile("fmv.w.x %0, zero" : "=f"(acc));
      const elem* pa = a + r * sar;
      const elem* pb = b + cc * sbc;
      for (long q = 0; q < nq; ++q, pa += saq, pb += sbq) {
        float s, t;
        __asm__ volatile(FL " %0, 0(%1)" : "=f"(s) : "r"(pa));
        __asm__ volatile(FL " %0, 0(%1)" : "=f"(t) : "r"(pb));
        __asm__ volatile(FMADD " %0, %1, %2, %0" : "+f"(acc) : "f"(s), "f"(t));
      }
      __asm__ volatile(FS " %0, 0(%1)" ::"f"(acc), "r"(c + r * scr + cc) : "memory");
    }
#endif
  }
}

static void im2col(const elem* in, elem* out) {
  long row = 0;
  for (long ch = 0; ch < CIN; ++ch)
    for (long i = 0; i < KH; ++i)
      for (long j = 0; j < KW; ++j, ++row)
        for (long oy = 0; oy < HO; ++oy)
          for (long ox = 0; ox < WO; ++ox) {
            long yy = oy + i - PAD, xx = ox + j - PAD;
            out[row * P + oy * WO + ox] = (yy >= 0 && yy < H && xx >= 0 && xx < W) ? in[(ch * H + yy) * W + xx] : 0;
          }
}

static void col2im_add(const elem* in, elem* out) {
  long row = 0;
  for (long ch = 0; ch < CIN; ++ch)
    for (long i = 0; i < KH; ++i)
      for (long j = 0; j < KW; ++j, ++row)
        for (long oy = 0; oy < HO; ++oy)
          for (long ox = 0; ox < WO; ++ox) {
            long yy = oy + i - PAD, xx = ox + j - PAD;
            if (yy < 0 || yy >= H || xx < 0 || xx >= W) continue;
            elem* d = &out[(ch * H + yy) * W + xx];
            float s, t;
            __asm__ volatile(FL " %0, 0(%1)" : "=f"(s) : "r"(d));
            __asm__ volatile(FL " %0, 0(%1)" : "=f"(t) : "r"(&in[row * P + oy * WO + ox]));
            __asm__ volatile(FADD " %0, %0, %1" : "+f"(s) : "f"(t));
            __asm__ volatile(FS " %0, 0(%1)" ::"f"(s), "r"(d) : "memory");
          }
}

static void conv_step(void) {
  im2col(x, col);
  mm(w, K, 1, col, P, 1, y, P, COUT, P, K);     /* forward      Y = W . col            */
  mm(dy, P, 1, col, 1, P, dw, K, COUT, K, P);   /* weight grad  dW = dY . col^T        */
  mm(w, 1, K, dy, P, 1, dcol, P, K, P, COUT);   /* input grad   dcol = W^T . dY        */
  col2im_add(dcol, dx);
}

int main(void) {
  const elem one_ish = HALF ? 0x3000 : 0x3e000000; /* 0.125 */
  for (long i = 0; i < CIN * H * W; ++i) x[i] = one_ish + (elem)(i % 7);
  for (long i = 0; i < COUT * K; ++i) w[i] = one_ish + (elem)(i % 5);
  for (long i = 0; i < COUT * P; ++i) dy[i] = one_ish + (elem)(i % 3);
  uint64_t t0, t1;
  __asm__ volatile("csrr %0, minstret" : "=r"(t0));
  conv_step();
  __asm__ volatile("csrr %0, minstret" : "=r"(t1));
  char buf[80]; int n = 0;
  const char* a = "instret "; while (*a) buf[n++] = *a++;
  n += utoa(t1 - t0, buf + n);
  const char* b = " macs "; while (*b) buf[n++] = *b++;
  n += utoa(3ull * COUT * K * P, buf + n);
  buf[n++] = '\n';
  htif_write(buf, (uint64_t)n);
  return 0;
}
