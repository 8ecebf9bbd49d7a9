// common.glsl: what every kernel includes: the parameter blocks, and loads of f32/f16/bf16 values from
// 32-bit words (which needs no 16-bit storage feature, so it runs on every Vulkan 1.2 device).
#extension GL_GOOGLE_include_directive : require
#include "rt_params.h"

// element i of a buffer of 32-bit words holding f32, f16 or bf16 values
#define LOAD_F16(buf, i) unpackHalf2x16(buf[(i) >> 1] >> (((i) & 1u) * 16u)).x
#define LOAD_BF16(buf, i) uintBitsToFloat((buf[(i) >> 1] << (((i) & 1u) == 0u ? 16u : 0u)) & 0xFFFF0000u)
#define LOAD_T(buf, dtype, i) ((dtype) == RT_DT_F32 ? uintBitsToFloat(buf[i]) : (dtype) == RT_DT_F16 ? LOAD_F16(buf, i) : LOAD_BF16(buf, i))

// c tanh(x / c) (soft-capping, Gemma 2), exact at both ends: tanh(u) from e^(-2|u|) <= 1, never inf / inf
// (some drivers compute tanh as a ratio of exponentials, NaN for |u| > 88), and for |u| < 1/4, where
// 1 - e^(-2|u|) would cancel (a cap far above the scores), its Taylor polynomial (error < 1e-7 of u)
float softcapped(float x, float c)
{
    float u = x / c, a = abs(u);
    if (a < 0.25) {
        float u2 = u * u;
        return c * u * (1.0 + u2 * (-1.0 / 3.0 + u2 * (2.0 / 15.0 + u2 * (-17.0 / 315.0))));
    }
    float e = exp(-2.0 * a);
    return c * sign(u) * (1.0 - e) / (1.0 + e);
}
