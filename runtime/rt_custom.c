/* rt_custom.c: user kernels (rt_kernel_*, rt_op_kernel): a compute pipeline from the caller's SPIR-V.
 *
 * Before a pipeline is made the module is read (a small reflection of what Vulkan will check): the
 * entry point, capabilities and extensions, every storage buffer's set and binding, the push-constant
 * block's size, the specialization constants' ids and widths, the workgroup size after specialization
 * and the shared memory. A mismatch with what the caller binds is an error naming it, so that the
 * validation layer never has to say it. The dispatch goes through rt_seq_dispatch, as the built-in ops'. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

/* SPIR-V numbers (the unified1 grammar) that the reader uses */
enum {
    SPV_MAGIC = 0x07230203,
    OP_EXTENSION = 10, OP_ENTRY_POINT = 15, OP_EXECUTION_MODE = 16, OP_CAPABILITY = 17,
    OP_TYPE_BOOL = 20, OP_TYPE_INT = 21, OP_TYPE_FLOAT = 22, OP_TYPE_VECTOR = 23, OP_TYPE_MATRIX = 24,
    OP_TYPE_ARRAY = 28, OP_TYPE_RUNTIME_ARRAY = 29, OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32,
    OP_CONSTANT = 43, OP_CONSTANT_COMPOSITE = 44, OP_SPEC_CONSTANT_TRUE = 48, OP_SPEC_CONSTANT_FALSE = 49,
    OP_SPEC_CONSTANT = 50, OP_SPEC_CONSTANT_COMPOSITE = 51, OP_VARIABLE = 59, OP_DECORATE = 71,
    OP_MEMBER_DECORATE = 72, OP_EXECUTION_MODE_ID = 331,
    DEC_SPEC_ID = 1, DEC_BLOCK = 2, DEC_BUFFER_BLOCK = 3, DEC_ARRAY_STRIDE = 6, DEC_MATRIX_STRIDE = 7,
    DEC_BUILTIN = 11, DEC_BINDING = 33, DEC_SET = 34, DEC_OFFSET = 35,
    BUILTIN_WORKGROUP_SIZE = 25, MODEL_GLCOMPUTE = 5, MODE_LOCAL_SIZE = 17, MODE_LOCAL_SIZE_ID = 38,
    SC_UNIFORM_CONSTANT = 0, SC_UNIFORM = 2, SC_WORKGROUP = 4, SC_PUSH_CONSTANT = 9, SC_STORAGE_BUFFER = 12,
};
#define MAX_IDS (1u << 22) /* a module's id bound above this is refused (4 M ids: far more than any shader) */

struct rt_kernel {
    rt_ctx *ctx;
    rt_pipeline p;   /* not in the ctx's table: owned here */
    uint32_t wg[3], shared;
    char name[64];
};

/* ---------------------------------------------------------------- reading the module */

typedef struct member_dec { uint32_t type, member, decoration, value; } member_dec;

typedef struct reader {
    rt_ctx *ctx;
    const uint32_t *w;
    size_t words;
    uint32_t bound;
    uint32_t *def;       /* [bound]: word index of the instruction defining id, 0: none */
    int32_t *binding, *set, *spec_id; /* [bound]: decorations, -1: none */
    uint32_t *array_stride;           /* [bound]: 0: none */
    uint8_t *block;                   /* [bound]: 1 Block, 2 BufferBlock */
    member_dec *mdec;
    int n_mdec, cap_mdec;
    uint32_t wg_builtin;              /* the id decorated BuiltIn WorkgroupSize, 0: none */
    long steps;                       /* type_size calls, bounded: a crafted module cannot make it slow */
    const rt_kernel_desc *desc;
} reader;

static const char *cap_name(uint32_t c)
{
    switch (c) {
    case 9: return "Float16";
    case 10: return "Float64";
    case 11: return "Int64";
    case 12: return "Int64Atomics";
    case 22: return "Int16";
    case 39: return "Int8";
    case 61: return "GroupNonUniform";
    case 62: return "GroupNonUniformVote";
    case 63: return "GroupNonUniformArithmetic";
    case 64: return "GroupNonUniformBallot";
    case 65: return "GroupNonUniformShuffle";
    case 66: return "GroupNonUniformShuffleRelative";
    case 67: return "GroupNonUniformClustered";
    case 68: return "GroupNonUniformQuad";
    case 4433: return "StorageBuffer16BitAccess";
    case 4434: return "UniformAndStorageBuffer16BitAccess";
    case 4435: return "StoragePushConstant16";
    case 4448: return "StorageBuffer8BitAccess";
    case 4449: return "UniformAndStorageBuffer8BitAccess";
    case 4450: return "StoragePushConstant8";
    case 5345: return "VulkanMemoryModel";
    case 5347: return "PhysicalStorageBufferAddresses";
    default: return "";
    }
}

/* Whether the context's device has capability c enabled: what rt_ctx_create turns on (16-bit float
 * arithmetic, 8- and 16-bit storage where the device has them) and the subgroup operations Vulkan 1.1
 * gives compute shaders on this device. */
static bool cap_enabled(const reader *r, uint32_t c, uint32_t subgroup_ops)
{
    const rt_device_info *d = &r->ctx->info;
    switch (c) {
    case 0: case 1: return true; /* Matrix, Shader */
    case 9: return d->fp16;
    case 4433: return d->storage16;
    case 4448: return d->storage8;
    case 61: return subgroup_ops & VK_SUBGROUP_FEATURE_BASIC_BIT;
    case 62: return subgroup_ops & VK_SUBGROUP_FEATURE_VOTE_BIT;
    case 63: return subgroup_ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT;
    case 64: return subgroup_ops & VK_SUBGROUP_FEATURE_BALLOT_BIT;
    case 65: return subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    case 66: return subgroup_ops & VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT;
    case 67: return subgroup_ops & VK_SUBGROUP_FEATURE_CLUSTERED_BIT;
    case 68: return subgroup_ops & VK_SUBGROUP_FEATURE_QUAD_BIT;
    default: return false;
    }
}

static bool ext_enabled(const reader *r, const char *e)
{
    const rt_device_info *d = &r->ctx->info;
    return !strcmp(e, "SPV_KHR_storage_buffer_storage_class") || !strcmp(e, "SPV_KHR_no_integer_wrap_decoration") ||
           (!strcmp(e, "SPV_KHR_16bit_storage") && d->storage16) || (!strcmp(e, "SPV_KHR_8bit_storage") && d->storage8);
}

static int bad(reader *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(reader *r, int status, const char *fmt, ...)
{
    char msg[RT_ERRLEN - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return rt_ctx_fail(r->ctx, status, "kernel %s: %s", r->desc->name ? r->desc->name : "kernel", msg);
}

/* The instruction defining id (NULL when none), and its word count. */
static const uint32_t *def_of(const reader *r, uint32_t id, uint32_t *wc)
{
    if (id == 0 || id >= r->bound || !r->def[id])
        return NULL;
    const uint32_t *in = r->w + r->def[id];
    *wc = in[0] >> 16;
    return in;
}

/* The 32-bit value of a scalar constant after specialization: false when id is no constant it knows
 * (a spec constant computed by OpSpecConstantOp, say). */
static bool const_value(const reader *r, uint32_t id, uint32_t *v)
{
    uint32_t wc;
    const uint32_t *in = def_of(r, id, &wc);
    if (!in)
        return false;
    uint32_t op = in[0] & 0xffff;
    if (op != OP_CONSTANT && op != OP_SPEC_CONSTANT && op != OP_SPEC_CONSTANT_TRUE && op != OP_SPEC_CONSTANT_FALSE)
        return false;
    if (op == OP_CONSTANT || op == OP_SPEC_CONSTANT) {
        if (wc < 4)
            return false;
        *v = in[3];
    } else
        *v = op == OP_SPEC_CONSTANT_TRUE;
    if (op != OP_CONSTANT && r->spec_id[id] >= 0)
        for (int i = 0; i < r->desc->n_spec; i++)
            if (r->desc->spec[i].id == (uint32_t)r->spec_id[id])
                *v = r->desc->spec[i].bits;
    return true;
}

static bool member_dec_value(const reader *r, uint32_t type, uint32_t member, uint32_t decoration, uint32_t *v)
{
    for (int i = 0; i < r->n_mdec; i++)
        if (r->mdec[i].type == type && r->mdec[i].member == member && r->mdec[i].decoration == decoration) {
            *v = r->mdec[i].value;
            return true;
        }
    return false;
}

/* Bytes of a value of type id in memory: explicit layout (Offset, ArrayStride, MatrixStride) where the
 * module gives it, packed otherwise (shared memory). Runtime arrays count 0. False when it cannot
 * tell (an array length that is no known constant). */
static bool type_size(reader *r, uint32_t id, uint32_t mstride, int depth, uint64_t *size)
{
    uint32_t wc;
    const uint32_t *in = def_of(r, id, &wc);
    if (!in || depth > 32 || ++r->steps > 1000000)
        return false;
    uint64_t s, n;
    uint32_t len;
    switch (in[0] & 0xffff) {
    case OP_TYPE_BOOL:
        *size = 4;
        return true;
    case OP_TYPE_INT:
    case OP_TYPE_FLOAT:
        *size = wc >= 3 ? in[2] / 8 : 0;
        return wc >= 3;
    case OP_TYPE_VECTOR:
        if (wc < 4 || !type_size(r, in[2], 0, depth + 1, &s))
            return false;
        *size = s * in[3];
        return true;
    case OP_TYPE_MATRIX:
        if (wc < 4 || !type_size(r, in[2], 0, depth + 1, &s))
            return false;
        *size = (uint64_t)in[3] * (mstride ? mstride : s);
        return true;
    case OP_TYPE_ARRAY:
        if (wc < 4 || !const_value(r, in[3], &len) || !type_size(r, in[2], mstride, depth + 1, &s))
            return false;
        *size = (uint64_t)len * (r->array_stride[id] ? r->array_stride[id] : s);
        return true;
    case OP_TYPE_RUNTIME_ARRAY:
        *size = 0;
        return true;
    case OP_TYPE_STRUCT:
        n = 0;
        for (uint32_t m = 0; m + 2 < wc; m++) {
            uint32_t off, ms = 0;
            member_dec_value(r, id, m, DEC_MATRIX_STRIDE, &ms);
            if (!type_size(r, in[2 + m], ms, depth + 1, &s))
                return false;
            uint64_t start = member_dec_value(r, id, m, DEC_OFFSET, &off) ? off : n;
            if (start + s > n)
                n = start + s;
        }
        *size = n;
        return true;
    default:
        return false;
    }
}

/* First pass: every definition and decoration; capabilities, extensions and the entry point checked. */
static int scan(reader *r, uint32_t *entry, uint32_t local[3], uint32_t local_id[3])
{
    uint32_t subgroup_ops = 0;
    VkPhysicalDeviceSubgroupProperties sub = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES };
    VkPhysicalDeviceProperties2 p2 = { .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &sub };
    vkGetPhysicalDeviceProperties2(r->ctx->phys, &p2);
    if (sub.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT)
        subgroup_ops = sub.supportedOperations;

    *entry = 0;
    for (size_t i = 5; i < r->words;) {
        const uint32_t *in = r->w + i;
        uint32_t wc = in[0] >> 16, op = in[0] & 0xffff;
        if (wc == 0 || wc > r->words - i)
            return bad(r, RT_ERR_INVALID, "malformed SPIR-V (an instruction at word %zu runs past the end)", i);
        switch (op) {
        case OP_CAPABILITY:
            if (wc >= 2 && !cap_enabled(r, in[1], subgroup_ops))
                return bad(r, RT_ERR_UNSUPPORTED, "the shader needs SPIR-V capability %u%s%s%s, which is not enabled "
                           "on %s", in[1], *cap_name(in[1]) ? " (" : "", cap_name(in[1]), *cap_name(in[1]) ? ")" : "",
                           r->ctx->info.name);
            break;
        case OP_EXTENSION: {
            char ext[128];
            size_t n = (wc - 1) * 4 < sizeof ext - 1 ? (wc - 1) * 4 : sizeof ext - 1;
            memcpy(ext, in + 1, n);
            ext[n] = 0;
            if (!ext_enabled(r, ext))
                return bad(r, RT_ERR_UNSUPPORTED,
                           "the shader needs the SPIR-V extension %s, which is not enabled on %s", ext,
                           r->ctx->info.name);
            break;
        }
        case OP_ENTRY_POINT:
            if (wc >= 5 && in[1] == MODEL_GLCOMPUTE && !memcmp(in + 3, "main", 5))
                *entry = in[2];
            break;
        case OP_EXECUTION_MODE:
        case OP_EXECUTION_MODE_ID:
            if (wc >= 6 && in[1] == *entry && *entry) {
                uint32_t *dst = op == OP_EXECUTION_MODE && in[2] == MODE_LOCAL_SIZE      ? local
                                : op == OP_EXECUTION_MODE_ID && in[2] == MODE_LOCAL_SIZE_ID ? local_id
                                                                                            : NULL;
                if (dst)
                    memcpy(dst, in + 3, 3 * sizeof *dst);
            }
            break;
        case OP_DECORATE:
            if (wc >= 4 && in[1] < r->bound) {
                uint32_t t = in[1], d = in[2], v = in[3];
                if (d == DEC_BINDING)
                    r->binding[t] = (int32_t)v;
                else if (d == DEC_SET)
                    r->set[t] = (int32_t)v;
                else if (d == DEC_SPEC_ID)
                    r->spec_id[t] = (int32_t)v;
                else if (d == DEC_ARRAY_STRIDE)
                    r->array_stride[t] = v;
                else if (d == DEC_BUILTIN && v == BUILTIN_WORKGROUP_SIZE)
                    r->wg_builtin = t;
            } else if (wc == 3 && in[1] < r->bound && (in[2] == DEC_BLOCK || in[2] == DEC_BUFFER_BLOCK))
                r->block[in[1]] = in[2] == DEC_BLOCK ? 1 : 2;
            break;
        case OP_MEMBER_DECORATE:
            if (wc >= 5 && (in[3] == DEC_OFFSET || in[3] == DEC_MATRIX_STRIDE)) {
                if (r->n_mdec == r->cap_mdec) {
                    int cap = r->cap_mdec ? 2 * r->cap_mdec : 64;
                    member_dec *m = realloc(r->mdec, sizeof *m * (size_t)cap);
                    if (!m)
                        return rt_ctx_fail(r->ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
                    r->mdec = m;
                    r->cap_mdec = cap;
                }
                r->mdec[r->n_mdec++] = (member_dec){ in[1], in[2], in[3], in[4] };
            }
            break;
        default:
            /* types define their id in word 1, constants and variables in word 2 */
            if (op >= 19 && op <= 39 && wc >= 2 && in[1] < r->bound)
                r->def[in[1]] = (uint32_t)i;
            else if (((op >= 41 && op <= 52) || op == OP_VARIABLE) && wc >= 3 && in[2] < r->bound)
                r->def[in[2]] = (uint32_t)i;
            break;
        }
        i += wc;
    }
    if (!*entry)
        return bad(r, RT_ERR_INVALID, "no GLCompute entry point \"main\" (not a compute shader?)");
    return RT_OK;
}

/* The specialization constants given: each must be declared by the shader, 32 bits wide. */
static int check_spec(reader *r)
{
    const rt_kernel_desc *d = r->desc;
    for (int i = 0; i < d->n_spec; i++) {
        for (int j = 0; j < i; j++)
            if (d->spec[j].id == d->spec[i].id)
                return bad(r, RT_ERR_INVALID, "specialization constant %u given twice", d->spec[i].id);
        uint32_t id = 0, wc, twc;
        for (uint32_t k = 1; k < r->bound && !id; k++)
            if (r->spec_id[k] == (int32_t)d->spec[i].id && r->def[k])
                id = k;
        const uint32_t *in = id ? def_of(r, id, &wc) : NULL;
        if (!in)
            return bad(r, RT_ERR_INVALID, "the shader has no specialization constant %u", d->spec[i].id);
        const uint32_t *t = def_of(r, in[1], &twc);
        uint32_t top = t ? t[0] & 0xffff : 0;
        if (top != OP_TYPE_BOOL && !((top == OP_TYPE_INT || top == OP_TYPE_FLOAT) && twc >= 3 && t[2] == 32))
            return bad(r, RT_ERR_INVALID, "specialization constant %u is not a 32-bit bool, int, uint or float",
                       d->spec[i].id);
    }
    return RT_OK;
}

/* Second pass over the variables: buffers, push constants, shared memory. */
static int check_variables(reader *r, uint32_t *shared)
{
    const rt_kernel_desc *d = r->desc;
    int top = -1;
    uint64_t push = 0, wg = 0;
    bool wg_known = true;
    for (uint32_t id = 1; id < r->bound; id++) {
        uint32_t wc, pwc;
        const uint32_t *in = def_of(r, id, &wc);
        if (!in || (in[0] & 0xffff) != OP_VARIABLE || wc < 4)
            continue;
        const uint32_t *ptr = def_of(r, in[1], &pwc);
        if (!ptr || (ptr[0] & 0xffff) != OP_TYPE_POINTER || pwc < 4)
            return bad(r, RT_ERR_INVALID, "malformed SPIR-V (variable %u has no pointer type)", id);
        uint32_t sc = in[3], pointee = ptr[3], twc;
        const uint32_t *t = def_of(r, pointee, &twc);
        uint32_t top_op = t ? t[0] & 0xffff : 0;
        if (sc == SC_STORAGE_BUFFER || sc == SC_UNIFORM || sc == SC_UNIFORM_CONSTANT) {
            int b = r->binding[id], s = r->set[id] < 0 ? 0 : r->set[id];
            if (b < 0)
                return bad(r, RT_ERR_INVALID, "a resource without a binding");
            if (sc == SC_UNIFORM_CONSTANT || top_op != OP_TYPE_STRUCT || (sc == SC_UNIFORM && r->block[pointee] != 2))
                return bad(r, RT_ERR_INVALID, "binding %d is %s; only storage buffers (`buffer` blocks) can be bound",
                           b, sc == SC_UNIFORM_CONSTANT ? "an image or sampler"
                              : top_op == OP_TYPE_ARRAY || top_op == OP_TYPE_RUNTIME_ARRAY ? "an array of blocks"
                              : "a uniform buffer");
            if (s != 0)
                return bad(r, RT_ERR_INVALID, "binding %d is in descriptor set %d; only set 0 is bound", b, s);
            if (b >= d->n_buffers)
                return bad(r, RT_ERR_INVALID, "the shader uses binding %d, but %d buffer%s given", b, d->n_buffers,
                           d->n_buffers == 1 ? " is" : "s are");
            if (b > top)
                top = b;
        } else if (sc == SC_PUSH_CONSTANT) {
            if (!type_size(r, pointee, 0, 0, &push))
                return bad(r, RT_ERR_INVALID, "cannot tell the size of the push-constant block");
        } else if (sc == SC_WORKGROUP) {
            uint64_t s;
            if (type_size(r, pointee, 0, 0, &s))
                wg += s;
            else
                wg_known = false; /* a length computed from spec constants: left to the driver */
        }
    }
    if (top + 1 < d->n_buffers && top < 0)
        return bad(r, RT_ERR_INVALID, "%d buffer%s given, but the shader uses none", d->n_buffers,
                   d->n_buffers == 1 ? "" : "s");
    if (top + 1 < d->n_buffers)
        return bad(r, RT_ERR_INVALID, "%d buffers given, but the shader's highest binding is %d", d->n_buffers, top);
    if (push != d->push_bytes)
        return bad(r, RT_ERR_INVALID, "the shader's push constants are %llu bytes, %u given", (unsigned long long)push,
                   d->push_bytes);
    if (wg_known && wg > r->ctx->info.max_shared_memory)
        return bad(r, RT_ERR_LIMIT, "%llu bytes of shared memory, above the device's %u", (unsigned long long)wg,
                   r->ctx->info.max_shared_memory);
    *shared = (uint32_t)wg;
    return RT_OK;
}

/* The workgroup size after specialization: the WorkgroupSize built-in if there is one, else LocalSizeId,
 * else LocalSize; checked against the device's limits. */
static int check_workgroup(reader *r, const uint32_t local[3], const uint32_t local_id[3], uint32_t wg[3])
{
    memcpy(wg, local, 3 * sizeof *wg);
    uint32_t wc;
    const uint32_t *in = r->wg_builtin ? def_of(r, r->wg_builtin, &wc) : NULL;
    for (int i = 0; i < 3; i++) {
        uint32_t v;
        if (in && wc >= 6 && const_value(r, in[3 + i], &v))
            wg[i] = v;
        else if (local_id[i] && const_value(r, local_id[i], &v))
            wg[i] = v;
    }
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(r->ctx->phys, &p);
    uint64_t n = (uint64_t)wg[0] * wg[1] * wg[2];
    for (int i = 0; i < 3; i++)
        if (wg[i] == 0 || wg[i] > p.limits.maxComputeWorkGroupSize[i])
            return bad(r, RT_ERR_LIMIT, "workgroup size %ux%ux%u: dimension %d is outside 1..%u", wg[0], wg[1],
                       wg[2], i, p.limits.maxComputeWorkGroupSize[i]);
    if (n > p.limits.maxComputeWorkGroupInvocations)
        return bad(r, RT_ERR_LIMIT, "workgroup size %ux%ux%u: %llu invocations, above the device's %u", wg[0], wg[1],
                   wg[2], (unsigned long long)n, p.limits.maxComputeWorkGroupInvocations);
    return RT_OK;
}

static int reflect(reader *r, rt_kernel *k)
{
    uint32_t entry, local[3] = { 1, 1, 1 }, local_id[3] = { 0, 0, 0 };
    int rc = scan(r, &entry, local, local_id);
    if (!rc)
        rc = check_spec(r);
    if (!rc)
        rc = check_variables(r, &k->shared);
    if (!rc)
        rc = check_workgroup(r, local, local_id, k->wg);
    return rc;
}

/* ---------------------------------------------------------------- the pipeline */

static int make_pipeline(rt_ctx *ctx, const rt_kernel_desc *desc, rt_pipeline *p)
{
    VkDescriptorSetLayoutBinding b[RT_KERNEL_MAX_BUFFERS];
    for (int i = 0; i < desc->n_buffers; i++)
        b[i] = (VkDescriptorSetLayoutBinding){ .binding = (uint32_t)i,
                                               .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                               .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT };
    VkDescriptorSetLayoutCreateInfo dci = { .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                            .bindingCount = (uint32_t)desc->n_buffers, .pBindings = b };
    VkResult r = vkCreateDescriptorSetLayout(ctx->device, &dci, NULL, &p->dsl);
    if (r != VK_SUCCESS)
        return rt_ctx_vk_fail(ctx, r, "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr = { .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = desc->push_bytes };
    VkPipelineLayoutCreateInfo lci = { .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                       .setLayoutCount = 1, .pSetLayouts = &p->dsl,
                                       .pushConstantRangeCount = desc->push_bytes ? 1 : 0, .pPushConstantRanges = &pr };
    const char *what = "vkCreatePipelineLayout";
    if ((r = vkCreatePipelineLayout(ctx->device, &lci, NULL, &p->layout)) != VK_SUCCESS)
        goto out_destroy_dsl;
    VkShaderModuleCreateInfo sci = { .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = desc->words * 4, .pCode = desc->spirv };
    VkShaderModule module;
    what = "vkCreateShaderModule";
    if ((r = vkCreateShaderModule(ctx->device, &sci, NULL, &module)) != VK_SUCCESS)
        goto out_destroy_layout;
    VkSpecializationMapEntry me[RT_KERNEL_MAX_SPEC];
    uint32_t data[RT_KERNEL_MAX_SPEC];
    for (int i = 0; i < desc->n_spec; i++) {
        me[i] = (VkSpecializationMapEntry){ .constantID = desc->spec[i].id, .offset = (uint32_t)(4 * i), .size = 4 };
        data[i] = desc->spec[i].bits;
    }
    VkSpecializationInfo si = { .mapEntryCount = (uint32_t)desc->n_spec, .pMapEntries = me,
                                .dataSize = 4 * (size_t)desc->n_spec, .pData = data };
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = { .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                   .module = module, .pName = "main", .pSpecializationInfo = desc->n_spec ? &si : NULL },
        .layout = p->layout,
    };
    r = vkCreateComputePipelines(ctx->device, ctx->pcache, 1, &pci, NULL, &p->pipeline);
    vkDestroyShaderModule(ctx->device, module, NULL);
    what = "vkCreateComputePipelines";
    if (r != VK_SUCCESS)
        goto out_destroy_layout;
    p->n_bindings = desc->n_buffers;
    p->push_size = desc->push_bytes;
    p->readonly = rt_spirv_readonly_bindings(desc->spirv, desc->words);
    return RT_OK;

out_destroy_layout:
    vkDestroyPipelineLayout(ctx->device, p->layout, NULL);
out_destroy_dsl:
    vkDestroyDescriptorSetLayout(ctx->device, p->dsl, NULL);
    return rt_ctx_vk_fail(ctx, r, what);
}

int rt_kernel_create(rt_ctx *ctx, const rt_kernel_desc *desc, rt_kernel **out)
{
    *out = NULL;
    const char *name = desc->name ? desc->name : "kernel";
    if (!desc->spirv || desc->words < 5 || desc->spirv[0] != SPV_MAGIC)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "kernel %s: not a SPIR-V module", name);
    if (desc->spirv[1] > 0x00010500)
        return rt_ctx_fail(ctx, RT_ERR_UNSUPPORTED, "kernel %s: SPIR-V %u.%u, newer than Vulkan 1.2's 1.5", name,
                           desc->spirv[1] >> 16 & 0xff, desc->spirv[1] >> 8 & 0xff);
    if (desc->spirv[3] == 0 || desc->spirv[3] > MAX_IDS)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "kernel %s: an id bound of %u", name, desc->spirv[3]);
    if (desc->n_buffers < 0 || desc->n_buffers > RT_KERNEL_MAX_BUFFERS || desc->n_buffers > RT_MAX_BINDINGS)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "kernel %s: %d buffers (at most %d)", name, desc->n_buffers,
                           RT_KERNEL_MAX_BUFFERS);
    if (desc->n_spec < 0 || desc->n_spec > RT_KERNEL_MAX_SPEC || (desc->n_spec && !desc->spec))
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "kernel %s: %d specialization constants (at most %d)", name,
                           desc->n_spec, RT_KERNEL_MAX_SPEC);
    if (desc->push_bytes % 4 || desc->push_bytes > ctx->info.max_push_constants)
        return rt_ctx_fail(ctx, RT_ERR_INVALID, "kernel %s: %u bytes of push constants (a multiple of 4, at most %u)",
                           name, desc->push_bytes, ctx->info.max_push_constants);

    rt_kernel *k = calloc(1, sizeof *k);
    reader r = { .ctx = ctx, .w = desc->spirv, .words = desc->words, .bound = desc->spirv[3], .desc = desc };
    r.def = calloc(r.bound, sizeof *r.def);
    r.binding = malloc(sizeof *r.binding * r.bound);
    r.set = malloc(sizeof *r.set * r.bound);
    r.spec_id = malloc(sizeof *r.spec_id * r.bound);
    r.array_stride = calloc(r.bound, sizeof *r.array_stride);
    r.block = calloc(r.bound, sizeof *r.block);
    int rc;
    if (!k || !r.def || !r.binding || !r.set || !r.spec_id || !r.array_stride || !r.block) {
        rc = rt_ctx_fail(ctx, RT_ERR_OUT_OF_MEMORY, "out of host memory");
        goto out_free;
    }
    for (uint32_t i = 0; i < r.bound; i++)
        r.binding[i] = r.set[i] = r.spec_id[i] = -1;
    k->ctx = ctx;
    snprintf(k->name, sizeof k->name, "%s", name);
    if ((rc = reflect(&r, k)) || (rc = make_pipeline(ctx, desc, &k->p)))
        goto out_free;
    k->p.name = k->name;
    *out = k;
    k = NULL;
out_free:
    free(r.mdec);
    free(r.block);
    free(r.array_stride);
    free(r.spec_id);
    free(r.set);
    free(r.binding);
    free(r.def);
    free(k);
    return rc;
}

void rt_kernel_destroy(rt_kernel *k)
{
    if (!k)
        return;
    VkDevice dev = k->ctx->device;
    vkDestroyPipeline(dev, k->p.pipeline, NULL);
    vkDestroyPipelineLayout(dev, k->p.layout, NULL);
    vkDestroyDescriptorSetLayout(dev, k->p.dsl, NULL);
    free(k);
}

void rt_kernel_workgroup(const rt_kernel *k, uint32_t size[3], uint32_t *shared_bytes)
{
    memcpy(size, k->wg, 3 * sizeof *size);
    if (shared_bytes)
        *shared_bytes = k->shared;
}

/* ---------------------------------------------------------------- recording */

int rt_op_kernel(rt_seq *seq, const rt_kernel *k, const rt_ref *buffers, const void *push, uint32_t gx,
                 uint32_t gy, uint32_t gz)
{
    if (rt_seq_status(seq))
        return rt_seq_status(seq);
    rt_ctx *ctx = rt_seq_ctx(seq);
    if (!k || k->ctx != ctx)
        return rt_seq_fail(seq, RT_ERR_INVALID, "rt_op_kernel: %s", k ? "a kernel of another context" : "no kernel");
    if (k->p.push_size && !push)
        return rt_seq_fail(seq, RT_ERR_INVALID, "%s: %u bytes of push constants expected, none given", k->name,
                           k->p.push_size);
    rt_bind b[RT_KERNEL_MAX_BUFFERS];
    for (int i = 0; i < k->p.n_bindings; i++) {
        const rt_ref *ref = &buffers[i];
        size_t size = ref->buf ? rt_buffer_size(ref->buf) : 0;
        if (!ref->buf || ref->off >= size)
            return rt_seq_fail(seq, RT_ERR_INVALID, "%s: binding %d has no buffer or starts past its end", k->name, i);
        if (ref->off % ctx->storage_align)
            return rt_seq_fail(seq, RT_ERR_INVALID, "%s: binding %d at offset %zu, not a multiple of %llu", k->name, i,
                               ref->off, (unsigned long long)ctx->storage_align);
        b[i] = (rt_bind){ ref->buf, ref->off, size - ref->off };
    }
    return rt_seq_dispatch(seq, (rt_pipeline *)&k->p, b, k->p.n_bindings, push, gx, gy, gz);
}
