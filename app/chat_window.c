/* chat_window.c: `vkllm chat --window`, a chat window on GLFW and legacy OpenGL. From the top: a tool
 * bar (the model's path, Open, New chat), a settings strip (temperature, system prompt), the message
 * list (chat_window_list.c), the input box with Send / Stop, and a status line (model, device, context
 * used, tokens/s). The model loads and replies are generated on a worker thread
 * (chat_window_engine.c); the window redraws when GLFW has events or the worker posts one.
 *
 * --script FILE sends its lines one after the other, each when the previous reply has ended;
 * --screenshot FILE.png then saves the window and the process exits 0 (without --script: when the
 * window is closed, e.g. by Ctrl+Q). Scripted, it prints
 * "window: glyphs missing N" and the message rectangles to stderr for tests. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <GLFW/glfw3.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "stb_image_write.h"
#pragma GCC diagnostic pop

#include "chat_window.h"

typedef struct win {
    const app_chat_opts *o;
    GLFWwindow *w;
    cw_ui ui;
    cw_fonts *fonts;
    cw_engine eng;
    cw_list list;
    cw_edit input, path, temp, system;
    GLFWcursor *ibeam;
    bool ibeam_on;
    char id_open, id_new, id_send, id_stop; /* the buttons' ids: their addresses */
    double last_click;
    float last_cx, last_cy;
    float win_w, win_h; /* window size in screen coordinates, for the mouse */
    char title[200];
    /* --script */
    char *script_buf;
    char **script;
    int n_script, next_script, sent_replies;
    bool script_failed;
    int status;
} win;

static char glfw_error[512];

static void on_glfw_error(int code, const char *msg)
{
    snprintf(glfw_error, sizeof glfw_error, "%s (GLFW error 0x%x)", msg, code);
}

/* ---------------------------------------------------------------- actions */

static void send_input(win *W)
{
    const char *t = W->input.buf;
    while (*t == ' ' || *t == '\n' || *t == '\t')
        t++;
    if (!*t || cw_engine_busy(&W->eng))
        return;
    char *end;
    float temp = strtof(W->temp.buf, &end);
    while (*end == ' ')
        end++;
    if (end == W->temp.buf || *end) {
        cw_engine_notice(&W->eng, CW_ERROR, "Temperature '%s' is not a number (0 is greedy, 0.8 the default)",
                         W->temp.buf);
        return;
    }
    if (cw_engine_send(&W->eng, W->input.buf, temp, W->system.buf)) {
        cw_edit_set(&W->input, "");
        W->list.follow = true;
    }
}

static void open_model(win *W)
{
    const char *p = W->path.buf;
    while (*p == ' ')
        p++;
    if (!*p) {
        cw_engine_notice(&W->eng, CW_NOTICE, "Type the path of a GGUF model file first, or drop one on the window.");
        return;
    }
    if (cw_engine_load(&W->eng, p))
        W->ui.focus = &W->input;
}

static void copy_selection(win *W)
{
    cw_edit *f = W->ui.focus;
    if (f && cw_edit_has_sel(f))
        return; /* the field copies its own */
    char *s = cw_list_sel_text(&W->list, &W->eng);
    if (s) {
        glfwSetClipboardString(W->w, s);
        free(s);
    }
}

/* ---------------------------------------------------------------- GLFW callbacks */

static void on_char(GLFWwindow *w, unsigned int cp)
{
    win *W = glfwGetWindowUserPointer(w);
    if (cp < 0x20 || cp == 0x7F)
        return;
    if (!W->ui.focus) /* typing with no field focused goes to the input box */
        W->ui.focus = &W->input;
    char buf[4];
    cw_edit_insert(W->ui.focus, buf, cw_utf8_put(cp, buf));
}

static void on_key(GLFWwindow *w, int key, int scancode, int action, int mods)
{
    (void)scancode;
    win *W = glfwGetWindowUserPointer(w);
    if (action == GLFW_RELEASE)
        return;
    bool ctrl = mods & GLFW_MOD_CONTROL;
    cw_edit *f = W->ui.focus;
    float page = W->list.h * 0.9f;
    switch (key) {
    case GLFW_KEY_ESCAPE:
        if (cw_engine_busy(&W->eng))
            cw_engine_stop(&W->eng);
        else
            cw_list_clear_sel(&W->list);
        return;
    case GLFW_KEY_PAGE_UP:
        cw_list_scroll(&W->list, -page);
        return;
    case GLFW_KEY_PAGE_DOWN:
        cw_list_scroll(&W->list, page);
        return;
    case GLFW_KEY_HOME:
    case GLFW_KEY_END:
        if (!f || f->len == 0) {
            cw_list_scroll(&W->list, key == GLFW_KEY_HOME ? -1e9f : 1e9f);
            return;
        }
        break;
    case GLFW_KEY_TAB: {
        cw_edit *order[] = { &W->input, &W->path, &W->temp, &W->system };
        int k = 0;
        for (int i = 0; i < 4; i++)
            if (order[i] == f)
                k = i;
        W->ui.focus = order[(k + ((mods & GLFW_MOD_SHIFT) ? 3 : 1)) % 4];
        return;
    }
    case GLFW_KEY_C:
        if (ctrl)
            copy_selection(W);
        break;
    case GLFW_KEY_Q:
        if (ctrl) {
            glfwSetWindowShouldClose(w, GLFW_TRUE);
            return;
        }
        break;
    case GLFW_KEY_N:
        if (ctrl && !cw_engine_busy(&W->eng)) {
            cw_engine_new_chat(&W->eng);
            cw_list_clear_sel(&W->list);
            return;
        }
        break;
    default:
        break;
    }
    if (!f && ctrl && key == GLFW_KEY_V)
        f = W->ui.focus = &W->input;
    if (!f)
        return;
    enum cw_edit_action a = cw_edit_key(f, w, W->fonts, key, mods);
    if (a == CW_EDIT_SUBMIT) {
        if (f == &W->input)
            send_input(W);
        else if (f == &W->path)
            open_model(W);
        else
            W->ui.focus = &W->input;
    }
}

static void on_mouse_button(GLFWwindow *w, int button, int action, int mods)
{
    (void)mods;
    win *W = glfwGetWindowUserPointer(w);
    if (button != GLFW_MOUSE_BUTTON_LEFT)
        return;
    if (action == GLFW_PRESS) {
        double t = glfwGetTime();
        bool near = fabsf(W->ui.mx - W->last_cx) < 5 * W->ui.s && fabsf(W->ui.my - W->last_cy) < 5 * W->ui.s;
        W->ui.clicks = t - W->last_click < 0.4 && near ? W->ui.clicks % 3 + 1 : 1;
        W->last_click = t;
        W->last_cx = W->ui.mx;
        W->last_cy = W->ui.my;
        W->ui.pressed = true;
        W->ui.down = true;
    } else {
        W->ui.released = true;
        W->ui.down = false;
    }
}

static void on_cursor(GLFWwindow *w, double x, double y)
{
    win *W = glfwGetWindowUserPointer(w);
    float kx = W->win_w > 0 ? W->ui.fb_w / W->win_w : 1, ky = W->win_h > 0 ? W->ui.fb_h / W->win_h : 1;
    W->ui.mx = (float)x * kx;
    W->ui.my = (float)y * ky;
}

static void on_scroll(GLFWwindow *w, double dx, double dy)
{
    (void)dx;
    win *W = glfwGetWindowUserPointer(w);
    cw_list_scroll(&W->list, (float)-dy * 3 * cw_line_height(W->fonts, CW_SIZE_NORMAL));
}

static void on_drop(GLFWwindow *w, int n, const char **paths)
{
    win *W = glfwGetWindowUserPointer(w);
    if (n < 1)
        return;
    cw_edit_set(&W->path, paths[0]);
    open_model(W);
}

static void on_scale(GLFWwindow *w, float xs, float ys)
{
    (void)xs;
    win *W = glfwGetWindowUserPointer(w);
    W->ui.s = ys > 0 ? ys : 1;
    cw_fonts_set_scale(W->fonts, W->ui.s);
}

static void frame(win *W);

static void on_refresh(GLFWwindow *w)
{
    frame(glfwGetWindowUserPointer(w));
    glfwSwapBuffers(w);
}

/* ---------------------------------------------------------------- one frame */

static void label(win *W, float x, float y, float h, const char *s)
{
    float lh = cw_line_height(W->fonts, CW_SIZE_NORMAL);
    cw_draw_text(W->fonts, CW_SIZE_NORMAL, x, roundf(y + (h - lh) / 2), s, strlen(s), 0x57606AFF);
}

static void status_line(win *W, char *buf, size_t cap)
{
    cw_engine *e = &W->eng;
    pthread_mutex_lock(&e->mu);
    if (e->job == CW_JOB_LOAD)
        snprintf(buf, cap, "Loading %s \xE2\x80\xA6 %d%%", e->job_path, (int)(e->load_frac * 100));
    else if (cw_engine_ready(e)) {
        int k = snprintf(buf, cap, "%s (%s)  \xC2\xB7  %s  \xC2\xB7  context %d / %d", e->model_name, e->model_file,
                         e->device_name, (int)e->n_past, (int)e->n_ctx);
        if (k > 0 && (size_t)k < cap && e->job == CW_JOB_REPLY)
            snprintf(buf + k, cap - (size_t)k, "  \xC2\xB7  generating \xE2\x80\xA6");
        else if (k > 0 && (size_t)k < cap && e->tok_s > 0)
            snprintf(buf + k, cap - (size_t)k, "  \xC2\xB7  %.1f tokens/s", e->tok_s);
    } else {
        snprintf(buf, cap, "No model%s%s", e->device_name[0] ? "  \xC2\xB7  " : "", e->device_name);
    }
    pthread_mutex_unlock(&e->mu);
}

/* Cuts s (a buffer of cap bytes) to fit w pixels, ending it with an ellipsis. */
static void elide(cw_fonts *f, int size, char *s, size_t cap, float w)
{
    size_t n = strlen(s);
    if (cw_text_width(f, size, s, n) <= w)
        return;
    float dots = cw_text_width(f, size, "\xE2\x80\xA6", 3);
    while (n > 0 && (n + 4 > cap || cw_text_width(f, size, s, n) + dots > w))
        n = cw_utf8_prev(s, n);
    memcpy(s + n, "\xE2\x80\xA6", 4);
}

/* The window's title names the model. */
static void set_title(win *W)
{
    char t[200];
    pthread_mutex_lock(&W->eng.mu);
    if (cw_engine_ready(&W->eng))
        snprintf(t, sizeof t, "%s \xE2\x80\x94 vkllm chat", W->eng.model_name);
    else
        snprintf(t, sizeof t, "vkllm chat");
    pthread_mutex_unlock(&W->eng.mu);
    if (strcmp(t, W->title)) {
        glfwSetWindowTitle(W->w, t);
        snprintf(W->title, sizeof W->title, "%s", t);
    }
}

static void frame(win *W)
{
    cw_ui *ui = &W->ui;
    int ww, wh;
    glfwGetFramebufferSize(W->w, &ui->fb_w, &ui->fb_h);
    glfwGetWindowSize(W->w, &ww, &wh);
    W->win_w = (float)ww;
    W->win_h = (float)wh;
    float s = ui->s, Wd = (float)ui->fb_w, Ht = (float)ui->fb_h, pad = 10 * s;
    ui->over_text = false;
    cw_engine *e = &W->eng;
    bool busy = cw_engine_busy(e), replying = e->job == CW_JOB_REPLY;

    glViewport(0, 0, ui->fb_w, ui->fb_h);
    glMatrixMode(GL_PROJECTION);
    glLoadIdentity();
    glOrtho(0, Wd, Ht, 0, -1, 1);
    glMatrixMode(GL_MODELVIEW);
    glLoadIdentity();
    glDisable(GL_DEPTH_TEST);
    glDisable(GL_CULL_FACE);
    glEnable(GL_BLEND);
    glBlendFunc(GL_SRC_ALPHA, GL_ONE_MINUS_SRC_ALPHA);
    glClearColor(0.965f, 0.969f, 0.976f, 1);
    glClear(GL_COLOR_BUFFER_BIT);

    /* the tool bar: title, model path, Open, New chat */
    float bar_h = roundf(48 * s), fh = roundf(30 * s), fy = roundf((bar_h - fh) / 2);
    cw_fill(0, 0, Wd, bar_h, 0xFFFFFFFF);
    cw_draw_text(W->fonts, CW_SIZE_NORMAL, pad + 4 * s, roundf((bar_h - cw_line_height(W->fonts, 0)) / 2), "vkllm",
                 5, 0x2563EBFF);
    float x = pad + 4 * s + cw_text_width(W->fonts, CW_SIZE_NORMAL, "vkllm", 5) + 14 * s;
    float bw_open = roundf(70 * s), bw_new = roundf(96 * s);
    float path_w = Wd - x - pad - bw_open - bw_new - 2 * 8 * s;
    cw_edit_draw(ui, &W->path, x, fy, path_w, fh, "Model file (.gguf): type a path or drop a file here");
    x += path_w + 8 * s;
    if (cw_button(ui, &W->id_open, x, fy, bw_open, fh, "Open", !busy && W->path.len > 0, 0x2563EBFF, 0xFFFFFFFF))
        open_model(W);
    x += bw_open + 8 * s;
    if (cw_button(ui, &W->id_new, x, fy, bw_new, fh, "New chat", !busy, 0xEEF1F4FF, 0x1F2328FF)) {
        cw_engine_new_chat(e);
        cw_list_clear_sel(&W->list);
        ui->focus = &W->input;
    }
    /* the settings strip */
    float set_y = bar_h, set_h = roundf(40 * s), sfh = roundf(28 * s), sfy = set_y + roundf((set_h - sfh) / 2);
    cw_fill(0, set_y, Wd, 1 * s, 0xE1E4E8FF);
    cw_fill(0, set_y + s, Wd, set_h - s, 0xFBFBFCFF);
    cw_fill(0, set_y + set_h - s, Wd, 1 * s, 0xE1E4E8FF);
    x = pad + 4 * s;
    label(W, x, sfy, sfh, "Temperature");
    x += cw_text_width(W->fonts, CW_SIZE_NORMAL, "Temperature", 11) + 8 * s;
    cw_edit_draw(ui, &W->temp, x, sfy, roundf(56 * s), sfh, "0.8");
    x += roundf(56 * s) + 18 * s;
    label(W, x, sfy, sfh, "System prompt");
    x += cw_text_width(W->fonts, CW_SIZE_NORMAL, "System prompt", 13) + 8 * s;
    cw_edit_draw(ui, &W->system, x, sfy, Wd - x - pad, sfh, "none (applies to the next message)");

    /* the status line and the input box, from the bottom */
    float st_h = roundf(26 * s), st_y = Ht - st_h;
    float send_w = roundf(84 * s);
    float in_w = Wd - 2 * pad - send_w - 8 * s - 2 * 6 * s;
    float in_h = cw_edit_height(ui, &W->input, in_w, 1, 6);
    float in_y = st_y - pad - in_h;
    float area_y = in_y - pad;
    cw_fill(0, area_y, Wd, st_y - area_y, 0xFFFFFFFF);
    cw_fill(0, area_y, Wd, s, 0xE1E4E8FF);
    cw_edit_draw(ui, &W->input, pad + 6 * s, in_y, in_w, in_h,
                 cw_engine_ready(e) ? "Message (Enter sends, Shift+Enter: new line)" : "Open a model to chat");
    float bh = fminf(in_h, roundf(34 * s)), bx = pad + 6 * s + in_w + 8 * s, by = in_y + in_h - bh;
    if (replying) {
        if (cw_button(ui, &W->id_stop, bx, by, send_w, bh, "Stop", true, 0xD1242FFF, 0xFFFFFFFF))
            cw_engine_stop(e);
    } else if (cw_button(ui, &W->id_send, bx, by, send_w, bh, "Send", !busy && cw_engine_ready(e) && W->input.len > 0,
                         0x2563EBFF, 0xFFFFFFFF)) {
        send_input(W);
        ui->focus = &W->input;
    }
    char st[512];
    status_line(W, st, sizeof st);
    elide(W->fonts, CW_SIZE_SMALL, st, sizeof st, Wd - 2 * pad - 4 * s);
    cw_fill(0, st_y, Wd, st_h, 0xEEF0F3FF);
    float sh = cw_line_height(W->fonts, CW_SIZE_SMALL);
    cw_draw_text(W->fonts, CW_SIZE_SMALL, pad + 4 * s, roundf(st_y + (st_h - sh) / 2), st, strlen(st), 0x57606AFF);
    const char *keys = "Esc stops \xC2\xB7 Ctrl+C copies \xC2\xB7 PgUp/PgDn scroll";
    float kw = cw_text_width(W->fonts, CW_SIZE_SMALL, keys, strlen(keys));
    if (kw + cw_text_width(W->fonts, CW_SIZE_SMALL, st, strlen(st)) + 40 * s < Wd)
        cw_draw_text(W->fonts, CW_SIZE_SMALL, Wd - pad - kw, roundf(st_y + (st_h - sh) / 2), keys, strlen(keys),
                     0x8C959FFF);

    /* the message list in between */
    W->list.x = 0;
    W->list.y = set_y + set_h;
    W->list.w = Wd;
    W->list.h = area_y - W->list.y;
    char title[600];
    const char *text;
    if (e->job == CW_JOB_LOAD) {
        pthread_mutex_lock(&e->mu);
        snprintf(title, sizeof title, "Loading the model \xE2\x80\xA6 %d%%", (int)(e->load_frac * 100));
        pthread_mutex_unlock(&e->mu);
        text = "The window stays usable while it loads.";
    } else if (!cw_engine_ready(e)) {
        snprintf(title, sizeof title, "No model open");
        text = "Type the path of a GGUF model in the field at the top and press Open (or Enter), "
               "or drop the file on this window.";
    } else {
        snprintf(title, sizeof title, "Chat with %s", e->model_name);
        text = "Type a message below and press Enter. Shift+Enter starts a new line.";
    }
    cw_list_frame(ui, &W->list, e, title, text);

    set_title(W);
    if (ui->pressed && !ui->active) /* a click on nothing: no field has the focus */
        ui->focus = NULL;
    bool want = ui->over_text;
    if (want != W->ibeam_on) {
        glfwSetCursor(W->w, want ? W->ibeam : NULL);
        W->ibeam_on = want;
    }
    if (ui->released)
        ui->active = NULL;
    ui->pressed = ui->released = false;
}

/* ---------------------------------------------------------------- --script and --screenshot */

static bool read_script(win *W, const char *path)
{
    size_t n;
    W->script_buf = app_read_file(path, &n);
    if (!W->script_buf)
        return false;
    int cap = 16;
    W->script = malloc((size_t)cap * sizeof *W->script);
    for (char *p = W->script_buf, *next; W->script && p && *p; p = next) {
        next = strchr(p, '\n');
        if (next)
            *next++ = 0;
        size_t k = strlen(p);
        while (k > 0 && (p[k - 1] == '\r' || p[k - 1] == ' '))
            p[--k] = 0;
        if (!k)
            continue;
        if (W->n_script == cap) {
            char **q = realloc(W->script, (size_t)cap * 2 * sizeof *q);
            if (!q)
                break;
            W->script = q;
            cap *= 2;
        }
        W->script[W->n_script++] = p;
    }
    return W->script != NULL;
}

static bool save_png(win *W, const char *path)
{
    int w = W->ui.fb_w, h = W->ui.fb_h;
    unsigned char *px = malloc((size_t)w * h * 3), *row = malloc((size_t)w * 3);
    bool ok = px && row;
    if (ok) {
        glFinish();
        glPixelStorei(GL_PACK_ALIGNMENT, 1);
        glReadBuffer(GL_BACK);
        glReadPixels(0, 0, w, h, GL_RGB, GL_UNSIGNED_BYTE, px);
        for (int y = 0; y < h / 2; y++) { /* GL's rows go bottom up */
            unsigned char *a = px + (size_t)y * w * 3, *b = px + (size_t)(h - 1 - y) * w * 3;
            memcpy(row, a, (size_t)w * 3);
            memcpy(a, b, (size_t)w * 3);
            memcpy(b, row, (size_t)w * 3);
        }
        ok = stbi_write_png(path, w, h, 3, px, w * 3) != 0;
    }
    free(px);
    free(row);
    return ok;
}

/* Scripted: sends the next line when the previous reply is done; true when the script is over. */
static bool script_step(win *W)
{
    cw_engine *e = &W->eng;
    if (cw_engine_busy(e))
        return false;
    if (!e->chat) {
        if (!W->o->model || e->load_failed) {
            W->script_failed = true;
            return true;
        }
        return false;
    }
    int replies = e->replies;
    if (replies < W->sent_replies)
        return false;
    if (W->next_script < W->n_script) {
        cw_edit_set(&W->input, W->script[W->next_script++]);
        send_input(W);
        W->sent_replies++;
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------- the window */

int chat_window_run(const app_chat_opts *o)
{
    win *W = calloc(1, sizeof *W);
    if (!W)
        return app_fail("out of memory");
    W->o = o;
    W->status = 0;
    char err[512];
    if (o->script && !read_script(W, o->script)) {
        free(W);
        return 1;
    }
    glfwSetErrorCallback(on_glfw_error);
    if (!glfwInit()) {
        free(W->script);
        free(W->script_buf);
        free(W);
        return app_fail("cannot open a window: %s", glfw_error[0] ? glfw_error : "glfwInit failed (no display?)");
    }
    if (cw_fonts_create(&W->fonts, err, sizeof err)) {
        glfwTerminate();
        free(W->script);
        free(W->script_buf);
        free(W);
        return app_fail("chat window: %s", err);
    }
    glfwWindowHint(GLFW_SCALE_TO_MONITOR, GLFW_TRUE);
    W->w = glfwCreateWindow(o->script ? 900 : 960, o->script ? 700 : 760, "vkllm chat", NULL, NULL);
    if (!W->w) {
        cw_fonts_free(W->fonts);
        glfwTerminate();
        free(W->script);
        free(W->script_buf);
        free(W);
        return app_fail("cannot open a window: %s", glfw_error[0] ? glfw_error : "glfwCreateWindow failed");
    }
    glfwSetWindowSizeLimits(W->w, 360, 320, GLFW_DONT_CARE, GLFW_DONT_CARE);
    glfwMakeContextCurrent(W->w);
    glfwSwapInterval(1);
    glfwSetWindowUserPointer(W->w, W);
    float xs = 1, ys = 1;
    glfwGetWindowContentScale(W->w, &xs, &ys);
    W->ui.s = ys > 0 ? ys : 1;
    W->ui.fonts = W->fonts;
    W->ui.window = W->w;
    cw_fonts_set_scale(W->fonts, W->ui.s);
    W->ibeam = glfwCreateStandardCursor(GLFW_IBEAM_CURSOR);
    glfwSetCharCallback(W->w, on_char);
    glfwSetKeyCallback(W->w, on_key);
    glfwSetMouseButtonCallback(W->w, on_mouse_button);
    glfwSetCursorPosCallback(W->w, on_cursor);
    glfwSetScrollCallback(W->w, on_scroll);
    glfwSetDropCallback(W->w, on_drop);
    glfwSetWindowContentScaleCallback(W->w, on_scale);
    glfwSetWindowRefreshCallback(W->w, on_refresh);

    cw_engine_init(&W->eng, o);
    cw_list_init(&W->list);
    char tbuf[32];
    snprintf(tbuf, sizeof tbuf, "%g", o->sampling.temp);
    cw_edit_init(&W->input, true, "");
    cw_edit_init(&W->path, false, o->model ? o->model : "");
    cw_edit_init(&W->temp, false, tbuf);
    cw_edit_init(&W->system, false, o->system ? o->system : "");
    W->ui.focus = o->model ? &W->input : &W->path;
    if (o->model)
        cw_engine_load(&W->eng, o->model);

    bool done = false;
    while (!glfwWindowShouldClose(W->w)) {
        cw_engine_poll(&W->eng);
        if (o->script && script_step(W))
            done = true;
        frame(W);
        if (W->ui.again) { /* a click changed what is shown: draw it now */
            W->ui.again = false;
            frame(W);
        }
        if (done) {
            if (o->screenshot && !save_png(W, o->screenshot)) {
                app_fail("%s: cannot write the screenshot", o->screenshot);
                W->status = 1;
            }
            fprintf(stderr, "window: glyphs missing %d\n", cw_fonts_missing(W->fonts));
            fprintf(stderr, "window: fonts %s\n", cw_fonts_names(W->fonts));
            fprintf(stderr, "window: size %d %d\n", W->ui.fb_w, W->ui.fb_h);
            cw_list_print(&W->list, &W->eng, stderr);
            if (W->script_failed) {
                app_fail("--script: %s", o->model ? "the model did not load (see the window's message)" :
                                                    "needs a model (-m FILE)");
                W->status = 1;
            }
            break;
        }
        glfwSwapBuffers(W->w);
        if (o->script || cw_engine_busy(&W->eng))
            glfwWaitEventsTimeout(0.25); /* the typing dots move; a script goes on */
        else
            glfwWaitEvents();
    }

    if (!done && o->screenshot) { /* not scripted: the window as it was when closed */
        frame(W);
        if (!save_png(W, o->screenshot))
            W->status = app_fail("%s: cannot write the screenshot", o->screenshot);
    }
    if (glfw_error[0] && W->status)
        fprintf(stderr, "vkllm: %s\n", glfw_error);
    cw_engine_free(&W->eng);
    cw_edit_free(&W->input);
    cw_edit_free(&W->path);
    cw_edit_free(&W->temp);
    cw_edit_free(&W->system);
    cw_fonts_free(W->fonts);
    if (W->ibeam)
        glfwDestroyCursor(W->ibeam);
    glfwDestroyWindow(W->w);
    glfwTerminate();
    int status = W->status;
    free(W->script);
    free(W->script_buf);
    free(W);
    return status;
}
