/*
 * test_runner_engines.c — launch recipe -> exec description (runner/engines.h): "caddie"
 * becomes this binary, recipe env overrides the runner's environment, the runner's device
 * variables override both, CPU slots get OMP_NUM_THREADS unless the recipe sets it (and a
 * run holding N of them CADDIE_DEVICES=N), each
 * engine captures into its own file, values stay separate argv entries. A remote job (Slurm)
 * gets only what the run adds, and its devices from the scheduler; its job script quotes every
 * value so that the shell interprets none of it.
 */
#include "check.h"
#include "runner/engines.h"
#include "runner/executor.h"

#include <stdlib.h>
#include <string.h>

static const char *env_get(char **envp, const char *name) {
    size_t k = strlen(name);
    const char *found = NULL;
    for (char **p = envp; *p; p++)
        if (strncmp(*p, name, k) == 0 && (*p)[k] == '=') {
            CHECK_MSG(found == NULL, "%s set twice", name);
            found = *p + k + 1;
        }
    return found;
}

static void test_command_engine_gpu(void) {
    setenv("CADDIE_TEST_KEEP", "runner", 1);
    setenv("CUDA_VISIBLE_DEVICES", "7", 1); /* the runner's own: must not leak */
    char *argv[] = {"python3", "train_gpt.py", "; rm -rf ~", NULL};
    char *env[] = {"QK_GAIN_INIT=5.25", "CADDIE_TEST_KEEP=recipe", "CUDA_VISIBLE_DEVICES=9", NULL};
    cad_launch l = {3, argv, 3, env, "/tmp"};
    cad_engine_slot s = {"2,3", 0, "sw-1234", "/runs/sw-1234", 2, 0, 0, 0};
    cad_engine_exec x;
    cad_err e = {0};
    CHECK_EQ_INT(cad_engine_exec_build("command", &l, &s, "/bin/caddie", &x, &e), CAD_OK);
    CHECK_STR(x.argv[0], "python3");
    CHECK_STR(x.argv[2], "; rm -rf ~");
    CHECK(x.argv[3] == NULL);
    CHECK_STR(env_get(x.envp, "QK_GAIN_INIT"), "5.25");
    CHECK_STR(env_get(x.envp, "CADDIE_TEST_KEEP"), "recipe");
    CHECK_STR(env_get(x.envp, "CUDA_VISIBLE_DEVICES"), "2,3");
    CHECK_STR(env_get(x.envp, "CADDIE_DEVICES"), "2");
    CHECK_STR(env_get(x.envp, "CADDIE_RUN_ID"), "sw-1234");
    CHECK_STR(env_get(x.envp, "CADDIE_RUN_DIR"), "/runs/sw-1234");
    CHECK_STR(env_get(x.envp, "CADDIE_ATTEMPT"), "2");
    /* a GPU slot leaves OMP_NUM_THREADS as the runner has it */
    const char *omp = getenv("OMP_NUM_THREADS"), *got = env_get(x.envp, "OMP_NUM_THREADS");
    CHECK(omp ? got && strcmp(got, omp) == 0 : got == NULL);
    CHECK_STR(x.capture_path, "/runs/sw-1234/log.txt");
    CHECK_EQ_INT(x.parse_log, 1);
    CHECK_STR(x.cwd, "/tmp");
    cad_engine_exec_free(&x);
}

static void test_caddie_engine_cpu_slot(void) {
    unsetenv("OMP_NUM_THREADS");
    char *argv[] = {"caddie", "train", "/runs/r/config.yaml", NULL};
    cad_launch l = {3, argv, 0, NULL, NULL};
    cad_engine_slot s = {NULL, 3, "r", "/runs/r", 1, 0, 0, 0};
    cad_engine_exec x;
    cad_err e = {0};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l, &s, "/opt/caddie/bin/caddie", &x, &e), CAD_OK);
    CHECK_STR(x.argv[0], "/opt/caddie/bin/caddie");
    CHECK_STR(x.argv[1], "train");
    CHECK_STR(env_get(x.envp, "CUDA_VISIBLE_DEVICES"), "");
    CHECK_STR(env_get(x.envp, "OMP_NUM_THREADS"), "3");
    CHECK_STR(x.capture_path, "/runs/r/console.txt");
    CHECK_EQ_INT(x.parse_log, 0);
    CHECK(x.cwd == NULL);
    cad_engine_exec_free(&x);
    /* a recipe that sets OMP_NUM_THREADS keeps it */
    char *env[] = {"OMP_NUM_THREADS=1", NULL};
    cad_launch l2 = {3, argv, 1, env, NULL};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l2, &s, "/c", &x, &e), CAD_OK);
    CHECK_STR(env_get(x.envp, "OMP_NUM_THREADS"), "1");
    cad_engine_exec_free(&x);
}

/* A `devices: 2` run on the CPU holds two slots (launch starts a rank on each): CADDIE_DEVICES
 * counts them, as it counts GPUs; OMP_NUM_THREADS stays the threads of one slot (per rank). */
static void test_cpu_slots_counted(void) {
    unsetenv("OMP_NUM_THREADS");
    char *argv[] = {"caddie", "launch", "--nproc", "2", "train", "/runs/r/config.yaml", NULL};
    cad_launch l = {6, argv, 0, NULL, NULL};
    cad_engine_slot s = {NULL, 3, "r", "/runs/r", 1, 0, 0, 2};
    cad_engine_exec x;
    cad_err e = {0};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l, &s, "/c", &x, &e), CAD_OK);
    CHECK_STR(env_get(x.envp, "CADDIE_DEVICES"), "2");
    CHECK_STR(env_get(x.envp, "CUDA_VISIBLE_DEVICES"), "");
    CHECK_STR(env_get(x.envp, "OMP_NUM_THREADS"), "3");
    cad_engine_exec_free(&x);
    /* a Slurm CPU job (no GRES): the same count, only what the run adds */
    cad_engine_slot r = {NULL, 1, "r", "/runs/r", 1, 1, 0, 2};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l, &r, "/c", &x, &e), CAD_OK);
    CHECK_STR(env_get(x.envp, "CADDIE_DEVICES"), "2");
    CHECK_STR(env_get(x.envp, "OMP_NUM_THREADS"), "1");
    cad_engine_exec_free(&x);
    /* a slot that does not say (0) is one slot */
    cad_engine_slot one = {NULL, 3, "r", "/runs/r", 1, 0, 0, 0};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l, &one, "/c", &x, &e), CAD_OK);
    CHECK_STR(env_get(x.envp, "CADDIE_DEVICES"), "1");
    cad_engine_exec_free(&x);
}

static void test_bad_recipes(void) {
    char *argv[] = {"x", NULL};
    cad_launch l = {1, argv, 0, NULL, NULL};
    cad_engine_slot s = {"0", 0, "r", "/runs/r", 1, 0, 0, 0};
    cad_engine_exec x;
    cad_err e = {0};
    CHECK_EQ_INT(cad_engine_exec_build("torch", &l, &s, "/c", &x, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "unknown engine 'torch'") != NULL);
    cad_launch empty = {0, NULL, 0, NULL, NULL};
    CHECK_EQ_INT(cad_engine_exec_build("command", &empty, &s, "/c", &x, &e), CAD_ECONFIG);
    CHECK(strstr(e.msg, "empty argv") != NULL);
}

static void test_self_exe(void) {
    char buf[4096];
    cad_err e = {0};
    CHECK_EQ_INT(cad_engine_self_exe(buf, sizeof buf, &e), CAD_OK);
    CHECK(buf[0] == '/');
    CHECK(strstr(buf, "test_runner_engines") != NULL);
}

/* A Slurm job: the submitter's environment comes from sbatch, so only the run's additions are
 * listed; with GRES the devices (CUDA_VISIBLE_DEVICES) are Slurm's, the count is the run's. */
static void test_remote_job_environment(void) {
    setenv("CADDIE_TEST_RUNNER_ONLY", "x", 1);
    setenv("CUDA_VISIBLE_DEVICES", "7", 1);
    char *argv[] = {"caddie", "launch", "--nproc", "4", "train", "c.yaml", NULL};
    char *env[] = {"QK=1", NULL};
    cad_launch l = {6, argv, 1, env, NULL};
    cad_engine_slot s = {NULL, 0, "r", "/runs/r", 3, 1, 4, 0};
    cad_engine_exec x;
    cad_err e = {0};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l, &s, "/shared/caddie", &x, &e), CAD_OK);
    CHECK(env_get(x.envp, "CADDIE_TEST_RUNNER_ONLY") == NULL);
    CHECK(env_get(x.envp, "CUDA_VISIBLE_DEVICES") == NULL);
    CHECK_STR(env_get(x.envp, "QK"), "1");
    CHECK_STR(env_get(x.envp, "CADDIE_DEVICES"), "4");
    CHECK_STR(env_get(x.envp, "CADDIE_ATTEMPT"), "3");
    CHECK_STR(x.argv[0], "/shared/caddie");
    int n = 0;
    for (char **p = x.envp; *p; p++) n++;
    CHECK_EQ_INT(n, 5); /* QK and the four CADDIE_ variables, nothing of the runner's */
    cad_engine_exec_free(&x);
    /* without GRES: a CPU job, CUDA_VISIBLE_DEVICES empty and the threads per device */
    cad_engine_slot c = {NULL, 2, "r", "/runs/r", 1, 1, 0, 0};
    CHECK_EQ_INT(cad_engine_exec_build("caddie", &l, &c, "/shared/caddie", &x, &e), CAD_OK);
    CHECK_STR(env_get(x.envp, "CUDA_VISIBLE_DEVICES"), "");
    CHECK_STR(env_get(x.envp, "OMP_NUM_THREADS"), "2");
    cad_engine_exec_free(&x);
}

/* Job scripts quote every value: single quotes, each ' as '\'' (nothing is interpreted). */
static void test_shell_quote(void) {
    static const char *in[] = {"plain", "", "it's", "$(touch x); `y` \\ \"z\"", "'", NULL};
    static const char *want[] = {"'plain'", "''", "'it'\\''s'", "'$(touch x); `y` \\ \"z\"'",
                                 "''\\'''", NULL};
    for (int i = 0; in[i]; i++) {
        char *q = cad_shell_quote(in[i]);
        CHECK_STR(q, want[i]);
        free(q);
    }
}

int main(void) {
    RUN(test_command_engine_gpu);
    RUN(test_remote_job_environment);
    RUN(test_shell_quote);
    RUN(test_caddie_engine_cpu_slot);
    RUN(test_cpu_slots_counted);
    RUN(test_bad_recipes);
    RUN(test_self_exe);
    return check_report();
}
