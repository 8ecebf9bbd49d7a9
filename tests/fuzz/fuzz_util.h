/* fuzz_util.h: what the fuzz targets share: the model directory, and a file holding the input for the
 * readers that take a path only (a memfd, rewritten each run: no disk I/O). */
#ifndef VKLLM_FUZZ_UTIL_H
#define VKLLM_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static inline const char *fuzz_models(void)
{
    const char *m = getenv("VKLLM_MODELS");
    return m && *m ? m : FUZZ_MODELS;
}

typedef struct fuzz_file {
    int fd;
    char path[64]; /* /proc/self/fd/N: a path to the memfd that open() and fopen() accept */
} fuzz_file;

static inline void fuzz_file_init(fuzz_file *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* The file's contents become data[0..n). */
static inline void fuzz_file_set(fuzz_file *f, const uint8_t *data, size_t n)
{
    if (ftruncate(f->fd, 0) || (n && pwrite(f->fd, data, n, 0) != (ssize_t)n)) {
        perror("memfd write");
        abort();
    }
}

#endif
