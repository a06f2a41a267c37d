#!/usr/bin/python3
"""gen_tokenizer_fixtures.py — write the data-layer fixtures in tests/fixtures/data/.

Independent references for caddie's data layer, computed with Debian's python3-sentencepiece
and numpy by literal replicas of the challenge code (openai/parameter-golf:
data/download_hf_docs_and_tokenize.py export_shards/write_datafile/_iter_sentencepiece_text,
train_gpt.py TokenStream/DistributedTokenLoader/load_validation_tokens/build_sentencepiece_luts).
Run once from the repo root with /usr/bin/python3; the outputs are committed and the C tests
read them, so tests never need Python.

Outputs (tests/fixtures/data/):
  tok_texts.jsonl          the parity texts (JSON lines, {"text": ...})
  tok_ids_<V>.txt          per text: "ids: i i i" and "dec: <hex of sp.decode(ids)>"
  luts_<V>.txt             build_sentencepiece_luts(sp, V+8): "id base_bytes lead_space boundary"
  sample_export.txt        exporter replica on data/sample/fineweb_sample.jsonl: counts, sha256
                           of every shard (default and a small shard size), val LUT byte totals
  loader/fineweb_{train,val}_*.bin + loader_expect.txt
                           small shard set and the loader spans (FNV-1a 64 of x||y per rank)
  tok_train_512.vocab      .vocab of a 512 model trained with the exporter's options on the
                           sample (tokenizer train parity)
Not here: anything run at test time.
"""
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import sentencepiece as spm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "data")
SAMPLE = os.path.join(ROOT, "data", "sample", "fineweb_sample.jsonl")
MODELS = {v: os.path.join(FIX, f"fineweb_{v}_bpe.model") for v in (1024, 4096, 8192)}
SAMPLE_VAL_DOCS = 60

DATAFILE_MAGIC = 20240520
DATAFILE_VERSION = 1


# ---- exporter replica (download_hf_docs_and_tokenize.py) ---------------------------------
def write_datafile(path, toks):
    if len(toks) >= 2**31:
        raise ValueError("token count too large")
    header = np.zeros(256, dtype="<i4")
    header[0] = DATAFILE_MAGIC
    header[1] = DATAFILE_VERSION
    header[2] = len(toks)
    toks = np.asarray(toks).astype("<u2", copy=False)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(toks.tobytes())


def iter_docs(path):
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]


def export_shards(docs_jsonl, sp, output_dir, num_val_docs, shard_size):
    os.makedirs(output_dir, exist_ok=True)
    stats = {"docs_val": 0, "docs_train": 0, "tokens_val": 0, "tokens_train": 0,
             "bytes_val": 0, "bytes_train": 0, "files_val": 0, "files_train": 0}
    buf = np.empty((shard_size,), dtype=np.uint16)
    fill = 0
    split = "val"
    shards = {"val": 0, "train": 0}
    docs_total = 0

    def flush():
        nonlocal fill
        if fill == 0:
            return
        write_datafile(os.path.join(output_dir, f"fineweb_{split}_{shards[split]:06d}.bin"), buf[:fill])
        stats[f"files_{split}"] += 1
        shards[split] += 1
        fill = 0

    vocab_size = sp.vocab_size()
    for text in iter_docs(docs_jsonl):
        encoded = sp.encode(text, out_type=int)
        split_for_doc = "val" if docs_total < num_val_docs else "train"
        if split_for_doc != split:
            flush()
            split = split_for_doc
        toks = np.empty((len(encoded) + 1,), dtype=np.int32)
        toks[0] = sp.bos_id()
        toks[1:] = encoded
        assert ((0 <= toks) & (toks < vocab_size)).all()
        toks = toks.astype("<u2")
        docs_total += 1
        stats[f"docs_{split}"] += 1
        stats[f"tokens_{split}"] += len(toks)
        stats[f"bytes_{split}"] += len(text.encode("utf-8"))
        pos = 0
        while pos < len(toks):
            take = min(shard_size - fill, len(toks) - pos)
            buf[fill:fill + take] = toks[pos:pos + take]
            fill += take
            pos += take
            if fill == shard_size:
                flush()
    flush()
    return stats


# ---- train_gpt.py replicas ----------------------------------------------------------------
def load_data_shard(path):
    header_bytes = 256 * np.dtype("<i4").itemsize
    header = np.fromfile(path, dtype="<i4", count=256)
    if header.size != 256 or int(header[0]) != 20240520 or int(header[1]) != 1:
        raise ValueError(f"Unexpected shard header for {path}")
    num_tokens = int(header[2])
    expected_size = header_bytes + num_tokens * np.dtype("<u2").itemsize
    if os.path.getsize(path) != expected_size:
        raise ValueError(f"Shard size mismatch for {path}")
    tokens_np = np.fromfile(path, dtype="<u2", count=num_tokens, offset=header_bytes)
    if tokens_np.size != num_tokens:
        raise ValueError(f"Short read for {path}")
    return tokens_np.astype(np.uint16)


class TokenStream:
    def __init__(self, pattern):
        self.files = sorted(glob.glob(pattern))
        if not self.files:
            raise FileNotFoundError(f"No files found for pattern: {pattern}")
        self.file_idx = 0
        self.tokens = load_data_shard(self.files[0])
        self.pos = 0

    def _advance_file(self):
        self.file_idx = (self.file_idx + 1) % len(self.files)
        self.tokens = load_data_shard(self.files[self.file_idx])
        self.pos = 0

    def take(self, n):
        chunks = []
        remaining = n
        while remaining > 0:
            avail = self.tokens.size - self.pos
            if avail <= 0:
                self._advance_file()
                continue
            k = min(remaining, avail)
            chunks.append(self.tokens[self.pos:self.pos + k])
            self.pos += k
            remaining -= k
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


class DistributedTokenLoader:
    def __init__(self, pattern, rank, world_size):
        self.rank, self.world_size = rank, world_size
        self.stream = TokenStream(pattern)

    def next_batch(self, global_tokens, seq_len, grad_accum_steps):
        local_tokens = global_tokens // (self.world_size * grad_accum_steps)
        per_rank_span = local_tokens + 1
        chunk = self.stream.take(per_rank_span * self.world_size)
        start = self.rank * per_rank_span
        local = chunk[start:start + per_rank_span].astype(np.int64)
        x = local[:-1].reshape(-1, seq_len)
        y = local[1:].reshape(-1, seq_len)
        return x, y


def load_validation_tokens(pattern, seq_len):
    files = sorted(glob.glob(pattern))
    if not files:
        raise FileNotFoundError(f"No files found for pattern: {pattern}")
    tokens = np.concatenate([load_data_shard(f) for f in files])
    usable = ((tokens.size - 1) // seq_len) * seq_len
    if usable <= 0:
        raise ValueError(f"Validation split is too short for TRAIN_SEQ_LEN={seq_len}")
    return tokens[:usable + 1]


def build_sentencepiece_luts(sp, vocab_size):
    sp_vocab_size = int(sp.vocab_size())
    table_size = max(sp_vocab_size, vocab_size)
    base_bytes_np = np.zeros((table_size,), dtype=np.int16)
    has_leading_space_np = np.zeros((table_size,), dtype=np.bool_)
    is_boundary_token_np = np.ones((table_size,), dtype=np.bool_)
    for token_id in range(sp_vocab_size):
        if sp.is_control(token_id) or sp.is_unknown(token_id) or sp.is_unused(token_id):
            continue
        is_boundary_token_np[token_id] = False
        if sp.is_byte(token_id):
            base_bytes_np[token_id] = 1
            continue
        piece = sp.id_to_piece(token_id)
        if piece.startswith("\u2581"):
            has_leading_space_np[token_id] = True
            piece = piece[1:]
        base_bytes_np[token_id] = len(piece.encode("utf-8"))
    return base_bytes_np, has_leading_space_np, is_boundary_token_np


def eval_bytes(luts, tokens):
    """eval_val's byte count over a stream: sum over targets y=tokens[1:] with x=tokens[:-1]."""
    base, lead, boundary = luts
    x = tokens[:-1].astype(np.int64)
    y = tokens[1:].astype(np.int64)
    b = base[y].astype(np.int64)
    b += (lead[y] & ~boundary[x]).astype(np.int64)
    return int(b.sum())


def fnv1a64(data: bytes) -> int:
    h = 0xcbf29ce484222325
    for c in data:
        h ^= c
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- fixtures ---------------------------------------------------------------------------
PARITY_TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    "  leading and trailing spaces  ",
    "multiple     spaces\tand\ttabs\nand\nnewlines\r\nand CRLF",
    "digits 1234567890 and 3.14159 and 2026-11-22",
    "NFKC: ﬁnance ① ² ｆｕｌｌｗｉｄｔｈ Ⅻ ㎞ ＡＢＣ",
    "accents: café naïve résumé Ångström",
    "emoji: 😀🎉👍🏽 and flags 🇫🇷",
    "CJK: 日本語のテキスト 中文 한국어",
    "Cyrillic: Привет мир; Greek: Καλημέρα",
    "rare: \u0000 nul, \u0007 bell, \u200b zero width, \ufeff bom",
    "math: ∑ x² ≤ ∞ ∫ f(x) dx ≈ π",
    "code: def f(x):\n    return x ** 2  # comment",
    "URL https://example.com/a?b=c&d=e#frag and email a.b@c.de",
    "\u2581 literal lower one eighth block \u2581\u2581",
    "ALL CAPS TEXT AND MiXeD cAsE",
    "a" * 300,
    "Tab\tseparated\tvalues\t1\t2\t3",
    "\n\n\nonly newlines before\n\n\n",
    "ＦｕｌｌｗｉｄｔｈＤｉｇｉｔｓ：１２３",
    "Combining: e\u0301 vs é, A\u030a vs Å",
]


def gen_parity():
    with open(os.path.join(FIX, "tok_texts.jsonl"), "w", encoding="utf-8") as f:
        for t in PARITY_TEXTS:
            f.write(json.dumps({"text": t}, ensure_ascii=True) + "\n")
    # also a few real documents from the sample (first 5) for realistic coverage
    texts = list(PARITY_TEXTS)
    with open(SAMPLE, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 5:
                break
            t = json.loads(line)["text"]
            texts.append(t)
    with open(os.path.join(FIX, "tok_texts.jsonl"), "a", encoding="utf-8") as f:
        for t in texts[len(PARITY_TEXTS):]:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    for v, path in MODELS.items():
        sp = spm.SentencePieceProcessor(model_file=path)
        with open(os.path.join(FIX, f"tok_ids_{v}.txt"), "w") as f:
            f.write(f"# sp.encode / sp.decode with {os.path.basename(path)} for each line of tok_texts.jsonl\n")
            for t in texts:
                ids = sp.encode(t, out_type=int)
                dec = sp.decode(ids)
                f.write("ids:" + "".join(f" {i}" for i in ids) + "\n")
                f.write("dec: " + dec.encode("utf-8").hex() + "\n")
        base, lead, bnd = build_sentencepiece_luts(sp, sp.vocab_size() + 8)
        with open(os.path.join(FIX, f"luts_{v}.txt"), "w") as f:
            f.write(f"# build_sentencepiece_luts(sp, {sp.vocab_size() + 8}) for {os.path.basename(path)}: id base_bytes has_leading_space is_boundary\n")
            for i in range(len(base)):
                f.write(f"{i} {int(base[i])} {int(lead[i])} {int(bnd[i])}\n")


def gen_sample_export():
    sp = spm.SentencePieceProcessor(model_file=os.path.join(ROOT, "data", "sample", "fineweb_1024_bpe.model"))
    luts = build_sentencepiece_luts(sp, 1024)
    out = []
    tmp = tempfile.mkdtemp()
    try:
        for label, shard_size in (("default", 10**8), ("small", 50000)):
            d = os.path.join(tmp, label)
            st = export_shards(SAMPLE, sp, d, SAMPLE_VAL_DOCS, shard_size)
            out.append(f"# exporter replica, num_val_docs={SAMPLE_VAL_DOCS}, shard_size={shard_size}")
            if label == "default":
                for k in ("docs_val", "docs_train", "tokens_val", "tokens_train", "bytes_val", "bytes_train"):
                    out.append(f"{k} {st[k]}")
                val = load_validation_tokens(os.path.join(d, "fineweb_val_*.bin"), 1024)
                allval = np.concatenate([load_data_shard(p) for p in sorted(glob.glob(os.path.join(d, "fineweb_val_*.bin")))])
                alltrain = np.concatenate([load_data_shard(p) for p in sorted(glob.glob(os.path.join(d, "fineweb_train_*.bin")))])
                out.append(f"val_lut_bytes_all {eval_bytes(luts, allval)}")
                out.append(f"train_lut_bytes_all {eval_bytes(luts, alltrain)}")
                out.append(f"val_eval_tokens_1024 {len(val)}")
                out.append(f"val_eval_lut_bytes_1024 {eval_bytes(luts, val)}")
                # Independent of the shards: the same rule straight from the jsonl texts.
                total = 0
                prev_tail = None
                for i, text in enumerate(iter_docs(SAMPLE)):
                    if i >= SAMPLE_VAL_DOCS:
                        break
                    toks = np.array([sp.bos_id()] + sp.encode(text, out_type=int), dtype=np.int64)
                    if prev_tail is not None:
                        toks = np.concatenate([[prev_tail], toks])
                    total += eval_bytes(luts, toks)
                    prev_tail = toks[-1]
                assert total == eval_bytes(luts, allval), (total, eval_bytes(luts, allval))
            for p in sorted(os.listdir(d)):
                out.append(f"{label} {p} {sha256(os.path.join(d, p))}")
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(FIX, "sample_export.txt"), "w") as f:
        f.write("\n".join(out) + "\n")


def gen_loader():
    d = os.path.join(FIX, "loader")
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    rng = np.random.default_rng(1337)
    for i, n in enumerate((1000, 777, 1500)):
        write_datafile(os.path.join(d, f"fineweb_train_{i:06d}.bin"), rng.integers(0, 1024, n).astype(np.uint16))
    for i, n in enumerate((300, 250)):
        write_datafile(os.path.join(d, f"fineweb_val_{i:06d}.bin"), rng.integers(0, 1024, n).astype(np.uint16))
    lines = ["# world accum step rank fnv1a64(x int32 LE || y int32 LE); global_tokens 512, seq_len 16"]
    global_tokens, seq_len = 512, 16
    for world in (1, 2, 8):
        accum = 8 // world
        loaders = [DistributedTokenLoader(os.path.join(d, "fineweb_train_*.bin"), r, world) for r in range(world)]
        for step in range(60):
            for r in range(world):
                x, y = loaders[r].next_batch(global_tokens, seq_len, accum)
                h = fnv1a64(x.astype("<i4").tobytes() + y.astype("<i4").tobytes())
                lines.append(f"{world} {accum} {step} {r} {h:016x}")
    for L in (16, 100, 549):
        val = load_validation_tokens(os.path.join(d, "fineweb_val_*.bin"), L)
        lines.append(f"val {L} {len(val)} {fnv1a64(val.astype('<u2').tobytes()):016x}")
    with open(os.path.join(FIX, "loader_expect.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def _iter_sentencepiece_text(docs_jsonl):
    with open(docs_jsonl, "r", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"].replace("\x00", " ").strip()
            if text:
                yield text


def gen_train():
    tmp = tempfile.mkdtemp()
    try:
        prefix = os.path.join(tmp, "tok_train_512")
        spm.SentencePieceTrainer.train(
            sentence_iterator=_iter_sentencepiece_text(SAMPLE), model_prefix=prefix, model_type="bpe",
            vocab_size=512, character_coverage=0.999, byte_fallback=True, split_digits=True,
            normalization_rule_name="nmt_nfkc", add_dummy_prefix=False, pad_id=0, bos_id=1, eos_id=2,
            unk_id=3, hard_vocab_limit=False, minloglevel=1)
        shutil.copy(prefix + ".vocab", os.path.join(FIX, "tok_train_512.vocab"))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    what = sys.argv[1:] or ["parity", "sample", "loader", "train"]
    if "parity" in what:
        gen_parity()
    if "sample" in what:
        gen_sample_export()
    if "loader" in what:
        gen_loader()
    if "train" in what:
        gen_train()
