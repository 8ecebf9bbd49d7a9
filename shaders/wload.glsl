// wload.glsl: reads of a weight tensor for the decode includes dq_*.glsl, in the device layout of
// rt_weight_bytes (runtime/rt.h): f32, f16 and bf16 as in the file, in binding WBIND; a block format in two
// planes, the quants of each block (QQ bytes, a multiple of 16) in binding WBIND, its scales (QS bytes,
// the rest of the block in its order) in binding SBIND. Rows start at 16-byte boundaries in the quants
// plane, so quants are read with aligned 4-, 8- and 16-byte loads; scales sit at 2-byte boundaries when
// QS is not a multiple of 4, and a 32-bit read there takes the halves of two words (the test folds away
// where QS % 4 == 0). Byte offsets are uint: a binding is at most 4 GiB (maxStorageBufferRange).
//
// WBIND2 / SBIND2 (the fused gate and up of gemv*.comp, matmul.comp): a second weight of the same format
// in two more bindings; the loads below read it while the kernel's wsel is 1. Kernels set wsel to
// constants around the calls (after inlining and unrolling the choice folds away). dq1 of dq_f32.glsl
// reads ww directly: the first weight only.
layout(binding = WBIND) readonly buffer WWords { uint ww[]; };
layout(binding = WBIND) readonly buffer WVec2 { uvec2 w2[]; };
layout(binding = WBIND) readonly buffer WVec4 { uvec4 w4[]; };
#ifdef SBIND
layout(binding = SBIND) readonly buffer SWords { uint sw[]; };
layout(binding = SBIND) readonly buffer SVec4 { uvec4 s4[]; };
#endif
#ifdef WBIND2
layout(binding = WBIND2) readonly buffer WWords2 { uint ww_2[]; };
layout(binding = WBIND2) readonly buffer WVec2_2 { uvec2 w2_2[]; };
layout(binding = WBIND2) readonly buffer WVec4_2 { uvec4 w4_2[]; };
layout(binding = SBIND2) readonly buffer SWords2 { uint sw_2[]; };
layout(binding = SBIND2) readonly buffer SVec4_2 { uvec4 s4_2[]; };
uint wsel = 0u;
#define WPICK(a, b) (wsel != 0u ? (b) : (a))
#else
#define WPICK(a, b) (a)
#endif

uvec2 rq64(uint b) { return WPICK(w2[b >> 3], w2_2[b >> 3]); }   // b % 8 == 0
uvec4 rq128(uint b) { return WPICK(w4[b >> 4], w4_2[b >> 4]); }  // b % 16 == 0
uint rq16(uint b) { return (WPICK(ww[b >> 2], ww_2[b >> 2]) >> ((b & 2u) << 3)) & 0xFFFFu; } // b even

#ifdef SBIND
uint rsw(uint i) { return WPICK(sw[i], sw_2[i]); }
uint rs16(uint b) { return (rsw(b >> 2) >> ((b & 2u) << 3)) & 0xFFFFu; } // b even
uint rs32(uint b)                                                         // b even
{
    uint i = b >> 2;
    if ((QS & 3u) == 0u || (b & 2u) == 0u)
        return rsw(i);
    return (rsw(i) >> 16) | (rsw(i + 1u) << 16);
}
uint rs8(uint b) { return (rsw(b >> 2) >> ((b & 3u) << 3)) & 0xFFu; }
float rsf16(uint b) { return unpackHalf2x16(rs16(b)).x; }
uvec4 rs128(uint b) { return WPICK(s4[b >> 4], s4_2[b >> 4]); } // b % 16 == 0 (formats with QS % 16 == 0)
#endif

// the 4 bytes of w as 4 values, each shifted right by sh and masked to mask
uvec4 bytes4(uint w, uint sh, uint mask) { return (uvec4(w) >> (uvec4(0u, 8u, 16u, 24u) + sh)) & mask; }
// the 4 bytes of w as signed 8-bit values
vec4 sbytes4(uint w) { return vec4(ivec4(uvec4(w) << uvec4(24u, 16u, 8u, 0u)) >> 24); }
