# The kernels: vkllm_shader(NAME FILE [DEFINES...]). A variant is a second line with the same file.
vkllm_shader(eltwise eltwise.comp)
vkllm_shader(norm norm.comp)
vkllm_shader(softmax softmax.comp)
vkllm_shader(argmax argmax.comp)
vkllm_shader(rope rope.comp)
vkllm_shader(kv_write kv_write.comp)
vkllm_shader(rope_kv rope_kv.comp)
vkllm_shader(bench_copy bench_copy.comp)
vkllm_shader(bench_fma bench_fma.comp)
vkllm_shader(attention attention.comp)
vkllm_shader(attention_cpu attention_cpu.comp)
vkllm_shader(attn_combine attn_combine.comp)

# Weight formats: vkllm_weight_type(NAME ID) with ID the rt_dtype (ggml's type number); the format is
# decoded by dq_NAME.glsl (selected in dq.glsl by -DWT_<NAME in capitals>).
vkllm_weight_type(f32 0)
vkllm_weight_type(f16 1)
vkllm_weight_type(bf16 30)
vkllm_weight_type(q4_0 2)
vkllm_weight_type(q4_1 3)
vkllm_weight_type(q5_0 6)
vkllm_weight_type(q5_1 7)
vkllm_weight_type(q8_0 8)
vkllm_weight_type(q2_k 10)
vkllm_weight_type(q3_k 11)
vkllm_weight_type(q4_k 12)
vkllm_weight_type(q5_k 13)
vkllm_weight_type(q6_k 14)
vkllm_weight_type(iq4_nl 20)
vkllm_weight_type(iq4_xs 23)

# Kernels compiled once per weight format: vkllm_typed_shader(NAME FILE [DEFINES...]) makes NAME_<format>
# for every format above, and the table rt_shader_NAME[rt_dtype] (see rt_shaders.h).
vkllm_typed_shader(gemv gemv.comp)
vkllm_typed_shader(gemv_sg gemv.comp USE_SUBGROUP)
vkllm_typed_shader(gemv_cpu gemv_cpu.comp)
vkllm_typed_shader(matmul matmul.comp)
vkllm_typed_shader(get_rows get_rows.comp)
