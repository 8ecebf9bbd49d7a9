/* cmd_devices.c: `vkllm devices [--json] [--validation]`: every Vulkan device, its memory and features. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "rt.h"

/* The features `devices` reports: whether the device has each, whether a context enables it (where a
 * feature has to be enabled: subgroup arithmetic need not be) and whether vkllm's kernels use it. */
typedef struct feature {
    const char *name, *json;
    bool has, enablable, enabled, used;
} feature;

enum { N_FEATURES = 7 };

static int features(const rt_device_info *d, feature f[N_FEATURES])
{
    feature all[] = {
        { "fp16 arithmetic", "fp16", d->fp16, true, d->en_fp16, d->use_fp16 },
        { "16-bit storage", "storage16", d->storage16, true, d->en_storage16, d->use_storage16 },
        { "8-bit storage", "storage8", d->storage8, true, d->en_storage8, d->use_storage8 },
        { "integer dot product", "integer_dot_product", d->int_dot, true, d->en_int_dot, d->use_int_dot },
        { "subgroup size control", "subgroup_size_control", d->subgroup_size_control, true,
          d->en_subgroup_size_control, d->use_subgroup_size_control },
        { "cooperative matrix", "cooperative_matrix", d->coopmat, true, d->en_coopmat, d->use_coopmat },
        { "subgroup arithmetic", "subgroup_arithmetic", d->subgroup_arithmetic, false, false,
          d->use_subgroup_arithmetic },
    };
    _Static_assert(sizeof all / sizeof all[0] == N_FEATURES, "N_FEATURES is the length of the list");
    memcpy(f, all, sizeof all);
    return N_FEATURES;
}

static void print_version(uint32_t v, bool patch)
{
    printf("%u.%u", (v >> 22) & 0x7F, (v >> 12) & 0x3FF);
    if (patch)
        printf(".%u", v & 0xFFF);
}

/* One feature's line: "yes  (enabled, used)", "yes  (not enabled)", "no" ... */
static void print_feature(const feature *f)
{
    printf("   %-21s %s", f->name, f->has ? "yes" : "no");
    if (f->has && (f->enablable || f->used)) {
        printf("  (");
        if (f->enablable)
            printf("%s", f->enabled ? "enabled" : "not enabled");
        if (f->used)
            printf("%sused", f->enablable ? ", " : "");
        printf(")");
    }
}

static void print_text(const rt_device_info *d, bool chosen)
{
    printf("%d%s %s\n", d->index, chosen ? "*" : " ", d->name);
    printf("   vendor     %s (0x%04x), device 0x%04x, %s\n", d->vendor, d->vendor_id, d->device_id, d->type_name);
    printf("   api        ");
    print_version(d->api_version, true);
    printf(" (vkllm: ");
    print_version(d->api_used, false);
    printf(")   driver %s %s (0x%x)\n", d->driver_name, d->driver_info, d->driver_version);
    for (int h = 0; h < d->n_heaps; h++)
        printf("   heap %d     %.2f GiB%s\n", h, d->heaps[h].size / 1073741824.0, d->heaps[h].device_local ? ", device-local" : "");
    printf("   subgroup   %u%s", d->subgroup_size, d->subgroup_arithmetic ? " (arithmetic)" : "");
    if (d->subgroup_size_control)
        printf(", size control %u..%u", d->subgroup_min_size, d->subgroup_max_size);
    printf("\n");
    printf("   limits     binding %.0f MiB, allocation %.0f MiB, shared %u KiB, workgroup %u\n",
           d->max_storage_buffer_range / 1048576.0, d->max_allocation_size / 1048576.0, d->max_shared_memory / 1024,
           d->max_workgroup_invocations);
    feature f[N_FEATURES];
    int n = features(d, f);
    for (int i = 0; i < n; i++) {
        print_feature(&f[i]);
        if (f[i].has && !strcmp(f[i].json, "cooperative_matrix"))
            for (int s = 0; s < d->n_coopmat_f16; s++)
                printf("%s%ux%ux%u -> %s", s ? ", " : "  f16 MxNxK ", d->coopmat_f16[s].m, d->coopmat_f16[s].n,
                       d->coopmat_f16[s].k, d->coopmat_f16[s].acc_f32 ? "f32" : "f16");
        printf("\n");
    }
    if (!d->usable)
        printf("   not usable: vkllm needs Vulkan 1.2 and a compute queue\n");
}

/* One device as a JSON object; false when memory ran out. */
static bool add_json(cJSON *list, const rt_device_info *d, bool chosen)
{
    cJSON *o = cJSON_CreateObject();
    bool ok = true;
    char api[32];
    snprintf(api, sizeof api, "%u.%u.%u", (d->api_version >> 22) & 0x7F, (d->api_version >> 12) & 0x3FF,
             d->api_version & 0xFFF);
    ok &= app_json_add(o, "index", cJSON_CreateNumber(d->index));
    ok &= app_json_add(o, "default", cJSON_CreateBool(chosen));
    ok &= app_json_add(o, "name", cJSON_CreateString(d->name));
    ok &= app_json_add(o, "vendor", cJSON_CreateString(d->vendor));
    ok &= app_json_add(o, "vendor_id", cJSON_CreateNumber(d->vendor_id));
    ok &= app_json_add(o, "device_id", cJSON_CreateNumber(d->device_id));
    ok &= app_json_add(o, "type", cJSON_CreateString(d->type_name));
    ok &= app_json_add(o, "api_version", cJSON_CreateString(api));
    ok &= app_json_add(o, "driver_version", cJSON_CreateNumber(d->driver_version));
    ok &= app_json_add(o, "driver_name", cJSON_CreateString(d->driver_name));
    ok &= app_json_add(o, "driver_info", cJSON_CreateString(d->driver_info));
    cJSON *heaps = cJSON_CreateArray();
    for (int h = 0; h < d->n_heaps; h++) {
        cJSON *heap = cJSON_CreateObject();
        ok &= app_json_add(heap, "size", app_json_uint(d->heaps[h].size));
        ok &= app_json_add(heap, "device_local", cJSON_CreateBool(d->heaps[h].device_local));
        ok &= app_json_add(heaps, NULL, heap);
    }
    ok &= app_json_add(o, "heaps", heaps);
    snprintf(api, sizeof api, "%u.%u", (d->api_used >> 22) & 0x7F, (d->api_used >> 12) & 0x3FF);
    ok &= app_json_add(o, "api_used", cJSON_CreateString(api));
    ok &= app_json_add(o, "subgroup_size", cJSON_CreateNumber(d->subgroup_size));
    ok &= app_json_add(o, "subgroup_min_size", cJSON_CreateNumber(d->subgroup_min_size));
    ok &= app_json_add(o, "subgroup_max_size", cJSON_CreateNumber(d->subgroup_max_size));
    cJSON *shapes = cJSON_CreateArray();
    for (int s = 0; s < d->n_coopmat_f16; s++) {
        cJSON *shape = cJSON_CreateObject();
        ok &= app_json_add(shape, "m", cJSON_CreateNumber(d->coopmat_f16[s].m));
        ok &= app_json_add(shape, "n", cJSON_CreateNumber(d->coopmat_f16[s].n));
        ok &= app_json_add(shape, "k", cJSON_CreateNumber(d->coopmat_f16[s].k));
        ok &= app_json_add(shape, "accumulator", cJSON_CreateString(d->coopmat_f16[s].acc_f32 ? "f32" : "f16"));
        ok &= app_json_add(shapes, NULL, shape);
    }
    ok &= app_json_add(o, "cooperative_matrix_f16", shapes);
    ok &= app_json_add(o, "usable", cJSON_CreateBool(d->usable));
    feature f[N_FEATURES];
    int n_f = features(d, f);
    cJSON *features = cJSON_CreateObject();
    for (int i = 0; i < n_f; i++) {
        cJSON *feat = cJSON_CreateObject();
        ok &= app_json_add(feat, "supported", cJSON_CreateBool(f[i].has));
        if (f[i].enablable)
            ok &= app_json_add(feat, "enabled", cJSON_CreateBool(f[i].enabled));
        ok &= app_json_add(feat, "used", cJSON_CreateBool(f[i].used));
        ok &= app_json_add(features, f[i].json, feat);
    }
    ok &= app_json_add(o, "features", features);
    cJSON *lim = cJSON_CreateObject();
    ok &= app_json_add(lim, "max_storage_buffer_range", app_json_uint(d->max_storage_buffer_range));
    ok &= app_json_add(lim, "max_allocation_size", app_json_uint(d->max_allocation_size));
    ok &= app_json_add(lim, "max_shared_memory", cJSON_CreateNumber(d->max_shared_memory));
    ok &= app_json_add(lim, "max_workgroup_invocations", cJSON_CreateNumber(d->max_workgroup_invocations));
    ok &= app_json_add(lim, "timestamp_period_ns", app_json_num(d->timestamp_period_ns));
    ok &= app_json_add(o, "limits", lim);
    return app_json_add(list, NULL, o) && ok;
}

int cmd_devices(int argc, char **argv)
{
    bool json = false, bad = false;
    app_device_opts dev = { .device = -1 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vkllm devices [--json] [--validation]\n"
                   "Lists every Vulkan device; * marks the one vkllm uses by default\n"
                   "(VKLLM_DEVICE=N or --device N elsewhere picks another).\n");
            return 0;
        } else if (!app_device_flag(argc, argv, &i, &dev, &bad))
            return app_usage_fail(NULL, "devices: unknown option '%s' (vkllm devices [--json] [--validation])", argv[i]);
        if (bad)
            return 1;
    }
    rt_instance *inst;
    rt_instance_desc id = { .validation = dev.validation };
    int rc = rt_instance_create(&id, &inst);
    if (rc) {
        app_fail("%s", rt_instance_errmsg(inst));
        rt_instance_destroy(inst);
        return 1;
    }
    int n = rt_instance_device_count(inst);
    int chosen = n ? rt_instance_default_device(inst) : -1;
    cJSON *list = json ? cJSON_CreateArray() : NULL;
    bool ok = !json || list;
    for (int i = 0; i < n; i++) {
        rt_device_info d;
        rt_instance_device_info(inst, i, &d);
        if (json)
            ok &= add_json(list, &d, i == chosen);
        else
            print_text(&d, i == chosen);
    }
    int status = n == 0;
    if (json)
        status |= app_json_print(list, ok);
    else if (n == 0)
        printf("no Vulkan devices (Debian: apt-get install mesa-vulkan-drivers for the CPU driver, lavapipe)\n");
    if (chosen < 0 && n > 0) {
        fprintf(stderr, "vkllm: %s\n", rt_instance_errmsg(inst));
        status = 1;
    }
    rt_instance_destroy(inst);
    return app_stdout_status("devices", status);
}
