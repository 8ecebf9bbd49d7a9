/* chat_window.h: the pieces of the chat window (`vkllm chat --window`), shared by app/chat_window*.c:
 *   chat_window_font.c    fonts found with fontconfig, glyphs rasterised by stb_truetype on demand into
 *                         an atlas texture, text drawn as textured quads
 *   chat_window_text.c    UTF-8, word wrapping (per character for CJK), hit testing
 *   chat_window_edit.c    editable text: the input box and the one-line fields
 *   chat_window_ui.c      drawing primitives and widgets (buttons, fields)
 *   chat_window_engine.c  the model and the conversation, on worker threads
 *   chat_window.c         the window: layout, events, the main loop, --script and --screenshot
 * Everything is in framebuffer pixels, origin at the top left. Only the main thread touches GL. */
#ifndef VKLLM_CHAT_WINDOW_H
#define VKLLM_CHAT_WINDOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_opts.h"

/* ---------------------------------------------------------------- fonts (chat_window_font.c) */

enum { CW_SIZE_NORMAL, CW_SIZE_SMALL, CW_SIZE_COUNT };

typedef struct cw_fonts cw_fonts;

/* CONSTRUCTOR: the "sans-serif" face and, as fallbacks for glyphs it lacks, the faces fontconfig
 * picks for Chinese, Japanese and Korean. Needs no GL context (the atlas texture is made on first
 * draw). Fails (err says why) when no usable main face is found. */
int cw_fonts_create(cw_fonts **out, char *err, size_t errlen);
void cw_fonts_free(cw_fonts *f);   /* the GL context must still be current */
/* Pixel sizes are the base sizes times scale (the window's content scale); a change drops the cache. */
void cw_fonts_set_scale(cw_fonts *f, float scale);
float cw_line_height(const cw_fonts *f, int size);
float cw_advance(cw_fonts *f, int size, uint32_t cp);
float cw_text_width(cw_fonts *f, int size, const char *s, size_t n);
/* Draws s[0..n) on one line, the line's top at y; colour 0xRRGGBBAA. */
void cw_draw_text(cw_fonts *f, int size, float x, float y, const char *s, size_t n, uint32_t rgba);
/* Distinct code points (visible characters) found in no face so far. */
int cw_fonts_missing(const cw_fonts *f);
/* "DejaVu Sans + WenQuanYi Zen Hei": the faces in use. */
const char *cw_fonts_names(const cw_fonts *f);

/* ---------------------------------------------------------------- text (chat_window_text.c) */

/* The code point at s[*i] (n bytes in all); *i moves past it. An invalid or truncated sequence is
 * U+FFFD and moves one byte. */
uint32_t cw_utf8_next(const char *s, size_t n, size_t *i);
/* The start of the character before byte i (0 when i is 0). */
size_t cw_utf8_prev(const char *s, size_t i);
/* Encodes cp (U+FFFD if out of range) into out; returns its length 1..4. */
size_t cw_utf8_put(uint32_t cp, char out[4]);
/* Ideographs, kana, hangul, full-width forms: lines may break before and after each. */
bool cw_is_wide(uint32_t cp);

/* A laid-out text: lines [start, end) of byte offsets. A line ends before its '\n' (hard break) or
 * where the next one starts (soft break: its trailing spaces stay on it). width: without trailing
 * spaces. */
typedef struct cw_line {
    size_t start, end;
    float width;
} cw_line;
typedef struct cw_layout {
    cw_line *lines;
    int n, cap;
    float width;    /* the widest line */
} cw_layout;
/* Word-wraps s[0..n) at wrap_w pixels (at least one character per line). */
void cw_layout_text(cw_layout *l, cw_fonts *f, int size, const char *s, size_t n, float wrap_w);
void cw_layout_free(cw_layout *l);
/* The line that holds byte offset off (an offset where a soft break falls belongs to the next line). */
int cw_layout_line_of(const cw_layout *l, size_t off);
/* The x of offset off in line ln, and the offset nearest to x. */
float cw_line_x(cw_fonts *f, int size, const char *s, const cw_line *ln, size_t off);
size_t cw_line_hit(cw_fonts *f, int size, const char *s, const cw_line *ln, float x);

/* ---------------------------------------------------------------- editable text (chat_window_edit.c) */

typedef struct cw_edit {
    char *buf;          /* NUL-terminated, valid UTF-8 as typed (pasted text is taken as it is) */
    size_t len, cap;
    size_t cur, anchor; /* the cursor and the other end of the selection (== cur: none) */
    bool multiline;     /* the input box: wraps, Shift+Enter inserts a newline */
    float scroll;       /* multiline: first visible pixel row; one line: first visible pixel column */
    float pref_x;       /* the column that Up/Down keep, -1 none */
    cw_layout lay;      /* multiline: the text laid out at wrap_w */
    float wrap_w;       /* multiline: the width of the last draw */
    int size;           /* font size */
} cw_edit;

enum cw_edit_action { CW_EDIT_NONE, CW_EDIT_CHANGED, CW_EDIT_SUBMIT, CW_EDIT_MOVED };

void cw_edit_init(cw_edit *e, bool multiline, const char *text);
void cw_edit_free(cw_edit *e);
void cw_edit_set(cw_edit *e, const char *text);
/* Replaces the selection by s[0..n) (one-line fields take newlines as spaces). */
void cw_edit_insert(cw_edit *e, const char *s, size_t n);
bool cw_edit_has_sel(const cw_edit *e);
/* The selected text, malloc'd and NUL-terminated (NULL when none). */
char *cw_edit_sel_text(const cw_edit *e);
/* A key press (GLFW key and mods) while the field has the focus; clipboard text for Ctrl+V is got and
 * Ctrl+C/X set through the window. */
enum cw_edit_action cw_edit_key(cw_edit *e, void *window, cw_fonts *f, int key, int mods);

/* ---------------------------------------------------------------- drawing and widgets (chat_window_ui.c) */

void cw_fill(float x, float y, float w, float h, uint32_t rgba);
void cw_round(float x, float y, float w, float h, float r, uint32_t rgba);
/* A rounded box with a 1-pixel (times scale) border. */
void cw_box(float x, float y, float w, float h, float r, float border, uint32_t line, uint32_t fill);
/* Clip to a rectangle (fb_h: framebuffer height), or stop clipping. */
void cw_clip(float x, float y, float w, float h, int fb_h);
void cw_noclip(void);

typedef struct cw_ui {
    cw_fonts *fonts;
    void *window;           /* GLFWwindow */
    float s;                /* content scale */
    int fb_w, fb_h;
    float mx, my;           /* the mouse, framebuffer pixels */
    bool down;              /* left button held */
    bool pressed, released; /* in this frame */
    int clicks;             /* 2 for a double click */
    void *active;           /* the widget holding the mouse (pressed on it), NULL none */
    cw_edit *focus;         /* the field that gets keys, NULL none */
    bool again;             /* input changed the state: draw another frame at once */
    bool over_text;         /* the mouse is over text: I-beam cursor */
} cw_ui;

bool cw_hover(const cw_ui *ui, float x, float y, float w, float h);
/* A button; true when clicked (released over it after being pressed on it). id: any unique address. */
bool cw_button(cw_ui *ui, const void *id, float x, float y, float w, float h, const char *label, bool enabled,
               uint32_t fill, uint32_t text);
/* Draws a field and handles the mouse on it (click to focus and place the cursor, drag to select). */
void cw_edit_draw(cw_ui *ui, cw_edit *e, float x, float y, float w, float h, const char *placeholder);
/* The height a multiline field needs for its text at width w, between min_lines and max_lines. */
float cw_edit_height(cw_ui *ui, cw_edit *e, float w, int min_lines, int max_lines);

/* ---------------------------------------------------------------- the conversation (chat_window_engine.c) */

enum cw_role { CW_USER, CW_ASSISTANT, CW_NOTICE, CW_ERROR };

typedef struct cw_msg {
    int role;               /* enum cw_role */
    char *text;
    size_t len, cap;
    /* the window's layout cache */
    cw_layout lay;
    float lay_w;            /* wrap width of lay; < 0: stale */
    size_t lay_len;         /* text length lay was made for */
    float x, y, w, h;       /* the bubble in list coordinates (y from the top of the content) */
} cw_msg;

enum cw_job { CW_JOB_NONE, CW_JOB_LOAD, CW_JOB_REPLY };

typedef struct cw_engine {
    const app_chat_opts *o;
    pthread_mutex_t mu;     /* msgs (the worker appends to them) and the status fields below */
    cw_msg *msgs;
    int n_msgs, cap_msgs;

    /* the job on the worker thread; the main thread starts and joins it */
    pthread_t thread;
    int job;                /* enum cw_job, CW_JOB_NONE when idle */
    volatile int finished;  /* the worker is done: join it */
    volatile int abort;     /* stop the reply (lm_chat_gen.abort) */
    char *job_path;         /* load: the file */
    char *job_text;         /* reply: the user's message */
    char *job_system;       /* reply: the system prompt to apply ("" none) */
    lm_sampler_params job_sampling;
    int reply_msg;          /* the assistant message being streamed */

    /* the model: the worker's while a job runs, the main thread's otherwise */
    rt_instance *inst;
    rt_ctx *ctx;
    lm_model *model;
    lm_session *sess;
    lm_chat *chat;
    char *system_applied;   /* the system prompt the chat has (NULL none) */

    /* status, under mu */
    char model_name[128];
    char model_file[128];   /* the file's base name */
    char device_name[256];
    float load_frac;        /* while loading, 0..1 */
    int last_pct;
    int32_t n_past, n_ctx;
    double tok_s;           /* of the last reply, 0 none */
    int replies;            /* replies finished (for --script) */
    bool load_failed;       /* the last load failed */
} cw_engine;

void cw_engine_init(cw_engine *e, const app_chat_opts *o);
/* Stops a reply, waits for the worker, frees the model and the device. */
void cw_engine_free(cw_engine *e);
/* Main thread, once per frame: joins a finished job. */
void cw_engine_poll(cw_engine *e);
bool cw_engine_busy(const cw_engine *e);
bool cw_engine_ready(const cw_engine *e);   /* a model and its chat are there */
/* Starts loading path (false, with a notice in the list, when busy). */
bool cw_engine_load(cw_engine *e, const char *path);
/* Starts the reply to text with this temperature and system prompt ("" none). */
bool cw_engine_send(cw_engine *e, const char *text, float temp, const char *system);
void cw_engine_stop(cw_engine *e);
/* A new conversation (only when idle). */
void cw_engine_new_chat(cw_engine *e);
/* Appends a message; takes the lock. */
void cw_engine_notice(cw_engine *e, int role, const char *fmt, ...) __attribute__((format(printf, 3, 4)));


/* ---------------------------------------------------------------- the message list (chat_window_list.c) */

typedef struct cw_list {
    float x, y, w, h;           /* on screen, this frame */
    float content_h, scroll;    /* scroll: the content's first visible pixel row */
    bool follow;                /* keep the newest text in view (until the user scrolls up) */
    int sel_am, sel_bm;         /* the selection: anchor and moving end (message, byte offset); -1 none */
    size_t sel_ao, sel_bo;
    bool selecting, bar_drag;
    float drag_y, drag_scroll;
} cw_list;

void cw_list_init(cw_list *l);
/* Lays out the messages at this size, handles the mouse on the list, draws it (takes e->mu). */
void cw_list_frame(cw_ui *ui, cw_list *l, cw_engine *e, const char *empty_title, const char *empty_text);
/* Scrolls by dy pixels (negative: up); a scroll up stops following the newest text. */
void cw_list_scroll(cw_list *l, float dy);
void cw_list_clear_sel(cw_list *l);
/* The selected text (messages joined by blank lines), malloc'd; NULL when nothing is selected. */
char *cw_list_sel_text(cw_list *l, cw_engine *e);
/* --script: prints each message's bubble as seen on screen ("window: message I ROLE X Y W H"). */
void cw_list_print(cw_list *l, cw_engine *e, FILE *out);

#endif
