#version 450
// y[r] = table[ids[r]] for the table rows [row0, row0 + n_bound) bound here (a large table is bound in
// pieces); ids outside [0, n_table) give zero rows (written by the piece with row0 = 0).
#include "common.glsl"
layout(local_size_x_id = 0) in;
layout(binding = 0) writeonly buffer Y { float y[]; };
layout(binding = 1) readonly buffer T { uint t[]; };
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
    uint src = p.off_t + (uint(id) - p.row0) * p.dim;
    for (uint c = gl_GlobalInvocationID.x; c < p.dim; c += gl_NumWorkGroups.x * gl_WorkGroupSize.x)
        y[p.off_y + r * p.dim + c] = invalid ? 0.0 : LOAD_T(t, p.dtype, src + c);
}
