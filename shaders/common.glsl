// common.glsl: what every kernel includes: the parameter blocks, and loads of f32/f16/bf16 values from
// 32-bit words (which needs no 16-bit storage feature, so it runs on every Vulkan 1.2 device).
#extension GL_GOOGLE_include_directive : require
#include "rt_params.h"

// element i of a buffer of 32-bit words holding f32, f16 or bf16 values
#define LOAD_F16(buf, i) unpackHalf2x16(buf[(i) >> 1] >> (((i) & 1u) * 16u)).x
#define LOAD_BF16(buf, i) uintBitsToFloat((buf[(i) >> 1] << (((i) & 1u) == 0u ? 16u : 0u)) & 0xFFFF0000u)
#define LOAD_T(buf, dtype, i) ((dtype) == RT_DT_F32 ? uintBitsToFloat(buf[i]) : (dtype) == RT_DT_F16 ? LOAD_F16(buf, i) : LOAD_BF16(buf, i))
