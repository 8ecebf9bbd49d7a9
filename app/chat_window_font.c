/* chat_window_font.c: the window's text rendering. fontconfig finds the faces ("sans-serif", then the
 * faces it picks for zh, ja and ko as fallbacks); stb_truetype rasterises each glyph the first time it
 * is drawn into one alpha texture (a shelf-packed atlas; when it is full it is emptied and filled
 * again), and text is drawn as textured quads. A glyph is taken from the first face that has it; one
 * that no face has is drawn as the main face's missing-glyph box and counted. */
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GL_GLEXT_PROTOTYPES
#include <GLFW/glfw3.h>

#define STBTT_STATIC
#define STB_TRUETYPE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include "stb_truetype.h"
#pragma GCC diagnostic pop

#include "chat_window.h"

#define CW_MAX_FACES 4
#define ATLAS_W 1024
#define ATLAS_H 1024
#define MAX_MISSING 256

static const float base_px[CW_SIZE_COUNT] = { 15.0f, 12.0f }; /* em size in pixels at scale 1 */

typedef struct face {
    unsigned char *data;
    stbtt_fontinfo info;
    char path[512];
    int index;
    char family[64];
} face;

typedef struct glyph {
    uint32_t key;          /* cp | size << 21 | 1 << 31 when used */
    uint8_t face;          /* index of the face that has it */
    bool rast;             /* in the atlas */
    int glyph;             /* glyph index in the face */
    float advance;
    int16_t ax, ay, w, h;  /* atlas rectangle */
    int16_t xoff, yoff;    /* bitmap box relative to pen and baseline */
} glyph;

struct cw_fonts {
    face faces[CW_MAX_FACES];
    int n_faces;
    float scale;
    float px[CW_SIZE_COUNT], ascent[CW_SIZE_COUNT], line_h[CW_SIZE_COUNT];
    glyph *tab;
    uint32_t tab_cap, tab_used;
    GLuint tex;
    int shelf_x, shelf_y, shelf_h;
    uint32_t missing[MAX_MISSING];
    int n_missing;
    char names[256];
};

/* ---------------------------------------------------------------- finding and loading faces */

static unsigned char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n > 0 && fseek(f, 0, SEEK_SET) == 0) {
            buf = malloc((size_t)n);
            if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

/* The face fontconfig matches for family (and lang, may be NULL), if it has code point need. */
static bool fc_find(const char *family, const char *lang, uint32_t need, char *path, size_t cap, int *index,
                    char *fam, size_t famcap)
{
    FcPattern *p = FcNameParse((const FcChar8 *)family);
    if (!p)
        return false;
    if (lang)
        FcPatternAddString(p, FC_LANG, (const FcChar8 *)lang);
    FcConfigSubstitute(NULL, p, FcMatchPattern);
    FcDefaultSubstitute(p);
    FcResult r;
    FcPattern *m = FcFontMatch(NULL, p, &r);
    FcPatternDestroy(p);
    if (!m)
        return false;
    bool ok = false;
    FcChar8 *file = NULL, *name = NULL;
    FcCharSet *cs = NULL;
    int idx = 0;
    if (FcPatternGetString(m, FC_FILE, 0, &file) == FcResultMatch &&
        FcPatternGetCharSet(m, FC_CHARSET, 0, &cs) == FcResultMatch && FcCharSetHasChar(cs, need)) {
        FcPatternGetInteger(m, FC_INDEX, 0, &idx);
        snprintf(path, cap, "%s", (const char *)file);
        *index = idx;
        if (FcPatternGetString(m, FC_FAMILY, 0, &name) != FcResultMatch)
            name = (FcChar8 *)"?";
        snprintf(fam, famcap, "%s", (const char *)name);
        ok = true;
    }
    FcPatternDestroy(m);
    return ok;
}

static bool add_face(cw_fonts *f, const char *family, const char *lang, uint32_t need)
{
    if (f->n_faces == CW_MAX_FACES)
        return false;
    face *fc = &f->faces[f->n_faces];
    if (!fc_find(family, lang, need, fc->path, sizeof fc->path, &fc->index, fc->family, sizeof fc->family))
        return false;
    for (int i = 0; i < f->n_faces; i++)
        if (!strcmp(f->faces[i].path, fc->path) && f->faces[i].index == fc->index)
            return false; /* already in */
    fc->data = read_all(fc->path);
    if (!fc->data)
        return false;
    int off = stbtt_GetFontOffsetForIndex(fc->data, fc->index);
    if (off < 0 || !stbtt_InitFont(&fc->info, fc->data, off)) {
        free(fc->data);
        fc->data = NULL;
        return false;
    }
    f->n_faces++;
    return true;
}

int cw_fonts_create(cw_fonts **out, char *err, size_t errlen)
{
    *out = NULL;
    cw_fonts *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    if (!FcInit()) {
        snprintf(err, errlen, "fontconfig cannot start");
        free(f);
        return 1;
    }
    if (!add_face(f, "sans-serif", NULL, 'A')) {
        snprintf(err, errlen, "no usable sans-serif font (fontconfig matched none that stb_truetype reads)");
        free(f);
        return 1;
    }
    add_face(f, "sans-serif", "zh-cn", 0x4E2D); /* 中 */
    add_face(f, "sans-serif", "ja", 0x3042);    /* あ */
    add_face(f, "sans-serif", "ko", 0xD55C);    /* 한 */
    size_t k = 0;
    for (int i = 0; i < f->n_faces && k < sizeof f->names; i++)
        k += (size_t)snprintf(f->names + k, sizeof f->names - k, "%s%s", i ? " + " : "", f->faces[i].family);
    f->tab_cap = 4096;
    f->tab = calloc(f->tab_cap, sizeof *f->tab);
    if (!f->tab) {
        snprintf(err, errlen, "out of memory");
        cw_fonts_free(f);
        return 1;
    }
    f->scale = 0;
    cw_fonts_set_scale(f, 1.0f);
    *out = f;
    return 0;
}

void cw_fonts_free(cw_fonts *f)
{
    if (!f)
        return;
    if (f->tex)
        glDeleteTextures(1, &f->tex);
    for (int i = 0; i < f->n_faces; i++)
        free(f->faces[i].data);
    free(f->tab);
    free(f);
    FcFini(); /* the window is fontconfig's only user */
}

static void atlas_clear(cw_fonts *f)
{
    for (uint32_t i = 0; i < f->tab_cap; i++)
        f->tab[i].rast = false;
    f->shelf_x = f->shelf_y = f->shelf_h = 0;
}

void cw_fonts_set_scale(cw_fonts *f, float scale)
{
    if (scale <= 0)
        scale = 1;
    if (scale == f->scale)
        return;
    f->scale = scale;
    const stbtt_fontinfo *mi = &f->faces[0].info;
    int asc, desc, gap;
    stbtt_GetFontVMetrics(mi, &asc, &desc, &gap);
    for (int s = 0; s < CW_SIZE_COUNT; s++) {
        f->px[s] = roundf(base_px[s] * scale);
        float k = stbtt_ScaleForMappingEmToPixels(mi, f->px[s]);
        f->ascent[s] = ceilf(asc * k);
        f->line_h[s] = ceilf((asc - desc + gap) * k * 1.08f);
    }
    memset(f->tab, 0, f->tab_cap * sizeof *f->tab);
    f->tab_used = 0;
    atlas_clear(f);
}

float cw_line_height(const cw_fonts *f, int size) { return f->line_h[size]; }

int cw_fonts_missing(const cw_fonts *f) { return f->n_missing; }

const char *cw_fonts_names(const cw_fonts *f) { return f->names; }

/* ---------------------------------------------------------------- the glyph table */

static bool visible(uint32_t cp)
{
    return cp > 0x20 && !(cp >= 0x7F && cp <= 0xA0) && cp != 0x3000 && !(cp >= 0x2000 && cp <= 0x200F) &&
           cp != 0xFEFF && !(cp >= 0x2028 && cp <= 0x202F);
}

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static glyph *slot(glyph *tab, uint32_t cap, uint32_t key)
{
    uint32_t i = hash32(key) & (cap - 1);
    while (tab[i].key && tab[i].key != key)
        i = (i + 1) & (cap - 1);
    return &tab[i];
}

static bool grow(cw_fonts *f)
{
    uint32_t cap = f->tab_cap * 2;
    glyph *t = calloc(cap, sizeof *t);
    if (!t)
        return false;
    for (uint32_t i = 0; i < f->tab_cap; i++)
        if (f->tab[i].key)
            *slot(t, cap, f->tab[i].key) = f->tab[i];
    free(f->tab);
    f->tab = t;
    f->tab_cap = cap;
    return true;
}

/* The glyph of cp at size (metrics only; rasterised by draw). */
static glyph *lookup(cw_fonts *f, int size, uint32_t cp)
{
    if (cp > 0x10FFFF)
        cp = 0xFFFD;
    uint32_t key = cp | (uint32_t)size << 21 | 1u << 31;
    glyph *g = slot(f->tab, f->tab_cap, key);
    if (g->key)
        return g;
    if (f->tab_used * 2 >= f->tab_cap && grow(f))
        g = slot(f->tab, f->tab_cap, key);
    memset(g, 0, sizeof *g);
    g->key = key;
    f->tab_used++;
    uint32_t look = cp == '\t' ? ' ' : cp;
    int fi = 0, gi = 0;
    for (int i = 0; i < f->n_faces && !gi; i++) {
        gi = stbtt_FindGlyphIndex(&f->faces[i].info, (int)look);
        if (gi)
            fi = i;
    }
    if (!gi && visible(cp)) {
        bool seen = false;
        for (int i = 0; i < f->n_missing; i++)
            seen |= f->missing[i] == cp;
        if (!seen && f->n_missing < MAX_MISSING)
            f->missing[f->n_missing++] = cp;
    }
    g->face = (uint8_t)fi;
    g->glyph = gi;
    const stbtt_fontinfo *info = &f->faces[fi].info;
    float k = stbtt_ScaleForMappingEmToPixels(info, f->px[size]);
    int adv, lsb;
    stbtt_GetGlyphHMetrics(info, gi, &adv, &lsb);
    g->advance = adv * k * (cp == '\t' ? 4 : 1);
    if (cp < 0x20 && cp != '\t')
        g->advance = 0;
    return g;
}

float cw_advance(cw_fonts *f, int size, uint32_t cp) { return lookup(f, size, cp)->advance; }

float cw_text_width(cw_fonts *f, int size, const char *s, size_t n)
{
    float w = 0;
    for (size_t i = 0; i < n;)
        w += cw_advance(f, size, cw_utf8_next(s, n, &i));
    return w;
}

/* ---------------------------------------------------------------- the atlas and drawing */

static bool ensure_tex(cw_fonts *f)
{
    if (f->tex)
        return true;
    glGenTextures(1, &f->tex);
    glBindTexture(GL_TEXTURE_2D, f->tex);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
    glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
    unsigned char *zero = calloc(ATLAS_W, ATLAS_H);
    if (!zero)
        return false;
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_ALPHA, ATLAS_W, ATLAS_H, 0, GL_ALPHA, GL_UNSIGNED_BYTE, zero);
    free(zero);
    return true;
}

/* Puts g's bitmap into the atlas; false when it has no pixels. */
static bool rasterise(cw_fonts *f, int size, glyph *g)
{
    if (g->rast)
        return g->w > 0;
    const stbtt_fontinfo *info = &f->faces[g->face].info;
    float k = stbtt_ScaleForMappingEmToPixels(info, f->px[size]);
    int x0, y0, x1, y1;
    stbtt_GetGlyphBitmapBox(info, g->glyph, k, k, &x0, &y0, &x1, &y1);
    int w = x1 - x0, h = y1 - y0;
    g->rast = true;
    g->w = g->h = 0;
    if (w <= 0 || h <= 0 || w > ATLAS_W / 4 || h > ATLAS_H / 4 || stbtt_IsGlyphEmpty(info, g->glyph))
        return false;
    if (f->shelf_x + w + 1 > ATLAS_W) {
        f->shelf_x = 0;
        f->shelf_y += f->shelf_h + 1;
        f->shelf_h = 0;
    }
    if (f->shelf_y + h + 1 > ATLAS_H) {
        /* full: start over; glyphs already drawn this frame keep what they showed */
        uint32_t key = g->key;
        atlas_clear(f);
        g = slot(f->tab, f->tab_cap, key);
        g->rast = true;
    }
    unsigned char *bm = malloc((size_t)w * h);
    if (!bm)
        return false;
    stbtt_MakeGlyphBitmap(info, bm, w, h, w, k, k, g->glyph);
    glBindTexture(GL_TEXTURE_2D, f->tex);
    glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
    glTexSubImage2D(GL_TEXTURE_2D, 0, f->shelf_x, f->shelf_y, w, h, GL_ALPHA, GL_UNSIGNED_BYTE, bm);
    free(bm);
    g->ax = (int16_t)f->shelf_x;
    g->ay = (int16_t)f->shelf_y;
    g->w = (int16_t)w;
    g->h = (int16_t)h;
    g->xoff = (int16_t)x0;
    g->yoff = (int16_t)y0;
    f->shelf_x += w + 1;
    if (h > f->shelf_h)
        f->shelf_h = h;
    return true;
}

void cw_draw_text(cw_fonts *f, int size, float x, float y, const char *s, size_t n, uint32_t rgba)
{
    if (!ensure_tex(f))
        return;
    float base = roundf(y) + f->ascent[size];
    float pen = x;
    glEnable(GL_TEXTURE_2D);
    glBindTexture(GL_TEXTURE_2D, f->tex);
    glTexEnvi(GL_TEXTURE_ENV, GL_TEXTURE_ENV_MODE, GL_MODULATE);
    glColor4ub(rgba >> 24, rgba >> 16 & 255, rgba >> 8 & 255, rgba & 255);
    const float iw = 1.0f / ATLAS_W, ih = 1.0f / ATLAS_H;
    for (size_t i = 0; i < n;) {
        uint32_t cp = cw_utf8_next(s, n, &i);
        glyph *g = lookup(f, size, cp);
        float adv = g->advance;
        if (cp > ' ' && rasterise(f, size, g)) {
            float qx = roundf(pen) + g->xoff, qy = base + g->yoff;
            float u0 = g->ax * iw, v0 = g->ay * ih, u1 = (g->ax + g->w) * iw, v1 = (g->ay + g->h) * ih;
            glBegin(GL_QUADS);
            glTexCoord2f(u0, v0); glVertex2f(qx, qy);
            glTexCoord2f(u1, v0); glVertex2f(qx + g->w, qy);
            glTexCoord2f(u1, v1); glVertex2f(qx + g->w, qy + g->h);
            glTexCoord2f(u0, v1); glVertex2f(qx, qy + g->h);
            glEnd();
        }
        pen += adv;
    }
    glDisable(GL_TEXTURE_2D);
}
