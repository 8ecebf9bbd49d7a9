/* test_serve_openai: `vkllm serve` driven by OpenAI's official Node client (the npm package openai,
 * 6.x, on Node 20), installed at test time into a temporary folder (never into the checkout). Skipped
 * (status SKIP_STATUS, with a message) when node or npm is missing or the registry cannot be reached.
 *
 * Through the client: models.list(); chat.completions.create and completions.create, streamed (async
 * iteration over the SSE chunks, usage chunk included) and not, greedy, give `vkllm run`'s text; a bad
 * request throws BadRequestError (400), a wrong key AuthenticationError (401); a stream aborted by the
 * client after its first chunk leaves the server serving the next request at once. */
#include "serve_util.h"

/* ctest takes this status as a skip (SKIP_RETURN_CODE in tests/CMakeLists.txt) */
#ifndef SKIP_STATUS
#define SKIP_STATUS 77
#endif

static const char script[] =
    "const OpenAI = require('openai');\n"
    "const fs = require('fs');\n"
    "const port = process.argv[2];\n"
    "const goldenChat = fs.readFileSync(process.argv[3], 'utf8'), goldenCompletion = fs.readFileSync(process.argv[4], 'utf8');\n"
    "const fail = (m) => { console.error('FAIL: ' + m); process.exitCode = 1; };\n"
    "const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'sekret-key', timeout: 120000,\n"
    "                            maxRetries: 0 });\n"
    "const messages = [{ role: 'system', content: 'You tell stories.' },\n"
    "                  { role: 'user', content: [{ type: 'text', text: 'Tell me ' }, { type: 'text', text: 'a story' }] }];\n"
    "(async () => {\n"
    "  const models = await client.models.list();\n"
    "  if (models.data[0].id !== 'stories260K.gguf') fail('models: ' + JSON.stringify(models.data));\n"
    "  const chat = await client.chat.completions.create({ model: 'm', messages, temperature: 0, max_tokens: 30 });\n"
    "  if (chat.choices[0].message.content !== goldenChat) fail('chat: ' + JSON.stringify(chat));\n"
    "  if (chat.usage.completion_tokens !== 30 || chat.choices[0].finish_reason !== 'length') fail('chat usage');\n"
    "  let text = '', usage = null, finish = null;\n"
    "  const stream = await client.chat.completions.create({ model: 'm', messages, temperature: 0, max_tokens: 30,\n"
    "                                                        stream: true, stream_options: { include_usage: true } });\n"
    "  for await (const chunk of stream) {\n"
    "    if (chunk.usage) usage = chunk.usage;\n"
    "    if (chunk.choices.length) { text += chunk.choices[0].delta.content || '';\n"
    "                                finish = chunk.choices[0].finish_reason || finish; }\n"
    "  }\n"
    "  if (text !== goldenChat || finish !== 'length' || !usage) fail('chat stream: ' + JSON.stringify(text));\n"
    "  const comp = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 40,\n"
    "                                                 temperature: 0 });\n"
    "  if (comp.choices[0].text !== goldenCompletion) fail('completion: ' + JSON.stringify(comp));\n"
    "  text = '';\n"
    "  const cs = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 40,\n"
    "                                               temperature: 0, stream: true });\n"
    "  for await (const chunk of cs) text += chunk.choices[0].text;\n"
    "  if (text !== goldenCompletion) fail('completion stream: ' + JSON.stringify(text));\n"
    "  try { await client.chat.completions.create({ model: 'm', messages: [], max_tokens: 3 });\n"
    "        fail('an empty messages list was accepted'); }\n"
    "  catch (e) { if (!(e instanceof OpenAI.BadRequestError) || !/messages/.test(e.message)) fail('400: ' + e); }\n"
    "  try { await new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'wrong', maxRetries: 0 })\n"
    "          .chat.completions.create({ model: 'm', messages, max_tokens: 3 });\n"
    "        fail('a wrong key was accepted'); }\n"
    "  catch (e) { if (!(e instanceof OpenAI.AuthenticationError)) fail('401: ' + e); }\n"
    "  const long = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 1800,\n"
    "                                                 ignore_eos: true, stream: true });\n"
    "  for await (const chunk of long) { long.controller.abort(); break; }\n"
    "  const t0 = Date.now();\n"
    "  const after = await client.completions.create({ model: 'm', prompt: 'Once upon a time', max_tokens: 40,\n"
    "                                                  temperature: 0 });\n"
    "  if (after.choices[0].text !== goldenCompletion || Date.now() - t0 > 5000)\n"
    "    fail('after an aborted stream: ' + (Date.now() - t0) + ' ms');\n"
    "  console.log('openai client: ok');\n"
    "})().catch((e) => { fail(e.stack || String(e)); });\n";

int main(void)
{
    bin = getenv("VKLLM_BIN");
    if (!bin || access(bin, X_OK)) {
        fprintf(stderr, "test_serve_openai: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    snprintf(model, sizeof model, "%s", tu_model_path("gguf/stories260K.gguf"));
    snprintf(dir, sizeof dir, "/tmp/vkllm_serve_openai_XXXXXX");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_serve_openai: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    char cmd[8192], out[4096];
    int status = 0;
    /* the client, into the temporary folder, with bounded time */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && command -v node >/dev/null && command -v npm >/dev/null && "
             "timeout 240 npm install --no-audit --no-fund --no-save --prefix '%s' openai@6 >npm.log 2>&1 && "
             "node -e \"require('%s/node_modules/openai')\" && echo installed",
             dir, dir, dir);
    if (tu_run(cmd, out, sizeof out) || !strstr(out, "installed")) {
        printf("test_serve_openai: SKIPPED: node, npm or the npm registry is not available\n");
        status = SKIP_STATUS;
        goto out;
    }
    if (!make_goldens()) {
        CHECK(0, "cannot get the golden texts from `vkllm run`");
        goto finish;
    }
    char js[128];
    snprintf(js, sizeof js, "%s/client.js", dir);
    CHECK(write_file(js, script), "cannot write %s", js);
    server s;
    const char *args[] = { "--parallel", "1", "--api-key", "sekret-key", NULL };
    if (!server_start(&s, "openai", args)) {
        CHECK(0, "the server did not start");
        goto finish;
    }
    /* the golden texts go to node as files */
    char gc[128], gp[128];
    snprintf(gc, sizeof gc, "%s/golden_chat.txt", dir);
    snprintf(gp, sizeof gp, "%s/golden_completion.txt", dir);
    CHECK(write_file(gc, golden_chat) && write_file(gp, golden_completion), "cannot write the golden texts");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && NODE_PATH='%s/node_modules' timeout 300 node client.js %d '%s' '%s' 2>&1", dir,
             dir, s.port, gc, gp);
    static char log[1 << 16];
    int rc = tu_run(cmd, log, sizeof log);
    printf("%s", log);
    CHECK(rc == 0 && strstr(log, "openai client: ok"), "the openai client's checks failed (status %d)", rc);
    CHECK(server_stop(&s) == 0, "the server did not stop with status 0 on SIGTERM");
finish:
    status = tu_finish("test_serve_openai");
out:
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, out, sizeof out);
    free(golden_chat);
    free(golden_completion);
    return status;
}
