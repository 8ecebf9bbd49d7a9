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
    case RT_ERR_DEVICE_LOST: return "device lost";
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
    if (r == VK_ERROR_DEVICE_LOST)
        return RT_ERR_DEVICE_LOST;
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

/* VK_KHR_cooperative_matrix, for Vulkan headers older than 1.3.255 (Debian 12 has 1.3.239): the values
 * and layouts of the registry's. */
#ifndef VK_KHR_cooperative_matrix
#define VK_KHR_cooperative_matrix 1
typedef enum VkComponentTypeKHR {
    VK_COMPONENT_TYPE_FLOAT16_KHR = 0, VK_COMPONENT_TYPE_FLOAT32_KHR = 1, VK_COMPONENT_TYPE_MAX_ENUM_KHR = 0x7FFFFFFF
} VkComponentTypeKHR;
typedef enum VkScopeKHR { VK_SCOPE_SUBGROUP_KHR = 3, VK_SCOPE_MAX_ENUM_KHR = 0x7FFFFFFF } VkScopeKHR;
#define VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR ((VkStructureType)1000506000)
#define VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR ((VkStructureType)1000506001)
typedef struct VkPhysicalDeviceCooperativeMatrixFeaturesKHR {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
} VkPhysicalDeviceCooperativeMatrixFeaturesKHR;
typedef struct VkCooperativeMatrixPropertiesKHR {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    VkComponentTypeKHR AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    VkScopeKHR scope;
} VkCooperativeMatrixPropertiesKHR;
typedef VkResult(VKAPI_PTR *PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)(VkPhysicalDevice, uint32_t *,
                                                                                    VkCooperativeMatrixPropertiesKHR *);
#endif

/* The f16 x f16 cooperative-matrix shapes of a device with VK_KHR_cooperative_matrix into d (those that
 * accumulate in f32 first); false when the query fails. */
static bool coopmat_shapes(VkInstance instance, VkPhysicalDevice pd, rt_device_info *d)
{
    PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR get =
        (PFN_vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)vkGetInstanceProcAddr(
            instance, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR");
    uint32_t n = 0;
    if (!get || get(pd, &n, NULL) != VK_SUCCESS)
        return false;
    VkCooperativeMatrixPropertiesKHR *cm = calloc(n ? n : 1, sizeof *cm);
    if (!cm)
        return false;
    for (uint32_t i = 0; i < n; i++)
        cm[i].sType = VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_KHR;
    VkResult r = get(pd, &n, cm);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        free(cm);
        return false;
    }
    const int cap = (int)(sizeof d->coopmat_f16 / sizeof d->coopmat_f16[0]);
    for (int pass = 0; pass < 2; pass++) { /* the f32 accumulators first, then the f16 ones */
        VkComponentTypeKHR acc = pass == 0 ? VK_COMPONENT_TYPE_FLOAT32_KHR : VK_COMPONENT_TYPE_FLOAT16_KHR;
        for (uint32_t i = 0; i < n && d->n_coopmat_f16 < cap; i++)
            if (cm[i].AType == VK_COMPONENT_TYPE_FLOAT16_KHR && cm[i].BType == VK_COMPONENT_TYPE_FLOAT16_KHR &&
                cm[i].CType == acc && cm[i].ResultType == acc && !cm[i].saturatingAccumulation &&
                cm[i].scope == VK_SCOPE_SUBGROUP_KHR) {
                d->coopmat_f16[d->n_coopmat_f16].m = cm[i].MSize;
                d->coopmat_f16[d->n_coopmat_f16].n = cm[i].NSize;
                d->coopmat_f16[d->n_coopmat_f16].k = cm[i].KSize;
                d->coopmat_f16[d->n_coopmat_f16].acc_f32 = pass == 0;
                d->n_coopmat_f16++;
            }
    }
    free(cm);
    return true;
}

/* Fills what vkllm reports and decides for one physical device; inst_api is the instance's version.
 * coopmat_query: the cooperative-matrix feature struct may be chained (no validation layer older than
 * the extension is on, which would report the structure type as unknown). */
static void describe_device(VkInstance instance, VkPhysicalDevice pd, int index, uint32_t inst_api,
                            bool coopmat_query, rt_device_info *d)
{
    memset(d, 0, sizeof *d);
    d->index = index;

    VkPhysicalDeviceProperties base;
    vkGetPhysicalDeviceProperties(pd, &base);
    uint32_t dev_api = VK_MAKE_API_VERSION(0, VK_API_VERSION_MAJOR(base.apiVersion),
                                           VK_API_VERSION_MINOR(base.apiVersion), 0);
    d->api_used = dev_api < inst_api ? dev_api : inst_api;
    bool v12 = d->api_used >= VK_API_VERSION_1_2, v13 = d->api_used >= VK_API_VERSION_1_3;

    uint32_t n_ext = 0;
    VkExtensionProperties *ext = NULL;
    if (vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, NULL) != VK_SUCCESS ||
        !(ext = calloc(n_ext ? n_ext : 1, sizeof *ext)) ||
        vkEnumerateDeviceExtensionProperties(pd, NULL, &n_ext, ext) != VK_SUCCESS)
        n_ext = 0;
    /* below 1.3, integer dot product and subgroup size control come from their extensions (the same
     * structs); a feature struct of a version above the one the device runs at may not be chained */
    bool ext_dot = !v13 && ext && has_extension(ext, n_ext, VK_KHR_SHADER_INTEGER_DOT_PRODUCT_EXTENSION_NAME);
    bool ext_size = !v13 && ext && has_extension(ext, n_ext, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    bool ext_coopmat = ext && has_extension(ext, n_ext, "VK_KHR_cooperative_matrix");
    free(ext);

    VkPhysicalDeviceSubgroupSizeControlProperties sizep = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES };
    VkPhysicalDeviceMaintenance3Properties m3 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES,
                                                  .pNext = (v13 || ext_size) ? &sizep : NULL };
    VkPhysicalDeviceDriverProperties drv = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES,
                                             .pNext = &m3 };
    VkPhysicalDeviceSubgroupProperties sub = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES,
                                               .pNext = v12 ? (void *)&drv : (void *)&m3 };
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
    if (v12) {
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

    VkPhysicalDeviceSubgroupSizeControlFeatures fsize = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES };
    VkPhysicalDeviceShaderIntegerDotProductFeatures fdot = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_INTEGER_DOT_PRODUCT_FEATURES,
        .pNext = ext_size ? &fsize : NULL };
    VkPhysicalDeviceVulkan13Features f13 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES };
    VkPhysicalDeviceVulkan12Features f12 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                             .pNext = v13 ? (void *)&f13 : ext_dot ? (void *)&fdot
                                                                  : ext_size ? (void *)&fsize : NULL };
    VkPhysicalDeviceVulkan11Features f11 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES,
                                             .pNext = &f12 };
    coopmat_query = coopmat_query && ext_coopmat;
    VkPhysicalDeviceCooperativeMatrixFeaturesKHR fcm = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_KHR, .pNext = &f11 };
    VkPhysicalDeviceFeatures2 f = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                    .pNext = coopmat_query ? (void *)&fcm : (void *)&f11 };
    if (v12)
        vkGetPhysicalDeviceFeatures2(pd, &f);
    if (v13) {
        fdot.shaderIntegerDotProduct = f13.shaderIntegerDotProduct;
        fsize.subgroupSizeControl = f13.subgroupSizeControl;
        fsize.computeFullSubgroups = f13.computeFullSubgroups;
    }
    d->fp16 = f12.shaderFloat16;
    d->storage16 = f11.storageBuffer16BitAccess;
    d->storage8 = f12.storageBuffer8BitAccess;
    d->int_dot = (v13 || ext_dot) && fdot.shaderIntegerDotProduct;
    d->subgroup_size_control = (v13 || ext_size) && fsize.subgroupSizeControl && fsize.computeFullSubgroups &&
                               (sizep.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                               sizep.minSubgroupSize && sizep.minSubgroupSize <= sizep.maxSubgroupSize;
    d->subgroup_min_size = d->subgroup_size_control ? sizep.minSubgroupSize : d->subgroup_size;
    d->subgroup_max_size = d->subgroup_size_control ? sizep.maxSubgroupSize : d->subgroup_size;
    /* Under a validation layer too old to know the extension (Debian 12's), its feature is taken from
     * the extension's presence and a working shape query alone. */
    d->coopmat = v12 && ext_coopmat && (!coopmat_query || fcm.cooperativeMatrix) && coopmat_shapes(instance, pd, d);

    /* What a context enables: every feature above that the device has (users' kernels may use them),
     * except cooperative matrices (no kernel of ours has them yet). What the kernels use today:
     * subgroup reductions where the device has them (VKLLM_NO_SUBGROUP=1 turns them off, for tests of
     * the shared-memory path and for drivers that get them wrong). Weights in f16/bf16 are read as
     * packed 32-bit words and unpacked in the shader, which needs no 16-bit storage feature and so runs
     * everywhere; the other features are reported for the benchmarks and future kernels. */
    d->en_fp16 = d->fp16;
    d->en_storage16 = d->storage16;
    d->en_storage8 = d->storage8;
    d->en_int_dot = d->int_dot;
    d->en_subgroup_size_control = d->subgroup_size_control;
    d->en_coopmat = false;
    bool no_subgroup = rt_env_on("VKLLM_NO_SUBGROUP");
    d->use_subgroup_arithmetic = d->subgroup_arithmetic && d->subgroup_size >= 4 && !no_subgroup;
    /* the GPU matrix-vector kernel with subgroup reductions asks for full subgroups (rt_ops_matmul.c):
     * used where that kernel runs, on every device but a CPU one unless VKLLM_MATMUL says otherwise */
    const char *mm = rt_env_matmul();
    bool gpu_matmul = mm && !strcmp(mm, "gpu") ? true : mm && !strcmp(mm, "cpu") ? false : d->type != RT_DEVICE_CPU;
    d->use_subgroup_size_control = d->en_subgroup_size_control && d->use_subgroup_arithmetic && gpu_matmul;

    d->max_storage_buffer_range = p->limits.maxStorageBufferRange;
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

/* Whether the instance layer is installed, and its Vulkan header version (*spec). */
static bool layer_available(const char *name, uint32_t *spec)
{
    uint32_t n = 0;
    if (vkEnumerateInstanceLayerProperties(&n, NULL) != VK_SUCCESS || n == 0)
        return false;
    VkLayerProperties *l = calloc(n, sizeof *l);
    bool found = false;
    if (l && vkEnumerateInstanceLayerProperties(&n, l) == VK_SUCCESS)
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(l[i].layerName, name)) {
                found = true;
                *spec = l[i].specVersion;
            }
    free(l);
    return found;
}

static const struct {
    const char *name, *values[2];
} ENV_SWITCHES[] = {
    { "VKLLM_MATMUL", { "gpu", "cpu" } },         { "VKLLM_NO_SUBGROUP", { "0", "1" } },
    { "VKLLM_ATTN_TILED", { "0", "1" } },         { "VKLLM_STAGED_UPLOAD", { "0", "1" } },
    { "VKLLM_NO_SYNC_VALIDATION", { "0", "1" } },
};

bool rt_env_on(const char *name)
{
    const char *v = getenv(name);
    return v && !strcmp(v, "1");
}

const char *rt_env_matmul(void)
{
    const char *v = getenv("VKLLM_MATMUL");
    return v && (!strcmp(v, "gpu") || !strcmp(v, "cpu")) ? v : NULL;
}

int rt_env_check(char *err)
{
    for (size_t i = 0; i < sizeof ENV_SWITCHES / sizeof ENV_SWITCHES[0]; i++) {
        const char *v = getenv(ENV_SWITCHES[i].name);
        if (!v || !*v || !strcmp(v, ENV_SWITCHES[i].values[0]) || !strcmp(v, ENV_SWITCHES[i].values[1]))
            continue;
        char shown[64];
        size_t k = 0;
        const char *c = v;
        for (; *c && k + 5 < sizeof shown; c++)
            k += (unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f
                     ? (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02x", (unsigned char)*c)
                     : (size_t)snprintf(shown + k, sizeof shown - k, "%c", *c);
        return rt_set_err(err, RT_ERR_INVALID, "%s='%s'%s: must be %s or %s (or unset)", ENV_SWITCHES[i].name, shown,
                          *c ? "..." : "", ENV_SWITCHES[i].values[0], ENV_SWITCHES[i].values[1]);
    }
    return RT_OK;
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
    int env = rt_env_check(inst->err);
    if (env)
        return env;

    uint32_t loader_version = 0;
    if (vkEnumerateInstanceVersion(&loader_version) != VK_SUCCESS || loader_version < VK_API_VERSION_1_2)
        return rt_set_err(inst->err, RT_ERR_UNSUPPORTED,
                          "the Vulkan loader supports only version %u.%u; vkllm needs 1.2",
                          VK_API_VERSION_MAJOR(loader_version), VK_API_VERSION_MINOR(loader_version));
    /* 1.3 where the loader has it: a device then runs at the lower of 1.3 and its own version */
    inst->api_version = loader_version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;
    uint32_t layer_spec = 0;
    if (inst->validation && !layer_available(validation_layer, &layer_spec))
        return rt_set_err(inst->err, RT_ERR_UNSUPPORTED,
                          "the validation layer %s is not installed (Debian: vulkan-validationlayers)",
                          validation_layer);

    const char *exts[3];
    uint32_t n_exts = 0;
    if (inst->validation)
        exts[n_exts++] = VK_EXT_DEBUG_UTILS_EXTENSION_NAME;

    VkApplicationInfo app = { .sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "vkllm",
                              .applicationVersion = 1, .pEngineName = "vkllm", .engineVersion = 1,
                              .apiVersion = inst->api_version };
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
    if (inst->validation && !rt_env_on("VKLLM_NO_SYNC_VALIDATION")) {
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
        describe_device(inst->instance, inst->phys[i], i, inst->api_version,
                        !inst->validation || layer_spec >= VK_MAKE_API_VERSION(0, 1, 3, 255), &inst->info[i]);
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
