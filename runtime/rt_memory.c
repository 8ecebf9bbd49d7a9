/* rt_memory.c: device memory in large blocks, each bound to one VkBuffer and carved into rt_buffers;
 * host <-> device copies, direct through a mapping where the memory is host-visible, else staged. */
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

#define RT_ALIGN 256                         /* sub-allocation alignment: >= any minStorageBufferOffsetAlignment */
#define RT_BLOCK_DEVICE ((VkDeviceSize)256 << 20)
#define RT_BLOCK_HOST ((VkDeviceSize)16 << 20)
#define RT_STAGING_SIZE ((size_t)32 << 20) /* each of the two halves of the staging buffer */

static VkDeviceSize align_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

/* Picks a memory type for a kind: the first type that has all of `want`, else all of `need`. */
static int find_type(rt_ctx *ctx, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags need)
{
    for (int pass = 0; pass < 2; pass++) {
        VkMemoryPropertyFlags f = pass ? need : want;
        for (uint32_t i = 0; i < ctx->memprops.memoryTypeCount; i++)
            if ((bits & (1u << i)) && (ctx->memprops.memoryTypes[i].propertyFlags & f) == f)
                return (int)i;
    }
    return -1;
}

static bool force_staged(void);

static void block_free(rt_ctx *ctx, rt_block *b)
{
    if (b->mapped)
        vkUnmapMemory(ctx->device, b->memory);
    if (b->buffer)
        vkDestroyBuffer(ctx->device, b->buffer, NULL);
    if (b->memory)
        vkFreeMemory(ctx->device, b->memory, NULL);
    ctx->reserved -= b->memory ? b->size : 0;
    free(b->free);
    free(b);
}

static int block_create(rt_ctx *ctx, rt_mem kind, VkDeviceSize size, rt_block **out)
{
    rt_block *b = calloc(1, sizeof *b);
    if (!b)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
    b->kind = kind;
    b->size = size;
    VkBufferCreateInfo bci = { .sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                        VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE };
    VkResult r = vkCreateBuffer(ctx->device, &bci, NULL, &b->buffer);
    if (r != VK_SUCCESS)
        goto out_free_block;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(ctx->device, b->buffer, &req);

    const VkMemoryPropertyFlags DL = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, HV = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                HC = VK_MEMORY_PROPERTY_HOST_COHERENT_BIT, CA = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
    int type;
    if (kind == RT_MEM_DEVICE)
        type = ctx->device_mappable ? find_type(ctx, req.memoryTypeBits, DL | HV | HC, DL)
                                    : find_type(ctx, req.memoryTypeBits, DL, 0);
    else if (kind == RT_MEM_UPLOAD) { /* device-local where a type is also host-visible (UMA, ReBAR, BAR) */
        type = force_staged() ? -1 : find_type(ctx, req.memoryTypeBits, DL | HV | HC, DL | HV | HC);
        if (type < 0)
            type = find_type(ctx, req.memoryTypeBits, HV | HC, HV);
    }
    else if ((type = find_type(ctx, req.memoryTypeBits, HV | HC | CA, HV | HC)) < 0)
        type = find_type(ctx, req.memoryTypeBits, HV, HV);
    if (type < 0) {
        vkDestroyBuffer(ctx->device, b->buffer, NULL);
        free(b);
        return rt_ctx_fail(ctx, RT_ERR_UNSUPPORTED, "no suitable memory type for %s buffers",
                           kind == RT_MEM_DEVICE ? "device" : "host-visible");
    }
    VkMemoryPropertyFlags flags = ctx->memprops.memoryTypes[type].propertyFlags;
    b->device_local = (flags & DL) && !(kind == RT_MEM_UPLOAD && force_staged());
    VkMemoryAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                                .memoryTypeIndex = (uint32_t)type };
    if (ctx->mem_limit && ctx->reserved + req.size > ctx->mem_limit)
        r = VK_ERROR_OUT_OF_DEVICE_MEMORY; /* the cap rt_ctx_fault set */
    else
        r = vkAllocateMemory(ctx->device, &ai, NULL, &b->memory);
    if (r != VK_SUCCESS)
        goto out_destroy_buffer;
    ctx->reserved += b->size;
    if ((r = vkBindBufferMemory(ctx->device, b->buffer, b->memory, 0)) != VK_SUCCESS)
        goto out_free_memory;
    if (flags & HV) {
        if ((r = vkMapMemory(ctx->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped)) != VK_SUCCESS)
            goto out_free_memory;
        b->coherent = (flags & HC) != 0;
    }
    b->free = malloc(sizeof *b->free * 8);
    if (!b->free) {
        block_free(ctx, b);
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    b->cap_free = 8;
    b->n_free = 1;
    b->free[0] = (struct rt_range){ 0, size };
    *out = b;
    return RT_OK;

out_free_memory:
    block_free(ctx, b);
    return rt_ctx_vk_fail(ctx, r, "device memory");
out_destroy_buffer:
    vkDestroyBuffer(ctx->device, b->buffer, NULL);
out_free_block:
    free(b);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY,
                           "device memory exhausted allocating %.1f MiB (%.1f MiB already in use)",
                           size / 1048576.0, ctx->reserved / 1048576.0);
    return rt_ctx_vk_fail(ctx, r, "vkCreateBuffer/vkAllocateMemory");
}

/* First fit in a block's sorted free list; returns false if nothing fits. */
static bool block_carve(rt_block *b, VkDeviceSize size, VkDeviceSize *off)
{
    for (int i = 0; i < b->n_free; i++) {
        struct rt_range *f = &b->free[i];
        if (f->size >= size) {
            *off = f->off;
            f->off += size;
            f->size -= size;
            if (f->size == 0) {
                memmove(f, f + 1, sizeof *f * (size_t)(b->n_free - i - 1));
                b->n_free--;
            }
            b->n_live++;
            return true;
        }
    }
    return false;
}

/* Returns a range to the free list, merging with its neighbours. */
static bool block_return(rt_block *b, VkDeviceSize off, VkDeviceSize size)
{
    int i = 0;
    while (i < b->n_free && b->free[i].off < off)
        i++;
    bool merge_prev = i > 0 && b->free[i - 1].off + b->free[i - 1].size == off;
    bool merge_next = i < b->n_free && off + size == b->free[i].off;
    b->n_live--;
    if (merge_prev && merge_next) {
        b->free[i - 1].size += size + b->free[i].size;
        memmove(&b->free[i], &b->free[i + 1], sizeof *b->free * (size_t)(b->n_free - i - 1));
        b->n_free--;
    } else if (merge_prev) {
        b->free[i - 1].size += size;
    } else if (merge_next) {
        b->free[i].off = off;
        b->free[i].size += size;
    } else {
        if (b->n_free == b->cap_free) {
            struct rt_range *nf = realloc(b->free, sizeof *nf * (size_t)b->cap_free * 2);
            if (!nf)
                return false; /* the range is leaked inside the block until the block goes */
            b->free = nf;
            b->cap_free *= 2;
        }
        memmove(&b->free[i + 1], &b->free[i], sizeof *b->free * (size_t)(b->n_free - i));
        b->free[i] = (struct rt_range){ off, size };
        b->n_free++;
    }
    return true;
}

int rt_buffer_create(rt_ctx *ctx, rt_mem kind, size_t size, rt_buffer **out)
{
    *out = NULL;
    if (size == 0 || kind < RT_MEM_DEVICE || kind > RT_MEM_READBACK)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "rt_buffer_create: bad size or kind");
    VkDeviceSize alloc = align_up(size, RT_ALIGN);
    if (alloc > ctx->info.max_allocation_size)
        return rt_ctx_fail(ctx, RT_ERR_LIMIT,
                           "a buffer of %.1f MiB exceeds the device's maxMemoryAllocationSize (%.1f MiB)",
                           size / 1048576.0, ctx->info.max_allocation_size / 1048576.0);
    if (ctx->fail_alloc && ++ctx->n_allocs == ctx->fail_alloc)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY,
                           "device memory exhausted allocating %.1f MiB (a fault injected: buffer %lld)",
                           size / 1048576.0, (long long)ctx->n_allocs);
    rt_buffer *buf = calloc(1, sizeof *buf);
    if (!buf)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
    buf->ctx = ctx;
    buf->size = size;
    buf->alloc = alloc;

    rt_block *b;
    for (b = ctx->blocks[kind]; b; b = b->next)
        if (block_carve(b, alloc, &buf->off))
            break;
    if (!b) {
        VkDeviceSize bsize = kind == RT_MEM_DEVICE ? RT_BLOCK_DEVICE : RT_BLOCK_HOST;
        if (bsize > ctx->info.max_allocation_size)
            bsize = ctx->info.max_allocation_size;
        if (alloc > bsize)
            bsize = alloc; /* a large tensor gets a block of its own */
        int rc = block_create(ctx, kind, bsize, &b);
        if (rc == RT_ERR_OUT_OF_MEMORY && bsize > alloc)
            rc = block_create(ctx, kind, alloc, &b); /* a full block does not fit: just the buffer */
        if (rc) {
            free(buf);
            return rc;
        }
        b->next = ctx->blocks[kind];
        ctx->blocks[kind] = b;
        block_carve(b, alloc, &buf->off);
    }
    buf->block = b;
    ctx->used += alloc;
    *out = buf;
    return RT_OK;
}

void rt_buffer_destroy(rt_buffer *buf)
{
    if (!buf)
        return;
    rt_ctx *ctx = buf->ctx;
    rt_block *b = buf->block;
    block_return(b, buf->off, buf->alloc);
    ctx->used -= buf->alloc;
    if (b->n_live == 0) {
        /* give an empty block back to the driver */
        for (rt_block **pp = &ctx->blocks[b->kind]; *pp; pp = &(*pp)->next)
            if (*pp == b) {
                *pp = b->next;
                break;
            }
        block_free(ctx, b);
    }
    free(buf);
}

void rt_memory_destroy(rt_ctx *ctx)
{
    for (int i = 0; i < 2; i++) {
        if (ctx->up_busy[i])
            vkWaitForFences(ctx->device, 1, &ctx->up_fence[i], VK_TRUE, UINT64_MAX);
        if (ctx->up_cb[i])
            vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &ctx->up_cb[i]);
        if (ctx->up_fence[i])
            vkDestroyFence(ctx->device, ctx->up_fence[i], NULL);
        ctx->up_cb[i] = VK_NULL_HANDLE;
        ctx->up_fence[i] = VK_NULL_HANDLE;
        ctx->up_busy[i] = false;
    }
    rt_buffer_destroy(ctx->staging);
    ctx->staging = NULL;
    for (int k = 0; k < 3; k++)
        while (ctx->blocks[k]) {
            rt_block *b = ctx->blocks[k];
            ctx->blocks[k] = b->next;
            block_free(ctx, b);
        }
}

void rt_ctx_memory_usage(const rt_ctx *ctx, uint64_t *reserved, uint64_t *used)
{
    if (reserved)
        *reserved = ctx->reserved;
    uint64_t staging = ctx->staging ? ctx->staging->alloc : 0;
    if (used)
        *used = ctx->used - staging;
}

bool rt_buffer_device_local(const rt_buffer *buf) { return buf->block->device_local; }

size_t rt_buffer_size(const rt_buffer *buf) { return buf->size; }

void *rt_buffer_map(rt_buffer *buf)
{
    return buf->block->mapped ? (char *)buf->block->mapped + buf->off : NULL;
}

static int check_range(rt_buffer *buf, size_t offset, size_t n, const char *what)
{
    if (offset > buf->size || n > buf->size - offset)
        return rt_ctx_fail(buf->ctx, RT_ERR_INVALID, "%s: bytes [%zu, +%zu) outside a buffer of %zu", what, offset, n,
                           (size_t)buf->size);
    return RT_OK;
}

static int sync_mapping(rt_buffer *buf, size_t offset, size_t n, bool flush)
{
    rt_block *b = buf->block;
    if (b->coherent || n == 0)
        return RT_OK;
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(buf->ctx->phys, &p);
    VkDeviceSize atom = p.limits.nonCoherentAtomSize ? p.limits.nonCoherentAtomSize : 1;
    VkDeviceSize lo = (buf->off + offset) / atom * atom;
    VkDeviceSize hi = align_up(buf->off + offset + n, atom);
    if (hi > b->size)
        hi = b->size;
    VkMappedMemoryRange r = { .sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = b->memory, .offset = lo,
                              .size = hi - lo };
    VkResult vr = flush ? vkFlushMappedMemoryRanges(buf->ctx->device, 1, &r)
                        : vkInvalidateMappedMemoryRanges(buf->ctx->device, 1, &r);
    return vr == VK_SUCCESS ? RT_OK : rt_ctx_vk_fail(buf->ctx, vr, "flush/invalidate mapped memory");
}

static int staging(rt_ctx *ctx)
{
    if (ctx->staging)
        return RT_OK;
    return rt_buffer_create(ctx, RT_MEM_READBACK, 2 * RT_STAGING_SIZE, &ctx->staging);
}

/* Waits for the copy out of staging half i (if one is in flight) and frees its command buffer. */
static int upload_wait(rt_ctx *ctx, int i)
{
    if (!ctx->up_busy[i])
        return RT_OK;
    VkResult r = vkWaitForFences(ctx->device, 1, &ctx->up_fence[i], VK_TRUE, UINT64_MAX);
    if (r != VK_SUCCESS) /* the copy may still be pending (device lost): keep the command buffer */
        return rt_ctx_vk_fail(ctx, r, "waiting for an upload");
    ctx->up_busy[i] = false;
    vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &ctx->up_cb[i]);
    ctx->up_cb[i] = VK_NULL_HANDLE;
    if ((r = vkResetFences(ctx->device, 1, &ctx->up_fence[i])) != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkResetFences");
    return RT_OK;
}

/* Host to device through the two staging halves in turn: while the device copies one half, the host
 * fills the other. Waits for both at the end (the caller may reuse src, and reads see the data). */
static int staged_upload(rt_buffer *buf, size_t offset, const void *host, size_t n)
{
    rt_ctx *ctx = buf->ctx;
    int rc = staging(ctx);
    if (rc)
        return rc;
    for (int i = 0; i < 2; i++)
        if (!ctx->up_fence[i]) {
            VkFenceCreateInfo fi = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
            VkResult r = vkCreateFence(ctx->device, &fi, NULL, &ctx->up_fence[i]);
            if (r != VK_SUCCESS)
                return rt_ctx_vk_fail(ctx, r, "vkCreateFence");
        }
    char *st = rt_buffer_map(ctx->staging);
    int half = 0;
    for (size_t done = 0; done < n; done += RT_STAGING_SIZE, half ^= 1) {
        size_t chunk = n - done < RT_STAGING_SIZE ? n - done : RT_STAGING_SIZE;
        size_t soff = (size_t)half * RT_STAGING_SIZE;
        if ((rc = upload_wait(ctx, half)))
            return rc;
        memcpy(st + soff, (const char *)host + done, chunk);
        if ((rc = sync_mapping(ctx->staging, soff, chunk, true)))
            return rc;
        VkCommandBuffer cb;
        if ((rc = rt_ctx_begin_oneoff(ctx, &cb)))
            return rc;
        VkMemoryBarrier before = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                   .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                                                    VK_ACCESS_SHADER_READ_BIT,
                                   .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT };
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
        VkBufferCopy c = { .srcOffset = ctx->staging->off + soff, .dstOffset = buf->off + offset + done, .size = chunk };
        vkCmdCopyBuffer(cb, ctx->staging->block->buffer, buf->block->buffer, 1, &c);
        VkMemoryBarrier after = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                  .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                  .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                                                   VK_ACCESS_TRANSFER_READ_BIT };
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &after, 0,
                             NULL, 0, NULL);
        VkResult r = vkEndCommandBuffer(cb);
        if (r == VK_SUCCESS) {
            r = rt_ctx_submit(ctx, cb, ctx->up_fence[half]);
        }
        if (r != VK_SUCCESS) {
            vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &cb);
            return rt_ctx_vk_fail(ctx, r, "upload submission");
        }
        ctx->up_cb[half] = cb;
        ctx->up_busy[half] = true;
    }
    if ((rc = upload_wait(ctx, 0)) || (rc = upload_wait(ctx, 1)))
        return rc;
    return RT_OK;
}

/* VKLLM_STAGED_UPLOAD=1: write even host-visible device buffers through the staging buffer, and take
 * upload buffers as not device-local (the paths a discrete GPU without resizable BAR takes), so that a
 * CPU driver tests them. */
static bool force_staged(void)
{
    return rt_env_on("VKLLM_STAGED_UPLOAD");
}

/* Copies between buf and the staging buffer with one-off command buffers, chunk by chunk. */
static int staged_copy(rt_buffer *buf, size_t offset, void *host, size_t n, bool to_device)
{
    rt_ctx *ctx = buf->ctx;
    int rc = staging(ctx);
    if (rc)
        return rc;
    char *st = rt_buffer_map(ctx->staging);
    for (size_t done = 0; done < n;) {
        size_t chunk = n - done < RT_STAGING_SIZE ? n - done : RT_STAGING_SIZE;
        if (to_device) {
            memcpy(st, (char *)host + done, chunk);
            if ((rc = sync_mapping(ctx->staging, 0, chunk, true)))
                return rc;
        }
        VkCommandBuffer cb;
        if ((rc = rt_ctx_begin_oneoff(ctx, &cb)))
            return rc;
        /* earlier submissions' writes before the copy; the copy's writes visible to the host after it */
        VkMemoryBarrier before = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                   .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                                   .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT };
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &before, 0, NULL, 0, NULL);
        VkBufferCopy c = { .size = chunk };
        if (to_device) {
            c.srcOffset = ctx->staging->off;
            c.dstOffset = buf->off + offset + done;
            vkCmdCopyBuffer(cb, ctx->staging->block->buffer, buf->block->buffer, 1, &c);
        } else {
            c.srcOffset = buf->off + offset + done;
            c.dstOffset = ctx->staging->off;
            vkCmdCopyBuffer(cb, buf->block->buffer, ctx->staging->block->buffer, 1, &c);
        }
        VkMemoryBarrier after = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                  .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                  .dstAccessMask = VK_ACCESS_HOST_READ_BIT | VK_ACCESS_SHADER_READ_BIT |
                                                   VK_ACCESS_SHADER_WRITE_BIT };
        vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                             VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &after, 0, NULL,
                             0, NULL);
        if ((rc = rt_ctx_end_oneoff(ctx, cb)))
            return rc;
        if (!to_device) {
            if ((rc = sync_mapping(ctx->staging, 0, chunk, false)))
                return rc;
            memcpy((char *)host + done, st, chunk);
        }
        done += chunk;
    }
    return RT_OK;
}

int rt_buffer_write(rt_buffer *buf, size_t offset, const void *src, size_t n)
{
    int rc = check_range(buf, offset, n, "rt_buffer_write");
    if (rc || n == 0)
        return rc;
    char *m = rt_buffer_map(buf);
    if (m && !(buf->block->kind == RT_MEM_DEVICE && force_staged())) {
        memcpy(m + offset, src, n);
        return sync_mapping(buf, offset, n, true);
    }
    return staged_upload(buf, offset, src, n);
}

int rt_buffer_read(rt_buffer *buf, size_t offset, void *dst, size_t n)
{
    int rc = check_range(buf, offset, n, "rt_buffer_read");
    if (rc || n == 0)
        return rc;
    char *m = rt_buffer_map(buf);
    if (m) {
        if ((rc = sync_mapping(buf, offset, n, false)))
            return rc;
        memcpy(dst, m + offset, n);
        return RT_OK;
    }
    return staged_copy(buf, offset, dst, n, false);
}

int rt_buffer_fill(rt_buffer *buf, size_t offset, size_t n, uint32_t value)
{
    int rc = check_range(buf, offset, n, "rt_buffer_fill");
    if (rc || n == 0)
        return rc;
    if (offset % 4 || n % 4)
        return rt_ctx_fail(buf->ctx, RT_ERR_INVALID, "rt_buffer_fill: offset and size must be multiples of 4");
    uint32_t *m = rt_buffer_map(buf);
    if (m) {
        for (size_t i = 0; i < n / 4; i++)
            m[offset / 4 + i] = value;
        return sync_mapping(buf, offset, n, true);
    }
    VkCommandBuffer cb;
    if ((rc = rt_ctx_begin_oneoff(buf->ctx, &cb)))
        return rc;
    VkMemoryBarrier mb = { .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                           .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                           .dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT };
    vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                         VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &mb, 0, NULL, 0, NULL);
    vkCmdFillBuffer(cb, buf->block->buffer, buf->off + offset, n, value);
    return rt_ctx_end_oneoff(buf->ctx, cb);
}
