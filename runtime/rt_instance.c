/* rt_instance.c: the Vulkan instance, validation messages, and what each physical device offers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

const char *rt_status_string(int status)
{
    switch (status) {
    case RT_OK: return "ok";
    case RT_ERR_VULKAN: return "Vulkan error";
    case RT_ERR_NO_DEVICE: return "no such device";
    case RT_ERR_UNSUPPORTED: return "unsupported by the device";
    case RT_ERR_OUT_OF_MEMORY: return "out of memory";
    case RT_ERR_INVALID: return "invalid argument";
    case RT_ERR_LIMIT: return "exceeds a device limit";
    case RT_ERR_IO: return "I/O error";
    }
    return "unknown status";
}

int rt_set_err(char *buf, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, RT_ERRLEN, fmt, ap);
    va_end(ap);
    return status;
}

const char *rt_vk_result_string(VkResult r)
{
    switch (r) {
#define C(x) case x: return #x;
    C(VK_SUCCESS) C(VK_NOT_READY) C(VK_TIMEOUT) C(VK_INCOMPLETE) C(VK_ERROR_OUT_OF_HOST_MEMORY)
    C(VK_ERROR_OUT_OF_DEVICE_MEMORY) C(VK_ERROR_INITIALIZATION_FAILED) C(VK_ERROR_DEVICE_LOST)
    C(VK_ERROR_MEMORY_MAP_FAILED) C(VK_ERROR_LAYER_NOT_PRESENT) C(VK_ERROR_EXTENSION_NOT_PRESENT)
    C(VK_ERROR_FEATURE_NOT_PRESENT) C(VK_ERROR_INCOMPATIBLE_DRIVER) C(VK_ERROR_TOO_MANY_OBJECTS)
    C(VK_ERROR_FORMAT_NOT_SUPPORTED) C(VK_ERROR_FRAGMENTED_POOL) C(VK_ERROR_OUT_OF_POOL_MEMORY)
    C(VK_ERROR_INVALID_SHADER_NV) C(VK_ERROR_UNKNOWN)
#undef C
    default: return "VkResult (unnamed)";
    }
}

int rt_vk_status(VkResult r)
{
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
        return RT_ERR_OUT_OF_MEMORY;
    return r == VK_SUCCESS ? RT_OK : RT_ERR_VULKAN;
}

static VKAPI_ATTR VkBool32 VKAPI_CALL on_debug(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                               VkDebugUtilsMessageTypeFlagsEXT types,
                                               const VkDebugUtilsMessengerCallbackDataEXT *data, void *user)
{
    (void)types;
    rt_instance *inst = user;
    if (!(severity & (VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT)))
        return VK_FALSE;
    inst->n_messages++;
    if (inst->on_message)
        inst->on_message(inst->user, data && data->pMessage ? data->pMessage : "(no message)");
    return VK_FALSE;
}

static const char *vendor_name(uint32_t id)
{
    switch (id) {
    case 0x10DE: return "NVIDIA";
    case 0x1002: return "AMD";
    case 0x8086: return "Intel";
    case 0x13B5: return "ARM";
    case 0x5143: return "Qualcomm";
    case 0x1010: return "ImgTec";
    case 0x106B: return "Apple";
    case 0x10005: return "Mesa";
    }
    return "unknown";
}

static bool has_extension(const VkExtensionProperties *ext, uint32_t n, const char *name)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(ext[i].extensionName, name))
            return true;
    return false;
}

/* Fills what vkllm reports and decides for one physical device. */
static void describe_device(VkPhysicalDevice pd, int index, rt_device_info *d)
{
    memset(d, 0, sizeof *d);
    d->index = index;

    VkPhysicalDeviceDriverProperties drv = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES };
    VkPhysicalDeviceSubgroupProperties sub = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                               .pNext = &drv };
    VkPhysicalDeviceProperties2 props = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub };
    vkGetPhysicalDeviceProperties2(pd, &props);
    const VkPhysicalDeviceProperties *p = &props.properties;

    snprintf(d->name, sizeof d->name, "%s", p->deviceName);
    d->vendor_id = p->vendorID;
    d->device_id = p->deviceID;
    d->vendor = vendor_name(p->vendorID);
    switch (p->deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: d->type = RT_DEVICE_DISCRETE; d->type_name = "discrete"; break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: d->type = RT_DEVICE_INTEGRATED; d->type_name = "integrated"; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: d->type = RT_DEVICE_VIRTUAL; d->type_name = "virtual"; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: d->type = RT_DEVICE_CPU; d->type_name = "cpu"; break;
    default: d->type = RT_DEVICE_OTHER; d->type_name = "other"; break;
    }
    d->api_version = p->apiVersion;
    d->driver_version = p->driverVersion;
    if (p->apiVersion >= VK_API_VERSION_1_2) {
        snprintf(d->driver_name, sizeof d->driver_name, "%s", drv.driverName);
        snprintf(d->driver_info, sizeof d->driver_info, "%s", drv.driverInfo);
    }

    VkPhysicalDeviceMemoryProperties mp;
    vkGetPhysicalDeviceMemoryProperties(pd, &mp);
    d->n_heaps = (int)(mp.memoryHeapCount < RT_MAX_HEAPS ? mp.memoryHeapCount : RT_MAX_HEAPS);
    for (int i = 0; i < d->n_heaps; i++) {
        d->heaps[i].size = mp.memoryHeaps[i].size;
        d->heaps[i].device_local = (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0;
    }

    d->subgroup_size = sub.subgroupSize;
    d->subgroup_arithmetic = (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                             (sub.supportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);

    uint32_t n_ext = 0;
    VkExtensionProperties *ext = NULL;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, NULL) == VK_SUCCESS &&
        (ext = calloc(n_ext ? n_ext : 1, sizeof *ext)) != NULL &&
        vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, ext) != VK_SUCCESS)
        n_ext = 0;

    /* The instance is Vulkan 1.2, so 1.3 feature structs may not be chained: integer dot product is
     * asked through its extension's struct (present on 1.3 drivers as well). */
    bool has_int_dot = ext && has_extension(ext, n_ext, "VK_KHR_shader_integer_dot_product");
    VkPhysicalDeviceShaderIntegerDotProductFeaturesKHR fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES_KHR };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                             .pNext = has_int_dot ? &fdot : NULL };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                             .pNext = &f12 };
    VkPhysicalDeviceFeatures2 f = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &f11 };
    if (p->apiVersion >= VK_API_VERSION_1_2)
        vkGetPhysicalDeviceFeatures2(pd, &f);
    d->fp16 = f12.shaderFloat16;
    d->storage16 = f11.storageBuffer16BitAccess;
    d->storage8 = f12.storageBuffer8BitAccess;
    d->int_dot = has_int_dot && fdot.shaderIntegerDotProduct;
    d->coopmat = ext && has_extension(ext, n_ext, "VK_KHR_cooperative_matrix");
    free(ext);

    /* What the kernels use today: subgroup reductions where the device has them (VKLLM_NO_SUBGROUP=1
     * turns them off, for tests of the shared-memory path and for drivers that get them wrong). Weights in
     * f16/bf16 are read as packed 32-bit words and unpacked in the shader, which needs no 16-bit storage
     * feature and so runs everywhere; the other features are reported for the benchmarks and future
     * kernels. */
    const char *no_sg = getenv("VKLLM_NO_SUBGROUP");
    bool no_subgroup = no_sg && *no_sg && strcmp(no_sg, "0");
    d->use_subgroup_arithmetic = d->subgroup_arithmetic && d->subgroup_size >= 4 && !no_subgroup;

    d->max_storage_buffer_range = p->limits.maxStorageBufferRange;
    VkPhysicalDeviceMaintenance3Properties m3 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES };
    VkPhysicalDeviceProperties2 props2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &m3 };
    vkGetPhysicalDeviceProperties2(pd, &props2);
    d->max_allocation_size = m3.maxMemoryAllocationSize;
    d->max_shared_memory = p->limits.maxComputeSharedMemorySize;
    d->max_workgroup_invocations = p->limits.maxComputeWorkGroupInvocations;
    for (int i = 0; i < 3; i++)
        d->max_workgroup_count[i] = p->limits.maxComputeWorkGroupCount[i];
    d->max_push_constants = p->limits.maxPushConstantsSize;

    uint32_t n_q = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_q, NULL);
    VkQueueFamilyProperties *q = calloc(n_q ? n_q : 1, sizeof *q);
    bool compute = false;
    if (q) {
        vkGetPhysicalDeviceQueueFamilyProperties(pd, &n_q, q);
        for (uint32_t i = 0; i < n_q; i++)
            if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) {
                compute = true;
                if (q[i].timestampValidBits)
                    d->timestamp_period_ns = p->limits.timestampPeriod;
                break;
            }
        free(q);
    }
    d->usable = compute && p->apiVersion >= VK_API_VERSION_1_2 && d->max_push_constants >= 128;
}

static bool layer_available(const char *name)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *l = calloc(n, sizeof *l);
    bool found = false;
    if (l && vkEnumerateInstanceLayerProperties(&n, l) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(l[i].layerName, name))
                found = true;
    free(l);
    return found;
}

int rt_instance_create(const rt_instance_desc *desc, rt_instance **out)
{
    static const char *validation_layer = "VK_LAYER_KHRONOS_validation";
    *out = NULL;
    rt_instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        return RT_ERR_OUT_OF_MEMORY;
    *out = inst;
    if (desc) {
        inst->validation = desc->validation;
        inst->on_message = desc->on_message;
        inst->user = desc->user;
    }

    uint32_t loader_version = 0;
    if (vkEnumerateInstanceVersion(&loader_version) != VK_SUCCESS || loader_version < VK_API_VERSION_1_2)
        return rt_set_err(inst->err, RT_ERR_UNSUPPORTED,
                          "the Vulkan loader supports only version %u.%u; vkllm needs 1.2",
                          VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));
    if (inst->validation && !layer_available(validation_layer))
        return rt_set_err(inst->err, RT_ERR_UNSUPPORTED,
                          "the validation layer %s is not installed (Debian: vulkan-validationlayers)",
                          validation_layer);

    const char *exts[3];
    uint32_t n_exts = 0;
    if (inst->validation)
        exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;

    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "vkllm",
                              .applicationVersion = 1, .pEngineName = "vkllm", .engineVersion = 1,
                              .apiVersion = VK_API_VERSION_1_2 };
    VkDebugUtilsMessengerCreateInfoEXT dbg = {
        .sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT,
        .messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT,
        .messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT,
        .pfnUserCallback = on_debug,
        .pUserData = inst,
    };
    /* with validation, synchronization validation too: a missing barrier between two dispatches is a
     * message (lavapipe runs dispatches in order, so without it a missing barrier passes every test).
     * VKLLM_NO_SYNC_VALIDATION=1 leaves it off. */
    VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
    VkValidationFeaturesEXT vf = { .sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT, .pNext = &dbg,
                                   .enabledValidationFeatureCount = 1, .pEnabledValidationFeatures = &sync };
    const void *chain = inst->validation ? (const void *)&dbg : NULL;
    const char *nsv = getenv("VKLLM_NO_SYNC_VALIDATION");
    if (inst->validation && !(nsv && *nsv && strcmp(nsv, "0"))) {
        exts[n_exts++] = VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME;
        chain = &vf;
    }
    VkInstanceCreateInfo ci = { .sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app,
                                .enabledExtensionCount = n_exts, .ppEnabledExtensionNames = exts,
                                .enabledLayerCount = inst->validation ? 1 : 0,
                                .ppEnabledLayerNames = &validation_layer,
                                .pNext = chain };
    VkResult r = vkCreateInstance(&ci, NULL, &inst->instance);
    if (r != VK_SUCCESS)
        return rt_set_err(inst->err, r == VK_ERROR_INCOMPATIBLE_DRIVER ? RT_ERR_NO_DEVICE : rt_vk_status(r),
                          "vkCreateInstance: %s (is a Vulkan driver installed? Debian: mesa-vulkan-drivers)",
                          rt_vk_result_string(r));
    if (inst->validation) {
        PFN_vkCreateDebugUtilsMessengerEXT create =
            (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst->instance, "vkCreateDebugUtilsMessengerEXT");
        if (!create || (r = create(inst->instance, &dbg, NULL, &inst->messenger)) != VK_SUCCESS)
            return rt_set_err(inst->err, RT_ERR_VULKAN, "vkCreateDebugUtilsMessengerEXT failed");
    }

    uint32_t n = 0;
    r = vkEnumeratePhysicalDevices(inst->instance, &n, NULL);
    if (r != VK_SUCCESS)
        return rt_set_err(inst->err, rt_vk_status(r), "vkEnumeratePhysicalDevices: %s", rt_vk_result_string(r));
    if (n) {
        inst->phys = calloc(n, sizeof *inst->phys);
        inst->info = calloc(n, sizeof *inst->info);
        if (!inst->phys || !inst->info)
            return rt_set_err(inst->err, RT_ERR_OUT_OF_MEMORY, "out of host memory");
        r = vkEnumeratePhysicalDevices(inst->instance, &n, inst->phys);
        if (r != VK_SUCCESS && r != VK_INCOMPLETE)
            return rt_set_err(inst->err, rt_vk_status(r), "vkEnumeratePhysicalDevices: %s", rt_vk_result_string(r));
    }
    inst->n_devices = (int)n;
    for (int i = 0; i < inst->n_devices; i++)
        describe_device(inst->phys[i], i, &inst->info[i]);
    return RT_OK;
}

void rt_instance_destroy(rt_instance *inst)
{
    if (!inst)
        return;
    if (inst->messenger) {
        PFN_vkDestroyDebugUtilsMessengerEXT destroy =
            (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(inst->instance, "vkDestroyDebugUtilsMessengerEXT");
        if (destroy)
            destroy(inst->instance, inst->messenger, NULL);
    }
    if (inst->instance)
        vkDestroyInstance(inst->instance, NULL);
    free(inst->phys);
    free(inst->info);
    free(inst);
}

const char *rt_instance_errmsg(const rt_instance *inst)
{
    return inst ? inst->err : "out of host memory";
}

int rt_instance_device_count(const rt_instance *inst)
{
    return inst ? inst->n_devices : 0;
}

int rt_instance_device_info(const rt_instance *inst, int i, rt_device_info *out)
{
    if (!inst || i < 0 || i >= inst->n_devices)
        return RT_ERR_NO_DEVICE;
    *out = inst->info[i];
    return RT_OK;
}

int rt_instance_default_device(rt_instance *inst)
{
    const char *env = getenv("VKLLM_DEVICE");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end || v < 0 || v >= inst->n_devices) {
            rt_set_err(inst->err, RT_ERR_NO_DEVICE, "VKLLM_DEVICE=%s is not a device index (0..%d)", env,
                       inst->n_devices - 1);
            return -1;
        }
        return (int)v;
    }
    static const enum rt_device_type order[] = { RT_DEVICE_DISCRETE, RT_DEVICE_INTEGRATED, RT_DEVICE_VIRTUAL,
                                                 RT_DEVICE_CPU, RT_DEVICE_OTHER };
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (int i = 0; i < inst->n_devices; i++)
            if (inst->info[i].type == order[k] && inst->info[i].usable)
                return i;
    rt_set_err(inst->err, RT_ERR_NO_DEVICE,
               inst->n_devices ? "no device supports Vulkan 1.2 compute" : "no Vulkan device found");
    return -1;
}

uint32_t rt_instance_validation_count(const rt_instance *inst)
{
    return inst ? inst->n_messages : 0;
}
