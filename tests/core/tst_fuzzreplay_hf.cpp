// Replays the seed corpora of the Hugging Face fuzz targets (tests/fuzz-corpus/{safetensors_header,
// hf_config,hf_index}) through the same functions as core/fuzz/fuzz_*.cpp: every input parses or throws
// qs::core::Error, nothing else. Seeds named valid-* must parse and invalid-* must be rejected; files the
// fuzzer adds (crash-*, anything else) only have to be handled cleanly.
#include <QDir>
#include <QFile>
#include <QTest>

#include <functional>
#include <string_view>
#include <vector>

#include "common/Error.h"
#include "io/HfConfig.h"
#include "io/RawTensorData.h"
#include "io/Safetensors.h"

using namespace qs::core;

namespace {

using Replay = std::function<void(const QByteArray &bytes)>;

// As fuzz_safetensors_header.cpp: parse, then convert the first and last row of every float tensor.
void replaySafetensors(const QByteArray &bytes)
{
    const auto *data = reinterpret_cast<const uint8_t *>(bytes.constData());
    const size_t size = size_t(bytes.size());
    const SafetensorsHeader h = Safetensors::parseHeader(data, size, size, "corpus.safetensors");
    std::vector<float> row;
    for (const SafetensorsEntry &t : h.tensors) {
        const auto dtype = t.floatDType();
        if (!dtype || t.numel == 0 || t.shape.size() > 2)
            continue;
        const int64_t rows = t.shape.size() == 2 ? int64_t(t.shape[0]) : 1;
        const int64_t cols = int64_t(t.numel) / rows;
        const RawTensorData tensor(
            nullptr, data + h.dataOffset + t.begin, *dtype, rows, cols, "corpus.safetensors", t.name);
        row.resize(size_t(cols));
        tensor.readRows(0, 1, row.data());
        tensor.readRows(rows - 1, 1, row.data());
    }
}

void replayConfig(const QByteArray &bytes)
{
    const std::string_view text(bytes.constData(), size_t(bytes.size()));
    HfConfig config = parseHfConfig(text, "config.json");
    applyGenerationConfig(text, "generation_config.json", config);
}

void replayIndex(const QByteArray &bytes)
{
    (void)parseHfShardIndex(std::string_view(bytes.constData(), size_t(bytes.size())), "model.safetensors.index.json");
}

} // namespace

class TestFuzzReplayHf : public QObject
{
    Q_OBJECT
private slots:
    void replayCorpus_data()
    {
        QTest::addColumn<QString>("target");
        QTest::addColumn<QString>("file");
        for (const char *target : { "safetensors_header", "hf_config", "hf_index" }) {
            const QDir dir(QStringLiteral(QS_SOURCE_DIR "/tests/fuzz-corpus/") + QString::fromUtf8(target));
            const QStringList files = dir.entryList(QDir::Files, QDir::Name);
            QVERIFY2(files.size() >= 5, qPrintable(QStringLiteral("corpus missing or thin: ") + dir.path()));
            for (const QString &f : files)
                QTest::newRow(qPrintable(QString::fromUtf8(target) + QLatin1Char('/') + f))
                    << QString::fromUtf8(target) << dir.filePath(f);
        }
    }
    void replayCorpus()
    {
        QFETCH(QString, target);
        QFETCH(QString, file);
        const Replay replay = target == QLatin1String("safetensors_header") ? Replay(replaySafetensors)
            : target == QLatin1String("hf_config")                          ? Replay(replayConfig)
                                                                            : Replay(replayIndex);
        QFile f(file);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray bytes = f.readAll();
        const QString name = QFileInfo(file).fileName();
        bool parsed = false;
        std::string message;
        try {
            replay(bytes);
            parsed = true;
        } catch (const Error &e) {
            message = e.what();
            QVERIFY2(!message.empty(), "an Error without a message");
        }
        // Anything other than qs::core::Error escapes and fails the test (QtTest reports the exception).
        if (name.startsWith(QLatin1String("valid-")))
            QVERIFY2(parsed, message.c_str());
        else if (name.startsWith(QLatin1String("invalid-")))
            QVERIFY2(!parsed, "a seed meant to be rejected parsed");
    }
};

QTEST_GUILESS_MAIN(TestFuzzReplayHf)
#include "tst_fuzzreplay_hf.moc"
