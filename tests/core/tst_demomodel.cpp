// The synthetic demo model: determinism, planted outlier channels, heavy tails, the folder layout and
// its safety rules (never overwrite other data, nothing half-written), sharding, and opening it through
// the format registry.
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>
#include <omp.h>

#include "VectorTensorData.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "io/FormatRegistry.h"
#include "model/DemoModel.h"
#include "model/Model.h"
#include "stats/WeightStats.h"

using namespace qs::core;
namespace fs = std::filesystem;

namespace {

std::string readAll(const fs::path &path)
{
    std::ifstream in(path, std::ios::binary);
    return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

// Every file of a folder, by name, with its bytes.
std::map<std::string, std::string> folderContents(const fs::path &dir)
{
    std::map<std::string, std::string> out;
    for (const auto &e : fs::directory_iterator(dir))
        out[e.path().filename().string()] = readAll(e.path());
    return out;
}

// Names beside `dir` (in its parent) other than dir itself: leftovers of a failed or finished write.
std::vector<std::string> siblingsOf(const fs::path &dir)
{
    std::vector<std::string> out;
    for (const auto &e : fs::directory_iterator(dir.parent_path()))
        if (e.path().filename() != dir.filename())
            out.push_back(e.path().filename().string());
    return out;
}

// A minimal F32 safetensors parser, independent of the project's reader, feeding in-memory tensors.
using VectorTensorData = qs::test::VectorTensorData;

std::unique_ptr<Model> loadF32(const fs::path &file)
{
    const std::string bytes = readAll(file);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i)
        n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
    const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, size_t(n)));
    const char *data = bytes.data() + 8 + n;
    auto model = std::make_unique<Model>();
    model->path = file.string();
    for (const auto &[name, info] : header.items()) {
        if (name == "__metadata__")
            continue;
        Tensor t;
        t.name = name.substr(0, name.size() - 7); // drop ".weight"
        const auto &shape = info["shape"];
        t.rows = shape.size() == 2 ? shape[0].get<int64_t>() : 1;
        t.cols = shape.size() == 2 ? shape[1].get<int64_t>() : shape[0].get<int64_t>();
        const uint64_t begin = info["data_offsets"][0].get<uint64_t>();
        std::vector<float> v(static_cast<size_t>(t.rows * t.cols));
        std::memcpy(v.data(), data + begin, v.size() * 4);
        t.data = std::make_shared<VectorTensorData>(std::move(v), t.cols);
        model->tensors.push_back(std::move(t));
    }
    return model;
}

DemoOptions options(const std::string &preset, const std::string &dtype, uint64_t seed)
{
    DemoOptions o;
    o.preset = preset;
    o.dtype = dtype;
    o.seed = seed;
    return o;
}

class CancelAfter final : public Progress
{
public:
    explicit CancelAfter(int n)
        : m_n(n)
    { }
    void setTotal(double) override { }
    void advance(double) override { ++m_advances; }
    void message(std::string_view) override { }
    bool isCancelled() const override { return m_advances >= m_n; }

private:
    int m_n;
    std::atomic<int> m_advances { 0 };
};

} // namespace

class TestDemoModel : public QObject
{
    Q_OBJECT
private slots:
    void deterministicPerSeed()
    {
        QTemporaryDir dir;
        const fs::path base = dir.path().toStdString();
        NullProgress progress;
        const int saved = omp_get_max_threads();
        omp_set_num_threads(1);
        writeDemoModel((base / "a").string(), options("tiny", "f16", 7), progress);
        omp_set_num_threads(std::max(2, saved));
        writeDemoModel((base / "b").string(), options("tiny", "f16", 7), progress);
        writeDemoModel((base / "c").string(), options("tiny", "f16", 8), progress);
        omp_set_num_threads(saved);

        const auto a = folderContents(base / "a");
        const auto b = folderContents(base / "b");
        const auto c = folderContents(base / "c");
        QCOMPARE(a.size(), size_t(3)); // config.json, generation_config.json, model.safetensors
        QVERIFY(a.count("model.safetensors") && a.count("config.json") && a.count("generation_config.json"));
        QVERIFY(a == b); // same seed: same bytes, whatever the thread count
        QVERIFY(a.at("model.safetensors") != c.at("model.safetensors"));
        QCOMPARE(a.at("model.safetensors").size(), c.at("model.safetensors").size());
        // The temporary folders are gone.
        const std::vector<std::string> names = siblingsOf(base / "a");
        QCOMPARE(std::set<std::string>(names.begin(), names.end()), (std::set<std::string> { "b", "c" }));
    }

    void configDescribesTheModel()
    {
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "nested" / "tiny";
        NullProgress progress;
        writeDemoModel(out.string(), options("tiny", "bf16", 3), progress);
        const nlohmann::json c = nlohmann::json::parse(readAll(out / "config.json"));
        QCOMPARE(c["model_type"].get<std::string>(), std::string("llama"));
        QCOMPARE(c["architectures"][0].get<std::string>(), std::string("LlamaForCausalLM"));
        QCOMPARE(c["hidden_size"].get<int>(), 64);
        QCOMPARE(c["num_hidden_layers"].get<int>(), 2);
        QCOMPARE(c["num_attention_heads"].get<int>(), 4);
        QCOMPARE(c["num_key_value_heads"].get<int>(), 2);
        QCOMPARE(c["head_dim"].get<int>(), 16);
        QCOMPARE(c["intermediate_size"].get<int>(), 176);
        QCOMPARE(c["vocab_size"].get<int>(), 256);
        QCOMPARE(c["torch_dtype"].get<std::string>(), std::string("bfloat16"));
        QCOMPARE(c["tie_word_embeddings"].get<bool>(), false);
        QCOMPARE(c["quantscope_synthetic"].get<bool>(), true);
        QCOMPARE(c["quantscope_preset"].get<std::string>(), std::string("tiny"));
        QCOMPARE(c["quantscope_seed"].get<uint64_t>(), uint64_t(3));
        QVERIFY(isDemoModelFolder(out.string()));
        std::vector<int> channels;
        for (const DemoOutlierChannel &ch : demoOutlierChannels(options("tiny", "bf16", 3)))
            channels.push_back(ch.channel);
        QCOMPARE(c["quantscope_outlier_channels"].get<std::vector<int>>(), channels);
        QCOMPARE(channels.size(), size_t(2));
        QCOMPARE(demoOutlierChannels(options("small", "f16", 3)).size(), size_t(3));
        QCOMPARE(demoOutlierChannels(options("1b", "f16", 3)).size(), size_t(6));
    }

    void outlierChannelsAndHeavyTails()
    {
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "tiny";
        const DemoOptions o = options("tiny", "f32", 11);
        NullProgress progress;
        writeDemoModel(out.string(), o, progress);
        const auto model = loadF32(out / "model.safetensors");
        QCOMPARE(model->tensors.size(), size_t(2 + 2 * 9 + 1));

        const std::vector<DemoOutlierChannel> planted = demoOutlierChannels(o);
        QCOMPARE(planted.size(), size_t(2));
        std::set<int64_t> plantedCols;
        for (const DemoOutlierChannel &ch : planted) {
            QVERIFY(ch.columnScale >= 10.0f && ch.columnScale <= 30.0f);
            plantedCols.insert(ch.channel);
        }
        for (int block = 0; block < 2; ++block) {
            for (TensorRole role : { TensorRole::Q, TensorRole::K, TensorRole::V, TensorRole::Gate, TensorRole::Up }) {
                const Tensor &t = model->tensor(layerName(block, role));
                const WeightStats s = computeWeightStats(*model, t, StatsOptions::defaults(), progress);
                // Every planted column stands above every other column.
                float plantedMin = 1e30f, otherMax = 0.0f;
                for (int64_t c = 0; c < t.cols; ++c) {
                    if (plantedCols.count(c))
                        plantedMin = std::min(plantedMin, s.colAbsMax[size_t(c)]);
                    else
                        otherMax = std::max(otherMax, s.colAbsMax[size_t(c)]);
                }
                QVERIFY2(plantedMin > 2.0f * otherMax,
                    qPrintable(QStringLiteral("%1: planted %2 vs other %3")
                                   .arg(QString::fromStdString(t.name))
                                   .arg(plantedMin)
                                   .arg(otherMax)));
                QVERIFY(s.kurtosis > 0.0);
                QVERIFY(s.outlierCount > 0);
            }
            // The writers into the outlier dimensions: their rows stand out.
            for (TensorRole role : { TensorRole::O, TensorRole::Down }) {
                const Tensor &t = model->tensor(layerName(block, role));
                const WeightStats s = computeWeightStats(*model, t, StatsOptions::defaults(), progress);
                float plantedMin = 1e30f, otherMax = 0.0f;
                for (int64_t r = 0; r < t.rows; ++r) {
                    if (plantedCols.count(r))
                        plantedMin = std::min(plantedMin, s.rowAbsMax[size_t(r)]);
                    else
                        otherMax = std::max(otherMax, s.rowAbsMax[size_t(r)]);
                }
                QVERIFY(plantedMin > otherMax);
            }
        }
        // Heavy tails without any planted outliers: Student-t(5) has excess kurtosis 6 in theory.
        const WeightStats embed
            = computeWeightStats(*model, model->tensor("model.embed_tokens"), StatsOptions::defaults(), progress);
        QVERIFY2(embed.kurtosis > 2.0, qPrintable(QString::number(embed.kurtosis)));
        QVERIFY(std::fabs(embed.mean) < 0.01);
        QVERIFY(std::fabs(embed.stddev - 1.0 / 8.0) < 0.01); // 1/sqrt(hidden)
        const WeightStats norm = computeWeightStats(
            *model, model->tensor("model.layers.0.input_layernorm"), StatsOptions::defaults(), progress);
        QCOMPARE(norm.rows, int64_t(1));
        QVERIFY(std::fabs(norm.mean - 1.0) < 0.05);
        QVERIFY(norm.min > 0.7 && norm.max < 1.3);
    }

    void refusesToOverwriteOtherData()
    {
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "mine";
        fs::create_directory(out);
        std::ofstream(out / "notes.txt") << "precious";
        NullProgress progress;
        try {
            writeDemoModel(out.string(), options("tiny", "f16", 1), progress);
            QFAIL("overwrote a folder with other data");
        } catch (const Error &e) {
            QVERIFY2(std::string(e.what()).rfind(out.string() + ": ", 0) == 0, e.what());
        }
        QCOMPARE(readAll(out / "notes.txt"), std::string("precious"));
        QCOMPARE(siblingsOf(out).size(), size_t(0));

        const fs::path file = fs::path(dir.path().toStdString()) / "file";
        std::ofstream(file) << "x";
        QVERIFY_THROWS_EXCEPTION(Error, writeDemoModel(file.string(), options("tiny", "f16", 1), progress));
    }

    void replacesEarlierDemoAndFillsEmptyFolder()
    {
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "demo";
        fs::create_directory(out); // empty: fine
        NullProgress progress;
        writeDemoModel(out.string() + "/", options("tiny", "f16", 1), progress);
        const std::string first = readAll(out / "model.safetensors");
        writeDemoModel(out.string(), options("tiny", "f32", 2), progress); // an earlier demo: replaced
        QVERIFY(readAll(out / "model.safetensors") != first);
        QCOMPARE(nlohmann::json::parse(readAll(out / "config.json"))["torch_dtype"].get<std::string>(),
            std::string("float32"));
        QCOMPARE(siblingsOf(out).size(), size_t(0)); // no .tmp- or .old- folders left
    }

    void cancelLeavesNothing()
    {
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "demo";
        CancelAfter cancel(3);
        QVERIFY_THROWS_EXCEPTION(Cancelled, writeDemoModel(out.string(), options("tiny", "f16", 1), cancel));
        QVERIFY(!fs::exists(out));
        QCOMPARE(siblingsOf(out).size(), size_t(0));

        // Cancelling a regeneration keeps the earlier demo.
        NullProgress progress;
        writeDemoModel(out.string(), options("tiny", "f16", 1), progress);
        const auto before = folderContents(out);
        CancelAfter cancel2(2);
        QVERIFY_THROWS_EXCEPTION(Cancelled, writeDemoModel(out.string(), options("tiny", "f16", 9), cancel2));
        QVERIFY(folderContents(out) == before);
        QCOMPARE(siblingsOf(out).size(), size_t(0));
    }

    void shardsWithIndex()
    {
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "sharded";
        DemoOptions o = options("tiny", "f16", 5);
        o.maxShardBytes = 60000; // tiny is ~250 kB in F16: several shards
        NullProgress progress;
        writeDemoModel(out.string(), o, progress);
        QVERIFY(!fs::exists(out / "model.safetensors"));
        const nlohmann::json index = nlohmann::json::parse(readAll(out / "model.safetensors.index.json"));
        const auto &map = index["weight_map"];
        QCOMPARE(map.size(), size_t(21));
        std::set<std::string> files;
        for (const auto &[name, file] : map.items())
            files.insert(file.get<std::string>());
        QVERIFY(files.size() >= 3);
        const size_t n = files.size();
        uint64_t dataBytes = 0;
        size_t i = 1;
        for (const std::string &f : files) {
            char expected[64];
            std::snprintf(expected, sizeof expected, "model-%05zu-of-%05zu.safetensors", i++, n);
            QCOMPARE(f, std::string(expected));
            const std::string bytes = readAll(out / f);
            uint64_t h = 0;
            for (int k = 0; k < 8; ++k)
                h |= uint64_t(uint8_t(bytes[size_t(k)])) << (8 * k);
            dataBytes += bytes.size() - 8 - h;
        }
        QCOMPARE(index["metadata"]["total_size"].get<uint64_t>(), dataBytes);
        QCOMPARE(map["model.embed_tokens.weight"].get<std::string>(), *files.begin()); // state-dict order
        QCOMPARE(map["lm_head.weight"].get<std::string>(), *files.rbegin());

        // Same bytes per tensor as the single-file layout: sharding changes only where tensors live.
        if (qs::core::modelFormats().empty())
            return;
        const fs::path single = fs::path(dir.path().toStdString()) / "single";
        writeDemoModel(single.string(), options("tiny", "f16", 5), progress);
        const auto a = openModel(out.string());
        const auto b = openModel(single.string());
        QCOMPARE(a->tensors.size(), b->tensors.size());
        for (const Tensor &t : b->tensors)
            QVERIFY(a->readMatrix(a->tensor(t.name)) == b->readMatrix(t));
    }

    void opensThroughTheRegistry_data()
    {
        QTest::addColumn<QString>("preset");
        QTest::addColumn<QString>("dtype");
        QTest::newRow("tiny f16") << QStringLiteral("tiny") << QStringLiteral("f16");
        QTest::newRow("tiny bf16") << QStringLiteral("tiny") << QStringLiteral("bf16");
        QTest::newRow("small f32") << QStringLiteral("small") << QStringLiteral("f32");
    }
    void opensThroughTheRegistry()
    {
        QFETCH(QString, preset);
        QFETCH(QString, dtype);
        QTemporaryDir dir;
        const fs::path out = fs::path(dir.path().toStdString()) / "m";
        const DemoOptions o = options(preset.toStdString(), dtype.toStdString(), 4);
        NullProgress progress;
        writeDemoModel(out.string(), o, progress);
        std::unique_ptr<Model> model;
        try {
            model = openModel(out.string());
        } catch (const Error &e) {
            QFAIL(e.what());
        }
        const DemoPreset &p = *findDemoPreset(o.preset);
        const HyperParams &h = model->hparams;
        QCOMPARE(model->format, std::string("safetensors"));
        QCOMPARE(h.architecture, std::string("llama"));
        QCOMPARE(h.hiddenSize, p.hiddenSize);
        QCOMPARE(h.numLayers, p.numLayers);
        QCOMPARE(h.numHeads, p.numHeads);
        QCOMPARE(h.numKvHeads, p.numKvHeads);
        QCOMPARE(h.headDim, p.hiddenSize / p.numHeads);
        QCOMPARE(h.intermediateSize, p.intermediateSize);
        QCOMPARE(h.vocabSize, p.vocabSize);
        QCOMPARE(h.tiedEmbeddings, false);
        QVERIFY(h.synthetic);
        QCOMPARE(model->tensors.size(), size_t(3 + 9 * p.numLayers));
        const DType expected = dtype == QLatin1String("f16") ? DType::F16
            : dtype == QLatin1String("bf16")                 ? DType::BF16
                                                             : DType::F32;
        QCOMPARE(model->tensor("lm_head").dtype, expected);
        const int64_t H = p.hiddenSize, I = p.intermediateSize, V = p.vocabSize;
        const int64_t kv = int64_t(p.numKvHeads) * (H / p.numHeads);
        QCOMPARE(model->parameterCount(), 2 * V * H + H + p.numLayers * (2 * H * H + 2 * H * kv + 3 * H * I + 2 * H));
        // Through the real reader the planted columns show as well.
        const Tensor &q = model->tensor(layerName(0, TensorRole::Q));
        const WeightStats s = computeWeightStats(*model, q, StatsOptions::defaults(), progress);
        std::vector<float> cols = s.colAbsMax;
        std::set<int> planted;
        for (const DemoOutlierChannel &ch : demoOutlierChannels(o))
            planted.insert(ch.channel);
        float plantedMin = 1e30f, otherMax = 0.0f;
        for (size_t c = 0; c < cols.size(); ++c)
            (planted.count(int(c)) ? plantedMin : otherMax)
                = planted.count(int(c)) ? std::min(plantedMin, cols[c]) : std::max(otherMax, cols[c]);
        QVERIFY(plantedMin > 2.0f * otherMax);
    }

    void rejectsUnknownPresetAndDtype()
    {
        QTemporaryDir dir;
        NullProgress progress;
        const std::string out = dir.filePath(QStringLiteral("x")).toStdString();
        QVERIFY_THROWS_EXCEPTION(Error, writeDemoModel(out, options("huge", "f16", 1), progress));
        QVERIFY_THROWS_EXCEPTION(Error, writeDemoModel(out, options("tiny", "q4", 1), progress));
        QVERIFY(!fs::exists(out));
        QCOMPARE(demoPresets().size(), size_t(3));
        QCOMPARE(findDemoPreset("1b")->hiddenSize, 2048);
        QVERIFY(findDemoPreset("nope") == nullptr);
    }
};

QTEST_GUILESS_MAIN(TestDemoModel)
#include "tst_demomodel.moc"
