/*
 * test_runner_proc.c — process groups and identity (runner/proc.h) and the line tail
 * (runner/tail.h): a group kill reaches grandchildren, identity survives only while the
 * same process lives, a group of zombies is not alive, exec failures are named, partial
 * lines wait for their newline and a truncated file is read again from the start.
 */
#include "test_util.h"
#include "runner/proc.h"
#include "runner/tail.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_boot_id_and_self_identity(void) {
    cad_proc_identity id = {0};
    cad_err e = {0};
    CHECK_EQ_INT(cad_proc_boot_id(id.boot_id, &e), CAD_OK);
    CHECK(strlen(id.boot_id) >= 32);
    id.pid = getpid();
    CHECK_EQ_INT(cad_proc_start_ticks(id.pid, &id.start_ticks, &e), CAD_OK);
    CHECK(cad_proc_identity_alive(&id));
    cad_proc_identity other = id;
    other.start_ticks += 1; /* same pid, different start: a reused pid */
    CHECK(!cad_proc_identity_alive(&other));
    other = id;
    other.boot_id[0] = other.boot_id[0] == 'a' ? 'b' : 'a'; /* another boot */
    CHECK(!cad_proc_identity_alive(&other));
}

static void test_group_kill_reaches_grandchild(void) {
    char out[4096], pidfile[4096];
    snprintf(out, sizeof out, "%s/group.out", check_tmpdir());
    snprintf(pidfile, sizeof pidfile, "%s/grandchild.pid", check_tmpdir());
    char script[8192];
    /* the leader ignores TERM and so does its grandchild (inherited SIG_IGN) */
    snprintf(script, sizeof script,
             "trap '' TERM; sleep 300 & echo $! > '%s'; echo started; wait", pidfile);
    char *argv[] = {"bash", "-c", script, NULL};
    cad_proc_spawn_opts o = {argv, environ, NULL, out, 0};
    pid_t pid = 0;
    cad_err e = {0};
    /* like the runner: orphaned grandchildren come to us to be reaped (a container's PID 1
     * may never reap them, and a zombie still answers kill(pid, 0)) */
    CHECK_EQ_INT(cad_proc_become_subreaper(&e), CAD_OK);
    CHECK_EQ_INT(cad_proc_spawn_group(&o, &pid, &e), CAD_OK);
    CHECK_EQ_INT(getpgid(pid), pid); /* its own process group */
    int gpid = 0;
    for (int i = 0; i < 200 && gpid == 0; i++) {
        FILE *f = fopen(pidfile, "r");
        if (f) {
            if (fscanf(f, "%d", &gpid) != 1) gpid = 0;
            fclose(f);
        }
        if (!gpid) sleep_ms(10);
    }
    CHECK(gpid > 0);
    CHECK_EQ_INT(getpgid(gpid), pid);
    cad_proc_group_signal(pid, SIGTERM);
    sleep_ms(100);
    CHECK(cad_proc_group_alive(pid)); /* TERM ignored */
    cad_proc_group_signal(pid, SIGKILL);
    int st = 0;
    CHECK_EQ_INT(waitpid(pid, &st, 0), pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* the grandchild was reparented to us, killed, and reaped here */
    for (int i = 0; i < 200 && kill(gpid, 0) == 0; i++) {
        waitpid(-1, NULL, WNOHANG);
        sleep_ms(10);
    }
    CHECK_MSG(kill(gpid, 0) != 0, "grandchild %d survived the group KILL", gpid);
}

static void test_exec_failure_is_named(void) {
    char out[4096];
    snprintf(out, sizeof out, "%s/nope.out", check_tmpdir());
    char *argv[] = {"caddie-no-such-engine-binary", NULL};
    cad_proc_spawn_opts o = {argv, environ, NULL, out, 0};
    pid_t pid = 0;
    cad_err e = {0};
    CHECK_EQ_INT(cad_proc_spawn_group(&o, &pid, &e), CAD_ECHILD);
    CHECK(strstr(e.msg, "caddie-no-such-engine-binary") != NULL);
    CHECK(strstr(e.msg, "No such file") != NULL);
}

static void test_identity_gone_after_exit(void) {
    char out[4096];
    snprintf(out, sizeof out, "%s/true.out", check_tmpdir());
    char *argv[] = {"sleep", "0.2", NULL};
    cad_proc_spawn_opts o = {argv, environ, NULL, out, 0};
    pid_t pid = 0;
    cad_err e = {0};
    CHECK_EQ_INT(cad_proc_spawn_group(&o, &pid, &e), CAD_OK);
    cad_proc_identity id = {.pid = pid};
    CHECK_EQ_INT(cad_proc_boot_id(id.boot_id, &e), CAD_OK);
    CHECK_EQ_INT(cad_proc_start_ticks(pid, &id.start_ticks, &e), CAD_OK);
    CHECK(cad_proc_identity_alive(&id));
    sleep_ms(400);
    CHECK(!cad_proc_identity_alive(&id)); /* a zombie is gone */
    CHECK_EQ_INT(kill(-pid, 0), 0);    /* the zombie is still there ... */
    CHECK(!cad_proc_group_alive(pid));     /* ... but a group of zombies runs nothing */
    waitpid(pid, NULL, 0);
    CHECK(!cad_proc_group_alive(pid));
    CHECK(!cad_proc_identity_alive(&id));
}

typedef struct lines {
    int n;
    char got[8][64];
} lines;

static int collect(void *ctx, const char *line, size_t len) {
    lines *l = ctx;
    if (l->n < 8) snprintf(l->got[l->n], sizeof l->got[0], "%.*s", (int)len, line);
    l->n++;
    return 0;
}

static void test_tail_partial_and_truncate(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/t.jsonl", check_tmpdir());
    cad_tail_file t;
    CHECK_EQ_INT(cad_tail_init(&t, path), 0);
    lines l = {0};
    int restarted = 0;
    CHECK_EQ_INT(cad_tail_read(&t, collect, &l, 0, &restarted), 0); /* missing file */
    FILE *f = fopen(path, "w");
    fputs("a\nb\npart", f);
    fflush(f);
    CHECK_EQ_INT(cad_tail_read(&t, collect, &l, 0, &restarted), 2);
    CHECK_STR(l.got[1], "b");
    fputs("ial\n", f);
    fflush(f);
    CHECK_EQ_INT(cad_tail_read(&t, collect, &l, 0, &restarted), 1);
    CHECK_STR(l.got[2], "partial");
    CHECK_EQ_INT(restarted, 0);
    fclose(f);
    check_write_file(path, "x\n"); /* truncated: the engine restarted from scratch */
    CHECK_EQ_INT(cad_tail_read(&t, collect, &l, 0, &restarted), 1);
    CHECK_EQ_INT(restarted, 1);
    CHECK_STR(l.got[3], "x");
    f = fopen(path, "a");
    fputs("tail-without-newline", f);
    fclose(f);
    CHECK_EQ_INT(cad_tail_read(&t, collect, &l, 0, &restarted), 0);
    CHECK_EQ_INT(cad_tail_flush_partial(&t, collect, &l), 1);
    CHECK_STR(l.got[4], "tail-without-newline");
    cad_tail_free(&t);
    char *last = cad_tail_last_lines(path, 1, 4096);
    CHECK_STR(last, "tail-without-newline");
    free(last);
    check_write_file(path, "1\n2\n3\n4\n\n");
    last = cad_tail_last_lines(path, 2, 4096);
    CHECK_STR(last, "3\n4");
    free(last);
}

typedef struct sizes {
    int n;
    size_t len[4];
    int all_cr;       /* the first line is '\r' only */
    char last[64];
} sizes;

static int collect_sizes(void *ctx, const char *line, size_t len) {
    sizes *z = ctx;
    if (z->n == 0) {
        z->all_cr = 1;
        for (size_t i = 0; i < len; i++) z->all_cr &= line[i] == '\r';
    }
    if (z->n < 4) z->len[z->n] = len;
    snprintf(z->last, sizeof z->last, "%.*s", (int)(len < 63 ? len : 63), line);
    z->n++;
    return 0;
}

/* An engine printing megabytes without a newline ('\r' progress bars, one huge line): the
 * tail keeps at most CAD_TAIL_LINE_MAX of it, hands it out cut at its newline, and the next
 * line is whole. Before, the buffer grew with the line (and was rescanned on every read). */
static void test_tail_overlong_line_is_bounded(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/cr.log", check_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    size_t total = 3 * (size_t)CAD_TAIL_LINE_MAX + 12345;
    for (size_t i = 0; i < total; i++) fputc('\r', f);
    fflush(f);
    cad_tail_file t;
    CHECK_EQ_INT(cad_tail_init(&t, path), 0);
    sizes z = {0};
    int restarted = 0;
    for (int k = 0; k < 64 && t.offset < (long long)total; k++)
        CHECK_EQ_INT(cad_tail_read(&t, collect_sizes, &z, 1u << 20, &restarted), 0);
    CHECK_EQ_INT(t.offset, (long long)total);
    CHECK(t.cap <= 2 * (size_t)CAD_TAIL_LINE_MAX);
    fputs("\nstep:1/5 train_loss:3.5\ntail", f);
    fclose(f);
    CHECK_EQ_INT(cad_tail_read(&t, collect_sizes, &z, 0, &restarted), 2);
    CHECK_EQ_INT(z.n, 2);
    CHECK_EQ_INT(z.len[0], CAD_TAIL_LINE_MAX);
    CHECK(z.all_cr);
    CHECK_STR(z.last, "step:1/5 train_loss:3.5");
    CHECK_EQ_INT(cad_tail_flush_partial(&t, collect_sizes, &z), 1);
    CHECK_STR(z.last, "tail");
    cad_tail_free(&t);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    RUN(test_tail_overlong_line_is_bounded);
    RUN(test_boot_id_and_self_identity);
    RUN(test_group_kill_reaches_grandchild);
    RUN(test_exec_failure_is_named);
    RUN(test_identity_gone_after_exit);
    RUN(test_tail_partial_and_truncate);
    return check_report();
}
