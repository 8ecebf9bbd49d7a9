// The 16 values of IQ4_NL and IQ4_XS indices (ggml's kvalues_iq4nl).
const float IQ4_TABLE[16] = float[16](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                      1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);
vec4 iq4_lookup(uvec4 q) { return vec4(IQ4_TABLE[q.x], IQ4_TABLE[q.y], IQ4_TABLE[q.z], IQ4_TABLE[q.w]); }
