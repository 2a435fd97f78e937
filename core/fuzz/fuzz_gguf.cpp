// libFuzzer entry point for the GGUF parser: any input must either parse or throw qs::core::Error; the
// sanitizers catch everything else. Inputs that parse also have rows of their tensors decoded and a model
// built from them, since both trust what the parser validated (offsets, sizes, block multiples).
// Seeds: tests/fuzz-corpus/gguf/ (tests/core/tst_fuzzreplay_gguf.cpp replays them in every test run).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/Error.h"
#include "io/GgufBlocks.h"
#include "io/GgufFile.h"
#include "io/GgufReader.h"

namespace {

// Keeps one decoded row small enough for the fuzzer's memory limit whatever the header claims.
constexpr uint64_t kMaxRowElements = uint64_t(1) << 20;

void decodeSomeRows(const qs::core::GgufFile &file)
{
    std::vector<float> row;
    for (const qs::core::GgufTensorInfo &t : file.tensors()) {
        if (!t.type->dequantize || t.rowCount() == 0 || t.rowLength() > kMaxRowElements)
            continue;
        row.resize(size_t(t.rowLength()));
        const uint64_t rowBytes = qs::core::ggmlBytesFor(*t.type, t.rowLength());
        for (uint64_t r : { uint64_t(0), t.rowCount() - 1 })
            t.type->dequantize(file.tensorData(t) + r * rowBytes, row.data(), int64_t(t.rowLength()));
    }
}

void readModelRows(const qs::core::Model &model)
{
    std::vector<float> row;
    for (const qs::core::Tensor &t : model.tensors) {
        if (t.rows == 0 || uint64_t(t.cols) > kMaxRowElements)
            continue;
        row.resize(size_t(t.cols));
        model.readRows(t, t.rows - 1, 1, row.data());
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    try {
        const qs::core::GgufFile file = qs::core::GgufFile::parse(data, size, "fuzz.gguf");
        decodeSomeRows(file);
        const std::unique_ptr<qs::core::Model> model = qs::core::GgufReader::build(file, "fuzz.gguf");
        readModelRows(*model);
    } catch (const qs::core::Error &) {
        // Rejected cleanly: the expected outcome for most inputs.
    }
    return 0;
}
