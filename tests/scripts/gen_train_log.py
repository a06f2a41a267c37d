"""gen_train_log.py N OUT: a train_gpt.py-style log whose step lines give N metric rows
(train_loss and step_ms per line) and a final score line; the import-log section of
`make bench` (tests/bench.sh) times caddie import-log on it."""
import sys

n, out = int(sys.argv[1]), sys.argv[2]
steps = n // 2
with open(out, "w") as f:
    f.write("seed:1337\n")
    for s in range(1, steps + 1):
        f.write("step:%d/%d train_loss:%.4f train_time:%dms step_avg:%.2fms\n"
                % (s, steps, 4.0 - s * 1e-6, s * 50, 50.0))
    f.write("final_int8_zlib_roundtrip_exact val_loss:2.07000000 val_bpb:1.22436570\n")
