/* test_window.c: the chat window end to end. Runs `vkllm chat --window` under Xvfb with a script of an
 * English and a Chinese message to stories260K (with a chat template), takes its screenshot, and
 * checks: the process exits 0 in time, no glyph was missing from every font (the Chinese text needs the
 * CJK fallback), no validation message, the PNG has the window's size and is not blank, and there is
 * text in every message bubble the window says it drew. Skipped when xvfb-run is not installed. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STB_IMAGE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

#include "util.h"

typedef struct rect {
    int i, x, y, w, h;
    char role[16];
    bool visible;
} rect;

static int px_diff(const unsigned char *p, uint32_t rgb)
{
    return abs(p[0] - (int)(rgb >> 16)) + abs(p[1] - (int)(rgb >> 8 & 255)) + abs(p[2] - (int)(rgb & 255));
}

/* Pixels inside r (inset past the rounded corners) that differ clearly from the bubble's colour. */
static int text_pixels(const unsigned char *img, int w, int h, const rect *r, uint32_t fill)
{
    int n = 0;
    for (int y = r->y + 4; y < r->y + r->h - 4; y++)
        for (int x = r->x + 4; x < r->x + r->w - 4; x++)
            if (x >= 0 && y >= 0 && x < w && y < h && px_diff(img + ((size_t)y * w + x) * 3, fill) > 90)
                n++;
    return n;
}

static int distinct_colors(const unsigned char *img, int w, int h)
{
    static unsigned char seen[1 << 21]; /* a bit per 24-bit colour */
    memset(seen, 0, sizeof seen);
    int n = 0;
    for (size_t i = 0; i < (size_t)w * h; i++) {
        uint32_t c = (uint32_t)img[i * 3] << 16 | img[i * 3 + 1] << 8 | img[i * 3 + 2];
        if (!(seen[c >> 3] & 1 << (c & 7))) {
            seen[c >> 3] |= (unsigned char)(1 << (c & 7));
            n++;
        }
    }
    return n;
}

int main(void)
{
    char out[256];
    if (tu_run("command -v xvfb-run", out, sizeof out) != 0) {
        printf("test_window: skipped (xvfb-run is not installed)\n");
        return 0;
    }
    const char *bin = getenv("VKLLM_BIN");
    CHECK(bin != NULL, "VKLLM_BIN is not set");
    if (!bin)
        return tu_finish("test_window");
    char dir[] = "/tmp/vkllm_test_window_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp failed");
    char model[300], script[300], png[300], err_path[300];
    snprintf(model, sizeof model, "%s/chat260K.gguf", dir);
    snprintf(script, sizeof script, "%s/script.txt", dir);
    snprintf(png, sizeof png, "%s/window.png", dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", dir);
    CHECK(tu_chat_model(TU_CHAT_TEMPLATE, model), "cannot write the chat model");
    FILE *f = fopen(script, "w");
    CHECK(f != NULL, "cannot write %s", script);
    if (f) {
        fputs("Hello, tell me a story.\n\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE7\xBB\x99\xE6\x88\x91\xE8\xAE\xB2\xE4"
              "\xB8\x80\xE4\xB8\xAA\xE6\x95\x85\xE4\xBA\x8B\xE3\x80\x82\n", f); /* 你好，给我讲一个故事。 */
        fclose(f);
    }

    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout -k 10 120 xvfb-run -a -s '-screen 0 1024x768x24' '%s' chat --window -m '%s' --script '%s' "
             "--screenshot '%s' -n 40 --temp 0 %s 2>'%s'",
             bin, model, script, png, tu_validation_flag(), err_path);
    int rc = tu_run(cmd, out, sizeof out);
    char *err = tu_read_file(err_path, NULL);
    CHECK(rc == 0, "the window exited with %d (124: it hung); its stderr:\n%s", rc, err ? err : "");
    CHECK(err != NULL, "no stderr file");
    if (!err)
        return tu_finish("test_window");

    int missing = -1, fw = 0, fh = 0;
    rect rects[32];
    int nr = 0;
    for (char *line = err; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        sscanf(line, "window: glyphs missing %d", &missing);
        sscanf(line, "window: size %d %d", &fw, &fh);
        rect r;
        char vis[16];
        if (nr < 32 && sscanf(line, "window: message %d %15s %d %d %d %d %15s", &r.i, r.role, &r.x, &r.y, &r.w,
                              &r.h, vis) == 7) {
            r.visible = !strcmp(vis, "visible");
            rects[nr++] = r;
        }
        CHECK(!strstr(line, "validation:"), "a validation message: %s", line);
        line = next;
    }
    CHECK(missing == 0, "glyphs missing %d (want 0: the CJK font must cover the Chinese message)", missing);

    int n_user = 0, n_assistant = 0;
    for (int i = 0; i < nr; i++) {
        n_user += !strcmp(rects[i].role, "user");
        n_assistant += !strcmp(rects[i].role, "assistant");
    }
    CHECK(n_user == 2 && n_assistant == 2, "want 2 user and 2 assistant messages, the window drew %d and %d", n_user,
          n_assistant);

    int w = 0, h = 0, ch = 0;
    unsigned char *img = stbi_load(png, &w, &h, &ch, 3);
    CHECK(img != NULL, "cannot read the screenshot %s", png);
    if (img) {
        CHECK(w == fw && h == fh, "screenshot %dx%d, the window said %dx%d", w, h, fw, fh);
        int colors = distinct_colors(img, w, h);
        CHECK(colors >= 64, "the screenshot looks blank: %d distinct colours", colors);
        int visible = 0;
        for (int i = 0; i < nr; i++) {
            const rect *r = &rects[i];
            bool user = !strcmp(r->role, "user");
            if (!r->visible || (!user && strcmp(r->role, "assistant")))
                continue;
            visible++;
            int n = text_pixels(img, w, h, r, user ? 0x2563EB : 0xFFFFFF);
            CHECK(n >= 20, "message %d (%s) at %d,%d %dx%d: only %d text pixels", r->i, r->role, r->x, r->y, r->w,
                  r->h, n);
        }
        CHECK(visible >= 2, "only %d messages on screen", visible);
        stbi_image_free(img);
    }
    if (tu_failures)
        fprintf(stderr, "test_window: the files are in %s\n", dir);
    else {
        unlink(model);
        unlink(script);
        unlink(png);
        unlink(err_path);
        rmdir(dir);
    }
    free(err);
    return tu_finish("test_window");
}
