// dq.glsl: the weight format of this kernel variant, chosen by the -D flag the build gives it
// (shaders.cmake lists the formats). Each dq_X.glsl defines:
//   QK, QB            elements and bytes per block (1 and the element size for f32, f16, bf16)
//   dq8(rb, e, a, b)  the 8 values e .. e + 7 (e % 8 == 0) of the row that starts at byte rb; for the
//                     float formats rb + e * QB must be a multiple of 16 (the host checks it)
//   DQ_SCALAR, dq1(rb, e): float formats only: one value, any e (rows of any length)
// A kernel defines WBIND (the binding of the weights) before it includes this file.
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
