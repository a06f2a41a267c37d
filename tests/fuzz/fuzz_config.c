/*
 * fuzz_config.c — libFuzzer harness for the run-config YAML reader: cad_config_load_yaml
 * (engine/config.c over engine/yamltree.c) on arbitrary bytes, then, when the file loaded,
 * validation and writing the resolved config back out (the formatting of whatever strings
 * and numbers got in). Checks that a failure leaves a message.
 * Not here: environment variables and --set (not file input).
 */
#include "engine/config.h"
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("config.yaml", data, size);
    cad_config c;
    cad_err e;
    cad_err_clear(&e);
    if (cad_config_init(&c, &e) != CAD_OK) FUZZ_FAIL("defaults do not load: %s", e.msg);
    int rc = cad_config_load_yaml(&c, path, &e);
    fuzz_check_err(rc, &e, "cad_config_load_yaml");
    if (rc == CAD_OK) {
        cad_err_clear(&e);
        fuzz_check_err(cad_config_validate(&c, &e), &e, "cad_config_validate");
        FILE *devnull = fopen("/dev/null", "w");
        if (!devnull) FUZZ_FAIL("cannot open /dev/null");
        cad_config_write_yaml(&c, devnull);
        fclose(devnull);
    }
    cad_config_free(&c);
    return 0;
}
