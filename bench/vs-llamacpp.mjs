// vs-llamacpp.mjs: llama.cpp's side of bench/vs-llamacpp.sh. Times prompt processing and text generation
// of one GGUF file with llama.cpp through the npm package node-llama-cpp (its prebuilt binaries, never a
// local build), the way `vkllm bench` times them:
//   pp: P seeded random token ids evaluated in one batch from an empty context (no logits kept but the
//       last), tokens / second;
//   tg: N tokens decoded one at a time from an empty context, greedy, starting from one random token
//       (N evaluations of one token each, end-of-generation tokens included), tokens / second;
// each test once as a warm-up, then R timed runs; the mean and standard deviation of the R rates.
//
//   node bench/vs-llamacpp.mjs --model FILE [--gpu vulkan|cpu] [-p P] [-n N] [-r R] [--threads T]
//        [--vocab V] [--log FILE]
//
// Prints one JSON object on stdout: engine, backend, device (as llama.cpp names it), threads, the
// offloaded layers, pp / tg means, standard deviations and samples. llama.cpp's own log goes to --log
// (default: stderr) so the caller can check which device really ran. node-llama-cpp is resolved from
// $NODE_PATH or the current directory (bench/vs-llamacpp.sh installs it into a cache folder and runs
// node there). With --gpu vulkan, GGML_VK_VISIBLE_DEVICES must name the device (the shell script sets
// it): llama.cpp's Vulkan backend skips CPU-type devices such as lavapipe otherwise and then runs
// everything on its CPU backend, still calling itself a Vulkan build.
import fs from "node:fs";
import os from "node:os";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

function usage(msg) {
    if (msg) process.stderr.write(`vs-llamacpp.mjs: ${msg}\n`);
    process.stderr.write("usage: node vs-llamacpp.mjs --model FILE [--gpu vulkan|cpu] [-p P] [-n N] [-r R] [--threads T] [--vocab V] [--log FILE]\n");
    process.exit(2);
}

// --report FILE VKLLM.json VULKAN.json CPU.json ...: the Markdown table of one model (a missing file: a
// row saying it did not run; one CPU file per thread count), as bench/vs-llamacpp.sh prints it.
if (process.argv[2] === "--report") {
    report(...process.argv.slice(3));
    process.exit(0);
}

function readJson(f) {
    try {
        return JSON.parse(fs.readFileSync(f, "utf8"));
    } catch {
        return null;
    }
}

function report(file, vkFile, vulkanFile, ...cpuFiles) {
    const vk = readJson(vkFile) || [];
    const row = (test) => vk.find((r) => r.test.startsWith(test) && !r.test.includes("@"));
    const vpp = row("pp"), vtg = row("tg");
    const fmt = (x) => (x ? `${x.mean.toFixed(2)} ± ${x.sd.toFixed(2)}` : "-");
    const ratio = (a, b) => (a && b ? `${(a.mean / b.mean).toFixed(2)}x` : "-");
    const rows = [{ engine: "vkllm", device: vk[0]?.device || "-", threads: "-", pp: vpp && { mean: vpp.avg_ts, sd: vpp.stddev_ts }, tg: vtg && { mean: vtg.avg_ts, sd: vtg.stddev_ts } }];
    const problems = [];
    for (const [f, name] of [[vulkanFile, "llama.cpp-Vulkan"], ...cpuFiles.map((c) => [c, "llama.cpp-CPU"])]) {
        const j = readJson(f);
        if (!j) {
            rows.push({ engine: name, device: "(did not run)", threads: "-" });
            continue;
        }
        let device = j.backend === "vulkan" ? (j.vulkan_device || "?") : "CPU";
        if (j.backend === "vulkan" && !j.vulkan_ok) problems.push(`${name}: llama.cpp's log does not show every layer on a Vulkan device: ${j.device_log.join(" / ")}`);
        rows.push({ engine: name, device, threads: j.threads, pp: j.pp, tg: j.tg });
    }
    const pp = rows[0].pp, tg = rows[0].tg;
    const P = vpp?.n_prompt ?? readJson(vulkanFile)?.n_prompt ?? "", N = vtg?.n_gen ?? readJson(vulkanFile)?.n_gen ?? "";
    const type = vk[0]?.type ? ` (${vk[0].type})` : "";
    const out = [`\n### ${path.basename(file)}${type}\n`,
        `| engine | device | threads | pp${P} t/s | tg${N} t/s | pp vkllm / engine | tg vkllm / engine |`,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |"];
    for (const r of rows)
        out.push(`| ${r.engine} | ${r.device} | ${r.threads} | ${fmt(r.pp)} | ${fmt(r.tg)} | ${r === rows[0] ? "1.00x" : ratio(pp, r.pp)} | ${r === rows[0] ? "1.00x" : ratio(tg, r.tg)} |`);
    for (const p of problems) out.push(`\nWARNING: ${p}`);
    process.stdout.write(out.join("\n") + "\n");
}

const opt = { model: null, gpu: "vulkan", p: 128, n: 32, r: 3, threads: 0, vocab: 0, log: null };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    const a = argv[i], v = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
    if (a === "-m" || a === "--model") opt.model = v();
    else if (a === "--gpu") opt.gpu = v();
    else if (a === "-p") opt.p = Number(v());
    else if (a === "-n") opt.n = Number(v());
    else if (a === "-r") opt.r = Number(v());
    else if (a === "--threads") opt.threads = Number(v());
    else if (a === "--vocab") opt.vocab = Number(v());
    else if (a === "--log") opt.log = v();
    else usage(`unknown option ${a}`);
}
if (!opt.model) usage("give --model FILE");
if (opt.gpu !== "vulkan" && opt.gpu !== "cpu") usage("--gpu: vulkan or cpu");
for (const k of ["p", "n", "r", "threads", "vocab"])
    if (!Number.isInteger(opt[k]) || opt[k] < 0) usage(`-${k}: a non-negative integer`);
if (opt.r < 1) usage("-r: at least 1");
// Vulkan: one ggml CPU thread (all layers are offloaded; JavaScript's thread and ggml's compete for the
// cores). CPU: every core of the machine unless --threads says otherwise.
const threads = opt.threads || (opt.gpu === "vulkan" ? 1 : os.cpus().length);

// node-llama-cpp from NODE_PATH's folders or the working directory's node_modules
async function importLlama() {
    const bases = [...(process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean).map((d) => path.join(d, "..")), process.cwd()];
    for (const base of bases) {
        try {
            const req = createRequire(path.join(base, "noop.js"));
            return await import(pathToFileURL(req.resolve("node-llama-cpp")).href);
        } catch { /* next */ }
    }
    return import("node-llama-cpp");
}
const { getLlama, LlamaLogLevel } = await importLlama();

const logLines = [];
const logFd = opt.log ? fs.openSync(opt.log, "w") : 2;
function logger(level, message) {
    const line = `[${level}] ${message}`.replace(/\n+$/, "");
    logLines.push(line);
    fs.writeSync(logFd, line + "\n");
}

const llama = await getLlama({
    gpu: opt.gpu === "vulkan" ? "vulkan" : false,
    build: "never",
    logLevel: LlamaLogLevel.debug,
    logger,
    maxThreads: threads,
    progressLogs: false,
});
if (opt.gpu === "vulkan" && llama.gpu !== "vulkan") {
    process.stderr.write(`vs-llamacpp.mjs: node-llama-cpp loaded its '${llama.gpu}' build, not the Vulkan one\n`);
    process.exit(1);
}
const gpuDevices = opt.gpu === "vulkan" ? await llama.getGpuDeviceNames() : [];

const model = await llama.loadModel({ modelPath: opt.model, gpuLayers: opt.gpu === "vulkan" ? "max" : 0 });
const need = Math.max(opt.p, opt.n, 1);
const context = await model.createContext({
    contextSize: Math.max(256, need + 8),
    batchSize: Math.max(opt.p, 1),
    sequences: 1,
    threads: { ideal: threads, min: threads },
    flashAttention: false,
});
const seq = context.getSequence();

// the vocabulary size: --vocab (the shell script reads it with `vkllm info`), else the file's metadata
let nVocab = opt.vocab;
if (!nVocab) {
    const md = model.fileInfo.metadata;
    const arch = md?.general?.architecture;
    nVocab = md?.[arch]?.vocab_size || md?.tokenizer?.ggml?.tokens?.length || 0;
}
if (!nVocab) {
    process.stderr.write("vs-llamacpp.mjs: cannot tell the vocabulary size: give --vocab V\n");
    process.exit(1);
}

// seeded random token ids (splitmix64, as vkllm's bench)
let state = 42n;
const M64 = (1n << 64n) - 1n;
function rng() {
    state = (state + 0x9E3779B97F4A7C15n) & M64;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xBF58476D1CE4E5B9n) & M64;
    z = ((z ^ (z >> 27n)) * 0x94D049BB133111EBn) & M64;
    return z ^ (z >> 31n);
}
const randomIds = (n) => Array.from({ length: n }, () => Number(rng() % BigInt(nVocab)));

async function runPP() {
    await seq.clearHistory();
    const ids = randomIds(opt.p);
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function runTG() {
    await seq.clearHistory();
    const first = randomIds(1);
    let count = 0;
    const t0 = process.hrtime.bigint();
    // yieldEogToken: node-llama-cpp ends the generation at an end-of-generation token otherwise (random
    // weights pick one now and then), and fewer tokens would be counted as N
    for await (const tok of seq.evaluate(first, { temperature: 0, yieldEogToken: true })) {
        void tok;
        if (++count === opt.n) break;
    }
    const t = Number(process.hrtime.bigint() - t0) / 1e9;
    if (count !== opt.n) throw new Error(`generation stopped after ${count} of ${opt.n} tokens`);
    return t;
}

function stats(samples) {
    const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
    const sd = samples.length > 1 ? Math.sqrt(samples.reduce((a, b) => a + (b - mean) ** 2, 0) / (samples.length - 1)) : 0;
    return { mean, sd, samples };
}

async function bench(fn, tokens) {
    if (!tokens) return null;
    await fn(); // warm-up
    const rates = [];
    for (let i = 0; i < opt.r; i++) rates.push(tokens / (await fn()));
    return stats(rates);
}

const pp = await bench(runPP, opt.p);
const tg = await bench(runTG, opt.n);

// which device the weights really went to, from llama.cpp's own log
const usingDevice = logLines.filter((l) => /using device|offloaded \d+\/\d+ layers|ggml_vulkan: \d+ =|Found \d+ Vulkan devices/.test(l));
// Vulkan: the model's layers all assigned to a Vulkan device ("using device Vulkan0 (NAME)" and
// "offloaded K/K layers"), not to llama.cpp's CPU backend
const dev = usingDevice.map((l) => l.match(/using device (Vulkan\d+) \((.*)\) \(/)).find(Boolean);
const off = usingDevice.map((l) => l.match(/offloaded (\d+)\/(\d+) layers/)).find(Boolean);
const vulkanOk = opt.gpu === "vulkan" && !!dev && !!off && off[1] === off[2];
if (opt.gpu === "vulkan" && !vulkanOk)
    process.stderr.write(`vs-llamacpp.mjs: WARNING: llama.cpp did not put every layer on a Vulkan device:\n  ${usingDevice.join("\n  ")}\n`);
const result = {
    vulkan_device: dev ? `${dev[1]}: ${dev[2]}` : null,
    vulkan_ok: vulkanOk,
    engine: opt.gpu === "vulkan" ? "llama.cpp-Vulkan" : "llama.cpp-CPU",
    backend: llama.gpu || "cpu",
    gpu_devices: gpuDevices,
    gpu_layers: model.gpuLayers,
    threads,
    n_vocab: nVocab,
    n_prompt: opt.p,
    n_gen: opt.n,
    reps: opt.r,
    pp,
    tg,
    device_log: usingDevice,
};
await context.dispose();
await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify(result) + "\n");
