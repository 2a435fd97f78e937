// libFuzzer entry point for the model.safetensors.index.json parser: any input must either parse or throw
// qs::core::Error. Seeds: tests/fuzz-corpus/hf_index/ (replayed by tests/core/tst_fuzzreplay_hf.cpp).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/Error.h"
#include "io/HfConfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try {
        (void)qs::core::parseHfShardIndex(
            std::string_view(reinterpret_cast<const char *>(data), size), "model.safetensors.index.json");
    } catch (const qs::core::Error &) {
        // Rejected cleanly.
    }
    return 0;
}
