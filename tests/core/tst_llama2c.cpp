// llama2.c v0 checkpoints: the three real models, exact agreement with the Hugging Face copy of stories260K
// (after the q/k row permutation), tokenizer discovery, and truncated or corrupted copies.
#include <QTemporaryDir>
#include <QTest>

#include <climits>
#include <cstring>

#include "HfTestSupport.h"
#include "TestData.h"
#include "common/Error.h"
#include "io/FormatRegistry.h"
#include "io/HfFolderReader.h"
#include "io/Llama2cReader.h"

using namespace qs::core;
using namespace qs::test;

namespace {

QByteArray i32Le(int32_t v)
{
    QByteArray b(4, '\0');
    std::memcpy(b.data(), &v, 4);
    return b;
}

void setField(QByteArray &file, int field, int32_t value)
{
    file.replace(4 * field, 4, i32Le(value));
}

// The header of a newer export (formats.md 7.2): magic, version, the 7 params, shared flag, zero padding.
QByteArray newExportHeader(int version)
{
    QByteArray h = i32Le(0x616b3432) + i32Le(version);
    for (int32_t v : { 64, 172, 5, 8, 4, 512, 512 })
        h += i32Le(v);
    h += char(1);
    if (version == 2)
        h += i32Le(64);
    h += QByteArray(256 - h.size(), '\0');
    return h;
}

const char *kStories = "models/stories260K-llama2c/stories260K.bin";

} // namespace

class TestLlama2c : public QObject
{
    Q_OBJECT
private slots:
    void opensRealModels_data()
    {
        QTest::addColumn<QString>("relative");
        QTest::addColumn<int>("hidden");
        QTest::addColumn<int>("layers");
        QTest::addColumn<int>("heads");
        QTest::addColumn<int>("kvHeads");
        QTest::addColumn<int>("seqLen");
        QTest::addColumn<QString>("tokenizer"); // file name found beside the model, or empty
        QTest::newRow("stories260K") << kStories << 172 << 5 << 8 << 4 << 512 << "tok512.bin";
        QTest::newRow("llama2xs") << "models/llama2xs-llama2c/llama2xs.bin" << 192 << 5 << 8 << 4 << 256 << "";
        QTest::newRow("aidreams260K") << "models/aidreams260K-llama2c/aidreams260K.bin" << 172 << 4 << 4 << 4 << 128
                                      << "tok512.bin";
    }
    void opensRealModels()
    {
        QFETCH(QString, relative);
        QFETCH(int, hidden);
        QFETCH(int, layers);
        QFETCH(int, heads);
        QFETCH(int, kvHeads);
        QFETCH(int, seqLen);
        QFETCH(QString, tokenizer);
        const QString path = testDataPath(relative);
        if (!QFileInfo::exists(path)) {
            const QByteArray msg = "test data missing: " + path.toUtf8();
            if (inCi())
                QFAIL(msg.constData());
            QSKIP(msg.constData());
        }
        QVERIFY(Llama2cReader::probe(str(path)));
        const auto model = openModel(str(path));
        QCOMPARE(QString::fromStdString(model->format), QStringLiteral("llama2c"));
        QCOMPARE(QString::fromStdString(model->path), path);
        const HyperParams &h = model->hparams;
        QCOMPARE(QString::fromStdString(h.architecture), QStringLiteral("llama"));
        QCOMPARE(h.hiddenSize, 64);
        QCOMPARE(h.intermediateSize, hidden);
        QCOMPARE(h.numLayers, layers);
        QCOMPARE(h.numHeads, heads);
        QCOMPARE(h.numKvHeads, kvHeads);
        QCOMPARE(h.headDim, 64 / heads);
        QCOMPARE(h.vocabSize, 512);
        QCOMPARE(h.maxPositions, seqLen);
        QCOMPARE(h.rmsEps, 1e-5);
        QCOMPARE(h.ropeTheta, 10000.0);
        QVERIFY(h.tiedEmbeddings);
        QCOMPARE(h.bosTokenId, 1);
        QCOMPARE(h.eosTokenId, 2);
        QCOMPARE(model->tensors.size(), size_t(1 + 9 * layers + 2));
        const Tensor &head = model->tensor("lm_head");
        QVERIFY(head.tied);
        QCOMPARE(head.data, model->tensor("model.embed_tokens").data);
        QCOMPARE(head.storedBytes, uint64_t(0));
        uint64_t stored = 0;
        for (const Tensor &t : model->tensors) {
            QCOMPARE(t.dtype, DType::F32);
            stored += t.storedBytes;
        }
        // Everything but the header and the unused freq_cis tables is a tensor.
        const uint64_t freqCis = uint64_t(seqLen) * uint64_t(64 / heads) * 4;
        QCOMPARE(stored + 28 + freqCis, uint64_t(QFileInfo(path).size()));
        if (tokenizer.isEmpty()) {
            QVERIFY(model->tokenizerPath.empty());
            QCOMPARE(model->warnings.size(), size_t(1));
            QVERIFY(model->warnings[0].find("no tokenizer.bin") != std::string::npos);
        } else {
            QCOMPARE(QFileInfo(QString::fromStdString(model->tokenizerPath)).fileName(), tokenizer);
            QVERIFY(model->warnings.empty());
        }
    }

    void matchesTheHuggingFaceCopyExactly()
    {
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        QS_REQUIRE_TESTDATA(hfPath, "models/stories260K-hf");
        const auto bin = Llama2cReader::open(str(binPath));
        const auto hf = HfFolderReader::open(str(hfPath));
        QCOMPARE(bin->tensors.size(), hf->tensors.size());
        QCOMPARE(bin->parameterCount() + 512 * 64, hf->parameterCount()); // the HF copy stores lm_head apart
        for (const Tensor &t : hf->tensors) {
            const Tensor &u = bin->tensor(t.name);
            QCOMPARE(u.role, t.role);
            QCOMPARE(u.block, t.block);
            QCOMPARE(u.rows, t.rows);
            QCOMPARE(u.cols, t.cols);
            const std::vector<float> a = hf->readMatrix(t);
            const std::vector<float> b = bin->readMatrix(u);
            QVERIFY2(std::memcmp(a.data(), b.data(), a.size() * 4) == 0, t.name.c_str());
        }
        // Order is the same too.
        for (size_t i = 0; i < hf->tensors.size(); ++i)
            QCOMPARE(bin->tensors[i].name, hf->tensors[i].name);
    }

    void qkRowsComeBackInHfOrder()
    {
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        const QByteArray raw = readAll(binPath);
        const auto model = Llama2cReader::open(str(binPath));
        // Float offsets: embedding 512*64, rms_att 5*64, then wq (5 x 64x64), wk (5 x 32x64), wv.
        const int64_t wq = 512 * 64 + 5 * 64, wk = wq + 5 * 64 * 64, wv = wk + 5 * 32 * 64;
        const auto fileRow = [&](int64_t floatOffset, int64_t row) {
            std::vector<float> v(64);
            std::memcpy(v.data(), raw.constData() + 28 + (floatOffset + row * 64) * 4, 64 * 4);
            return v;
        };
        const int layer = 2;
        std::vector<float> row(64);
        for (int64_t r = 0; r < 64; ++r) {
            model->readRows(model->tensor("model.layers.2.self_attn.q_proj"), r, 1, row.data());
            QCOMPARE(row, fileRow(wq + layer * 64 * 64, hfRowToMetaRow(r, 8)));
        }
        for (int64_t r = 0; r < 32; ++r) {
            model->readRows(model->tensor("model.layers.2.self_attn.k_proj"), r, 1, row.data());
            QCOMPARE(row, fileRow(wk + layer * 32 * 64, hfRowToMetaRow(r, 8)));
            model->readRows(model->tensor("model.layers.2.self_attn.v_proj"), r, 1, row.data());
            QCOMPARE(row, fileRow(wv + layer * 32 * 64, r)); // v is never permuted
        }
        // Multi-row reads permute each row.
        std::vector<float> rows(5 * 64);
        model->readRows(model->tensor("model.layers.2.self_attn.q_proj"), 3, 5, rows.data());
        for (int64_t i = 0; i < 5; ++i)
            QCOMPARE(std::vector<float>(rows.begin() + i * 64, rows.begin() + (i + 1) * 64),
                fileRow(wq + layer * 64 * 64, hfRowToMetaRow(3 + i, 8)));
        QS_EXPECT_ERROR(model->tensor("model.layers.2.self_attn.q_proj").data->readRows(60, 5, rows.data()),
            "stories260K.bin: ", "out of range");
    }

    void tokenizerChoices()
    {
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        QS_REQUIRE_TESTDATA(tokPath, "models/stories260K-llama2c/tok512.bin");
        QS_REQUIRE_TESTDATA(xsPath, "models/llama2xs-llama2c/llama2xs.bin");
        // Given explicitly: used, no warning.
        OpenOptions options;
        options.tokenizerPath = str(tokPath);
        auto model = Llama2cReader::open(str(xsPath), options);
        QCOMPARE(QString::fromStdString(model->tokenizerPath), tokPath);
        QVERIFY(model->warnings.empty());
        // Given but absent: an error naming it.
        options.tokenizerPath = "/nonexistent/tok999.bin";
        QS_EXPECT_ERROR(Llama2cReader::open(str(xsPath), options), "tok999.bin");

        QTemporaryDir tmp;
        const QString model2 = tmp.filePath(QStringLiteral("m.bin"));
        writeAll(model2, readAll(binPath));
        // A tokenizer that cannot hold 512 tokens is not used.
        writeAll(tmp.filePath(QStringLiteral("tok512.bin")), i32Le(10) + QByteArray(20, '\0'));
        model = Llama2cReader::open(str(model2));
        QVERIFY(model->tokenizerPath.empty());
        QCOMPARE(model->warnings.size(), size_t(1));
        QVERIFY2(model->warnings[0].find("tok512.bin: ends after") != std::string::npos, model->warnings[0].c_str());
        // tok<vocab>.bin wins over other tok*.bin; tokenizer.bin wins over both.
        writeAll(tmp.filePath(QStringLiteral("tok512.bin")), readAll(tokPath));
        writeAll(tmp.filePath(QStringLiteral("tok32000.bin")), QByteArray(4, '\0'));
        writeAll(tmp.filePath(QStringLiteral("tok100.bin")), QByteArray(4, '\0'));
        model = Llama2cReader::open(str(model2));
        QCOMPARE(QFileInfo(QString::fromStdString(model->tokenizerPath)).fileName(), QStringLiteral("tok512.bin"));
        QVERIFY(model->warnings.empty());
        writeAll(tmp.filePath(QStringLiteral("tokenizer.bin")), readAll(tokPath));
        model = Llama2cReader::open(str(model2));
        QCOMPARE(QFileInfo(QString::fromStdString(model->tokenizerPath)).fileName(), QStringLiteral("tokenizer.bin"));
    }

    void separateClassifier()
    {
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        QByteArray file = readAll(binPath);
        setField(file, 5, -512);
        std::vector<float> wcls(512 * 64);
        std::memcpy(wcls.data(), file.constData() + 28, wcls.size() * 4);
        for (float &v : wcls)
            v = -2.0f * v;
        file += floatBytes(wcls);
        QTemporaryDir tmp;
        const QString path = tmp.filePath(QStringLiteral("untied.bin"));
        writeAll(path, file);
        const auto model = Llama2cReader::open(str(path));
        QVERIFY(!model->hparams.tiedEmbeddings);
        QCOMPARE(model->hparams.vocabSize, 512);
        const Tensor &head = model->tensor("lm_head");
        QVERIFY(!head.tied);
        QCOMPARE(head.sourceName, std::string("wcls"));
        QCOMPARE(head.storedBytes, uint64_t(512 * 64 * 4));
        QCOMPARE(model->readMatrix(head), wcls);
        // Without the classifier the file is short by exactly that much.
        writeAll(path, file.left(file.size() - 512 * 64 * 4));
        QS_EXPECT_ERROR(Llama2cReader::open(str(path)), "untied.bin: ", "truncated, 131072 bytes missing");
    }

    void corruptedCopiesFail_data()
    {
        QTest::addColumn<int>("field"); // header field to overwrite, -1 for none
        QTest::addColumn<int>("value");
        QTest::addColumn<int>("append"); // bytes appended (or removed, negative)
        QTest::addColumn<QString>("expected");
        const auto row = [](const char *name, int field, int value, int append, const char *expected) {
            QTest::newRow(name) << field << value << append << QString::fromUtf8(expected);
        };
        row("one trailing byte", -1, 0, 1, "1 unexpected trailing bytes");
        row("trailing page", -1, 0, 4096, "4096 unexpected trailing bytes");
        row("last float missing", -1, 0, -4, "truncated, 4 bytes missing");
        row("dim 0", 0, 0, 0, "dim = 0");
        row("dim negative", 0, -64, 0, "dim = -64");
        row("dim INT_MAX", 0, INT_MAX, 0, "dim = 2147483647");
        row("dim odd vs heads", 0, 60, 0, "not a multiple of n_heads");
        row("dim larger", 0, 128, 0, "implies");
        row("hidden_dim 0", 1, 0, 0, "hidden_dim = 0");
        row("hidden_dim huge", 1, 1 << 30, 0, "hidden_dim = 1073741824");
        row("layers negative", 2, -1, 0, "n_layers = -1");
        row("layers huge", 2, 1 << 20, 0, "n_layers");
        row("layers 6", 2, 6, 0, "truncated");
        row("heads 0", 3, 0, 0, "n_heads = 0");
        row("heads > dim", 3, 128, 0, "n_heads = 128");
        row("heads 3", 3, 3, 0, "n_kv_heads = 4 (expected 1 to 3)");
        row("heads 16 (kv dim shrinks)", 3, 16, 0, "49152 unexpected trailing bytes");
        row("heads 64 (odd head dim 1)", 3, 64, 0, "head dimension 1 is odd");
        row("kv heads > heads", 4, 16, 0, "n_kv_heads = 16");
        row("kv heads 3", 4, 3, 0, "not a multiple of n_kv_heads");
        row("kv heads -4", 4, -4, 0, "n_kv_heads = -4");
        row("vocab 0", 5, 0, 0, "vocab_size = 0");
        row("vocab INT_MIN", 5, INT_MIN, 0, "vocab_size = -2147483648");
        row("vocab 2^30", 5, 1 << 30, 0, "vocab_size = 1073741824");
        row("vocab -512 (classifier missing)", 5, -512, 0, "truncated");
        row("vocab 513", 5, 513, 0, "truncated");
        row("seq_len 0", 6, 0, 0, "seq_len = 0");
        row("seq_len INT_MIN", 6, INT_MIN, 0, "seq_len");
        row("seq_len 513", 6, 513, 0, "truncated");
        row("seq_len 511", 6, 511, 0, "trailing bytes");
    }
    void corruptedCopiesFail()
    {
        QFETCH(int, field);
        QFETCH(int, value);
        QFETCH(int, append);
        QFETCH(QString, expected);
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        QByteArray file = readAll(binPath);
        if (field >= 0)
            setField(file, field, value);
        if (append > 0)
            file += QByteArray(append, '\x7f');
        else if (append < 0)
            file.chop(-append);
        QTemporaryDir tmp;
        const QString path = tmp.filePath(QStringLiteral("stories260K.bin"));
        writeAll(path, file);
        QS_EXPECT_ERROR(Llama2cReader::open(str(path)), "stories260K.bin: ", expected.toStdString());
    }

    void truncatedCopiesFail()
    {
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        const QByteArray raw = readAll(binPath);
        QTemporaryDir tmp;
        const QString path = tmp.filePath(QStringLiteral("cut.bin"));
        std::vector<int> cuts;
        for (int i = 0; i <= 32; ++i)
            cuts.push_back(i);
        for (int i = 1; i < 37; ++i)
            cuts.push_back(int(int64_t(raw.size()) * i / 37));
        cuts.push_back(int(raw.size()) - 1);
        for (int cut : cuts) {
            writeAll(path, raw.left(cut));
            QS_EXPECT_ERROR(Llama2cReader::open(str(path)), "cut.bin: ");
        }
    }

    void newerExportVersionsAreExplained()
    {
        QTemporaryDir tmp;
        for (int version : { 1, 2 }) {
            const QString path = tmp.filePath(QStringLiteral("v%1.bin").arg(version));
            writeAll(path, newExportHeader(version) + QByteArray(1024, '\0'));
            QVERIFY(Llama2cReader::probe(str(path)));
            QS_EXPECT_ERROR(openModel(str(path)),
                "v" + std::to_string(version) + ".bin: ", "newer llama2.c export version not supported",
                "version " + std::to_string(version));
        }
        // Even a stub of the magic alone.
        const QString stub = tmp.filePath(QStringLiteral("stub.bin"));
        writeAll(stub, i32Le(0x616b3432));
        QS_EXPECT_ERROR(Llama2cReader::open(str(stub)), "stub.bin: ", "newer llama2.c export version");
    }

    void probeIsSelective()
    {
        QS_REQUIRE_TESTDATA(binPath, "models/stories260K-llama2c/stories260K.bin");
        QS_REQUIRE_TESTDATA(tokPath, "models/stories260K-llama2c/tok512.bin");
        QVERIFY(Llama2cReader::probe(str(binPath)));
        QVERIFY(!Llama2cReader::probe(str(tokPath))); // a tokenizer is not a model
        QTemporaryDir tmp;
        const QByteArray raw = readAll(binPath);
        const auto probeAs = [&](const QString &name, const QByteArray &bytes) {
            const QString p = tmp.filePath(name);
            writeAll(p, bytes);
            return Llama2cReader::probe(str(p));
        };
        QVERIFY(probeAs(QStringLiteral("UPPER.BIN"), raw));
        QVERIFY(!probeAs(QStringLiteral("model.dat"), raw)); // extension decides first
        QVERIFY(!probeAs(QStringLiteral("short.bin"), raw.left(27)));
        QVERIFY(!probeAs(QStringLiteral("zip.bin"), QByteArray("PK\x03\x04", 4) + QByteArray(60, '\0')));
        QVERIFY(!probeAs(QStringLiteral("zeros.bin"), QByteArray(64, '\0')));
        // Plausible header, wrong size: accepted by the probe so that opening can say what is wrong.
        QVERIFY(probeAs(QStringLiteral("truncated.bin"), raw.left(1000)));
        QS_EXPECT_ERROR(openModel(str(tmp.filePath(QStringLiteral("truncated.bin")))), "truncated.bin: ", "truncated");
        QVERIFY(!Llama2cReader::probe(str(tmp.path()))); // a folder
    }

    void parseHeaderInMemory()
    {
        QByteArray h;
        for (int32_t v : { 64, 172, 5, 8, 4, 512, 512 })
            h += i32Le(v);
        const auto *p = reinterpret_cast<const uint8_t *>(h.constData());
        const Llama2cHeader hdr = Llama2cReader::parseHeader(p, 28, 1056540, "x.bin");
        QCOMPARE(hdr.expectedFileSize, uint64_t(1056540));
        QCOMPARE(hdr.numKvHeads, 4);
        QVERIFY(hdr.sharedClassifier);
        QS_EXPECT_ERROR(Llama2cReader::parseHeader(p, 28, 1056541, "x.bin"), "x.bin: ", "trailing");
        QS_EXPECT_ERROR(Llama2cReader::parseHeader(p, 20, 20, "x.bin"), "x.bin: ", "shorter than the 28-byte");
        // The largest header the bounds allow still computes its size without overflow.
        QByteArray big;
        for (int32_t v : { 1 << 16, 1 << 20, 1 << 12, 1 << 15, 1 << 15, -(1 << 24), 1 << 24 })
            big += i32Le(v);
        QS_EXPECT_ERROR(Llama2cReader::parseHeader(reinterpret_cast<const uint8_t *>(big.constData()), 28, 28, "x.bin"),
            "x.bin: ", "truncated");
    }
};

QTEST_GUILESS_MAIN(TestLlama2c)
#include "tst_llama2c.moc"
