/* bench_shader.h: `vkllm bench shader FILE.comp`, a user's compute shader compiled at run time and timed
 * (app/cmd_bench_shader.c), called by app/cmd_bench.c. */
#ifndef VKLLM_BENCH_SHADER_H
#define VKLLM_BENCH_SHADER_H

#include "app.h"

/* argv[0] is "shader"; returns the exit status (0, or 1 for any error, bad options included). */
int bench_shader(int argc, char **argv);

#endif
