/* test_quant_model.c: whole models in every block format, against their twins.
 *
 * ../shared/models/quant/ holds a small Llama model quantised by llama.cpp into every common format
 * (kq-X.gguf, most of them mixing formats as real downloads do) and, for each, the F32 twin that
 * llama.cpp dequantised (kq-X.dequant-f32.gguf). The weights a correct decoder sees in kq-X are exactly
 * the twin's, so the logits of the same tokens on both must agree to float rounding: the kernels keep
 * activations in f32 and only the order of the sums differs. Checked for a prefill of all tokens (every
 * row's logits, the tiled GEMM on GPUs), then greedy decode steps (the GEMV), with an f32 KV cache.
 * Also: the device memory of the quantised weights equals their bytes in the file (nothing expanded:
 * the planes of rt_weight_bytes add at most 15 bytes of padding per matrix),
 * and the model reports the mix of tensor types.
 *
 * Tolerance: nmse < 1e-9 per row (f32 rounding over k = 256..512 is ~1e-12); a wrong block decode is
 * of order 1e-3 or more. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm.h"
#include "util.h"

#define TOL 1e-9
#define N_TOK 24

static const char *const formats[] = { "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k",
                                       "q3_k_s", "q4_k_s", "q4_k_m", "q5_k_s", "q6_k", "iq4_nl", "iq4_xs" };

static tu_gpu G;

/* all-token logits of ids on the model at path, then N_TOK greedy decode steps' logits */
static bool logits_of(const char *path, const int32_t *ids, float *prefill, float *steps, uint64_t *dev_bytes,
                      uint64_t *file_bytes, int32_t *n_vocab)
{
    char err[512];
    lm_model *m = NULL;
    if (lm_model_load(G.ctx, path, NULL, &m, err, sizeof err)) {
        CHECK(0, "%s: %s", path, err);
        return false;
    }
    *n_vocab = lm_model_hparams(m)->n_vocab;
    *dev_bytes = lm_model_device_bytes(m);
    lm_gguf *g = NULL;
    *file_bytes = 0;
    if (lm_gguf_open(path, &g, err, sizeof err) == LM_OK) {
        for (int64_t i = 0; i < lm_gguf_n_tensors(g); i++) {
            lm_gguf_tensor_info t;
            lm_gguf_tensor(g, i, &t);
            /* vectors (norms) are kept in f32 on the device whatever their type in the file; a block-format
             * matrix is its bytes repacked, padded to 16 between its two planes (rt_weight_bytes) */
            *file_bytes += t.n_dims == 1 ? (uint64_t)t.n_elements * 4
                                         : rt_weight_bytes((rt_dtype)t.type, t.ne[1], t.ne[0]);
        }
        lm_gguf_close(g);
    }
    lm_session_opts so = { .n_ctx = 2 * N_TOK, .n_batch = N_TOK, .kv_f32 = true };
    lm_session *s = NULL;
    bool ok = lm_session_create(m, &so, &s, err, sizeof err) == LM_OK;
    CHECK(ok, "%s: session: %s", path, err);
    if (ok) {
        ok = lm_session_eval(s, ids, N_TOK, prefill, true, err, sizeof err) == LM_OK;
        CHECK(ok, "%s: eval: %s", path, err);
        lm_session_rewind(s, 0);
        for (int i = 0; i < N_TOK && ok; i++) {
            int32_t next;
            ok = lm_session_step(s, ids[i], steps + (size_t)i * *n_vocab, &next, err, sizeof err) == LM_OK;
            CHECK(ok, "%s: step %d: %s", path, i, err);
        }
    }
    lm_session_free(s);
    lm_model_free(m);
    return ok;
}

static double worst_row(const float *a, const float *b, int rows, int32_t cols)
{
    double worst = 0;
    double *ref = malloc((size_t)cols * sizeof *ref);
    for (int r = 0; r < rows; r++) {
        for (int32_t c = 0; c < cols; c++)
            ref[c] = b[(size_t)r * cols + c];
        double e = tu_nmse(a + (size_t)r * cols, ref, cols);
        worst = e > worst ? e : worst;
    }
    free(ref);
    return worst;
}

int main(void)
{
    tu_rng rng = { tu_seed("test_quant_model") };
    if (!tu_gpu_open(&G))
        return tu_finish("test_quant_model");
    int32_t ids[N_TOK];
    for (int i = 0; i < N_TOK; i++)
        ids[i] = (int32_t)(tu_u32(&rng) % 500) + 3;
    const int32_t V = 512; /* the fixture's vocabulary (checked below) */
    float *pa = malloc(sizeof(float) * N_TOK * V), *pb = malloc(sizeof(float) * N_TOK * V);
    float *sa = malloc(sizeof(float) * N_TOK * V), *sb = malloc(sizeof(float) * N_TOK * V);
    printf("%-8s %12s %12s %14s %14s\n", "format", "device MiB", "file MiB", "prefill nmse", "decode nmse");
    for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
        char qrel[64], trel[64], qpath[1024], tpath[1024];
        snprintf(qrel, sizeof qrel, "quant/kq-%s.gguf", formats[f]);
        snprintf(trel, sizeof trel, "quant/kq-%s.dequant-f32.gguf", formats[f]);
        snprintf(qpath, sizeof qpath, "%s", tu_model_path(qrel));
        snprintf(tpath, sizeof tpath, "%s", tu_model_path(trel));
        uint64_t qdev, qfile, tdev, tfile;
        int32_t nv1 = 0, nv2 = 0;
        if (!logits_of(qpath, ids, pa, sa, &qdev, &qfile, &nv1) || !logits_of(tpath, ids, pb, sb, &tdev, &tfile, &nv2))
            continue;
        CHECK(nv1 == V && nv2 == V, "%s: vocabulary %d / %d, want %d", formats[f], nv1, nv2, V);
        if (nv1 != V || nv2 != V)
            continue;
        double ep = worst_row(pa, pb, N_TOK, V), ed = worst_row(sa, sb, N_TOK, V);
        printf("%-8s %12.3f %12.3f %14.3g %14.3g\n", formats[f], qdev / 1048576.0, qfile / 1048576.0, ep, ed);
        CHECK(ep < TOL, "%s: prefill logits differ from the twin's: nmse %.3g", formats[f], ep);
        CHECK(ed < TOL, "%s: decode logits differ from the twin's: nmse %.3g", formats[f], ed);
        CHECK(qdev == qfile, "%s: %llu bytes on the device for %llu in the file", formats[f],
              (unsigned long long)qdev, (unsigned long long)qfile);
    }
    free(pa), free(pb), free(sa), free(sb);
    tu_gpu_close(&G);
    return tu_finish("test_quant_model");
}
