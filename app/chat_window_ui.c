/* chat_window_ui.c: drawing primitives (filled and rounded rectangles, clipping) in legacy OpenGL, and
 * the immediate-mode widgets of the window: a button and an editable field. Widgets are drawn and
 * handle the mouse in the same call, every frame; cw_ui carries the mouse state of the frame. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <GLFW/glfw3.h>

#include "chat_window.h"

static void color(uint32_t rgba) { glColor4ub(rgba >> 24, rgba >> 16 & 255, rgba >> 8 & 255, rgba & 255); }

void cw_fill(float x, float y, float w, float h, uint32_t rgba)
{
    if (w <= 0 || h <= 0)
        return;
    color(rgba);
    glBegin(GL_QUADS);
    glVertex2f(x, y);
    glVertex2f(x + w, y);
    glVertex2f(x + w, y + h);
    glVertex2f(x, y + h);
    glEnd();
}

void cw_round(float x, float y, float w, float h, float r, uint32_t rgba)
{
    if (w <= 0 || h <= 0)
        return;
    if (r > w / 2)
        r = w / 2;
    if (r > h / 2)
        r = h / 2;
    if (r < 1) {
        cw_fill(x, y, w, h, rgba);
        return;
    }
    color(rgba);
    const int seg = 6;
    const float cx[4] = { x + w - r, x + r, x + r, x + w - r }, cy[4] = { y + r, y + r, y + h - r, y + h - r };
    glBegin(GL_POLYGON);
    for (int c = 0; c < 4; c++) /* corners top-right, top-left, bottom-left, bottom-right */
        for (int i = 0; i <= seg; i++) {
            float a = (float)(c * M_PI / 2 + i * M_PI / 2 / seg);
            glVertex2f(cx[c] + r * cosf(a), cy[c] - r * sinf(a));
        }
    glEnd();
}

void cw_box(float x, float y, float w, float h, float r, float border, uint32_t line, uint32_t fill)
{
    cw_round(x, y, w, h, r, line);
    cw_round(x + border, y + border, w - 2 * border, h - 2 * border, r - border, fill);
}

void cw_clip(float x, float y, float w, float h, int fb_h)
{
    glEnable(GL_SCISSOR_TEST);
    int ix = (int)floorf(x), iy = (int)floorf(y);
    int iw = (int)ceilf(x + w) - ix, ih = (int)ceilf(y + h) - iy;
    glScissor(ix, fb_h - (iy + ih), iw > 0 ? iw : 0, ih > 0 ? ih : 0);
}

void cw_noclip(void) { glDisable(GL_SCISSOR_TEST); }

bool cw_hover(const cw_ui *ui, float x, float y, float w, float h)
{
    return ui->mx >= x && ui->mx < x + w && ui->my >= y && ui->my < y + h;
}

static uint32_t shade(uint32_t rgba, int d)
{
    uint32_t out = rgba & 255;
    for (int sh = 8; sh <= 24; sh += 8) {
        int c = (int)(rgba >> sh & 255) + d;
        out |= (uint32_t)(c < 0 ? 0 : c > 255 ? 255 : c) << sh;
    }
    return out;
}

bool cw_button(cw_ui *ui, const void *id, float x, float y, float w, float h, const char *label, bool enabled,
               uint32_t fill, uint32_t text)
{
    bool hover = enabled && cw_hover(ui, x, y, w, h);
    bool clicked = false;
    if (hover && ui->pressed) {
        ui->active = (void *)id;
        ui->again = true;
    }
    if (ui->active == id && ui->released && hover) {
        clicked = true;
        ui->again = true;
    }
    uint32_t f = !enabled ? 0xE6E8EBFF : ui->active == id && ui->down ? shade(fill, -30) : hover ? shade(fill, -15) : fill;
    cw_round(x, y, w, h, 6 * ui->s, f);
    float tw = cw_text_width(ui->fonts, CW_SIZE_NORMAL, label, strlen(label));
    float lh = cw_line_height(ui->fonts, CW_SIZE_NORMAL);
    cw_draw_text(ui->fonts, CW_SIZE_NORMAL, roundf(x + (w - tw) / 2), roundf(y + (h - lh) / 2), label, strlen(label),
                 enabled ? text : 0x8C959FFF);
    return clicked;
}

float cw_edit_height(cw_ui *ui, cw_edit *e, float w, int min_lines, int max_lines)
{
    float pad = 8 * ui->s, lh = cw_line_height(ui->fonts, e->size);
    e->wrap_w = w - 2 * pad;
    cw_layout_text(&e->lay, ui->fonts, e->size, e->buf, e->len, e->wrap_w);
    int n = e->lay.n < min_lines ? min_lines : e->lay.n > max_lines ? max_lines : e->lay.n;
    return n * lh + 2 * pad;
}

/* The offset under the mouse. */
static size_t edit_hit(cw_ui *ui, cw_edit *e, float tx, float ty, float lh)
{
    if (!e->multiline) {
        cw_line ln = { 0, e->len, 0 };
        return cw_line_hit(ui->fonts, e->size, e->buf, &ln, ui->mx - tx);
    }
    int li = (int)floorf((ui->my - ty) / lh);
    li = li < 0 ? 0 : li >= e->lay.n ? e->lay.n - 1 : li;
    return cw_line_hit(ui->fonts, e->size, e->buf, &e->lay.lines[li], ui->mx - tx);
}

static bool word_char(const char *s, size_t i) { return s[i] != ' ' && s[i] != '\n' && s[i] != '\t'; }

void cw_edit_draw(cw_ui *ui, cw_edit *e, float x, float y, float w, float h, const char *placeholder)
{
    cw_fonts *f = ui->fonts;
    float s = ui->s, pad = 8 * s, lh = cw_line_height(f, e->size);
    bool focused = ui->focus == e, hover = cw_hover(ui, x, y, w, h);
    cw_box(x, y, w, h, 6 * s, focused ? 2 * s : s, focused ? 0x2563EBFF : 0xD0D7DEFF, 0xFFFFFFFF);
    if (hover)
        ui->over_text = true;

    /* where the text is, with the scroll that keeps the cursor in view */
    float iw = w - 2 * pad, ih = h - 2 * pad;
    if (e->multiline) {
        e->wrap_w = iw;
        cw_layout_text(&e->lay, f, e->size, e->buf, e->len, iw);
        float cy = cw_layout_line_of(&e->lay, e->cur) * lh;
        if (cy - e->scroll > ih - lh)
            e->scroll = cy - (ih - lh);
        if (cy < e->scroll)
            e->scroll = cy;
        float max = e->lay.n * lh - ih;
        if (e->scroll > max)
            e->scroll = max > 0 ? max : 0;
    } else {
        float cx = cw_text_width(f, e->size, e->buf, e->cur);
        if (cx - e->scroll > iw - 2 * s)
            e->scroll = cx - (iw - 2 * s);
        if (cx < e->scroll)
            e->scroll = cx;
        float tw = cw_text_width(f, e->size, e->buf, e->len);
        if (e->scroll > 0 && tw - e->scroll < iw - 2 * s)
            e->scroll = tw - (iw - 2 * s) > 0 ? tw - (iw - 2 * s) : 0;
    }
    float tx = x + pad - (e->multiline ? 0 : e->scroll);
    float ty = e->multiline ? y + pad - e->scroll : roundf(y + (h - lh) / 2);

    /* the mouse: press focuses and places the cursor, drag selects, a double click selects a word */
    if (hover && ui->pressed) {
        ui->focus = e;
        ui->active = e;
        ui->again = true;
        size_t off = edit_hit(ui, e, tx, ty, lh);
        e->cur = e->anchor = off;
        if (ui->clicks == 2) {
            size_t a = off, b = off;
            while (a > 0 && word_char(e->buf, a - 1))
                a = cw_utf8_prev(e->buf, a);
            while (b < e->len && word_char(e->buf, b))
                cw_utf8_next(e->buf, e->len, &b);
            e->anchor = a;
            e->cur = b;
        }
        e->pref_x = -1;
    } else if (ui->active == e && ui->down && ui->clicks < 2) {
        e->cur = edit_hit(ui, e, tx, ty, lh);
    }

    cw_clip(x + s, y + s, w - 2 * s, h - 2 * s, ui->fb_h);
    size_t lo = e->cur < e->anchor ? e->cur : e->anchor, hi = e->cur < e->anchor ? e->anchor : e->cur;
    if (e->len == 0 && placeholder)
        cw_draw_text(f, e->size, x + pad, ty, placeholder, strlen(placeholder), 0x8C959FFF);
    int n = e->multiline ? e->lay.n : 1;
    for (int i = 0; i < n; i++) {
        cw_line ln = e->multiline ? e->lay.lines[i] : (cw_line){ 0, e->len, 0 };
        float ly = ty + i * lh;
        if (ly + lh < y || ly > y + h)
            continue;
        if (focused && hi > lo && hi >= ln.start && lo <= ln.end) {
            float a = cw_line_x(f, e->size, e->buf, &ln, lo), b = cw_line_x(f, e->size, e->buf, &ln, hi);
            if (hi > ln.end)
                b += 4 * s;
            cw_fill(tx + a, ly, b - a, lh, 0xB6D4FEFF);
        }
        cw_draw_text(f, e->size, tx, ly, e->buf + ln.start, ln.end - ln.start, 0x1F2328FF);
    }
    if (focused) {
        const cw_line *ln = e->multiline ? &e->lay.lines[cw_layout_line_of(&e->lay, e->cur)] : NULL;
        cw_line one = { 0, e->len, 0 };
        if (!ln)
            ln = &one;
        float cx = tx + cw_line_x(f, e->size, e->buf, ln, e->cur);
        float cy = ty + (e->multiline ? cw_layout_line_of(&e->lay, e->cur) * lh : 0);
        cw_fill(roundf(cx), cy, fmaxf(1, roundf(1.5f * s)), lh, 0x1F2328FF);
    }
    cw_noclip();
}
