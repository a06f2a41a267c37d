/*
 * fuzz_spec.c — libFuzzer harness for the sweep spec parser: cad_sweep_spec_load (sweep/spec.c
 * over engine/yamltree.c) on arbitrary bytes; when a spec loads, every assignment's value is
 * turned into config text as the planner does, so the typed spec's node pointers are walked.
 * The input sits alone in a private directory, so a `base:` naming a relative file finds only
 * the sweep file itself.
 * Not here: expanding the grid (sweep/plan.c: a fuzzed grid can legitimately be huge).
 */
#include "sweep/spec.h"
#include "tests/fuzz/fuzz_common.h"

static void touch_assign(const cad_sweep_assign *a) {
    if (!a->key || !a->value) FUZZ_FAIL("assignment without key or value");
    free(cad_sweep_value_text(a->value));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_input("sweep.yaml", data, size);
    cad_sweep_spec *s = NULL;
    cad_err e;
    cad_err_clear(&e);
    int rc = cad_sweep_spec_load(path, &s, &e);
    fuzz_check_err(rc, &e, "cad_sweep_spec_load");
    if (rc != CAD_OK) {
        if (s) FUZZ_FAIL("failed load left a spec behind");
        return 0;
    }
    if (!s) FUZZ_FAIL("load succeeded without a spec");
    for (int i = 0; i < s->n_set; i++) touch_assign(&s->set[i]);
    for (int i = 0; i < s->n_axes; i++) {
        if (s->axes[i].n_points <= 0) FUZZ_FAIL("axis '%s' has no points", s->axes[i].label);
        for (int p = 0; p < s->axes[i].n_points; p++)
            for (int k = 0; k < s->axes[i].points[p].n; k++) touch_assign(&s->axes[i].points[p].a[k]);
    }
    cad_sweep_spec_free(s);
    return 0;
}
