/* test_cli_writes.c: every file vkllm writes goes to a temporary name and is renamed into place only when
 * complete (issue 11): with the file size limited (`ulimit -f`, SIGXFSZ ignored, so that writes past it
 * fail with EFBIG as on a full disk), `quantize`, `perplexity --kl-divergence-base` and `bench shader
 * --dump` must exit 1 saying so, leave no file under the real name (or the one that was there, intact),
 * and no temporary file beside it; without the limit the same commands write the file. */
#include "util.h"

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/vkllm-test-writes-XXXXXX";

/* Files in dir whose name starts with prefix. */
static int count_files(const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += !strncmp(e->d_name, prefix, strlen(prefix));
    if (d)
        closedir(d);
    return n;
}

/* `vkllm ARGS` with the file size limited to kib KiB (0: no limit): its exit status, stderr into err. */
static int run(const char *args, int kib, char *err, size_t cap)
{
    char cmd[8192], errpath[512], out[4096];
    snprintf(errpath, sizeof errpath, "%s.stderr", dir);
    if (kib)
        snprintf(cmd, sizeof cmd, "sh -c \"trap '' XFSZ; ulimit -f %d; exec '%s' %s\" 2>'%s' >/dev/null", kib, bin, args,
                 errpath);
    else
        snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s' >/dev/null", bin, args, errpath);
    int st = tu_run(cmd, out, sizeof out);
    char *e = tu_read_file(errpath, NULL);
    snprintf(err, cap, "%s", e ? e : "");
    free(e);
    unlink(errpath);
    return st;
}

static void check(const char *what, const char *args, const char *name, int kib)
{
    char err[8192], path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    /* a file already there stays as it was when the new one cannot be written */
    FILE *f = fopen(path, "wb");
    CHECK(f && fputs("the old file\n", f) >= 0 && fclose(f) == 0, "cannot write %s", path);
    int st = run(args, kib, err, sizeof err);
    if (st == 128 + SIGBUS) {
        /* Mesa 25's lavapipe backs device memory with memfd files, which the size limit also caps: its
         * stores to them are SIGBUS before vkllm writes anything (the limit stands in for a full disk,
         * which does not touch memfds): this driver cannot run the command so limited */
        printf("%-28s skipped: this driver's device memory is a file the limit caps (SIGBUS)\n", what);
        unlink(path);
        return;
    }
    char *old = tu_read_file(path, NULL);
    CHECK(st == 1 && strstr(err, "File too large"), "%s with %d KiB files at most: exit %d, stderr:\n%s", what, kib, st,
          err);
    CHECK(old && !strcmp(old, "the old file\n"), "%s: the file under the real name changed after a failed write", what);
    free(old);
    CHECK(count_files(name) == 1, "%s: a temporary file was left beside %s", what, name);
    unlink(path);
    /* no file before and a failed write: none after */
    st = run(args, kib, err, sizeof err);
    CHECK(st == 1 && access(path, F_OK) != 0 && count_files(name) == 0, "%s: a failed write left %d files", what,
          count_files(name));
    /* and without the limit the file is written */
    st = run(args, 0, err, sizeof err);
    CHECK(st == 0 && access(path, F_OK) == 0 && count_files(name) == 1, "%s without a limit: exit %d, %s", what, st,
          err);
    printf("%-28s a write past the limit fails cleanly; without it the file is written\n", what);
}

int main(void)
{
    tu_seed("test_cli_writes");
    bin = getenv("VKLLM_BIN");
    if (!bin) {
        fprintf(stderr, "test_cli_writes: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    if (!mkdtemp(dir))
        return 1;
    const char *model = tu_model_path("gguf/stories260K.gguf");
    char args[4096], text[600];
    snprintf(text, sizeof text, "%s/story.txt", dir);
    FILE *f = fopen(text, "wb");
    for (int i = 0; f && i < 40; i++)
        fputs("Once upon a time there was a little girl named Lily. She liked to play in the park. ", f);
    CHECK(f && fclose(f) == 0, "cannot write %s", text);

    snprintf(args, sizeof args, "quantize '%s' '%s/q8.gguf' Q8_0", model, dir);
    check("quantize", args, "q8.gguf", 64);
    snprintf(args, sizeof args, "perplexity -m '%s' -f '%s' -c 64 --kl-divergence-base '%s/base.kld'", model, text,
             dir);
    check("perplexity base", args, "base.kld", 8);
    const char *shader = "bench/saxpy.comp"; /* ctest runs the tests from the project root */
    snprintf(args, sizeof args,
             "bench shader '%s' --buffer 64K:random --buffer 64K:random --push u32:16384,f32:2 --groups 64 -r 1 "
             "--dump '1=%s/y.bin'",
             shader, dir);
    check("bench shader --dump", args, "y.bin", 1);

    char cmd[700], o[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, o, sizeof o);
    return tu_finish("test_cli_writes");
}
