/* chat_builtin.c: chat templates for models that carry none (`--chat-template NAME`), written here in
 * the Jinja subset of models/tmpl_*.c. Each follows its family's published prompt format (the turn
 * markers and where the system prompt goes); the model's own template, when it has one, is always
 * preferred. Variables: messages (role, content), add_generation_prompt, bos_token, eos_token. */
#include <string.h>

#include "lm.h"

static const struct {
    const char *name;
    const char *src;
} builtins[] = {
    /* <|im_start|>role\ncontent<|im_end|>\n (Qwen, Yi, OpenHermes, SmolLM) */
    { "chatml",
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}" },
    /* [INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] assistant </s> (Llama 2 chat) */
    { "llama2",
      "{% set ns = namespace(sys='') %}"
      "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content %}{% endif %}{% endfor %}"
      "{% set ns.first = true %}"
      "{% for m in messages %}{% if m.role == 'user' %}{{ bos_token }}[INST] "
      "{% if ns.first and ns.sys %}<<SYS>>\n{{ ns.sys }}\n<</SYS>>\n\n{% endif %}{% set ns.first = false %}"
      "{{ m.content | trim }} [/INST]"
      "{% elif m.role == 'assistant' %} {{ m.content | trim }} {{ eos_token }}{% endif %}{% endfor %}" },
    /* <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> (Llama 3) */
    { "llama3",
      "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n"
      "{{ m.content | trim }}<|eot_id|>{% endfor %}"
      "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}" },
    /* [INST] user [/INST] assistant</s>, the system prompt before the first user message (Mistral) */
    { "mistral",
      "{% set ns = namespace(sys='') %}"
      "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content + '\n\n' %}{% endif %}{% endfor %}"
      "{{ bos_token }}{% set ns.first = true %}"
      "{% for m in messages %}{% if m.role == 'user' %}[INST] {% if ns.first %}{{ ns.sys }}{% endif %}"
      "{% set ns.first = false %}{{ m.content }} [/INST]"
      "{% elif m.role == 'assistant' %}{{ m.content }}{{ eos_token }}{% endif %}{% endfor %}" },
    /* <start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n (Gemma: no system role, it goes
     * before the first user message) */
    { "gemma",
      "{% set ns = namespace(sys='') %}"
      "{% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content + '\n\n' %}{% endif %}{% endfor %}"
      "{{ bos_token }}{% set ns.first = true %}"
      "{% for m in messages %}{% if m.role != 'system' %}"
      "<start_of_turn>{% if m.role == 'assistant' %}model{% else %}{{ m.role }}{% endif %}\n"
      "{% if ns.first and m.role == 'user' %}{{ ns.sys }}{% set ns.first = false %}{% endif %}"
      "{{ m.content | trim }}<end_of_turn>\n{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}" },
    /* <|role|>\ncontent<|end|>\n (Phi-3) */
    { "phi3",
      "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}<|end|>\n{% endfor %}"
      "{% if add_generation_prompt %}<|assistant|>\n{% else %}{{ eos_token }}{% endif %}" },
    /* <|role|>\ncontent</s>\n (Zephyr) */
    { "zephyr",
      "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}"
      "{% if add_generation_prompt %}<|assistant|>\n{% endif %}" },
    /* User: ...\n\nAssistant: ...<eos> (DeepSeek LLM chat) */
    { "deepseek",
      "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}User: {{ m.content }}\n\n"
      "{% elif m.role == 'assistant' %}Assistant: {{ m.content }}{{ eos_token }}"
      "{% else %}{{ m.content }}\n\n{% endif %}{% endfor %}"
      "{% if add_generation_prompt %}Assistant:{% endif %}" },
};

const char *lm_chat_builtin(const char *name)
{
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (name && !strcmp(builtins[i].name, name))
            return builtins[i].src;
    return NULL;
}

const char *lm_chat_builtin_name(int i)
{
    return i >= 0 && (size_t)i < sizeof builtins / sizeof builtins[0] ? builtins[i].name : NULL;
}
