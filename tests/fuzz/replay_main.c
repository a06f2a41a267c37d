/*
 * replay_main.c — runs a fuzz harness (tests/fuzz/fuzz_<target>.c) over the files named on the
 * command line, without libFuzzer: `make test` links it with each harness under gcc's
 * ASan+UBSan (build/asan/fuzz/replay_<target>) so every seed and every saved crash input is a
 * regression test. A crash or sanitizer report is the process failing; a clean pass prints one
 * line per file and exits 0.
 * Not here: mutation, coverage, corpus handling (that is `make fuzz`).
 */
#include "tests/fuzz/fuzz_common.h"

#include <errno.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...  (each file is one fuzz input)\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "%s: cannot open: %s\n", argv[i], strerror(errno));
            return 1;
        }
        size_t cap = 1 << 16, len = 0;
        uint8_t *buf = malloc(cap);
        for (;;) {
            if (!buf) { fprintf(stderr, "out of memory\n"); return 1; }
            len += fread(buf + len, 1, cap - len, f);
            if (len < cap) break;
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) free(buf);
            buf = nb;
        }
        int err = ferror(f);
        fclose(f);
        if (err) { fprintf(stderr, "%s: read error\n", argv[i]); free(buf); return 1; }
        /* An exactly-sized copy, so ASan sees reads past the input's end as libFuzzer would. */
        uint8_t *in = malloc(len ? len : 1);
        if (!in) { fprintf(stderr, "out of memory\n"); return 1; }
        memcpy(in, buf, len);
        free(buf);
        LLVMFuzzerTestOneInput(in, len);
        free(in);
        printf("replayed %s (%zu bytes)\n", argv[i], len);
    }
    return 0;
}
