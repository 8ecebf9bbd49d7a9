// dq.glsl: the weight format of this kernel variant, chosen by the -D flag the build gives it
// (shaders.cmake lists the formats), in the device layout of wload.glsl. Each dq_X.glsl defines:
//   QK, QB, QQ, QS        elements and bytes per block; bytes of its quants and of its scales
//   dq8(qr, sr, e, a, b)  the 8 values e .. e + 7 (e % 8 == 0) of the row that starts at byte qr of the
//                         quants binding and byte sr of the scales binding (sr unused for floats, whose
//                         rows must then start at 16-byte boundaries: the host checks it)
//   DQ_SCALAR, dq1(qr, e) float formats only: one value, any e (rows of any length)
//   DQ32, dq32(qr, sr, e, v) optionally: the 32 values e .. e + 31 (e % 32 == 0) in fewer loads; this
//                         file makes it of four dq8 otherwise
//   DQ_STEP, dq_dot(qr, sr, e, x, xs) optionally: the dot product of the DQ_STEP values from e (32 unless
//                         the format says 64 or 128) with x[DQ_STEP / 4], xs[i] the sum of x's 16 values
//                         from 16 i: the scales applied once per sum instead of to every value, and the
//                         bytes that hold several values' bits loaded once; made of dq32 otherwise
// A kernel defines WBIND and SBIND (the bindings of the two planes) before it includes this file.
#if defined(WT_F32)
#include "dq_f32.glsl"
#elif defined(WT_F16)
#include "dq_f16.glsl"
#elif defined(WT_BF16)
#include "dq_bf16.glsl"
#elif defined(WT_Q4_0)
#include "dq_q4_0.glsl"
#elif defined(WT_Q4_1)
#include "dq_q4_1.glsl"
#elif defined(WT_Q5_0)
#include "dq_q5_0.glsl"
#elif defined(WT_Q5_1)
#include "dq_q5_1.glsl"
#elif defined(WT_Q8_0)
#include "dq_q8_0.glsl"
#elif defined(WT_Q2_K)
#include "dq_q2_k.glsl"
#elif defined(WT_Q3_K)
#include "dq_q3_k.glsl"
#elif defined(WT_Q4_K)
#include "dq_q4_k.glsl"
#elif defined(WT_Q5_K)
#include "dq_q5_k.glsl"
#elif defined(WT_Q6_K)
#include "dq_q6_k.glsl"
#elif defined(WT_IQ4_NL)
#include "dq_iq4_nl.glsl"
#elif defined(WT_IQ4_XS)
#include "dq_iq4_xs.glsl"
#else
#error "no weight format: compile with -DWT_<format>"
#endif

#ifndef DQ32
void dq32(uint qr, uint sr, uint e, out vec4 v[8])
{
    // written out: a loop here stays a loop with v in memory on some compilers (5x slower on lavapipe)
    dq8(qr, sr, e, v[0], v[1]);
    dq8(qr, sr, e + 8u, v[2], v[3]);
    dq8(qr, sr, e + 16u, v[4], v[5]);
    dq8(qr, sr, e + 24u, v[6], v[7]);
}
#endif

#ifndef DQ_STEP
#define DQ_STEP 32u
float dq_dot(uint qr, uint sr, uint e, vec4 x[8], float xs[2])
{
    vec4 v[8];
    dq32(qr, sr, e, v);
    return dot(v[0], x[0]) + dot(v[1], x[1]) + dot(v[2], x[2]) + dot(v[3], x[3]) + dot(v[4], x[4]) + dot(v[5], x[5]) +
           dot(v[6], x[6]) + dot(v[7], x[7]);
}
#endif
