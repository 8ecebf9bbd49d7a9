// saxpy.comp: y = a * x + y over n floats, an example for `vkllm bench shader` (see README.md,
// "Benchmarking a shader"). Binding 0 is x, binding 1 is y; the push constants are n (u32) and a (f32).
// One invocation per element: dispatch ceil(n / WG) workgroups. --define WG=N changes the workgroup size.
#version 450

#ifndef WG
#define WG 256
#endif
layout(local_size_x = WG) in;

layout(std430, binding = 0) readonly buffer X { float x[]; };
layout(std430, binding = 1) buffer Y { float y[]; };
layout(push_constant) uniform Params { uint n; float a; } p;

void main()
{
    uint i = gl_GlobalInvocationID.x;
    if (i < p.n)
        y[i] = p.a * x[i] + y[i];
}
