#pragma once
// Splitting text on "added" tokens (Hugging Face added_tokens, llama.cpp user-defined tokens) before the
// model's own algorithm runs: wherever a token's content occurs verbatim, it becomes that token id and the
// text around it is tokenized separately.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace qs::core {

struct AddedToken
{
    std::string content;
    int32_t id = -1;
    bool special = false; // decode() renders special tokens as nothing
    bool lstrip = false; // the match swallows whitespace on its left
    bool rstrip = false; // ... and on its right
    bool singleWord = false; // only matches when not inside a word
};

// Either a stretch of text to tokenize normally (token < 0) or one added token. offset is where the
// stretch starts in the original text (Metaspace's "first" prepend scheme needs to know).
struct TextFragment
{
    std::string_view text;
    int32_t token = -1;
    size_t offset = 0;
};

class AddedTokenMatcher
{
public:
    AddedTokenMatcher() = default;
    explicit AddedTokenMatcher(std::vector<AddedToken> tokens);

    bool empty() const { return m_tokens.empty(); }
    const std::vector<AddedToken> &tokens() const { return m_tokens; }

    // Leftmost-longest matching, as Hugging Face's added-vocabulary matcher does. Empty text stretches are
    // left out; text without matches gives one fragment.
    std::vector<TextFragment> split(std::string_view text) const;

private:
    std::vector<AddedToken> m_tokens;
    // Indices into m_tokens by first byte, longest content first, so the first hit is the longest.
    std::vector<std::vector<uint32_t>> m_byFirstByte;
};

} // namespace qs::core
