#pragma once
// Tokenizers: text <-> token ids for the vocabularies models carry, reproducing the reference
// implementations id for id (llama.cpp for GGUF vocabularies, Hugging Face tokenizers for tokenizer.json,
// karpathy's run.c for llama2.c tokenizer.bin). Evaluation (perplexity, calibration text) depends on
// getting exactly the ids the model was trained with, so the algorithms follow the references even where
// they are quirky; the places where we deliberately differ are listed below.
//
// Kinds (name() says which one was loaded, and from what):
// - "llama-spm (GGUF)": tokenizer.ggml.model = "llama". llama.cpp's SentencePiece emulation: a "▁" space
//   prefix (tokenizer.ggml.add_space_prefix), spaces -> "▁", bigram merging by highest piece score, byte
//   fallback <0xXX>.
// - "gpt2-bpe (GGUF)", "llama3-bpe (GGUF)", "qwen2-bpe (GGUF)": tokenizer.ggml.model = "gpt2", byte-level
//   BPE with merges, split by the pattern tokenizer.ggml.pre names (default/gpt-2, llama-bpe, qwen2).
// - "gpt2-bpe / llama3-bpe / qwen2-bpe (tokenizer.json)": Hugging Face BPE with the ByteLevel
//   pre-tokenizer (alone or after a Split with the Llama 3 / Qwen2 regex).
// - "spm-bpe (tokenizer.json)": Hugging Face BPE in SentencePiece style (Llama 2, Mistral, TinyLlama):
//   Prepend("▁") + Replace(" ", "▁") normalizer or a Metaspace pre-tokenizer, byte_fallback, fuse_unk.
// - "llama2.c (tokenizer.bin)": run.c's encoder (dummy " " prefix token, byte fallback +3, greedy merging
//   of the best-scoring adjacent pair).
//
// Conventions shared by all kinds:
// - encode() adds no BOS/EOS. It accepts any bytes: malformed UTF-8 goes through byte fallback (or the
//   byte-level alphabet) and round-trips; only a vocabulary that can represent neither (no byte tokens and
//   no unknown token) makes it throw Error.
// - Special tokens: tokenizer.json added_tokens (special or not) are split out of the text before the
//   model runs, as Hugging Face does by default; GGUF vocabularies split out user-defined tokens only, as
//   llama.cpp does without parse_special (so "<s>" in GGUF text is plain text).
// - decode() renders control/special tokens (BOS, EOS, ...) as nothing and byte tokens as raw bytes (the
//   result may be malformed UTF-8 when ids were cut mid-character; nothing is replaced by U+FFFD).
//   For tokenizers that add a space prefix, one leading space is dropped from the first piece that has
//   text (after any leading BOS). llama.cpp itself only drops it when the first token is not a kept BOS;
//   Hugging Face's Strip/Metaspace decoders match ours when special tokens are skipped.
// - So decode(encode(t)) == t for every byte string t (and with a BOS in front), except:
//   * tokenizer.json text containing a special added token ("<|endoftext|>"): decode leaves it out;
//   * a Metaspace pre-tokenizer and t starting with a space: Metaspace adds no "▁" before an existing
//     one, yet decode drops a leading space (Hugging Face behaves the same);
//   * text right after a split-out added token gets its own space prefix (llama.cpp and Hugging Face
//     legacy behaviour), which decode does not remove.
// - Where we differ from the references on purpose: malformed UTF-8 is cut byte by byte (llama.cpp lets a
//   stray lead byte swallow the following bytes); a tokenizer.json model that can represent a character
//   neither by byte fallback nor by an unknown token throws instead of dropping it silently.
// - tokenToPiece(id) is the text a token stands for in the middle of a decode, except that special tokens
//   show their own text ("<s>") so that they can be displayed.
// - Out-of-range ids make decode()/tokenToPiece() throw Error.
// - Objects are immutable after loading; all const methods may be called from several threads at once.
// - Refused at load with an Error naming the file and the part: Unigram/WordPiece/WordLevel models,
//   normalizers other than Prepend, literal Replace and NFC (taken as the identity: text is expected to be
//   NFC already), pre-tokenizers other than ByteLevel, Metaspace and Split with the GPT-2 / Llama 3 /
//   Qwen2 regex, GGUF tokenizer models other than llama/gpt2 and pre types other than those above.
//   Added tokens are matched in the raw text even when marked "normalized".

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qs::core {

class Model;

class Tokenizer
{
public:
    virtual ~Tokenizer() = default;

    virtual std::vector<int32_t> encode(std::string_view text) const = 0;
    virtual std::string decode(const std::vector<int32_t> &ids) const = 0;
    virtual std::string tokenToPiece(int32_t id) const = 0;

    int32_t vocabSize() const { return m_vocabSize; }
    int32_t bosId() const { return m_bosId; } // -1 when the vocabulary has none
    int32_t eosId() const { return m_eosId; } // -1 when the vocabulary has none
    bool addBosByDefault() const { return m_addBos; }
    const std::string &name() const { return m_name; }

protected:
    friend std::unique_ptr<Tokenizer> loadTokenizer(const Model &model);
    void checkId(int32_t id) const; // throws Error for ids outside [0, vocabSize)

    int32_t m_vocabSize = 0;
    int32_t m_bosId = -1;
    int32_t m_eosId = -1;
    bool m_addBos = false;
    std::string m_name;
};

// The tokenizer of an opened model (Model::tokenizerPath, per Model::format). llama2.c needs the model's
// vocabulary size; BOS/EOS ids the tokenizer files do not give are taken from model.hparams.
// Throws Error when the model has no tokenizer or it cannot be read.
std::unique_ptr<Tokenizer> loadTokenizer(const Model &model);

// Chooses by file kind: a GGUF file (by magic) -> its tokenizer.ggml.* metadata; "*.json" or a folder
// holding tokenizer.json -> Hugging Face tokenizer.json (+ tokenizer_config.json beside it for
// add_bos_token and the bos/eos tokens); anything else -> llama2.c tokenizer.bin, which does not store its
// vocabulary size: pass vocabSize (from the model header), or 0 to read records until the file ends.
std::unique_ptr<Tokenizer> loadTokenizerFromFile(const std::string &path, int32_t vocabSize = 0);

// encode(text), preceded by BOS when addBos (Error when addBos and the tokenizer has no BOS).
std::vector<int32_t> encodeWithSpecials(const Tokenizer &tokenizer, std::string_view text, bool addBos);

} // namespace qs::core
