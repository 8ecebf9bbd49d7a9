/* test_long_kernels.c: the cases of test_kernels.c at the sizes of 7B-8B models (Llama 2 / 3, Mistral,
 * Qwen2 vocabularies), labelled "long" and left out of the default ctest run (ctest -L long runs it).
 *
 * The case functions, tolerances and checks are those of test_kernels.c, included here (TK_NO_MAIN) so the
 * two cannot drift apart. W and tables above the device's binding range are checked in full here, not only
 * sampled: the LM head of a 32000-token vocabulary in f16 is 250 MiB.
 */
#define TK_NO_MAIN
#include "test_kernels.c"

/* decode deep into the context, a 512-row prefill, a later chunk; Llama 2 (32/32), Llama 3 (32/8),
 * Gemma-like head size 256 */
static void attention_cases(void)
{
    case_attention(32, 8, 128, RT_F16, 1, 4095, 4096, false);
    case_attention(32, 32, 128, RT_F32, 1, 2047, 2048, false);
    case_attention(8, 1, 256, RT_F16, 1, 8191, 8192, false);
    case_attention(8, 1, 128, RT_F16, 1, 65535, 65536, false);
    case_attention(4, 1, 256, RT_F32, 2, 40000, 40002, false);
    case_attention(32, 8, 128, RT_F16, 512, 0, 512, false);
    case_attention(32, 8, 128, RT_F16, 64, 2000, 4096, true);
    case_attention(32, 32, 80, RT_F32, 128, 384, 1024, true);
}

int main(void)
{
    double t0 = now_s();
    if (!tk_open("test_long_kernels"))
        return tu_finish("test_long_kernels");
    const size_t GiB = (size_t)1 << 30;

    /* decode projections of a 7B model (q/k/v/o, gate/up, down), a prefill chunk, the LM head */
    case_matmul(1, 4096, 4096, RT_F32, false, OFF);
    case_matmul(1, 4096, 4096, RT_F16, false, OFF);
    case_matmul(1, 4096, 4096, RT_BF16, true, OFF);
    case_matmul(1, 11008, 4096, RT_F16, false, OFF);
    case_matmul(1, 4096, 11008, RT_BF16, false, OFF);
    case_matmul(1, 14336, 4096, RT_F16, true, OFF);
    case_matmul(17, 4096, 4096, RT_F16, false, OFF);
    case_matmul(128, 4096, 4096, RT_BF16, false, OFF);
    case_matmul(1, 32000, 4096, RT_F16, false, OFF); /* above lavapipe's 128 MiB binding range */
    case_matmul_split(RT_F16, 4096, 1000, GiB);
    case_matmul_split(RT_BF16, 4096, 3, GiB);
    case_matmul_split(RT_F32, 11008, 5, GiB);

    case_norm(false, false, 512, 4096, 1e-5f, 0);
    case_norm(false, false, 1, 8192, 1e-6f, 0);
    case_norm(true, true, 512, 4096, 1e-5f, 0);
    case_norm(true, false, 64, 4096, 1e-5f, 10);

    case_softmax(32, 32000, 1, 0, 5);
    case_softmax(1, 128256, 1, 0, 5);
    case_softmax(4, 152064, 0.7f, 0, 10);
    case_softmax(32, 4097, 0.0883883f, 0, 20); /* attention scores at 1/sqrt(128) */

    /* prefill chunks of 512 rows with positions up to 8192, and YaRN up to 32768 */
#define ROPE(mode_, n_rot_, base_, fs_, ext_, attn_, n_ctx_orig_)                                              \
    ((rt_rope_desc){ .mode = mode_, .n_rot = n_rot_, .base = base_, .freq_scale = fs_, .ext_factor = ext_,   \
                     .attn_factor = attn_, .beta_fast = 32, .beta_slow = 1, .n_ctx_orig = n_ctx_orig_ })
    case_rope(512, 32, 128, 4096, ROPE(RT_ROPE_ADJACENT, 128, 10000, 1, 0, 1, 4096), false);   /* Llama 2 */
    case_rope(512, 32, 128, 8192, ROPE(RT_ROPE_ADJACENT, 128, 500000, 1, 0, 1, 8192), true);   /* Llama 3.1 */
    case_rope(512, 28, 128, 8192, ROPE(RT_ROPE_NEOX, 128, 1000000, 1, 0, 1, 32768), false);   /* Qwen2 */
    case_rope(512, 32, 128, 32768, ROPE(RT_ROPE_NEOX, 128, 10000, 0.125f, 1, 1, 4096), false); /* YaRN x8 */
    case_rope(512, 8, 128, 8192, ROPE(RT_ROPE_ADJACENT, 64, 10000, 0.25f, 0, 1, 4096), false);
#undef ROPE

    case_eltwise(OP_SWIGLU, 11008 * 64, 11008 * 64, 0, 2, false);
    case_eltwise(OP_GELU, 10240 * 64, 10240 * 64, 0, 2, false);
    case_eltwise(OP_ADD, 4096 * 512, 4096 * 512, 0, 1, true);
    case_eltwise(OP_ADD, 4096 * 512, 4096, 0, 1, false);
    case_eltwise(OP_MUL, 4096 * 512, 4096, 0, 1, false);
    case_eltwise(OP_SCALE, 32000 * 16, 1, 0.7f, 1, false);

    /* token embeddings: the tables of 32000 x 4096 are above the binding range in f32 and f16 */
    case_get_rows(RT_F16, 512, 32000, 4096);
    case_get_rows(RT_BF16, 64, 32000, 4096);
    case_get_rows(RT_F32, 37, 32000, 4096);

    case_kv_write(RT_F16, 512, 1024, 4096);
    case_kv_write(RT_F32, 512, 4096, 2048);
    case_kv_write(RT_F16, 1, 4096, 8192);

    case_argmax(1, 128256);
    case_argmax(16, 32000);
    case_argmax(2, 152064);

    /* attention: the device's kernel, then the GPU kernel (attention.comp) with and without subgroups */
    attention_cases();
    attention_gpu_pass(attention_cases, attention_cases);

    case_copy((size_t)64 << 20, 0);
    case_fma(1 << 20, 64, 256);
    bad_arguments();

    return tk_close("test_long_kernels", now_s() - t0);
}
