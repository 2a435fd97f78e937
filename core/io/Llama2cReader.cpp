#include "io/Llama2cReader.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <filesystem>
#include <fstream>

#include "common/Error.h"
#include "io/MappedFile.h"
#include "io/RawTensorData.h"

namespace qs::core {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kNewExportMagic = 0x616b3432; // "ak42" as a little-endian u32 (export.py v1/v2)

int32_t readI32Le(const uint8_t *p)
{
    const uint32_t u = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    return int32_t(u);
}

uint64_t checkedMul(uint64_t a, uint64_t b, const std::string &file)
{
    uint64_t r = 0;
    if (__builtin_mul_overflow(a, b, &r))
        fail(file, "header dimensions overflow the file size computation");
    return r;
}

uint64_t checkedAdd(uint64_t a, uint64_t b, const std::string &file)
{
    uint64_t r = 0;
    if (__builtin_add_overflow(a, b, &r))
        fail(file, "header dimensions overflow the file size computation");
    return r;
}

// Float offsets of the arrays of a v0 file, in file order (formats.md 7.1).
struct Layout
{
    uint64_t embed, rmsAtt, wq, wk, wv, wo, rmsFfn, w1, w2, w3, rmsFinal, freqCis, wcls, totalFloats;
};

Layout layoutOf(const Llama2cHeader &h, const std::string &file)
{
    const uint64_t dim = uint64_t(h.dim), hidden = uint64_t(h.hiddenDim), layers = uint64_t(h.numLayers);
    const uint64_t headDim = dim / uint64_t(h.numHeads);
    const uint64_t kvDim = uint64_t(h.numKvHeads) * headDim;
    const uint64_t vocab = uint64_t(h.vocabSize);
    Layout l {};
    l.embed = 0;
    l.rmsAtt = checkedAdd(l.embed, checkedMul(vocab, dim, file), file);
    l.wq = checkedAdd(l.rmsAtt, checkedMul(layers, dim, file), file);
    l.wk = checkedAdd(l.wq, checkedMul(layers, checkedMul(dim, dim, file), file), file);
    l.wv = checkedAdd(l.wk, checkedMul(layers, checkedMul(kvDim, dim, file), file), file);
    l.wo = checkedAdd(l.wv, checkedMul(layers, checkedMul(kvDim, dim, file), file), file);
    l.rmsFfn = checkedAdd(l.wo, checkedMul(layers, checkedMul(dim, dim, file), file), file);
    l.w1 = checkedAdd(l.rmsFfn, checkedMul(layers, dim, file), file);
    l.w2 = checkedAdd(l.w1, checkedMul(layers, checkedMul(hidden, dim, file), file), file);
    l.w3 = checkedAdd(l.w2, checkedMul(layers, checkedMul(dim, hidden, file), file), file);
    l.rmsFinal = checkedAdd(l.w3, checkedMul(layers, checkedMul(hidden, dim, file), file), file);
    l.freqCis = checkedAdd(l.rmsFinal, dim, file);
    // freq_cis_real and freq_cis_imag, seq_len * head_dim / 2 each: present, unused (run.c skips them).
    l.wcls = checkedAdd(l.freqCis, checkedMul(uint64_t(h.seqLen), headDim, file), file);
    l.totalFloats = h.sharedClassifier ? l.wcls : checkedAdd(l.wcls, checkedMul(vocab, dim, file), file);
    return l;
}

std::string describe(const Llama2cHeader &h)
{
    return "dim " + std::to_string(h.dim) + ", hidden " + std::to_string(h.hiddenDim) + ", "
        + std::to_string(h.numLayers) + " layers, " + std::to_string(h.numHeads) + " heads, "
        + std::to_string(h.numKvHeads) + " kv heads, vocab " + std::to_string(h.vocabSize)
        + (h.sharedClassifier ? "" : " (separate classifier)") + ", seq_len " + std::to_string(h.seqLen);
}

// Parses and range-checks the seven header fields. Every bound is checked before any multiplication, so
// the size computation that follows cannot overflow for any accepted header.
Llama2cHeader parseFields(const uint8_t *bytes, size_t size, uint64_t fileSize, const std::string &file)
{
    if (size >= 4 && uint32_t(readI32Le(bytes)) == kNewExportMagic) {
        const std::string version = size >= 8 ? " version " + std::to_string(readI32Le(bytes + 4)) : "";
        fail(file,
            "newer llama2.c export version not supported ('ak42' header," + version
                + "); QuantScope reads the legacy version-0 .bin that run.c loads (export.py --version 0)");
    }
    if (fileSize < Llama2cReader::kHeaderBytes || size < Llama2cReader::kHeaderBytes)
        fail(file, "file is " + std::to_string(fileSize) + " bytes, shorter than the 28-byte llama2.c header");

    int32_t f[7];
    for (int i = 0; i < 7; ++i)
        f[i] = readI32Le(bytes + 4 * i);
    const char *names[7] = { "dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len" };
    auto check = [&](int i, int64_t value, int64_t max) {
        if (value < 1 || value > max)
            fail(file,
                std::string("implausible llama2.c header: ") + names[i] + " = " + std::to_string(f[i])
                    + " (expected 1 to " + std::to_string(max) + "); not a llama2.c checkpoint?");
    };
    check(0, f[0], 1 << 16);
    check(1, f[1], 1 << 20);
    check(2, f[2], 1 << 12);
    check(3, f[3], f[0]);
    check(4, f[4], f[3]);
    check(5, f[5] < 0 ? -int64_t(f[5]) : int64_t(f[5]), 1 << 24);
    check(6, f[6], 1 << 24);

    Llama2cHeader h;
    h.dim = f[0];
    h.hiddenDim = f[1];
    h.numLayers = f[2];
    h.numHeads = f[3];
    h.numKvHeads = f[4];
    h.sharedClassifier = f[5] > 0;
    h.vocabSize = f[5] < 0 ? -f[5] : f[5];
    h.seqLen = f[6];
    if (h.dim % h.numHeads != 0)
        fail(file,
            "llama2.c header: dim " + std::to_string(h.dim) + " is not a multiple of n_heads "
                + std::to_string(h.numHeads));
    if (h.numHeads % h.numKvHeads != 0)
        fail(file,
            "llama2.c header: n_heads " + std::to_string(h.numHeads) + " is not a multiple of n_kv_heads "
                + std::to_string(h.numKvHeads));
    if ((h.dim / h.numHeads) % 2 != 0)
        fail(file,
            "llama2.c header: head dimension " + std::to_string(h.dim / h.numHeads) + " is odd; RoPE needs pairs");
    return h;
}

std::string lower(std::string s)
{
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    return s;
}

bool isFile(const fs::path &p)
{
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

// tokenizer.bin, or tok*.bin (tok512.bin, tok4096.bin) beside the model; prefers tok<vocab>.bin.
std::string findTokenizer(const fs::path &modelPath, int vocab, std::vector<std::string> &warnings)
{
    const fs::path dir = modelPath.has_parent_path() ? modelPath.parent_path() : fs::path(".");
    if (isFile(dir / "tokenizer.bin"))
        return (dir / "tokenizer.bin").string();
    std::vector<fs::path> candidates;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::path p = it->path();
        const std::string name = lower(p.filename().string());
        if (name.size() > 7 && name.rfind("tok", 0) == 0 && name.substr(name.size() - 4) == ".bin"
            && p.filename() != modelPath.filename() && isFile(p))
            candidates.push_back(p);
    }
    if (candidates.empty())
        return {};
    std::sort(candidates.begin(), candidates.end());
    for (const fs::path &p : candidates)
        if (lower(p.filename().string()) == "tok" + std::to_string(vocab) + ".bin")
            return p.string();
    if (candidates.size() > 1)
        warnings.push_back(modelPath.filename().string() + ": several tokenizers beside the model; using "
            + candidates.front().filename().string());
    return candidates.front().string();
}

// run.c reads vocab_size entries of (f32 score, i32 len, len bytes) after a u32 max_token_length.
// Returns an empty string when the file holds them, else what is wrong.
std::string checkTokenizer(const std::string &path, int vocab)
{
    std::shared_ptr<const MappedFile> f;
    try {
        f = MappedFile::open(path);
    } catch (const Error &e) {
        return e.what();
    }
    const uint8_t *p = f->data();
    const uint64_t size = f->size();
    if (size < 4)
        return "too short for a llama2.c tokenizer";
    const int32_t maxLen = readI32Le(p);
    uint64_t pos = 4;
    for (int i = 0; i < vocab; ++i) {
        if (size - pos < 8)
            return "ends after " + std::to_string(i) + " of the model's " + std::to_string(vocab) + " tokens";
        const int32_t len = readI32Le(p + pos + 4);
        pos += 8;
        if (len < 0 || len > maxLen || uint64_t(len) > size - pos)
            return "token " + std::to_string(i) + " has an invalid length " + std::to_string(len);
        pos += uint64_t(len);
    }
    return {};
}

} // namespace

Llama2cHeader Llama2cReader::parseHeader(const uint8_t *bytes, size_t size, uint64_t fileSize, const std::string &file)
{
    Llama2cHeader h = parseFields(bytes, size, fileSize, file);
    h.expectedFileSize = checkedAdd(kHeaderBytes, checkedMul(layoutOf(h, file).totalFloats, 4, file), file);
    if (fileSize < h.expectedFileSize)
        fail(file,
            "file is " + std::to_string(fileSize) + " bytes but its llama2.c header (" + describe(h) + ") implies "
                + std::to_string(h.expectedFileSize) + ": truncated, " + std::to_string(h.expectedFileSize - fileSize)
                + " bytes missing");
    if (fileSize > h.expectedFileSize)
        fail(file,
            "file is " + std::to_string(fileSize) + " bytes but its llama2.c header (" + describe(h) + ") implies "
                + std::to_string(h.expectedFileSize) + ": " + std::to_string(fileSize - h.expectedFileSize)
                + " unexpected trailing bytes (not a version-0 llama2.c checkpoint?)");
    return h;
}

bool Llama2cReader::probe(const std::string &path)
{
    const fs::path p(path);
    if (lower(p.extension().string()) != ".bin" || !isFile(p))
        return false;
    std::ifstream in(p, std::ios::binary);
    uint8_t bytes[kHeaderBytes] = {};
    in.read(reinterpret_cast<char *>(bytes), kHeaderBytes);
    const size_t got = size_t(in.gcount());
    if (got >= 4 && uint32_t(readI32Le(bytes)) == kNewExportMagic)
        return true; // open() explains that this export version is not supported
    if (got < kHeaderBytes)
        return false;
    try {
        parseFields(bytes, got, kHeaderBytes, path);
        return true;
    } catch (const Error &) {
        return false;
    }
}

std::unique_ptr<Model> Llama2cReader::open(const std::string &path, const OpenOptions &options)
{
    const std::string file = fs::path(path).filename().string();
    const std::shared_ptr<const MappedFile> mapped = MappedFile::open(path);
    const Llama2cHeader hdr
        = parseHeader(mapped->data(), size_t(std::min<uint64_t>(mapped->size(), kHeaderBytes)), mapped->size(), file);
    const Layout layout = layoutOf(hdr, file);

    auto model = std::make_unique<Model>();
    model->format = "llama2c";
    model->path = path;
    HyperParams &h = model->hparams;
    h.architecture = "llama";
    h.hiddenSize = hdr.dim;
    h.intermediateSize = hdr.hiddenDim;
    h.numLayers = hdr.numLayers;
    h.numHeads = hdr.numHeads;
    h.numKvHeads = hdr.numKvHeads;
    h.headDim = hdr.dim / hdr.numHeads;
    h.vocabSize = hdr.vocabSize;
    h.maxPositions = hdr.seqLen;
    h.rmsEps = 1e-5; // hard-coded in run.c
    h.ropeTheta = 10000.0; // hard-coded in run.c
    h.tiedEmbeddings = hdr.sharedClassifier;
    h.attentionBias = false;
    h.bosTokenId = 1;
    h.eosTokenId = 2;
    h.addBos = true;

    const uint8_t *base = mapped->data() + kHeaderBytes;
    auto addTensor = [&](std::string name, std::string source, TensorRole role, int block, uint64_t floatOffset,
                         int64_t rows, int64_t cols, int permuteHeadDim = 0) {
        Tensor t;
        t.name = std::move(name);
        t.sourceName = std::move(source);
        t.role = role;
        t.block = block;
        t.rows = rows;
        t.cols = cols;
        t.dtype = DType::F32;
        t.storedBytes = uint64_t(rows * cols) * 4;
        t.data = std::make_shared<RawTensorData>(
            mapped, base + floatOffset * 4, DType::F32, rows, cols, file, t.name, permuteHeadDim);
        model->tensors.push_back(std::move(t));
    };

    const int64_t dim = hdr.dim, hidden = hdr.hiddenDim, vocab = hdr.vocabSize;
    const int64_t kvDim = int64_t(hdr.numKvHeads) * h.headDim;
    addTensor("model.embed_tokens", "token_embedding_table", TensorRole::Embed, -1, layout.embed, vocab, dim);
    for (int b = 0; b < hdr.numLayers; ++b) {
        const uint64_t l = uint64_t(b);
        const std::string idx = "[" + std::to_string(b) + "]";
        const std::string prefix = "model.layers." + std::to_string(b) + ".";
        addTensor(
            prefix + "input_layernorm", "rms_att_weight" + idx, TensorRole::Norm, b, layout.rmsAtt + l * dim, 1, dim);
        // run.c applies RoPE to adjacent pairs (Meta order); canonical rows are HF rotate-half order.
        addTensor(
            layerName(b, TensorRole::Q), "wq" + idx, TensorRole::Q, b, layout.wq + l * dim * dim, dim, dim, h.headDim);
        addTensor(layerName(b, TensorRole::K), "wk" + idx, TensorRole::K, b, layout.wk + l * kvDim * dim, kvDim, dim,
            h.headDim);
        addTensor(layerName(b, TensorRole::V), "wv" + idx, TensorRole::V, b, layout.wv + l * kvDim * dim, kvDim, dim);
        addTensor(layerName(b, TensorRole::O), "wo" + idx, TensorRole::O, b, layout.wo + l * dim * dim, dim, dim);
        addTensor(prefix + "post_attention_layernorm", "rms_ffn_weight" + idx, TensorRole::Norm, b,
            layout.rmsFfn + l * dim, 1, dim);
        addTensor(
            layerName(b, TensorRole::Gate), "w1" + idx, TensorRole::Gate, b, layout.w1 + l * hidden * dim, hidden, dim);
        addTensor(
            layerName(b, TensorRole::Up), "w3" + idx, TensorRole::Up, b, layout.w3 + l * hidden * dim, hidden, dim);
        addTensor(
            layerName(b, TensorRole::Down), "w2" + idx, TensorRole::Down, b, layout.w2 + l * dim * hidden, dim, hidden);
    }
    addTensor("model.norm", "rms_final_weight", TensorRole::Norm, -1, layout.rmsFinal, 1, dim);
    if (hdr.sharedClassifier) {
        Tensor head = model->tensors.front(); // the embedding
        head.name = "lm_head";
        head.role = TensorRole::LmHead;
        head.tied = true;
        head.storedBytes = 0; // shares the embedding's bytes
        model->tensors.push_back(std::move(head));
    } else {
        addTensor("lm_head", "wcls", TensorRole::LmHead, -1, layout.wcls, vocab, dim);
    }

    validateLlamaModel(*model, file);

    std::string tokenizer = options.tokenizerPath;
    if (!tokenizer.empty()) {
        if (!isFile(tokenizer))
            fail(tokenizer, "tokenizer file does not exist");
    } else {
        tokenizer = findTokenizer(fs::path(path), hdr.vocabSize, model->warnings);
    }
    if (tokenizer.empty()) {
        model->warnings.push_back(file
            + ": no tokenizer.bin or tok*.bin beside the model; choose a tokenizer to "
              "evaluate text");
    } else if (const std::string problem = checkTokenizer(tokenizer, hdr.vocabSize); !problem.empty()) {
        model->warnings.push_back(
            fs::path(tokenizer).filename().string() + ": " + problem + "; not used as this model's tokenizer");
    } else {
        model->tokenizerPath = tokenizer;
    }
    return model;
}

} // namespace qs::core
