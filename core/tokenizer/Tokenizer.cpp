#include "tokenizer/Tokenizer.h"

#include <filesystem>

#include "common/Error.h"
#include "io/GgufFile.h"
#include "model/Model.h"
#include "tokenizer/TokenizerImpl.h"

namespace qs::core {

namespace fs = std::filesystem;

void Tokenizer::checkId(int32_t id) const
{
    if (id < 0 || id >= m_vocabSize)
        fail(m_name,
            "token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(m_vocabSize)
                + " tokens)");
}

std::string byteTokenName(uint8_t byte)
{
    static constexpr char kHex[] = "0123456789ABCDEF";
    return std::string { '<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>' };
}

int parseByteToken(std::string_view piece)
{
    if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>')
        return -1;
    const auto hex = [](char c) {
        if (c >= '0' && c <= '9')
            return c - '0';
        if (c >= 'A' && c <= 'F')
            return c - 'A' + 10;
        if (c >= 'a' && c <= 'f')
            return c - 'a' + 10;
        return -1;
    };
    const int hi = hex(piece[3]);
    const int lo = hex(piece[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string escapeSpaces(std::string_view text)
{
    std::string out;
    out.reserve(text.size() + text.size() / 2);
    for (char c : text) {
        if (c == ' ')
            out += kSpaceMarker;
        else
            out += c;
    }
    return out;
}

std::string unescapeSpaces(std::string_view piece)
{
    std::string out;
    out.reserve(piece.size());
    for (size_t i = 0; i < piece.size();) {
        if (piece.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
            out += ' ';
            i += kSpaceMarker.size();
        } else {
            out += piece[i++];
        }
    }
    return out;
}

int32_t ggufTokenId(const GgufFile &file, std::string_view key, int32_t fallback, size_t vocabSize)
{
    const std::optional<int64_t> v = file.getInteger(key);
    if (!v)
        return fallback;
    if (*v < 0 || *v == 0xFFFFFFFFll) // llama.cpp writes UINT32_MAX for "none"
        return -1;
    if (uint64_t(*v) >= vocabSize)
        fail(file.fileName(),
            "metadata '" + std::string(key) + "' is " + std::to_string(*v) + ", outside the vocabulary ("
                + std::to_string(vocabSize) + " tokens)");
    return int32_t(*v);
}

namespace {

std::unique_ptr<Tokenizer> makeGgufTokenizer(const std::string &path)
{
    const GgufFile file = GgufFile::open(path);
    const std::optional<std::string> model = file.getString("tokenizer.ggml.model");
    if (!model)
        fail(file.fileName(), "no tokenizer in the metadata (tokenizer.ggml.model is missing)");
    if (*model == "llama")
        return makeSpmTokenizer(file);
    if (*model == "gpt2")
        return makeBpeTokenizer(file);
    fail(file.fileName(),
        "tokenizer.ggml.model '" + *model
            + "' is not supported (supported: 'llama' SentencePiece, 'gpt2' byte-level BPE)");
}

std::string displayName(const std::string &path)
{
    const std::string name = fs::path(path).filename().string();
    return name.empty() ? path : name;
}

} // namespace

std::unique_ptr<Tokenizer> loadTokenizerFromFile(const std::string &path, int32_t vocabSize)
{
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    if (ec || !fs::exists(status))
        fail(displayName(path), "tokenizer file not found");
    if (fs::is_directory(status)) {
        const fs::path json = fs::path(path) / "tokenizer.json";
        if (!fs::is_regular_file(json, ec))
            fail(displayName(path), "folder has no tokenizer.json");
        return makeHfTokenizer(json.string());
    }
    if (GgufFile::hasMagic(path))
        return makeGgufTokenizer(path);
    if (fs::path(path).extension() == ".json")
        return makeHfTokenizer(path);
    return makeLlama2cTokenizer(path, vocabSize);
}

std::unique_ptr<Tokenizer> loadTokenizer(const Model &model)
{
    const std::string source = model.path.empty() ? std::string("model") : displayName(model.path);
    if (model.tokenizerPath.empty())
        fail(source, "the model has no tokenizer (no tokenizer file was found beside it)");
    std::unique_ptr<Tokenizer> tokenizer;
    if (model.format == "llama2c") {
        if (model.hparams.vocabSize <= 0)
            fail(source, "vocabulary size unknown; cannot read the llama2.c tokenizer");
        tokenizer = makeLlama2cTokenizer(model.tokenizerPath, model.hparams.vocabSize);
    } else {
        tokenizer = loadTokenizerFromFile(model.tokenizerPath);
    }
    // Fill in what the tokenizer files left open from the model's own configuration (config.json ids).
    Tokenizer &t = *tokenizer;
    const HyperParams &h = model.hparams;
    if (t.m_bosId < 0 && h.bosTokenId >= 0 && h.bosTokenId < t.m_vocabSize) {
        t.m_bosId = h.bosTokenId;
        t.m_addBos = h.addBos;
    }
    if (t.m_eosId < 0 && h.eosTokenId >= 0 && h.eosTokenId < t.m_vocabSize)
        t.m_eosId = h.eosTokenId;
    return tokenizer;
}

std::vector<int32_t> encodeWithSpecials(const Tokenizer &tokenizer, std::string_view text, bool addBos)
{
    std::vector<int32_t> ids;
    if (addBos) {
        if (tokenizer.bosId() < 0)
            fail(tokenizer.name(), "BOS requested, but the vocabulary has no BOS token");
        ids.push_back(tokenizer.bosId());
    }
    std::vector<int32_t> body = tokenizer.encode(text);
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
}

} // namespace qs::core
