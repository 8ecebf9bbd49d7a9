// The 6-bit scale and min s (0..7) of Q4_K and Q5_K, from their 12 scale bytes (byte j of them: byte
// j & 3 of word j >> 2): s < 4: bytes s, s + 4 (low 6 bits); else the low and high nibbles of byte s + 4
// with the top 2 bits of bytes s - 4 and s.
uint kbyte(uvec3 w, uint j) { return (w[j >> 2] >> ((j & 3u) * 8u)) & 0xFFu; }
uvec2 scale_min_k4(uvec3 w, uint s)
{
    if (s < 4u)
        return uvec2(kbyte(w, s) & 63u, kbyte(w, s + 4u) & 63u);
    uint c = kbyte(w, s + 4u);
    return uvec2((c & 0xFu) | ((kbyte(w, s - 4u) >> 6) << 4), (c >> 4) | ((kbyte(w, s) >> 6) << 4));
}
