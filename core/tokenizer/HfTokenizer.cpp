// Hugging Face tokenizer.json (formats.md 1.7) -> BpeSpec. Only what the BPE models of the Llama family
// and GPT-2 use is accepted; anything else (Unigram/WordPiece models, regex normalizers, unknown split
// patterns) is refused with an Error naming the component, because a tokenizer that silently differs from
// the reference would give plausible-looking but wrong evaluation numbers.

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "tokenizer/BpeTokenizer.h"

namespace qs::core {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string readText(const std::string &path, const std::string &name)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(name, "cannot be opened");
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad())
        fail(name, "read error");
    return ss.str();
}

json parseJson(const std::string &path, const std::string &name)
{
    try {
        return json::parse(readText(path, name));
    } catch (const json::exception &e) {
        fail(name, std::string("not valid JSON (") + e.what() + ")");
    }
}

class Parser
{
public:
    explicit Parser(std::string name)
        : m_name(std::move(name))
    { }

    [[noreturn]] void error(const std::string &what) const { fail(m_name, what); }

    bool boolField(const json &obj, const char *key, bool fallback) const
    {
        const auto it = obj.find(key);
        if (it == obj.end() || it->is_null())
            return fallback;
        if (!it->is_boolean())
            error(std::string("'") + key + "' is not true/false");
        return it->get<bool>();
    }
    std::string stringField(const json &obj, const char *key, const std::string &fallback, const char *where) const
    {
        const auto it = obj.find(key);
        if (it == obj.end() || it->is_null())
            return fallback;
        if (!it->is_string())
            error(std::string(where) + ": '" + key + "' is not a string");
        return it->get<std::string>();
    }
    std::string typeOf(const json &obj, const char *where) const
    {
        if (!obj.is_object())
            error(std::string(where) + " is not an object");
        return stringField(obj, "type", "", where);
    }

    void parseModel(const json &root, BpeSpec &spec) const;
    void parseAddedTokens(const json &root, BpeSpec &spec) const;
    void parseNormalizer(const json &n, BpeSpec &spec) const;
    void parsePreTokenizer(const json &p, BpeSpec &spec) const;
    void parseDecoder(const json &d, BpeSpec &spec, bool &sawDecoder) const;

private:
    std::string m_name;
};

void Parser::parseModel(const json &root, BpeSpec &spec) const
{
    const auto modelIt = root.find("model");
    if (modelIt == root.end() || !modelIt->is_object())
        error("no 'model' object");
    const json &model = *modelIt;
    const std::string type = typeOf(model, "model");
    if (!type.empty() && type != "BPE")
        error("model type '" + type + "' is not supported (only BPE)");
    const auto vocabIt = model.find("vocab");
    if (vocabIt == model.end() || !vocabIt->is_object())
        error("model has no 'vocab' object");
    if (vocabIt->empty())
        error("model vocab is empty");
    for (const char *key : { "continuing_subword_prefix", "end_of_word_suffix" })
        if (!stringField(model, key, "", "model").empty())
            error(std::string("model '") + key + "' is not supported");
    if (const auto it = model.find("dropout");
        it != model.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0))
        error("model 'dropout' is set; BPE dropout is for training and is not supported");

    spec.vocab.reserve(vocabIt->size());
    int64_t maxId = -1;
    for (const auto &[piece, idValue] : vocabIt->items()) {
        if (!idValue.is_number_integer() || idValue.get<int64_t>() < 0 || idValue.get<int64_t>() >= INT32_MAX)
            error("vocab entry '" + piece + "' has no valid id");
        const int64_t id = idValue.get<int64_t>();
        spec.vocab.insert_or_assign(piece, int32_t(id));
        maxId = std::max(maxId, id);
    }
    spec.pieces.assign(size_t(maxId + 1), std::string());
    for (const auto &[piece, id] : spec.vocab)
        spec.pieces[size_t(id)] = piece;

    spec.byteFallback = boolField(model, "byte_fallback", false);
    spec.fuseUnk = boolField(model, "fuse_unk", false);
    spec.ignoreMerges = boolField(model, "ignore_merges", false);
    const std::string unk = stringField(model, "unk_token", "", "model");
    spec.unkId = unk.empty() ? -1 : findPiece(spec.vocab, unk);

    // Merges: "left right" strings (split at the first space) or ["left", "right"] pairs. A repeated pair
    // keeps its last rank, as tokenizers' HashMap collection does.
    const auto mergesIt = model.find("merges");
    if (mergesIt == model.end() || mergesIt->is_null())
        return;
    if (!mergesIt->is_array())
        error("model 'merges' is not a list");
    spec.merges.reserve(mergesIt->size());
    int32_t rank = 0;
    for (const json &m : *mergesIt) {
        std::string left, right;
        if (m.is_string()) {
            const std::string &s = m.get_ref<const std::string &>();
            const size_t space = s.find(' ');
            if (space == std::string::npos)
                error("merge #" + std::to_string(rank) + " '" + s + "' is not two pieces separated by a space");
            left = s.substr(0, space);
            right = s.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            left = m[0].get<std::string>();
            right = m[1].get<std::string>();
        } else {
            error("merge #" + std::to_string(rank) + " is neither \"a b\" nor [\"a\", \"b\"]");
        }
        const int32_t l = findPiece(spec.vocab, left);
        const int32_t r = findPiece(spec.vocab, right);
        const int32_t merged = findPiece(spec.vocab, left + right);
        for (const auto &[piece, id] :
            { std::pair { left, l }, std::pair { right, r }, std::pair { left + right, merged } })
            if (id < 0)
                error("merge #" + std::to_string(rank) + " ('" + left + "' + '" + right + "') refers to '" + piece
                    + "', which is not in the vocabulary");
        spec.merges.insert_or_assign(BpeSpec::mergeKey(l, r), BpeMerge { rank, merged });
        ++rank;
    }
}

void Parser::parseAddedTokens(const json &root, BpeSpec &spec) const
{
    const auto it = root.find("added_tokens");
    if (it == root.end() || it->is_null())
        return;
    if (!it->is_array())
        error("'added_tokens' is not a list");
    for (const json &t : *it) {
        if (!t.is_object())
            error("an added_tokens entry is not an object");
        const auto idIt = t.find("id");
        if (idIt == t.end() || !idIt->is_number_integer() || idIt->get<int64_t>() < 0
            || idIt->get<int64_t>() >= INT32_MAX)
            error("an added_tokens entry has no valid 'id'");
        AddedToken a;
        a.id = int32_t(idIt->get<int64_t>());
        a.content = stringField(t, "content", "", "added_tokens entry");
        if (a.content.empty())
            error("added token " + std::to_string(a.id) + " has no content");
        a.special = boolField(t, "special", false);
        a.lstrip = boolField(t, "lstrip", false);
        a.rstrip = boolField(t, "rstrip", false);
        a.singleWord = boolField(t, "single_word", false);
        if (size_t(a.id) >= spec.pieces.size())
            spec.pieces.resize(size_t(a.id) + 1);
        if (!spec.pieces[size_t(a.id)].empty() && spec.pieces[size_t(a.id)] != a.content)
            error("added token " + std::to_string(a.id) + " '" + a.content + "' clashes with vocab piece '"
                + spec.pieces[size_t(a.id)] + "'");
        spec.pieces[size_t(a.id)] = a.content;
        if (spec.special.size() < spec.pieces.size())
            spec.special.resize(spec.pieces.size(), 0);
        spec.special[size_t(a.id)] = a.special;
        spec.addedTokens.push_back(std::move(a));
    }
}

void Parser::parseNormalizer(const json &n, BpeSpec &spec) const
{
    if (n.is_null())
        return;
    const std::string type = typeOf(n, "normalizer");
    if (type == "Sequence") {
        const auto it = n.find("normalizers");
        if (it == n.end() || !it->is_array())
            error("normalizer Sequence has no 'normalizers' list");
        for (const json &child : *it)
            parseNormalizer(child, spec);
    } else if (type == "Prepend") {
        spec.normalizer.push_back({ NormalizerStep::Kind::Prepend, {}, stringField(n, "prepend", "", "Prepend") });
    } else if (type == "Replace") {
        const auto pattern = n.find("pattern");
        if (pattern == n.end() || !pattern->is_object() || !pattern->contains("String")
            || !(*pattern)["String"].is_string())
            error("normalizer Replace: only literal {\"String\": ...} patterns are supported");
        spec.normalizer.push_back({ NormalizerStep::Kind::Replace, (*pattern)["String"].get<std::string>(),
            stringField(n, "content", "", "Replace") });
    } else if (type == "NFC") {
        // Accepted as the identity: text is expected to be NFC already (virtually all text is), and an NFC
        // table would be larger than everything else here.
    } else {
        error("normalizer '" + type + "' is not supported");
    }
}

void Parser::parsePreTokenizer(const json &p, BpeSpec &spec) const
{
    if (p.is_null())
        return;
    const std::string type = typeOf(p, "pre_tokenizer");
    PreTokenizerStep step;
    if (type == "Sequence") {
        const auto it = p.find("pretokenizers");
        if (it == p.end() || !it->is_array())
            error("pre_tokenizer Sequence has no 'pretokenizers' list");
        for (const json &child : *it)
            parsePreTokenizer(child, spec);
        return;
    }
    if (type == "ByteLevel") {
        step.kind = PreTokenizerStep::Kind::ByteLevel;
        step.addPrefixSpace = boolField(p, "add_prefix_space", true);
        step.useRegex = boolField(p, "use_regex", true);
        spec.byteLevel = true;
    } else if (type == "Metaspace") {
        step.kind = PreTokenizerStep::Kind::Metaspace;
        step.replacement = stringField(p, "replacement", "\xE2\x96\x81", "Metaspace");
        step.split = boolField(p, "split", true);
        std::string scheme = stringField(p, "prepend_scheme", "", "Metaspace");
        if (scheme.empty()) // older files: add_prefix_space
            scheme = boolField(p, "add_prefix_space", true) ? "always" : "never";
        if (scheme == "always")
            step.prepend = PreTokenizerStep::Prepend::Always;
        else if (scheme == "first")
            step.prepend = PreTokenizerStep::Prepend::First;
        else if (scheme == "never")
            step.prepend = PreTokenizerStep::Prepend::Never;
        else
            error("Metaspace prepend_scheme '" + scheme + "' is not supported");
    } else if (type == "Split") {
        step.kind = PreTokenizerStep::Kind::Split;
        const auto pattern = p.find("pattern");
        std::string regex;
        if (pattern != p.end() && pattern->is_object() && pattern->contains("Regex") && (*pattern)["Regex"].is_string())
            regex = (*pattern)["Regex"].get<std::string>();
        if (!splitPatternFromRegex(regex, step.pattern))
            error("Split pre-tokenizer pattern is not one of the supported GPT-2 / Llama 3 / Qwen2 regexes");
        if (stringField(p, "behavior", "Isolated", "Split") != "Isolated" || boolField(p, "invert", false))
            error("Split pre-tokenizer: only behavior Isolated without invert is supported");
    } else {
        error("pre_tokenizer '" + type + "' is not supported");
    }
    spec.preTokenizer.push_back(step);
}

void Parser::parseDecoder(const json &d, BpeSpec &spec, bool &sawDecoder) const
{
    if (d.is_null())
        return;
    const std::string type = typeOf(d, "decoder");
    if (type == "Sequence") {
        const auto it = d.find("decoders");
        if (it == d.end() || !it->is_array())
            error("decoder Sequence has no 'decoders' list");
        for (const json &child : *it)
            parseDecoder(child, spec, sawDecoder);
        return;
    }
    if (type == "ByteLevel") {
        spec.decoder = BpeDecoder::ByteLevel;
        sawDecoder = true;
    } else if (type == "Replace" || type == "Metaspace") {
        spec.decoder = BpeDecoder::SentencePiece;
        sawDecoder = true;
        if (type == "Metaspace") {
            const std::string scheme = stringField(d, "prepend_scheme", "", "Metaspace");
            spec.stripLeadingSpace = scheme.empty() ? boolField(d, "add_prefix_space", true) : scheme != "never";
        }
    } else if (type == "ByteFallback") {
        spec.decodeByteFallback = true;
    } else if (type == "Strip") {
        const auto start = d.find("start");
        if (stringField(d, "content", " ", "Strip") == " " && start != d.end() && start->is_number_integer()
            && start->get<int64_t>() > 0)
            spec.stripLeadingSpace = true;
    }
    // Fuse and others change nothing for a decode into one string.
}

// The token id a tokenizer_config.json entry names ("<s>" or {"content": "<s>", ...}), or -1.
int32_t configTokenId(const json &config, const char *key, const BpeSpec &spec)
{
    const auto it = config.find(key);
    if (it == config.end())
        return -1;
    std::string content;
    if (it->is_string())
        content = it->get<std::string>();
    else if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
        content = (*it)["content"].get<std::string>();
    if (content.empty())
        return -1;
    for (const AddedToken &t : spec.addedTokens)
        if (t.content == content)
            return t.id;
    return findPiece(spec.vocab, content);
}

int32_t firstPresent(const BpeSpec &spec, std::initializer_list<const char *> candidates)
{
    for (const char *c : candidates) {
        for (const AddedToken &t : spec.addedTokens)
            if (t.content == c)
                return t.id;
        if (const int32_t id = findPiece(spec.vocab, c); id >= 0)
            return id;
    }
    return -1;
}

// The BOS id of a TemplateProcessing post-processor (possibly inside a Sequence, as Llama 3 has it) whose
// single-sequence template starts with a special token (Llama 2: "<s> $A"), or -1.
int32_t templateBos(const json &post)
{
    if (!post.is_object() || !post.contains("type") || !post["type"].is_string())
        return -1;
    if (post["type"] == "Sequence") {
        if (!post.contains("processors") || !post["processors"].is_array())
            return -1;
        for (const json &p : post["processors"])
            if (const int32_t id = templateBos(p); id >= 0)
                return id;
        return -1;
    }
    if (post["type"] != "TemplateProcessing")
        return -1;
    const auto single = post.find("single");
    if (single == post.end() || !single->is_array() || single->empty())
        return -1;
    const json &first = (*single)[0];
    if (!first.is_object() || !first.contains("SpecialToken"))
        return -1;
    const json &st = first["SpecialToken"];
    if (!st.is_object() || !st.contains("id") || !st["id"].is_string())
        return -1;
    const std::string name = st["id"].get<std::string>();
    const auto specials = post.find("special_tokens");
    if (specials == post.end() || !specials->is_object() || !specials->contains(name))
        return -1;
    const json &entry = (*specials)[name];
    if (!entry.is_object() || !entry.contains("ids") || !entry["ids"].is_array() || entry["ids"].size() != 1
        || !entry["ids"][0].is_number_integer())
        return -1;
    const int64_t id = entry["ids"][0].get<int64_t>();
    return id >= 0 && id < INT32_MAX ? int32_t(id) : -1;
}

std::unique_ptr<Tokenizer> buildHfTokenizer(const std::string &jsonPath, const std::string &name)
{
    const json root = parseJson(jsonPath, name);
    const Parser parser(name);
    if (!root.is_object())
        parser.error("not a tokenizer.json (the top level is not an object)");

    BpeSpec spec;
    spec.sourceName = name;
    parser.parseModel(root, spec);
    parser.parseAddedTokens(root, spec);
    spec.special.resize(spec.pieces.size(), 0);
    if (spec.unkId < 0) { // unk_token may be an added token only
        const std::string unk = parser.stringField(root["model"], "unk_token", "", "model");
        for (const AddedToken &t : spec.addedTokens)
            if (!unk.empty() && t.content == unk)
                spec.unkId = t.id;
    }
    parser.parseNormalizer(root.value("normalizer", json()), spec);
    parser.parsePreTokenizer(root.value("pre_tokenizer", json()), spec);
    bool sawDecoder = false;
    parser.parseDecoder(root.value("decoder", json()), spec, sawDecoder);
    if (!sawDecoder)
        spec.decoder = spec.byteLevel ? BpeDecoder::ByteLevel : BpeDecoder::SentencePiece;
    // Byte tokens decode to their bytes whenever the model produces them, even where a file's decoder
    // lacks ByteFallback (some Metaspace-only files): "<0x0A>" in decoded text helps nobody.
    spec.decodeByteFallback = spec.decodeByteFallback || spec.byteFallback;

    // Describe what was loaded: the split pattern for byte-level files, "spm" for SentencePiece style.
    std::string kind = "spm-bpe";
    if (spec.byteLevel) {
        kind = "gpt2-bpe";
        for (const PreTokenizerStep &s : spec.preTokenizer)
            if (s.kind == PreTokenizerStep::Kind::Split)
                kind = s.pattern == SplitPattern::Llama3 ? "llama3-bpe"
                    : s.pattern == SplitPattern::Qwen2   ? "qwen2-bpe"
                                                         : "gpt2-bpe";
    }
    spec.displayName = kind + " (tokenizer.json)";

    // BOS/EOS and whether BOS is added: tokenizer_config.json when present, else the post-processor
    // template, else the customary token names.
    const int32_t fromTemplate = templateBos(root.value("post_processor", json()));
    spec.bosId = fromTemplate >= 0 && size_t(fromTemplate) < spec.pieces.size() ? fromTemplate : -1;
    spec.addBos = spec.bosId >= 0;
    if (spec.bosId < 0)
        spec.bosId = firstPresent(spec, { "<s>", "<|begin_of_text|>", "<|endoftext|>" });
    spec.eosId = firstPresent(spec, { "</s>", "<|end_of_text|>", "<|endoftext|>" });
    const fs::path configPath = fs::path(jsonPath).parent_path() / "tokenizer_config.json";
    std::error_code ec;
    if (fs::is_regular_file(configPath, ec)) {
        const json config = parseJson(configPath.string(), "tokenizer_config.json");
        if (config.is_object()) {
            if (const int32_t bos = configTokenId(config, "bos_token", spec); bos >= 0)
                spec.bosId = bos;
            if (const int32_t eos = configTokenId(config, "eos_token", spec); eos >= 0)
                spec.eosId = eos;
            if (const auto it = config.find("add_bos_token"); it != config.end() && it->is_boolean())
                spec.addBos = it->get<bool>();
        }
    }
    return makeBpeTokenizer(std::move(spec));
}

} // namespace

std::unique_ptr<Tokenizer> makeHfTokenizer(const std::string &jsonPath)
{
    const std::string name = fs::path(jsonPath).filename().string();
    try {
        return buildHfTokenizer(jsonPath, name);
    } catch (const json::exception &e) {
        // The parser checks types before reading them; this is the net for anything it missed.
        fail(name, std::string("unexpected structure (") + e.what() + ")");
    }
}

} // namespace qs::core
