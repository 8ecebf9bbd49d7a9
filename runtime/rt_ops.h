/* rt_ops.h: private helpers shared by the op files (runtime/rt_ops*.c). */
#ifndef VKLLM_RT_OPS_H
#define VKLLM_RT_OPS_H

#include "rt_internal.h"
#include "rt_params.h"

/* Binds n_elems elements of elem_size bytes at ref: the binding starts at the aligned offset at or below
 * ref.off, and *off_elems is where the tensor starts in it, in elements. Fails (sticky) when the tensor
 * does not fit its buffer or exceeds the binding range. */
int rt_op_bind(rt_seq *seq, rt_ref ref, size_t elem_size, int64_t n_elems, rt_bind *b, uint32_t *off_elems);
/* Binds `bytes` bytes at ref (a weight tensor in any format): *off_bytes is where it starts in the
 * binding. Fails (sticky) as rt_op_bind does. */
int rt_op_bind_bytes(rt_seq *seq, rt_ref ref, size_t bytes, rt_bind *b, uint32_t *off_bytes);
/* The variant of typed kernel `table` (rt_shader_gemv, ...) for weight type t, or -1 when none is built. */
int rt_op_typed(const int16_t *table, rt_dtype t);
/* A workgroup size of at most `want` that the device allows (halved until it fits). */
uint32_t rt_op_wg(rt_seq *seq, uint32_t want);
/* Workgroups for a grid-stride loop over n elements. */
uint32_t rt_op_groups(rt_seq *seq, int64_t n, uint32_t wg);
/* A 2-D grid for one workgroup per row: row = group.x + group.y * groups.x. */
void rt_op_grid_rows(rt_seq *seq, int64_t rows, uint32_t *gx, uint32_t *gy);
/* rt_pipeline_get with the error made sticky on the sequence. */
int rt_op_pipeline(rt_seq *seq, enum rt_shader_id shader, const uint32_t *spec, int n_spec, int n_bindings,
                   uint32_t push_size, rt_pipeline **p);

/* Whether matrix products take the kernels meant for CPU drivers (whole rows per invocation) rather than
 * the GPU ones: a CPU device, unless VKLLM_MATMUL says gpu or cpu. lavapipe ends an invocation's loops
 * after 65535 iterations of them all together (LP_MAX_TGSI_LOOP_ITERATIONS in Mesa's gallivm): the CPU
 * kernels, whose threads loop over k once per pass, cut their work to stay below RT_CPU_MAX_LOOP. */
bool rt_op_cpu_style(rt_ctx *ctx);
#define RT_CPU_MAX_LOOP 60000

/* Attention on a CPU driver, and of a paged cache (rt_ops_attention_cpu.c), for rt_op_attention once it
 * has checked the shapes. */
int rt_attention_cpu(rt_seq *seq, rt_ref o, rt_ref q, rt_ref k, rt_ref v, rt_ref pos, int64_t rows,
                     const rt_attn_desc *a);

#endif
