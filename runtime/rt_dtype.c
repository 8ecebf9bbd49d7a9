/* rt_dtype.c: the table of tensor element types (rt.h): ggml's block layouts by size. */
#include "rt_internal.h"

static const rt_dtype_traits traits[RT_DTYPE_MAX] = {
    [RT_F32] = { "F32", 1, 4 },        [RT_F16] = { "F16", 1, 2 },       [RT_BF16] = { "BF16", 1, 2 },
    [RT_Q4_0] = { "Q4_0", 32, 18 },    [RT_Q4_1] = { "Q4_1", 32, 20 },   [RT_Q5_0] = { "Q5_0", 32, 22 },
    [RT_Q5_1] = { "Q5_1", 32, 24 },    [RT_Q8_0] = { "Q8_0", 32, 34 },   [RT_Q2_K] = { "Q2_K", 256, 84 },
    [RT_Q3_K] = { "Q3_K", 256, 110 },  [RT_Q4_K] = { "Q4_K", 256, 144 }, [RT_Q5_K] = { "Q5_K", 256, 176 },
    [RT_Q6_K] = { "Q6_K", 256, 210 },  [RT_IQ4_NL] = { "IQ4_NL", 32, 18 }, [RT_IQ4_XS] = { "IQ4_XS", 256, 136 },
};

bool rt_dtype_info(int t, rt_dtype_traits *out)
{
    if (t < 0 || t >= RT_DTYPE_MAX || !traits[t].name)
        return false;
    if (out)
        *out = traits[t];
    return true;
}

size_t rt_dtype_size(rt_dtype t)
{
    rt_dtype_traits tr;
    return rt_dtype_info((int)t, &tr) && tr.block == 1 ? tr.block_bytes : 0;
}

size_t rt_dtype_row_bytes(rt_dtype t, int64_t k)
{
    rt_dtype_traits tr;
    if (!rt_dtype_info((int)t, &tr) || k <= 0 || k % tr.block)
        return 0;
    return (size_t)(k / tr.block) * tr.block_bytes;
}
