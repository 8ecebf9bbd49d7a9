/* test_cli_defects: what a new user found by trying the commands ($VKLLM_BIN), issue 11 item 6, one
 * section per defect: (1) endless or huge input files are refused, (2) a failed write to stdout fails the
 * command, (3) a NUL byte in a text file is refused by every command, (4) text from model files cannot
 * drive the terminal, (5) info --json is valid UTF-8, (6) a file of the wrong kind says what it is,
 * (7) repeated and conflicting options are refused, ranges checked before loading, getopt's forms work,
 * (8) non-finite hyper-parameters and logits are errors, (9) exit status 2 for usage errors, 1 for
 * failures, the message before the usage text, (10) environment variables with values they do not
 * know are errors, a relative XDG_CACHE_HOME is ignored. The models are stories260K rewritten through the GGUF
 * writer with one key or tensor changed. */
#include "util.h"

#include "lm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *bin;
static char dir[] = "/tmp/vkllm-test-defects-XXXXXX";
static char stories[1024], ckpt[1024], tok[1024];
static char out[1 << 16], err[1 << 16];

static const char *in_dir(const char *name)
{
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static bool write_file(const char *path, const char *s, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(s, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* `vkllm ARGS` (ARGS may redirect stdin or stdout): stdout into out, stderr into err; the exit status. */
static int cli(const char *args)
{
    char cmd[8192];
    const char *errpath = in_dir("stderr");
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", bin, args, errpath);
    int st = tu_run(cmd, out, sizeof out);
    char *e = tu_read_file(errpath, NULL);
    snprintf(err, sizeof err, "%s", e ? e : "");
    free(e);
    return st;
}

/* Expects `vkllm ARGS` to exit with status want and its stderr to contain says. */
static void expect(const char *args, int want, const char *says)
{
    int st = cli(args);
    CHECK(st == want && strstr(err, says), "`vkllm %s`: exit %d (want %d), stderr must contain '%s':\n%s", args, st,
          want, says, err);
}

/* stories260K rewritten: key skey set to the string sval, key fkey to fval, tensor nan_tensor filled with
 * NaN (each NULL: unchanged). */
static bool write_model(const char *path, const char *skey, const char *sval, const char *fkey, float fval,
                        const char *nan_tensor)
{
    char e[512] = "";
    lm_gguf *g = NULL;
    lm_gguf_writer *w = NULL;
    if (lm_gguf_open(stories, &g, e, sizeof e) || lm_gguf_writer_create(path, &w, e, sizeof e)) {
        fprintf(stderr, "write_model: %s\n", e);
        lm_gguf_close(g);
        return false;
    }
    bool ok = true;
    for (int64_t i = 0; i < lm_gguf_n_kv(g); i++)
        ok &= lm_gguf_writer_copy_kv(w, g, i) == LM_OK;
    if (skey)
        ok &= lm_gguf_writer_set_str(w, skey, sval) == LM_OK;
    if (fkey)
        ok &= lm_gguf_writer_set_f32(w, fkey, fval) == LM_OK;
    for (int64_t i = 0; ok && i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        float *nan_data = NULL;
        if (nan_tensor && !strcmp(t.name, nan_tensor) && t.type == LM_GGML_F32 && (nan_data = malloc(t.size)))
            for (size_t j = 0; j < t.size / 4; j++)
                nan_data[j] = NAN;
        ok &= lm_gguf_writer_add_tensor(w, t.name, t.n_dims, t.ne, t.type, nan_data ? nan_data : t.data, t.size) ==
              LM_OK;
        free(nan_data);
    }
    lm_gguf_close(g);
    if (!ok) {
        fprintf(stderr, "write_model: %s\n", lm_gguf_writer_errmsg(w));
        lm_gguf_writer_abort(w);
        return false;
    }
    if (lm_gguf_writer_finish(w, e, sizeof e)) {
        fprintf(stderr, "write_model: %s\n", e);
        return false;
    }
    return true;
}

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int k = *p < 0x80 ? 1 : (*p >= 0xC2 && *p <= 0xDF) ? 2 : (*p >= 0xE0 && *p <= 0xEF) ? 3
                : (*p >= 0xF0 && *p <= 0xF4) ? 4 : 0;
        if (!k)
            return false;
        for (int i = 1; i < k; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += k;
    }
    return true;
}

static bool has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
            return true;
    return false;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

/* (1) input files are bounded: no device, no FIFO, nothing over 256 MiB */
static void bounded_input(void)
{
    char a[2048];
    const char *fifo = in_dir("fifo"), *big = in_dir("big.txt");
    CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
    FILE *f = fopen(big, "wb");
    CHECK(f && ftruncate(fileno(f), (off_t)300 << 20) == 0, "a sparse 300 MiB file"); /* no disk used */
    if (f)
        fclose(f);
    snprintf(a, sizeof a, "run -m '%s' -f /dev/zero -n 1", stories);
    expect(a, 1, "/dev/zero is a device");
    snprintf(a, sizeof a, "tokenize -m '%s' -f /dev/zero", stories);
    expect(a, 1, "/dev/zero is a device");
    snprintf(a, sizeof a, "perplexity -m '%s' -f /dev/zero", stories);
    expect(a, 1, "/dev/zero is a device");
    expect("template --chat-template chatml -f /dev/zero", 1, "/dev/zero is a device");
    snprintf(a, sizeof a, "tokenize -m '%s' -f - < /dev/zero", stories);
    expect(a, 1, "standard input is a character device");
    snprintf(a, sizeof a, "tokenize -m '%s' -f '%s'", stories, fifo);
    expect(a, 1, "is a FIFO");
    snprintf(a, sizeof a, "run -m '%s' -f '%s'", stories, big);
    expect(a, 1, "more than the 256 MiB");
    expect("run -m /dev/zero -p x", 1, "not a regular file");
    snprintf(a, sizeof a, "run -m '%s' -z /dev/zero -p x", ckpt);
    expect(a, 1, "not a regular file");
    /* a pipe on stdin still works */
    snprintf(a, sizeof a, "tokenize --ids -m '%s' -f - < '%s'", stories, in_dir("once.txt"));
    CHECK(cli(a) == 0 && !strcmp(out, "1 403 407 261 378\n"), "stdin: %s%s", out, err);
    unlink(big);
    unlink(fifo);
}

/* (2) a failed write to stdout fails the command */
static void write_errors(void)
{
    if (access("/dev/full", W_OK)) {
        printf("no /dev/full: write errors not checked\n");
        return;
    }
    char a[2048];
    snprintf(a, sizeof a, "run %s -m '%s' -p Once -n 400 --temp 0 > /dev/full", tu_validation_flag(), stories);
    expect(a, 1, "run: cannot write the output");
    CHECK(!strstr(err, "generation 400 tokens") && !strstr(err, "tokens/s"), "run went on after the failed write:\n%s",
          err);
    snprintf(a, sizeof a, "info -m '%s' > /dev/full", stories);
    expect(a, 1, "info: cannot write the output");
    snprintf(a, sizeof a, "info --json -m '%s' > /dev/full", stories);
    expect(a, 1, "cannot write the output");
    snprintf(a, sizeof a, "tokenize -m '%s' -p Once > /dev/full", stories);
    expect(a, 1, "tokenize: cannot write the output");
    expect("devices > /dev/full", 1, "devices: cannot write the output");
    snprintf(a, sizeof a, "perplexity %s -m '%s' -f '%s' -c 16 --chunks 1 > /dev/full", tu_validation_flag(), stories,
             in_dir("story.txt"));
    expect(a, 1, "perplexity: cannot write the output");
}

/* (3) one rule for a NUL byte in a text file: refused, by every command */
static void nul_bytes(void)
{
    char a[2048];
    const char *nul = in_dir("nul.txt");
    CHECK(write_file(nul, "Once\0upon", 9), "nul.txt");
    snprintf(a, sizeof a, "run -m '%s' -f '%s'", stories, nul);
    expect(a, 1, "byte 4 is a NUL byte");
    snprintf(a, sizeof a, "tokenize -m '%s' -f '%s'", stories, nul);
    expect(a, 1, "byte 4 is a NUL byte");
    snprintf(a, sizeof a, "perplexity -m '%s' -f '%s'", stories, nul);
    expect(a, 1, "byte 4 is a NUL byte");
    snprintf(a, sizeof a, "template --chat-template chatml -f '%s'", nul);
    expect(a, 1, "byte 4 is a NUL byte");
}

/* (4) escape sequences in metadata reach the terminal escaped; (5) JSON stays UTF-8 */
static void model_text(void)
{
    char a[2048];
    const char *evil = in_dir("evil.gguf"), *evil_arch = in_dir("evil-arch.gguf"), *bad_utf8 = in_dir("utf8.gguf");
    const char *name = "x\x1b]0;owned\x07\x1b[2J\rvkllm: all good\n\x9b";
    if (!write_model(evil, "general.name", name, NULL, 0, NULL) ||
        !write_model(evil_arch, "general.architecture", "lla\x1b[2Jma\nforged", NULL, 0, NULL) ||
        !write_model(bad_utf8, "general.name", "caf\xc3 \xff\xfe \xed\xa0\x80 ok \xe2\x82\xac", NULL, 0, NULL)) {
        CHECK(0, "cannot write the test models");
        return;
    }
    snprintf(a, sizeof a, "info -m '%s'", evil);
    CHECK(cli(a) == 0 && !has_control(out) && strstr(out, "x\\x1b]0;owned\\x07\\x1b[2J\\rvkllm: all good\\n\\x9b"),
          "info printed the name raw or unescaped:\n%s", out);
    snprintf(a, sizeof a, "info -m '%s'", evil_arch);
    CHECK(cli(a) == 0 && !has_control(out) && strstr(out, "lla\\x1b[2Jma\\nforged"), "info's architecture:\n%s", out);
    snprintf(a, sizeof a, "run -m '%s' -p x", evil_arch);
    int st = cli(a);
    CHECK(st == 1 && !has_control(err) && strstr(err, "lla\\x1b[2Jma\\nforged") && count(err, "\nforged") == 0,
          "run's error quotes the architecture raw (exit %d):\n%s", st, err);
    snprintf(a, sizeof a, "info --json -m '%s'", bad_utf8);
    CHECK(cli(a) == 0 && valid_utf8(out) && strstr(out, "caf\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd") &&
              strstr(out, " ok \xe2\x82\xac"),
          "info --json is not valid UTF-8, or lost the valid part:\n%s", out);
    snprintf(a, sizeof a, "info --json -m '%s'", evil);
    CHECK(cli(a) == 0 && valid_utf8(out) && !has_control(out), "info --json with control characters:\n%s", out);
}

/* (6) a file of the wrong kind: what it is, and what was expected */
static void wrong_files(void)
{
    char a[4096];
    const char *empty = in_dir("empty.bin");
    CHECK(write_file(empty, "", 0), "empty.bin");
    snprintf(a, sizeof a, "run -m '%s' -z '%s' -p x", ckpt, stories);
    expect(a, 1, "is a GGUF file, not a llama2.c tokenizer");
    CHECK(count(err, stories) == 1, "the path is printed more than once:\n%s", err);
    snprintf(a, sizeof a, "run -m '%s' -z '%s' -p x", stories, tok);
    expect(a, 1, "carries its own tokenizer");
    snprintf(a, sizeof a, "run -m '%s' -p x", ckpt);
    expect(a, 1, "is a llama2.c checkpoint: give its tokenizer with --tokenizer");
    snprintf(a, sizeof a, "run -m '%s' -z '%s' -p x", tok, tok);
    expect(a, 1, "is a llama2.c tokenizer, not a GGUF file or a llama2.c checkpoint");
    snprintf(a, sizeof a, "tokenize -m '%s' -p x", ckpt);
    expect(a, 1, "is a llama2.c checkpoint, not a GGUF file");
    snprintf(a, sizeof a, "tokenize -m '%s' -p x", tok);
    expect(a, 1, "is a llama2.c tokenizer, not a GGUF file");
    CHECK(count(err, tok) == 1, "the path is printed more than once:\n%s", err);
    snprintf(a, sizeof a, "tokenize --tokenizer '%s' -p x", stories);
    expect(a, 1, "is a GGUF file, not a llama2.c tokenizer");
    snprintf(a, sizeof a, "run -m '%s' -p x", empty);
    expect(a, 1, "is empty (0 bytes)");
    CHECK(!strstr(err, "looks like"), "an empty file looks like something:\n%s", err);
    snprintf(a, sizeof a, "info -m '%s'", ckpt);
    expect(a, 1, "is a llama2.c checkpoint, not a GGUF file");
    expect("info -m README.md", 1, "it starts with the bytes 23 20 76 6b, not \"GGUF\"");
    /* the library itself: a GGUF given as a llama2.c checkpoint or tokenizer (no device needed to refuse) */
    lm_model *m = NULL;
    char e[1024] = "";
    CHECK(lm_model_load_llama2c(NULL, stories, tok, NULL, &m, e, sizeof e) == LM_ERR_FORMAT &&
              strstr(e, "is a GGUF file, not a llama2.c checkpoint"),
          "lm_model_load_llama2c(GGUF): %s", e);
}

/* (7) options: twice, together, ranges before loading, --opt=value, -n3, -- */
static void options(void)
{
    char a[4096], want[4096];
    snprintf(a, sizeof a, "run -m '%s' -p A -p B", stories);
    expect(a, 2, "-p is given twice");
    snprintf(a, sizeof a, "run -m '%s' -m '%s' -p A", stories, stories);
    expect(a, 2, "-m is given twice");
    snprintf(a, sizeof a, "run -m '%s' -p A -f '%s'", stories, in_dir("once.txt"));
    expect(a, 2, "not both");
    snprintf(a, sizeof a, "run -m '%s' -n 3 --n-predict 4", stories);
    expect(a, 2, "--n-predict is given twice");
    snprintf(a, sizeof a, "tokenize -m '%s' -z '%s' -p x", stories, tok);
    expect(a, 2, "not both");
    /* ranges the library checks, before the model is even opened */
    expect("run -m /nonexistent.gguf --top-p 0", 1, "top_p");
    CHECK(!strstr(err, "nonexistent"), "--top-p 0 was checked after opening the model:\n%s", err);
    expect("run -m /nonexistent.gguf --repeat-penalty 0", 1, "repeat_penalty");
    /* getopt's forms */
    snprintf(a, sizeof a, "run %s -m '%s' -p Once -n 6 --temp 0", tu_validation_flag(), stories);
    CHECK(cli(a) == 0 && strlen(out) > 5 && !strstr(err, "validation:"), "run: %s", err);
    snprintf(want, sizeof want, "%s", out);
    snprintf(a, sizeof a, "run %s --model='%s' -pOnce -n6 --temp=0", tu_validation_flag(), stories);
    CHECK(cli(a) == 0 && !strcmp(out, want) && !strstr(err, "validation:"),
          "--model=F -pOnce -n6 --temp=0: '%s' vs '%s' %s", out, want, err);
    snprintf(a, sizeof a, "tokenize --ids -m '%s' --prompt=Once", stories);
    CHECK(cli(a) == 0 && !strcmp(out, "1 403\n"), "--prompt=Once: '%s' %s", out, err);
    snprintf(a, sizeof a, "tokenize --ids -m '%s' -p Once -- extra", stories);
    expect(a, 2, "unexpected argument 'extra'");
    /* the same forms in serve, bench and bench shader */
    snprintf(a, sizeof a, "serve -m '%s' --port=1 --port 2", stories);
    expect(a, 2, "--port is given twice");
    snprintf(a, sizeof a, "serve -m '%s' --ctx-size=x", stories);
    expect(a, 1, "--ctx-size");
    snprintf(a, sizeof a, "bench --model='%s' --n-prompt=8 -n2 -r1 --output=csv", stories);
    CHECK(cli(a) == 0 && strstr(out, "pp8") && strstr(out, "tg2"), "bench --model=F --n-prompt=8 -n2: %s %s", out, err);
    expect("bench kernels --iters=0", 1, "--iters");
    expect("bench shader --runs=1 --runs=2 x.comp", 2, "--runs is given twice");
    snprintf(a, sizeof a, "make-model -o '%s' -- llama-tiny Q8_0", in_dir("tiny.gguf"));
    CHECK(cli(a) == 0, "make-model ... -- SHAPE TYPE: %s", err);
    unlink(in_dir("tiny.gguf"));
}

/* (8) non-finite hyper-parameters are refused at load; NaN logits are reported */
static void non_finite(void)
{
    char a[4096];
    const char *eps = in_dir("eps.gguf"), *rope = in_dir("rope.gguf"), *nan = in_dir("nan.gguf");
    if (!write_model(eps, NULL, NULL, "llama.attention.layer_norm_rms_epsilon", INFINITY, NULL) ||
        !write_model(rope, NULL, NULL, "llama.rope.freq_base", INFINITY, NULL) ||
        !write_model(nan, NULL, NULL, NULL, 0, "output_norm.weight")) {
        CHECK(0, "cannot write the test models");
        return;
    }
    snprintf(a, sizeof a, "run %s -m '%s' -p Once -n 4", tu_validation_flag(), eps);
    expect(a, 1, "the norm epsilon is inf (llama.attention.layer_norm_rms_epsilon)");
    snprintf(a, sizeof a, "run %s -m '%s' -p Once -n 4", tu_validation_flag(), rope);
    expect(a, 1, "the RoPE base is inf (llama.rope.freq_base)");
    snprintf(a, sizeof a, "run %s -m '%s' -p Once -n 4 --temp 0", tu_validation_flag(), nan);
    expect(a, 1, "logits are not finite");
    snprintf(a, sizeof a, "run %s -m '%s' -p Once -n 4", tu_validation_flag(), nan);
    expect(a, 1, "logits are not finite");
}

/* (9) exit status 2 and the message first for usage errors, in every command; 1 for failures */
static void exit_codes(void)
{
    static const char *const cmds[] = { "run", "chat", "info", "tokenize", "perplexity", "template", "quantize",
                                        "make-model" };
    char a[2048];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        snprintf(a, sizeof a, "%s --no-such-option < /dev/null", cmds[i]);
        int st = cli(a);
        const char *u = strstr(err, "usage:");
        CHECK(st == 2 && !strncmp(err, "vkllm: ", 7) && strstr(err, "--no-such-option") && u &&
                  strstr(err, "--no-such-option") < u,
              "`vkllm %s`: exit %d (want 2), the message before the usage:\n%s", a, st, err);
        snprintf(a, sizeof a, "%s < /dev/null", cmds[i]);
        st = cli(a);
        CHECK(st == 2 && !strncmp(err, "vkllm: ", 7) && strstr(err, "usage:"), "`vkllm %s`: exit %d (want 2):\n%s", a,
              st, err);
    }
    snprintf(a, sizeof a, "run -m '%s' -n", stories);
    expect(a, 2, "-n needs a value");
    snprintf(a, sizeof a, "info -m '%s' --json extra", stories);
    expect(a, 2, "unexpected argument 'extra'");
    expect("nosuchcommand", 2, "unknown command");
    /* failures: 1, no usage text */
    snprintf(a, sizeof a, "run -m '%s' -n x", stories);
    expect(a, 1, "integer");
    CHECK(!strstr(err, "usage:"), "a refused value printed the usage:\n%s", err);
    expect("info -m /nonexistent.gguf", 1, "nonexistent");
    expect("tokenize -m /nonexistent.gguf -p x", 1, "nonexistent");
}

/* (10) the runtime's switches, VKLLM_DEVICE and XDG_CACHE_HOME */
static void environment(void)
{
    char a[2048];
    setenv("VKLLM_MATMUL", "fast", 1);
    expect("devices", 1, "VKLLM_MATMUL='fast': must be gpu or cpu");
    unsetenv("VKLLM_MATMUL");
    setenv("VKLLM_ATTN_TILED", "yes", 1);
    snprintf(a, sizeof a, "run -m '%s' -p Once -n 2", stories);
    expect(a, 1, "VKLLM_ATTN_TILED='yes': must be 0 or 1");
    unsetenv("VKLLM_ATTN_TILED");
    setenv("VKLLM_DEVICE", "first", 1);
    expect("devices", 1, "VKLLM_DEVICE=first is not a device index");
    unsetenv("VKLLM_DEVICE");
    const char *old = getenv("XDG_CACHE_HOME");
    char *saved = old ? strdup(old) : NULL;
    setenv("XDG_CACHE_HOME", "relative/cache", 1);
    setenv("MESA_SHADER_CACHE_DISABLE", "true", 1); /* Mesa's own cache would take the relative path */
    snprintf(a, sizeof a, "run -m '%s' -p Once -n 2 --temp 0", stories);
    CHECK(cli(a) == 0, "a relative XDG_CACHE_HOME fails run: %s", err);
    CHECK(access("relative/cache/vkllm", F_OK) != 0, "run used the relative XDG_CACHE_HOME");
    unsetenv("MESA_SHADER_CACHE_DISABLE");
    if (saved)
        setenv("XDG_CACHE_HOME", saved, 1);
    else
        unsetenv("XDG_CACHE_HOME");
    free(saved);
}

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || access(bin, X_OK)) {
        fprintf(stderr, "test_cli_defects: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_cli_defects: mkdtemp failed\n");
        return 1;
    }
    snprintf(stories, sizeof stories, "%s", tu_model_path("gguf/stories260K.gguf"));
    snprintf(ckpt, sizeof ckpt, "%s", tu_model_path("llama2c/stories260K.bin"));
    snprintf(tok, sizeof tok, "%s", tu_model_path("llama2c/tok512.bin"));
    char story[2048] = "";
    for (int i = 0; i < 4; i++)
        strcat(story, "Once upon a time, there was a little girl named Lily. She loved to play outside in the sun. ");
    CHECK(write_file(in_dir("once.txt"), "Once upon a time", 16) &&
              write_file(in_dir("story.txt"), story, strlen(story)),
          "temp files");

    bounded_input();
    printf("(1) bounded input files: done\n");
    write_errors();
    printf("(2) write errors: done\n");
    nul_bytes();
    printf("(3) NUL bytes: done\n");
    model_text();
    printf("(4, 5) model text on the terminal and in JSON: done\n");
    wrong_files();
    printf("(6) files of the wrong kind: done\n");
    options();
    printf("(7) options: done\n");
    non_finite();
    printf("(8) non-finite hyper-parameters and logits: done\n");
    exit_codes();
    printf("(9) exit codes: done\n");
    environment();
    printf("(10) environment: done\n");

    char cmd[600], o[16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, o, sizeof o);
    return tu_finish("test_cli_defects");
}
