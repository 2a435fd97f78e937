#pragma once
// Hand-written scanners for the regular expressions byte-level BPE tokenizers split text with before BPE.
// std::regex has no \p{L} / \p{N}, so each pattern is matched by a scanner that follows the regex's own
// semantics (alternatives tried in order, greedy quantifiers with backtracking where it matters), using the
// generated Unicode tables.
//
// Gpt2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//         \s*[\r\n]+|\s+(?!\S)|\s+
// Qwen2:  the Llama3 pattern with \p{N} instead of \p{N}{1,3} (one digit per piece).
//
// Malformed UTF-8 bytes are classed like punctuation (neither letter, number nor space), as the U+FFFD that
// other implementations substitute would be; the pieces are byte ranges of the input, so no byte is lost.
// The (?i:...) contractions fold ASCII case only.

#include <string_view>
#include <vector>

namespace qs::core {

enum class SplitPattern { Gpt2, Llama3, Qwen2 };

// Splits text into consecutive pieces that together cover it exactly (empty text gives no pieces).
std::vector<std::string_view> splitText(std::string_view text, SplitPattern pattern);

// Recognises a Hugging Face Split pre-tokenizer's regex as one of the patterns above; false when it is
// none of them.
bool splitPatternFromRegex(std::string_view regex, SplitPattern &pattern);

} // namespace qs::core
