// libFuzzer entry point for the safetensors header parser (formats.md 1.3): any input must either parse or
// throw qs::core::Error; the sanitizers catch everything else. Inputs that parse also have the first and
// last row of each float tensor converted, since readers trust the offsets the parser validated.
// Seeds: tests/fuzz-corpus/safetensors_header/ (replayed by tests/core/tst_fuzzreplay_hf.cpp).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/Error.h"
#include "io/RawTensorData.h"
#include "io/Safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try {
        const qs::core::SafetensorsHeader h = qs::core::Safetensors::parseHeader(data, size, size, "fuzz.safetensors");
        std::vector<float> row;
        for (const qs::core::SafetensorsEntry &t : h.tensors) {
            const auto dtype = t.floatDType();
            if (!dtype || t.numel == 0 || t.shape.size() > 2)
                continue;
            const int64_t rows = t.shape.size() == 2 ? int64_t(t.shape[0]) : 1;
            const int64_t cols = int64_t(t.numel) / rows;
            const qs::core::RawTensorData tensor(
                nullptr, data + h.dataOffset + t.begin, *dtype, rows, cols, "fuzz.safetensors", t.name);
            row.resize(size_t(cols));
            tensor.readRows(0, 1, row.data());
            tensor.readRows(rows - 1, 1, row.data());
        }
    } catch (const qs::core::Error &) {
        // Rejected cleanly: the expected outcome for most inputs.
    }
    return 0;
}
