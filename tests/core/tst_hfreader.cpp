// Hugging Face folders: config.json parsing (v4 and v5 spellings), shard indexes, the real stories260K
// folders (F32 single file and BF16 shards), and folders built or corrupted in a temporary directory.
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <functional>
#include <thread>

#include "HfTestSupport.h"
#include "TestData.h"
#include "common/Error.h"
#include "common/Half.h"
#include "io/FormatRegistry.h"
#include "io/HfConfig.h"
#include "io/HfFolderReader.h"

using namespace qs::core;
using namespace qs::test;
using nlohmann::json;

namespace {

const char *kBaseConfig = R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":64,
    "intermediate_size":172,"num_hidden_layers":5,"num_attention_heads":8,"num_key_value_heads":4,
    "vocab_size":512})";

// Applies a JSON merge patch to the base config; the string "__null__" stands for an explicit null (a
// merge patch's null deletes the key instead).
std::string patchedConfig(const QByteArray &patch)
{
    json config = json::parse(kBaseConfig);
    config.merge_patch(json::parse(patch.toStdString()));
    std::function<void(json &)> nullify = [&](json &j) {
        for (auto &v : j)
            if (v.is_string() && v.get<std::string>() == "__null__")
                v = nullptr;
            else if (v.is_structured())
                nullify(v);
    };
    nullify(config);
    return config.dump();
}

void checkStoriesHparams(const Model &m)
{
    const HyperParams &h = m.hparams;
    QCOMPARE(QString::fromStdString(h.architecture), QStringLiteral("llama"));
    QCOMPARE(h.hiddenSize, 64);
    QCOMPARE(h.intermediateSize, 172);
    QCOMPARE(h.numLayers, 5);
    QCOMPARE(h.numHeads, 8);
    QCOMPARE(h.numKvHeads, 4);
    QCOMPARE(h.headDim, 8);
    QCOMPARE(h.vocabSize, 512);
    QCOMPARE(h.maxPositions, 512);
    QVERIFY(std::fabs(h.rmsEps - 1e-5) < 1e-9);
    QCOMPARE(h.ropeTheta, 10000.0);
    QCOMPARE(QString::fromStdString(h.ropeScaling.type), QStringLiteral("none"));
    QCOMPARE(h.tiedEmbeddings, false);
    QCOMPARE(h.attentionBias, false);
    QCOMPARE(h.bosTokenId, 1);
    QCOMPARE(h.eosTokenId, 2);
    QCOMPARE(h.addBos, true);
    QCOMPARE(h.synthetic, false);
}

QString copyOf(const QTemporaryDir &dir, const char *relative)
{
    const QString src = testDataPath(QString::fromUtf8(relative));
    const QString dst = dir.filePath(QFileInfo(src).fileName());
    copyFolder(src, dst);
    return dst;
}

void editJson(const QString &path, const std::function<void(json &)> &edit)
{
    json j = json::parse(readAll(path).toStdString());
    edit(j);
    writeAll(path, QByteArray::fromStdString(j.dump(2)));
}

void editTensors(const QString &path, const std::function<void(std::vector<TensorSpec> &)> &edit, int align = 8)
{
    std::vector<TensorSpec> tensors = tensorsOf(readAll(path));
    edit(tensors);
    writeAll(path, buildSafetensors(tensors, align));
}

TensorSpec *findSpec(std::vector<TensorSpec> &tensors, const std::string &name)
{
    for (TensorSpec &t : tensors)
        if (t.name == name)
            return &t;
    return nullptr;
}

void removeSpec(std::vector<TensorSpec> &tensors, const std::string &name)
{
    std::erase_if(tensors, [&](const TensorSpec &t) { return t.name == name; });
}

std::vector<float> toFloats(const QByteArray &bytes)
{
    std::vector<float> v(size_t(bytes.size()) / 4);
    std::memcpy(v.data(), bytes.constData(), v.size() * 4);
    return v;
}

QByteArray rampBytes(int n, float scale)
{
    std::vector<float> v(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
        v[size_t(i)] = scale * float(i + 1);
    return floatBytes(v);
}

} // namespace

class TestHfReader : public QObject
{
    Q_OBJECT
private slots:
    // ---- the real folders -------------------------------------------------------------------------------

    void opensRealFolders_data()
    {
        QTest::addColumn<QString>("relative");
        QTest::addColumn<int>("dtype");
        QTest::addColumn<bool>("viaRegistry");
        const int f32 = int(DType::F32), bf16 = int(DType::BF16);
        QTest::newRow("F32 folder") << "models/stories260K-hf" << f32 << false;
        QTest::newRow("F32 config.json") << "models/stories260K-hf/config.json" << f32 << false;
        QTest::newRow("F32 model.safetensors") << "models/stories260K-hf/model.safetensors" << f32 << false;
        QTest::newRow("F32 registry") << "models/stories260K-hf" << f32 << true;
        QTest::newRow("BF16 folder") << "models/stories260K-hf-bf16-sharded" << bf16 << false;
        QTest::newRow("BF16 a shard") << "models/stories260K-hf-bf16-sharded/model-00002-of-00002.safetensors" << bf16
                                      << false;
        QTest::newRow("BF16 the index") << "models/stories260K-hf-bf16-sharded/model.safetensors.index.json" << bf16
                                        << false;
        QTest::newRow("BF16 registry") << "models/stories260K-hf-bf16-sharded" << bf16 << true;
    }
    void opensRealFolders()
    {
        QFETCH(QString, relative);
        QFETCH(int, dtype);
        QFETCH(bool, viaRegistry);
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf");
        const QString full = testDataPath(relative);
        QVERIFY(HfFolderReader::probe(str(full)));
        const auto model = viaRegistry ? openModel(str(full)) : HfFolderReader::open(str(full));
        checkStoriesHparams(*model);
        QCOMPARE(QString::fromStdString(model->format), QStringLiteral("safetensors"));
        QCOMPARE(QString::fromStdString(model->path), full);
        QVERIFY(QString::fromStdString(model->tokenizerPath).endsWith(QStringLiteral("/tokenizer.json")));
        QVERIFY(QFileInfo::exists(QString::fromStdString(model->tokenizerPath)));
        QVERIFY2(model->warnings.empty(), model->warnings.empty() ? "" : model->warnings.front().c_str());
        QCOMPARE(model->tensors.size(), size_t(48));
        for (const Tensor &t : model->tensors) {
            QCOMPARE(int(t.dtype), dtype);
            QVERIFY(!t.tied);
            QVERIFY(t.data);
            QCOMPARE(t.storedBytes, uint64_t(t.numel()) * (dtype == int(DType::F32) ? 4 : 2));
        }
        QCOMPARE(model->parameterCount(),
            int64_t(2 * 512 * 64 + 64 + 5 * (2 * 64 + 64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64)));
    }

    void tensorsAreCanonical()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf");
        const auto model = HfFolderReader::open(str(path));
        const std::vector<Tensor> &ts = model->tensors;
        // Order: embedding, blocks in order, final norm, lm_head.
        QCOMPARE(QString::fromStdString(ts.front().name), QStringLiteral("model.embed_tokens"));
        QCOMPARE(QString::fromStdString(ts[ts.size() - 2].name), QStringLiteral("model.norm"));
        QCOMPARE(QString::fromStdString(ts.back().name), QStringLiteral("lm_head"));
        const char *blockOrder[] = { "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
            "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" };
        for (int b = 0; b < 5; ++b)
            for (int i = 0; i < 9; ++i) {
                const Tensor &t = ts[size_t(1 + 9 * b + i)];
                QCOMPARE(t.name, "model.layers." + std::to_string(b) + "." + blockOrder[i]);
                QCOMPARE(t.sourceName, t.name + ".weight");
                QCOMPARE(t.block, b);
            }
        const Tensor &q = model->tensor("model.layers.3.self_attn.q_proj");
        QCOMPARE(q.role, TensorRole::Q);
        QCOMPARE(q.rows, int64_t(64));
        QCOMPARE(q.cols, int64_t(64));
        QCOMPARE(model->tensor("model.layers.3.self_attn.k_proj").rows, int64_t(32));
        QCOMPARE(model->tensor("model.layers.0.mlp.down_proj").role, TensorRole::Down);
        QCOMPARE(model->tensor("model.layers.0.mlp.down_proj").cols, int64_t(172));
        const Tensor &norm = model->tensor("model.layers.1.post_attention_layernorm");
        QCOMPARE(norm.role, TensorRole::Norm);
        QCOMPARE(norm.rows, int64_t(1));
        QCOMPARE(norm.cols, int64_t(64));
        QCOMPARE(model->tensor("model.norm").block, -1);
        QCOMPARE(model->tensor("lm_head").role, TensorRole::LmHead);
        QCOMPARE(model->tensor("model.embed_tokens").role, TensorRole::Embed);

        // Rows come straight from the file.
        const QByteArray raw = readAll(path + QStringLiteral("/model.safetensors"));
        const SplitFile split = splitSafetensors(raw);
        const auto begin = split.header["model.layers.3.self_attn.q_proj.weight"]["data_offsets"][0].get<int>();
        std::vector<float> rows(3 * 64);
        model->readRows(q, 5, 3, rows.data());
        QCOMPARE(std::memcmp(rows.data(), split.data.constData() + begin + 5 * 64 * 4, rows.size() * 4), 0);
    }

    void bf16MatchesF32WithinRounding()
    {
        QS_REQUIRE_TESTDATA(f32Path, "models/stories260K-hf");
        QS_REQUIRE_TESTDATA(bf16Path, "models/stories260K-hf-bf16-sharded");
        const auto f32 = HfFolderReader::open(str(f32Path));
        const auto bf16 = HfFolderReader::open(str(bf16Path));
        QCOMPARE(bf16->tensors.size(), f32->tensors.size());
        const float tolerance = std::ldexp(1.0f, -8); // bf16 keeps 8 significant bits
        for (const Tensor &t : f32->tensors) {
            const Tensor &u = bf16->tensor(t.name);
            QCOMPARE(u.rows, t.rows);
            QCOMPARE(u.cols, t.cols);
            const std::vector<float> a = f32->readMatrix(t);
            const std::vector<float> b = bf16->readMatrix(u);
            for (size_t i = 0; i < a.size(); ++i)
                if (!(std::fabs(a[i] - b[i]) <= tolerance * std::fabs(a[i]) + 1e-30f))
                    QFAIL(qPrintable(QStringLiteral("%1[%2]: %3 vs %4")
                                         .arg(QString::fromStdString(t.name))
                                         .arg(i)
                                         .arg(a[i])
                                         .arg(b[i])));
        }
    }

    void rowRangesAreChecked()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf");
        const auto model = HfFolderReader::open(str(path));
        const Tensor &t = model->tensor("model.layers.0.self_attn.k_proj");
        std::vector<float> out(64 * 64);
        QS_EXPECT_ERROR(t.data->readRows(31, 2, out.data()), "k_proj", "out of range");
        QS_EXPECT_ERROR(t.data->readRows(-1, 1, out.data()), "out of range");
        QS_EXPECT_ERROR(t.data->readRows(0, -1, out.data()), "out of range");
        t.data->readRows(32, 0, out.data()); // an empty read at the end is fine
        t.data->readRows(31, 1, out.data());
    }

    void concurrentReadsAgree()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf-bf16-sharded");
        const auto model = HfFolderReader::open(str(path));
        std::vector<std::vector<float>> expected;
        for (const Tensor &t : model->tensors)
            expected.push_back(model->readMatrix(t));
        std::atomic<int> mismatches { 0 };
        std::vector<std::thread> threads;
        for (int k = 0; k < 4; ++k)
            threads.emplace_back([&, k] {
                for (int rep = 0; rep < 3; ++rep)
                    for (size_t i = 0; i < model->tensors.size(); ++i) {
                        const Tensor &t = model->tensors[(i + size_t(k) * 7) % model->tensors.size()];
                        std::vector<float> got(size_t(t.numel()));
                        for (int64_t r = 0; r < t.rows; r += 13)
                            t.data->readRows(r, std::min<int64_t>(13, t.rows - r), got.data() + r * t.cols);
                        if (got != expected[(i + size_t(k) * 7) % model->tensors.size()])
                            ++mismatches;
                    }
            });
        for (std::thread &th : threads)
            th.join();
        QCOMPARE(mismatches.load(), 0);
    }

    // ---- config.json ------------------------------------------------------------------------------------

    void configParses_data()
    {
        QTest::addColumn<QByteArray>("patch");
        QTest::addColumn<QByteArray>("expected"); // HyperParams fields (and "dtype") to compare
        QTest::newRow("llama defaults") << QByteArray(
            "{}") << QByteArray(R"({"architecture":"llama","numKvHeads":4,"headDim":8,"maxPositions":2048,"rmsEps":1e-6,
                "ropeTheta":10000,"ropeType":"none","tied":false,"attentionBias":false,"bos":1,"eos":2,"addBos":true,
                "synthetic":false,"dtype":""})");
        QTest::newRow("kv heads null -> heads")
            << QByteArray(R"({"num_key_value_heads":"__null__"})") << QByteArray(R"({"numKvHeads":8})");
        QTest::newRow("kv heads absent -> heads")
            << QByteArray(R"({"num_key_value_heads":null})") << QByteArray(R"({"numKvHeads":8})");
        QTest::newRow("explicit head_dim") << QByteArray(R"({"head_dim":16})") << QByteArray(R"({"headDim":16})");
        QTest::newRow("head_dim null") << QByteArray(R"({"head_dim":"__null__"})") << QByteArray(R"({"headDim":8})");
        QTest::newRow("integral floats") << QByteArray(R"({"hidden_size":64.0,"max_position_embeddings":4096.0})")
                                         << QByteArray(R"({"maxPositions":4096})");
        QTest::newRow("mistral defaults")
            << QByteArray(R"({"model_type":"mistral","architectures":["MistralForCausalLM"]})")
            << QByteArray(R"({"architecture":"mistral","maxPositions":131072,"bos":1,"eos":2})");
        QTest::newRow("qwen2 always has q/k/v bias")
            << QByteArray(R"({"model_type":"qwen2","attention_bias":false,"bos_token_id":151643,
                "eos_token_id":151645,"tie_word_embeddings":true,"rope_theta":1000000.0})")
            << QByteArray(R"({"architecture":"qwen2","attentionBias":true,"bos":151643,"eos":151645,"tied":true,
                "ropeTheta":1000000,"maxPositions":32768,"addBos":false})");
        QTest::newRow("qwen2 without token ids")
            << QByteArray(R"({"model_type":"qwen2"})") << QByteArray(R"({"bos":-1,"eos":-1})");
        QTest::newRow("model_type from architectures")
            << QByteArray(R"({"model_type":null})") << QByteArray(R"({"architecture":"llama"})");
        QTest::newRow("eos list") << QByteArray(R"({"bos_token_id":128000,"eos_token_id":[128001,128008,128009]})")
                                  << QByteArray(R"({"bos":128000,"eos":128001})");
        QTest::newRow("llama attention_bias")
            << QByteArray(R"({"attention_bias":true})") << QByteArray(R"({"attentionBias":true})");
        QTest::newRow("torch_dtype") << QByteArray(R"({"torch_dtype":"bfloat16"})")
                                     << QByteArray(R"({"dtype":"bfloat16"})");
        QTest::newRow("v5 dtype") << QByteArray(R"({"dtype":"float16"})") << QByteArray(R"({"dtype":"float16"})");
        QTest::newRow("tied") << QByteArray(R"({"tie_word_embeddings":true})") << QByteArray(R"({"tied":true})");
        QTest::newRow("synthetic demo") << QByteArray(R"({"quantscope_synthetic":true})")
                                        << QByteArray(R"({"synthetic":true})");
        QTest::newRow("eps and theta") << QByteArray(
            R"({"rms_norm_eps":1e-05,"rope_theta":500000.0,"max_position_embeddings":8192})")
                                       << QByteArray(R"({"rmsEps":1e-5,"ropeTheta":500000,"maxPositions":8192})");
        QTest::newRow("rope_scaling llama3")
            << QByteArray(R"({"max_position_embeddings":131072,"rope_scaling":{"rope_type":"llama3","factor":8.0,
                "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}})")
            << QByteArray(R"({"ropeType":"llama3","factor":8,"low":1,"high":4,"originalMax":8192})");
        QTest::newRow("rope_scaling old 'type' key")
            << QByteArray(R"({"max_position_embeddings":4096,"rope_scaling":{"type":"linear","factor":2.0}})")
            << QByteArray(R"({"ropeType":"linear","factor":2,"originalMax":4096})");
        QTest::newRow("rope_scaling dynamic")
            << QByteArray(R"({"rope_scaling":{"type":"dynamic","factor":4,"original_max_position_embeddings":1024}})")
            << QByteArray(R"({"ropeType":"dynamic","factor":4,"originalMax":1024})");
        QTest::newRow("rope_scaling yarn")
            << QByteArray(R"({"rope_scaling":{"rope_type":"yarn","factor":4.0,"beta_fast":32}})")
            << QByteArray(R"({"ropeType":"yarn","factor":4})");
        QTest::newRow("rope_scaling default") << QByteArray(R"({"rope_scaling":{"rope_type":"default"}})")
                                              << QByteArray(R"({"ropeType":"none","factor":1})");
        QTest::newRow("rope_scaling null")
            << QByteArray(R"({"rope_scaling":"__null__"})") << QByteArray(R"({"ropeType":"none"})");
        QTest::newRow("v5 rope_parameters")
            << QByteArray(R"({"rope_theta":10000.0,"rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,
                "factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192}})")
            << QByteArray(R"({"ropeTheta":500000,"ropeType":"llama3","factor":32,"originalMax":8192})");
        QTest::newRow("v5 rope_parameters default")
            << QByteArray(R"({"rope_parameters":{"rope_type":"default","rope_theta":1000000.0}})")
            << QByteArray(R"({"ropeTheta":1000000,"ropeType":"none"})");
        QTest::newRow("v5 rope_parameters per layer type")
            << QByteArray(R"({"rope_parameters":{"full_attention":{"rope_type":"linear","rope_theta":20000,
                "factor":2.0},"sliding_attention":{"rope_type":"default","rope_theta":10000}}})")
            << QByteArray(R"({"ropeTheta":20000,"ropeType":"linear","factor":2})");
        QTest::newRow("unknown keys ignored")
            << QByteArray(R"({"pretraining_tp":1,"use_cache":true,"some_future_key":{"a":[1,2]}})")
            << QByteArray(R"({"architecture":"llama"})");
    }
    void configParses()
    {
        QFETCH(QByteArray, patch);
        QFETCH(QByteArray, expected);
        const HfConfig cfg = parseHfConfig(patchedConfig(patch), "config.json");
        const HyperParams &h = cfg.hparams;
        const json want = json::parse(expected.toStdString());
        for (auto it = want.begin(); it != want.end(); ++it) {
            const std::string &k = it.key();
            const json &v = it.value();
            const QByteArray what = QByteArray::fromStdString(k);
            if (k == "architecture")
                QCOMPARE(h.architecture, v.get<std::string>());
            else if (k == "numKvHeads")
                QCOMPARE(h.numKvHeads, v.get<int>());
            else if (k == "headDim")
                QCOMPARE(h.headDim, v.get<int>());
            else if (k == "maxPositions")
                QCOMPARE(h.maxPositions, v.get<int>());
            else if (k == "rmsEps")
                QVERIFY2(std::fabs(h.rmsEps - v.get<double>()) < 1e-12, what);
            else if (k == "ropeTheta")
                QCOMPARE(h.ropeTheta, v.get<double>());
            else if (k == "ropeType")
                QCOMPARE(h.ropeScaling.type, v.get<std::string>());
            else if (k == "factor")
                QCOMPARE(h.ropeScaling.factor, v.get<double>());
            else if (k == "low")
                QCOMPARE(h.ropeScaling.lowFreqFactor, v.get<double>());
            else if (k == "high")
                QCOMPARE(h.ropeScaling.highFreqFactor, v.get<double>());
            else if (k == "originalMax")
                QCOMPARE(h.ropeScaling.originalMaxPositions, v.get<int>());
            else if (k == "tied")
                QCOMPARE(h.tiedEmbeddings, v.get<bool>());
            else if (k == "attentionBias")
                QCOMPARE(h.attentionBias, v.get<bool>());
            else if (k == "bos")
                QCOMPARE(h.bosTokenId, v.get<int>());
            else if (k == "eos")
                QCOMPARE(h.eosTokenId, v.get<int>());
            else if (k == "addBos")
                QCOMPARE(h.addBos, v.get<bool>());
            else if (k == "synthetic")
                QCOMPARE(h.synthetic, v.get<bool>());
            else if (k == "dtype")
                QCOMPARE(cfg.dtype, v.get<std::string>());
            else
                QFAIL(what.constData());
        }
    }

    void configRejects_data()
    {
        QTest::addColumn<QByteArray>("text"); // a merge patch on the base config, or a whole text after "RAW:"
        QTest::addColumn<QString>("expected");
        const auto row = [](const char *name, const char *text, const char *expected) {
            QTest::newRow(name) << QByteArray(text) << QString::fromUtf8(expected);
        };
        row("not JSON", "RAW:{\"model_type\": ", "not valid JSON");
        row("NaN value", "RAW:{\"model_type\":\"llama\",\"rms_norm_eps\":NaN}", "not valid JSON");
        row("Infinity value", "RAW:{\"model_type\":\"llama\",\"rope_theta\":Infinity}", "not valid JSON");
        row("number overflow", "RAW:{\"model_type\":\"llama\",\"rope_theta\":1e999}", "not valid JSON");
        row("a list", "RAW:[1,2,3]", "not a JSON object");
        row("empty", "RAW:", "not valid JSON");
        row("NUL inside", "RAW:{}\0", "NUL byte");
        row("unknown architecture", R"({"model_type":"gpt2","architectures":["GPT2LMHeadModel"]})",
            "unsupported architecture: model_type 'gpt2' (GPT2LMHeadModel)");
        row("no architecture at all", R"({"model_type":null,"architectures":null})", "missing 'model_type'");
        row("unknown architecture class", R"({"model_type":null,"architectures":["OPTForCausalLM"]})",
            "unsupported architecture OPTForCausalLM");
        row("model_type not a string", R"({"model_type":7})", "'model_type' must be a string");
        row("missing hidden_size", R"({"hidden_size":null})", "missing required key 'hidden_size'");
        row("missing intermediate_size", R"({"intermediate_size":null})", "'intermediate_size'");
        row("missing num_hidden_layers", R"({"num_hidden_layers":null})", "'num_hidden_layers'");
        row("missing num_attention_heads", R"({"num_attention_heads":null})", "'num_attention_heads'");
        row("missing vocab_size", R"({"vocab_size":null})", "'vocab_size'");
        row("hidden_size as string", R"({"hidden_size":"64"})", "'hidden_size' must be an integer");
        row("fractional hidden_size", R"({"hidden_size":64.5})", "'hidden_size' must be an integer");
        row("negative layers", R"({"num_hidden_layers":-5})", "'num_hidden_layers' is -5");
        row("zero heads", R"({"num_attention_heads":0})", "'num_attention_heads' is 0");
        row("absurd vocab", R"({"vocab_size":4611686018427387904})", "'vocab_size' is 4611686018427387904");
        row("huge unsigned", R"({"hidden_size":18446744073709551615})", "'hidden_size'");
        row("kv heads do not divide", R"({"num_key_value_heads":3})", "does not divide");
        row("hidden not a multiple of heads", R"({"hidden_size":60})", "not a multiple of num_attention_heads");
        row("odd head_dim", R"({"head_dim":7})", "is odd");
        row("eps negative", R"({"rms_norm_eps":-1e-5})", "'rms_norm_eps' must be positive");
        row("eps huge", R"({"rms_norm_eps":2.0})", "'rms_norm_eps' is implausibly large");
        row("eps as string", R"({"rms_norm_eps":"1e-5"})", "'rms_norm_eps' must be a number");
        row("theta zero", R"({"rope_theta":0})", "'rope_theta' must be positive");
        row("tie as string", R"({"tie_word_embeddings":"yes"})", "'tie_word_embeddings' must be true or false");
        row("eos list with text", R"({"eos_token_id":[2,"x"]})", "'eos_token_id' must hold");
        row("negative bos", R"({"bos_token_id":-1})", "'bos_token_id' is -1");
        row("rope_scaling not an object", R"({"rope_scaling":"linear"})", "'rope_scaling' must be an object");
        row("unknown rope type", R"({"rope_scaling":{"rope_type":"mrope","factor":2}})",
            "'rope_scaling.rope_type' names the RoPE type 'mrope'");
        row("linear without factor", R"({"rope_scaling":{"type":"linear"}})", "'rope_scaling.factor' is required");
        row("factor NaN-like string", R"({"rope_scaling":{"type":"linear","factor":"nan"}})",
            "'rope_scaling.factor' must be a number");
        row("negative factor", R"({"rope_scaling":{"type":"linear","factor":-2}})", "must be positive");
        row("llama3 incomplete", R"({"rope_scaling":{"rope_type":"llama3","factor":8.0}})", "required for llama3");
        row("llama3 inverted factors",
            R"({"rope_scaling":{"rope_type":"llama3","factor":8,"low_freq_factor":4,"high_freq_factor":1,
            "original_max_position_embeddings":8192}})",
            "'rope_scaling.high_freq_factor' must be larger");
        row("rope_parameters not an object", R"({"rope_parameters":[1]})", "'rope_parameters' must be an object");
        row("rope_parameters without full_attention",
            R"({"rope_parameters":{"sliding_attention":{"rope_type":"default"}}})", "'full_attention'");
        row("v5 unknown rope type", R"({"rope_parameters":{"rope_type":"weird","rope_theta":1}})",
            "'rope_parameters.rope_type'");
        row("quantized", R"({"quantization_config":{"quant_method":"awq","bits":4}})",
            "quantized checkpoint (quantization_config, method 'awq')");
        row("gptq without desc_act", R"({"quantization_config":{"quant_method":"gptq","bits":4,"group_size":128}})",
            "missing required key 'quantization_config.desc_act'");
        row("gptq 5-bit", R"({"quantization_config":{"quant_method":"gptq","bits":5,"group_size":128,"desc_act":false}})",
            "'quantization_config.bits' is 5; GPTQ checkpoints use 2, 3, 4 or 8 bits");
        row("gptq marlin", R"({"quantization_config":{"quant_method":"gptq","bits":4,"group_size":128,"desc_act":false,
            "checkpoint_format":"marlin"}})",
            "'quantization_config.checkpoint_format' is 'marlin'");
        row("gelu", R"({"hidden_act":"gelu"})", "'hidden_act' is 'gelu'");
        row("mlp bias", R"({"mlp_bias":true})", "'mlp_bias' is true");
    }
    void configRejects()
    {
        QFETCH(QByteArray, text);
        QFETCH(QString, expected);
        std::string input;
        if (text.startsWith("RAW:"))
            input = text.mid(4).toStdString() + (expected == QLatin1String("NUL byte") ? std::string(1, '\0') : "");
        else
            input = patchedConfig(text);
        QS_EXPECT_ERROR(parseHfConfig(input, "config.json"), "config.json: ", expected.toStdString());
    }

    void generationConfigFillsMissingIds()
    {
        HfConfig cfg = parseHfConfig(patchedConfig(R"({"model_type":"qwen2"})"), "config.json");
        QVERIFY(!cfg.hasBosTokenId && !cfg.hasEosTokenId);
        applyGenerationConfig(R"({"bos_token_id":151643,"eos_token_id":[151645,151643],"do_sample":true})",
            "generation_config.json", cfg);
        QCOMPARE(cfg.hparams.bosTokenId, 151643);
        QCOMPARE(cfg.hparams.eosTokenId, 151645);
        // config.json wins where it has the id.
        HfConfig llama = parseHfConfig(patchedConfig(R"({"eos_token_id":7})"), "config.json");
        applyGenerationConfig(R"({"bos_token_id":5,"eos_token_id":9})", "generation_config.json", llama);
        QCOMPARE(llama.hparams.bosTokenId, 5);
        QCOMPARE(llama.hparams.eosTokenId, 7);
        QS_EXPECT_ERROR(applyGenerationConfig("[]", "generation_config.json", llama), "generation_config.json: ");
    }

    void indexRejects_data()
    {
        QTest::addColumn<QByteArray>("text");
        QTest::addColumn<QString>("expected");
        QTest::newRow("not JSON") << QByteArray("{\"weight_map\":") << "not valid JSON";
        QTest::newRow("no weight_map") << QByteArray(R"({"metadata":{"total_size":4}})") << "missing 'weight_map'";
        QTest::newRow("weight_map a list") << QByteArray(R"({"weight_map":["a"]})") << "missing 'weight_map'";
        QTest::newRow("empty weight_map") << QByteArray(R"({"weight_map":{}})") << "lists no tensors";
        QTest::newRow("shard not a string") << QByteArray(R"({"weight_map":{"a.weight":1}})") << "is not a string";
        QTest::newRow("parent directory")
            << QByteArray(R"({"weight_map":{"a.weight":"../model.safetensors"}})") << "not a file name";
        QTest::newRow("sub folder") << QByteArray(R"({"weight_map":{"a.weight":"x/model.safetensors"}})")
                                    << "not a file name";
        QTest::newRow("dot-dot") << QByteArray(R"({"weight_map":{"a.weight":".."}})") << "not a file name";
        QTest::newRow("empty name") << QByteArray(R"({"weight_map":{"a.weight":""}})") << "not a file name";
    }
    void indexRejects()
    {
        QFETCH(QByteArray, text);
        QFETCH(QString, expected);
        QS_EXPECT_ERROR(parseHfShardIndex(text.toStdString(), "model.safetensors.index.json"),
            "model.safetensors.index.json: ", expected.toStdString());
    }

    void indexParses()
    {
        const HfShardIndex index = parseHfShardIndex(
            R"({"metadata":{"total_size":8,"total_parameters":2},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})",
            "model.safetensors.index.json");
        QCOMPARE(index.weightMap.size(), size_t(2));
        QCOMPARE(index.weightMap.at("b"), std::string("s2.safetensors"));
    }

    // ---- broken folders ---------------------------------------------------------------------------------

    void brokenFoldersFail_data()
    {
        QTest::addColumn<QString>("source");
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("file"); // the file the message must name
        QTest::addColumn<QString>("expected"); // and what it must say
        const QString f32 = QStringLiteral("models/stories260K-hf");
        const QString sharded = QStringLiteral("models/stories260K-hf-bf16-sharded");
        const auto row
            = [](const char *name, const QString &src, const char *kind, const char *file, const char *expected) {
                  QTest::newRow(name) << src << QString::fromUtf8(kind) << QString::fromUtf8(file)
                                      << QString::fromUtf8(expected);
              };
        row("missing config.json", f32, "deleteConfig", "stories260K-hf", "no config.json");
        row("NaN in config", f32, "configNaN", "config.json", "not valid JSON");
        row("config missing hidden_size", f32, "configDrop:hidden_size", "config.json", "'hidden_size'");
        row("config missing intermediate_size", f32, "configDrop:intermediate_size", "config.json",
            "'intermediate_size'");
        row("config missing num_hidden_layers", f32, "configDrop:num_hidden_layers", "config.json",
            "'num_hidden_layers'");
        row("config missing num_attention_heads", f32, "configDrop:num_attention_heads", "config.json",
            "'num_attention_heads'");
        row("config missing vocab_size", f32, "configDrop:vocab_size", "config.json", "'vocab_size'");
        row("config missing model_type", f32, "configDrop:model_type+architectures", "config.json", "model_type");
        row("config says more layers", f32, "configLayers6", "model.safetensors",
            "missing tensor 'model.layers.5.input_layernorm'");
        row("config says a larger vocabulary", f32, "configVocab1000", "model.safetensors",
            "tensor 'model.embed_tokens' (model.embed_tokens.weight) has shape [512, 64]");
        row("config is a folder", f32, "configIsFolder", "config.json", "not a regular file");
        row("no weights", f32, "deleteWeights", "stories260K-hf", "no model.safetensors");
        row("truncated model.safetensors", f32, "truncate:model.safetensors", "model.safetensors", "");
        row("model tensor missing", f32, "dropTensor", "model.safetensors",
            "missing tensor 'model.layers.2.mlp.up_proj'");
        row("needed tensor is I32", f32, "i32Tensor", "model.safetensors",
            "tensor 'model.layers.1.self_attn.v_proj.weight' has dtype I32");
        row("needed tensor is 3-D", f32, "3dTensor", "model.safetensors",
            "tensor 'model.norm.weight' has 3 dimensions");
        row("scalar norm", f32, "scalarNorm", "model.safetensors", "'model.norm.weight' has 0 dimensions");
        row("absurd shape dims", f32, "hugeDims", "model.safetensors", "model.norm.weight");
        row("missing shard", sharded, "deleteShard2", "model.safetensors.index.json",
            "shard 'model-00002-of-00002.safetensors'");
        row("tensor in the wrong shard", sharded, "wrongShard", "model-00001-of-00002.safetensors",
            "does not contain tensor 'model.layers.4.mlp.up_proj.weight'");
        row("index not JSON", sharded, "indexGarbage", "model.safetensors.index.json", "not valid JSON");
        row("index without a tensor", sharded, "indexDropTensor", "model.safetensors.index.json",
            "missing tensor 'model.layers.0.self_attn.o_proj'");
        row("index escapes the folder", sharded, "indexTraversal", "model.safetensors.index.json", "not a file name");
        row("truncated shard", sharded, "truncate:model-00002-of-00002.safetensors", "model-00002-of-00002.safetensors",
            "");
        row("shard header enlarged", sharded, "enlargeHeader:model-00001-of-00002.safetensors",
            "model-00001-of-00002.safetensors", "");
    }
    void brokenFoldersFail()
    {
        QFETCH(QString, source);
        QFETCH(QString, kind);
        QFETCH(QString, file);
        QFETCH(QString, expected);
        if (!QFileInfo::exists(testDataPath(source)))
            QSKIP("test data missing");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, source.toUtf8().constData());
        const QString config = dir + QStringLiteral("/config.json");
        const QString single = dir + QStringLiteral("/model.safetensors");
        const QString index = dir + QStringLiteral("/model.safetensors.index.json");
        if (kind == QLatin1String("deleteConfig"))
            QFile::remove(config);
        else if (kind == QLatin1String("configNaN"))
            writeAll(config, readAll(config).replace("9.999999747378752e-06", "NaN"));
        else if (kind.startsWith(QLatin1String("configDrop:")))
            editJson(config, [&](json &j) {
                for (const QString &k : kind.mid(11).split(QLatin1Char('+')))
                    j.erase(k.toStdString());
            });
        else if (kind == QLatin1String("configLayers6"))
            editJson(config, [](json &j) { j["num_hidden_layers"] = 6; });
        else if (kind == QLatin1String("configVocab1000"))
            editJson(config, [](json &j) { j["vocab_size"] = 1000; });
        else if (kind == QLatin1String("configIsFolder")) {
            QFile::remove(config);
            QDir().mkpath(config);
            writeAll(dir + QStringLiteral("/weights.safetensors"), readAll(single));
        } else if (kind == QLatin1String("deleteWeights"))
            QFile::remove(single);
        else if (kind.startsWith(QLatin1String("truncate:"))) {
            const QString target = dir + QLatin1Char('/') + kind.mid(9);
            writeAll(target, readAll(target).chopped(5));
        } else if (kind.startsWith(QLatin1String("enlargeHeader:"))) {
            const QString target = dir + QLatin1Char('/') + kind.mid(14);
            QByteArray b = readAll(target);
            b.replace(0, 8, u64Le(readU64(b) + 64));
            writeAll(target, b);
        } else if (kind == QLatin1String("dropTensor"))
            editTensors(single, [](auto &t) { removeSpec(t, "model.layers.2.mlp.up_proj.weight"); });
        else if (kind == QLatin1String("i32Tensor"))
            editTensors(single, [](auto &t) { findSpec(t, "model.layers.1.self_attn.v_proj.weight")->dtype = "I32"; });
        else if (kind == QLatin1String("3dTensor"))
            editTensors(single, [](auto &t) { findSpec(t, "model.norm.weight")->shape = { 1, 1, 64 }; });
        else if (kind == QLatin1String("scalarNorm"))
            editTensors(single, [](auto &t) {
                TensorSpec *s = findSpec(t, "model.norm.weight");
                s->shape = {};
                s->bytes = s->bytes.left(4);
            });
        else if (kind == QLatin1String("hugeDims"))
            editTensors(single, [](auto &t) {
                TensorSpec *s = findSpec(t, "model.norm.weight");
                s->shape = { uint64_t(1) << 62, 0 };
                s->bytes.clear();
            });
        else if (kind == QLatin1String("deleteShard2"))
            QFile::remove(dir + QStringLiteral("/model-00002-of-00002.safetensors"));
        else if (kind == QLatin1String("wrongShard"))
            editJson(index, [](json &j) {
                j["weight_map"]["model.layers.4.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
            });
        else if (kind == QLatin1String("indexGarbage"))
            writeAll(index, "{\"weight_map\": {");
        else if (kind == QLatin1String("indexDropTensor"))
            editJson(index, [](json &j) { j["weight_map"].erase("model.layers.0.self_attn.o_proj.weight"); });
        else if (kind == QLatin1String("indexTraversal"))
            editJson(index, [](json &j) { j["weight_map"]["model.norm.weight"] = "../model.safetensors"; });
        else
            QFAIL("unknown kind");

        const QString target
            = kind == QLatin1String("configIsFolder") ? dir + QStringLiteral("/weights.safetensors") : dir;
        QS_EXPECT_ERROR(HfFolderReader::open(str(target)), file.toStdString() + ": ", expected.toStdString());
    }

    // ---- folders built from the real weights ------------------------------------------------------------

    void tiedEmbeddings()
    {
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, "models/stories260K-hf");
        editJson(dir + QStringLiteral("/config.json"), [](json &j) { j["tie_word_embeddings"] = true; });
        editTensors(dir + QStringLiteral("/model.safetensors"), [](auto &t) { removeSpec(t, "lm_head.weight"); });
        const auto model = HfFolderReader::open(str(dir));
        QVERIFY(model->warnings.empty());
        QVERIFY(model->hparams.tiedEmbeddings);
        const Tensor &head = model->tensor("lm_head");
        const Tensor &embed = model->tensor("model.embed_tokens");
        QVERIFY(head.tied);
        QVERIFY(!embed.tied);
        QCOMPARE(head.role, TensorRole::LmHead);
        QCOMPARE(head.data, embed.data);
        QCOMPARE(head.storedBytes, uint64_t(0));
        QCOMPARE(model->tensors.back().name, std::string("lm_head"));
        QCOMPARE(model->readMatrix(head), model->readMatrix(embed));
        QCOMPARE(model->parameterCount(), HfFolderReader::open(str(src))->parameterCount() - 512 * 64);

        // A stored lm_head.weight next to tie_word_embeddings: transformers ties anyway, so do we, and say so.
        QTemporaryDir tmp2;
        const QString dir2 = copyOf(tmp2, "models/stories260K-hf");
        editJson(dir2 + QStringLiteral("/config.json"), [](json &j) { j["tie_word_embeddings"] = true; });
        const auto model2 = HfFolderReader::open(str(dir2));
        QCOMPARE(model2->warnings.size(), size_t(1));
        QVERIFY(model2->warnings[0].find("lm_head.weight") != std::string::npos);
        QVERIFY(model2->tensor("lm_head").tied);
    }

    void f16AndUnalignedData()
    {
        // F16 and BF16 tensors of odd lengths first, no header padding: the F32 tensors after them sit at odd
        // file offsets, which readRows must handle (UBSan checks the loads).
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, "models/stories260K-hf");
        const auto reference = HfFolderReader::open(str(src));
        editTensors(
            dir + QStringLiteral("/model.safetensors"),
            [](std::vector<TensorSpec> &t) {
                for (TensorSpec &s : t) {
                    if (s.name.find("mlp.") == std::string::npos)
                        continue;
                    const std::vector<float> f = toFloats(s.bytes);
                    QByteArray half(int(f.size() * 2), '\0');
                    for (size_t i = 0; i < f.size(); ++i) {
                        const uint16_t h
                            = s.name.find("up_proj") != std::string::npos ? floatToBf16(f[i]) : floatToHalf(f[i]);
                        std::memcpy(half.data() + 2 * i, &h, 2);
                    }
                    s.dtype = s.name.find("up_proj") != std::string::npos ? "BF16" : "F16";
                    s.bytes = half;
                }
                t.insert(t.begin(), TensorSpec { "odd.extra", "U8", { 3 }, QByteArray("abc") });
            },
            1);
        const auto model = HfFolderReader::open(str(dir));
        QCOMPARE(model->warnings.size(), size_t(1)); // odd.extra
        for (const Tensor &t : reference->tensors) {
            const Tensor &u = model->tensor(t.name);
            const std::vector<float> a = reference->readMatrix(t);
            const std::vector<float> b = model->readMatrix(u);
            for (size_t i = 0; i < a.size(); ++i) {
                const float want = u.dtype == DType::F16 ? halfToFloat(floatToHalf(a[i]))
                    : u.dtype == DType::BF16             ? bf16ToFloat(floatToBf16(a[i]))
                                                         : a[i];
                QCOMPARE(b[i], want);
            }
        }
        QCOMPARE(model->tensor("model.layers.0.mlp.gate_proj").dtype, DType::F16);
        QCOMPARE(model->tensor("model.layers.0.mlp.up_proj").dtype, DType::BF16);
        QCOMPARE(model->tensor("model.layers.0.mlp.up_proj").storedBytes, uint64_t(172 * 64 * 2));
    }

    void extraTensorsWarnOrAreIgnored()
    {
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, "models/stories260K-hf");
        editTensors(dir + QStringLiteral("/model.safetensors"), [](std::vector<TensorSpec> &t) {
            t.push_back({ "model.layers.0.self_attn.rotary_emb.inv_freq", "F32", { 4 }, rampBytes(4, 1.0f) });
            t.push_back({ "model.layers.3.self_attn.rotary_emb.inv_freq", "F32", { 4 }, rampBytes(4, 1.0f) });
            t.push_back({ "some.packed.qweight", "I32", { 2, 2 }, QByteArray(16, '\1') });
            t.push_back({ "model.layers.7.mlp.up_proj.weight", "F32", { 2 }, rampBytes(2, 1.0f) });
            t.push_back({ "model.layers.0.self_attn.q_proj.bias", "F32", { 64 }, rampBytes(64, 1.0f) });
            t.push_back({ "model.layers.00.mlp.up_proj.weight", "F32", { 1 }, rampBytes(1, 1.0f) });
            t.push_back({ "model.layers.1.mlp.down_proj.bias", "F32", { 64 }, rampBytes(64, 1.0f) });
        });
        const auto model = HfFolderReader::open(str(dir));
        QCOMPARE(model->tensors.size(), size_t(48));
        QCOMPARE(model->warnings.size(), size_t(5));
        std::string all;
        for (const std::string &w : model->warnings) {
            QVERIFY2(w.rfind("model.safetensors: ", 0) == 0, w.c_str());
            all += w + "\n";
        }
        QVERIFY(all.find("'some.packed.qweight'") != std::string::npos);
        QVERIFY(all.find("'model.layers.7.mlp.up_proj.weight' belongs to layer 7") != std::string::npos);
        QVERIFY(all.find("'model.layers.0.self_attn.q_proj.bias' is a bias the llama configuration does not use "
                         "(attention_bias is false)")
            != std::string::npos);
        QVERIFY(all.find("'model.layers.00.mlp.up_proj.weight'") != std::string::npos);
        QVERIFY(all.find("'model.layers.1.mlp.down_proj.bias' is a bias the llama configuration does not use (MLP")
            != std::string::npos);
        QVERIFY(all.find("inv_freq") == std::string::npos);
    }

    void qwen2Biases()
    {
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, "models/stories260K-hf");
        editJson(dir + QStringLiteral("/config.json"), [](json &j) {
            j["model_type"] = "qwen2";
            j["architectures"] = { "Qwen2ForCausalLM" };
        });
        editTensors(dir + QStringLiteral("/model.safetensors"), [](std::vector<TensorSpec> &t) {
            for (int b = 0; b < 5; ++b) {
                const std::string p = "model.layers." + std::to_string(b) + ".self_attn.";
                t.push_back({ p + "q_proj.bias", "F32", { 64 }, rampBytes(64, 0.5f * float(b + 1)) });
                t.push_back({ p + "k_proj.bias", "F32", { 32 }, rampBytes(32, -1.0f) });
                t.push_back({ p + "v_proj.bias", "BF16", { 32 }, QByteArray(64, '\0') });
            }
            t.push_back({ "model.layers.1.self_attn.o_proj.bias", "F32", { 64 }, rampBytes(64, 1.0f) });
        });
        const auto model = HfFolderReader::open(str(dir));
        QCOMPARE(QString::fromStdString(model->hparams.architecture), QStringLiteral("qwen2"));
        QVERIFY(model->hparams.attentionBias);
        QCOMPARE(model->tensors.size(), size_t(48 + 15));
        QCOMPARE(model->warnings.size(), size_t(1));
        QVERIFY2(
            model->warnings[0].find("(qwen2 has no o_proj bias)") != std::string::npos, model->warnings[0].c_str());
        const Tensor &qb = model->tensor("model.layers.2.self_attn.q_proj.bias");
        QCOMPARE(qb.role, TensorRole::Bias);
        QCOMPARE(qb.block, 2);
        QCOMPARE(qb.rows, int64_t(1));
        QCOMPARE(qb.cols, int64_t(64));
        const std::vector<float> values = model->readMatrix(qb);
        QCOMPARE(values[0], 1.5f);
        QCOMPARE(values[63], 96.0f);
        QCOMPARE(model->tensor("model.layers.0.self_attn.v_proj.bias").dtype, DType::BF16);
        // Each bias follows its weight.
        const auto at = [&](const std::string &name) {
            for (size_t i = 0; i < model->tensors.size(); ++i)
                if (model->tensors[i].name == name)
                    return int(i);
            return -1;
        };
        QCOMPARE(at("model.layers.2.self_attn.q_proj.bias"), at("model.layers.2.self_attn.q_proj") + 1);
        QCOMPARE(at("model.layers.2.self_attn.k_proj"), at("model.layers.2.self_attn.q_proj.bias") + 1);

        // Without one of them the model cannot be right.
        editTensors(dir + QStringLiteral("/model.safetensors"),
            [](auto &t) { removeSpec(t, "model.layers.4.self_attn.k_proj.bias"); });
        QS_EXPECT_ERROR(HfFolderReader::open(str(dir)), "model.safetensors: ",
            "missing tensor 'model.layers.4.self_attn.k_proj.bias' (qwen2 always has q/k/v biases)");
        // A bias of the wrong length.
        editTensors(dir + QStringLiteral("/model.safetensors"), [](auto &t) {
            t.push_back({ "model.layers.4.self_attn.k_proj.bias", "F32", { 31 }, rampBytes(31, 1.0f) });
        });
        QS_EXPECT_ERROR(HfFolderReader::open(str(dir)),
            "model.safetensors: ", "'model.layers.4.self_attn.k_proj.bias' has shape [1, 31] but its weight has 32");
    }

    void llamaAttentionBiasNeedsOProjBias()
    {
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, "models/stories260K-hf");
        editJson(dir + QStringLiteral("/config.json"), [](json &j) { j["attention_bias"] = true; });
        editTensors(dir + QStringLiteral("/model.safetensors"), [](std::vector<TensorSpec> &t) {
            for (int b = 0; b < 5; ++b) {
                const std::string p = "model.layers." + std::to_string(b) + ".self_attn.";
                t.push_back({ p + "q_proj.bias", "F32", { 64 }, rampBytes(64, 1.0f) });
                t.push_back({ p + "k_proj.bias", "F32", { 32 }, rampBytes(32, 1.0f) });
                t.push_back({ p + "v_proj.bias", "F32", { 32 }, rampBytes(32, 1.0f) });
            }
        });
        QS_EXPECT_ERROR(HfFolderReader::open(str(dir)), "model.safetensors: ",
            "missing tensor 'model.layers.0.self_attn.o_proj.bias' (llama with attention_bias: true)");
        editTensors(dir + QStringLiteral("/model.safetensors"), [](std::vector<TensorSpec> &t) {
            for (int b = 0; b < 5; ++b)
                t.push_back({ "model.layers." + std::to_string(b) + ".self_attn.o_proj.bias", "F32", { 64 },
                    rampBytes(64, 1.0f) });
        });
        const auto model = HfFolderReader::open(str(dir));
        QCOMPARE(model->tensors.size(), size_t(48 + 20));
        QVERIFY(model->warnings.empty());
    }

    void tokenIdsFromGenerationConfig()
    {
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        const QString dir = copyOf(tmp, "models/stories260K-hf");
        editJson(dir + QStringLiteral("/config.json"), [](json &j) {
            j.erase("bos_token_id");
            j["eos_token_id"] = nullptr;
        });
        writeAll(dir + QStringLiteral("/generation_config.json"), R"({"bos_token_id":11,"eos_token_id":[12,13]})");
        writeAll(dir + QStringLiteral("/tokenizer_config.json"), R"({"add_bos_token":false})");
        auto model = HfFolderReader::open(str(dir));
        QCOMPARE(model->hparams.bosTokenId, 11);
        QCOMPARE(model->hparams.eosTokenId, 12);
        QCOMPARE(model->hparams.addBos, false);
        QVERIFY(model->warnings.empty());

        // Broken side files are warnings, not failures.
        writeAll(dir + QStringLiteral("/generation_config.json"), "{oops");
        writeAll(dir + QStringLiteral("/tokenizer_config.json"), "[");
        QFile::remove(dir + QStringLiteral("/tokenizer.json"));
        model = HfFolderReader::open(str(dir));
        QCOMPARE(model->hparams.bosTokenId, 1);
        QCOMPARE(model->warnings.size(), size_t(3));
        QVERIFY(model->tokenizerPath.empty());
    }

    void probeAndRegistry()
    {
        QS_REQUIRE_TESTDATA(src, "models/stories260K-hf");
        QTemporaryDir tmp;
        QVERIFY(!HfFolderReader::probe(str(tmp.path()))); // empty folder
        writeAll(tmp.filePath(QStringLiteral("notes.txt")), "hello");
        QVERIFY(!HfFolderReader::probe(str(tmp.filePath(QStringLiteral("notes.txt")))));
        writeAll(tmp.filePath(QStringLiteral("lonely.safetensors")), "12345678");
        QVERIFY(!HfFolderReader::probe(str(tmp.filePath(QStringLiteral("lonely.safetensors"))))); // no config
        QS_EXPECT_ERROR(HfFolderReader::open(str(tmp.filePath(QStringLiteral("notes.txt")))), "notes.txt");

        bool haveSafetensors = false, haveLlama2c = false;
        for (const ModelFormat &f : modelFormats()) {
            haveSafetensors |= f.name == "safetensors";
            haveLlama2c |= f.name == "llama2c";
        }
        QVERIFY(haveSafetensors && haveLlama2c);
        const auto model = openModel(str(src + QStringLiteral("/config.json")));
        QCOMPARE(QString::fromStdString(model->format), QStringLiteral("safetensors"));
    }
};

QTEST_GUILESS_MAIN(TestHfReader)
#include "tst_hfreader.moc"
