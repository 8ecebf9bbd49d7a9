/* chat_window_edit.c: editable text for the window: insertion over the selection, cursor movement by
 * whole UTF-8 characters (and words with Ctrl), lines of the wrapped layout for Up/Down/Home/End in the
 * input box, deletion of whole characters, the clipboard. Typed text comes from GLFW's character
 * callback (so input methods work); this file handles the keys. */
#include <stdlib.h>
#include <string.h>

#include <GLFW/glfw3.h>

#include "chat_window.h"

static bool reserve(cw_edit *e, size_t need)
{
    if (need + 1 <= e->cap)
        return true;
    size_t cap = e->cap ? e->cap : 64;
    while (cap < need + 1)
        cap *= 2;
    char *p = realloc(e->buf, cap);
    if (!p)
        return false;
    e->buf = p;
    e->cap = cap;
    return true;
}

void cw_edit_init(cw_edit *e, bool multiline, const char *text)
{
    memset(e, 0, sizeof *e);
    e->multiline = multiline;
    e->pref_x = -1;
    e->size = CW_SIZE_NORMAL;
    cw_edit_set(e, text ? text : "");
}

void cw_edit_free(cw_edit *e)
{
    free(e->buf);
    cw_layout_free(&e->lay);
    memset(e, 0, sizeof *e);
}

void cw_edit_set(cw_edit *e, const char *text)
{
    e->len = e->cur = e->anchor = 0;
    if (reserve(e, 0))
        e->buf[0] = 0;
    cw_edit_insert(e, text, strlen(text));
    e->scroll = 0;
}

bool cw_edit_has_sel(const cw_edit *e) { return e->cur != e->anchor; }

static size_t sel_lo(const cw_edit *e) { return e->cur < e->anchor ? e->cur : e->anchor; }
static size_t sel_hi(const cw_edit *e) { return e->cur < e->anchor ? e->anchor : e->cur; }

char *cw_edit_sel_text(const cw_edit *e)
{
    if (!cw_edit_has_sel(e))
        return NULL;
    size_t a = sel_lo(e), b = sel_hi(e);
    char *s = malloc(b - a + 1);
    if (s) {
        memcpy(s, e->buf + a, b - a);
        s[b - a] = 0;
    }
    return s;
}

static void delete_range(cw_edit *e, size_t a, size_t b)
{
    memmove(e->buf + a, e->buf + b, e->len - b + 1);
    e->len -= b - a;
    e->cur = e->anchor = a;
}

void cw_edit_insert(cw_edit *e, const char *s, size_t n)
{
    if (cw_edit_has_sel(e))
        delete_range(e, sel_lo(e), sel_hi(e));
    if (!reserve(e, e->len + n))
        return;
    memmove(e->buf + e->cur + n, e->buf + e->cur, e->len - e->cur + 1);
    memcpy(e->buf + e->cur, s, n);
    if (!e->multiline)
        for (size_t i = 0; i < n; i++)
            if (e->buf[e->cur + i] == '\n' || e->buf[e->cur + i] == '\r' || e->buf[e->cur + i] == '\t')
                e->buf[e->cur + i] = ' ';
    e->len += n;
    e->cur = e->anchor = e->cur + n;
    e->pref_x = -1;
}

static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t'; }

static size_t word_left(const cw_edit *e, size_t i)
{
    while (i > 0 && is_space(e->buf[i - 1]))
        i = cw_utf8_prev(e->buf, i);
    while (i > 0 && !is_space(e->buf[i - 1]))
        i = cw_utf8_prev(e->buf, i);
    return i;
}

static size_t word_right(const cw_edit *e, size_t i)
{
    while (i < e->len && is_space(e->buf[i]))
        cw_utf8_next(e->buf, e->len, &i);
    while (i < e->len && !is_space(e->buf[i]))
        cw_utf8_next(e->buf, e->len, &i);
    return i;
}

static size_t next_char(const cw_edit *e, size_t i)
{
    if (i < e->len)
        cw_utf8_next(e->buf, e->len, &i);
    return i;
}

/* The layout, made again for the text as it is now. */
static const cw_layout *layout(cw_edit *e, cw_fonts *f)
{
    cw_layout_text(&e->lay, f, e->size, e->buf, e->len, e->wrap_w > 0 ? e->wrap_w : 1e9f);
    return &e->lay;
}

static void copy(cw_edit *e, void *window)
{
    char *s = cw_edit_sel_text(e);
    if (s) {
        glfwSetClipboardString(window, s);
        free(s);
    }
}

enum cw_edit_action cw_edit_key(cw_edit *e, void *window, cw_fonts *f, int key, int mods)
{
    bool ctrl = mods & GLFW_MOD_CONTROL, shift = mods & GLFW_MOD_SHIFT;
    size_t to = e->cur;
    switch (key) {
    case GLFW_KEY_LEFT:
        if (cw_edit_has_sel(e) && !shift)
            to = sel_lo(e);
        else
            to = ctrl ? word_left(e, e->cur) : cw_utf8_prev(e->buf, e->cur);
        break;
    case GLFW_KEY_RIGHT:
        if (cw_edit_has_sel(e) && !shift)
            to = sel_hi(e);
        else
            to = ctrl ? word_right(e, e->cur) : next_char(e, e->cur);
        break;
    case GLFW_KEY_HOME:
    case GLFW_KEY_END:
        if (ctrl || !e->multiline) {
            to = key == GLFW_KEY_HOME ? 0 : e->len;
        } else {
            const cw_layout *l = layout(e, f);
            const cw_line *ln = &l->lines[cw_layout_line_of(l, e->cur)];
            to = key == GLFW_KEY_HOME ? ln->start : ln->end;
            if (key == GLFW_KEY_END && to > ln->start && to < e->len && e->buf[to] != '\n')
                to = cw_utf8_prev(e->buf, to); /* a soft break: stay on this line */
        }
        break;
    case GLFW_KEY_UP:
    case GLFW_KEY_DOWN: {
        if (!e->multiline)
            return CW_EDIT_NONE;
        const cw_layout *l = layout(e, f);
        int li = cw_layout_line_of(l, e->cur);
        float x = e->pref_x >= 0 ? e->pref_x : cw_line_x(f, e->size, e->buf, &l->lines[li], e->cur);
        int nl = li + (key == GLFW_KEY_UP ? -1 : 1);
        if (nl < 0)
            to = 0;
        else if (nl >= l->n)
            to = e->len;
        else
            to = cw_line_hit(f, e->size, e->buf, &l->lines[nl], x);
        e->cur = to;
        if (!shift)
            e->anchor = to;
        e->pref_x = x;
        return CW_EDIT_MOVED;
    }
    case GLFW_KEY_BACKSPACE:
        if (cw_edit_has_sel(e))
            delete_range(e, sel_lo(e), sel_hi(e));
        else if (e->cur > 0)
            delete_range(e, ctrl ? word_left(e, e->cur) : cw_utf8_prev(e->buf, e->cur), e->cur);
        else
            return CW_EDIT_NONE;
        e->pref_x = -1;
        return CW_EDIT_CHANGED;
    case GLFW_KEY_DELETE:
        if (cw_edit_has_sel(e))
            delete_range(e, sel_lo(e), sel_hi(e));
        else if (e->cur < e->len)
            delete_range(e, e->cur, ctrl ? word_right(e, e->cur) : next_char(e, e->cur));
        else
            return CW_EDIT_NONE;
        e->pref_x = -1;
        return CW_EDIT_CHANGED;
    case GLFW_KEY_ENTER:
    case GLFW_KEY_KP_ENTER:
        if (e->multiline && shift) {
            cw_edit_insert(e, "\n", 1);
            return CW_EDIT_CHANGED;
        }
        return CW_EDIT_SUBMIT;
    case GLFW_KEY_A:
        if (!ctrl)
            return CW_EDIT_NONE;
        e->anchor = 0;
        e->cur = e->len;
        return CW_EDIT_MOVED;
    case GLFW_KEY_C:
    case GLFW_KEY_X:
        if (!ctrl || !cw_edit_has_sel(e))
            return CW_EDIT_NONE;
        copy(e, window);
        if (key == GLFW_KEY_C)
            return CW_EDIT_NONE;
        delete_range(e, sel_lo(e), sel_hi(e));
        return CW_EDIT_CHANGED;
    case GLFW_KEY_V: {
        if (!ctrl)
            return CW_EDIT_NONE;
        const char *s = glfwGetClipboardString(window);
        if (!s)
            return CW_EDIT_NONE;
        /* no CR: Windows-style line ends become plain newlines */
        size_t n = strlen(s);
        char *t = malloc(n + 1);
        if (!t)
            return CW_EDIT_NONE;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] != '\r')
                t[k++] = s[i];
        cw_edit_insert(e, t, k);
        free(t);
        return CW_EDIT_CHANGED;
    }
    default:
        return CW_EDIT_NONE;
    }
    e->cur = to;
    if (!shift)
        e->anchor = to;
    e->pref_x = -1;
    return CW_EDIT_MOVED;
}
