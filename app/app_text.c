/* app_text.c: text in and out of the vkllm command (app.h): files read with a bound, text from model files
 * made safe for a terminal, strings made valid UTF-8 for JSON, and the final check of standard output. */
#include "app.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- UTF-8 */

int app_utf8_char(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    if (!n)
        return 0;
    unsigned char c = s[0];
    int k = c < 0x80                   ? 1
            : (c >= 0xC2 && c <= 0xDF) ? 2
            : (c >= 0xE0 && c <= 0xEF) ? 3
            : (c >= 0xF0 && c <= 0xF4) ? 4
                                       : 0;
    if (!k || (size_t)k > n)
        return 0;
    for (int i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* overlong forms, surrogates, beyond U+10FFFF */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return k;
}

/* ---------------------------------------------------------------- files */

/* Whether standard input may be read as a text file: a terminal, a pipe, a socket or a regular file;
 * not a device that never ends (/dev/zero, /dev/urandom). */
static bool stdin_readable(char *err, size_t errlen)
{
    struct stat st;
    if (fstat(0, &st))
        return true; /* closed: reads nothing */
    if (S_ISCHR(st.st_mode) && !isatty(0)) {
        snprintf(err, errlen, "standard input is a character device, not text: redirect a file or a pipe");
        return false;
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > APP_FILE_MAX) {
        snprintf(err, errlen, "standard input: %.1f MiB, more than the %d MiB a text file may have",
                 st.st_size / 1048576.0, (int)(APP_FILE_MAX >> 20));
        return false;
    }
    return true;
}

/* Opens a named file for reading, refusing what is not a regular file (a FIFO or a device would block or
 * never end; O_NONBLOCK so that opening a FIFO does not wait for a writer) and files over the bound. */
static FILE *open_regular(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    const char *what = NULL;
    if (fstat(fd, &st))
        what = strerror(errno);
    else if (S_ISDIR(st.st_mode))
        what = "a folder";
    else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
        what = "a device";
    else if (S_ISFIFO(st.st_mode))
        what = "a FIFO";
    else if (!S_ISREG(st.st_mode))
        what = "not a regular file";
    if (what) {
        snprintf(err, errlen, "%s is %s, not a file that can be read as a whole", path, what);
        close(fd);
        return NULL;
    }
    if ((uint64_t)st.st_size > APP_FILE_MAX) {
        snprintf(err, errlen, "%s: %.1f MiB, more than the %d MiB a text file may have", path,
                 st.st_size / 1048576.0, (int)(APP_FILE_MAX >> 20));
        close(fd);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl != -1)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

char *app_slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    bool is_stdin = !strcmp(path, "-");
    if (is_stdin && !stdin_readable(err, errlen))
        return NULL;
    FILE *f = is_stdin ? stdin : open_regular(path, err, errlen);
    if (!f)
        return NULL;
    const char *name = is_stdin ? "standard input" : path;
    /* grows to the bound and one byte more, so that a longer input (a pipe) is seen to be too long */
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    bool too_long = false;
    while (buf) {
        if (n + 1 >= cap) {
            size_t want = cap * 2 > APP_FILE_MAX + 2 ? APP_FILE_MAX + 2 : cap * 2; /* > cap: n <= the bound */
            char *p = realloc(buf, want);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap = want;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (n > APP_FILE_MAX) {
            too_long = true;
            free(buf);
            buf = NULL;
            break;
        }
        if (got == 0)
            break;
    }
    bool rd_err = ferror(f);
    if (!is_stdin)
        fclose(f);
    if (too_long) {
        snprintf(err, errlen, "%s: more than the %d MiB a text file may have", name, (int)(APP_FILE_MAX >> 20));
        return NULL;
    }
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    if (rd_err) {
        free(buf);
        snprintf(err, errlen, "%s: read error", name);
        return NULL;
    }
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

char *app_read_file(const char *path, size_t *len)
{
    char err[1200];
    char *buf = app_slurp(path, len, err, sizeof err);
    if (!buf)
        app_fail("%s", err);
    return buf;
}

char *app_read_text(const char *path, size_t *len)
{
    size_t n;
    char *buf = app_read_file(path, &n);
    const char *nul = buf ? memchr(buf, 0, n) : NULL;
    if (nul) {
        app_fail("%s: byte %zu is a NUL byte: not text (text files must not contain NUL bytes)",
                 strcmp(path, "-") ? path : "standard input", (size_t)(nul - buf));
        free(buf);
        return NULL;
    }
    if (buf && len)
        *len = n;
    return buf;
}

/* ---------------------------------------------------------------- terminal */

typedef struct sink {
    FILE *f;   /* a stream, or */
    char *buf; /* a buffer of cap bytes, filled to n (always NUL-terminated) */
    size_t cap, n;
} sink;

static void put(sink *k, const char *s, size_t n)
{
    if (k->f) {
        fwrite(s, 1, n, k->f);
        return;
    }
    if (k->n + n >= k->cap)
        return; /* whole pieces only: an escape is never cut in half */
    memcpy(k->buf + k->n, s, n);
    k->n += n;
    k->buf[k->n] = 0;
}

static void put_hex(sink *k, unsigned char c)
{
    char e[5];
    snprintf(e, sizeof e, "\\x%02x", c);
    put(k, e, 4);
}

/* Code points a terminal acts on or that reorder what is shown: C1 controls (U+0080..U+009F), the
 * bidirectional embeddings and isolates (U+202A..U+202E, U+2066..U+2069), line and paragraph
 * separators (U+2028, U+2029). */
static bool unsafe_cp(const unsigned char *p, int k)
{
    if (k == 2)
        return p[0] == 0xC2 && p[1] < 0xA0;
    if (k == 3 && p[0] == 0xE2 && p[1] == 0x80)
        return p[2] >= 0xA8 && p[2] <= 0xAE;
    if (k == 3 && p[0] == 0xE2 && p[1] == 0x81)
        return p[2] >= 0xA6 && p[2] <= 0xA9;
    return false;
}

static void escape(sink *k, const char *s, size_t len, bool quoted)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        int n = app_utf8_char(s + i, len - i);
        if (c == '\n')
            put(k, "\\n", 2);
        else if (c == '\r')
            put(k, "\\r", 2);
        else if (c == '\t')
            put(k, quoted ? "\\t" : "\t", quoted ? 2 : 1);
        else if (quoted && (c == '\\' || c == '\'' || c == '"')) {
            char e[2] = { '\\', (char)c };
            put(k, e, 2);
        } else if (c < 0x20 || c == 0x7f || n == 0)
            put_hex(k, c);
        else if (unsafe_cp(p + i, n)) {
            for (int j = 0; j < n; j++)
                put_hex(k, p[i + (size_t)j]);
            i += (size_t)n;
            continue;
        } else {
            put(k, s + i, (size_t)n);
            i += (size_t)n;
            continue;
        }
        i++;
    }
}

void app_put_safe(FILE *f, const char *s, size_t len, bool quoted)
{
    sink k = { .f = f };
    escape(&k, s, len, quoted);
}

const char *app_safe(const char *s, char *buf, size_t cap)
{
    sink k = { .buf = buf, .cap = cap };
    if (cap)
        buf[0] = 0;
    escape(&k, s, strlen(s), false);
    return buf;
}

/* ---------------------------------------------------------------- JSON */

struct cJSON *app_json_str(const char *s, size_t len)
{
    /* each byte becomes at most the 3 bytes of U+FFFD */
    char small[256], *t = len < sizeof small / 3 ? small : malloc(len * 3 + 1);
    if (!t)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        int k = s[i] ? app_utf8_char(s + i, len - i) : 0;
        if (k) {
            memcpy(t + n, s + i, (size_t)k);
            n += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(t + n, "\xEF\xBF\xBD", 3);
            n += 3;
            i++;
        }
    }
    t[n] = 0;
    cJSON *j = cJSON_CreateString(t);
    if (t != small)
        free(t);
    return j;
}

/* ---------------------------------------------------------------- standard output */

int app_stdout_status(const char *cmd, int status)
{
    int e = fflush(stdout) ? errno : 0;
    if (e || ferror(stdout)) {
        clearerr(stdout); /* reported once */
        app_fail("%s: cannot write the output%s%s", cmd, e ? ": " : "", e ? strerror(e) : "");
        return 1;
    }
    return status;
}

bool app_write_file(const char *path, const void *data, size_t n, char *err, size_t errlen)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return false;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        return false;
    }
    bool ok = true;
    for (size_t at = 0; ok && at < n;) {
        ssize_t w = write(fd, (const char *)data + at, n - at);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        at += ok ? (size_t)w : 0;
    }
    mode_t um = umask(0); /* mkstemp makes it 0600: the usual 0666 less the umask */
    umask(um);
    ok = ok && fsync(fd) == 0 && fchmod(fd, 0666 & ~um) == 0;
    int saved = errno;
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp, path) != 0) {
        saved = errno;
        ok = false;
    }
    if (!ok) {
        snprintf(err, errlen, "%s: cannot write it: %s", path, strerror(saved ? saved : EIO));
        unlink(tmp);
    }
    free(tmp);
    return ok;
}
