/* rt_seq.c: recorded sequences of dispatches. One command buffer, its descriptor sets, barriers between
 * dependent dispatches, timestamps when profiling; submitted as often as wanted without re-recording.
 *
 * Barriers come from hazards: the sequence keeps the byte ranges that the commands since the last barrier
 * read and wrote (per VkBuffer; a dispatch writes the bindings its shader does not declare readonly, see
 * rt_spirv.c; a copy reads its source and writes its destination), and a command that reads or writes a
 * range an earlier one wrote, or writes a range an earlier one read, gets one full barrier first. So
 * independent ops run without a barrier between them, whatever order the caller records them in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

#define RT_SETS_PER_POOL 256
#define RT_MAX_TIMESTAMPS 4096

/* A range a command since the last barrier read or wrote. */
typedef struct rt_access {
    VkBuffer buffer;
    VkDeviceSize start, end;
    bool write;
} rt_access;

struct rt_seq {
    rt_ctx *ctx;
    VkCommandBuffer cb;
    VkFence fence;
    bool recording, pending;
    rt_access *acc;             /* since the last barrier */
    int n_acc, cap_acc;
    int n_barriers;             /* barriers recorded between commands */
    int parallel;               /* depth of rt_seq_parallel(true) groups */
    int n_commands;             /* dispatches and copies recorded */
    VkDescriptorPool *pools;    /* all reset at rt_seq_begin */
    int n_pools, cap_pools, used_pools, sets_in_pool;
    VkQueryPool queries;        /* profiling: one timestamp before the first dispatch and after each */
    int n_stamps;
    const char **stamp_names;   /* kernel of timestamp i (i >= 1) */
    double *stamp_bytes;        /* bytes the command before timestamp i moves (its bindings, or rt_seq_cost) */
    double *stamp_flops;        /* its arithmetic (rt_seq_cost), 0: not known */
    double next_bytes, next_flops; /* rt_seq_cost, for the next command */
    int n_timed;
    double *timed_ns;
    rt_buffer **scratch;        /* transient device buffers of ops (rt_seq_scratch), reused in order */
    int n_scratch, used_scratch;
    int serial_scratch;         /* the slot that requests outside parallel groups share, -1: none yet */
    int status;                 /* sticky recording / submission error */
    char err[RT_ERRLEN];
};

int rt_seq_fail(rt_seq *seq, int status, const char *fmt, ...)
{
    if (seq->status)
        return seq->status; /* keep the first error */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(seq->err, RT_ERRLEN, fmt, ap);
    va_end(ap);
    seq->status = status;
    return status;
}

static int seq_vk_fail(rt_seq *seq, VkResult r, const char *what)
{
    return rt_seq_fail(seq, rt_vk_status(r), "%s: %s", what, rt_vk_result_string(r));
}

int rt_seq_status(const rt_seq *seq) { return seq->status; }
rt_ctx *rt_seq_ctx(rt_seq *seq) { return seq->ctx; }
const char *rt_seq_errmsg(const rt_seq *seq) { return seq ? seq->err : "out of host memory"; }

int rt_seq_create(rt_ctx *ctx, rt_seq **out)
{
    *out = NULL;
    rt_seq *seq = calloc(1, sizeof *seq);
    if (!seq)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
    seq->ctx = ctx;
    ctx->n_seqs++;
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = ctx->pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1 };
    VkResult r = vkAllocateCommandBuffers(ctx->device, &ai, &seq->cb);
    if (r != VK_SUCCESS)
        goto out_free_seq;
    VkFenceCreateInfo fci = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    if ((r = vkCreateFence(ctx->device, &fci, NULL, &seq->fence)) != VK_SUCCESS)
        goto out_free_cb;
    if (ctx->profiling && ctx->info.timestamp_period_ns > 0) {
        VkQueryPoolCreateInfo qci = { .sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                      .queryType = VK_QUERY_TYPE_TIMESTAMP, .queryCount = RT_MAX_TIMESTAMPS };
        if ((r = vkCreateQueryPool(ctx->device, &qci, NULL, &seq->queries)) != VK_SUCCESS)
            goto out_destroy_fence;
        seq->stamp_names = calloc(RT_MAX_TIMESTAMPS, sizeof *seq->stamp_names);
        seq->timed_ns = calloc(RT_MAX_TIMESTAMPS, sizeof *seq->timed_ns);
        seq->stamp_bytes = calloc(RT_MAX_TIMESTAMPS, sizeof *seq->stamp_bytes);
        seq->stamp_flops = calloc(RT_MAX_TIMESTAMPS, sizeof *seq->stamp_flops);
        if (!seq->stamp_names || !seq->timed_ns || !seq->stamp_bytes || !seq->stamp_flops) {
            rt_seq_destroy(seq);
            return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
        }
    }
    *out = seq;
    return RT_OK;

out_destroy_fence:
    vkDestroyFence(ctx->device, seq->fence, NULL);
out_free_cb:
    vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &seq->cb);
out_free_seq:
    ctx->n_seqs--;
    free(seq);
    return rt_ctx_vk_fail(ctx, r, "rt_seq_create");
}

void rt_seq_destroy(rt_seq *seq)
{
    if (!seq)
        return;
    VkDevice dev = seq->ctx->device;
    if (seq->pending)
        vkWaitForFences(dev, 1, &seq->fence, VK_TRUE, UINT64_MAX);
    for (int i = 0; i < seq->n_pools; i++)
        vkDestroyDescriptorPool(dev, seq->pools[i], NULL);
    if (seq->queries)
        vkDestroyQueryPool(dev, seq->queries, NULL);
    if (seq->fence)
        vkDestroyFence(dev, seq->fence, NULL);
    if (seq->cb)
        vkFreeCommandBuffers(dev, seq->ctx->pool, 1, &seq->cb);
    for (int i = 0; i < seq->n_scratch; i++)
        rt_buffer_destroy(seq->scratch[i]);
    free(seq->scratch);
    free(seq->acc);
    free(seq->pools);
    free(seq->stamp_names);
    free(seq->timed_ns);
    free(seq->stamp_bytes);
    free(seq->stamp_flops);
    seq->ctx->n_seqs--;
    free(seq);
}

int rt_seq_wait(rt_seq *seq)
{
    if (!seq->pending)
        return seq->status;
    VkResult r = vkWaitForFences(seq->ctx->device, 1, &seq->fence, VK_TRUE, UINT64_MAX);
    seq->pending = false;
    if (r != VK_SUCCESS)
        return seq_vk_fail(seq, r, "vkWaitForFences");
    if ((r = vkResetFences(seq->ctx->device, 1, &seq->fence)) != VK_SUCCESS)
        return seq_vk_fail(seq, r, "vkResetFences");
    seq->n_timed = 0;
    if (seq->queries && seq->n_stamps > 1) {
        uint64_t t[RT_MAX_TIMESTAMPS];
        r = vkGetQueryPoolResults(seq->ctx->device, seq->queries, 0, (uint32_t)seq->n_stamps, sizeof t, t,
                                  sizeof t[0], VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
        if (r == VK_SUCCESS) {
            for (int i = 1; i < seq->n_stamps; i++)
                seq->timed_ns[i - 1] = (double)(t[i] - t[i - 1]) * seq->ctx->info.timestamp_period_ns;
            seq->n_timed = seq->n_stamps - 1;
        }
    }
    return RT_OK;
}

int rt_seq_begin(rt_seq *seq)
{
    int rc = rt_seq_wait(seq);
    seq->status = RT_OK;
    seq->err[0] = 0;
    (void)rc;
    VkResult r = vkResetCommandBuffer(seq->cb, 0);
    if (r != VK_SUCCESS)
        return seq_vk_fail(seq, r, "vkResetCommandBuffer");
    for (int i = 0; i < seq->n_pools; i++)
        if ((r = vkResetDescriptorPool(seq->ctx->device, seq->pools[i], 0)) != VK_SUCCESS)
            return seq_vk_fail(seq, r, "vkResetDescriptorPool");
    seq->used_pools = 0;
    seq->sets_in_pool = RT_SETS_PER_POOL;
    seq->used_scratch = 0;
    seq->serial_scratch = -1;
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO };
    if ((r = vkBeginCommandBuffer(seq->cb, &bi)) != VK_SUCCESS)
        return seq_vk_fail(seq, r, "vkBeginCommandBuffer");
    seq->recording = true;
    seq->parallel = 0;
    seq->n_acc = 0;
    seq->n_barriers = 0;
    seq->n_commands = 0;
    seq->n_stamps = 0;
    if (seq->queries) {
        vkCmdResetQueryPool(seq->cb, seq->queries, 0, RT_MAX_TIMESTAMPS);
        vkCmdWriteTimestamp(seq->cb, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, seq->queries, 0);
        seq->n_stamps = 1;
    }
    return RT_OK;
}

/* All earlier compute and transfer writes are visible to later compute and transfer work. */
static void barrier(rt_seq *seq)
{
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                            VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT };
    /* write-after-read needs only an execution dependency, which the same barrier gives */
    vkCmdPipelineBarrier(seq->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0,
                         NULL);
    seq->n_acc = 0;
    seq->n_barriers++;
}

/* Before a command with these accesses: a barrier if one of them conflicts with an access since the last
 * barrier; then they are remembered. */
static int before_command(rt_seq *seq, const rt_access *a, int n)
{
    bool hazard = false;
    for (int i = 0; i < n && !hazard; i++)
        for (int j = 0; j < seq->n_acc && !hazard; j++) {
            const rt_access *b = &seq->acc[j];
            hazard = (a[i].write || b->write) && a[i].buffer == b->buffer && a[i].start < b->end && b->start < a[i].end;
        }
    if (hazard)
        barrier(seq);
    if (seq->n_acc + n > seq->cap_acc) {
        int cap = seq->cap_acc ? 2 * seq->cap_acc : 64;
        while (cap < seq->n_acc + n)
            cap *= 2;
        rt_access *na = realloc(seq->acc, sizeof *na * (size_t)cap);
        if (!na)
            return rt_seq_fail(seq, RT_ERR_OUT_OF_MEMORY, "out of host memory");
        seq->acc = na;
        seq->cap_acc = cap;
    }
    memcpy(seq->acc + seq->n_acc, a, sizeof *a * (size_t)n);
    seq->n_acc += n;
    return RT_OK;
}

/* bytes: what the command's accesses cover, unless rt_seq_cost said otherwise */
static void after_command(rt_seq *seq, const char *name, const rt_access *a, int n)
{
    seq->n_commands++;
    if (seq->queries && seq->n_stamps < RT_MAX_TIMESTAMPS) {
        double bytes = seq->next_bytes;
        if (bytes <= 0)
            for (int i = 0; i < n; i++) {
                bool dup = false;
                for (int j = 0; j < i; j++)
                    dup |= a[j].buffer == a[i].buffer && a[j].start == a[i].start && a[j].end == a[i].end;
                bytes += dup ? 0.0 : (double)(a[i].end - a[i].start);
            }
        vkCmdWriteTimestamp(seq->cb, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, seq->queries, (uint32_t)seq->n_stamps);
        seq->stamp_bytes[seq->n_stamps] = bytes;
        seq->stamp_flops[seq->n_stamps] = seq->next_flops;
        seq->stamp_names[seq->n_stamps++] = name;
    }
    seq->next_bytes = seq->next_flops = 0;
}

void rt_seq_cost(rt_seq *seq, double bytes, double flops)
{
    seq->next_bytes = bytes;
    seq->next_flops = flops;
}

int rt_seq_timing_cost(const rt_seq *seq, int i, double *bytes, double *flops)
{
    if (i < 0 || i >= seq->n_timed)
        return RT_ERR_INVALID;
    if (bytes)
        *bytes = seq->stamp_bytes[i + 1];
    if (flops)
        *flops = seq->stamp_flops[i + 1];
    return RT_OK;
}

/* Groups of independent ops: only the choice of scratch buffers (rt_seq_scratch) depends on it now;
 * barriers come from hazards. */
void rt_seq_parallel(rt_seq *seq, bool on)
{
    if (on)
        seq->parallel++;
    else if (seq->parallel > 0)
        seq->parallel--;
}

void rt_seq_counts(const rt_seq *seq, int *commands, int *barriers)
{
    if (commands)
        *commands = seq->n_commands;
    if (barriers)
        *barriers = seq->n_barriers;
}

int rt_seq_end(rt_seq *seq)
{
    if (!seq->recording)
        return rt_seq_fail(seq, RT_ERR_INVALID, "rt_seq_end without rt_seq_begin");
    /* results visible to the host (mapped reads after the fence) and to later submissions on the queue */
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT |
                                            VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                                            VK_ACCESS_TRANSFER_WRITE_BIT };
    vkCmdPipelineBarrier(seq->cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT |
                             VK_PIPELINE_STAGE_TRANSFER_BIT,
                         0, 1, &mb, 0, NULL, 0, NULL);
    VkResult r = vkEndCommandBuffer(seq->cb);
    seq->recording = false;
    if (r != VK_SUCCESS)
        seq_vk_fail(seq, r, "vkEndCommandBuffer");
    return seq->status;
}

int rt_seq_submit(rt_seq *seq)
{
    if (seq->recording || seq->status)
        return rt_seq_fail(seq, RT_ERR_INVALID, "rt_seq_submit: the sequence is not recorded (or failed)");
    int rc = rt_seq_wait(seq);
    if (rc)
        return rc;
    VkResult r = rt_ctx_submit(seq->ctx, seq->cb, seq->fence);
    if (r != VK_SUCCESS)
        return seq_vk_fail(seq, r, "vkQueueSubmit");
    seq->pending = true;
    return RT_OK;
}

int rt_seq_run(rt_seq *seq)
{
    int rc = rt_seq_submit(seq);
    return rc ? rc : rt_seq_wait(seq);
}

int rt_seq_timing_count(const rt_seq *seq) { return seq->n_timed; }

int rt_seq_timing(const rt_seq *seq, int i, const char **kernel, double *ns)
{
    if (i < 0 || i >= seq->n_timed)
        return RT_ERR_INVALID;
    *kernel = seq->stamp_names[i + 1];
    *ns = seq->timed_ns[i];
    return RT_OK;
}

static int alloc_set(rt_seq *seq, VkDescriptorSetLayout dsl, VkDescriptorSet *set)
{
    rt_ctx *ctx = seq->ctx;
    if (seq->sets_in_pool == RT_SETS_PER_POOL) {
        if (seq->used_pools == seq->n_pools) {
            if (seq->n_pools == seq->cap_pools) {
                int cap = seq->cap_pools ? 2 * seq->cap_pools : 4;
                VkDescriptorPool *np = realloc(seq->pools, sizeof *np * (size_t)cap);
                if (!np)
                    return rt_seq_fail(seq, RT_ERR_OUT_OF_MEMORY, "out of host memory");
                seq->pools = np;
                seq->cap_pools = cap;
            }
            VkDescriptorPoolSize ps = { VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, RT_SETS_PER_POOL * RT_MAX_BINDINGS };
            VkDescriptorPoolCreateInfo pci = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                               .maxSets = RT_SETS_PER_POOL, .poolSizeCount = 1, .pPoolSizes = &ps };
            VkResult r = vkCreateDescriptorPool(ctx->device, &pci, NULL, &seq->pools[seq->n_pools]);
            if (r != VK_SUCCESS)
                return seq_vk_fail(seq, r, "vkCreateDescriptorPool");
            seq->n_pools++;
        }
        seq->used_pools++;
        seq->sets_in_pool = 0;
    }
    VkDescriptorSetAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                       .descriptorPool = seq->pools[seq->used_pools - 1], .descriptorSetCount = 1,
                                       .pSetLayouts = &dsl };
    VkResult r = vkAllocateDescriptorSets(ctx->device, &ai, set);
    if (r != VK_SUCCESS)
        return seq_vk_fail(seq, r, "vkAllocateDescriptorSets");
    seq->sets_in_pool++;
    return RT_OK;
}

int rt_seq_dispatch(rt_seq *seq, rt_pipeline *p, const rt_bind *binds, int n_binds, const void *push, uint32_t gx,
                    uint32_t gy, uint32_t gz)
{
    if (seq->status)
        return seq->status;
    rt_ctx *ctx = seq->ctx;
    const char *name = p->name ? p->name : rt_shader_table[p->shader].name;
    if (!seq->recording)
        return rt_seq_fail(seq, RT_ERR_INVALID, "%s: the sequence is not recording", name);
    if (n_binds != p->n_bindings)
        return rt_seq_fail(seq, RT_ERR_INVALID, "%s: %d bindings given, %d expected", name, n_binds, p->n_bindings);
    uint32_t g[3] = { gx, gy, gz };
    for (int i = 0; i < 3; i++)
        if (g[i] == 0 || g[i] > ctx->info.max_workgroup_count[i])
            return rt_seq_fail(seq, RT_ERR_LIMIT, "%s: %u workgroups in dimension %d (device limit %u)", name, g[i], i,
                               ctx->info.max_workgroup_count[i]);
    VkDescriptorBufferInfo bi[RT_MAX_BINDINGS];
    VkWriteDescriptorSet w[RT_MAX_BINDINGS];
    VkDescriptorSet set;
    for (int i = 0; i < n_binds; i++) {
        const rt_bind *b = &binds[i];
        if (!b->buf || b->range == 0 || b->off + b->range > b->buf->size + (b->buf->alloc - b->buf->size))
            return rt_seq_fail(seq, RT_ERR_INVALID, "%s: binding %d outside its buffer", name, i);
        if (b->range > ctx->info.max_storage_buffer_range)
            return rt_seq_fail(seq, RT_ERR_LIMIT, "%s: binding %d is %zu bytes, above maxStorageBufferRange (%llu)",
                               name, i, b->range, (unsigned long long)ctx->info.max_storage_buffer_range);
        if ((b->buf->off + b->off) % ctx->storage_align)
            return rt_seq_fail(seq, RT_ERR_INVALID, "%s: binding %d offset %zu is not aligned", name, i, b->off);
        bi[i] = (VkDescriptorBufferInfo){ .buffer = b->buf->block->buffer, .offset = b->buf->off + b->off,
                                          .range = b->range };
    }
    int rc = alloc_set(seq, p->dsl, &set);
    if (rc)
        return rc;
    for (int i = 0; i < n_binds; i++)
        w[i] = (VkWriteDescriptorSet){ .sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set,
                                       .dstBinding = (uint32_t)i, .descriptorCount = 1,
                                       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &bi[i] };
    vkUpdateDescriptorSets(ctx->device, (uint32_t)n_binds, w, 0, NULL);

    rt_access acc[RT_MAX_BINDINGS];
    for (int i = 0; i < n_binds; i++)
        acc[i] = (rt_access){ bi[i].buffer, bi[i].offset, bi[i].offset + bi[i].range, !(p->readonly >> i & 1u) };
    if (before_command(seq, acc, n_binds))
        return seq->status;
    vkCmdBindPipeline(seq->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->pipeline);
    vkCmdBindDescriptorSets(seq->cb, VK_PIPELINE_BIND_POINT_COMPUTE, p->layout, 0, 1, &set, 0, NULL);
    if (p->push_size)
        vkCmdPushConstants(seq->cb, p->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, p->push_size, push);
    vkCmdDispatch(seq->cb, gx, gy, gz);
    after_command(seq, name, acc, n_binds);
    return RT_OK;
}

int rt_seq_copy(rt_seq *seq, rt_ref dst, rt_ref src, size_t n)
{
    if (seq->status)
        return seq->status;
    if (!seq->recording)
        return rt_seq_fail(seq, RT_ERR_INVALID, "rt_seq_copy: the sequence is not recording");
    if (!dst.buf || !src.buf || dst.off > dst.buf->size || n > dst.buf->size - dst.off || src.off > src.buf->size ||
        n > src.buf->size - src.off)
        return rt_seq_fail(seq, RT_ERR_INVALID, "rt_seq_copy: range outside a buffer");
    if (n == 0)
        return RT_OK;
    VkBufferCopy c = { .srcOffset = src.buf->off + src.off, .dstOffset = dst.buf->off + dst.off, .size = n };
    rt_access acc[2] = { { src.buf->block->buffer, c.srcOffset, c.srcOffset + n, false },
                         { dst.buf->block->buffer, c.dstOffset, c.dstOffset + n, true } };
    if (before_command(seq, acc, 2))
        return seq->status;
    vkCmdCopyBuffer(seq->cb, src.buf->block->buffer, dst.buf->block->buffer, 1, &c);
    after_command(seq, "copy", acc, 2);
    return RT_OK;
}

int rt_seq_scratch(rt_seq *seq, size_t bytes, rt_ref *out)
{
    if (seq->status)
        return seq->status;
    /* Outside parallel groups ops run one after another, barriers between them, so they share one
     * buffer (a bigger request moves on to a new slot: ops recorded before keep theirs). */
    if (!seq->parallel && seq->serial_scratch >= 0 && rt_buffer_size(seq->scratch[seq->serial_scratch]) >= bytes) {
        *out = rt_at(seq->scratch[seq->serial_scratch], 0);
        return RT_OK;
    }
    /* otherwise the i-th new request of a recording gets the i-th slot, grown when too small: a
     * re-recording of the same ops reuses the same buffers */
    if (seq->used_scratch == seq->n_scratch) {
        rt_buffer **ns = realloc(seq->scratch, sizeof *ns * (size_t)(seq->n_scratch + 1));
        if (!ns)
            return rt_seq_fail(seq, RT_ERR_OUT_OF_MEMORY, "out of host memory");
        seq->scratch = ns;
        seq->scratch[seq->n_scratch++] = NULL;
    }
    rt_buffer **b = &seq->scratch[seq->used_scratch];
    if (*b && rt_buffer_size(*b) < bytes) {
        rt_buffer_destroy(*b);
        *b = NULL;
    }
    if (!*b) {
        int rc = rt_buffer_create(seq->ctx, RT_MEM_DEVICE, bytes, b);
        if (rc)
            return rt_seq_fail(seq, rc, "scratch: %s", rt_ctx_errmsg(seq->ctx));
    }
    if (!seq->parallel)
        seq->serial_scratch = seq->used_scratch;
    seq->used_scratch++;
    *out = rt_at(*b, 0);
    return RT_OK;
}
