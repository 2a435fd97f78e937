#include "eval/Calibration.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/Error.h"
#include "common/Sha256.h"

namespace qs::core {

namespace {

inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

bool isBlank(std::string_view line)
{
    return std::all_of(
        line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; });
}

std::string_view trim(std::string_view s)
{
    const auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; };
    while (!s.empty() && ws(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && ws(s.back()))
        s.remove_suffix(1);
    return s;
}

void checkCounts(int samples, int seqLen, std::string_view source)
{
    if (samples <= 0)
        fail(std::string(source),
            "the number of calibration samples must be positive (got " + std::to_string(samples) + ")");
    if (seqLen <= 0)
        fail(std::string(source),
            "the calibration sequence length must be positive (got " + std::to_string(seqLen) + ")");
}

} // namespace

uint64_t SplitMix64::next()
{
    uint64_t z = (m_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

Xoshiro256::Xoshiro256(uint64_t seed)
{
    // splitmix64 never yields four zeros in a row, so the all-zero state (a fixed point) cannot occur.
    SplitMix64 sm(seed);
    for (uint64_t &s : m_s)
        s = sm.next();
}

uint64_t Xoshiro256::next()
{
    const uint64_t result = rotl(m_s[1] * 5, 7) * 9;
    const uint64_t t = m_s[1] << 17;
    m_s[2] ^= m_s[0];
    m_s[3] ^= m_s[1];
    m_s[1] ^= m_s[2];
    m_s[0] ^= m_s[3];
    m_s[2] ^= t;
    m_s[3] = rotl(m_s[3], 45);
    return result;
}

uint64_t Xoshiro256::below(uint64_t n)
{
    if (n == 0)
        fail("", "Xoshiro256::below: empty range");
    // 2^64 mod n values at the bottom would make r % n favour small results; reject them.
    const uint64_t reject = (0 - n) % n;
    for (;;) {
        const uint64_t r = next();
        if (r >= reject)
            return r % n;
    }
}

const char *calibrationModeName(CalibrationMode mode)
{
    switch (mode) {
    case CalibrationMode::Windows:
        return "windows";
    case CalibrationMode::Documents:
        return "documents";
    }
    return "?";
}

int64_t CalibrationSet::totalTokens() const
{
    int64_t n = 0;
    for (const CalibrationSample &s : samples)
        n += int64_t(s.tokens.size());
    return n;
}

nlohmann::json CalibrationSet::toJson() const
{
    nlohmann::json j;
    j["text_path"] = textPath;
    j["text_sha256"] = textSha256;
    j["tokenizer"] = tokenizer;
    j["mode"] = calibrationModeName(mode);
    j["samples"] = samples.size();
    j["requested_samples"] = requestedSamples;
    j["seq_len"] = seqLen;
    j["seed"] = seed;
    j["rng"] = "xoshiro256** seeded by splitmix64";
    j["source_tokens"] = sourceTokens;
    j["total_tokens"] = totalTokens();
    std::vector<int64_t> origins;
    origins.reserve(samples.size());
    for (const CalibrationSample &s : samples)
        origins.push_back(s.origin);
    j["origins"] = origins;
    if (mode == CalibrationMode::Documents) {
        j["separator"] = separator;
        j["source_documents"] = sourceDocuments;
    }
    return j;
}

CalibrationSet makeCalibrationWindows(
    const std::vector<int32_t> &tokens, int samples, int seqLen, uint64_t seed, std::string_view sourceForErrors)
{
    checkCounts(samples, seqLen, sourceForErrors);
    const int64_t n = int64_t(tokens.size());
    if (n < seqLen)
        fail(std::string(sourceForErrors),
            "has " + std::to_string(n) + " tokens, fewer than the calibration sequence length " + std::to_string(seqLen)
                + "; use a longer text or a shorter sequence length");

    CalibrationSet set;
    set.mode = CalibrationMode::Windows;
    set.seed = seed;
    set.requestedSamples = samples;
    set.seqLen = seqLen;
    set.sourceTokens = n;
    set.samples.reserve(size_t(samples));
    Xoshiro256 rng(seed);
    // Every start in [0, n - L] is possible, the last one included (the GPTQ reference's randint stops one
    // short; with our own generator the sequences cannot match the reference anyway).
    const uint64_t starts = uint64_t(n - seqLen) + 1;
    for (int i = 0; i < samples; ++i) {
        const int64_t start = int64_t(rng.below(starts));
        CalibrationSample s;
        s.origin = start;
        s.tokens.assign(tokens.begin() + start, tokens.begin() + start + seqLen);
        set.samples.push_back(std::move(s));
    }
    return set;
}

std::vector<std::string> splitDocuments(std::string_view text, std::string_view separator)
{
    std::vector<std::string> docs;
    if (!separator.empty()) {
        size_t pos = 0;
        for (;;) {
            const size_t hit = text.find(separator, pos);
            const std::string_view piece
                = text.substr(pos, hit == std::string_view::npos ? std::string_view::npos : hit - pos);
            docs.emplace_back(trim(piece));
            if (hit == std::string_view::npos)
                break;
            pos = hit + separator.size();
        }
        // Text ending with the separator leaves one empty tail; it is not a document.
        if (docs.size() > 1 && docs.back().empty())
            docs.pop_back();
        return docs;
    }

    // Blank-line mode: a document is a maximal run of non-blank lines.
    std::string current;
    bool inDoc = false;
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos)
            eol = text.size();
        const std::string_view line = text.substr(pos, eol - pos);
        if (isBlank(line)) {
            if (inDoc) {
                docs.emplace_back(trim(current));
                current.clear();
                inDoc = false;
            }
        } else {
            if (inDoc)
                current += '\n';
            current += line;
            inDoc = true;
        }
        pos = eol + 1;
    }
    if (inDoc)
        docs.emplace_back(trim(current));
    return docs;
}

CalibrationSet makeCalibrationDocuments(const std::vector<std::vector<int32_t>> &documents, int samples, int seqLen,
    uint64_t seed, std::string_view sourceForErrors)
{
    checkCounts(samples, seqLen, sourceForErrors);
    std::vector<int64_t> nonEmpty;
    int64_t sourceTokens = 0;
    for (size_t i = 0; i < documents.size(); ++i) {
        sourceTokens += int64_t(documents[i].size());
        if (!documents[i].empty())
            nonEmpty.push_back(int64_t(i));
    }
    if (nonEmpty.empty())
        fail(std::string(sourceForErrors), "has no non-empty documents to calibrate on");

    CalibrationSet set;
    set.mode = CalibrationMode::Documents;
    set.seed = seed;
    set.requestedSamples = samples;
    set.seqLen = seqLen;
    set.sourceTokens = sourceTokens;
    set.sourceDocuments = int64_t(nonEmpty.size());

    std::vector<int64_t> chosen = nonEmpty;
    if (int64_t(samples) < int64_t(nonEmpty.size())) {
        // Partial Fisher-Yates: the first `samples` slots become a uniform choice without replacement.
        Xoshiro256 rng(seed);
        for (size_t i = 0; i < size_t(samples); ++i) {
            const size_t j = i + size_t(rng.below(uint64_t(chosen.size() - i)));
            std::swap(chosen[i], chosen[j]);
        }
        chosen.resize(size_t(samples));
        std::sort(chosen.begin(), chosen.end());
    }
    set.samples.reserve(chosen.size());
    for (int64_t index : chosen) {
        const std::vector<int32_t> &doc = documents[size_t(index)];
        CalibrationSample s;
        s.origin = index;
        s.tokens.assign(doc.begin(), doc.begin() + std::min<int64_t>(int64_t(doc.size()), seqLen));
        set.samples.push_back(std::move(s));
    }
    return set;
}

void describeCalibrationText(CalibrationSet &set, const std::string &textPath, const std::string &tokenizer)
{
    set.textSha256 = sha256FileHex(textPath);
    set.textPath = textPath;
    set.tokenizer = tokenizer;
}

} // namespace qs::core
