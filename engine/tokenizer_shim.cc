/*
 * tokenizer_shim.cc — the C API of tokenizer.h over the SentencePiece C++ library.
 *
 * The only C++ in caddie, kept thin on purpose: each function forwards to
 * sentencepiece::SentencePieceProcessor / SentencePieceTrainer and turns every failed
 * util::Status and every C++ exception into a cad_err, so no exception ever crosses into C.
 * Not here: reading input files, text cleanup, byte LUTs (all C: textdocs.c,
 * tokenizer_train.c, bpb_luts.c).
 */
/* status.h is a C header without extern "C" guards: give its functions C linkage here. */
extern "C" {
#include "engine/status.h"
}
#include "engine/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

struct cad_tokenizer {
    sentencepiece::SentencePieceProcessor sp;
    std::string path;
    int vocab_size = 0;
};

static int status_fail(cad_err *e, const char *what, const std::string &path,
                       const sentencepiece::util::Status &st) {
    return cad_fail(e, st.code() == sentencepiece::util::StatusCode::kNotFound ? CAD_EIO
                                                                              : CAD_EFORMAT,
                    "%s: %s: %s", path.c_str(), what, st.ToString().c_str());
}

static int exception_fail(cad_err *e, const char *what, const std::string &path) {
    try {
        throw;
    } catch (const std::bad_alloc &) {
        return cad_fail(e, CAD_ENOMEM, "%s: %s: out of memory", path.c_str(), what);
    } catch (const std::exception &x) {
        return cad_fail(e, CAD_ERR, "%s: %s: %s", path.c_str(), what, x.what());
    } catch (...) {
        return cad_fail(e, CAD_ERR, "%s: %s: unknown C++ exception", path.c_str(), what);
    }
}

extern "C" int cad_tokenizer_load(const char *model_path, cad_tokenizer **out, cad_err *e) {
    *out = nullptr;
    cad_tokenizer *t = nullptr;
    try {
        t = new cad_tokenizer();
        t->path = model_path;
        sentencepiece::util::Status st = t->sp.Load(model_path);
        if (!st.ok()) {
            int rc = status_fail(e, "cannot load SentencePiece model", t->path, st);
            delete t;
            return rc;
        }
        t->vocab_size = t->sp.GetPieceSize();
        if (t->vocab_size <= 0) {
            delete t;
            return cad_fail(e, CAD_EFORMAT, "%s: SentencePiece model has no pieces", model_path);
        }
    } catch (...) {
        delete t;
        return exception_fail(e, "cannot load SentencePiece model", model_path);
    }
    *out = t;
    return CAD_OK;
}

extern "C" void cad_tokenizer_free(cad_tokenizer *t) { delete t; }

extern "C" int cad_tokenizer_vocab_size(const cad_tokenizer *t) { return t->vocab_size; }

extern "C" int cad_tokenizer_bos_id(const cad_tokenizer *t) { return t->sp.bos_id(); }

extern "C" int cad_tokenizer_encode(const cad_tokenizer *t, const char *text, size_t len,
                                    int **ids, int *n, cad_err *e) {
    *ids = nullptr;
    *n = 0;
    try {
        std::vector<int> v;
        sentencepiece::util::Status st = t->sp.Encode(absl::string_view(text, len), &v);
        if (!st.ok()) return status_fail(e, "encode failed", t->path, st);
        if (v.empty()) return CAD_OK;
        int *buf = static_cast<int *>(std::malloc(v.size() * sizeof(int)));
        if (!buf) return cad_fail(e, CAD_ENOMEM, "%s: encode: out of memory", t->path.c_str());
        std::memcpy(buf, v.data(), v.size() * sizeof(int));
        *ids = buf;
        *n = static_cast<int>(v.size());
        return CAD_OK;
    } catch (...) {
        return exception_fail(e, "encode failed", t->path);
    }
}

extern "C" int cad_tokenizer_decode(const cad_tokenizer *t, const int *ids, int n, char **text,
                                    cad_err *e) {
    return cad_tokenizer_decode_len(t, ids, n, text, nullptr, e);
}

extern "C" int cad_tokenizer_decode_len(const cad_tokenizer *t, const int *ids, int n,
                                        char **text, size_t *len, cad_err *e) {
    *text = nullptr;
    if (len) *len = 0;
    try {
        std::vector<int> v(ids, ids + n);
        for (int id : v)
            if (id < 0 || id >= t->vocab_size)
                return cad_fail(e, CAD_ECONFIG, "%s: decode: id %d out of range [0, %d)",
                                t->path.c_str(), id, t->vocab_size);
        std::string s;
        sentencepiece::util::Status st = t->sp.Decode(v, &s);
        if (!st.ok()) return status_fail(e, "decode failed", t->path, st);
        char *buf = static_cast<char *>(std::malloc(s.size() + 1));
        if (!buf) return cad_fail(e, CAD_ENOMEM, "%s: decode: out of memory", t->path.c_str());
        std::memcpy(buf, s.data(), s.size());
        buf[s.size()] = 0;
        *text = buf;
        if (len) *len = s.size();
        return CAD_OK;
    } catch (...) {
        return exception_fail(e, "decode failed", t->path);
    }
}

static bool in_range(const cad_tokenizer *t, int id) { return id >= 0 && id < t->vocab_size; }

extern "C" const char *cad_tokenizer_piece(const cad_tokenizer *t, int id) {
    return in_range(t, id) ? t->sp.IdToPiece(id).c_str() : "";
}
extern "C" int cad_tokenizer_is_control(const cad_tokenizer *t, int id) {
    return in_range(t, id) && t->sp.IsControl(id);
}
extern "C" int cad_tokenizer_is_unknown(const cad_tokenizer *t, int id) {
    return in_range(t, id) && t->sp.IsUnknown(id);
}
extern "C" int cad_tokenizer_is_unused(const cad_tokenizer *t, int id) {
    return in_range(t, id) && t->sp.IsUnused(id);
}
extern "C" int cad_tokenizer_is_byte(const cad_tokenizer *t, int id) {
    return in_range(t, id) && t->sp.IsByte(id);
}

namespace {
/* Feeds the trainer from the C callback; a callback error stops training and is reported
 * through status() (the trainer checks it) and kept in err for the caller. */
class CallbackIterator : public sentencepiece::SentenceIterator {
  public:
    CallbackIterator(cad_doc_iter_fn next, void *ctx) : next_(next), ctx_(ctx) {
        cad_err_clear(&err_);
        Next();
    }
    bool done() const override { return done_; }
    void Next() override {
        const char *text = nullptr;
        size_t len = 0;
        int r = next_(ctx_, &text, &len, &err_);
        if (r == 1) {
            value_.assign(text, len);
        } else {
            done_ = true;
            failed_ = r < 0;
        }
    }
    const std::string &value() const override { return value_; }
    sentencepiece::util::Status status() const override {
        if (!failed_) return sentencepiece::util::Status();
        return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal, err_.msg);
    }
    bool failed() const { return failed_; }
    const cad_err &err() const { return err_; }

  private:
    cad_doc_iter_fn next_;
    void *ctx_;
    std::string value_;
    bool done_ = false, failed_ = false;
    cad_err err_;
};
} // namespace

extern "C" int cad_tokenizer_train_iter(cad_doc_iter_fn next, void *ctx, int vocab_size,
                                        const char *out_prefix, int verbose, cad_err *e) {
    try {
        /* Exactly the exporter's SentencePieceTrainer.train(...) keyword arguments
         * (parameter-golf.md §5); everything else stays at sentencepiece's defaults. */
        std::unordered_map<std::string, std::string> kw = {
            {"model_prefix", out_prefix},
            {"model_type", "bpe"},
            {"vocab_size", std::to_string(vocab_size)},
            {"character_coverage", "0.999"},
            {"byte_fallback", "true"},
            {"split_digits", "true"},
            {"normalization_rule_name", "nmt_nfkc"},
            {"add_dummy_prefix", "false"},
            {"pad_id", "0"},
            {"bos_id", "1"},
            {"eos_id", "2"},
            {"unk_id", "3"},
            {"hard_vocab_limit", "false"},
        };
        /* Logging only, not a trainer option: 0 shows sentencepiece's INFO lines. */
        kw["minloglevel"] = verbose ? "0" : "1";
        CallbackIterator it(next, ctx);
        sentencepiece::util::Status st = sentencepiece::SentencePieceTrainer::Train(kw, &it);
        if (it.failed()) {
            if (e) *e = it.err();
            return it.err().code ? it.err().code : CAD_ERR;
        }
        if (!st.ok()) return status_fail(e, "SentencePiece training failed", out_prefix, st);
        return CAD_OK;
    } catch (...) {
        return exception_fail(e, "SentencePiece training failed", out_prefix);
    }
}
