#!/usr/bin/env bash
# t0430 — a sweep's prepare: section: tokenizers and shards built from raw text by the runner
# as queue items of engine prepare, into the content-addressed cache prep/<sha>/, before the
# runs that need them; a second sweep with the same corpus and vocab builds nothing; a failed
# build fails its dependants with the reason; a corpus edited after `sweep add` is refused; a
# killed build's temp dir is never mistaken for an entry; bad prepare sections are
# file:line:col errors.
. "$CADDIE_SRC/tests/cli/lib.sh"
. "$CADDIE_SRC/tests/cli/runner_lib.sh"

cp "$CADDIE_SRC/data/sample/fineweb_sample.jsonl" corpus.jsonl
# a micro model (t0406's): the tokenizer, shards and vocab_size come from prepare and the grid
micro_config micro.yaml data_path= tokenizer_path= vocab_size= iterations=4 warmdown_iters=2 val_loss_every=0
cat >vp.yaml <<EOF
name: vp
base: micro.yaml
prepare:
  corpus: corpus.jsonl
  val_docs: 60
  tokenizers: [{vocab: 384}, {vocab: 512}]
grid:
  vocab_size: [384, 512]
timeout: 5m
EOF
prep_id() { q "SELECT run_id FROM runs WHERE engine = 'prepare' AND json_extract(config, '\$.vocab') = $1"; }  # VOCAB
n_engine() { q "SELECT count(*) FROM runs WHERE engine = '$1' AND status LIKE '$2'"; }     # ENGINE STATUS
cfg_of() { q "SELECT json_extract(config, '\$.$2') FROM runs WHERE run_id = '$1'"; }      # RUN KEY
started_after() { q "SELECT r.started_at >= p.ended_at FROM runs r, runs p WHERE r.run_id = '$1' AND p.run_id = '$2'"; }
n_deps_of() { q "SELECT count(*) FROM run_deps d JOIN run_summary r ON r.run_id = d.run_id WHERE r.sweep = '$1'"; }
sum_attempts() { q "SELECT sum(attempts) FROM runs WHERE engine = '$1'"; }   # ENGINE
sweep_run() { q "SELECT run_id FROM run_summary WHERE sweep = '$1' AND engine = '$2'"; }  # SWEEP ENGINE

test_expect_success 'plan lists one build per tokenizer, beside the runs, and creates nothing' '
    caddie sweep plan vp.yaml --db none.db >out &&
    test $(grep -c "^queue " out) -eq 2 &&
    test_grep "^build +prep-[0-9a-f]{12} +prepare vocab=384 -> .*/prep/[0-9a-f]{64}$" out &&
    test_grep "^build +prep-[0-9a-f]{12} +prepare vocab=512 -> " out &&
    ! test -e none.db && ! test -e prep
'
test_expect_success 'the runner builds each entry first, then trains each vocab on its own' '
    caddie sweep add vp.yaml >add.out &&
    test_grep "prepare vocab=384 \\(runs wait for it\\)" add.out &&
    test "$(q "SELECT count(*) FROM run_deps")" = 2 &&
    run_fast --cpu-slots 1 >run.out 2>&1 &&
    test "$(n_engine prepare done)" = 2 &&
    test "$(n_sweep vp done)" = 4 &&
    for v in 384 512; do
        id=$(prep_id $v) && dir=$(cfg_of "$id" dir) &&
        test -f "$dir/prep.json" && test -f "$dir/tokenizer.model" && test -f "$dir/data/fineweb_val_000000.bin" &&
        test_grep "\"vocab\":$v,\"pieces\":$v," "$dir/prep.json" &&
        run=$(cfg_num_col vocab_size $v run_id) &&
        test "$(cfg_of "$run" tokenizer_path)" = "$dir/tokenizer.model" &&
        test "$(cfg_of "$run" data_path)" = "$dir/data" &&
        test "$(started_after "$run" "$id")" = 1 || exit 1
    done &&
    test -z "$(ls prep | grep tmp)"
'
test_expect_success 'a prepare run has its own log (caddie logs) and status (caddie ls); show lists needs' '
    id=$(prep_id 384) &&
    caddie logs "$id" >log.out && test_grep "^build: vocab 384, val_docs 60" log.out &&
    caddie ls >ls.out && test_grep "^$id +done .*prepare vocab=384$" ls.out &&
    caddie show "$(cfg_num_col vocab_size 384 run_id)" >show.out &&
    test_grep "^needs +$id \\(done\\)$" show.out
'
test_expect_success 'caddie db rebuild restores each run'"'"'s prerequisite from the configs' '
    q "SELECT run_id, needs FROM run_deps ORDER BY 1" >deps.before && test -s deps.before &&
    caddie db rebuild --db rebuilt.db --runs-dir runs >/dev/null &&
    sqlite3 rebuilt.db "SELECT run_id, needs FROM run_deps ORDER BY 1" >deps.after &&
    test_cmp deps.before deps.after
'
cat >vp2.yaml <<EOF
name: vp2
base: micro.yaml
prepare: {corpus: corpus.jsonl, val_docs: 60, tokenizers: [{vocab: 512}]}
set: {vocab_size: 512}
grid:
  qk_gain_init: [2.0, 3.0]
timeout: 5m
EOF
test_expect_success 'a second sweep with the same corpus and vocab reuses the entry: no build' '
    caddie sweep plan vp2.yaml >plan.out &&
    test_grep "^cached +prep-[0-9a-f]{12} +prepare vocab=512 -> " plan.out &&
    caddie sweep add vp2.yaml >add.out && test_grep "cached, nothing to build" add.out &&
    run_fast --cpu-slots 1 >run2.out 2>&1 &&
    test "$(n_sweep vp2 done)" = 2 &&
    test "$(n_engine prepare %)" = 2 &&
    test "$(sum_attempts prepare)" = 2 &&
    ! grep -q "start   prep-" run2.out &&
    test "$(n_deps_of vp2)" = 0
'
cat >vbad.yaml <<EOF
name: vbad
base: micro.yaml
prepare: {corpus: corpus.jsonl, val_docs: 100000, tokenizers: [{vocab: 512}]}
grid:
  vocab_size: [512]
timeout: 5m
EOF
test_expect_success 'a failed build fails its dependants with "prepare <id> failed: <reason>"' '
    caddie sweep add vbad.yaml >/dev/null &&
    run_fast --cpu-slots 1 >run3.out 2>&1 &&
    test "$(n_sweep vbad failed)" = 2 &&
    run=$(sweep_run vbad caddie) &&
    test "$(run_col "$run" attempts)" = 0 &&
    run_col "$run" error >err.out &&
    test_grep "^prepare prep-[0-9a-f]{12} failed: exit code 1: caddie data: build: .*100000" err.out &&
    test_grep "failed  $run: prepare prep-" run3.out &&
    test -z "$(ls prep | grep tmp)"
'
cat >vc.yaml <<EOF
name: vc
base: micro.yaml
prepare: {corpus: corpus.jsonl, val_docs: 60, tokenizers: [{vocab: 448}]}
grid:
  vocab_size: [448]
timeout: 5m
EOF
test_expect_success 'a corpus edited after sweep add is refused: the key would lie' '
    caddie sweep add vc.yaml >/dev/null &&
    echo "{\"text\": \"one more document\"}" >>corpus.jsonl &&
    run_fast --cpu-slots 1 >run4.out 2>&1 &&
    id=$(prep_id 448) && run_col "$id" error >err.out &&
    test_grep "corpus .*corpus.jsonl changed since the sweep was queued" err.out &&
    test "$(n_sweep vc failed)" = 2
'
test_expect_success 'a killed build leaves only a temp dir: not an entry, removed by the next build' '
    caddie sweep plan vc.yaml >plan.out &&
    dir=$(sed -n "s/^build .* -> //p" plan.out) && test -n "$dir" &&
    mkdir -p "$dir.tmp-999999999/data" && : >"$dir.tmp-999999999/tokenizer.model" &&
    caddie sweep plan vc.yaml >plan2.out && test_grep "^build " plan2.out &&
    caddie sweep add vc.yaml >/dev/null && caddie retry vc >/dev/null &&
    run_fast --cpu-slots 1 >run5.out 2>&1 &&
    test "$(n_sweep vc done)" = 2 &&
    test -f "$dir/prep.json" && ! test -e "$dir.tmp-999999999"
'
cat >vcan.yaml <<EOF
name: vcan
base: micro.yaml
prepare: {corpus: corpus.jsonl, val_docs: 60, tokenizers: [{vocab: 640}]}
grid:
  vocab_size: [640]
EOF
test_expect_success 'cancelling a queued build fails the runs waiting for it, without starting them' '
    caddie sweep add vcan.yaml >/dev/null &&
    caddie cancel "$(prep_id 640)" >/dev/null &&
    run_fast --cpu-slots 1 >run6.out 2>&1 &&
    run=$(sweep_run vcan caddie) && test "$(run_col "$run" status)" = failed &&
    test "$(run_col "$run" attempts)" = 0 &&
    run_col "$run" error >err.out && test_grep "^prepare prep-[0-9a-f]{12} is cancelled$" err.out
'
# The example of docs/sweeps.md's "Prepared data" section plans as documented.
mkdir -p doc && cp -r "$CADDIE_SRC/experiments/configs" doc/configs && cp corpus.jsonl doc/docs.jsonl
awk '/^### Prepared data/{s=1; next} /^##/{s=0} s && /^```yaml$/{f=1; next} s && f && /^```$/{exit} s && f' \
    "$CADDIE_SRC/docs/sweeps.md" >doc/example.yaml
test_expect_success 'the docs/sweeps.md prepare example plans: 3 builds, 3 runs' '
    caddie sweep plan doc/example.yaml --db none.db >out &&
    test $(grep -c "^queue " out) -eq 3 && test $(grep -c "^build " out) -eq 3 &&
    test_grep "^queue +vocab_text-[0-9a-f]{8} +vocab_size=2048 seed=1337$" out
'
cat >miss.yaml <<EOF
name: miss
prepare:
  corpus: nope.jsonl
  tokenizers: [{vocab: 512}]
EOF
cat >owned.yaml <<EOF
name: owned
set: {tokenizer_path: x.model}
prepare: {corpus: corpus.jsonl, tokenizers: [{vocab: 512}]}
EOF
cat >novocab.yaml <<EOF
name: novocab
prepare: {corpus: corpus.jsonl, tokenizers: [{vocab: 512}]}
grid:
  vocab_size: [512, 1024]
EOF
cat >cmd.yaml <<EOF
name: cmd
engine: command
command: [true, "{x}"]
set: {x: 1}
prepare: {corpus: corpus.jsonl, tokenizers: [{vocab: 512}]}
EOF
cat >typo.yaml <<EOF
name: typo
prepare: {corpus: corpus.jsonl, val_doc: 5, tokenizers: [{vocab: 512}]}
EOF
cat >small.yaml <<EOF
name: small
prepare: {corpus: corpus.jsonl, tokenizers: [{vocab: 256}]}
EOF
test_expect_success 'data build: usage errors exit 2, a missing corpus is named' '
    test_must_fail 2 caddie data build --input corpus.jsonl --vocab 100 --out x 2>err &&
    test_grep "vocab: .100. is not in \\[260, 65536\\]" err &&
    test_must_fail 2 caddie data build --input corpus.jsonl --vocab 512 2>err &&
    test_grep "build needs --out" err &&
    test_must_fail 1 caddie data build --input nope.jsonl --vocab 512 --out x 2>err &&
    test_grep "nope.jsonl" err && ! test -e x
'
test_expect_success 'bad prepare sections are file:line:col errors and queue nothing' '
    test_must_fail 1 caddie sweep add miss.yaml --db bad.db 2>err &&
    test_grep "^miss.yaml:3:11: prepare corpus .nope.jsonl. \\(resolved to .*/nope.jsonl\\): " err &&
    test_must_fail 1 caddie sweep plan owned.yaml 2>err &&
    test_grep "^owned.yaml:2:7: .tokenizer_path. is set by .prepare. \\(line 3\\) for every run: remove it from set" err &&
    test_must_fail 1 caddie sweep plan novocab.yaml 2>err &&
    test_grep "^novocab.yaml:2:10: run .vocab_size=1024.: vocab_size 1024 has no tokenizer in .prepare. \\(it lists 512\\)" err &&
    test_must_fail 1 caddie sweep plan cmd.yaml 2>err &&
    test_grep "^cmd.yaml:5:10: .prepare. needs engine caddie" err &&
    test_must_fail 1 caddie sweep plan typo.yaml 2>err &&
    test_grep "^typo.yaml:2:33: unknown prepare key .val_doc. \\(did you mean .val_docs.\\?\\)" err &&
    test_must_fail 1 caddie sweep plan small.yaml 2>err &&
    test_grep "^small.yaml:2:54: .vocab. must be in \\[260, 65536\\], got 256" err &&
    ! test -e bad.db
'
test_done
