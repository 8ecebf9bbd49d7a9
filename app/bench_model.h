/* bench_model.h: `vkllm bench -m FILE` (bench_model.c), llama-bench's tests on one or more models. */
#ifndef VKLLM_BENCH_MODEL_H
#define VKLLM_BENCH_MODEL_H

/* argv[0] is "bench"; returns the exit status. */
int bench_model(int argc, char **argv);

#endif
