/* fake_engine.h: how the fake serve engine (fake_engine.c, for fuzz_http.c) answers. */
#ifndef VKLLM_FAKE_ENGINE_H
#define VKLLM_FAKE_ENGINE_H

#include <math.h>
#include <stdio.h>

#include "serve_engine.h"

typedef struct fake_engine_settings {
    enum srv_submit submit;   /* what srv_engine_submit and srv_engine_embed answer */
    enum srv_finish finish;   /* how a job that was not cancelled ends */
    int n_gen;                /* tokens a job generates at most */
    int embed_rc;             /* srv_engine_embed's status (LM_OK, LM_ERR_INVALID, ...) */
    bool embed_nan;           /* a NaN in every embedding */
    bool device_lost;         /* in the stats (/health) */
    int dim;                  /* embedding width: the api's dim */
} fake_engine_settings;

extern fake_engine_settings fake_engine;

#endif
