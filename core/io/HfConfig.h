#pragma once
// Parsers for the JSON files of a Hugging Face model folder (formats.md 1.6-1.8): config.json,
// model.safetensors.index.json and generation_config.json. They work on text in memory so that tests and
// fuzzers need no files; HfFolderReader reads the files and builds the Model.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/Model.h"

namespace qs::core {

// quantization_config of a GPTQ checkpoint (formats.md §3.5), as far as reading the weights needs it.
struct GptqQuantConfig
{
    int bits = 4;          // 2, 3, 4 or 8
    int groupSize = 128;   // −1: one group per output column
    bool descAct = false;  // act-order (g_idx non-monotonic)
    bool sym = true;
    std::string checkpointFormat = "gptq"; // "gptq" (v1: qzeros hold zero − 1) or "gptq_v2" (true zeros)
};

struct HfConfig
{
    HyperParams hparams;
    std::optional<GptqQuantConfig> gptq; // set for a GPTQ checkpoint (quant_method "gptq")
    std::string dtype; // torch_dtype (v4) or dtype (v5): "float32", "bfloat16", ...; empty when absent
    bool hasBosTokenId = false; // false when config.json leaves the id out (or null): generation_config.json may say
    bool hasEosTokenId = false;
    std::vector<std::string> warnings;
};

// Parses config.json of a llama, mistral or qwen2 checkpoint (transformers v4 and v5 spellings).
// Throws Error("<fileForErrors>: ...") on malformed JSON, a missing or ill-typed key, a value out of
// range, or an architecture this reader does not handle.
HfConfig parseHfConfig(std::string_view text, const std::string &fileForErrors);

// Fills in bos/eos token ids that config.json did not give, from generation_config.json text.
// Throws Error naming fileForErrors when the text is not a JSON object or the ids are ill-typed.
void applyGenerationConfig(std::string_view text, const std::string &fileForErrors, HfConfig &config);

struct HfShardIndex
{
    std::map<std::string, std::string> weightMap; // tensor name -> shard file name (no directories)
};

// Parses model.safetensors.index.json. Shard names must be plain file names in the same folder.
HfShardIndex parseHfShardIndex(std::string_view text, const std::string &fileForErrors);

} // namespace qs::core
