/* cmd_devices.c: `vkllm devices [--json] [--validation]`: every Vulkan device, its memory and features. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "rt.h"

static void print_text(const rt_device_info *d, bool chosen)
{
    printf("%d%s %s\n", d->index, chosen ? "*" : " ", d->name);
    printf("   vendor     %s (0x%04x), device 0x%04x, %s\n", d->vendor, d->vendor_id, d->device_id, d->type_name);
    printf("   api        %u.%u.%u   driver %s %s (0x%x)\n", (d->api_version >> 22) & 0x7F,
           (d->api_version >> 12) & 0x3FF, d->api_version & 0xFFF, d->driver_name, d->driver_info, d->driver_version);
    for (int h = 0; h < d->n_heaps; h++)
        printf("   heap %d     %.2f GiB%s\n", h, d->heaps[h].size / 1073741824.0, d->heaps[h].device_local ? ", device-local" : "");
    printf("   subgroup   %u%s\n", d->subgroup_size, d->subgroup_arithmetic ? " (arithmetic)" : "");
    printf("   limits     binding %.0f MiB, allocation %.0f MiB, shared %u KiB, workgroup %u\n",
           d->max_storage_buffer_range / 1048576.0, d->max_allocation_size / 1048576.0, d->max_shared_memory / 1024,
           d->max_workgroup_invocations);
    struct { const char *name; bool has, used; } f[] = {
        { "fp16 arithmetic", d->fp16, d->use_fp16 },
        { "16-bit storage", d->storage16, d->use_storage16 },
        { "8-bit storage", d->storage8, d->use_storage8 },
        { "integer dot product", d->int_dot, d->use_int_dot },
        { "cooperative matrix", d->coopmat, d->use_coopmat },
        { "subgroup arithmetic", d->subgroup_arithmetic, d->use_subgroup_arithmetic },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        printf("   %-21s %-3s%s\n", f[i].name, f[i].has ? "yes" : "no", f[i].used ? "  (used)" : "");
    if (!d->usable)
        printf("   not usable: vkllm needs Vulkan 1.2 and a compute queue\n");
}

static void print_json(const rt_device_info *d, bool chosen, bool last)
{
    printf("  {\"index\": %d, \"default\": %s, \"name\": ", d->index, chosen ? "true" : "false");
    app_json_str(stdout, d->name);
    printf(", \"vendor\": ");
    app_json_str(stdout, d->vendor);
    printf(", \"vendor_id\": %u, \"device_id\": %u, \"type\": \"%s\", \"api_version\": \"%u.%u.%u\", "
           "\"driver_version\": %u, \"driver_name\": ",
           d->vendor_id, d->device_id, d->type_name, (d->api_version >> 22) & 0x7F, (d->api_version >> 12) & 0x3FF,
           d->api_version & 0xFFF, d->driver_version);
    app_json_str(stdout, d->driver_name);
    printf(", \"driver_info\": ");
    app_json_str(stdout, d->driver_info);
    printf(", \"heaps\": [");
    for (int h = 0; h < d->n_heaps; h++)
        printf("%s{\"size\": %llu, \"device_local\": %s}", h ? ", " : "", (unsigned long long)d->heaps[h].size,
               d->heaps[h].device_local ? "true" : "false");
    printf("], \"subgroup_size\": %u, \"usable\": %s,\n   \"features\": {", d->subgroup_size, d->usable ? "true" : "false");
    struct { const char *name; bool has, used; } f[] = {
        { "fp16", d->fp16, d->use_fp16 },
        { "storage16", d->storage16, d->use_storage16 },
        { "storage8", d->storage8, d->use_storage8 },
        { "integer_dot_product", d->int_dot, d->use_int_dot },
        { "cooperative_matrix", d->coopmat, d->use_coopmat },
        { "subgroup_arithmetic", d->subgroup_arithmetic, d->use_subgroup_arithmetic },
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        printf("%s\"%s\": {\"supported\": %s, \"used\": %s}", i ? ", " : "", f[i].name, f[i].has ? "true" : "false",
               f[i].used ? "true" : "false");
    printf("},\n   \"limits\": {\"max_storage_buffer_range\": %llu, \"max_allocation_size\": %llu, "
           "\"max_shared_memory\": %u, \"max_workgroup_invocations\": %u, \"timestamp_period_ns\": %g}}%s\n",
           (unsigned long long)d->max_storage_buffer_range, (unsigned long long)d->max_allocation_size,
           d->max_shared_memory, d->max_workgroup_invocations, d->timestamp_period_ns, last ? "" : ",");
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
            return app_fail("devices: unknown option '%s'", argv[i]);
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
    if (json)
        printf("[\n");
    for (int i = 0; i < n; i++) {
        rt_device_info d;
        rt_instance_device_info(inst, i, &d);
        if (json)
            print_json(&d, i == chosen, i == n - 1);
        else
            print_text(&d, i == chosen);
    }
    if (json)
        printf("]\n");
    else if (n == 0)
        printf("no Vulkan devices (Debian: apt-get install mesa-vulkan-drivers for the CPU driver, lavapipe)\n");
    if (chosen < 0 && n > 0)
        fprintf(stderr, "vkllm: %s\n", rt_instance_errmsg(inst));
    rt_instance_destroy(inst);
    return n == 0 ? 1 : 0;
}
