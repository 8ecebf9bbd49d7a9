// wload.glsl: byte-addressed reads of a weight tensor (binding WBIND), for the decode includes dq_*.glsl.
// Blocks of 18, 22, 34, 110 and 210 bytes put fields at 2-byte boundaries, so a 32-bit field may
// straddle two words. Two ways to read them, chosen at build time:
//   default: the buffer as 32-bit words (every Vulkan 1.2 device); a 32-bit read at a 2 mod 4 byte takes
//            the halves of two words. Formats whose block size is a multiple of 4 (QB % 4 == 0) keep every
//            field 4-byte aligned (the rows start aligned), and then the test folds away.
//   W16:     the buffer as 16-bit words (storageBuffer16BitAccess): every field is 2-byte aligned.
// Byte offsets are uint: a binding is at most 4 GiB (maxStorageBufferRange is a uint32).
#ifdef W16
#extension GL_EXT_shader_16bit_storage : require
layout(binding = WBIND) readonly buffer WH { uint16_t wh[]; };
#endif
layout(binding = WBIND) readonly buffer WW { uint ww[]; };
layout(binding = WBIND) readonly buffer W4 { uvec4 w4[]; };

#ifdef W16
uint rd16(uint b) { return uint(wh[b >> 1]); }                                  // b even
uint rd32(uint b) { return uint(wh[b >> 1]) | (uint(wh[(b >> 1) + 1u]) << 16); } // b even
#else
uint rd16(uint b) { return (ww[b >> 2] >> ((b & 2u) << 3)) & 0xFFFFu; } // b even
uint rd32(uint b)                                                         // b even
{
    uint i = b >> 2;
    if ((QB & 3u) == 0u || (b & 2u) == 0u)
        return ww[i];
    return (ww[i] >> 16) | (ww[i + 1u] << 16);
}
#endif
uint rd8(uint b) { return (rd16(b & ~1u) >> ((b & 1u) << 3)) & 0xFFu; }
uvec4 rd128(uint b) { return w4[b >> 4]; } // b % 16 == 0
float rdf16(uint b) { return unpackHalf2x16(rd16(b)).x; }

// the 4 bytes of w as 4 values, each shifted right by sh and masked to mask
uvec4 bytes4(uint w, uint sh, uint mask) { return (uvec4(w) >> (uvec4(0u, 8u, 16u, 24u) + sh)) & mask; }
// the 4 bytes of w as signed 8-bit values
vec4 sbytes4(uint w) { return vec4(ivec4(uvec4(w) << uvec4(24u, 16u, 8u, 0u)) >> 24); }
