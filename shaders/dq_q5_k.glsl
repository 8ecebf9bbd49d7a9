// Q5_K: 256 values in 176 bytes: f16 d, f16 dmin, 12 bytes of scales and mins (as Q4_K), 32 bytes of
// high bits, 128 bytes of low nibbles. Value e: g = e / 64, w = e % 64, l = w % 32: low nibble w / 32
// of byte 48 + 32 g + l, high bit 2 g + w / 32 of byte 16 + l; x = (d * scale) * q - dmin * min
const uint QK = 256u, QB = 176u;
#include "wload.glsl"
uvec2 scale_min_k4(uint sb, uint s)
{
    if (s < 4u)
        return uvec2(rd8(sb + s) & 63u, rd8(sb + s + 4u) & 63u);
    uint c = rd8(sb + s + 4u);
    return uvec2((c & 0xFu) | ((rd8(sb + s - 4u) >> 6) << 4), (c >> 4) | ((rd8(sb + s) >> 6) << 4));
}
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 256u) * 176u, i = e % 256u;
    uint g = i >> 6, w = i & 63u, l = w & 31u;
    vec2 dm = unpackHalf2x16(rd32(bb));
    uvec2 sm = scale_min_k4(bb + 4u, 2u * g + (w >> 5));
    float d1 = dm.x * float(sm.x), m1 = dm.y * float(sm.y);
    uint o = bb + 48u + g * 32u + l, sh = (w >> 5) * 4u, hs = 2u * g + (w >> 5);
    uvec4 ha = bytes4(rd32(bb + 16u + l), hs, 1u) << 4, hb = bytes4(rd32(bb + 20u + l), hs, 1u) << 4;
    a = vec4(bytes4(rd32(o), sh, 0xFu) | ha) * d1 - m1;
    b = vec4(bytes4(rd32(o + 4u), sh, 0xFu) | hb) * d1 - m1;
}
