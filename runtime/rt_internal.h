/* rt_internal.h: the runtime's private structures, shared by the runtime sources only. */
#ifndef VKLLM_RT_INTERNAL_H
#define VKLLM_RT_INTERNAL_H

#include <stdatomic.h>
#include <vulkan/vulkan.h>

#include "rt.h"
#include "rt_shaders.h"

#define RT_ERRLEN 512

/* Formats an error message into a handle's buffer; returns status (for `return rt_fail(...)`). */
int rt_set_err(char *buf, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The runtime's switches in the environment (README: VKLLM_MATMUL, VKLLM_NO_SUBGROUP, VKLLM_ATTN_TILED,
 * VKLLM_STAGED_UPLOAD, VKLLM_NO_SYNC_VALIDATION), read where they act (tests change them between
 * operations). rt_instance_create refuses a value that is not one of theirs. */
bool rt_env_on(const char *name);          /* the variable is 1 (unset, empty or 0: off) */
const char *rt_env_matmul(void);           /* VKLLM_MATMUL: "gpu", "cpu", or NULL (unset or empty) */
int rt_env_check(char *err);               /* RT_ERR_INVALID naming the first variable whose value is wrong */
/* Maps a VkResult to an rt_status (out of memory stays out of memory). */
int rt_vk_status(VkResult r);
const char *rt_vk_result_string(VkResult r);

struct rt_instance {
    VkInstance instance;
    uint32_t api_version;          /* asked for: VK_API_VERSION_1_3, or 1_2 where the loader lacks 1.3 */
    VkDebugUtilsMessengerEXT messenger;
    bool validation;
    void (*on_message)(void *user, const char *message);
    void *user;
    uint32_t n_messages;
    int n_devices;
    VkPhysicalDevice *phys;
    rt_device_info *info;
    char err[RT_ERRLEN];
};

/* One device memory allocation bound to one VkBuffer, carved into sub-allocations. */
typedef struct rt_block rt_block;
struct rt_block {
    VkDeviceMemory memory;
    VkBuffer buffer;
    VkDeviceSize size;
    void *mapped;          /* persistent mapping when host-visible */
    bool coherent;
    bool device_local;     /* what rt_buffer_device_local says of its buffers */
    rt_mem kind;
    int n_live;            /* sub-allocations handed out */
    struct rt_range { VkDeviceSize off, size; } *free; /* sorted free ranges */
    int n_free, cap_free;
    rt_block *next;
};

struct rt_buffer {
    rt_ctx *ctx;
    rt_block *block;
    VkDeviceSize off;      /* in the block */
    VkDeviceSize size;     /* as asked for */
    VkDeviceSize alloc;    /* size carved out of the block (aligned) */
};

/* A pipeline, keyed by shader and specialization constants. */
#define RT_MAX_SPEC 12
#define RT_MAX_BINDINGS 8
#define RT_MAX_PIPELINES 1024
typedef struct rt_pipeline {
    enum rt_shader_id shader;
    int n_spec;
    uint32_t spec[RT_MAX_SPEC];
    int n_bindings;
    uint32_t push_size;
    bool full_subgroups;   /* created with VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT */
    VkDescriptorSetLayout dsl;
    VkPipelineLayout layout;
    VkPipeline pipeline;
    const char *name;   /* label in timings and messages; NULL: rt_shader_table[shader].name */
    uint32_t readonly;  /* bit i: the shader never writes binding i (rt_spirv_readonly_bindings) */
} rt_pipeline;

/* The storage-buffer bindings (bit i for binding i, i < 32) that a SPIR-V module never writes (every
 * variable at them NonWritable); 0 when the module cannot be read (then every binding counts as written). */
uint32_t rt_spirv_readonly_bindings(const uint32_t *code, size_t words);

struct rt_ctx {
    rt_instance *inst;
    rt_device_info info;
    VkPhysicalDevice phys;
    VkDevice device;
    VkQueue queue;
    uint32_t queue_family;
    VkCommandPool pool;            /* for one-off transfer commands */
    VkFence fence;                 /* for one-off transfer commands */
    VkPhysicalDeviceMemoryProperties memprops;
    VkDeviceSize storage_align;    /* minStorageBufferOffsetAlignment */
    bool device_mappable;          /* device-local memory is also host-visible (lavapipe, UMA, ReBAR) */
    bool profiling;
    rt_block *blocks[3];           /* per rt_mem kind */
    uint64_t reserved, used;
    VkPipelineCache pcache;
    char pcache_path[1024];
    int64_t pcache_loaded;
    rt_pipeline *pipelines;        /* [RT_MAX_PIPELINES], allocated on first use, never moved */
    int n_pipelines;
    rt_buffer *staging;            /* lazily created, reused, for discrete GPUs: two halves */
    VkFence up_fence[2];           /* uploads: a copy out of each staging half in flight */
    VkCommandBuffer up_cb[2];
    bool up_busy[2];
    int n_seqs;                    /* live sequences */
    /* faults injected (rt_ctx_fault): the Nth allocation / submission fails, device memory capped */
    int64_t fail_alloc, fail_submit, lose_at, n_allocs, n_submits;
    uint64_t mem_limit;
    atomic_bool lost;              /* VK_ERROR_DEVICE_LOST seen: every later submission fails (read from
                                    * any thread: a server's health) */
    char err[RT_ERRLEN];
};

/* vkQueueSubmit of one command buffer, with the faults rt_ctx_fault asked for; a lost device is
 * remembered. Every submission goes through it. */
VkResult rt_ctx_submit(rt_ctx *ctx, VkCommandBuffer cb, VkFence fence);
/* Error reporting on a ctx (message copied into ctx->err). */
int rt_ctx_fail(rt_ctx *ctx, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rt_ctx_vk_fail(rt_ctx *ctx, VkResult r, const char *what);

/* Returns a pipeline for shader with the given specialization constants (created on first use). */
int rt_pipeline_get(rt_ctx *ctx, enum rt_shader_id shader, const uint32_t *spec, int n_spec,
                    int n_bindings, uint32_t push_size, rt_pipeline **out);
/* The same, and with full_subgroups every subgroup of a workgroup full (REQUIRE_FULL_SUBGROUPS): only on
 * a device with info.en_subgroup_size_control, and the workgroup size (x, the first constant) a multiple
 * of info.subgroup_max_size; RT_ERR_UNSUPPORTED / RT_ERR_INVALID otherwise. A pipeline of each kind. */
int rt_pipeline_get_ex(rt_ctx *ctx, enum rt_shader_id shader, const uint32_t *spec, int n_spec, int n_bindings,
                       uint32_t push_size, bool full_subgroups, rt_pipeline **out);
void rt_pipelines_destroy(rt_ctx *ctx);
int rt_pipeline_cache_open(rt_ctx *ctx, const char *path);

/* Memory: one-off command buffer submission for copies. */
int rt_ctx_begin_oneoff(rt_ctx *ctx, VkCommandBuffer *cb);
int rt_ctx_end_oneoff(rt_ctx *ctx, VkCommandBuffer cb);
void rt_memory_destroy(rt_ctx *ctx);

/* A binding for one dispatch: a byte range of a buffer. */
typedef struct rt_bind {
    rt_buffer *buf;
    size_t off;
    size_t range;
} rt_bind;

/* Records a dispatch of `groups` workgroups (x, y, z) of pipeline p with the given bindings and push
 * constants. Checks group counts against device limits, binding ranges against maxStorageBufferRange
 * and offsets against the device's alignment. Sticky error on the sequence. */
int rt_seq_dispatch(rt_seq *seq, rt_pipeline *p, const rt_bind *binds, int n_binds, const void *push,
                    uint32_t gx, uint32_t gy, uint32_t gz);
rt_ctx *rt_seq_ctx(rt_seq *seq);
/* A transient device buffer of at least `bytes` for one op's intermediate results, owned by the
 * sequence and valid as long as its recording. Ops recorded one after another share one; each op in a
 * parallel group gets its own. */
int rt_seq_scratch(rt_seq *seq, size_t bytes, rt_ref *out);
/* Sticky error on a sequence: returns the stored status if one is set. */
int rt_seq_status(const rt_seq *seq);
int rt_seq_fail(rt_seq *seq, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
