/* test_serve_nginx.c: two `vkllm serve` replicas behind nginx on loopback, as docs/deploy.md sets them
 * up: nginx routes by consistent hashing on the X-Conversation-Id header, so every turn of a
 * conversation reaches the same replica and finds its earlier turns in that replica's prefix cache.
 * Six conversations of three turns each (each turn's prompt extends the previous one; more conversations
 * while one replica has none) go through nginx;
 * after each turn, the replicas' /metrics say which one served it: all turns of a conversation must be
 * served by one replica, both replicas must serve some conversations, the second and third turns must
 * report cached prompt tokens on their replica, and the greedy answers through nginx must equal what a
 * replica gives directly. Skipped (status 77) when nginx or curl is not installed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "serve_util.h"

#define N_CONV 6
#define N_TURNS 3

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* a value of /metrics (the first sample of that name), -1 if absent */
static double metric_of(int port, const char *name)
{
    char cmd[256], *out = malloc(1 << 16);
    snprintf(cmd, sizeof cmd, "curl -s --max-time 20 http://127.0.0.1:%d/metrics", port);
    double v = -1;
    if (out && tu_run(cmd, out, 1 << 16) == 0) {
        size_t nl = strlen(name);
        for (char *p = out; (p = strstr(p, name)); p += nl)
            if ((p == out || p[-1] == '\n') && (p[nl] == ' ' || p[nl] == '{')) {
                char *sp = strchr(p, ' ');
                v = sp ? atof(sp + 1) : -1;
                break;
            }
    }
    free(out);
    return v;
}

/* a greedy completion of prompt through port (with the conversation header); its text, or NULL */
static char *complete(int port, const char *conv, const char *prompt)
{
    char body_path[128], cmd[512];
    snprintf(body_path, sizeof body_path, "%s/body.json", dir);
    char body[2048];
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"temperature\":0,\"max_tokens\":12}", prompt);
    if (!write_file(body_path, body))
        return NULL;
    snprintf(cmd, sizeof cmd,
             "curl -s --max-time 60 -H 'Content-Type: application/json' -H 'X-Conversation-Id: %s' --data-binary @%s "
             "http://127.0.0.1:%d/v1/completions",
             conv, body_path, port);
    char *out = malloc(1 << 16);
    if (!out || tu_run(cmd, out, 1 << 16) != 0) {
        free(out);
        return NULL;
    }
    char *t = strstr(out, "\"text\":\"");
    if (!t) {
        fprintf(stderr, "test_serve_nginx: no text in %s\n", out);
        free(out);
        return NULL;
    }
    t += 8;
    char *e = t;
    while (*e && !(*e == '"' && e[-1] != '\\'))
        e++;
    char *text = strndup(t, (size_t)(e - t));
    free(out);
    return text;
}

int main(void)
{
    (void)make_goldens; /* serve_util.h's, not needed here */
    char probe[64];
    if (tu_run("command -v nginx >/dev/null 2>&1 && command -v curl >/dev/null 2>&1 && echo yes", probe, sizeof probe) != 0 ||
        strncmp(probe, "yes", 3)) {
        printf("test_serve_nginx: SKIPPED: nginx or curl is not installed\n");
        return 77;
    }
    bin = getenv("VKLLM_BIN");
    if (!bin) {
        fprintf(stderr, "test_serve_nginx: VKLLM_BIN is not set to the vkllm binary\n");
        return 1;
    }
    snprintf(model, sizeof model, "%s", tu_model_path("gguf/stories260K.gguf"));
    snprintf(dir, sizeof dir, "/tmp/vkllm-nginx-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    server rep[2];
    const char *args[] = { "--parallel", "2", "--ctx-size", "256", NULL };
    bool up = server_start(&rep[0], "replica0", args) && server_start(&rep[1], "replica1", args);
    CHECK(up, "the replicas did not start");
    int port = free_port();
    char conf[4096], path[128], cmd[512], out[4096];
    snprintf(conf, sizeof conf,
             "%s"
             "worker_processes 1;\ndaemon off;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
             "events { worker_connections 128; }\n"
             "http {\n  access_log off;\n"
             "  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n  fastcgi_temp_path %s/fcgi;\n"
             "  uwsgi_temp_path %s/uwsgi;\n  scgi_temp_path %s/scgi;\n"
             "  upstream vkllm {\n    hash $http_x_conversation_id consistent;\n"
             "    server 127.0.0.1:%d;\n    server 127.0.0.1:%d;\n  }\n"
             "  server {\n    listen 127.0.0.1:%d;\n    location / {\n      proxy_pass http://vkllm;\n"
             "      proxy_http_version 1.1;\n      proxy_buffering off;\n      proxy_read_timeout 600s;\n    }\n  }\n}\n",
             geteuid() == 0 ? "user root;\n" : "", dir, dir, dir, dir, dir, dir, dir, rep[0].port, rep[1].port, port);
    snprintf(path, sizeof path, "%s/nginx.conf", dir);
    pid_t ngx = -1;
    if (up && port > 0 && write_file(path, conf)) {
        ngx = fork();
        if (ngx == 0) {
            int nul = open("/dev/null", O_WRONLY);
            dup2(nul, 1);
            dup2(nul, 2);
            execlp("nginx", "nginx", "-p", dir, "-c", path, (char *)NULL);
            _exit(127);
        }
        /* nginx is up when its port answers */
        snprintf(cmd, sizeof cmd, "curl -s -o /dev/null -w '%%{http_code}' --max-time 2 -H 'X-Conversation-Id: x' "
                                  "http://127.0.0.1:%d/health", port);
        double end = now_ms() + 20000;
        while (now_ms() < end && !(tu_run(cmd, out, sizeof out) == 0 && !strncmp(out, "200", 3)))
            usleep(100000);
        CHECK(!strncmp(out, "200", 3), "nginx does not answer on port %d", port);
    }
    int served[2] = { 0, 0 };
    if (ngx > 0 && !strncmp(out, "200", 3)) {
        /* six conversations at least, and more until both replicas have some (the ring of a consistent
         * hash over two random ports may well put six names on one replica) */
        for (int c = 0; c < 30 && (c < N_CONV || !served[0] || !served[1]); c++) {
            char conv[32], prompt[1024] = "Once upon a time, there was a little girl";
            snprintf(conv, sizeof conv, "conversation-%d", c * 7 + 3);
            int where = -1;
            for (int t = 0; t < N_TURNS; t++) {
                double before[2], cached[2];
                for (int i = 0; i < 2; i++) {
                    before[i] = metric_of(rep[i].port, "vkllm_prompt_tokens_total");
                    cached[i] = metric_of(rep[i].port, "vkllm_prompt_tokens_cached_total");
                }
                char *text = complete(port, conv, prompt);
                CHECK(text != NULL, "conversation %d turn %d: no answer through nginx", c, t);
                int hit = -1;
                for (int i = 0; i < 2; i++)
                    if (metric_of(rep[i].port, "vkllm_prompt_tokens_total") > before[i])
                        hit = i;
                CHECK(hit >= 0, "conversation %d turn %d: no replica counted it", c, t);
                if (t == 0)
                    where = hit;
                CHECK(hit == where, "conversation %d: turn %d went to replica %d, turn 0 to %d", c, t, hit, where);
                if (t > 0 && hit >= 0)
                    CHECK(metric_of(rep[hit].port, "vkllm_prompt_tokens_cached_total") > cached[hit],
                          "conversation %d turn %d: no cached prompt tokens on its replica", c, t);
                if (text && hit >= 0 && t == N_TURNS - 1) { /* the replica's own answer is the same */
                    char *direct = complete(rep[hit].port, conv, prompt);
                    CHECK(direct && !strcmp(direct, text), "through nginx '%s', directly '%s'", text, direct ? direct : "");
                    free(direct);
                }
                /* the next turn: this prompt, its answer and a new line of the user's */
                if (text && strlen(prompt) + strlen(text) + 40 < sizeof prompt) {
                    strcat(prompt, text);
                    strcat(prompt, " Then the dog said hello.");
                }
                free(text);
            }
            if (where >= 0)
                served[where]++;
        }
        printf("test_serve_nginx: %d conversations on replica 0, %d on replica 1, every turn on its conversation's "
               "replica\n",
               served[0], served[1]);
        CHECK(served[0] > 0 && served[1] > 0, "one replica served every conversation (%d, %d)", served[0], served[1]);
    }
    if (ngx > 0) {
        kill(ngx, SIGQUIT);
        waitpid(ngx, NULL, 0);
    }
    for (int i = 0; i < 2; i++)
        if (rep[i].pid > 0)
            CHECK(server_stop(&rep[i]) == 0, "replica %d did not stop cleanly", i);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, out, sizeof out);
    return tu_finish("test_serve_nginx");
}
