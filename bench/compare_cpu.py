#!/usr/bin/env python3
"""compare_cpu.py: vkllm's matrix products and copy bandwidth beside the CPU's own, in one run.

Runs `vkllm bench kernels --json --filter matmul`, then, on this machine's CPU:
  - the same shapes with numpy (its BLAS: OpenBLAS sgemm / sgemv on Debian), when numpy is importable;
    always f32 (a CPU library multiplies f16 weights by converting them), so the f16 rows compare vkllm's
    f16 kernel with the CPU's f32 one;
  - a plain C memcpy loop (compiled here with cc) over the size vkllm's copy calibration used,
    bandwidth counted as vkllm counts it: bytes read + bytes written.
and prints them side by side with their ratio. Python 3 standard library only; numpy is optional.

usage: bench/compare_cpu.py [--vkllm PATH] [--device N] [--filter S] [--iters N] [--quick]
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

MEMCPY_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv)
{
    size_t n = strtoull(argv[1], NULL, 10);
    int iters = atoi(argv[2]);
    char *src = malloc(n), *dst = malloc(n);
    if (!src || !dst) return 1;
    memset(src, 1, n);
    memset(dst, 2, n);
    double t[1000];
    if (iters > 1000) iters = 1000;
    for (int i = -1; i < iters; i++) {  /* one warm-up */
        double t0 = now();
        memcpy(dst, src, n);
        double t1 = now();
        if (i >= 0) t[i] = t1 - t0;
        src[i & 1023] ^= dst[(i * 7) & 1023];  /* keep the copies */
    }
    qsort(t, iters, sizeof t[0], cmp);
    printf("%.9f %d\n", t[iters / 2], dst[12345 % n]);
    return 0;
}
"""


def find_vkllm(arg):
    for p in (arg, os.environ.get("VKLLM_BIN"), os.path.join(HERE, "..", "build", "vkllm")):
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("compare_cpu: no vkllm binary: pass --vkllm PATH (or set VKLLM_BIN, or build into build/)")


def run_vkllm(args):
    cmd = [find_vkllm(args.vkllm), "bench", "kernels", "--json", "--filter", args.filter]
    if args.device is not None:
        cmd += ["--device", str(args.device)]
    if args.iters:
        cmd += ["--iters", str(args.iters)]
    if args.quick:
        cmd.append("--quick")
    print("running:", " ".join(cmd), file=sys.stderr)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout
    return json.loads(out)


def memcpy_gbps(n, iters):
    """Median bandwidth of memcpy of n bytes, read + write; None without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        return None
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "memcpy_bw.c"), os.path.join(d, "memcpy_bw")
        with open(src, "w") as f:
            f.write(MEMCPY_C)
        subprocess.run([cc, "-O2", "-o", exe, src], check=True)
        out = subprocess.run([exe, str(n), str(iters)], stdout=subprocess.PIPE, check=True, text=True).stdout
    return 2.0 * n / float(out.split()[0]) / 1e9


def numpy_time(np, m, n, k, iters, budget=1.0):
    """Median seconds of Y = X W^T in f32 (sgemv for m = 1, sgemm otherwise)."""
    w = np.full((n, k), 0.0078, dtype=np.float32)
    x = np.full((m, k), 0.0078, dtype=np.float32)
    f = (lambda: w @ x[0]) if m == 1 else (lambda: x @ w.T)
    t0 = time.perf_counter()
    f()  # warm-up
    first = time.perf_counter() - t0
    if first > budget:
        return first
    times, spent = [], 0.0
    while len(times) < iters and spent < budget:
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    return statistics.median(times)


def blas_libraries():
    """The BLAS libraries numpy has loaded (Linux), e.g. libopenblasp-r0.3.21.so or the slow reference libblas."""
    try:
        with open("/proc/self/maps") as f:
            names = {os.path.basename(l.split()[-1]) for l in f if "blas" in l.lower() and "/" in l}
        return ", ".join(sorted(names)) or "unknown"
    except OSError:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vkllm", help="the vkllm binary (default: $VKLLM_BIN, then build/vkllm)")
    ap.add_argument("--device", type=int, help="Vulkan device index (see `vkllm devices`)")
    ap.add_argument("--filter", default="matmul", help="cases to run (default: matmul)")
    ap.add_argument("--iters", type=int, default=0, help="timed runs per case (default: vkllm's)")
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    res = run_vkllm(args)
    cal = res["calibration"]
    iters = args.iters or (3 if args.quick else 10)
    print("device       %s (%s)" % (res["device"]["name"], res["device"]["type"]))

    n_copy = int(cal["copy_bytes"]) // 2
    cpu_bw = memcpy_gbps(n_copy, iters)
    print("\ncopy %d MiB           vkllm copy kernel    CPU memcpy      vkllm / CPU" % (n_copy >> 20))
    if cpu_bw:
        print("  GB/s (read+write)  %12.2f %13.2f %16.2f" % (cal["copy_gbps"], cpu_bw, cal["copy_gbps"] / cpu_bw))
    else:
        print("  GB/s (read+write)  %12.2f      (no C compiler)" % cal["copy_gbps"])
    print("vkllm fma calibration: %.1f GFLOP/s" % cal["fma_gflops"])

    try:
        import numpy as np
        blas = "numpy %s" % np.__version__
    except ImportError:
        np = None
        blas = None
    print("\n%-30s %-13s %11s %9s %11s %9s %8s" % ("case", "shape", "vkllm us", "GFLOP/s",
                                                   "CPU us", "GFLOP/s", "ratio"))
    for r in res["results"]:
        mm = re.match(r"matmul \S+ m=(\d+) ", r["name"])
        if not mm:
            continue
        m = int(mm.group(1))
        n, k = (int(v) for v in r["shape"].split("x"))
        line = "%-30s %-13s %11.1f %9.2f" % (r["name"], r["shape"], r["time_us"], r["gflops"] or 0)
        if np is not None:
            try:
                t = numpy_time(np, m, n, k, iters)
                g = 2.0 * m * n * k / t / 1e9
                line += " %11.1f %9.2f %8.2f" % (t * 1e6, g, (r["gflops"] or 0) / g)
            except MemoryError:
                line += "   (CPU: out of memory)"
        print(line, flush=True)
    if np is None:
        print("\n(numpy is not installed: the CPU columns are empty; Debian: apt-get install python3-numpy)")
    else:
        print("\nCPU: %s (%s), f32 weights for every row; ratio = vkllm GFLOP/s / CPU GFLOP/s"
              % (blas, blas_libraries()))
        if "openblas" not in blas_libraries().lower():
            print("(not OpenBLAS: Debian's reference BLAS is far slower; apt-get install libopenblas0)")
    for s in res.get("skipped", []):
        print("skipped by vkllm: %s: %s" % (s["name"], s["reason"]))


if __name__ == "__main__":
    main()
