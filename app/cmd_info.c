/* cmd_info.c: `vkllm info -m FILE [--json]`: what a GGUF file holds: architecture, parameter count,
 * tensor types, hyper-parameters, tokenizer, special tokens, chat template. Text and JSON print the same
 * fields, from one list of emitters below. */
#include <cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app_model.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: vkllm info -m FILE [--json]\n"
               "Describes a GGUF model file: architecture, parameters, tensor types, hyper-parameters,\n"
               "tokenizer and special tokens, chat template. --json prints the same as one JSON object.\n");
}

/* One output in either form: text rows "label  value", printed as they come, or the members of one JSON
 * object, built with cJSON and printed at the end. */
typedef struct out {
    bool json;
    cJSON *obj; /* JSON: the object the members go into */
    bool ok;    /* JSON: false once a member was lost (out of memory) */
} out;

/* A member of the JSON object (v NULL: out of memory). */
static void put(out *o, const char *jkey, cJSON *v)
{
    o->ok &= app_json_add(o->obj, jkey, v);
}

/* A string from the file (or the command line): valid UTF-8 in JSON, escaped for the terminal in text. */
static void field_str(out *o, const char *label, const char *jkey, const char *v)
{
    if (o->json)
        put(o, jkey, app_json_str(v, strlen(v)));
    else {
        printf("%-15s ", label);
        app_put_safe(stdout, v, strlen(v), false);
        putchar('\n');
    }
}

static void field_u64(out *o, const char *label, const char *jkey, uint64_t v)
{
    if (o->json)
        put(o, jkey, app_json_uint(v));
    else
        printf("%-15s %" PRIu64 "\n", label, v);
}

/* Token text for a terminal, between quotes: control bytes, quotes and backslashes escaped. */
static void print_escaped(const char *s, size_t len)
{
    app_put_safe(stdout, s, len, true);
}

/* Element j of a numeric array: printed as text, or returned as JSON (NULL in text, or out of memory). */
static cJSON *elem(bool json, const lm_gguf *g, const char *key, int et, uint64_t j)
{
    int64_t i;
    double d;
    if (et == LM_GGUF_BOOL) {
        const void *data;
        lm_gguf_get_arr(g, key, NULL, NULL, &data);
        bool b = ((const uint8_t *)data)[j];
        if (json)
            return cJSON_CreateBool(b);
        fputs(b ? "true" : "false", stdout);
    } else if (lm_gguf_arr_f64(g, key, j, &d) == LM_OK) {
        if (json)
            return app_json_num(d);
        printf(isfinite(d) ? "%.9g" : "null", d);
    } else if (lm_gguf_arr_i64(g, key, j, &i) == LM_OK) {
        if (json)
            return app_json_int(i);
        printf("%" PRId64, i);
    } else {
        uint64_t u; /* a u64 element above INT64_MAX */
        const void *data;
        lm_gguf_get_arr(g, key, NULL, NULL, &data);
        memcpy(&u, (const uint8_t *)data + j * 8, 8);
        if (json)
            return app_json_uint(u);
        printf("%" PRIu64, u);
    }
    return NULL;
}

/* Any metadata value: numbers, strings, booleans; arrays in full when numeric and short. Printed as text,
 * or returned as JSON (NULL in text, or out of memory). */
static cJSON *value(bool json, const lm_gguf *g, const char *key)
{
    lm_gguf_kv_info k;
    lm_gguf_kv(g, lm_gguf_find(g, key), &k);
    uint64_t u;
    int64_t i;
    double d;
    bool b;
    const char *s;
    size_t slen;
    if (k.type == LM_GGUF_STR && lm_gguf_get_str(g, key, &s, &slen) == LM_OK) {
        if (json)
            return app_json_str(s, slen);
        app_put_safe(stdout, s, slen, false);
    } else if (lm_gguf_get_bool(g, key, &b) == LM_OK) {
        if (json)
            return cJSON_CreateBool(b);
        fputs(b ? "true" : "false", stdout);
    } else if (lm_gguf_get_u64(g, key, &u) == LM_OK) {
        if (json)
            return app_json_uint(u);
        printf("%" PRIu64, u);
    } else if (lm_gguf_get_i64(g, key, &i) == LM_OK) {
        if (json)
            return app_json_int(i);
        printf("%" PRId64, i);
    } else if (lm_gguf_get_f64(g, key, &d) == LM_OK) {
        if (json)
            return app_json_num(d);
        printf("%g", d);
    } else if (k.type == LM_GGUF_ARR && k.elem_type != LM_GGUF_STR && k.n <= 1024) {
        if (json) {
            cJSON *arr = cJSON_CreateArray();
            bool ok = true;
            for (uint64_t j = 0; j < k.n; j++)
                ok &= app_json_add(arr, NULL, elem(true, g, key, k.elem_type, j));
            if (!ok) {
                cJSON_Delete(arr);
                arr = NULL;
            }
            return arr;
        }
        printf("[");
        for (uint64_t j = 0; j < k.n; j++) {
            if (j)
                fputs(", ", stdout);
            elem(false, g, key, k.elem_type, j);
        }
        printf("]");
    } else {
        char desc[96];
        snprintf(desc, sizeof desc, "[%" PRIu64 " x %s]", k.n, lm_gguf_vtype_name(k.elem_type));
        if (json)
            return cJSON_CreateString(desc);
        fputs(desc, stdout);
    }
    return NULL;
}

static void field_key(out *o, const lm_gguf *g, const char *label, const char *jkey, const char *key)
{
    if (lm_gguf_find(g, key) < 0)
        return;
    if (o->json)
        put(o, jkey, value(true, g, key));
    else {
        printf("%-15s ", label);
        value(false, g, key);
        putchar('\n');
    }
}

/* 292800 -> "292.80K" */
static void human(uint64_t n, char *buf, size_t len)
{
    static const char units[] = " KMBT";
    double v = (double)n;
    int u = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u)
        snprintf(buf, len, "%.2f%c", v, units[u]);
    else
        snprintf(buf, len, "%" PRIu64, n);
}

static void tensor_summary(out *o, const lm_gguf *g)
{
    uint64_t params = 0, bytes = 0;
    int64_t count[LM_GGML_TYPE_COUNT] = { 0 };
    int64_t nt = lm_gguf_n_tensors(g);
    for (int64_t i = 0; i < nt; i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        params += (uint64_t)t.n_elements;
        bytes += t.size;
        count[t.type]++;
    }
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    if (o->json) {
        put(o, "parameters", app_json_uint(params));
        put(o, "n_tensors", app_json_uint((uint64_t)nt));
        put(o, "tensor_bytes", app_json_uint(bytes));
        if (params)
            put(o, "bits_per_weight", app_json_num(round(bpw * 100) / 100));
        cJSON *types = cJSON_CreateObject();
        for (int ty = 0; ty < LM_GGML_TYPE_COUNT; ty++)
            if (count[ty])
                o->ok &= app_json_add(types, lm_gguf_type_name(ty), app_json_int(count[ty]));
        put(o, "tensor_types", types);
        return;
    }
    char h[32];
    human(params, h, sizeof h);
    if (params < 1000)
        printf("%-15s %" PRIu64 "\n", "parameters", params);
    else
        printf("%-15s %" PRIu64 " (%s)\n", "parameters", params, h);
    field_u64(o, "tensors", "n_tensors", (uint64_t)nt);
    printf("%-15s %" PRIu64 " (%.2f MiB)\n", "tensor bytes", bytes, bytes / 1048576.0);
    if (params)
        printf("%-15s %.2f\n", "bits/weight", bpw);
    printf("%-15s ", "tensor types");
    int k = 0;
    for (int ty = 0; ty < LM_GGML_TYPE_COUNT; ty++)
        if (count[ty])
            printf("%s%s x%" PRId64, k++ ? ", " : "", lm_gguf_type_name(ty), count[ty]);
    printf("%s\n", k ? "" : "none");
}

/* Hyper-parameters under "<arch>.": shown when present. */
static void hparams(out *o, const lm_gguf *g, const char *arch)
{
    static const struct { const char *label, *jkey, *suffix; } keys[] = {
        { "context", "context_length", "context_length" },
        { "embedding", "embedding_length", "embedding_length" },
        { "layers", "block_count", "block_count" },
        { "feed forward", "feed_forward_length", "feed_forward_length" },
        { "heads", "head_count", "attention.head_count" },
        { "kv heads", "head_count_kv", "attention.head_count_kv" },
        { "key length", "key_length", "attention.key_length" },
        { "value length", "value_length", "attention.value_length" },
        { "rope dims", "rope_dimension_count", "rope.dimension_count" },
        { "rope base", "rope_freq_base", "rope.freq_base" },
        { "rope scaling", "rope_scaling_type", "rope.scaling.type" },
        { "rope factor", "rope_scaling_factor", "rope.scaling.factor" },
        { "rms norm eps", "rms_norm_eps", "attention.layer_norm_rms_epsilon" },
        { "norm eps", "norm_eps", "attention.layer_norm_epsilon" },
        { "sliding window", "sliding_window", "attention.sliding_window" },
        { "experts", "expert_count", "expert_count" },
        { "experts used", "expert_used_count", "expert_used_count" },
        { "vocab (arch)", "arch_vocab_size", "vocab_size" },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[256];
        snprintf(key, sizeof key, "%s.%s", arch, keys[i].suffix);
        field_key(o, g, keys[i].label, keys[i].jkey, key);
    }
}

static void special_tokens(out *o, const lm_gguf *g, uint64_t n_vocab)
{
    static const struct { const char *name, *key; } specials[] = {
        { "bos", "tokenizer.ggml.bos_token_id" },     { "eos", "tokenizer.ggml.eos_token_id" },
        { "unk", "tokenizer.ggml.unknown_token_id" }, { "pad", "tokenizer.ggml.padding_token_id" },
        { "eot", "tokenizer.ggml.eot_token_id" },     { "sep", "tokenizer.ggml.seperator_token_id" },
    };
    int k = 0;
    cJSON *toks = o->json ? cJSON_CreateObject() : NULL;
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) {
        uint64_t id;
        if (lm_gguf_get_u64(g, specials[i].key, &id) != LM_OK)
            continue;
        if (k++ == 0 && !o->json)
            printf("%-15s ", "special tokens");
        const char *s = NULL;
        size_t len = 0;
        bool have = id < n_vocab && lm_gguf_get_arr_str(g, "tokenizer.ggml.tokens", id, &s, &len) == LM_OK;
        if (o->json) {
            cJSON *t = cJSON_CreateObject();
            o->ok &= app_json_add(t, "id", app_json_uint(id));
            if (have) {
                if (len >= 1024) { /* cut at a character boundary, to stay UTF-8 */
                    len = 1023;
                    while (len && ((unsigned char)s[len] & 0xC0) == 0x80)
                        len--;
                }
                o->ok &= app_json_add(t, "text", app_json_str(s, len));
            } else
                o->ok &= app_json_add(t, "text", cJSON_CreateNull());
            o->ok &= app_json_add(toks, specials[i].name, t);
        } else {
            printf("%s%s %" PRIu64, k > 1 ? ", " : "", specials[i].name, id);
            if (have) {
                printf(" '");
                print_escaped(s, len);
                printf("'");
            } else
                printf(" (none)");
        }
    }
    if (o->json && k)
        put(o, "special_tokens", toks);
    else if (o->json)
        cJSON_Delete(toks);
    else if (k)
        putchar('\n');
}

/* Whether `vkllm run` takes the file, and if not why: the architecture, or a tensor type. */
static void support(out *o, const lm_gguf *g, const char *arch)
{
    char why[600] = "";
    if (!arch)
        snprintf(why, sizeof why, "no general.architecture");
    else if (!lm_arch_supported(arch))
        snprintf(why, sizeof why, "architecture '%s' is not one vkllm runs (%s)", arch, lm_arch_names());
    for (int64_t i = 0; !why[0] && i < lm_gguf_n_tensors(g); i++) {
        lm_gguf_tensor_info t;
        lm_gguf_tensor(g, i, &t);
        if (!lm_quant_supported(t.type))
            snprintf(why, sizeof why, "tensor '%s' has type %s, which vkllm does not run", t.name,
                     lm_gguf_type_name(t.type) ? lm_gguf_type_name(t.type) : "?");
    }
    if (o->json) {
        put(o, "supported", cJSON_CreateBool(!why[0]));
        if (why[0])
            put(o, "unsupported_reason", app_json_str(why, strlen(why)));
    } else if (why[0]) {
        printf("%-15s no: ", "runs");
        app_put_safe(stdout, why, strlen(why), false);
        putchar('\n');
    } else {
        printf("%-15s yes\n", "runs");
    }
}

static void tokenizer(out *o, const lm_gguf *g)
{
    field_key(o, g, "tokenizer", "tokenizer_model", "tokenizer.ggml.model");
    field_key(o, g, "pre-tokenizer", "tokenizer_pre", "tokenizer.ggml.pre");
    int et;
    uint64_t n_vocab = 0, n_merges = 0;
    if (lm_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n_vocab, NULL) == LM_OK && et == LM_GGUF_STR)
        field_u64(o, "vocab size", "vocab_size", n_vocab);
    else
        n_vocab = 0;
    if (lm_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n_merges, NULL) == LM_OK)
        field_u64(o, "merges", "n_merges", n_merges);
    field_key(o, g, "add bos", "add_bos_token", "tokenizer.ggml.add_bos_token");
    field_key(o, g, "add eos", "add_eos_token", "tokenizer.ggml.add_eos_token");
    special_tokens(o, g, n_vocab);
    const char *tmpl;
    size_t tlen = 0;
    bool has_tmpl = lm_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &tlen) == LM_OK;
    if (o->json)
        put(o, "chat_template", cJSON_CreateBool(has_tmpl));
    else if (has_tmpl)
        printf("%-15s yes (%zu bytes)\n", "chat template", tlen);
    else
        printf("%-15s no\n", "chat template");
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    bool json = false, bad = false;
    int i = 1;
    for (; i < argc && !bad; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--")) {
            i++;
            break;
        } else if (!strcmp(a, "--json"))
            json = true;
        else if (app_opt(a, "-m", "--model"))
            bad = !app_arg_str(argc, argv, &i, &path);
        else
            return app_usage_fail(usage, a[0] == '-' && a[1] ? "info: unknown option '%s'"
                                                              : "info: unexpected argument '%s'", a);
    }
    if (bad)
        return app_bad_args(usage);
    if (i < argc)
        return app_usage_fail(usage, "info: unexpected argument '%s'", argv[i]);
    if (!path)
        return app_usage_fail(usage, "info: no model file (-m FILE)");

    if (app_file_expect(path, APP_FILE_GGUF, "-m"))
        return 1;
    lm_gguf *g;
    char err[512];
    if (lm_gguf_open(path, &g, err, sizeof err) != LM_OK)
        return app_fail("%s", err);

    out o = { .json = json, .ok = true };
    if (json)
        o.ok = (o.obj = cJSON_CreateObject()) != NULL;
    field_str(&o, "file", "file", path);
    if (json)
        put(&o, "file_size", app_json_uint(lm_gguf_file_size(g)));
    else
        printf("%-15s %zu (%.2f MiB)\n", "file size", lm_gguf_file_size(g), lm_gguf_file_size(g) / 1048576.0);
    field_u64(&o, "gguf version", "gguf_version", lm_gguf_version(g));
    const char *arch = NULL;
    if (lm_gguf_get_str(g, "general.architecture", &arch, NULL) == LM_OK)
        field_str(&o, "architecture", "architecture", arch);
    support(&o, g, arch);
    field_key(&o, g, "name", "name", "general.name");
    field_key(&o, g, "file type", "file_type", "general.file_type");
    uint32_t ft;
    if (lm_gguf_get_u32(g, "general.file_type", &ft) == LM_OK && lm_ftype_name((int)ft))
        field_str(&o, "file type name", "file_type_name", lm_ftype_name((int)ft)); /* as llama-quantize names it */
    tensor_summary(&o, g);
    if (arch)
        hparams(&o, g, arch);
    tokenizer(&o, g);
    field_u64(&o, "metadata keys", "n_kv", (uint64_t)lm_gguf_n_kv(g));
    lm_gguf_close(g);
    return app_stdout_status("info", json ? app_json_print(o.obj, o.ok) : 0);
}
