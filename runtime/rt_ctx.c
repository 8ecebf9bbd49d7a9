/* rt_ctx.c: one logical device (queue, one-off commands) and its compute pipelines with their cache. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"

int rt_ctx_fail(rt_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err, RT_ERRLEN, fmt, ap);
    va_end(ap);
    return status;
}

int rt_ctx_vk_fail(rt_ctx *ctx, VkResult r, const char *what)
{
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "%s: device memory exhausted (%s)", what, rt_vk_result_string(r));
    return rt_ctx_fail(ctx, rt_vk_status(r), "%s: %s", what, rt_vk_result_string(r));
}

static int create_device(rt_ctx *ctx)
{
    uint32_t n_q = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &n_q, NULL);
    VkQueueFamilyProperties q[32];
    if (n_q > 32)
        n_q = 32;
    vkGetPhysicalDeviceQueueFamilyProperties(ctx->phys, &n_q, q);
    /* Prefer a compute queue family that also does graphics (the "universal" queue), which has
     * timestamps everywhere; any compute family otherwise. */
    int fam = -1;
    for (uint32_t i = 0; i < n_q && fam < 0; i++)
        if ((q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && (q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT))
            fam = (int)i;
    for (uint32_t i = 0; i < n_q && fam < 0; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT)
            fam = (int)i;
    if (fam < 0)
        return rt_ctx_fail(ctx, RT_ERR_UNSUPPORTED, "device %s has no compute queue", ctx->info.name);
    ctx->queue_family = (uint32_t)fam;
    if (!q[fam].timestampValidBits)
        ctx->info.timestamp_period_ns = 0;

    float prio = 1.0f;
    VkDeviceQueueCreateInfo qci = { .sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                    .queueFamilyIndex = ctx->queue_family, .queueCount = 1,
                                    .pQueuePriorities = &prio };
    /* The features rt_instance_create decided on (info.en_*): at Vulkan 1.3 through its feature struct
     * (the extensions' structs may not be chained beside it), below 1.3 through the extensions. */
    const rt_device_info *d = &ctx->info;
    bool v13 = d->api_used >= VK_API_VERSION_1_3;
    const char *exts[2];
    uint32_t n_exts = 0;
    VkPhysicalDeviceSubgroupSizeControlFeatures fsize = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES,
        .subgroupSizeControl = VK_TRUE, .computeFullSubgroups = VK_TRUE };
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
        .shaderIntegerDotProduct = VK_TRUE };
    VkPhysicalDeviceVulkan13Features f13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES,
                                             .subgroupSizeControl = d->en_subgroup_size_control,
                                             .computeFullSubgroups = d->en_subgroup_size_control,
                                             .shaderIntegerDotProduct = d->en_int_dot };
    void *chain = NULL;
    if (v13) {
        chain = &f13;
    } else {
        if (d->en_subgroup_size_control) {
            exts[n_exts++] = VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME;
            chain = &fsize;
        }
        if (d->en_int_dot) {
            exts[n_exts++] = VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME;
            fdot.pNext = chain;
            chain = &fdot;
        }
    }
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                             .pNext = chain,
                                             .shaderFloat16 = d->en_fp16,
                                             .storageBuffer8BitAccess = d->en_storage8 };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                             .pNext = &f12,
                                             .storageBuffer16BitAccess = d->en_storage16 };
    VkPhysicalDeviceFeatures2 f = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11 };
    VkDeviceCreateInfo dci = { .sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f,
                               .queueCreateInfoCount = 1, .pQueueCreateInfos = &qci,
                               .enabledExtensionCount = n_exts, .ppEnabledExtensionNames = exts };
    VkResult r = vkCreateDevice(ctx->phys, &dci, NULL, &ctx->device);
    if (r != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkCreateDevice");
    vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);

    VkCommandPoolCreateInfo pci = { .sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT |
                                             VK_COMMAND_POOL_CREATE_TRANSIENT_BIT,
                                    .queueFamilyIndex = ctx->queue_family };
    if ((r = vkCreateCommandPool(ctx->device, &pci, NULL, &ctx->pool)) != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkCreateCommandPool");
    VkFenceCreateInfo fci = { .sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO };
    if ((r = vkCreateFence(ctx->device, &fci, NULL, &ctx->fence)) != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkCreateFence");
    return RT_OK;
}

/* ---------------------------------------------------------------- injected faults */

static bool parse_count(const char *s, const char *end, int64_t *out)
{
    char *e;
    long long v = strtoll(s, &e, 10);
    if (e != end || e == s || v <= 0)
        return false;
    *out = v;
    return true;
}

static bool parse_size(const char *s, const char *end, uint64_t *out)
{
    char *e;
    double v = strtod(s, &e);
    double mul = 1;
    if (e < end && e + 1 == end) {
        mul = *e == 'K' || *e == 'k' ? 1024.0 : *e == 'M' || *e == 'm' ? 1048576.0
              : *e == 'G' || *e == 'g' ? 1073741824.0 : 0;
        e++;
    }
    if (e != end || !(v > 0) || mul == 0 || v * mul > 1e18)
        return false;
    *out = (uint64_t)(v * mul);
    return true;
}

int rt_ctx_fault(rt_ctx *ctx, const char *spec)
{
    ctx->fail_alloc = ctx->fail_submit = ctx->lose_at = ctx->n_allocs = ctx->n_submits = 0;
    ctx->mem_limit = 0;
    if (!spec || !spec[0] || !strcmp(spec, "none"))
        return RT_OK;
    for (const char *s = spec; *s;) {
        const char *end = strchr(s, ','), *colon = strchr(s, ':');
        if (!end)
            end = s + strlen(s);
        bool ok = colon && colon < end;
        if (ok && !strncmp(s, "alloc:", 6))
            ok = parse_count(colon + 1, end, &ctx->fail_alloc);
        else if (ok && !strncmp(s, "submit:", 7))
            ok = parse_count(colon + 1, end, &ctx->fail_submit);
        else if (ok && !strncmp(s, "lost:", 5))
            ok = parse_count(colon + 1, end, &ctx->lose_at);
        else if (ok && !strncmp(s, "mem:", 4))
            ok = parse_size(colon + 1, end, &ctx->mem_limit);
        else
            ok = false;
        if (!ok) {
            ctx->fail_alloc = ctx->fail_submit = ctx->lose_at = 0;
            ctx->mem_limit = 0;
            return rt_ctx_fail(ctx, RT_ERR_INVALID,
                               "fault '%.*s' is not one of alloc:N, submit:N, lost:N, mem:SIZE (N from 1, SIZE "
                               "in bytes or with K, M, G)", (int)(end - s), s);
        }
        s = *end ? end + 1 : end;
    }
    return RT_OK;
}

bool rt_ctx_lost(const rt_ctx *ctx) { return atomic_load(&((rt_ctx *)ctx)->lost); }

VkResult rt_ctx_submit(rt_ctx *ctx, VkCommandBuffer cb, VkFence fence)
{
    ctx->n_submits++;
    VkResult r;
    if (atomic_load(&ctx->lost) || (ctx->lose_at && ctx->n_submits >= ctx->lose_at))
        r = VK_ERROR_DEVICE_LOST;
    else if (ctx->fail_submit && ctx->n_submits == ctx->fail_submit)
        r = VK_ERROR_OUT_OF_DEVICE_MEMORY;
    else {
        VkSubmitInfo si = { .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cb };
        r = vkQueueSubmit(ctx->queue, 1, &si, fence);
    }
    if (r == VK_ERROR_DEVICE_LOST)
        atomic_store(&ctx->lost, true);
    return r;
}

/* ---------------------------------------------------------------- creation */

int rt_ctx_create(rt_instance *inst, const rt_ctx_desc *desc, rt_ctx **out)
{
    *out = NULL;
    rt_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return RT_ERR_OUT_OF_MEMORY;
    *out = ctx;
    ctx->inst = inst;
    int index = desc ? desc->device : -1;
    if (index < 0) {
        index = rt_instance_default_device(inst);
        if (index < 0)
            return rt_ctx_fail(ctx, RT_ERR_NO_DEVICE, "%s", rt_instance_errmsg(inst));
    }
    if (index >= inst->n_devices)
        return rt_ctx_fail(ctx, RT_ERR_NO_DEVICE, "device %d does not exist (%d device%s, see `vkllm devices`)",
                           index, inst->n_devices, inst->n_devices == 1 ? "" : "s");
    ctx->info = inst->info[index];
    ctx->phys = inst->phys[index];
    if (!ctx->info.usable)
        return rt_ctx_fail(ctx, RT_ERR_UNSUPPORTED,
                           "device %d (%s) lacks what vkllm needs: Vulkan 1.2, a compute queue, 128 bytes of push constants",
                           index, ctx->info.name);
    ctx->profiling = desc && desc->profiling;
    vkGetPhysicalDeviceMemoryProperties(ctx->phys, &ctx->memprops);
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(ctx->phys, &p);
    ctx->storage_align = p.limits.minStorageBufferOffsetAlignment;
    if (ctx->storage_align < 16)
        ctx->storage_align = 16;
    /* Device-local memory that is also host-visible and coherent in a heap that is not a small BAR
     * window: buffers are then written directly instead of through staging copies. */
    for (uint32_t i = 0; i < ctx->memprops.memoryTypeCount; i++) {
        VkMemoryPropertyFlags fl = ctx->memprops.memoryTypes[i].propertyFlags;
        VkDeviceSize heap = ctx->memprops.memoryHeaps[ctx->memprops.memoryTypes[i].heapIndex].size;
        if ((fl & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) && (fl & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) &&
            (fl & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) && heap > (VkDeviceSize)1 << 30 &&
            ctx->info.type != RT_DEVICE_DISCRETE)
            ctx->device_mappable = true;
    }

    int rc = create_device(ctx);
    if (rc)
        return rc;
    if ((rc = rt_ctx_fault(ctx, getenv("VKLLM_FAULT")))) {
        char msg[RT_ERRLEN];
        snprintf(msg, sizeof msg, "%s", ctx->err);
        return rt_ctx_fail(ctx, rc, "VKLLM_FAULT: %s", msg);
    }
    return rt_pipeline_cache_open(ctx, desc ? desc->pipeline_cache : NULL);
}

void rt_ctx_destroy(rt_ctx *ctx)
{
    if (!ctx)
        return;
    /* a programming error: buffers and sequences still alive would use a freed device; refuse (and
     * leak) instead */
    uint64_t staging = ctx->staging ? ctx->staging->alloc : 0;
    assert(ctx->used == staging && ctx->n_seqs == 0 && "destroy the context's buffers and sequences first");
    if (ctx->used != staging || ctx->n_seqs)
        return;
    if (ctx->device) {
        vkDeviceWaitIdle(ctx->device);
        rt_ctx_save_pipeline_cache(ctx);
        rt_pipelines_destroy(ctx);
        rt_memory_destroy(ctx);
        if (ctx->fence)
            vkDestroyFence(ctx->device, ctx->fence, NULL);
        if (ctx->pool)
            vkDestroyCommandPool(ctx->device, ctx->pool, NULL);
        vkDestroyDevice(ctx->device, NULL);
    }
    free(ctx->pipelines);
    free(ctx);
}

const char *rt_ctx_errmsg(const rt_ctx *ctx)
{
    return ctx ? ctx->err : "out of host memory";
}

const rt_device_info *rt_ctx_device(const rt_ctx *ctx)
{
    return &ctx->info;
}

int rt_ctx_begin_oneoff(rt_ctx *ctx, VkCommandBuffer *cb)
{
    VkCommandBufferAllocateInfo ai = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                       .commandPool = ctx->pool, .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                       .commandBufferCount = 1 };
    VkResult r = vkAllocateCommandBuffers(ctx->device, &ai, cb);
    if (r != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkAllocateCommandBuffers");
    VkCommandBufferBeginInfo bi = { .sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                    .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT };
    if ((r = vkBeginCommandBuffer(*cb, &bi)) != VK_SUCCESS) {
        vkFreeCommandBuffers(ctx->device, ctx->pool, 1, cb);
        return rt_ctx_vk_fail(ctx, r, "vkBeginCommandBuffer");
    }
    return RT_OK;
}

int rt_ctx_end_oneoff(rt_ctx *ctx, VkCommandBuffer cb)
{
    VkResult r = vkEndCommandBuffer(cb);
    if (r == VK_SUCCESS) {
        r = rt_ctx_submit(ctx, cb, ctx->fence);
        if (r == VK_SUCCESS) {
            r = vkWaitForFences(ctx->device, 1, &ctx->fence, VK_TRUE, UINT64_MAX);
            if (r != VK_SUCCESS) /* still pending, perhaps: leak it rather than free it (the device is lost) */
                return rt_ctx_vk_fail(ctx, r, "waiting for a one-off copy");
            r = vkResetFences(ctx->device, 1, &ctx->fence);
        }
    }
    vkFreeCommandBuffers(ctx->device, ctx->pool, 1, &cb);
    return r == VK_SUCCESS ? RT_OK : rt_ctx_vk_fail(ctx, r, "one-off copy submission");
}

/* ---------------------------------------------------------------- pipeline cache */

/* The file: our header, then the driver's bytes.
 *   0  char[8]  "VKLLMPC1"
 *   8  u32      vendorID, deviceID, driverVersion (VkPhysicalDeviceProperties)
 *  20  u8[16]   pipelineCacheUUID
 *  36  u32      0 (padding)
 *  40  u64      size of the driver's data
 *  48  u64      FNV-1a 64 of the driver's data
 *  56           the data
 * A file whose header does not match this device and driver, or whose size or hash is off (torn,
 * truncated, another program's), is ignored: the driver never sees it. It is written to a fresh
 * temporary name beside it (mkstemp: never a file or link already there), flushed, and renamed into
 * place, so two processes saving at once each leave a whole file, and a crash leaves the old one. */
#define PCACHE_MAGIC "VKLLMPC1"
#define PCACHE_HEADER 56
#define PCACHE_MAX (256u << 20)

static uint64_t fnv1a(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void pcache_header(const rt_ctx *ctx, const VkPhysicalDeviceProperties *pp, uint64_t size, uint64_t hash,
                          unsigned char h[PCACHE_HEADER])
{
    (void)ctx;
    memset(h, 0, PCACHE_HEADER);
    memcpy(h, PCACHE_MAGIC, 8);
    memcpy(h + 8, &pp->vendorID, 4);
    memcpy(h + 12, &pp->deviceID, 4);
    memcpy(h + 16, &pp->driverVersion, 4);
    memcpy(h + 20, pp->pipelineCacheUUID, 16);
    memcpy(h + 40, &size, 8);
    memcpy(h + 48, &hash, 8);
}

/* The default cache file: under $XDG_CACHE_HOME/vkllm when that is an absolute path (a relative one is
 * ignored, as the XDG base directory spec says), else under $HOME/.cache/vkllm; "" when neither is set.
 * A path that would not fit is refused, never cut short. */
static int default_cache_path(rt_ctx *ctx, const VkPhysicalDeviceProperties *pp, char *buf, size_t n)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    const char *var = "XDG_CACHE_HOME", *base = xdg, *sub = "/vkllm";
    buf[0] = 0;
    if (!xdg || xdg[0] != '/') {
        if (!home || !*home)
            return RT_OK;
        var = "HOME", base = home, sub = "/.cache/vkllm";
    }
    char uuid[33];
    for (int i = 0; i < 16; i++)
        snprintf(uuid + 2 * i, 3, "%02x", pp->pipelineCacheUUID[i]);
    int k = snprintf(buf, n, "%s%s/pipelines-%04x-%04x-%s.bin", base, sub, ctx->info.vendor_id, ctx->info.device_id,
                     uuid);
    if (k < 0 || (size_t)k >= n) {
        buf[0] = 0;
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "%s is %zu bytes long: the pipeline cache's path under it would not fit "
                           "in %zu bytes", var, strlen(base), n - 1);
    }
    return RT_OK;
}

static void make_parent_dirs(const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(tmp, 0755); /* EEXIST is fine; a real failure shows when the file is written */
            *p = '/';
        }
}

/* The driver's bytes of the cache file at path, if its header, size and hash are right; else NULL. */
static void *pcache_read(const rt_ctx *ctx, const VkPhysicalDeviceProperties *pp, const char *path, size_t *size)
{
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    unsigned char h[PCACHE_HEADER], want[PCACHE_HEADER];
    void *data = NULL;
    uint64_t n = 0, hash = 0;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < PCACHE_HEADER || st.st_size > PCACHE_MAX ||
        read(fd, h, PCACHE_HEADER) != PCACHE_HEADER)
        goto out;
    memcpy(&n, h + 40, 8);
    memcpy(&hash, h + 48, 8);
    pcache_header(ctx, pp, n, hash, want);
    if (memcmp(h, want, PCACHE_HEADER) || n != (uint64_t)st.st_size - PCACHE_HEADER || !(data = malloc(n ? n : 1)))
        goto out;
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, (char *)data + got, n - got);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (got != n || fnv1a(data, n) != hash) {
        free(data);
        data = NULL;
        goto out;
    }
    *size = n;
out:
    close(fd);
    return data;
}

int rt_pipeline_cache_open(rt_ctx *ctx, const char *path)
{
    VkPhysicalDeviceProperties pp;
    vkGetPhysicalDeviceProperties(ctx->phys, &pp);
    if (path && strlen(path) >= sizeof ctx->pcache_path)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "the pipeline cache's path is %zu bytes long: at most %zu are supported",
                           strlen(path), sizeof ctx->pcache_path - 1);
    if (path)
        snprintf(ctx->pcache_path, sizeof ctx->pcache_path, "%s", path);
    else if (default_cache_path(ctx, &pp, ctx->pcache_path, sizeof ctx->pcache_path))
        return RT_ERR_INVALID;
    size_t size = 0;
    void *data = ctx->pcache_path[0] ? pcache_read(ctx, &pp, ctx->pcache_path, &size) : NULL;
    VkPipelineCacheCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
                                     .initialDataSize = size, .pInitialData = size ? data : NULL };
    VkResult r = vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->pcache);
    if (r != VK_SUCCESS && size) {
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        size = 0;
        r = vkCreatePipelineCache(ctx->device, &ci, NULL, &ctx->pcache);
    }
    free(data);
    if (r != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkCreatePipelineCache");
    ctx->pcache_loaded = (int64_t)size;
    return RT_OK;
}

static bool write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        b += k;
        n -= (size_t)k;
    }
    return true;
}

int rt_ctx_save_pipeline_cache(rt_ctx *ctx)
{
    if (!ctx->pcache || !ctx->pcache_path[0] || ctx->n_pipelines == 0)
        return RT_OK;
    size_t size = 0;
    VkResult r = vkGetPipelineCacheData(ctx->device, ctx->pcache, &size, NULL);
    if (r != VK_SUCCESS || size == 0 || size > PCACHE_MAX)
        return RT_OK;
    void *data = malloc(size);
    if (!data)
        return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory saving the pipeline cache");
    int rc = RT_OK;
    if (vkGetPipelineCacheData(ctx->device, ctx->pcache, &size, data) == VK_SUCCESS) {
        VkPhysicalDeviceProperties pp;
        vkGetPhysicalDeviceProperties(ctx->phys, &pp);
        unsigned char h[PCACHE_HEADER];
        pcache_header(ctx, &pp, size, fnv1a(data, size), h);
        make_parent_dirs(ctx->pcache_path);
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.XXXXXX", ctx->pcache_path);
        int fd = mkostemp(tmp, O_CLOEXEC);
        bool ok = fd >= 0 && write_all(fd, h, PCACHE_HEADER) && write_all(fd, data, size) && fsync(fd) == 0;
        int e = errno;
        if (fd >= 0 && close(fd) != 0 && ok) {
            ok = false;
            e = errno;
        }
        if (ok && rename(tmp, ctx->pcache_path) != 0) {
            ok = false;
            e = errno;
        }
        if (!ok) {
            if (fd >= 0)
                unlink(tmp);
            rc = rt_ctx_fail(ctx, RT_ERR_IO, "cannot write the pipeline cache %s: %s", ctx->pcache_path, strerror(e));
        }
    }
    free(data);
    return rc;
}

void rt_ctx_pipeline_stats(const rt_ctx *ctx, int *created, int64_t *cache_bytes_loaded)
{
    if (created)
        *created = ctx->n_pipelines;
    if (cache_bytes_loaded)
        *cache_bytes_loaded = ctx->pcache_loaded;
}

/* ---------------------------------------------------------------- pipelines */

int rt_pipeline_get(rt_ctx *ctx, enum rt_shader_id shader, const uint32_t *spec, int n_spec, int n_bindings,
                    uint32_t push_size, rt_pipeline **out)
{
    return rt_pipeline_get_ex(ctx, shader, spec, n_spec, n_bindings, push_size, false, out);
}

int rt_pipeline_get_ex(rt_ctx *ctx, enum rt_shader_id shader, const uint32_t *spec, int n_spec, int n_bindings,
                       uint32_t push_size, bool full_subgroups, rt_pipeline **out)
{
    if (n_spec > RT_MAX_SPEC || n_bindings > RT_MAX_BINDINGS || push_size > ctx->info.max_push_constants)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "pipeline %s: too many constants or bindings",
                           rt_shader_table[shader].name);
    /* without a required subgroup size the driver may pick any size up to the largest: the workgroup
     * must be a whole number of the largest (VUID-VkPipelineShaderStageCreateInfo-flags-02759) */
    if (full_subgroups && !ctx->info.en_subgroup_size_control)
        return rt_ctx_fail(ctx, RT_ERR_UNSUPPORTED, "pipeline %s: the device has no subgroup size control",
                           rt_shader_table[shader].name);
    if (full_subgroups && (n_spec < 1 || !ctx->info.subgroup_max_size || spec[0] % ctx->info.subgroup_max_size))
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "pipeline %s: full subgroups need a workgroup of a multiple of %u",
                           rt_shader_table[shader].name, ctx->info.subgroup_max_size);
    for (int i = 0; i < ctx->n_pipelines; i++) {
        rt_pipeline *p = &ctx->pipelines[i];
        if (p->shader == shader && p->n_spec == n_spec && p->n_bindings == n_bindings && p->push_size == push_size &&
            p->full_subgroups == full_subgroups && !memcmp(p->spec, spec, sizeof(uint32_t) * (size_t)n_spec)) {
            *out = p;
            return RT_OK;
        }
    }
    /* recorded sequences keep pointers to pipelines, so the table never moves: it is allocated once */
    if (!ctx->pipelines) {
        ctx->pipelines = calloc(RT_MAX_PIPELINES, sizeof *ctx->pipelines);
        if (!ctx->pipelines)
            return rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    if (ctx->n_pipelines == RT_MAX_PIPELINES)
        return rt_ctx_fail(ctx, RT_ERR_LIMIT, "more than %d pipelines", RT_MAX_PIPELINES);
    rt_pipeline *p = &ctx->pipelines[ctx->n_pipelines];
    memset(p, 0, sizeof *p);
    p->shader = shader;
    p->n_spec = n_spec;
    memcpy(p->spec, spec, sizeof(uint32_t) * (size_t)n_spec);
    p->n_bindings = n_bindings;
    p->push_size = push_size;
    p->full_subgroups = full_subgroups;

    VkDescriptorSetLayoutBinding b[RT_MAX_BINDINGS];
    for (int i = 0; i < n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){ .binding = (uint32_t)i,
                                               .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                               .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    VkDescriptorSetLayoutCreateInfo dci = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                            .bindingCount = (uint32_t)n_bindings, .pBindings = b };
    VkResult r = vkCreateDescriptorSetLayout(ctx->device, &dci, NULL, &p->dsl);
    if (r != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = push_size };
    VkPipelineLayoutCreateInfo lci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                       .setLayoutCount = 1, .pSetLayouts = &p->dsl,
                                       .pushConstantRangeCount = push_size ? 1 : 0, .pPushConstantRanges = &pr };
    if ((r = vkCreatePipelineLayout(ctx->device, &lci, NULL, &p->layout)) != VK_SUCCESS)
        goto out_destroy_dsl;

    const struct rt_shader_code *code = &rt_shader_table[shader];
    p->readonly = rt_spirv_readonly_bindings(code->code, *code->size / 4);
    VkShaderModuleCreateInfo sci = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = *code->size, .pCode = code->code };
    VkShaderModule module;
    if ((r = vkCreateShaderModule(ctx->device, &sci, NULL, &module)) != VK_SUCCESS)
        goto out_destroy_layout;
    VkSpecializationMapEntry me[RT_MAX_SPEC];
    for (int i = 0; i < n_spec; i++)
        me[i] = (VkSpecializationMapEntry){ .constantID = (uint32_t)i, .offset = (uint32_t)(4 * i), .size = 4 };
    VkSpecializationInfo si = { .mapEntryCount = (uint32_t)n_spec, .pMapEntries = me,
                                .dataSize = 4 * (size_t)n_spec, .pData = p->spec };
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                   .flags = full_subgroups ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT : 0,
                   .module = module, .pName = "main", .pSpecializationInfo = n_spec ? &si : NULL },
        .layout = p->layout,
    };
    r = vkCreateComputePipelines(ctx->device, ctx->pcache, 1, &pci, NULL, &p->pipeline);
    vkDestroyShaderModule(ctx->device, module, NULL);
    if (r != VK_SUCCESS)
        goto out_destroy_layout;
    ctx->n_pipelines++;
    *out = p;
    return RT_OK;

out_destroy_layout:
    vkDestroyPipelineLayout(ctx->device, p->layout, NULL);
out_destroy_dsl:
    vkDestroyDescriptorSetLayout(ctx->device, p->dsl, NULL);
    return rt_ctx_vk_fail(ctx, r, rt_shader_table[shader].name);
}

void rt_pipelines_destroy(rt_ctx *ctx)
{
    for (int i = 0; i < ctx->n_pipelines; i++) {
        rt_pipeline *p = &ctx->pipelines[i];
        vkDestroyPipeline(ctx->device, p->pipeline, NULL);
        vkDestroyPipelineLayout(ctx->device, p->layout, NULL);
        vkDestroyDescriptorSetLayout(ctx->device, p->dsl, NULL);
    }
    ctx->n_pipelines = 0;
    if (ctx->pcache)
        vkDestroyPipelineCache(ctx->device, ctx->pcache, NULL);
    ctx->pcache = VK_NULL_HANDLE;
}
