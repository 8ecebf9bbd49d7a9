/* lsan_keep_loaded.c: the sanitizer build's tests preload this (LD_PRELOAD, tests/CMakeLists.txt) so
 * that dlclose keeps every library loaded. The Vulkan loader unloads the driver and the validation layer
 * when the last instance is destroyed; LeakSanitizer's report at exit could then name no frame of their
 * allocations ("<unknown module>"), so no suppression could match them, and their globals would no
 * longer count as roots, so what a driver keeps for the process's life would look leaked. Built without
 * the sanitizers: it is also preloaded into the tests' uninstrumented subprocesses (sh, curl, nginx),
 * for which it changes nothing but the unloading. */
int dlclose(void *handle);

int dlclose(void *handle)
{
    (void)handle;
    return 0;
}
