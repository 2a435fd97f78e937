#pragma once
// The format-neutral description of an opened model: hyper-parameters, and for each tensor its canonical
// name, role, block, shape, stored dtype and float32 access by rows. Readers (core/io) build it; nothing
// here reads tensor data until readRows()/readMatrix() is called.
//
// Conventions (see docs/ARCHITECTURE.md):
// - Canonical names are Hugging Face Llama module paths without ".weight": "model.embed_tokens",
//   "model.layers.3.self_attn.q_proj", "model.layers.3.input_layernorm", "model.norm", "lm_head".
//   Biases keep their suffix: "model.layers.3.self_attn.q_proj.bias".
// - Shapes are [rows, cols] = [out_features, in_features] as in PyTorch nn.Linear; 1-D tensors are [1, n].
// - q_proj/k_proj rows (and their biases) are in Hugging Face "rotate-half" order whatever the source
//   format: GGUF and llama2.c readers apply the Meta -> HF permutation (formats.md 1.10) on read.
// - A tied lm_head is listed once more as "lm_head" sharing the embedding's data, with tied = true.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qs::core {

// GPTQ: a GPTQ checkpoint's packed qweight/qzeros/scales/g_idx (io/GptqTensorData.h); not a ggml type.
enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q6_K, GPTQ };
const char *dtypeName(DType t); // "F32", "F16", "BF16", "Q8_0", ..., "GPTQ"

enum class TensorRole : uint8_t { Embed, Q, K, V, O, Gate, Up, Down, Norm, LmHead, Bias };
const char *roleName(TensorRole r); // "embed", "q", ..., "lm_head", "bias" (cli.md names)
bool isLinearRole(TensorRole r);    // q, k, v, o, gate, up, down (and lm_head)

enum class LinearInput : uint8_t; // model/ActivationObserver.h
struct RunInfo;                    // quant/RunDir.h

// Rewrites the input of the linear layers of one (block, LinearInput) in place before they read it
// (x: tokens × cols, row-major; block −1 is the LM head's input), e.g. simulated INT8 activation
// quantization of a quantized run. Called from the thread running the forward pass.
using LinearInputTransform = std::function<void(int block, LinearInput input, float *x, int64_t tokens, int64_t cols)>;

struct RopeScaling
{
    std::string type = "none"; // none | linear | dynamic | yarn | longrope | llama3
    double factor = 1.0;
    double lowFreqFactor = 1.0;
    double highFreqFactor = 4.0;
    int originalMaxPositions = 0;
};

struct HyperParams
{
    std::string architecture = "llama"; // model_type: llama | mistral | qwen2
    int hiddenSize = 0;
    int intermediateSize = 0;
    int numLayers = 0;
    int numHeads = 0;
    int numKvHeads = 0;
    int headDim = 0;
    int vocabSize = 0;
    int maxPositions = 0;
    double rmsEps = 1e-5;
    double ropeTheta = 10000.0;
    RopeScaling ropeScaling;
    bool tiedEmbeddings = false;
    bool attentionBias = false; // q/k/v (and o for Llama) carry biases; Qwen2 always has q/k/v biases
    int bosTokenId = 1;
    int eosTokenId = 2;
    bool addBos = true;
    bool synthetic = false; // generated demo model (labelled in the UI)
};

// Produces rows of one tensor as float32. Implemented per format; must be safe to call from several
// threads at once (readers only touch the read-only mapping).
class TensorData
{
public:
    virtual ~TensorData() = default;
    // out receives rowCount * cols floats. Throws Error on out-of-range rows.
    virtual void readRows(int64_t firstRow, int64_t rowCount, float *out) const = 0;
    // The tensor's bytes as stored (Tensor::storedBytes of them, typically a view into the file mapping),
    // for raw-read benchmarks and checksums; nullptr when the format cannot hand out one contiguous block.
    virtual const uint8_t *storedData() const { return nullptr; }
};

struct Tensor
{
    std::string name;       // canonical name (see above)
    std::string sourceName; // name in the file, e.g. "blk.0.attn_q.weight"
    TensorRole role = TensorRole::Norm;
    int block = -1; // transformer block index, -1 outside blocks
    int64_t rows = 0;
    int64_t cols = 0;
    DType dtype = DType::F32; // as stored
    uint64_t storedBytes = 0;
    bool tied = false;
    std::shared_ptr<const TensorData> data;

    int64_t numel() const { return rows * cols; }
};

class Model
{
public:
    std::string format; // "safetensors" | "gguf" | "llama2c" | "run" (a quantization run directory)
    std::string path;   // what the user opened (folder or file)
    std::string tokenizerPath; // tokenizer.json / tokenizer.bin / the GGUF itself; empty when none
    HyperParams hparams;
    std::vector<Tensor> tensors; // embed, then blocks in order, then norm, lm_head
    std::vector<std::string> warnings;

    // Set only for quantized runs (format "run", core/io/RunReader.h and quant/RunDir.h): the simulated
    // activation quantization of the run's W8A8 / ZeroQuant layers, which ForwardEngine applies unless
    // ForwardOptions::inputTransform is given, so evaluating a run directory measures the same model the
    // pipeline evaluated; and what the run was made from. Empty / null for ordinary models.
    LinearInputTransform inputTransform;
    std::shared_ptr<const RunInfo> runInfo;

    const Tensor *find(const std::string &name) const;
    const Tensor &tensor(const std::string &name) const; // throws Error naming the model when absent
    int64_t parameterCount() const;                      // tied tensors counted once

    void readRows(const Tensor &t, int64_t firstRow, int64_t rowCount, float *out) const;
    std::vector<float> readMatrix(const Tensor &t) const; // rows*cols floats, row-major
};

// Canonical name of a weight: layerName(3, TensorRole::Q) == "model.layers.3.self_attn.q_proj".
std::string layerName(int block, TensorRole role);

// Row permutations between Meta/GGUF (interleaved pairs) and HF (rotate-half) order, per head of headDim
// rows (formats.md 1.10). hfRowFromMeta(metaRow) gives the HF row holding meta row metaRow, and back.
int64_t metaRowToHfRow(int64_t metaRow, int headDim);
int64_t hfRowToMetaRow(int64_t hfRow, int headDim);

// Checks that every tensor a Llama-family model needs is present with shapes matching hparams;
// throws Error("<file>: ...") naming the first problem. Used by every reader after building the model.
void validateLlamaModel(const Model &model, const std::string &fileForErrors);

} // namespace qs::core
