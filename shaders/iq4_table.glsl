// The 16 values of IQ4_NL and IQ4_XS indices (ggml's kvalues_iq4nl), looked up by a tree of selects on
// the index bits: an indexed constant array is a per-lane gather on CPU drivers (slower than the rest
// of the decoding together), and the selects cost 15 vector operations per 4 values.
vec4 iq4_pair(float a, float b, bvec4 bit) { return mix(vec4(a), vec4(b), bit); }
vec4 iq4_lookup(uvec4 q)
{
    bvec4 b0 = notEqual(q & 1u, uvec4(0u)), b1 = notEqual(q & 2u, uvec4(0u));
    bvec4 b2 = notEqual(q & 4u, uvec4(0u)), b3 = notEqual(q & 8u, uvec4(0u));
    vec4 v0 = mix(iq4_pair(-127.0, -104.0, b0), iq4_pair(-83.0, -65.0, b0), b1);
    vec4 v1 = mix(iq4_pair(-49.0, -35.0, b0), iq4_pair(-22.0, -10.0, b0), b1);
    vec4 v2 = mix(iq4_pair(1.0, 13.0, b0), iq4_pair(25.0, 38.0, b0), b1);
    vec4 v3 = mix(iq4_pair(53.0, 69.0, b0), iq4_pair(89.0, 113.0, b0), b1);
    return mix(mix(v0, v1, b2), mix(v2, v3, b2), b3);
}
