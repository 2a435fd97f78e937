// Replays the GGUF fuzz corpus (tests/fuzz-corpus/gguf) through the parser, the row decoders and the
// model builder, as core/fuzz/fuzz_gguf.cpp does: each input parses or throws qs::core::Error, nothing
// else. Seeds named valid-* must parse and invalid-* must be rejected; files the fuzzer adds (crash-*,
// anything else) only have to be handled cleanly.
#include <QDir>
#include <QFile>
#include <QTest>

#include <vector>

#include "common/Error.h"
#include "io/GgufBlocks.h"
#include "io/GgufFile.h"
#include "io/GgufReader.h"

using namespace qs::core;

namespace {

QString corpusDir()
{
    return QStringLiteral(QS_SOURCE_DIR "/tests/fuzz-corpus/gguf");
}

// What the fuzz target does with an input; returns whether it parsed.
bool replay(const std::vector<uint8_t> &bytes, std::string &message)
{
    try {
        const GgufFile file = GgufFile::parse(bytes.data(), bytes.size(), "corpus.gguf");
        std::vector<float> row;
        for (const GgufTensorInfo &t : file.tensors()) {
            if (!t.type->dequantize || t.rowCount() == 0)
                continue;
            row.resize(size_t(t.rowLength()));
            const uint64_t rowBytes = ggmlBytesFor(*t.type, t.rowLength());
            for (uint64_t r = 0; r < t.rowCount(); ++r)
                t.type->dequantize(file.tensorData(t) + r * rowBytes, row.data(), int64_t(t.rowLength()));
        }
        try {
            const std::unique_ptr<Model> model = GgufReader::build(file, "corpus.gguf");
            for (const Tensor &t : model->tensors)
                model->readMatrix(t);
        } catch (const Error &e) {
            message = std::string("model: ") + e.what();
        }
        return true;
    } catch (const Error &e) {
        message = e.what();
        return false;
    }
}

} // namespace

class TestFuzzReplayGguf : public QObject
{
    Q_OBJECT
private slots:
    void replayCorpus_data()
    {
        QTest::addColumn<QString>("path");
        const QDir dir(corpusDir());
        const QStringList files = dir.entryList(QDir::Files, QDir::Name);
        int inputs = 0;
        for (const QString &name : files) {
            if (name.endsWith(QLatin1String(".py")) || name.endsWith(QLatin1String(".md")))
                continue;
            QTest::newRow(qPrintable(name)) << dir.filePath(name);
            ++inputs;
        }
        QVERIFY2(inputs >= 10, qPrintable(QStringLiteral("expected the seed corpus in ") + corpusDir()));
    }
    void replayCorpus()
    {
        QFETCH(QString, path);
        QFile f(path);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray content = f.readAll();
        // An exactly sized heap copy, so that the sanitizer sees any read past the end.
        const std::vector<uint8_t> bytes(content.begin(), content.end());
        std::string message;
        bool parsed = false;
        try {
            parsed = replay(bytes, message);
        } catch (const std::exception &e) {
            QFAIL(qPrintable(
                QStringLiteral("threw something other than qs::core::Error: ") + QString::fromUtf8(e.what())));
        } catch (...) {
            QFAIL("threw something other than qs::core::Error");
        }
        const QString name = QFileInfo(path).fileName();
        if (!message.empty())
            qInfo("%s: %s", qPrintable(name), message.c_str());
        if (name.startsWith(QLatin1String("valid-")))
            QVERIFY2(parsed, message.c_str());
        if (name.startsWith(QLatin1String("invalid-"))) {
            QVERIFY(!parsed);
            QVERIFY2(QString::fromStdString(message).startsWith(QStringLiteral("corpus.gguf: ")), message.c_str());
        }
    }

    // The one complete model among the seeds opens as a model, tied output included.
    void tinyLlamaSeedIsAModel()
    {
        const QString path = corpusDir() + QStringLiteral("/valid-tiny-llama.gguf");
        const std::unique_ptr<Model> m = GgufReader::open(path.toStdString());
        QCOMPARE(m->hparams.hiddenSize, 32);
        QCOMPARE(m->hparams.numKvHeads, 2);
        QCOMPARE(m->hparams.headDim, 8);
        QVERIFY(m->hparams.tiedEmbeddings);
        QCOMPARE(m->tensor("model.layers.0.self_attn.q_proj").dtype, DType::Q8_0);
        QCOMPARE(m->tensor("model.layers.0.post_attention_layernorm").dtype, DType::BF16);
    }
};

QTEST_GUILESS_MAIN(TestFuzzReplayGguf)
#include "tst_fuzzreplay_gguf.moc"
