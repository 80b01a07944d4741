"""The attention cascades of FuseMax (Nayak et al., MICRO'24, Sec. 3-4), written in our grammar.

Notation: Q[e,p] queries (P of them, head dim E), K[e,m] keys, V[f,m] values, AV[f,p] the output.
Each cascade computes softmax(Q^T K) V column by column; SCALE is folded into Q by the caller.
"""
from __future__ import annotations

ATTENTION_3PASS = """\
# 3-pass: max, then exp and sum, then divide (the textbook numerically stable softmax)
input Q[e,p], K[e,m], V[f,m]
QK[m,p] = Q[e,p] * K[e,m]
GM[p] = max(m) QK[m,p]
SN[m,p] = exp(QK[m,p] - GM[p])
SD[p] = sum(m) SN[m,p]
A[m,p] = SN[m,p] / SD[p]
AV[f,p] = A[m,p] * V[f,m]
"""

ATTENTION_3PASS_DEFERRED = """\
# division deferral: divide the F-wide result instead of the M-wide probabilities
input Q[e,p], K[e,m], V[f,m]
QK[m,p] = Q[e,p] * K[e,m]
GM[p] = max(m) QK[m,p]
SN[m,p] = exp(QK[m,p] - GM[p])
SD[p] = sum(m) SN[m,p]
SNV[f,p] = SN[m,p] * V[f,m]
AV[f,p] = SNV[f,p] / SD[p]
"""

ATTENTION_2PASS = """\
# 2-pass: per-tile local max and sums, then a correction of every tile by the global max
input Q[e,p], K[e,m], V[f,m]
BK[e,m1,m0] = K[e,m1*M0+m0]
BV[f,m1,m0] = V[f,m1*M0+m0]
BQK[m1,m0,p] = Q[e,p] * BK[e,m1,m0]
LM[m1,p] = max(m0) BQK[m1,m0,p]
SLN[m1,m0,p] = exp(BQK[m1,m0,p] - LM[m1,p])
SLD[m1,p] = sum(m0) SLN[m1,m0,p]
SLNV[f,m1,p] = SLN[m1,m0,p] * BV[f,m1,m0]
GM[p] = max(m1) LM[m1,p]
PRM[m1,p] = exp(LM[m1,p] - GM[p])
SPD[m1,p] = SLD[m1,p] * PRM[m1,p]
SPNV[f,m1,p] = SLNV[f,m1,p] * PRM[m1,p]
SD[p] = sum(m1) SPD[m1,p]
SNV[f,p] = sum(m1) SPNV[f,m1,p]
AV[f,p] = SNV[f,p] / SD[p]
"""

ATTENTION_1PASS = """\
# 1-pass (FlashAttention-2): running max RM, running denominator RD, running numerator RNV
input Q[e,p], K[e,m], V[f,m]
BK[e,m1,m0] = K[e,m1*M0+m0]
BV[f,m1,m0] = V[f,m1*M0+m0]
RM[0,p] = -inf
RD[0,p] = 0
RNV[f,0,p] = 0
BQK[m1,m0,p] = Q[e,p] * BK[e,m1,m0]
LM[m1,p] = max(m0) BQK[m1,m0,p]
RM[m1+1,p] = max(RM[m1,p], LM[m1,p])
SLN[m1,m0,p] = exp(BQK[m1,m0,p] - RM[m1+1,p])
SLD[m1,p] = sum(m0) SLN[m1,m0,p]
SLNV[f,m1,p] = SLN[m1,m0,p] * BV[f,m1,m0]
PRM[m1,p] = exp(RM[m1,p] - RM[m1+1,p])
SPD[m1,p] = RD[m1,p] * PRM[m1,p]
RD[m1+1,p] = SLD[m1,p] + SPD[m1,p]
SPNV[f,m1,p] = RNV[f,m1,p] * PRM[m1,p]
RNV[f,m1+1,p] = SLNV[f,m1,p] + SPNV[f,m1,p]
AV[f,p] = RNV[f,M1,p] / RD[M1,p]
"""

SOFTMAX_3PASS = """\
input X[m,p]
GM[p] = max(m) X[m,p]
SN[m,p] = exp(X[m,p] - GM[p])
SD[p] = sum(m) SN[m,p]
Y[m,p] = SN[m,p] / SD[p]
"""

SOFTMAX_ONLINE = """\
# online normaliser (Milakov & Gimelshein 2018): max and denominator in one pass, divide in a second
input X[m,p]
RM[0,p] = -inf
RD[0,p] = 0
RM[m+1,p] = max(RM[m,p], X[m,p])
RD[m+1,p] = RD[m,p] * exp(RM[m,p] - RM[m+1,p]) + exp(X[m,p] - RM[m+1,p])
Y[m,p] = exp(X[m,p] - RM[M,p]) / RD[M,p]
"""

MATMUL = """\
input A[m,k], B[k,n]
C[m,n] = A[m,k] * B[k,n]
"""

ATTENTION = {"3-pass": ATTENTION_3PASS, "3-pass deferred": ATTENTION_3PASS_DEFERRED,
             "2-pass": ATTENTION_2PASS, "1-pass": ATTENTION_1PASS}
