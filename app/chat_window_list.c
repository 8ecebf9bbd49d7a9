/* chat_window_list.c: the scrolling list of messages. The user's messages are blue bubbles on the
 * right, the assistant's white bubbles on the left, notices small grey lines in the middle and errors
 * red boxes; each is word-wrapped to the list's width (laid out again only when its text or the width
 * changes). The list follows the newest text while a reply streams, unless the user scrolled up. Text
 * is selected by dragging across one or more messages (double click: a word). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <GLFW/glfw3.h>

#include "chat_window.h"

static int role_size(int role) { return role == CW_NOTICE ? CW_SIZE_SMALL : CW_SIZE_NORMAL; }

static const char *role_name(int role)
{
    return role == CW_USER ? "user" : role == CW_ASSISTANT ? "assistant" : role == CW_NOTICE ? "notice" : "error";
}

void cw_list_init(cw_list *l)
{
    memset(l, 0, sizeof *l);
    l->follow = true;
    l->sel_am = l->sel_bm = -1;
}

void cw_list_clear_sel(cw_list *l)
{
    l->sel_am = l->sel_bm = -1;
    l->selecting = false;
}

static float max_scroll(const cw_list *l) { return l->content_h > l->h ? l->content_h - l->h : 0; }

void cw_list_scroll(cw_list *l, float dy)
{
    l->scroll += dy;
    float m = max_scroll(l);
    if (l->scroll < 0)
        l->scroll = 0;
    if (l->scroll >= m - 1) {
        l->scroll = m;
        l->follow = true;
    } else if (dy < 0) {
        l->follow = false;
    }
}

/* ---------------------------------------------------------------- layout */

typedef struct metrics {
    float s, pad, bp, gap, label_h, maxw;
} metrics;

static metrics get_metrics(const cw_ui *ui, const cw_list *l)
{
    metrics m;
    m.s = ui->s;
    m.pad = 16 * m.s;
    m.bp = 10 * m.s;
    m.gap = 10 * m.s;
    m.label_h = cw_line_height(ui->fonts, CW_SIZE_SMALL) + 3 * m.s;
    float avail = l->w - 2 * m.pad - 10 * m.s;
    m.maxw = fminf(avail * 0.82f, 760 * m.s);
    if (m.maxw < 60 * m.s)
        m.maxw = fmaxf(avail, 20 * m.s);
    return m;
}

static void layout(cw_ui *ui, cw_list *l, cw_engine *e, const metrics *mt)
{
    float y = mt->pad;
    for (int i = 0; i < e->n_msgs; i++) {
        cw_msg *m = &e->msgs[i];
        int size = role_size(m->role);
        float lh = cw_line_height(ui->fonts, size);
        float wrap = (m->role == CW_NOTICE ? l->w - 4 * mt->pad : mt->maxw) - 2 * mt->bp;
        if (wrap < 10)
            wrap = 10;
        if (m->lay_w != wrap || m->lay_len != m->len) {
            cw_layout_text(&m->lay, ui->fonts, size, m->text, m->len, wrap);
            m->lay_w = wrap;
            m->lay_len = m->len;
        }
        float tw = m->lay.width;
        if (m->role == CW_ASSISTANT && m->len == 0)
            tw = cw_text_width(ui->fonts, size, "\xE2\x80\xA6", 3) * 3; /* the "typing" dots */
        m->w = ceilf(tw + 2 * mt->bp);
        m->h = m->lay.n * lh + 2 * mt->bp;
        if (m->w < 36 * mt->s && m->role != CW_NOTICE)
            m->w = 36 * mt->s;
        if (m->role == CW_USER || m->role == CW_ASSISTANT)
            y += mt->label_h;
        if (m->role == CW_USER)
            m->x = l->w - mt->pad - 10 * mt->s - m->w;
        else if (m->role == CW_ASSISTANT || m->role == CW_ERROR)
            m->x = mt->pad;
        else
            m->x = roundf((l->w - m->w) / 2);
        if (m->role == CW_NOTICE) {
            m->h = m->lay.n * lh + 4 * mt->s;
            m->x = roundf((l->w - m->w) / 2);
        }
        m->y = y;
        y += m->h + mt->gap;
    }
    l->content_h = y + mt->pad - mt->gap;
}

/* ---------------------------------------------------------------- selection */

/* The (message, offset) nearest to the mouse, in content coordinates (cx, cy). */
static void hit(cw_ui *ui, cw_engine *e, const metrics *mt, float cx, float cy, int *mi, size_t *off)
{
    *mi = -1;
    *off = 0;
    float best = INFINITY;
    for (int i = 0; i < e->n_msgs; i++) {
        cw_msg *m = &e->msgs[i];
        float d = cy < m->y ? m->y - cy : cy > m->y + m->h ? cy - (m->y + m->h) : 0;
        if (d < best) {
            best = d;
            *mi = i;
        }
    }
    if (*mi < 0)
        return;
    cw_msg *m = &e->msgs[*mi];
    int size = role_size(m->role);
    float lh = cw_line_height(ui->fonts, size);
    float top = m->y + (m->role == CW_NOTICE ? 2 * mt->s : mt->bp);
    if (cy < top) {
        *off = 0;
        return;
    }
    int li = (int)floorf((cy - top) / lh);
    if (li >= m->lay.n) {
        *off = m->len;
        return;
    }
    *off = cw_line_hit(ui->fonts, size, m->text, &m->lay.lines[li], cx - (m->x + mt->bp));
}

static void sel_range(const cw_list *l, int *am, size_t *ao, int *bm, size_t *bo)
{
    bool fwd = l->sel_am < l->sel_bm || (l->sel_am == l->sel_bm && l->sel_ao <= l->sel_bo);
    *am = fwd ? l->sel_am : l->sel_bm;
    *ao = fwd ? l->sel_ao : l->sel_bo;
    *bm = fwd ? l->sel_bm : l->sel_am;
    *bo = fwd ? l->sel_bo : l->sel_ao;
}

static bool has_sel(const cw_list *l)
{
    return l->sel_am >= 0 && l->sel_bm >= 0 && (l->sel_am != l->sel_bm || l->sel_ao != l->sel_bo);
}

char *cw_list_sel_text(cw_list *l, cw_engine *e)
{
    if (!has_sel(l))
        return NULL;
    pthread_mutex_lock(&e->mu);
    int am, bm;
    size_t ao, bo;
    sel_range(l, &am, &ao, &bm, &bo);
    size_t total = 1;
    for (int i = am; i <= bm && i < e->n_msgs; i++)
        total += e->msgs[i].len + 2;
    char *out = malloc(total), *p = out;
    for (int i = am; out && i <= bm && i < e->n_msgs; i++) {
        const cw_msg *m = &e->msgs[i];
        size_t a = i == am ? ao : 0, b = i == bm ? bo : m->len;
        if (a > m->len)
            a = m->len;
        if (b > m->len)
            b = m->len;
        if (i != am) {
            memcpy(p, "\n\n", 2);
            p += 2;
        }
        if (b > a) {
            memcpy(p, m->text + a, b - a);
            p += b - a;
        }
    }
    if (out)
        *p = 0;
    pthread_mutex_unlock(&e->mu);
    return out;
}

static bool word_char(const char *s, size_t i) { return s[i] != ' ' && s[i] != '\n' && s[i] != '\t'; }

static void mouse(cw_ui *ui, cw_list *l, cw_engine *e, const metrics *mt)
{
    float bar_x = l->x + l->w - 10 * mt->s;
    bool over = cw_hover(ui, l->x, l->y, l->w, l->h);
    float ms = max_scroll(l);
    if (over && ui->pressed && ui->mx >= bar_x && ms > 0) {
        l->bar_drag = true;
        l->drag_y = ui->my;
        l->drag_scroll = l->scroll;
        ui->active = l;
        return;
    }
    if (l->bar_drag) {
        if (!ui->down) {
            l->bar_drag = false;
            return;
        }
        float th = fmaxf(30 * mt->s, l->h * l->h / l->content_h);
        float k = l->h > th ? ms / (l->h - th) : 0;
        l->scroll = l->drag_scroll;
        cw_list_scroll(l, (ui->my - l->drag_y) * k);
        if (ui->my < l->drag_y)
            l->follow = false;
        return;
    }
    if (over && ui->mx < bar_x)
        ui->over_text = true;
    if (over && ui->pressed) {
        int mi;
        size_t off;
        hit(ui, e, mt, ui->mx - l->x, ui->my - l->y + l->scroll, &mi, &off);
        l->sel_am = l->sel_bm = mi;
        l->sel_ao = l->sel_bo = off;
        l->selecting = mi >= 0;
        ui->active = l;
        ui->again = true;
        if (mi >= 0 && ui->clicks == 2) { /* a word */
            const cw_msg *m = &e->msgs[mi];
            size_t a = off, b = off;
            while (a > 0 && word_char(m->text, a - 1))
                a = cw_utf8_prev(m->text, a);
            while (b < m->len && word_char(m->text, b))
                cw_utf8_next(m->text, m->len, &b);
            l->sel_ao = a;
            l->sel_bo = b;
            l->selecting = false;
        } else if (mi >= 0 && ui->clicks >= 3) { /* the whole message */
            l->sel_ao = 0;
            l->sel_bo = e->msgs[mi].len;
            l->selecting = false;
        }
        return;
    }
    if (l->selecting && ui->down) {
        if (ui->my < l->y) /* dragging past the top or bottom scrolls */
            cw_list_scroll(l, -(l->y - ui->my) * 0.5f);
        else if (ui->my > l->y + l->h)
            cw_list_scroll(l, (ui->my - l->y - l->h) * 0.5f);
        int mi;
        size_t off;
        hit(ui, e, mt, ui->mx - l->x, ui->my - l->y + l->scroll, &mi, &off);
        if (mi >= 0) {
            l->sel_bm = mi;
            l->sel_bo = off;
        }
    }
    if (!ui->down)
        l->selecting = false;
}

/* ---------------------------------------------------------------- drawing */

static void draw_msg(cw_ui *ui, cw_list *l, cw_engine *e, const metrics *mt, int i)
{
    cw_msg *m = &e->msgs[i];
    cw_fonts *f = ui->fonts;
    int size = role_size(m->role);
    float lh = cw_line_height(f, size), s = mt->s;
    float x = l->x + m->x, y = l->y + m->y - l->scroll;
    uint32_t text, selc;
    if (m->role == CW_USER || m->role == CW_ASSISTANT) {
        const char *label = m->role == CW_USER ? "You" : e->model_name[0] ? e->model_name : "Assistant";
        float lw = cw_text_width(f, CW_SIZE_SMALL, label, strlen(label));
        float lx = m->role == CW_USER ? x + m->w - lw - 4 * s : x + 4 * s;
        cw_draw_text(f, CW_SIZE_SMALL, lx, y - mt->label_h + s, label, strlen(label), 0x6E7781FF);
    }
    float tx = x + mt->bp, ty = y + mt->bp;
    switch (m->role) {
    case CW_USER:
        cw_round(x, y, m->w, m->h, 12 * s, 0x2563EBFF);
        text = 0xFFFFFFFF;
        selc = 0x93C5FDFF;
        break;
    case CW_ASSISTANT:
        cw_round(x, y + s, m->w, m->h, 12 * s, 0x00000012); /* a soft shadow */
        cw_box(x, y, m->w, m->h, 12 * s, s, 0xDDE1E6FF, 0xFFFFFFFF);
        text = 0x1F2328FF;
        selc = 0xB6D4FEFF;
        break;
    case CW_ERROR:
        cw_box(x, y, m->w, m->h, 8 * s, s, 0xF3B8B8FF, 0xFDECECFF);
        text = 0x8B1A1AFF;
        selc = 0xF8C9C9FF;
        break;
    default:
        text = 0x6E7781FF;
        selc = 0xD0D7DEFF;
        tx = x;
        ty = y + 2 * s;
        break;
    }
    int am = -1, bm = -1;
    size_t ao = 0, bo = 0;
    if (has_sel(l))
        sel_range(l, &am, &ao, &bm, &bo);
    bool in_sel = am >= 0 && i >= am && i <= bm;
    size_t lo = i == am ? ao : 0, hi = i == bm ? bo : m->len;
    for (int k = 0; k < m->lay.n; k++) {
        const cw_line *ln = &m->lay.lines[k];
        float ly = ty + k * lh;
        if (ly > l->y + l->h || ly + lh < l->y)
            continue;
        if (in_sel && hi >= ln->start && lo <= ln->end && hi > lo) {
            float a = cw_line_x(f, size, m->text, ln, lo), b = cw_line_x(f, size, m->text, ln, hi);
            if (hi > ln->end && k + 1 < m->lay.n)
                b += 4 * s;
            cw_fill(tx + a, ly, b - a, lh, selc);
        }
        cw_draw_text(f, size, tx, ly, m->text + ln->start, ln->end - ln->start, text);
    }
    if (m->role == CW_ASSISTANT && m->len == 0 && i == e->reply_msg && e->job == CW_JOB_REPLY) {
        int dots = (int)(glfwGetTime() * 3) % 3 + 1;
        cw_draw_text(f, size, tx, ty, "\xE2\x80\xA2\xE2\x80\xA2\xE2\x80\xA2", (size_t)dots * 3, 0x8C959FFF);
    }
}

static void draw_empty(cw_ui *ui, cw_list *l, const char *title, const char *text)
{
    cw_fonts *f = ui->fonts;
    float s = ui->s;
    float tw = cw_text_width(f, CW_SIZE_NORMAL, title, strlen(title));
    float lh = cw_line_height(f, CW_SIZE_NORMAL), sh = cw_line_height(f, CW_SIZE_SMALL);
    cw_layout lay = { 0 };
    cw_layout_text(&lay, f, CW_SIZE_SMALL, text, strlen(text), fminf(l->w - 40 * s, 520 * s));
    float total = lh + 8 * s + lay.n * sh;
    float y = roundf(l->y + (l->h - total) / 2);
    cw_draw_text(f, CW_SIZE_NORMAL, roundf(l->x + (l->w - tw) / 2), y, title, strlen(title), 0x1F2328FF);
    y += lh + 8 * s;
    for (int k = 0; k < lay.n; k++) {
        const cw_line *ln = &lay.lines[k];
        cw_draw_text(f, CW_SIZE_SMALL, roundf(l->x + (l->w - ln->width) / 2), y + k * sh, text + ln->start,
                     ln->end - ln->start, 0x6E7781FF);
    }
    cw_layout_free(&lay);
}

void cw_list_frame(cw_ui *ui, cw_list *l, cw_engine *e, const char *empty_title, const char *empty_text)
{
    metrics mt = get_metrics(ui, l);
    pthread_mutex_lock(&e->mu);
    layout(ui, l, e, &mt);
    if (l->sel_am >= e->n_msgs || l->sel_bm >= e->n_msgs)
        cw_list_clear_sel(l);
    mouse(ui, l, e, &mt);
    float ms = max_scroll(l);
    if (l->follow || l->scroll > ms)
        l->scroll = ms;

    cw_fill(l->x, l->y, l->w, l->h, 0xF6F7F9FF);
    cw_clip(l->x, l->y, l->w, l->h, ui->fb_h);
    if (e->n_msgs == 0)
        draw_empty(ui, l, empty_title, empty_text);
    for (int i = 0; i < e->n_msgs; i++) {
        const cw_msg *m = &e->msgs[i];
        float y = m->y - l->scroll;
        if (y + m->h < -mt.label_h || y - mt.label_h > l->h)
            continue;
        draw_msg(ui, l, e, &mt, i);
    }
    if (ms > 0) { /* the scroll bar */
        float th = fmaxf(30 * mt.s, l->h * l->h / l->content_h);
        float ty = l->y + (l->h - th) * (l->scroll / ms);
        bool hot = l->bar_drag || cw_hover(ui, l->x + l->w - 10 * mt.s, l->y, 10 * mt.s, l->h);
        cw_round(l->x + l->w - 8 * mt.s, ty + 2 * mt.s, 5 * mt.s, th - 4 * mt.s, 2.5f * mt.s,
                 hot ? 0x8C959FFF : 0xC4C9D0FF);
    }
    cw_noclip();
    pthread_mutex_unlock(&e->mu);
}

void cw_list_print(cw_list *l, cw_engine *e, FILE *out)
{
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->n_msgs; i++) {
        const cw_msg *m = &e->msgs[i];
        float x0 = l->x + m->x, y0 = l->y + m->y - l->scroll, x1 = x0 + m->w, y1 = y0 + m->h;
        bool visible = y0 >= l->y && y1 <= l->y + l->h;
        fprintf(out, "window: message %d %s %d %d %d %d %s\n", i, role_name(m->role), (int)x0, (int)y0,
                (int)(x1 - x0), (int)(y1 - y0), visible ? "visible" : "hidden");
    }
    pthread_mutex_unlock(&e->mu);
}
