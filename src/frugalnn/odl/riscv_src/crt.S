  .section .text.init
  .globl _start
_start:
  li t0, (1 << 13) | (1 << 9)   /* mstatus.FS and .VS: Initial (enables F and V instructions) */
  csrs mstatus, t0
  la sp, stack_top
  call main
  slli a0, a0, 1
  ori a0, a0, 1
  la t0, tohost
  sd a0, 0(t0)
1: j 1b
  .bss
  .align 4
  .space 16384
stack_top:
