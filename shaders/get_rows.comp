#version 450
// y[r] = table[ids[r]] for the table rows [row0, row0 + n_bound) bound here (a large table is bound in
// pieces); ids outside [0, n_table) give zero rows (written by the piece with row0 = 0). The table is in
// the format of this variant (dq.glsl): decoded 8 values at a time (VEC), else value by value.
#include "common.glsl"
#define WBIND 1
#define SBIND 3
#include "dq.glsl"
layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint VEC = 0; // dim % 8 == 0 and the table aligned for dq8
layout(binding = 0) writeonly buffer Y { float y[]; };
layout(binding = 2) readonly buffer I { int ids[]; };
layout(push_constant) uniform PC { rt_pc_get_rows p; };

void main()
{
    uint r = gl_WorkGroupID.y + gl_WorkGroupID.z * gl_NumWorkGroups.y;
    if (r >= p.rows)
        return;
    int id = ids[p.off_ids + r];
    bool invalid = id < 0 || uint(id) >= p.n_table;
    if (invalid ? p.row0 != 0u : (uint(id) < p.row0 || uint(id) >= p.row0 + p.n_bound))
        return;
    uint rb = p.off_t + (uint(id) - p.row0) * p.row_bytes, sb = p.off_s + (uint(id) - p.row0) * p.s_row;
    uint yo = p.off_y + r * p.dim;
    uint stride = gl_NumWorkGroups.x * gl_WorkGroupSize.x;
    if (VEC != 0) {
        for (uint c = gl_GlobalInvocationID.x; c < p.dim / 8u; c += stride) {
            vec4 a = vec4(0.0), b = vec4(0.0);
            if (!invalid)
                dq8(rb, sb, c * 8u, a, b);
            for (uint i = 0; i < 4u; i++) {
                y[yo + c * 8u + i] = a[i];
                y[yo + c * 8u + 4u + i] = b[i];
            }
        }
    }
#ifdef DQ_SCALAR
    else {
        for (uint c = gl_GlobalInvocationID.x; c < p.dim; c += stride)
            y[yo + c] = invalid ? 0.0 : dq1(rb, c);
    }
#endif
}
