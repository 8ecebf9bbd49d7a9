// Q5_0: 32 values in 22 bytes: f16 d, 32 high bits (bit i for value i), 16 bytes of low nibbles (as
// Q4_0); x = (q - 16) * d
const uint QK = 32u, QB = 22u;
#include "wload.glsl"
void dq8(uint rb, uint e, out vec4 a, out vec4 b)
{
    uint bb = rb + (e / 32u) * 22u, i = e % 32u;
    float d = rdf16(bb);
    uint h = rd32(bb + 2u) >> i; // bit t: value i + t
    uint o = bb + 6u + (i & 15u), sh = (i & 16u) >> 2;
    uvec4 ha = (uvec4(h) >> uvec4(0u, 1u, 2u, 3u) & 1u) << 4, hb = (uvec4(h) >> uvec4(4u, 5u, 6u, 7u) & 1u) << 4;
    a = (vec4(bytes4(rd32(o), sh, 0xFu) | ha) - 16.0) * d;
    b = (vec4(bytes4(rd32(o + 4u), sh, 0xFu) | hb) - 16.0) * d;
}
