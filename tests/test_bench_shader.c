/* test_bench_shader.c: `vkllm bench shader` ($VKLLM_BIN, set by tests/CMakeLists.txt) on bench/saxpy.comp:
 * its output checked against the C reference (--check, and the --dump file read back), --json, --define;
 * a wrong reference, a compile error (in the file and in an #include found through -I or beside the
 * file), a missing include, bad options and a shader whose bindings or push constants do not match
 * what is given all exit 1 with a message that says so. With the validation layer on (--validation). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static char dir[64], out[1 << 16];
static const char *bin;

static const char *path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static bool write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = false;
    CHECK(ok, "cannot write %s", p);
    return ok;
}

static bool write_text(const char *p, const char *text) { return write_file(p, text, strlen(text)); }

/* Runs `vkllm bench shader ARGS` (stderr into the output too); returns the exit status. */
static int bench(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' bench shader %s %s 2>&1", bin, args, tu_validation_flag());
    printf("running: %s\n", cmd);
    int rc = tu_run(cmd, out, sizeof out);
    if (rc != 0)
        printf("%s", out);
    return rc;
}

#define N 10000   /* not a multiple of the workgroup: the shader's bound check matters */
#define A 1.75f

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || !*bin) {
        CHECK(0, "VKLLM_BIN is not set (ctest sets it to the vkllm binary)");
        return tu_finish("test_bench_shader");
    }
    snprintf(dir, sizeof dir, "/tmp/vkllm-bench-shader-XXXXXX");
    if (!mkdtemp(dir)) {
        CHECK(0, "mkdtemp failed");
        return tu_finish("test_bench_shader");
    }
    tu_rng rng = { tu_seed("test_bench_shader") };
    static float x[N], y[N], ref[N], got[N];
    for (int i = 0; i < N; i++) {
        x[i] = tu_normal(&rng);
        y[i] = tu_normal(&rng);
        ref[i] = A * x[i] + y[i];
    }
    write_file(path("x.f32"), x, sizeof x);
    write_file(path("y.f32"), y, sizeof y);
    write_file(path("ref.f32"), ref, sizeof ref);
    char args[2048];

    /* saxpy against the reference, JSON out, the dumped y read back */
    snprintf(args, sizeof args,
             "bench/saxpy.comp --buffer %d:file=%s --buffer %d:file=%s --push u32:%d,f32:%g --groups %d -r 3 "
             "--check 1=%s --dump 1=%s --bytes %d --flops %d --json",
             4 * N, path("x.f32"), 4 * N, path("y.f32"), N, A, (N + 255) / 256, path("ref.f32"), path("out.f32"),
             12 * N, 2 * N);
    CHECK(bench(args) == 0, "saxpy --check failed");
    const char *ok = strstr(out, "\"ok\":");
    CHECK(ok && !strncmp(ok + 5 + strspn(ok + 5, " \t"), "true", 4), "no \"ok\": true in the JSON:\n%s", out);
    CHECK(strstr(out, "\"median\":") && strstr(out, "\"gbps\":") && strstr(out, "\"kernel\":\t\"saxpy\""),
          "the JSON lacks the time, GB/s or kernel name:\n%s", out);
    size_t n = 0;
    char *dump = tu_read_file(path("out.f32"), &n);
    CHECK(dump && n == sizeof got, "the dump is %zu bytes, %zu expected", n, sizeof got);
    if (dump && n == sizeof got) {
        memcpy(got, dump, sizeof got);
        double worst = 0;
        for (int i = 0; i < N; i++)
            worst = fmax(worst, fabs((double)got[i] - ref[i]));
        CHECK(worst < 1e-5, "the dumped y is off the reference by %g", worst);
    }
    free(dump);

    /* a reference off by 0.5 in one value fails the check */
    ref[1234] += 0.5f;
    write_file(path("bad_ref.f32"), ref, sizeof ref);
    snprintf(args, sizeof args,
             "bench/saxpy.comp --buffer %d:file=%s --buffer %d:file=%s --push u32:%d,f32:%g --groups %d -r 1 "
             "--check 1=%s",
             4 * N, path("x.f32"), 4 * N, path("y.f32"), N, A, (N + 255) / 256, path("bad_ref.f32"));
    CHECK(bench(args) == 1 && strstr(out, "--check 1=") && strstr(out, "at value 1234"),
          "a wrong reference was not reported:\n%s", out);

    /* the text report; --define changes the workgroup; random buffers */
    CHECK(bench("bench/saxpy.comp --define WG=128 --buffer 40K:random --buffer 40K:random --push u32:10240,f32:2 "
                "--groups 80 -r 2 --seed 7") == 0,
          "saxpy with --define WG=128 failed");
    CHECK(strstr(out, "workgroup 128x1x1") && strstr(out, "median"), "unexpected report:\n%s", out);

    /* compile errors name the file and line: in the shader, then in an include */
    mkdir(path("inc"), 0755);
    write_text(path("inc/twice.glsl"), "// found through -I\nfloat twice(float v) { return 2.0 * v; }\n");
    write_text(path("bad.comp"), "#version 450\nlayout(local_size_x = 1) in;\n#include \"twice.glsl\"\n"
                                 "void main() {\n    float v = twice(undeclared_thing);\n}\n");
    snprintf(args, sizeof args, "%s -I %s", path("bad.comp"), path("inc"));
    CHECK(bench(args) == 1 && strstr(out, "bad.comp:5:") && strstr(out, "undeclared_thing"),
          "the compile error does not name bad.comp:5:\n%s", out);
    write_text(path("broken.glsl"), "// beside the including file\nfloat broken( { return 1.0; }\n");
    write_text(path("inc_err.comp"), "#version 450\nlayout(local_size_x = 1) in;\n#include \"broken.glsl\"\n"
                                     "void main() {}\n");
    CHECK(bench(path("inc_err.comp")) == 1 && strstr(out, "broken.glsl:2:"),
          "the error in an include does not name broken.glsl:2:\n%s", out);
    write_text(path("no_inc.comp"), "#version 450\nlayout(local_size_x = 1) in;\n#include \"nowhere.glsl\"\n"
                                    "void main() {}\n");
    CHECK(bench(path("no_inc.comp")) == 1 && strstr(out, "nowhere.glsl"), "a missing include:\n%s", out);

    /* bad options */
    CHECK(bench("bench/saxpy.comp --frobnicate") == 2, "an unknown option did not exit 2 (a usage error)");
    CHECK(bench("bench/saxpy.comp --push x32:1") == 1, "--push x32:1 did not exit 1");
    CHECK(bench("bench/saxpy.comp --buffer 12Q") == 1, "--buffer 12Q did not exit 1");
    CHECK(bench("bench/saxpy.comp --buffer 4K --check 3=x.f32") == 1, "--check of a missing buffer did not exit 1");
    CHECK(bench("") == 1, "no shader file did not exit 1");

    /* a shader that does not match what is bound */
    CHECK(bench("bench/saxpy.comp --buffer 4K --push u32:1,f32:1") == 1 && strstr(out, "binding 1"),
          "one buffer for two bindings:\n%s", out);
    CHECK(bench("bench/saxpy.comp --buffer 4K --buffer 4K --push u32:1") == 1 &&
              strstr(out, "push constants are 8 bytes, 4 given"),
          "4 bytes of push constants for 8:\n%s", out);

    /* clean up the temporary folder */
    static const char *files[] = { "x.f32", "y.f32", "ref.f32", "bad_ref.f32", "out.f32", "inc/twice.glsl",
                                   "bad.comp", "broken.glsl", "inc_err.comp", "no_inc.comp" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        remove(path(files[i]));
    remove(path("inc"));
    remove(dir);
    return tu_finish("test_bench_shader");
}
