/* conv_json.h: conversation files, as `vkllm chat` (/save, /load), the chat window and `vkllm template`
 * read and write them.
 *
 * The file is a JSON array of messages, each an object with a "role" and a "content" string:
 *   [{"role": "system", "content": "You are ..."}, {"role": "user", "content": "Hello!"}, ...]
 * Also read: an object with such an array as its "messages" member (an OpenAI-style request), and a
 * content that is a list of parts [{"type": "text", "text": "..."}, ...] (the texts are joined, with
 * nothing between them, as a template that loops over the parts prints them) or null (""). Other members
 * are ignored. Saving writes the plain array, formatted, under a temporary name renamed into place.
 *
 * These functions print nothing: on failure they return false with the reason in err, which starts
 * with the path ("conv.json: message 3: \"role\" is not a string"). */
#ifndef VKLLM_CONV_JSON_H
#define VKLLM_CONV_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "lm.h"

typedef struct conv_msg {
    char *role;      /* NUL-terminated */
    char *content;   /* NUL-terminated; len bytes */
    size_t len;
} conv_msg;

typedef struct conv {
    conv_msg *msgs;
    int n;
} conv;

/* Parses text[0..len) (name: what err calls it). *out is empty on failure; free it with conv_free. */
bool conv_parse(const char *text, size_t len, const char *name, conv *out, char *err, size_t errlen);
/* Reads and parses a file ("-": standard input). */
bool conv_load(const char *path, conv *out, char *err, size_t errlen);
void conv_free(conv *c);
/* Writes msgs[0..n) as a JSON array to path, through path.tmp.XXXXXX renamed onto path. */
bool conv_save(const char *path, const conv_msg *msgs, int n, char *err, size_t errlen);

/* The same with a chat: conv_load_chat replaces c's messages with the file's (c unchanged on failure,
 * including a message the chat refuses: an unknown role, invalid UTF-8); conv_save_chat writes c's. */
bool conv_load_chat(const char *path, lm_chat *c, char *err, size_t errlen);
bool conv_save_chat(const char *path, const lm_chat *c, char *err, size_t errlen);

#endif
