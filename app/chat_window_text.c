/* chat_window_text.c: UTF-8 for the window, and word wrapping. Lines break after spaces, before and
 * after wide (CJK) characters except before closing punctuation (，。、！？ and closing brackets), and
 * anywhere inside a word longer than the line. */
#include <stdlib.h>
#include <string.h>

#include "chat_window.h"

uint32_t cw_utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    unsigned c = p[0];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    int len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
    if (len == 0 || (size_t)len > left || c > 0xF4)
        goto bad;
    uint32_t cp = c & (0x7F >> len);
    for (int k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80)
            goto bad;
        cp = cp << 6 | (p[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        goto bad;
    *i += (size_t)len;
    return cp;
bad:
    (*i)++;
    return 0xFFFD;
}

size_t cw_utf8_prev(const char *s, size_t i)
{
    if (i == 0)
        return 0;
    size_t j = i - 1;
    for (int k = 0; k < 3 && j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80; k++)
        j--;
    /* only a start byte whose sequence ends exactly at i counts; else step one byte */
    size_t t = j;
    cw_utf8_next(s, i, &t);
    return t == i ? j : i - 1;
}

size_t cw_utf8_put(uint32_t cp, char out[4])
{
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        cp = 0xFFFD;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

bool cw_is_wide(uint32_t cp)
{
    return (cp >= 0x1100 && cp <= 0x115F) ||   /* Hangul Jamo */
           (cp >= 0x2E80 && cp <= 0x303E) ||   /* CJK radicals, symbols and punctuation */
           (cp >= 0x3041 && cp <= 0x33FF) ||   /* kana, bopomofo, compatibility */
           (cp >= 0x3400 && cp <= 0x4DBF) ||   /* extension A */
           (cp >= 0x4E00 && cp <= 0x9FFF) ||   /* unified ideographs */
           (cp >= 0xA960 && cp <= 0xA97F) || (cp >= 0xAC00 && cp <= 0xD7A3) || /* hangul */
           (cp >= 0xF900 && cp <= 0xFAFF) ||   /* compatibility ideographs */
           (cp >= 0xFE30 && cp <= 0xFE4F) ||   /* compatibility forms */
           (cp >= 0xFF00 && cp <= 0xFF60) || (cp >= 0xFFE0 && cp <= 0xFFE6) || /* full-width forms */
           (cp >= 0x20000 && cp <= 0x3FFFD);   /* planes 2 and 3 */
}

/* Characters a line must not start with (kinsoku): closing punctuation, full and half width. */
static bool no_break_before(uint32_t cp)
{
    static const uint32_t set[] = { 0x3001, 0x3002, 0xFF0C, 0xFF0E, 0xFF01, 0xFF1F, 0xFF1A, 0xFF1B, 0xFF09,
                                    0x300D, 0x300F, 0x3011, 0x3009, 0x300B, 0x3015, 0x3017, 0x30FC, 0x3005,
                                    ',', '.', '!', '?', ':', ';', ')', ']', '}', 0x201D, 0x2019 };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++)
        if (set[i] == cp)
            return true;
    return false;
}

static void push_line(cw_layout *l, cw_fonts *f, int size, const char *s, size_t start, size_t end)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        cw_line *p = realloc(l->lines, (size_t)cap * sizeof *p);
        if (!p)
            return;
        l->lines = p;
        l->cap = cap;
    }
    size_t e = end;
    while (e > start && (s[e - 1] == ' ' || s[e - 1] == '\t'))
        e--;
    float w = cw_text_width(f, size, s + start, e - start);
    l->lines[l->n++] = (cw_line){ start, end, w };
    if (w > l->width)
        l->width = w;
}

void cw_layout_text(cw_layout *l, cw_fonts *f, int size, const char *s, size_t n, float wrap_w)
{
    l->n = 0;
    l->width = 0;
    /* brk: where the line may end (<= start: nowhere yet); prev: the break before it */
    size_t start = 0, brk = 0, prev = 0;
    float x = 0;
#define SET_BRK(v) do { if (brk != (v)) { prev = brk; brk = (v); } } while (0)
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint32_t cp = cw_utf8_next(s, n, &j);
        if (cp == '\n') {
            push_line(l, f, size, s, start, i);
            start = brk = prev = j;
            x = 0;
            i = j;
            continue;
        }
        float adv = cw_advance(f, size, cp);
        if (cp == ' ' || cp == '\t') { /* spaces hang past the edge */
            x += adv;
            SET_BRK(j);
            i = j;
            continue;
        }
        bool wide = cw_is_wide(cp);
        if (no_break_before(cp) && brk == i)
            brk = prev;
        else if (wide && i > start)
            SET_BRK(i);
        if (x + adv > wrap_w && i > start) {
            size_t cut = brk > start ? brk : i;
            push_line(l, f, size, s, start, cut);
            start = cut;
            brk = prev = 0;
            x = cw_text_width(f, size, s + cut, i - cut);
        }
        x += adv;
        if (wide)
            SET_BRK(j);
        i = j;
    }
#undef SET_BRK
    push_line(l, f, size, s, start, n);
}

void cw_layout_free(cw_layout *l)
{
    free(l->lines);
    memset(l, 0, sizeof *l);
}

int cw_layout_line_of(const cw_layout *l, size_t off)
{
    int lo = 0, hi = l->n - 1;
    while (lo < hi) { /* the last line whose start <= off */
        int mid = (lo + hi + 1) / 2;
        if (l->lines[mid].start <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo < 0 ? 0 : lo;
}

float cw_line_x(cw_fonts *f, int size, const char *s, const cw_line *ln, size_t off)
{
    if (off > ln->end)
        off = ln->end;
    if (off < ln->start)
        off = ln->start;
    return cw_text_width(f, size, s + ln->start, off - ln->start);
}

size_t cw_line_hit(cw_fonts *f, int size, const char *s, const cw_line *ln, float x)
{
    float pen = 0;
    size_t i = ln->start;
    while (i < ln->end) {
        size_t j = i;
        float adv = cw_advance(f, size, cw_utf8_next(s, ln->end, &j));
        if (x < pen + adv * 0.5f)
            return i;
        pen += adv;
        i = j;
    }
    return ln->end;
}
