// serve_client.mjs: the load generator of bench/serve.sh (read its header first). Node 20, no packages.
//
//   node bench/serve_client.mjs PORT
//
// For each number of concurrent streams in BENCH_STREAMS (default "1,4,16,64"): that many clients at
// once, each sending ROUNDS streamed completions one after the other (ROUNDS = max(1, 4 / streams), so
// that a level has at least 4 requests), every prompt different (no prefix cache help), greedy,
// ignore_eos, BENCH_TOKENS output tokens each (default 32). Per request: time to first token (TTFT:
// from sending to the first text event) and time per output token (TPOT: from the first text event to
// the last, over completion_tokens - 1); per level: aggregate output tokens/s (all completion tokens
// over the level's wall time), the median and 99th percentile of TPOT over the requests, and of the
// gaps between text events (ITL; the server may put several tokens in one event); and the KV pool's
// memory per live token, sampled from /metrics every 100 ms while the level runs: the positions of the
// blocks in use (kv_blocks_used * kv_block_size) over the tokens the sequences hold (kv_tokens), 1.0
// when paging wastes nothing.
//
// Then the prefix cache: BENCH_PREFIX_RUNS (default 2) times, a new long system prompt (about
// BENCH_PREFIX_CHARS characters, default 600, each run's own) with one question, then the same system
// prompt with another question: TTFT of the first (all evaluated) and of the second (the system
// prompt's KV blocks from the cache), and the cached_tokens that usage reports.
//
// Prints Markdown tables, and one JSON line ("json: {...}") with every number.

const port = process.argv[2];
if (!port) {
    console.error('usage: node serve_client.mjs PORT');
    process.exit(2);
}
const base = `http://127.0.0.1:${port}`;
const levels = (process.env.BENCH_STREAMS || '1,4,16,64').split(',').map(Number).filter((n) => n > 0);
const nTokens = Number(process.env.BENCH_TOKENS || 32);
const prefixRuns = Number(process.env.BENCH_PREFIX_RUNS || 2);
const prefixChars = Number(process.env.BENCH_PREFIX_CHARS || 600);

const words = ('the a little cat dog sun tree house river blue red happy small big ran saw played found ' +
               'went jumped under over with and then one day friend garden ball box bird boat hill').split(' ');
let seed = 12345;
function rnd() { // a fixed LCG: the same prompts every run
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
}
function sentence(n) {
    const w = [];
    for (let i = 0; i < n; i++)
        w.push(words[Math.floor(rnd() * words.length)]);
    return w.join(' ');
}

// One streamed request; resolves with its timings and usage.
async function streamed(path, body) {
    const t0 = performance.now();
    const res = await fetch(base + path, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    });
    if (res.status !== 200)
        throw new Error(`${path}: HTTP ${res.status}: ${await res.text()}`);
    const dec = new TextDecoder();
    let buf = '', first = -1, last = -1, usage = null, done = false;
    const gaps = [];
    for await (const chunk of res.body) {
        buf += dec.decode(chunk, { stream: true });
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
            const ev = buf.slice(0, at);
            buf = buf.slice(at + 2);
            if (!ev.startsWith('data: '))
                continue;
            const data = ev.slice(6);
            if (data === '[DONE]') {
                done = true;
                continue;
            }
            const j = JSON.parse(data);
            if (j.error)
                throw new Error(`${path}: ${j.error.message}`);
            if (j.usage)
                usage = j.usage;
            const c = j.choices && j.choices[0];
            const text = c ? (c.text !== undefined ? c.text : c.delta && c.delta.content) : '';
            if (text) {
                const t = performance.now();
                if (first < 0)
                    first = t;
                else
                    gaps.push(t - last);
                last = t;
            }
        }
    }
    if (!done || !usage)
        throw new Error(`${path}: the stream did not end with usage and [DONE]`);
    const n = usage.completion_tokens;
    return {
        ttft: first - t0,
        tpot: n > 1 && last > first ? (last - first) / (n - 1) : NaN,
        gaps,
        tokens: n,
        prompt: usage.prompt_tokens,
        cached: usage.prompt_tokens_details ? usage.prompt_tokens_details.cached_tokens : 0,
    };
}

function pct(xs, p) {
    const a = xs.filter((x) => Number.isFinite(x)).sort((x, y) => x - y);
    if (!a.length)
        return NaN;
    const i = Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1));
    return a[i];
}
const ms = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function level(streams) {
    const rounds = Math.max(1, Math.floor(4 / streams));
    const prompts = [];
    for (let i = 0; i < streams * rounds; i++)
        prompts.push(`${streams}-${i}: ${sentence(3)}`);
    const results = [];
    const t0 = performance.now();
    // the KV pool while the streams run: the positions its used blocks hold per token the sequences hold
    let running = true;
    const kv = [];
    const sampler = (async () => {
        while (running) {
            const m = await (await fetch(base + '/metrics')).text();
            const used = metric(m, 'vkllm_kv_blocks_used') * metric(m, 'vkllm_kv_block_size');
            const live = metric(m, 'vkllm_kv_tokens');
            if (live > 0)
                kv.push(used / live);
            await new Promise((r) => setTimeout(r, 100));
        }
    })();
    await Promise.all(Array.from({ length: streams }, async (_, c) => {
        for (let r = 0; r < rounds; r++)
            results.push(await streamed('/v1/completions', { prompt: prompts[c * rounds + r], max_tokens: nTokens,
                                                              temperature: 0, ignore_eos: true }));
    }));
    running = false;
    await sampler;
    const wall = (performance.now() - t0) / 1000;
    const tokens = results.reduce((s, r) => s + r.tokens, 0);
    const gaps = results.flatMap((r) => r.gaps);
    return {
        streams, requests: results.length, tokens, wall_s: wall, tokens_per_s: tokens / wall,
        ttft_median_ms: pct(results.map((r) => r.ttft), 50),
        tpot_median_ms: pct(results.map((r) => r.tpot), 50), tpot_p99_ms: pct(results.map((r) => r.tpot), 99),
        itl_median_ms: pct(gaps, 50), itl_p99_ms: pct(gaps, 99),
        kv_per_token: kv.length ? kv.reduce((s, x) => s + x, 0) / kv.length : NaN, kv_samples: kv.length,
    };
}

async function prefix() {
    const cold = [], warm = [];
    for (let k = 0; k < prefixRuns; k++) {
        let sys = `Run ${k} ${Date.now()}. You are a storyteller.`;
        while (sys.length < prefixChars)
            sys += ' ' + sentence(10) + '.';
        const ask = (q) => streamed('/v1/chat/completions', {
            messages: [{ role: 'system', content: sys }, { role: 'user', content: q }], max_tokens: 4, temperature: 0,
            ignore_eos: true,
        });
        cold.push(await ask('Tell me a story about a cat.'));
        warm.push(await ask('And one about a dog?'));
    }
    return {
        runs: prefixRuns, prompt_tokens: pct(cold.map((r) => r.prompt), 50),
        cold_ttft_ms: pct(cold.map((r) => r.ttft), 50), cold_cached: pct(cold.map((r) => r.cached), 50),
        warm_ttft_ms: pct(warm.map((r) => r.ttft), 50), warm_cached: pct(warm.map((r) => r.cached), 50),
    };
}

function metric(text, name) {
    const line = text.split('\n').find((l) => l.startsWith(name + ' '));
    return line ? Number(line.slice(name.length + 1)) : NaN;
}

(async () => {
    const out = { levels: [] };
    // a few short requests first: the passes of their shapes get recorded, the device warms up
    await Promise.all([0, 1, 2, 3].map((i) => streamed('/v1/completions', { prompt: `warm up ${i}`, max_tokens: 4,
                                                                            temperature: 0, ignore_eos: true })));
    console.log(`| streams | requests | output tokens | wall s | aggregate tokens/s | TTFT median ms | ` +
                `TPOT median ms | TPOT p99 ms | ITL median ms | ITL p99 ms | KV positions per live token |`);
    console.log('|---|---|---|---|---|---|---|---|---|---|---|');
    for (const s of levels) {
        const r = await level(s);
        out.levels.push(r);
        console.log(`| ${r.streams} | ${r.requests} | ${r.tokens} | ${r.wall_s.toFixed(1)} | ${r.tokens_per_s.toFixed(1)} | ` +
                    `${ms(r.ttft_median_ms)} | ${ms(r.tpot_median_ms)} | ${ms(r.tpot_p99_ms)} | ${ms(r.itl_median_ms)} | ` +
                    `${ms(r.itl_p99_ms)} | ${Number.isFinite(r.kv_per_token) ? r.kv_per_token.toFixed(3) : '-'} |`);
    }
    if (prefixRuns > 0) {
        const p = await prefix();
        out.prefix = p;
        console.log('');
        console.log(`Prefix cache (a system prompt of ${p.prompt_tokens} tokens with the question; medians of ${p.runs} runs):`);
        console.log('');
        console.log('| | TTFT ms | cached prompt tokens |');
        console.log('|---|---|---|');
        console.log(`| first request (all evaluated) | ${ms(p.cold_ttft_ms)} | ${p.cold_cached} |`);
        console.log(`| same system prompt, another question | ${ms(p.warm_ttft_ms)} | ${p.warm_cached} |`);
    }
    const m = await (await fetch(base + '/metrics')).text();
    out.metrics = {
        batch_size_avg: metric(m, 'vkllm_batch_size_avg'), passes: metric(m, 'vkllm_passes_total'),
        preemptions: metric(m, 'vkllm_preemptions_total'), prefix_hit_rate: metric(m, 'vkllm_prefix_cache_hit_rate'),
        kv_blocks_total: metric(m, 'vkllm_kv_blocks_total'), kv_blocks_used: metric(m, 'vkllm_kv_blocks_used'),
    };
    console.log('');
    console.log(`Server: ${out.metrics.passes} passes, ${out.metrics.batch_size_avg} rows per pass on average, ` +
                `${out.metrics.preemptions} preemptions, prefix cache hit rate ${out.metrics.prefix_hit_rate}, ` +
                `KV blocks used at the end ${out.metrics.kv_blocks_used} of ${out.metrics.kv_blocks_total}`);
    console.log('json: ' + JSON.stringify(out));
})().catch((e) => {
    console.error('serve_client: ' + e.message);
    process.exit(1);
});
