#include "eval/TextSource.h"

#include <fstream>
#include <sstream>

#include "common/Error.h"
#include "common/Sha256.h"
#include "eval/Evaluate.h"
#include "tokenizer/Tokenizer.h"

namespace qs::core {

std::string readTextFile(const std::string &path, uint64_t maxBytes)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        fail(path, "cannot open the text file");
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    if (size < 0)
        fail(path, "cannot read the text file");
    if (uint64_t(size) > maxBytes)
        fail(path, "text file of " + std::to_string(size) + " bytes is larger than the limit of " +
                       std::to_string(maxBytes) + " bytes");
    if (size == 0)
        fail(path, "the text file is empty");
    in.seekg(0);
    std::string text(size_t(size), '\0');
    if (!in.read(text.data(), size))
        fail(path, "cannot read the text file");
    return text;
}

TokenizedText tokenizeTextFile(const Model &model, const std::string &path, Progress &progress, uint64_t maxBytes)
{
    TokenizedText out;
    out.path = path;
    progress.message("reading " + path);
    const std::string text = readTextFile(path, maxBytes);
    out.bytes = text.size();
    out.sha256 = sha256Hex(text);
    progress.throwIfCancelled();
    const std::unique_ptr<Tokenizer> tokenizer = loadTokenizer(model);
    out.tokenizer = tokenizer->name();
    progress.message("tokenizing");
    out.tokens = withLeadingBos(model.hparams, tokenizer->encode(text));
    progress.throwIfCancelled();
    return out;
}

} // namespace qs::core
