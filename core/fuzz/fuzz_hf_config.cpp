// libFuzzer entry point for the config.json parser (and the generation_config.json reader that runs on the
// same kind of text): any input must either parse or throw qs::core::Error.
// Seeds: tests/fuzz-corpus/hf_config/ (replayed by tests/core/tst_fuzzreplay_hf.cpp).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/Error.h"
#include "io/HfConfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const std::string_view text(reinterpret_cast<const char *>(data), size);
    try {
        qs::core::HfConfig config = qs::core::parseHfConfig(text, "config.json");
        qs::core::applyGenerationConfig(text, "generation_config.json", config);
    } catch (const qs::core::Error &) {
        // Rejected cleanly.
    }
    return 0;
}
