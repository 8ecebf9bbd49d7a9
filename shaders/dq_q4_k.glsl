// Q4_K: 256 values in 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins (8 of each, one
// per 32 values), 128 bytes of 4-bit q. Value e: g = e / 64, w = e % 64: q is nibble w / 32 of byte
// 16 + 32 g + w % 32, its scale and min number s = 2 g + w / 32; x = (d * scale) * q - dmin * min
const uint QK = 256u, QB = 144u;
#include "wload.glsl"
// scale and min s (0..7) of the 12 bytes at sb: s < 4: bytes s, s + 4 (low 6 bits); else the low and
// high nibbles of byte s + 4 with the top 2 bits of bytes s - 4 and s
uvec2 scale_min_k4(uint sb, uint s)
{
    if (s < 4u)
        return uvec2(rd8(sb + s) & 63u, rd8(sb + s + 4u) & 63u);
    uint c = rd8(sb + s + 4u);
    return uvec2((c & 0xFu) | ((rd8(sb + s - 4u) >> 6) << 4), (c >> 4) | ((rd8(sb + s) >> 6) << 4));
}
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 256u) * 144u, i = e % 256u;
    uint g = i >> 6, w = i & 63u;
    vec2 dm = unpackHalf2x16(rd32(bb));
    uvec2 sm = scale_min_k4(bb + 4u, 2u * g + (w >> 5));
    float d1 = dm.x * float(sm.x), m1 = dm.y * float(sm.y);
    uint o = bb + 16u + g * 32u + (w & 31u), sh = (w >> 5) * 4u;
    a = vec4(bytes4(rd32(o), sh, 0xFu)) * d1 - m1;
    b = vec4(bytes4(rd32(o + 4u), sh, 0xFu)) * d1 - m1;
}
