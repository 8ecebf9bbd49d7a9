/* test_runtime.c: devices, buffers (round trips up to and beyond the binding range), re-submission of a
 * recorded sequence with a changed parameter, and pipeline-cache reuse. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vulkan/vulkan.h>

#include "util.h"

static void test_devices(tu_gpu *g)
{
    int n = rt_instance_device_count(g->inst);
    CHECK(n >= 1, "no devices");
    for (int i = 0; i < n; i++) {
        rt_device_info d;
        CHECK(rt_instance_device_info(g->inst, i, &d) == RT_OK, "device %d info", i);
        CHECK(d.name[0] && d.subgroup_size > 0 && d.n_heaps > 0, "device %d: empty info", i);
    }
    rt_device_info d;
    CHECK(rt_instance_device_info(g->inst, n, &d) == RT_ERR_NO_DEVICE, "device index past the end accepted");
    setenv("VKLLM_DEVICE", "99", 1);
    CHECK(rt_instance_default_device(g->inst) == -1, "VKLLM_DEVICE=99 accepted");
    setenv("VKLLM_DEVICE", "0", 1);
    CHECK(rt_instance_default_device(g->inst) == 0, "VKLLM_DEVICE=0 not honoured");
    unsetenv("VKLLM_DEVICE");
}

/* The line of `vkllm devices` output `out` for device i that starts with "   " key (NULL if none): the
 * device's block runs from its header line ("I* name" or "I name") to the next line that does not start
 * with a space. Copied into line. */
static const char *device_line(const char *out, int i, const char *key, char *line, size_t cap)
{
    int block = -1;
    for (const char *p = out; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (*p != ' ')
            block++;
        else if (block == i && len >= 3 + strlen(key) && !strncmp(p + 3, key, strlen(key))) {
            snprintf(line, cap, "%.*s", (int)len, p);
            return line;
        }
        p += len + (e != NULL);
    }
    return NULL;
}

/* `vkllm devices` says for every device what rt_device_info holds: each feature's yes / no, whether it
 * is enabled and used, the version vkllm runs it at, the subgroup size range and the cooperative-matrix
 * shapes; and VKLLM_NO_SUBGROUP=1 shows as subgroup arithmetic not used. */
static void devices_output(tu_gpu *g)
{
    const char *bin = getenv("VKLLM_BIN");
    static char out[1 << 16], no_sg[1 << 16];
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd, "%s devices %s", bin ? bin : "build/vkllm", tu_validation_flag());
    int rc = tu_run(cmd, out, sizeof out);
    CHECK(rc == 0, "`%s` exited %d", cmd, rc);
    snprintf(cmd, sizeof cmd, "VKLLM_NO_SUBGROUP=1 %s devices %s", bin ? bin : "build/vkllm", tu_validation_flag());
    rc = tu_run(cmd, no_sg, sizeof no_sg);
    CHECK(rc == 0, "`%s` exited %d", cmd, rc);
    for (int i = 0; i < rt_instance_device_count(g->inst); i++) {
        rt_device_info d;
        if (rt_instance_device_info(g->inst, i, &d))
            continue;
        CHECK(d.api_used >= VK_API_VERSION_1_2 || !d.usable, "device %d: usable at version %#x", i, d.api_used);
        CHECK(d.api_used <= d.api_version && (d.api_used & 0xFFF) == 0, "device %d: api_used %#x, api %#x", i,
              d.api_used, d.api_version);
        CHECK(d.subgroup_min_size <= d.subgroup_max_size && d.subgroup_min_size > 0, "device %d: subgroups %u..%u", i,
              d.subgroup_min_size, d.subgroup_max_size);
        CHECK(d.n_coopmat_f16 >= 0 && d.n_coopmat_f16 <= 8 && (d.coopmat || d.n_coopmat_f16 == 0),
              "device %d: %d cooperative-matrix shapes", i, d.n_coopmat_f16);
        char want[256];
        snprintf(want, sizeof want, "(vkllm: %u.%u)", VK_API_VERSION_MAJOR(d.api_used),
                 VK_API_VERSION_MINOR(d.api_used));
        CHECK(device_line(out, i, "api", line, sizeof line) && strstr(line, want), "device %d: no \"%s\" in\n%s", i,
              want, out);
        snprintf(want, sizeof want, "size control %u..%u", d.subgroup_min_size, d.subgroup_max_size);
        CHECK(device_line(out, i, "subgroup   ", line, sizeof line) && !strstr(line, want) == !d.subgroup_size_control,
              "device %d: subgroup size control %d, \"%s\" expected or not in\n%s", i, d.subgroup_size_control, want,
              out);
        struct { const char *name; bool has, enablable, en, used; } f[] = {
            { "fp16 arithmetic", d.fp16, true, d.en_fp16, d.use_fp16 },
            { "16-bit storage", d.storage16, true, d.en_storage16, d.use_storage16 },
            { "8-bit storage", d.storage8, true, d.en_storage8, d.use_storage8 },
            { "integer dot product", d.int_dot, true, d.en_int_dot, d.use_int_dot },
            { "subgroup size control", d.subgroup_size_control, true, d.en_subgroup_size_control,
              d.use_subgroup_size_control },
            { "cooperative matrix", d.coopmat, true, d.en_coopmat, d.use_coopmat },
            { "subgroup arithmetic", d.subgroup_arithmetic, false, false, d.use_subgroup_arithmetic },
        };
        for (size_t j = 0; j < sizeof f / sizeof f[0]; j++) {
            /* what is enabled or used must be there; the runtime enables all but cooperative matrices */
            CHECK((!f[j].en && !f[j].used) || f[j].has, "device %d: %s enabled or used but absent", i, f[j].name);
            CHECK(f[j].en == (f[j].has && f[j].enablable && strcmp(f[j].name, "cooperative matrix")),
                  "device %d: %s has %d, enabled %d", i, f[j].name, f[j].has, f[j].en);
            if (!device_line(out, i, f[j].name, line, sizeof line)) {
                CHECK(0, "device %d: no line for %s in\n%s", i, f[j].name, out);
                continue;
            }
            const char *v = line + 3 + strlen(f[j].name);
            while (*v == ' ')
                v++;
            bool said_used = strstr(v, "used") != NULL, said_enabled = strstr(v, "(enabled") != NULL;
            bool said_not = strstr(v, "not enabled") != NULL;
            CHECK(!strncmp(v, f[j].has ? "yes" : "no", f[j].has ? 3 : 2) && said_used == f[j].used &&
                      said_enabled == f[j].en && said_not == (f[j].has && f[j].enablable && !f[j].en),
                  "device %d: %s: has %d, enabled %d, used %d, but `devices` says \"%s\"", i, f[j].name, f[j].has,
                  f[j].en, f[j].used, line);
        }
        if (device_line(out, i, "cooperative matrix", line, sizeof line))
            for (int s = 0; s < d.n_coopmat_f16; s++) {
                snprintf(want, sizeof want, "%ux%ux%u -> %s", d.coopmat_f16[s].m, d.coopmat_f16[s].n,
                         d.coopmat_f16[s].k, d.coopmat_f16[s].acc_f32 ? "f32" : "f16");
                CHECK(strstr(line, want), "device %d: shape %s missing from \"%s\"", i, want, line);
            }
        CHECK(device_line(no_sg, i, "subgroup arithmetic", line, sizeof line) && !strstr(line, "used"),
              "device %d: subgroup arithmetic used with VKLLM_NO_SUBGROUP=1: \"%s\"", i, line);
    }
}

/* Writes a pattern to a buffer of `size` bytes in one call, reads it back, compares. */
static void round_trip(tu_gpu *g, rt_mem kind, size_t size)
{
    rt_buffer *b;
    int rc = rt_buffer_create(g->ctx, kind, size, &b);
    CHECK(rc == RT_OK, "buffer of %zu: %s", size, rt_ctx_errmsg(g->ctx));
    if (rc)
        return;
    uint32_t *src = malloc(size), *dst = malloc(size);
    for (size_t i = 0; i < size / 4; i++)
        src[i] = (uint32_t)(i * 2654435761u);
    CHECK(rt_buffer_write(b, 0, src, size) == RT_OK, "write %zu", size);
    memset(dst, 0, size);
    CHECK(rt_buffer_read(b, 0, dst, size) == RT_OK, "read %zu", size);
    CHECK(memcmp(src, dst, size) == 0, "round trip of %zu bytes differs", size);
    /* a range in the middle */
    CHECK(rt_buffer_read(b, size / 2, dst, 64) == RT_OK && !memcmp(dst, (char *)src + size / 2, 64), "partial read");
    CHECK(rt_buffer_read(b, size - 4, dst, 8) == RT_ERR_INVALID, "read past the end accepted");
    free(src);
    free(dst);
    rt_buffer_destroy(b);
}

/* An op over a table larger than one binding range: rows gathered from both sides of the range. */
static void beyond_binding_range(tu_gpu *g)
{
    const rt_device_info *d = rt_ctx_device(g->ctx);
    int64_t dim = 1024, n_table = (int64_t)(d->max_storage_buffer_range / (dim * 4)) + 300;
    rt_buffer *table, *ids, *y;
    CHECK(rt_buffer_create(g->ctx, RT_MEM_DEVICE, (size_t)(n_table * dim * 4), &table) == RT_OK, "big table");
    CHECK(rt_buffer_create(g->ctx, RT_MEM_UPLOAD, 16, &ids) == RT_OK, "ids");
    CHECK(rt_buffer_create(g->ctx, RT_MEM_READBACK, 4 * dim * 4, &y) == RT_OK, "y");
    float *row = malloc(dim * 4);
    int32_t want[4] = { 0, (int32_t)n_table - 1, (int32_t)(n_table / 2), (int32_t)n_table - 200 };
    for (int r = 0; r < 4; r++) {
        for (int64_t c = 0; c < dim; c++)
            row[c] = (float)(want[r] * 7 + c);
        rt_buffer_write(table, (size_t)want[r] * dim * 4, row, dim * 4);
    }
    rt_buffer_write(ids, 0, want, sizeof want);
    rt_seq *s;
    rt_seq_create(g->ctx, &s);
    rt_seq_begin(s);
    rt_op_get_rows(s, rt_at(y, 0), rt_at(table, 0), RT_F32, rt_at(ids, 0), 4, n_table, dim);
    int rc = rt_seq_end(s);
    CHECK(rc == RT_OK, "record: %s", rt_seq_errmsg(s));
    CHECK(rt_seq_run(s) == RT_OK, "run");
    float *out = rt_buffer_map(y);
    for (int r = 0; r < 4; r++)
        CHECK(out[r * dim] == (float)(want[r] * 7) && out[r * dim + dim - 1] == (float)(want[r] * 7 + dim - 1),
              "row %d (table row %d) gathered wrong: %g", r, want[r], out[r * dim]);
    rt_seq_destroy(s);
    free(row);
    rt_buffer_destroy(table);
    rt_buffer_destroy(ids);
    rt_buffer_destroy(y);
}

/* One recording, several submissions, the index read from a host-written buffer each time. */
static void resubmit(tu_gpu *g)
{
    rt_buffer *table, *ids, *y;
    float t[8 * 4];
    for (int i = 0; i < 32; i++)
        t[i] = (float)i;
    rt_buffer_create(g->ctx, RT_MEM_DEVICE, sizeof t, &table);
    rt_buffer_write(table, 0, t, sizeof t);
    rt_buffer_create(g->ctx, RT_MEM_UPLOAD, 4, &ids);
    rt_buffer_create(g->ctx, RT_MEM_READBACK, 16, &y);
    rt_seq *s;
    rt_seq_create(g->ctx, &s);
    rt_seq_begin(s);
    rt_op_get_rows(s, rt_at(y, 0), rt_at(table, 0), RT_F32, rt_at(ids, 0), 1, 8, 4);
    rt_op_scale(s, rt_at(y, 0), rt_at(y, 0), 4, 2.0f);
    CHECK(rt_seq_end(s) == RT_OK, "record: %s", rt_seq_errmsg(s));
    for (int32_t id = 7; id >= 0; id -= 3) {
        *(int32_t *)rt_buffer_map(ids) = id;
        CHECK(rt_seq_run(s) == RT_OK, "run %d", id);
        float *o = rt_buffer_map(y);
        CHECK(o[0] == 2.0f * (float)(id * 4) && o[3] == 2.0f * (float)(id * 4 + 3), "re-submission with id %d gave %g",
              id, o[0]);
    }
    /* a recording error is sticky and reported by rt_seq_end */
    rt_seq_begin(s);
    CHECK(rt_op_scale(s, rt_at(y, 0), rt_at(y, 0), 1000, 1.0f) == RT_ERR_INVALID, "op past a buffer's end accepted");
    CHECK(rt_op_scale(s, rt_at(y, 0), rt_at(y, 0), 4, 1.0f) == RT_ERR_INVALID, "error not sticky");
    CHECK(rt_seq_end(s) == RT_ERR_INVALID, "rt_seq_end lost the error");
    CHECK(rt_seq_submit(s) != RT_OK, "a failed recording was submitted");
    rt_seq_destroy(s);
    rt_buffer_destroy(table);
    rt_buffer_destroy(ids);
    rt_buffer_destroy(y);
}

/* The cache file is our header (device, driver, pipelineCacheUUID, size, hash) and the driver's bytes:
 * saved, it is used by the next context; changed by one byte, cut short, or replaced by another
 * program's bytes, it is ignored (and then overwritten whole); no temporary file is left beside it. */
static int64_t cache_run(tu_gpu *g, const char *path)
{
    rt_ctx *ctx;
    rt_ctx_desc cd = { .device = -1, .pipeline_cache = path };
    CHECK(rt_ctx_create(g->inst, &cd, &ctx) == RT_OK, "ctx with cache");
    rt_buffer *b;
    rt_buffer_create(ctx, RT_MEM_DEVICE, 64, &b);
    rt_seq *s;
    rt_seq_create(ctx, &s);
    rt_seq_begin(s);
    rt_op_scale(s, rt_at(b, 0), rt_at(b, 0), 16, 1.0f);
    CHECK(rt_seq_end(s) == RT_OK && rt_seq_run(s) == RT_OK, "scale with cache");
    int64_t loaded;
    int created;
    rt_ctx_pipeline_stats(ctx, &created, &loaded);
    CHECK(created == 1, "%d pipelines created for one op", created);
    rt_seq_destroy(s);
    rt_buffer_destroy(b);
    rt_ctx_destroy(ctx); /* saves the cache */
    return loaded;
}

static void pipeline_cache_damaged(tu_gpu *g, const char *path)
{
    size_t n;
    char *good = tu_read_file(path, &n);
    CHECK(good && n > 56 && !memcmp(good, "VKLLMPC1", 8), "the cache file has no vkllm header");
    if (!good || n <= 56) {
        free(good);
        return;
    }
    for (int k = 0; k < 4; k++) {
        char *bad = malloc(n);
        memcpy(bad, good, n);
        size_t len = n;
        if (k == 0) bad[n - 1] ^= 1;      /* one byte of the driver's data */
        else if (k == 1) bad[30] ^= 0x40; /* the UUID: another driver's */
        else if (k == 2) len = n - 3;     /* torn */
        else memset(bad, 0xA5, n);        /* not ours at all */
        FILE *f = fopen(path, "wb");
        CHECK(f && fwrite(bad, 1, len, f) == len && fclose(f) == 0, "write a damaged cache");
        free(bad);
        CHECK(cache_run(g, path) == 0, "damaged cache %d was used", k);
        CHECK(cache_run(g, path) > 0, "the cache was not rewritten after damage %d", k);
    }
    free(good);
    char cmd[256], out[256];
    snprintf(cmd, sizeof cmd, "ls '%s'.* 2>/dev/null | wc -l", path);
    CHECK(tu_run(cmd, out, sizeof out) == 0 && atoi(out) == 0, "temporary cache files left: %s", out);
}

static void pipeline_cache(tu_gpu *g)
{
    char path[] = "/tmp/vkllm-pcache-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
    int64_t loaded[2];
    for (int run = 0; run < 2; run++)
        loaded[run] = cache_run(g, path);
    CHECK(loaded[0] == 0 && loaded[1] > 0, "pipeline cache not reused (loaded %lld then %lld bytes)",
          (long long)loaded[0], (long long)loaded[1]);
    pipeline_cache_damaged(g, path);
    unlink(path);
}

/* The runtime's switches refuse values that are not theirs (at rt_instance_create), and the default
 * pipeline cache lives under an absolute XDG_CACHE_HOME only (a relative one is ignored: HOME's is used),
 * a path too long for it being an error rather than cut short. */
static void environment(tu_gpu *g)
{
    static const char *const vars[] = { "VKLLM_MATMUL", "VKLLM_NO_SUBGROUP", "VKLLM_ATTN_TILED", "VKLLM_STAGED_UPLOAD",
                                        "VKLLM_NO_SYNC_VALIDATION" };
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        setenv(vars[i], i ? "yes" : "fast", 1);
        rt_instance *inst = NULL;
        int rc = rt_instance_create(NULL, &inst);
        CHECK(rc == RT_ERR_INVALID && strstr(rt_instance_errmsg(inst), vars[i]), "%s with a bad value: %d '%s'", vars[i],
              rc, rt_instance_errmsg(inst));
        rt_instance_destroy(inst);
        setenv(vars[i], i ? "0" : "cpu", 1);
        CHECK(rt_instance_create(NULL, &inst) == RT_OK, "%s with a good value refused", vars[i]);
        rt_instance_destroy(inst);
        unsetenv(vars[i]);
    }

    char home[] = "/tmp/vkllm-home-XXXXXX", file[1200];
    CHECK(mkdtemp(home) != NULL, "mkdtemp");
    const char *old_home = getenv("HOME"), *old_xdg = getenv("XDG_CACHE_HOME");
    char *saved_home = old_home ? strdup(old_home) : NULL, *saved_xdg = old_xdg ? strdup(old_xdg) : NULL;
    setenv("HOME", home, 1);
    setenv("XDG_CACHE_HOME", "relative-cache", 1);
    cache_run(g, NULL); /* the default path: one pipeline made, the cache saved */
    CHECK(access("relative-cache", F_OK) != 0 || access("relative-cache/vkllm", F_OK) != 0,
          "the relative XDG_CACHE_HOME was used");
    snprintf(file, sizeof file, "%s/.cache/vkllm", home);
    CHECK(access(file, F_OK) == 0, "no cache under HOME when XDG_CACHE_HOME is relative");

    char *longdir = malloc(2100);
    memset(longdir, 'x', 2099);
    longdir[0] = '/';
    longdir[2099] = 0;
    setenv("XDG_CACHE_HOME", longdir, 1);
    rt_ctx *ctx = NULL;
    rt_ctx_desc cd = { .device = -1 };
    int rc = rt_ctx_create(g->inst, &cd, &ctx);
    CHECK(rc == RT_ERR_INVALID && strstr(rt_ctx_errmsg(ctx), "XDG_CACHE_HOME"), "an over-long XDG_CACHE_HOME: %d", rc);
    rt_ctx_destroy(ctx);
    free(longdir);

    if (saved_xdg)
        setenv("XDG_CACHE_HOME", saved_xdg, 1);
    else
        unsetenv("XDG_CACHE_HOME");
    if (saved_home)
        setenv("HOME", saved_home, 1);
    else
        unsetenv("HOME");
    free(saved_home);
    free(saved_xdg);
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    CHECK(system(cmd) == 0, "rm");
}

static void out_of_memory(tu_gpu *g)
{
    rt_buffer *b = NULL;
    int rc = rt_buffer_create(g->ctx, RT_MEM_DEVICE, (size_t)1 << 50, &b);
    CHECK(rc == RT_ERR_LIMIT || rc == RT_ERR_OUT_OF_MEMORY, "a 1 PiB buffer gave %d", rc);
    CHECK(b == NULL && strlen(rt_ctx_errmsg(g->ctx)) > 0, "no message for a failed allocation");
}

int main(void)
{
    tu_gpu g;
    if (!tu_gpu_open(&g))
        return tu_finish("test_runtime");
    test_devices(&g);
    devices_output(&g);
    round_trip(&g, RT_MEM_DEVICE, 4096);
    round_trip(&g, RT_MEM_READBACK, 1 << 20);
    round_trip(&g, RT_MEM_DEVICE, rt_ctx_device(g.ctx)->max_storage_buffer_range + (1 << 20));
    /* the discrete-GPU path: uploads through the two staging halves in turn (32 MiB each), here
     * 80 MiB + 12 bytes: three chunks, the last one short */
    setenv("VKLLM_STAGED_UPLOAD", "1", 1);
    round_trip(&g, RT_MEM_DEVICE, (80u << 20) + 12);
    unsetenv("VKLLM_STAGED_UPLOAD");
    beyond_binding_range(&g);
    resubmit(&g);
    pipeline_cache(&g);
    environment(&g);
    out_of_memory(&g);
    uint64_t reserved, used;
    rt_ctx_memory_usage(g.ctx, &reserved, &used);
    CHECK(used == 0, "%llu bytes still allocated after every buffer was destroyed", (unsigned long long)used);
    tu_gpu_close(&g);
    return tu_finish("test_runtime");
}
