/* cmd_bench_shader.c: `vkllm bench shader FILE.comp`: a user's GLSL compute shader, compiled at run time
 * with libshaderc (Vulkan 1.2, SPIR-V 1.5), dispatched on storage buffers given on the command line and
 * timed with GPU timestamps.
 *
 * The first run is the warm-up (lavapipe and some drivers compile the pipeline when it first runs) and
 * the one --check and --dump look at: the buffers as one dispatch leaves them from their initial
 * contents. Then -r runs are timed one submission each; median, min and max of the dispatch's GPU time
 * (host wall time where the queue has no timestamps), and GB/s and GFLOP/s from --bytes and --flops. */
#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <shaderc/shaderc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_shader.h"
#include "rt.h"

#define MAX_DEFINES 64
#define MAX_INCLUDES 32
#define MAX_IO 16
#define MAX_PUSH 256

enum buf_init { INIT_ZERO, INIT_RANDOM, INIT_FILE };

typedef struct buf_opt {
    uint64_t size;       /* bytes as asked; the buffer is this rounded up to 4 */
    enum buf_init init;
    const char *path;    /* INIT_FILE */
} buf_opt;

typedef struct io_opt {  /* --check B=FILE[:tol], --dump B=FILE */
    int binding;
    char path[1024];
    double tol;
} io_opt;

typedef struct shader_opts {
    app_device_opts dev;
    const char *file;
    const char *defines[MAX_DEFINES];
    int n_defines;
    const char *includes[MAX_INCLUDES];
    int n_includes;
    buf_opt bufs[RT_KERNEL_MAX_BUFFERS];
    int n_bufs;
    uint8_t push[MAX_PUSH];
    uint32_t push_bytes;
    rt_spec spec[RT_KERNEL_MAX_SPEC];
    int n_spec;
    uint32_t groups[3];
    int runs;
    uint64_t seed;
    double bytes, flops; /* per dispatch, 0: not given */
    bool json;
    io_opt checks[MAX_IO], dumps[MAX_IO];
    int n_checks, n_dumps;
} shader_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vkllm bench shader FILE.comp [options]\n"
            "\n"
            "Compiles a GLSL compute shader (entry point main) for Vulkan 1.2 / SPIR-V 1.5 with libshaderc,\n"
            "binds the buffers given, in order, at set 0, bindings 0, 1, 2 ..., dispatches it once as a warm-up\n"
            "(what --check and --dump see), then times N runs with GPU timestamps: median, min and max.\n"
            "\n"
            "  --define K=V, -D K=V   a preprocessor macro (repeatable; --define K gives K the value 1)\n"
            "  -I DIR                 where #include \"x.glsl\" looks after the including file's folder\n"
            "  --buffer SIZE[:INIT]   a storage buffer of SIZE bytes (K, M, G: 2^10, 2^20, 2^30), repeatable;\n"
            "                         INIT: zero (default), random (floats in [-1, 1], see --seed),\n"
            "                         file=PATH (its bytes, the rest zero)\n"
            "  --push T:V,...         the push constants, packed in order; T: u32, i32, f32\n"
            "  --spec ID=T:V          a specialization constant (repeatable); T: u32, i32, f32\n"
            "  --groups X[,Y[,Z]]     workgroups to dispatch (default 1,1,1)\n"
            "  -r, --runs N           timed runs after the warm-up (default 20)\n"
            "  --seed N               the seed of random buffers (default 1)\n"
            "  --bytes N, --flops N   bytes moved and arithmetic done by one dispatch: adds GB/s, GFLOP/s\n"
            "  --check B=FILE[:TOL]   binding B after the warm-up against FILE's f32 values: fails (exit 1)\n"
            "                         when the largest absolute error exceeds TOL (default 1e-5) times\n"
            "                         FILE's largest absolute value\n"
            "  --dump B=FILE          writes binding B after the warm-up to FILE\n"
            "  --json                 one JSON object instead of the text\n"
            "  --device N             the Vulkan device (see `vkllm devices`); also VKLLM_DEVICE=N\n"
            "  --validation           with the Khronos validation layer\n"
            "\n"
            "Compile errors show the shader's file and line; every error exits 1.\n");
}

/* ---------------------------------------------------------------- parsing */

/* "4096", "4K", "1.5M": a count with an optional binary suffix; false when malformed or not in
 * [1, 2^53]. */
static bool parse_count(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v))
        return false;
    if (*end == 'K' || *end == 'k')
        v *= 1024.0, end++;
    else if (*end == 'M' || *end == 'm')
        v *= 1048576.0, end++;
    else if (*end == 'G' || *end == 'g')
        v *= 1073741824.0, end++;
    *out = v;
    return *end == 0 && v >= 1 && v <= 9007199254740992.0;
}

/* "u32:V", "i32:V" or "f32:V", the first len bytes of s, as the value's 4 bytes. */
static bool parse_typed(const char *s, size_t len, uint32_t *bits)
{
    char buf[64];
    if (len >= sizeof buf || len < 5 || s[3] != ':')
        return false;
    memcpy(buf, s, len);
    buf[len] = 0;
    const char *v = buf + 4;
    char *end;
    errno = 0;
    if (!strncmp(buf, "u32", 3)) {
        if (*v == '-')
            return false;
        unsigned long long x = strtoull(v, &end, 0);
        if (x > 0xFFFFFFFFull)
            return false;
        *bits = (uint32_t)x;
    } else if (!strncmp(buf, "i32", 3)) {
        long long x = strtoll(v, &end, 0);
        if (x < INT32_MIN || x > INT32_MAX)
            return false;
        int32_t i = (int32_t)x;
        memcpy(bits, &i, 4);
    } else if (!strncmp(buf, "f32", 3)) {
        float f = strtof(v, &end);
        memcpy(bits, &f, 4);
    } else
        return false;
    return !errno && end != v && *end == 0;
}

static bool parse_buffer(const char *s, buf_opt *b)
{
    const char *colon = strchr(s, ':');
    char size[64];
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    double v;
    if (n >= sizeof size)
        return false;
    memcpy(size, s, n);
    size[n] = 0;
    if (!parse_count(size, &v) || v != floor(v))
        return app_fail("--buffer %s: the size is not a whole number of bytes (K, M, G allowed)", s), false;
    b->size = (uint64_t)v;
    b->init = INIT_ZERO;
    if (!colon || !strcmp(colon + 1, "zero"))
        return true;
    if (!strcmp(colon + 1, "random"))
        b->init = INIT_RANDOM;
    else if (!strncmp(colon + 1, "file=", 5) && colon[6]) {
        b->init = INIT_FILE;
        b->path = colon + 6;
    } else
        return app_fail("--buffer %s: the contents are zero, random or file=PATH", s), false;
    return true;
}

static bool parse_push(const char *s, shader_opts *o)
{
    o->push_bytes = 0; /* a second --push replaces the first */
    for (const char *p = s; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        uint32_t bits;
        if (!parse_typed(p, len, &bits))
            return app_fail("--push %s: '%.*s' is not u32:V, i32:V or f32:V", s, (int)len, p), false;
        if (o->push_bytes + 4 > MAX_PUSH)
            return app_fail("--push: more than %d bytes", MAX_PUSH), false;
        memcpy(o->push + o->push_bytes, &bits, 4);
        o->push_bytes += 4;
        p += len + (comma != NULL);
    }
    return o->push_bytes > 0 || (app_fail("--push needs values"), false);
}

static bool parse_spec(const char *s, shader_opts *o)
{
    char *end;
    errno = 0;
    unsigned long id = strtoul(s, &end, 10);
    if (o->n_spec == RT_KERNEL_MAX_SPEC)
        return app_fail("--spec: more than %d constants", RT_KERNEL_MAX_SPEC), false;
    rt_spec *sp = &o->spec[o->n_spec];
    if (errno || end == s || *end != '=' || id > 0xFFFFFFFFul || !parse_typed(end + 1, strlen(end + 1), &sp->bits))
        return app_fail("--spec %s: not ID=u32:V, ID=i32:V or ID=f32:V", s), false;
    sp->id = (uint32_t)id;
    o->n_spec++;
    return true;
}

static bool parse_groups(const char *s, uint32_t g[3])
{
    g[0] = g[1] = g[2] = 1;
    const char *p = s;
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || *p == '-' || v == 0 || v > 0xFFFFFFFFul)
            break;
        g[i] = (uint32_t)v;
        if (*end == 0)
            return true;
        if (*end != ',')
            break;
        p = end + 1;
    }
    return app_fail("--groups %s: not X, X,Y or X,Y,Z (positive integers)", s), false;
}

/* "B=FILE" or, with tol, "B=FILE[:TOL]" */
static bool parse_io(const char *flag, const char *s, bool tol, io_opt *io)
{
    char *end;
    errno = 0;
    long b = strtol(s, &end, 10);
    if (errno || end == s || *end != '=' || b < 0 || b >= RT_KERNEL_MAX_BUFFERS || !end[1])
        return app_fail("%s %s: not BINDING=FILE%s", flag, s, tol ? "[:TOL]" : ""), false;
    io->binding = (int)b;
    io->tol = 1e-5;
    snprintf(io->path, sizeof io->path, "%s", end + 1);
    char *colon = tol ? strrchr(io->path, ':') : NULL;
    if (colon) {
        char *e;
        errno = 0;
        double t = strtod(colon + 1, &e);
        if (!errno && e != colon + 1 && *e == 0 && t >= 0 && isfinite(t)) {
            io->tol = t;
            *colon = 0;
        } /* else the colon is part of the file name */
    }
    return true;
}

/* Returns -1 when the options are good, else the exit status. */
static int parse(int argc, char **argv, shader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dev.device = -1;
    o->groups[0] = o->groups[1] = o->groups[2] = 1;
    o->runs = 20;
    o->seed = 1;
    bool bad = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long n;
        double d;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else if (app_opt_multi(a, "-D", "--define")) {
            if (!app_arg_str(argc, argv, &i, &v))
                return app_bad_args(usage);
            if (o->n_defines == MAX_DEFINES || !*v || *v == '=')
                return app_fail("%s: an empty name, or more than %d macros", a, MAX_DEFINES);
            o->defines[o->n_defines++] = v;
        } else if (app_opt_multi(a, "-I", NULL)) {
            if (!app_arg_str(argc, argv, &i, &v))
                return app_bad_args(usage);
            if (o->n_includes == MAX_INCLUDES)
                return app_fail("-I: more than %d folders", MAX_INCLUDES);
            o->includes[o->n_includes++] = v;
        } else if (app_opt_multi(a, NULL, "--buffer")) {
            if (!app_arg_str(argc, argv, &i, &v))
                return app_bad_args(usage);
            if (o->n_bufs == RT_KERNEL_MAX_BUFFERS)
                return app_fail("--buffer: at most %d buffers", RT_KERNEL_MAX_BUFFERS);
            if (!parse_buffer(v, &o->bufs[o->n_bufs++]))
                return 1;
        } else if (app_opt_multi(a, NULL, "--push")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_push(v, o))
                return app_bad_args(usage);
        } else if (app_opt_multi(a, NULL, "--spec")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_spec(v, o))
                return app_bad_args(usage);
        } else if (app_opt(a, NULL, "--groups")) {
            if (!app_arg_str(argc, argv, &i, &v) || !parse_groups(v, o->groups))
                return app_bad_args(usage);
        } else if (app_opt(a, "-r", "--runs")) {
            if (!app_arg_int(argc, argv, &i, &n, 1, 1000000))
                return app_bad_args(usage);
            o->runs = (int)n;
        } else if (app_opt(a, NULL, "--seed")) {
            if (!app_arg_int(argc, argv, &i, &n, 0, 0x7FFFFFFFl))
                return app_bad_args(usage);
            o->seed = (uint64_t)n;
        } else if (app_opt(a, NULL, "--bytes") || app_opt(a, NULL, "--flops")) {
            if (!app_arg_str(argc, argv, &i, &v))
                return app_bad_args(usage);
            if (!parse_count(v, &d))
                return app_fail("%s %s: not a positive number (K, M, G allowed)", a, v);
            *(a[2] == 'b' ? &o->bytes : &o->flops) = d;
        } else if (app_opt_multi(a, NULL, "--check") || app_opt_multi(a, NULL, "--dump")) {
            bool check = a[2] == 'c';
            if (!app_arg_str(argc, argv, &i, &v))
                return app_bad_args(usage);
            if ((check ? o->n_checks : o->n_dumps) == MAX_IO)
                return app_fail("%s: at most %d", a, MAX_IO);
            io_opt *io = check ? &o->checks[o->n_checks++] : &o->dumps[o->n_dumps++];
            if (!parse_io(a, v, check, io))
                return 1;
        } else if (app_device_flag(argc, argv, &i, &o->dev, &bad)) {
            if (bad)
                return 1;
        } else if (a[0] == '-' || o->file) {
            return app_usage_fail(usage, "bench shader: unknown option '%s'", a);
        } else
            o->file = a;
    }
    if (!o->file) {
        usage(stderr);
        return app_fail("bench shader: no shader file given");
    }
    for (int k = 0; k < o->n_checks + o->n_dumps; k++) {
        const io_opt *io = k < o->n_checks ? &o->checks[k] : &o->dumps[k - o->n_checks];
        if (io->binding >= o->n_bufs)
            return app_fail("%s %d=%s: there is no buffer %d (%d given)", k < o->n_checks ? "--check" : "--dump",
                            io->binding, io->path, io->binding, o->n_bufs);
    }
    return -1;
}

/* ---------------------------------------------------------------- compiling */

/* An #include: where it was found (its name in messages) and its text; on failure the name is empty
 * and the text says why, as libshaderc expects. */
typedef struct include_file {
    shaderc_include_result res;
    char name[2048];
    char *text;
} include_file;

static char *read_quiet(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = 0;
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static shaderc_include_result *include_resolve(void *user, const char *requested, int type, const char *requesting,
                                               size_t depth)
{
    const shader_opts *o = user;
    (void)type; /* "x" and <x> are looked for alike */
    include_file *inc = calloc(1, sizeof *inc);
    if (!inc)
        return NULL;
    size_t len = 0;
    if (depth > 32) {
        inc->text = strdup("#include nested more than 32 deep");
    } else if (requested[0] == '/') {
        snprintf(inc->name, sizeof inc->name, "%s", requested);
        inc->text = read_quiet(inc->name, &len);
    } else {
        /* beside the including file first, then the -I folders in order; "x" and <x> alike (glslang
         * asks for "x" as <x> again when the first answer is that there is none) */
        const char *slash = strrchr(requesting, '/');
        if (slash)
            snprintf(inc->name, sizeof inc->name, "%.*s/%s", (int)(slash - requesting), requesting, requested);
        else
            snprintf(inc->name, sizeof inc->name, "%s", requested);
        inc->text = read_quiet(inc->name, &len);
        for (int i = 0; !inc->text && i < o->n_includes; i++) {
            snprintf(inc->name, sizeof inc->name, "%s/%s", o->includes[i], requested);
            inc->text = read_quiet(inc->name, &len);
        }
    }
    if (inc->text && inc->name[0]) {
        inc->res.source_name = inc->name;
        inc->res.source_name_length = strlen(inc->name);
        inc->res.content = inc->text;
        inc->res.content_length = len;
    } else {
        if (!inc->text) {
            char why[2200];
            snprintf(why, sizeof why, "cannot find %s beside the including file or in the -I folders (%d given)",
                     requested, o->n_includes);
            inc->text = strdup(why);
        }
        inc->name[0] = 0;
        inc->res.source_name = "";
        inc->res.content = inc->text ? inc->text : "out of memory";
        inc->res.content_length = strlen(inc->res.content);
    }
    inc->res.user_data = inc;
    return &inc->res;
}

static void include_release(void *user, shaderc_include_result *res)
{
    (void)user;
    if (!res)
        return;
    include_file *inc = res->user_data;
    free(inc->text);
    free(inc);
}

/* Whether src has a #version line: without one glslang compiles as GLSL 1.10, which has no compute
 * shaders, and prints its whole built-in library to stdout while failing. */
static bool has_version(const char *src)
{
    for (const char *p = src; p; p = strchr(p, '\n')) {
        p += *p == '\n';
        p += strspn(p, " \t");
        if (*p == '#' && !strncmp(p + 1 + strspn(p + 1, " \t"), "version", 7))
            return true;
    }
    return false;
}

/* The shader as SPIR-V (malloc'd words), or NULL after printing the compiler's messages. */
static uint32_t *compile(const shader_opts *o, size_t *words)
{
    size_t len;
    char *src = app_read_file(o->file, &len);
    if (!src)
        return NULL;
    if (!has_version(src)) {
        free(src);
        app_fail("%s: no #version line (a compute shader starts with `#version 450` or later)", o->file);
        return NULL;
    }
    uint32_t *spv = NULL;
    shaderc_compiler_t c = shaderc_compiler_initialize();
    shaderc_compile_options_t co = shaderc_compile_options_initialize();
    shaderc_compilation_result_t r = NULL;
    if (!c || !co) {
        app_fail("libshaderc could not start");
        goto out_free;
    }
    shaderc_compile_options_set_source_language(co, shaderc_source_language_glsl);
    shaderc_compile_options_set_target_env(co, shaderc_target_env_vulkan, shaderc_env_version_vulkan_1_2);
    shaderc_compile_options_set_target_spirv(co, shaderc_spirv_version_1_5);
    shaderc_compile_options_set_optimization_level(co, shaderc_optimization_level_performance);
    for (int i = 0; i < o->n_defines; i++) {
        const char *d = o->defines[i], *eq = strchr(d, '=');
        if (eq)
            shaderc_compile_options_add_macro_definition(co, d, (size_t)(eq - d), eq + 1, strlen(eq + 1));
        else
            shaderc_compile_options_add_macro_definition(co, d, strlen(d), "1", 1);
    }
    shaderc_compile_options_set_include_callbacks(co, include_resolve, include_release, (void *)o);
    r = shaderc_compile_into_spv(c, src, len, shaderc_compute_shader, o->file, "main", co);
    if (!r) {
        app_fail("%s: libshaderc failed", o->file);
        goto out_free;
    }
    const char *msg = shaderc_result_get_error_message(r);
    if (shaderc_result_get_compilation_status(r) != shaderc_compilation_status_success) {
        fputs(msg && *msg ? msg : "", stderr);
        app_fail("%s: %zu error%s", o->file, shaderc_result_get_num_errors(r),
                 shaderc_result_get_num_errors(r) == 1 ? "" : "s");
        goto out_free;
    }
    if (msg && *msg)
        fputs(msg, stderr); /* warnings */
    size_t bytes = shaderc_result_get_length(r);
    if (bytes % 4 || !(spv = malloc(bytes ? bytes : 4))) {
        app_fail("%s: a SPIR-V module of %zu bytes", o->file, bytes);
        goto out_free;
    }
    memcpy(spv, shaderc_result_get_bytes(r), bytes);
    *words = bytes / 4;
out_free:
    shaderc_result_release(r);
    shaderc_compile_options_release(co);
    shaderc_compiler_release(c);
    free(src);
    return spv;
}

/* ---------------------------------------------------------------- buffers */

/* splitmix64: random buffer b of seed s is the stream of seed s * 2^32 + b */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static bool init_buffer(const shader_opts *o, int i, rt_buffer *buf)
{
    const buf_opt *b = &o->bufs[i];
    size_t size = rt_buffer_size(buf);
    int rc;
    if (b->init == INIT_ZERO) {
        if ((rc = rt_buffer_fill(buf, 0, size, 0)))
            return app_fail("buffer %d: %s", i, rt_status_string(rc)), false;
        return true;
    }
    size_t n = 0;
    char *data = NULL;
    if (b->init == INIT_FILE) {
        if (!(data = app_read_file(b->path, &n)))
            return false;
        if (n > b->size) {
            free(data);
            return app_fail("--buffer %d: %s is %zu bytes, more than the buffer's %llu", i, b->path, n,
                            (unsigned long long)b->size), false;
        }
    }
    char *host = calloc(1, size);
    if (!host) {
        free(data);
        return app_fail("out of host memory"), false;
    }
    if (data)
        memcpy(host, data, n);
    else {
        uint64_t s = (o->seed << 32) + (uint64_t)i;
        for (size_t k = 0; k + 4 <= b->size; k += 4) {
            float f = (float)((double)(splitmix(&s) >> 40) / 8388608.0 - 1.0); /* [-1, 1) */
            memcpy(host + k, &f, 4);
        }
    }
    rc = rt_buffer_write(buf, 0, host, size);
    free(host);
    free(data);
    if (rc)
        return app_fail("buffer %d: %s", i, rt_status_string(rc)), false;
    return true;
}

typedef struct check_result {
    int64_t values, worst;
    double max_err, max_ref, tol_abs, got, want;
    bool ok;
} check_result;

/* --check: binding io->binding against the f32 values of io->path */
static bool run_check(const io_opt *io, rt_buffer *buf, check_result *cr)
{
    size_t n;
    char *ref = app_read_file(io->path, &n);
    if (!ref)
        return false;
    if (n % 4 || n == 0 || n > rt_buffer_size(buf)) {
        free(ref);
        return app_fail("--check %d=%s: %zu bytes, not a whole number of f32 values up to the buffer's %zu",
                        io->binding, io->path, n, rt_buffer_size(buf)), false;
    }
    float *got = malloc(n);
    if (!got || rt_buffer_read(buf, 0, got, n)) {
        free(got);
        free(ref);
        return app_fail("--check %d: cannot read the buffer", io->binding), false;
    }
    memset(cr, 0, sizeof *cr);
    cr->values = (int64_t)(n / 4);
    for (int64_t k = 0; k < cr->values; k++) {
        float want;
        memcpy(&want, ref + 4 * k, 4);
        double e = fabs((double)got[k] - want);
        if (!isfinite(got[k]) || !isfinite(e))
            e = INFINITY;
        if (fabs(want) > cr->max_ref)
            cr->max_ref = fabs(want);
        if (e > cr->max_err || (k == 0)) {
            cr->max_err = e;
            cr->worst = k;
            cr->got = got[k];
            cr->want = want;
        }
    }
    cr->tol_abs = io->tol * (cr->max_ref > 0 ? cr->max_ref : 1.0);
    cr->ok = cr->max_err <= cr->tol_abs;
    free(got);
    free(ref);
    return true;
}

static bool run_dump(const io_opt *io, rt_buffer *buf, uint64_t bytes)
{
    char *host = malloc(bytes ? bytes : 1);
    if (!host || rt_buffer_read(buf, 0, host, bytes)) {
        free(host);
        return app_fail("--dump %d: cannot read the buffer", io->binding), false;
    }
    char err[512];
    bool ok = app_write_file(io->path, host, bytes, err, sizeof err);
    free(host);
    if (!ok)
        return app_fail("--dump %d: %s", io->binding, err), false;
    return true;
}

/* ---------------------------------------------------------------- running */

static double now_ns(void) { return app_now() * 1e9; }

/* One submission; the dispatch's GPU time, or the wall time when there are no timestamps. */
static int run_once(rt_seq *seq, double *ns)
{
    double t0 = now_ns();
    int rc = rt_seq_run(seq);
    double wall = now_ns() - t0;
    if (rc)
        return rc;
    const char *k;
    if (rt_seq_timing_count(seq) != 1 || rt_seq_timing(seq, 0, &k, ns))
        *ns = wall;
    return RT_OK;
}

/* 6 significant digits (a timing holds no more); null when not finite */
static cJSON *json_measured(double v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%.6g", v);
    return app_json_num(isfinite(v) ? strtod(digits, NULL) : NAN);
}

static const char *init_name(const buf_opt *b)
{
    return b->init == INIT_RANDOM ? "random" : b->init == INIT_FILE ? "file" : "zero";
}

typedef struct report {
    const shader_opts *o;
    const rt_device_info *dev;
    const char *kernel;
    uint32_t wg[3], shared;
    bool timestamps;
    double median, min, max;
    check_result checks[MAX_IO];
} report;

static void print_text(const report *r)
{
    const shader_opts *o = r->o;
    printf("shader     %s: workgroup %ux%ux%u, %d buffer%s, %u bytes of push constants", o->file, r->wg[0], r->wg[1],
           r->wg[2], o->n_bufs, o->n_bufs == 1 ? "" : "s", o->push_bytes);
    if (r->shared)
        printf(", %u bytes shared", r->shared);
    printf("\ndevice     %s (%s, %s)\n", r->dev->name, r->dev->type_name, r->dev->driver_name);
    double inv = (double)o->groups[0] * o->groups[1] * o->groups[2] * r->wg[0] * r->wg[1] * r->wg[2];
    printf("dispatch   %ux%ux%u workgroups (%.0f invocations), %d run%s after a warm-up\n", o->groups[0], o->groups[1],
           o->groups[2], inv, o->runs, o->runs == 1 ? "" : "s");
    for (int i = 0; i < o->n_checks; i++) {
        const check_result *c = &r->checks[i];
        printf("check      binding %d = %s: %lld values, max abs error %.3g (tolerance %.3g): ok\n",
               o->checks[i].binding, o->checks[i].path, (long long)c->values, c->max_err, c->tol_abs);
    }
    printf("time       median %.1f us, min %.1f us, max %.1f us (%s)\n", r->median / 1e3, r->min / 1e3, r->max / 1e3,
           r->timestamps ? "GPU timestamps" : "no GPU timestamps: wall time");
    if (o->bytes > 0)
        printf("bandwidth  %.2f GB/s (%.0f bytes per dispatch)\n", o->bytes / r->median, o->bytes);
    if (o->flops > 0)
        printf("compute    %.2f GFLOP/s (%.0f flops per dispatch)\n", o->flops / r->median, o->flops);
}

static int print_json(const report *r)
{
    const shader_opts *o = r->o;
    bool ok = true;
    cJSON *root = cJSON_CreateObject(), *dev = cJSON_CreateObject(), *wg = cJSON_CreateArray(),
          *groups = cJSON_CreateArray(), *bufs = cJSON_CreateArray(), *time = cJSON_CreateObject(),
          *checks = cJSON_CreateArray();
    ok &= app_json_add(root, "shader", cJSON_CreateString(o->file));
    ok &= app_json_add(root, "kernel", cJSON_CreateString(r->kernel));
    ok &= app_json_add(dev, "index", cJSON_CreateNumber(r->dev->index));
    ok &= app_json_add(dev, "name", cJSON_CreateString(r->dev->name));
    ok &= app_json_add(dev, "type", cJSON_CreateString(r->dev->type_name));
    ok &= app_json_add(dev, "driver", cJSON_CreateString(r->dev->driver_name));
    ok &= app_json_add(dev, "gpu_timestamps", cJSON_CreateBool(r->timestamps));
    ok &= app_json_add(root, "device", dev);
    for (int i = 0; i < 3; i++) {
        ok &= app_json_add(wg, NULL, cJSON_CreateNumber(r->wg[i]));
        ok &= app_json_add(groups, NULL, cJSON_CreateNumber(o->groups[i]));
    }
    ok &= app_json_add(root, "workgroup", wg);
    ok &= app_json_add(root, "groups", groups);
    ok &= app_json_add(root, "shared_bytes", cJSON_CreateNumber(r->shared));
    for (int i = 0; i < o->n_bufs; i++) {
        cJSON *b = cJSON_CreateObject();
        ok &= app_json_add(b, "binding", cJSON_CreateNumber(i));
        ok &= app_json_add(b, "bytes", app_json_uint(o->bufs[i].size));
        ok &= app_json_add(b, "init", cJSON_CreateString(init_name(&o->bufs[i])));
        ok &= app_json_add(bufs, NULL, b);
    }
    ok &= app_json_add(root, "buffers", bufs);
    ok &= app_json_add(root, "push_bytes", cJSON_CreateNumber(o->push_bytes));
    ok &= app_json_add(root, "runs", cJSON_CreateNumber(o->runs));
    ok &= app_json_add(time, "median", json_measured(r->median / 1e3));
    ok &= app_json_add(time, "min", json_measured(r->min / 1e3));
    ok &= app_json_add(time, "max", json_measured(r->max / 1e3));
    ok &= app_json_add(root, "time_us", time);
    ok &= app_json_add(root, "bytes", app_json_num(o->bytes > 0 ? o->bytes : NAN));
    ok &= app_json_add(root, "flops", app_json_num(o->flops > 0 ? o->flops : NAN));
    ok &= app_json_add(root, "gbps", json_measured(o->bytes > 0 ? o->bytes / r->median : NAN));
    ok &= app_json_add(root, "gflops", json_measured(o->flops > 0 ? o->flops / r->median : NAN));
    for (int i = 0; i < o->n_checks; i++) {
        cJSON *c = cJSON_CreateObject();
        ok &= app_json_add(c, "binding", cJSON_CreateNumber(o->checks[i].binding));
        ok &= app_json_add(c, "file", cJSON_CreateString(o->checks[i].path));
        ok &= app_json_add(c, "values", app_json_int(r->checks[i].values));
        ok &= app_json_add(c, "max_abs_error", app_json_num(r->checks[i].max_err));
        ok &= app_json_add(c, "tolerance", app_json_num(r->checks[i].tol_abs));
        ok &= app_json_add(c, "ok", cJSON_CreateBool(r->checks[i].ok));
        ok &= app_json_add(checks, NULL, c);
    }
    ok &= app_json_add(root, "checks", checks);
    return app_json_print(root, ok);
}

/* "saxpy" for "bench/saxpy.comp" */
static void kernel_name(const char *path, char *out, size_t n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(out, n, "%.*s", len, base);
}

static int bench(const shader_opts *o, const uint32_t *spv, size_t words)
{
    report rep = { .o = o };
    char name[64];
    kernel_name(o->file, name, sizeof name);
    rep.kernel = name;
    rt_instance *inst = NULL;
    rt_ctx *ctx = NULL;
    rt_kernel *k = NULL;
    rt_seq *seq = NULL;
    rt_buffer *bufs[RT_KERNEL_MAX_BUFFERS] = { 0 };
    double *t = NULL;
    int rc = 1;
    rt_instance_desc id = { .validation = o->dev.validation };
    if (rt_instance_create(&id, &inst)) {
        app_fail("%s", rt_instance_errmsg(inst));
        goto out;
    }
    rt_ctx_desc cd = { .device = o->dev.device, .profiling = true };
    if (rt_ctx_create(inst, &cd, &ctx)) {
        app_fail("%s", rt_ctx_errmsg(ctx));
        goto out;
    }
    rep.dev = rt_ctx_device(ctx);
    rep.timestamps = rep.dev->timestamp_period_ns > 0;
    for (int i = 0; i < o->n_bufs; i++) {
        uint64_t size = (o->bufs[i].size + 3) / 4 * 4;
        if (size > rep.dev->max_storage_buffer_range) {
            app_fail("buffer %d: %llu bytes, above the device's binding range (%llu)", i, (unsigned long long)size,
                     (unsigned long long)rep.dev->max_storage_buffer_range);
            goto out;
        }
        if (rt_buffer_create(ctx, RT_MEM_DEVICE, (size_t)size, &bufs[i])) {
            app_fail("buffer %d: %s", i, rt_ctx_errmsg(ctx));
            goto out;
        }
        if (!init_buffer(o, i, bufs[i]))
            goto out;
    }
    rt_kernel_desc kd = { .name = name, .spirv = spv, .words = words, .n_buffers = o->n_bufs,
                          .push_bytes = o->push_bytes, .spec = o->spec, .n_spec = o->n_spec };
    if (rt_kernel_create(ctx, &kd, &k)) {
        app_fail("%s", rt_ctx_errmsg(ctx));
        goto out;
    }
    rt_kernel_workgroup(k, rep.wg, &rep.shared);
    if (rt_seq_create(ctx, &seq)) {
        app_fail("%s", rt_ctx_errmsg(ctx));
        goto out;
    }
    rt_ref refs[RT_KERNEL_MAX_BUFFERS];
    for (int i = 0; i < o->n_bufs; i++)
        refs[i] = rt_at(bufs[i], 0);
    rt_seq_begin(seq);
    rt_op_kernel(seq, k, refs, o->push, o->groups[0], o->groups[1], o->groups[2]);
    if (rt_seq_end(seq)) {
        app_fail("%s: %s", o->file, rt_seq_errmsg(seq));
        goto out;
    }
    double ns;
    int vrc;
    if ((vrc = run_once(seq, &ns))) { /* the warm-up, and what --check and --dump see */
        app_fail("%s: %s: %s", o->file, rt_status_string(vrc), rt_seq_errmsg(seq));
        goto out;
    }
    for (int i = 0; i < o->n_dumps; i++)
        if (!run_dump(&o->dumps[i], bufs[o->dumps[i].binding], o->bufs[o->dumps[i].binding].size))
            goto out;
    for (int i = 0; i < o->n_checks; i++) {
        check_result *c = &rep.checks[i];
        if (!run_check(&o->checks[i], bufs[o->checks[i].binding], c))
            goto out;
        if (!c->ok) {
            app_fail("--check %d=%s: max abs error %.6g at value %lld (got %.9g, expected %.9g), above the tolerance "
                     "%.3g (%g x max |expected| %.6g)", o->checks[i].binding, o->checks[i].path, c->max_err,
                     (long long)c->worst, c->got, c->want, c->tol_abs, o->checks[i].tol, c->max_ref);
            goto out;
        }
    }
    if (!(t = malloc(sizeof *t * (size_t)o->runs))) {
        app_fail("out of host memory");
        goto out;
    }
    for (int i = 0; i < o->runs; i++)
        if ((vrc = run_once(seq, &t[i]))) {
            app_fail("%s: %s: %s", o->file, rt_status_string(vrc), rt_seq_errmsg(seq));
            goto out;
        }
    qsort(t, (size_t)o->runs, sizeof *t, app_cmp_double);
    rep.min = t[0];
    rep.max = t[o->runs - 1];
    rep.median = o->runs % 2 ? t[o->runs / 2] : 0.5 * (t[o->runs / 2 - 1] + t[o->runs / 2]);
    if (o->dev.validation && rt_instance_validation_count(inst)) {
        app_fail("%u validation messages", rt_instance_validation_count(inst));
        goto out;
    }
    if (o->json)
        rc = print_json(&rep);
    else {
        print_text(&rep);
        rc = 0;
    }
out:
    free(t);
    rt_seq_destroy(seq);
    rt_kernel_destroy(k);
    for (int i = RT_KERNEL_MAX_BUFFERS - 1; i >= 0; i--)
        rt_buffer_destroy(bufs[i]);
    rt_ctx_destroy(ctx);
    if (rc == 0 && inst && o->dev.validation && rt_instance_validation_count(inst))
        rc = app_fail("%u validation messages", rt_instance_validation_count(inst));
    rt_instance_destroy(inst);
    return rc ? 1 : 0;
}

int bench_shader(int argc, char **argv)
{
    shader_opts *o = malloc(sizeof *o);
    if (!o)
        return app_fail("out of host memory");
    int rc = parse(argc, argv, o);
    if (rc < 0) {
        size_t words = 0;
        uint32_t *spv = compile(o, &words);
        rc = spv ? bench(o, spv, words) : 1;
        free(spv);
    }
    free(o);
    return rc;
}
