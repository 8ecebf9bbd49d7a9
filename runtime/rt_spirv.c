/* rt_spirv.c: what the runtime reads out of a SPIR-V module for itself: which storage-buffer bindings the
 * shader never writes, so that a sequence puts barriers only where a dispatch reads or writes what an
 * earlier one wrote (rt_seq.c). A module it cannot read is taken to write every binding. */
#include <stdlib.h>
#include <string.h>

#include "rt_internal.h"

enum {
    OP_TYPE_STRUCT = 30, OP_TYPE_POINTER = 32, OP_VARIABLE = 59, OP_DECORATE = 71, OP_MEMBER_DECORATE = 72,
    DEC_NON_WRITABLE = 24, DEC_BINDING = 33,
};

uint32_t rt_spirv_readonly_bindings(const uint32_t *code, size_t words)
{
    if (!code || words < 5 || code[0] != 0x07230203u || code[3] == 0 || code[3] > (1u << 22))
        return 0;
    uint32_t bound = code[3];
    /* per id: binding + 1 (0: none), NonWritable on the id, the pointee of a pointer, members of a
     * struct and how many of them are NonWritable */
    uint32_t *binding = calloc(bound, sizeof *binding), *pointee = calloc(bound, sizeof *pointee);
    uint32_t *members = calloc(bound, sizeof *members), *ro_members = calloc(bound, sizeof *ro_members);
    uint8_t *nonwritable = calloc(bound, 1);
    uint32_t *vars = calloc(bound, sizeof *vars), *var_type = calloc(bound, sizeof *var_type);
    uint32_t n_vars = 0, result = 0;
    if (!binding || !pointee || !members || !ro_members || !nonwritable || !vars || !var_type)
        goto out;
    for (size_t i = 5; i < words;) {
        uint32_t n = code[i] >> 16, op = code[i] & 0xFFFFu;
        if (n == 0 || i + n > words)
            goto out; /* malformed: no claim */
        const uint32_t *a = code + i + 1;
        if (op == OP_DECORATE && n >= 3 && a[0] < bound) {
            if (a[1] == DEC_BINDING && n >= 4)
                binding[a[0]] = a[2] + 1;
            else if (a[1] == DEC_NON_WRITABLE)
                nonwritable[a[0]] = 1;
        } else if (op == OP_MEMBER_DECORATE && n >= 4 && a[0] < bound && a[2] == DEC_NON_WRITABLE) {
            ro_members[a[0]]++;
        } else if (op == OP_TYPE_STRUCT && n >= 2 && a[0] < bound) {
            members[a[0]] = n - 2;
        } else if (op == OP_TYPE_POINTER && n >= 4 && a[0] < bound) {
            pointee[a[0]] = a[2];
        } else if (op == OP_VARIABLE && n >= 4 && a[1] < bound) {
            vars[n_vars] = a[1];
            var_type[n_vars++] = a[0];
        }
        i += n;
    }
    uint32_t written = 0, seen = 0;
    for (uint32_t v = 0; v < n_vars; v++) {
        uint32_t id = vars[v], b = binding[id];
        if (!b || b > 32)
            continue;
        uint32_t st = var_type[v] < bound ? pointee[var_type[v]] : 0;
        bool ro = nonwritable[id] || (st && st < bound && members[st] && ro_members[st] >= members[st]);
        seen |= 1u << (b - 1);
        if (!ro)
            written |= 1u << (b - 1);
    }
    result = seen & ~written;
out:
    free(binding);
    free(pointee);
    free(members);
    free(ro_members);
    free(nonwritable);
    free(vars);
    free(var_type);
    return result;
}
