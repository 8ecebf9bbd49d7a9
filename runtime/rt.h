/* rt.h: the vkllm runtime, Vulkan compute and nothing about language models.
 *
 * This header is the whole contract of runtime/. Objects are opaque handles:
 *
 *   rt_instance  the Vulkan instance, the list of physical devices, validation messages
 *   rt_ctx       one logical device: queue, memory blocks, pipelines (created lazily), pipeline cache
 *   rt_buffer    a range of device memory of one kind, sub-allocated from a large block
 *   rt_seq       a recorded sequence of dispatches in one command buffer; submitted as often as needed
 *
 * Every function that can fail returns an int status (RT_OK = 0); rt_status_string() names it and
 * rt_ctx_errmsg() / rt_instance_errmsg() explain the last failure. Destroying NULL is a no-op. A ctx must
 * outlive its buffers and sequences; an instance must outlive its contexts.
 *
 * Ops (rt_op_*) record one kernel each into a sequence: they never submit. A recording error is sticky:
 * the op returns it, later ops on the same sequence do nothing, and rt_seq_end() returns it again.
 * Activations are f32; weights are any rt_dtype (f32, f16, bf16 and ggml's block formats), row-major
 * W[out][in] as GGUF stores them, decoded inside the kernels (never expanded in device memory).
 */
#ifndef VKLLM_RT_H
#define VKLLM_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

enum rt_status {
    RT_OK = 0,
    RT_ERR_VULKAN,        /* a Vulkan call failed; errmsg names the call and the VkResult */
    RT_ERR_NO_DEVICE,     /* no Vulkan device, or the index asked for does not exist */
    RT_ERR_UNSUPPORTED,   /* the device lacks a feature this needs */
    RT_ERR_OUT_OF_MEMORY, /* device or host memory exhausted */
    RT_ERR_INVALID,       /* a bad argument: a programming error or bad input passed down */
    RT_ERR_LIMIT,         /* a size exceeds a device limit */
    RT_ERR_IO,            /* a file could not be read or written */
    RT_ERR_DEVICE_LOST,   /* VK_ERROR_DEVICE_LOST: the context cannot run anything any more */
};

/* CONSTANT: "ok", "Vulkan error", ... for an rt_status; never NULL. */
const char *rt_status_string(int status);

/* ---------------------------------------------------------------- instance and devices */

typedef struct rt_instance rt_instance;

typedef struct rt_instance_desc {
    bool validation; /* enable VK_LAYER_KHRONOS_validation (error if the layer is missing) */
    /* Called for every validation message (also counted, see rt_instance_validation_count). */
    void (*on_message)(void *user, const char *message);
    void *user;
} rt_instance_desc;

enum rt_device_type { RT_DEVICE_OTHER, RT_DEVICE_INTEGRATED, RT_DEVICE_DISCRETE, RT_DEVICE_VIRTUAL, RT_DEVICE_CPU };

#define RT_MAX_HEAPS 16

typedef struct rt_device_info {
    int index;
    char name[256];
    uint32_t vendor_id, device_id;
    const char *vendor;          /* "NVIDIA", "AMD", "Intel", "Mesa", ... or "unknown" */
    enum rt_device_type type;
    const char *type_name;       /* "discrete", "integrated", "virtual", "cpu", "other" */
    uint32_t api_version;        /* VK_MAKE_API_VERSION encoded */
    uint32_t driver_version;     /* vendor-specific encoding */
    char driver_name[256];       /* VkPhysicalDeviceDriverProperties, "" if unknown */
    char driver_info[256];
    int n_heaps;
    struct { uint64_t size; bool device_local; } heaps[RT_MAX_HEAPS];
    uint32_t api_used;           /* the version vkllm runs the device at: the lower of api_version and
                                    the instance's (1.3, or 1.2 where the loader lacks 1.3) */
    uint32_t subgroup_size;
    bool subgroup_arithmetic;    /* subgroupAdd and friends in compute shaders */
    /* the subgroup sizes a compute pipeline may ask for (requiredSubgroupSize), min..max; both
     * subgroup_size without subgroup_size_control */
    uint32_t subgroup_min_size, subgroup_max_size;
    /* what the device supports */
    bool fp16;                   /* shaderFloat16 */
    bool storage16;              /* storageBuffer16BitAccess */
    bool storage8;               /* storageBuffer8BitAccess */
    bool int_dot;                /* shaderIntegerDotProduct */
    bool subgroup_size_control;  /* subgroupSizeControl + computeFullSubgroups, and requiredSubgroupSize
                                    in compute shaders (VK_EXT_subgroup_size_control or Vulkan 1.3) */
    bool coopmat;                /* VK_KHR_cooperative_matrix */
    /* its f16 x f16 shapes at subgroup scope (vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR), those
     * that accumulate in f32 first: M x K times K x N, into a C and result of f32 (acc_f32) or f16 */
    int n_coopmat_f16;
    struct { uint32_t m, n, k; bool acc_f32; } coopmat_f16[8];
    /* which of them a context enables on its device (rt_ctx_create): each one the device has, for
     * users' kernels (rt_kernel_create), except cooperative matrices, which stay off until a kernel
     * uses them */
    bool en_fp16, en_storage16, en_storage8, en_int_dot, en_subgroup_size_control, en_coopmat;
    /* which of them vkllm's own kernels use (subgroup size control: the GPU matrix-vector kernel asks
     * for full subgroups; it runs on every device but a CPU one, unless VKLLM_MATMUL says otherwise) */
    bool use_fp16, use_storage16, use_storage8, use_int_dot, use_subgroup_size_control, use_coopmat,
        use_subgroup_arithmetic;
    /* limits */
    uint64_t max_storage_buffer_range;
    uint64_t max_allocation_size;
    uint32_t max_shared_memory;
    uint32_t max_workgroup_invocations;
    uint32_t max_workgroup_count[3];
    uint32_t max_push_constants;
    float timestamp_period_ns;   /* 0 if the compute queue has no timestamps */
    bool usable;                 /* meets vkllm's minimum (Vulkan 1.2, a compute queue) */
} rt_device_info;

/* CONSTRUCTOR: creates a Vulkan 1.3 instance (1.2 where the loader lacks 1.3) and enumerates its devices.
 * *out is set even on failure (when possible) so that rt_instance_errmsg() can explain; destroy it
 * either way. */
int rt_instance_create(const rt_instance_desc *desc, rt_instance **out);
/* DESTRUCTOR */
void rt_instance_destroy(rt_instance *inst);
const char *rt_instance_errmsg(const rt_instance *inst);
int rt_instance_device_count(const rt_instance *inst);
/* METHOD: info of device i in 0..count-1 (RT_ERR_NO_DEVICE otherwise). */
int rt_instance_device_info(const rt_instance *inst, int i, rt_device_info *out);
/* METHOD: the device vkllm picks when none is asked for: the environment variable VKLLM_DEVICE (an index)
 * if set, else the first discrete GPU, then integrated, virtual, CPU. Returns -1 (and sets errmsg) when
 * there is none or VKLLM_DEVICE is not a valid index. */
int rt_instance_default_device(rt_instance *inst);
/* METHOD: number of validation messages seen so far (0 when validation is off). */
uint32_t rt_instance_validation_count(const rt_instance *inst);

/* ---------------------------------------------------------------- context (logical device) */

typedef struct rt_ctx rt_ctx;

typedef struct rt_ctx_desc {
    int device;                   /* index into the instance's devices; -1: rt_instance_default_device */
    const char *pipeline_cache;   /* file path; NULL: $XDG_CACHE_HOME/vkllm/pipelines-<device>.bin
                                     (or ~/.cache/...); "": no cache on disk */
    bool profiling;               /* sequences write a GPU timestamp after each dispatch */
} rt_ctx_desc;

/* CONSTRUCTOR. *out is set even on failure when possible, for rt_ctx_errmsg(). */
int rt_ctx_create(rt_instance *inst, const rt_ctx_desc *desc, rt_ctx **out);
/* DESTRUCTOR: waits for the device to be idle, saves the pipeline cache. */
void rt_ctx_destroy(rt_ctx *ctx);
const char *rt_ctx_errmsg(const rt_ctx *ctx);
const rt_device_info *rt_ctx_device(const rt_ctx *ctx);
/* METHOD: pipelines created so far, and how many of them were found in the on-disk cache (a driver
 * may not say: then hits stay 0). For tests of cache reuse. */
void rt_ctx_pipeline_stats(const rt_ctx *ctx, int *created, int64_t *cache_bytes_loaded);
/* METHOD: faults injected on purpose, so that tests drive every path that allocates or submits into
 * failure. spec: comma-separated "alloc:N" (the Nth rt_buffer_create from now fails as if the device
 * were full), "submit:N" (the Nth submission fails with VK_ERROR_OUT_OF_DEVICE_MEMORY), "lost:N"
 * (the Nth submission reports VK_ERROR_DEVICE_LOST: every later one fails too), "mem:SIZE" (device
 * memory capped at SIZE bytes, K/M/G suffixes), "" or "none": no faults. Counting restarts at each call.
 * RT_ERR_INVALID for a spec it cannot read. rt_ctx_create applies $VKLLM_FAULT (an unreadable one fails
 * the creation). */
int rt_ctx_fault(rt_ctx *ctx, const char *spec);
/* METHOD: whether the device was lost (a submission reported VK_ERROR_DEVICE_LOST); any thread. */
bool rt_ctx_lost(const rt_ctx *ctx);
/* METHOD: write the pipeline cache file now (also done by rt_ctx_destroy). */
int rt_ctx_save_pipeline_cache(rt_ctx *ctx);
/* METHOD: bytes of device memory held in blocks, and the bytes handed out of them to buffers (the
 * runtime's own staging buffer, host memory that uploads to a discrete GPU go through, not counted). */
void rt_ctx_memory_usage(const rt_ctx *ctx, uint64_t *reserved, uint64_t *used);

/* ---------------------------------------------------------------- buffers */

typedef enum rt_mem {
    RT_MEM_DEVICE,   /* device-local; written and read with rt_buffer_write/read (staged if needed) */
    RT_MEM_UPLOAD,   /* host-visible, written by the host each step (positions, token ids) */
    RT_MEM_READBACK, /* host-visible and cached, read by the host (logits, sampled token) */
} rt_mem;

typedef struct rt_buffer rt_buffer;

/* CONSTRUCTOR: size bytes (> 0), aligned for any use. RT_ERR_OUT_OF_MEMORY when the device is full,
 * RT_ERR_LIMIT when size is above the device's maxMemoryAllocationSize. Contents are undefined. */
int rt_buffer_create(rt_ctx *ctx, rt_mem kind, size_t size, rt_buffer **out);
/* DESTRUCTOR: the buffer must not be in use by a pending submission. */
void rt_buffer_destroy(rt_buffer *buf);
size_t rt_buffer_size(const rt_buffer *buf);
/* METHOD: whether the buffer lives in device-local memory (upload buffers: where the device has a
 * host-visible device-local type; otherwise kernels read them over the bus, and a caller that reads one
 * many times copies it to an RT_MEM_DEVICE buffer first). */
bool rt_buffer_device_local(const rt_buffer *buf);
/* METHOD: a persistent host pointer when the memory is host-visible, else NULL. On host-coherent memory
 * (what vkllm picks wherever a device has it) writes through it are seen by the next submission and
 * reads see the last completed one; rt_buffer_write / rt_buffer_read also flush and invalidate where the
 * memory is not coherent, so portable code goes through them. */
void *rt_buffer_map(rt_buffer *buf);
/* METHOD: copy host <-> buffer (any size; through a staging buffer when the memory is not mappable).
 * Synchronous: returns when the copy is complete. Must not overlap a pending submission's use. */
int rt_buffer_write(rt_buffer *buf, size_t offset, const void *src, size_t n);
int rt_buffer_read(rt_buffer *buf, size_t offset, void *dst, size_t n);
/* METHOD: set n bytes to a repeated 32-bit value (offset and n multiples of 4). */
int rt_buffer_fill(rt_buffer *buf, size_t offset, size_t n, uint32_t value);

/* A place in a buffer, for op arguments: a tensor starts at byte off. */
typedef struct rt_ref {
    rt_buffer *buf;
    size_t off;
} rt_ref;

static inline rt_ref rt_at(rt_buffer *buf, size_t off) { rt_ref r = { buf, off }; return r; }

/* ---------------------------------------------------------------- sequences */

typedef struct rt_seq rt_seq;

/* CONSTRUCTOR */
int rt_seq_create(rt_ctx *ctx, rt_seq **out);
/* DESTRUCTOR: waits for a pending submission first. */
void rt_seq_destroy(rt_seq *seq);
/* METHOD: starts recording, discarding what was recorded before. */
int rt_seq_begin(rt_seq *seq);
/* METHOD: ends recording; returns the first recording error, if any. */
int rt_seq_end(rt_seq *seq);
/* METHOD: submits the recorded sequence (again, as often as wanted) without waiting. */
int rt_seq_submit(rt_seq *seq);
/* METHOD: waits for the last submission to complete. */
int rt_seq_wait(rt_seq *seq);
/* METHOD: submit and wait. */
int rt_seq_run(rt_seq *seq);
/* METHOD: the last recording or submission error's text. */
const char *rt_seq_errmsg(const rt_seq *seq);
/* METHOD: a dispatch or copy waits for earlier ones (a full barrier) only when it reads or writes a
 * byte range that one of them wrote, or writes one that one of them read, since the last barrier:
 * barriers follow the data, whatever order ops are recorded in. Between rt_seq_parallel(seq, true) and
 * rt_seq_parallel(seq, false) the caller declares ops independent of each other: then each gets its own
 * scratch buffer (rt_seq_scratch), so that they need no barrier between them. Groups nest. */
void rt_seq_parallel(rt_seq *seq, bool on);
/* METHOD: commands recorded since rt_seq_begin, and the barriers recorded between them. */
void rt_seq_counts(const rt_seq *seq, int *commands, int *barriers);
/* METHOD: with profiling on, after rt_seq_wait: the number of dispatches timed in the last submission,
 * and for dispatch i its kernel name and duration in nanoseconds. */
int rt_seq_timing_count(const rt_seq *seq);
/* METHOD: what the op about to be recorded moves and computes, for the profile of its dispatch (the
 * next one only): ops that know call it; without it a dispatch counts the bytes of its bindings (each
 * distinct range once) and no flops. rt_seq_timing_cost gives them for timed dispatch i. */
void rt_seq_cost(rt_seq *seq, double bytes, double flops);
int rt_seq_timing_cost(const rt_seq *seq, int i, double *bytes, double *flops);
int rt_seq_timing(const rt_seq *seq, int i, const char **kernel, double *ns);
/* METHOD: record a buffer-to-buffer copy (with the barriers around it). */
int rt_seq_copy(rt_seq *seq, rt_ref dst, rt_ref src, size_t n);

/* ---------------------------------------------------------------- ops: one kernel each */

/* Tensor element types. Activations, norms and biases are f32; KV caches f32 or f16; weights (matrices
 * and embedding tables) any of these. The numbers are ggml's type ids (a GGUF tensor's type is the
 * rt_dtype of the same number where the runtime has it). Block formats pack `block` elements into
 * `block_bytes` bytes (ggml's layouts, decoded inside the kernels by shaders/dq_*.glsl); a row of k
 * elements takes rt_dtype_row_bytes(t, k) bytes, and k must be a multiple of the block. */
typedef enum rt_dtype {
    RT_F32 = 0, RT_F16 = 1, RT_Q4_0 = 2, RT_Q4_1 = 3, RT_Q5_0 = 6, RT_Q5_1 = 7, RT_Q8_0 = 8,
    RT_Q2_K = 10, RT_Q3_K = 11, RT_Q4_K = 12, RT_Q5_K = 13, RT_Q6_K = 14, RT_IQ4_NL = 20, RT_IQ4_XS = 23,
    RT_BF16 = 30,
} rt_dtype;
#define RT_DTYPE_MAX 31   /* every rt_dtype is below this */

/* The traits of t ("Q4_K", 256 elements in 144 bytes), or false for a number that is no rt_dtype. */
typedef struct rt_dtype_traits {
    const char *name;
    uint32_t block;        /* elements per block (1 for f32, f16, bf16) */
    uint32_t block_bytes;  /* bytes per block */
    uint32_t q_off, q_bytes; /* the quants: bytes [q_off, q_off + q_bytes) of a block (see rt_weight_bytes) */
} rt_dtype_traits;
bool rt_dtype_info(int t, rt_dtype_traits *out);
/* bytes of one element of f32, f16 or bf16 (0 for block formats) */
size_t rt_dtype_size(rt_dtype t);
/* bytes of k elements of t: k / block * block_bytes; 0 when t is unknown or k is not a whole number of
 * blocks (k <= 0 included) */
size_t rt_dtype_row_bytes(rt_dtype t, int64_t k);

/* Weights on the device. f32, f16 and bf16 are stored as in a GGUF file. A block format is repacked
 * when written into two planes, the same bytes in another order, so that the kernels read the quants
 * with aligned 16-byte loads (ggml's 18-, 22-, 34-, 110- and 210-byte blocks leave them at 2-byte
 * boundaries): first the quants of every block, row after row (q_bytes per block, a multiple of 16);
 * then, from the next 16-byte boundary, the rest of every block (its scales, block_bytes - q_bytes, in
 * the block's order). rt_weight_bytes() is the size of a [rows][k] weight on the device (at most 15
 * bytes more than in the file), 0 for a bad shape. rt_weight_write() writes one from its file bytes
 * (rows * rt_dtype_row_bytes(t, k) of them) at off in buf (a 16-byte boundary); rt_weight_repack() does
 * it in host memory (dst of rt_weight_bytes), rt_weight_unpack() undoes it. */
size_t rt_weight_bytes(rt_dtype t, int64_t rows, int64_t k);
int rt_weight_write(rt_buffer *buf, size_t off, rt_dtype t, const void *src, int64_t rows, int64_t k);
void rt_weight_repack(rt_dtype t, const void *src, void *dst, int64_t rows, int64_t k);
void rt_weight_unpack(rt_dtype t, const void *src, void *dst, int64_t rows, int64_t k);

/* Y[m][n] = sum_k X[m][k] * W[n][k] (+ bias[n] if bias.buf). X, Y, bias f32; W of type wt, [N][K], as
 * rt_weight_write() stores it (k a whole number of blocks; a block-format W starts at a 16-byte
 * boundary). Picks a GEMV kernel for few rows and a tiled GEMM for many; W may exceed the device's
 * binding range (it is then split by rows into several dispatches, at byte offsets). */
int rt_op_matmul(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias,
                 int64_t m, int64_t n, int64_t k);
/* Y[m][n] += sum_k X[m][k] * W[n][k] (+ bias[n]): rt_op_matmul into a residual stream, one dispatch
 * instead of a product and an add. Y must not overlap X. */
int rt_op_matmul_acc(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_dtype wt, rt_ref bias,
                     int64_t m, int64_t n, int64_t k);
/* A matrix product with what a transformer does around it folded into the same dispatch:
 *   Y[m][n] (+)= f(X)[m][k] W[n][k]^T (+ bias[n])
 * norm_w.buf: f = RMSNorm of each row, x / sqrt(mean(x^2) + norm_eps) * norm_w (f32 [k]): rt_op_rmsnorm
 *   and the product in one dispatch (the kernel adds up x^2 of the rows it reads anyway); otherwise f(X) = X.
 * w_up.buf: SwiGLU, Y = silu(f(X) W^T) * (f(X) W_up^T) (GeGLU with gelu for silu: gate_act), W_up of type
 *   w_up_type and W's shape (no bias, no accumulate): one dispatch when the two types are the same and
 *   k % 8 == 0 (else two products and rt_op_swiglu / rt_op_geglu, through the sequence's scratch).
 * ldy: floats from one row of Y to the next (0: n), so that products can fill columns of a wider Y.
 * The rest as rt_op_matmul / rt_op_matmul_acc (accumulate); Y must not overlap X. */
typedef struct rt_matmul_desc {
    rt_ref y, x;           /* f32 [m][ldy], [m][k] */
    int64_t ldy;
    rt_ref w;              /* [n][k] of type wt, as rt_weight_write() stores it */
    rt_dtype wt;
    rt_ref bias;           /* optional f32 [n] */
    int64_t m, n, k;
    bool accumulate;       /* Y += */
    rt_ref norm_w;         /* optional f32 [k]: the RMSNorm folded in */
    float norm_eps;
    rt_ref w_up;           /* optional [n][k] of type w_up_type: the SwiGLU's up projection */
    rt_dtype w_up_type;
    int gate_act; /* with w_up: RT_GATE_SILU (0): silu(a)*b, RT_GATE_GELU: gelu(a)*b with the tanh approximation */
} rt_matmul_desc;
enum { RT_GATE_SILU = 0, RT_GATE_GELU = 1 };
int rt_op_matmul_ex(rt_seq *seq, const rt_matmul_desc *d);
/* Y[r] = X[r] / sqrt(mean(X[r]^2) + eps) * w     (rows of dim; w f32 [dim]) */
int rt_op_rmsnorm(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, int64_t rows, int64_t dim, float eps);
/* RMSNorm of groups of dim values: group g of row r is X[r*ldx + g*dim .. +dim) -> Y[r*ldy + g*dim ..),
 * each scaled by w (f32 [dim]); rows*groups groups. accumulate: Y += norm(X) (Y must not overlap X),
 * else Y = norm(X) (in place allowed: y == x). ldx/ldy 0: groups*dim. */
typedef struct rt_norm_desc {
    rt_ref y, x, w;
    int64_t rows, dim, groups, ldx, ldy;
    float eps;
    bool accumulate;
} rt_norm_desc;
int rt_op_rmsnorm_ex(rt_seq *seq, const rt_norm_desc *d);
/* Y[r] = (X[r] - mean) / sqrt(var + eps) * w + b  (w, b f32 [dim]; b.buf may be NULL) */
int rt_op_layernorm(rt_seq *seq, rt_ref y, rt_ref x, rt_ref w, rt_ref b, int64_t rows, int64_t dim, float eps);
/* Y[r] = softmax(X[r] * scale), stable */
int rt_op_softmax(rt_seq *seq, rt_ref y, rt_ref x, int64_t rows, int64_t cols, float scale);

enum rt_rope_mode { RT_ROPE_ADJACENT = 0, /* llama: pairs (2i, 2i+1) */ RT_ROPE_NEOX = 1 /* pairs (i, i+n/2) */ };
typedef struct rt_rope_desc {
    enum rt_rope_mode mode;
    int n_rot;               /* dims rotated per head (<= head_dim), even */
    float base;              /* theta base, 10000 by default */
    float freq_scale;        /* linear scaling: positions multiplied by this (1 = none) */
    /* YaRN (ext_factor > 0): as llama.cpp's rope_yarn; attn_factor scales the result */
    float ext_factor, attn_factor, beta_fast, beta_slow;
    int n_ctx_orig;
    rt_ref freq_factors;     /* optional f32 [n_rot/2]: theta_i divided by factor i (Llama 3.1) */
} rt_rope_desc;
/* In place on X [rows][n_heads][head_dim]; row r is at position pos[r] (pos: int32 buffer). */
int rt_op_rope(rt_seq *seq, rt_ref x, rt_ref pos, int64_t rows, int n_heads, int head_dim,
               const rt_rope_desc *rope);

/* Y = silu(A) * B, elementwise over n */
int rt_op_swiglu(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n);
/* Y = gelu(A) * B, elementwise over n (gelu's tanh approximation) */
int rt_op_geglu(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n);
/* Y = gelu(X) (tanh approximation) */
int rt_op_gelu(rt_seq *seq, rt_ref y, rt_ref x, int64_t n);
int rt_op_softcap(rt_seq *seq, rt_ref y, rt_ref x, int64_t n, float cap); /* Y = cap * tanh(X / cap) (Gemma 2's final logits) */
/* Y[i] = A[i] + B[i % nb]  (nb = n for a plain add, the row length for a bias) */
int rt_op_add(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n, int64_t nb);
/* Y[i] = A[i] * B[i % nb] */
int rt_op_mul(rt_seq *seq, rt_ref y, rt_ref a, rt_ref b, int64_t n, int64_t nb);
/* Y = X * s */
int rt_op_scale(rt_seq *seq, rt_ref y, rt_ref x, int64_t n, float s);
/* Y[r] = table[ids[r]] for r < rows; table of type t (any rt_dtype, as rt_weight_write() stores it),
 * [n_table][dim]; ids int32.
 * Out-of-range ids give zero rows. */
int rt_op_get_rows(rt_seq *seq, rt_ref y, rt_ref table, rt_dtype t, rt_ref ids, int64_t rows,
                   int64_t n_table, int64_t dim);
/* cache[pos[r]][:] = src[r][:] for r < rows (f32 src, cache of type t = RT_F32 or RT_F16, [cap][dim]);
 * positions >= cap are skipped. */
int rt_op_kv_write(rt_seq *seq, rt_ref cache, rt_dtype t, rt_ref src, rt_ref pos, int64_t rows,
                   int64_t dim, int64_t cap);
/* A layer's attention inputs into place, in one dispatch: QKV [rows][(n_heads + 2 n_kv_heads) head_dim]
 * holds each row's Q, K and V (the product with the three projections side by side); Q [rows][n_heads
 * head_dim] = rope(Q part) at position pos[r], kcache[c] = rope(K part), vcache[c] = V part, in cache row
 * c = slots[r] (int32; slots.buf NULL: c = pos[r], a cache of one sequence). The caches are [cap][n_kv_heads
 * head_dim] of type t (RT_F32, or RT_F16 starting at an even element); rows c outside [0, cap) are not
 * written. Equals rt_op_rope on Q and K followed by rt_op_kv_write of K and V; rope->n_rot 0 rotates
 * nothing (a model without RoPE: BERT). */
int rt_op_rope_kv(rt_seq *seq, rt_ref q, rt_ref kcache, rt_ref vcache, rt_dtype t, rt_ref qkv, rt_ref pos,
                  rt_ref slots, int64_t rows, int n_heads, int n_kv_heads, int head_dim, int64_t cap,
                  const rt_rope_desc *rope);
/* out[r] = index of the largest X[r][c] (first one on ties), int32 */
int rt_op_argmax(rt_seq *seq, rt_ref out, rt_ref x, int64_t rows, int64_t cols);

typedef struct rt_attn_desc {
    int n_heads, n_kv_heads, head_dim; /* n_kv_heads divides n_heads (grouped-query attention) */
    float scale;                       /* usually 1/sqrt(head_dim) */
    int64_t cap;                       /* rows in the caches */
    rt_dtype cache_type;               /* RT_F32 or RT_F16 */
    /* paged: pages.buf set, an int32 buffer: pages[r] is where row r's block table starts in it, and
     * key j of row r is cache row pages[pages[r] + j / block_size] * block_size + j % block_size (rows
     * of many sequences, each reading its own keys); max_keys bounds pos[r] + 1 (0: cap) */
    rt_ref pages;
    int block_size;
    int64_t max_keys;
    float softcap;  /* > 0: each score s (after scale) becomes softcap * tanh(s / softcap) (Gemma 2) */
    int32_t window; /* > 0: row r attends only keys j with pos[r] - j < window (sliding-window attention); 0: all j <= pos[r] */
} rt_attn_desc;
/* Causal attention of query rows against a KV cache, without materialising the score matrix:
 * O[r][h] = sum_{j <= pos[r]} softmax_j(scale * Q[r][h] . K[j][h/g]) V[j][h/g], with g = n_heads/n_kv_heads
 * (softcap and window as rt_attn_desc says; a row with no key in its window gets zeros).
 * Q, O f32 [rows][n_heads*head_dim]; K, V caches [cap][n_kv_heads*head_dim]; pos int32 [rows]; key j at
 * cache row j, or where the row's block table says (paged). */
int rt_op_attention(rt_seq *seq, rt_ref o, rt_ref q, rt_ref k, rt_ref v, rt_ref pos, int64_t rows,
                    const rt_attn_desc *attn);

/* ---------------------------------------------------------------- mixture of experts (rt_ops_moe.c) */
/* The experts of a layer's projection: n_expert matrices [n][k] of type wt one after another, each as
 * rt_weight_write() stores it, expert e at byte e * rt_expert_stride(wt, n, k) of the buffer (that is
 * rt_weight_bytes rounded up to 16, so every expert starts at a 16-byte boundary; 0 for a bad shape). */
size_t rt_expert_stride(rt_dtype wt, int64_t n, int64_t k);
/* Routing: for each row r of logits L [rows][n_expert] f32, the k experts of largest L[r] (ties: the
 * lower index first) into ids [rows][k] int32 (in descending order of L), and their weights [rows][k] f32:
 * softmax of L[r] over all n_expert, taken at the chosen ones, then divided by their sum when renorm.
 * (A row of NaN logits may give id -1 with weight 0.) */
int rt_op_moe_route(rt_seq *seq, rt_ref ids, rt_ref weights, rt_ref logits, int64_t rows, int n_expert, int k,
                    bool renorm);
/* Expert products: Y[r][s][:] = f(X)[r or (r,s)] . W[ids[r][s]]^T for rows r < m and slots s < n_used.
 * X f32 [m][k] (x_per_slot false: every slot of row r reads row r) or [m][n_used][k] (x_per_slot: slot
 * s of row r reads X[r*n_used + s]). W the experts (above) of type wt; w_up.buf set: SwiGLU as
 * rt_op_matmul_ex, Y = silu(X W[e]^T) * (X W_up[e]^T) with W_up of the same type and stride.
 * Y f32 [m][n_used][n]. Only the chosen experts' weights are read; one dispatch. An id outside
 * [0, n_expert) gives a row of zeros. All n_expert experts of W (and of W_up) must fit one binding
 * (the device's maxStorageBufferRange): RT_ERR_LIMIT otherwise, the message naming both sizes. */
typedef struct rt_matmul_id_desc {
    rt_ref y, x, w, w_up, ids;
    rt_dtype wt;
    int64_t m, n, k;
    int n_used, n_expert;
    bool x_per_slot;
} rt_matmul_id_desc;
int rt_op_matmul_id(rt_seq *seq, const rt_matmul_id_desc *d);
/* X[r][:] += sum_s weights[r][s] * Y[r][s][:]   (Y f32 [rows][n_used][dim]) */
int rt_op_moe_combine(rt_seq *seq, rt_ref x, rt_ref y, rt_ref weights, int64_t rows, int n_used, int64_t dim);

/* Calibration kernels for benchmarks: dst = src (n bytes, multiple of 16), and an FMA loop writing
 * one value per invocation (n_threads invocations, iters FMAs of 8 chains each). */
int rt_op_copy_kernel(rt_seq *seq, rt_ref dst, rt_ref src, size_t n);
int rt_op_fma_kernel(rt_seq *seq, rt_ref dst, int64_t n_threads, int iters);

/* ---------------------------------------------------------------- user kernels (runtime/rt_custom.c) */

/* A compute shader of the caller's, as SPIR-V (compiled at run time, say): storage buffers at set 0,
 * bindings 0 .. n_buffers-1, one push-constant block, specialization constants by id. rt_kernel_create()
 * reads the module before making a pipeline, and a module that does not fit is RT_ERR_INVALID (or
 * RT_ERR_LIMIT / RT_ERR_UNSUPPORTED) with rt_ctx_errmsg() saying what: no GLCompute entry point "main",
 * SPIR-V newer than 1.5 (Vulkan 1.2), a binding it uses that is not given or buffers given beyond its
 * highest binding, another descriptor set, a uniform buffer, image or sampler, a push-constant block of
 * another size than push_bytes, a specialization id it does not declare or one not 32 bits wide, a
 * capability or extension the context has not enabled, a workgroup or shared memory above the device's
 * limits. What passes these checks makes no validation-layer message. Destroy kernels before their ctx. */
typedef struct rt_kernel rt_kernel;

#define RT_KERNEL_MAX_BUFFERS 8
#define RT_KERNEL_MAX_SPEC 32

typedef struct rt_spec {
    uint32_t id;    /* layout(constant_id = id) */
    uint32_t bits;  /* its 32-bit value: an int, a uint, a float's bits, 0 / 1 for a bool */
} rt_spec;

typedef struct rt_kernel_desc {
    const char *name;       /* the label of its dispatches in rt_seq_timing() and messages; copied;
                               NULL: "kernel" */
    const uint32_t *spirv;  /* the module, words 32-bit words (host byte order) */
    size_t words;
    int n_buffers;          /* 0 .. RT_KERNEL_MAX_BUFFERS */
    uint32_t push_bytes;    /* the shader's push-constant block size exactly (a multiple of 4; 0: none) */
    const rt_spec *spec;    /* n_spec of them (at most RT_KERNEL_MAX_SPEC), distinct ids */
    int n_spec;
} rt_kernel_desc;

/* CONSTRUCTOR: *out is NULL on failure (rt_ctx_errmsg() explains). */
int rt_kernel_create(rt_ctx *ctx, const rt_kernel_desc *desc, rt_kernel **out);
/* DESTRUCTOR: no pending submission may use it. */
void rt_kernel_destroy(rt_kernel *k);
/* METHOD: the workgroup size after specialization, and the shared memory it declares (bytes). */
void rt_kernel_workgroup(const rt_kernel *k, uint32_t size[3], uint32_t *shared_bytes);
/* Records one dispatch of k, gx * gy * gz workgroups (each within the device's maxComputeWorkGroupCount):
 * binding i is buffers[i] from its offset (a multiple of the device's minStorageBufferOffsetAlignment
 * and of 16; 256 always is) to the buffer's end; push points to the desc's push_bytes bytes (NULL when
 * 0). Sticky error on the sequence, as the other ops'. */
int rt_op_kernel(rt_seq *seq, const rt_kernel *k, const rt_ref *buffers, const void *push, uint32_t gx,
                 uint32_t gy, uint32_t gz);

#ifdef __cplusplus
}
#endif
#endif
