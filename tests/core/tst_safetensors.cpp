// The safetensors header parser (formats.md 1.1-1.3): every validation rule on in-memory buffers, and the
// real stories260K file opened, truncated and corrupted on disk.
#include <QTemporaryDir>
#include <QTest>

#include <cstring>
#include <limits>

#include "HfTestSupport.h"
#include "TestData.h"
#include "common/Error.h"
#include "io/Safetensors.h"

using namespace qs::core;
using namespace qs::test;
using nlohmann::json;

namespace {

const std::string kFile = "unit.safetensors";

SafetensorsHeader parse(const QByteArray &bytes)
{
    return Safetensors::parseHeader(
        reinterpret_cast<const uint8_t *>(bytes.constData()), size_t(bytes.size()), uint64_t(bytes.size()), kFile);
}

QByteArray withHeader(const char *header, int dataBytes)
{
    return safetensorsBytes(QByteArray(header), QByteArray(dataBytes, '\x11'));
}

} // namespace

class TestSafetensors : public QObject
{
    Q_OBJECT
private slots:
    void parsesAValidHeader()
    {
        // JSON order differs from data order on purpose: tensors come back sorted by offset.
        const QByteArray file = withHeader(R"({"__metadata__":{"format":"pt","note":"x"},)"
                                           R"("b":{"dtype":"BF16","shape":[2,3],"data_offsets":[8,20]},)"
                                           R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":"ignored"}})",
            20);
        const SafetensorsHeader h = parse(file);
        QCOMPARE(h.tensors.size(), size_t(2));
        QCOMPARE(QString::fromStdString(h.tensors[0].name), QStringLiteral("a"));
        QCOMPARE(QString::fromStdString(h.tensors[1].name), QStringLiteral("b"));
        QCOMPARE(h.metadata.at("format"), std::string("pt"));
        QCOMPARE(h.metadata.size(), size_t(2));
        QCOMPARE(h.dataOffset, uint64_t(file.size() - 20));
        QCOMPARE(h.dataSize, uint64_t(20));
        const SafetensorsEntry *b = h.find("b");
        QVERIFY(b);
        QCOMPARE(b->numel, uint64_t(6));
        QCOMPARE(b->bitsPerElement, 16u);
        QCOMPARE(b->byteSize(), uint64_t(12));
        QVERIFY(b->floatDType() == DType::BF16);
        QVERIFY(h.find("c") == nullptr);
    }

    void acceptsEdgeCases_data()
    {
        QTest::addColumn<QByteArray>("file");
        QTest::addColumn<int>("tensors");
        QTest::newRow("empty object") << withHeader("{}", 0) << 0;
        QTest::newRow("null metadata") << withHeader(R"({"__metadata__":null})", 0) << 0;
        QTest::newRow("scalar") << withHeader(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})", 4) << 1;
        QTest::newRow("zero-size tensors") << withHeader(R"({"z":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},)"
                                                         R"("y":{"dtype":"I8","shape":[3],"data_offsets":[0,3]},)"
                                                         R"("x":{"dtype":"F16","shape":[4,0],"data_offsets":[3,3]}})",
            3) << 3;
        QTest::newRow("no padding") << safetensorsBytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", "x",
            1) << 1;
        QTest::newRow("trailing whitespace")
            << safetensorsBytes("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\n \t ", "x", 1) << 1;
        QTest::newRow("packed F4") << withHeader(R"({"p":{"dtype":"F4","shape":[6],"data_offsets":[0,3]}})", 3) << 1;
        QTest::newRow("negative zero offset")
            << withHeader(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[-0,1]}})", 1) << 1;
        QTest::newRow("unicode name") << withHeader(
            "{\"caf\xC3\xA9.\xE2\x96\x81\xF0\x9F\x98\x80\":{\"dtype\":\"U8\",\"shape\":[2],"
            "\"data_offsets\":[0,2]}}",
            2) << 1;
    }
    void acceptsEdgeCases()
    {
        QFETCH(QByteArray, file);
        QFETCH(int, tensors);
        QCOMPARE(int(parse(file).tensors.size()), tensors);
    }

    void integersAreNotRoundedThroughDouble()
    {
        // 2^53 + 1 is not representable as a double; a zero dimension keeps the tensor empty.
        const QByteArray file
            = withHeader(R"({"t":{"dtype":"F32","shape":[9007199254740993,0],"data_offsets":[0,0]},)"
                         R"("u":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})",
                0);
        const SafetensorsHeader h = parse(file);
        QCOMPARE(h.find("t")->shape[0], uint64_t(9007199254740993ull));
        QCOMPARE(h.find("u")->shape[1], std::numeric_limits<uint64_t>::max());
        QCOMPARE(h.find("u")->numel, uint64_t(0));
    }

    void rejectsInvalidHeaders_data()
    {
        QTest::addColumn<QByteArray>("file");
        QTest::addColumn<QString>("expected");
        const auto row = [](const char *name, const QByteArray &file, const char *expected) {
            QTest::newRow(name) << file << QString::fromUtf8(expected);
        };
        row("empty file", QByteArray(), "too short");
        row("7 bytes", QByteArray(7, '\0'), "too short");
        row("header too large", u64Le(100000001) + QByteArray(64, ' '), "exceeds");
        row("header length 2^64-1", u64Le(~uint64_t(0)) + QByteArray("{}"), "exceeds");
        row("header past end", u64Le(40) + QByteArray("{}"), "runs past the end");
        row("zero header length", u64Le(0), "does not start with '{'");
        row("array header", withHeader("[1,2]", 0), "does not start with '{'");
        row("leading space", withHeader(" {}", 0), "does not start with '{'");
        row("invalid UTF-8 byte", withHeader("{\"a\xFF\":1}", 0), "not valid UTF-8");
        row("overlong UTF-8", withHeader("{\"a\xC0\xAF\":1}", 0), "not valid UTF-8");
        row("UTF-16 surrogate", withHeader("{\"a\xED\xA0\x80\":1}", 0), "not valid UTF-8");
        row("truncated UTF-8", withHeader("{\"a\":1}\xE2\x96", 0), "not valid UTF-8");
        row("beyond U+10FFFF", withHeader("{\"\xF4\x90\x80\x80\":1}", 0), "not valid UTF-8");
        row("malformed JSON", withHeader(R"({"a":)", 0), "not valid JSON");
        row("trailing garbage", withHeader(R"({} x)", 0), "not valid JSON");
        row("NaN literal", withHeader(R"({"a":NaN})", 0), "not valid JSON");
        row("number overflow", withHeader(R"({"a":1e999})", 0), "not valid JSON");
        row("embedded NUL", safetensorsBytes(QByteArray("{}\0\0", 4), {}, 1), "NUL byte");
        row("NUL before garbage", safetensorsBytes(QByteArray("{}\0{\"a\":1}", 10), {}, 1), "NUL byte");
        row("metadata number value", withHeader(R"({"__metadata__":{"format":1}})", 0), "is not a string");
        row("metadata nested object", withHeader(R"({"__metadata__":{"a":{}}})", 0), "is not a string");
        row("metadata is a list", withHeader(R"({"__metadata__":["pt"]})", 0), "'__metadata__' is not a JSON object");
        row("entry not an object", withHeader(R"({"w":5})", 0), "tensor 'w': header entry is not a JSON object");
        row("missing dtype", withHeader(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), "tensor 'w': missing");
        row("dtype not a string", withHeader(R"({"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", 4),
            "non-string 'dtype'");
        row("unknown dtype", withHeader(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4),
            "tensor 'w': unknown dtype 'F33'");
        row("lower-case dtype", withHeader(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4),
            "unknown dtype");
        row("missing shape", withHeader(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4), "'shape'");
        row("shape not an array", withHeader(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,4]}})", 4), "'shape'");
        row("negative dimension", withHeader(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
            "non-negative integers");
        row("fractional dimension", withHeader(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
            "non-negative integers");
        row("dimension 2^64",
            withHeader(R"({"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}})", 4),
            "non-negative integers");
        row("string dimension", withHeader(R"({"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", 4),
            "non-negative integers");
        row("missing offsets", withHeader(R"({"w":{"dtype":"F32","shape":[1]}})", 4), "'data_offsets'");
        row("one offset", withHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4), "'data_offsets'");
        row("three offsets", withHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}})", 4),
            "'data_offsets'");
        row("negative offset", withHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
            "'data_offsets'");
        row("float offset", withHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", 4),
            "'data_offsets'");
        row("end before begin", withHeader(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", 4),
            "tensor 'w': data_offsets end 0 is before begin 4");
        row("numel overflow",
            withHeader(
                R"({"w":{"dtype":"U8","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,4]}})", 4),
            "more elements than fit in 64 bits");
        row("byte size overflow",
            withHeader(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4),
            "overflows 64 bits");
        row("absurd dims 2^62",
            withHeader(R"({"w":{"dtype":"U8","shape":[4611686018427387904],"data_offsets":[0,4]}})", 4),
            "tensor 'w': shape [4611686018427387904] of U8 overflows");
        row("misaligned F4", withHeader(R"({"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}})", 2),
            "whole number of bytes");
        row("size mismatch", withHeader(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4),
            "tensor 'w': shape [2] of F32 needs 8 bytes but data_offsets [0, 4] give 4");
        row("past the data section", withHeader(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4),
            "tensor 'w' ends at byte 8 but the data section has 4 bytes");
        row("not starting at 0", withHeader(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
            "tensor 'w' is the first in the data section but starts at byte 4");
        row("gap",
            withHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                12),
            "gap of 4 bytes between tensor 'a' (ends at byte 4) and tensor 'b'");
        row("overlap",
            withHeader(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12),
            "tensor 'b' (bytes 4 to 12) overlaps tensor 'a'");
        row("same bytes twice",
            withHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                       R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                4),
            "overlaps");
        row("trailing bytes", withHeader(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 6),
            "2 unexplained trailing bytes");
        row("data but no tensors", withHeader("{}", 1), "trailing bytes");
        row("duplicate tensor name",
            withHeader(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                2),
            "lists 'a' twice");
        row("control characters in name", withHeader("{\"a\\u0001\\n\":5}", 0),
            "tensor 'a?"
            "?'");
    }
    void rejectsInvalidHeaders()
    {
        QFETCH(QByteArray, file);
        QFETCH(QString, expected);
        QS_EXPECT_ERROR(parse(file), kFile + ": ", expected.toStdString());
    }

    void deepNestingIsRejectedWithoutStackOverflow()
    {
        // nlohmann-json parses and destroys iteratively; a hostile header of nested arrays must not recurse.
        const int depth = 100000;
        const QByteArray header = "{\"a\":" + QByteArray(depth, '[') + QByteArray(depth, ']') + "}";
        QS_EXPECT_ERROR(parse(safetensorsBytes(header, {})), kFile + ": ", "tensor 'a'");
        const QByteArray meta = "{\"__metadata__\":{\"a\":" + QByteArray(depth, '[') + QByteArray(depth, ']') + "}}";
        QS_EXPECT_ERROR(parse(safetensorsBytes(meta, {})), kFile + ": ", "is not a string");
    }

    void utf8Validator_data()
    {
        QTest::addColumn<QByteArray>("bytes");
        QTest::addColumn<int>("firstInvalid");
        QTest::newRow("ascii") << QByteArray("abc") << 3;
        QTest::newRow("2,3,4-byte") << QByteArray("\xC2\xA9\xE2\x82\xAC\xF0\x9F\x92\xA9") << 9;
        QTest::newRow("max code point") << QByteArray("\xF4\x8F\xBF\xBF") << 4;
        QTest::newRow("lone continuation") << QByteArray("a\x80") << 1;
        QTest::newRow("C1 lead") << QByteArray("ab\xC1\xBF") << 2;
        QTest::newRow("overlong 3-byte") << QByteArray("\xE0\x80\xAF") << 0;
        QTest::newRow("overlong 4-byte") << QByteArray("\xF0\x8F\xBF\xBF") << 0;
        QTest::newRow("surrogate") << QByteArray("x\xED\xBF\xBF") << 1;
        QTest::newRow("F5 lead") << QByteArray("\xF5\x80\x80\x80") << 0;
        QTest::newRow("cut short") << QByteArray("ok\xF0\x9F\x92") << 2;
        QTest::newRow("bad continuation") << QByteArray("\xE2\x28\xA1") << 0;
    }
    void utf8Validator()
    {
        QFETCH(QByteArray, bytes);
        QFETCH(int, firstInvalid);
        const auto *p = reinterpret_cast<const uint8_t *>(bytes.constData());
        QCOMPARE(int(firstInvalidUtf8(p, size_t(bytes.size()))), firstInvalid);
        QCOMPARE(isValidUtf8(p, size_t(bytes.size())), firstInvalid == bytes.size());
    }

    void opensTheRealFile()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf/model.safetensors");
        const auto st = Safetensors::open(str(path));
        QCOMPARE(QString::fromStdString(st->fileName()), QStringLiteral("model.safetensors"));
        QCOMPARE(st->tensors().size(), size_t(48));
        QCOMPARE(st->header().metadata.at("format"), std::string("pt"));
        const SafetensorsEntry *head = st->find("lm_head.weight");
        QVERIFY(head);
        QCOMPARE(head->shape, (std::vector<uint64_t> { 512, 64 }));
        QCOMPARE(head->begin, uint64_t(0));
        QCOMPARE(head->dtype, std::string("F32"));
        // tensorBytes points where the header says.
        const QByteArray raw = readAll(path);
        const SafetensorsEntry *norm = st->find("model.norm.weight");
        QVERIFY(norm);
        QCOMPARE(std::memcmp(st->tensorBytes(*norm), raw.constData() + st->header().dataOffset + norm->begin, 256), 0);
        QCOMPARE(st->header().dataOffset + st->header().dataSize, uint64_t(raw.size()));
    }

    void truncatedCopiesFail()
    {
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf/model.safetensors");
        const QByteArray raw = readAll(path);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const QString copy = dir.filePath(QStringLiteral("model.safetensors"));
        std::vector<int> cuts;
        for (int i = 0; i <= 16; ++i)
            cuts.push_back(i);
        for (int i = 1; i < 37; ++i)
            cuts.push_back(int(int64_t(raw.size()) * i / 37));
        const int headerEnd = int(8 + readU64(raw));
        for (int i = 1; i < 37; ++i)
            cuts.push_back(headerEnd * i / 37); // inside the JSON
        cuts.push_back(headerEnd);
        cuts.push_back(int(raw.size()) - 1);
        for (int cut : cuts) {
            writeAll(copy, raw.left(cut));
            QS_EXPECT_ERROR(Safetensors::open(str(copy)), "model.safetensors: ");
        }
        writeAll(copy, raw + QByteArray(1, '\0'));
        QS_EXPECT_ERROR(Safetensors::open(str(copy)), "model.safetensors: ", "trailing");
    }

    void corruptedCopiesFail_data()
    {
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("expected");
        QTest::newRow("header length +1") << "len+1"
                                          << "";
        QTest::newRow("header length -1") << "len-1"
                                          << "";
        QTest::newRow("header length -8") << "len-8"
                                          << "";
        QTest::newRow("header length x2") << "len*2"
                                          << "";
        QTest::newRow("header length = file size") << "len=size"
                                                   << "runs past the end";
        QTest::newRow("header length 2^63") << "len=2^63"
                                            << "exceeds";
        QTest::newRow("header length bit flip") << "lenflip"
                                                << "";
        QTest::newRow("offset past the end") << "pastEnd"
                                             << "ends at byte";
        QTest::newRow("overlapping tensors") << "overlap"
                                             << "overlaps";
        QTest::newRow("wrong dtype string") << "dtype"
                                            << "unknown dtype 'F31'";
        QTest::newRow("dtype of another size") << "dtypeF16"
                                               << "needs";
        QTest::newRow("absurd dims 2^62") << "dims"
                                          << "tensor 'model.norm.weight'";
        QTest::newRow("non-UTF-8 header") << "utf8"
                                          << "not valid UTF-8";
        QTest::newRow("tensor removed") << "drop"
                                        << "gap of";
    }
    void corruptedCopiesFail()
    {
        QFETCH(QString, kind);
        QFETCH(QString, expected);
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf/model.safetensors");
        const QByteArray raw = readAll(path);
        QTemporaryDir dir;
        const QString copy = dir.filePath(QStringLiteral("model.safetensors"));

        QByteArray bytes = raw;
        const uint64_t n = readU64(raw);
        SplitFile s = splitSafetensors(raw);
        if (kind == QLatin1String("len+1"))
            bytes.replace(0, 8, u64Le(n + 1));
        else if (kind == QLatin1String("len-1"))
            bytes.replace(0, 8, u64Le(n - 1));
        else if (kind == QLatin1String("len-8"))
            bytes.replace(0, 8, u64Le(n - 8));
        else if (kind == QLatin1String("len*2"))
            bytes.replace(0, 8, u64Le(n * 2));
        else if (kind == QLatin1String("len=size"))
            bytes.replace(0, 8, u64Le(uint64_t(raw.size())));
        else if (kind == QLatin1String("len=2^63"))
            bytes.replace(0, 8, u64Le(uint64_t(1) << 63));
        else if (kind == QLatin1String("lenflip"))
            bytes[1] = char(bytes[1] ^ 0x01);
        else if (kind == QLatin1String("pastEnd"))
            s.header["model.norm.weight"]["data_offsets"] = { s.data.size(), s.data.size() + 256 };
        else if (kind == QLatin1String("overlap")) {
            // Move one tensor 4 bytes earlier: it overlaps its predecessor, and leaves 4 bytes uncovered.
            auto &o = s.header["model.layers.2.mlp.up_proj.weight"]["data_offsets"];
            o[0] = o[0].get<uint64_t>() - 4;
            o[1] = o[1].get<uint64_t>() - 4;
        } else if (kind == QLatin1String("dtype"))
            s.header["model.norm.weight"]["dtype"] = "F31";
        else if (kind == QLatin1String("dtypeF16"))
            s.header["model.norm.weight"]["dtype"] = "F16";
        else if (kind == QLatin1String("dims"))
            s.header["model.norm.weight"]["shape"] = { uint64_t(1) << 62 };
        else if (kind == QLatin1String("drop"))
            s.header.erase("model.layers.1.mlp.up_proj.weight");
        if (kind == QLatin1String("utf8")) {
            const int at = bytes.indexOf("model.norm");
            bytes[at + 2] = char(0xFE);
        } else if (!kind.startsWith(QLatin1String("len"))) {
            bytes = s.assemble();
        }
        writeAll(copy, bytes);
        QS_EXPECT_ERROR(Safetensors::open(str(copy)), "model.safetensors: ", expected.toStdString());
    }

    void reassembledCopyStillOpens()
    {
        // The control for the corruptions above: splitting and reassembling alone breaks nothing, with or
        // without header padding (then the data starts at an odd offset).
        QS_REQUIRE_TESTDATA(path, "models/stories260K-hf/model.safetensors");
        QTemporaryDir dir;
        const QString copy = dir.filePath(QStringLiteral("model.safetensors"));
        const SplitFile s = splitSafetensors(readAll(path));
        for (int align : { 1, 8 }) {
            const QByteArray bytes = s.assemble(align);
            writeAll(copy, bytes);
            const auto st = Safetensors::open(str(copy));
            QCOMPARE(st->tensors().size(), size_t(48));
            QCOMPARE(st->header().dataOffset + st->header().dataSize, uint64_t(bytes.size()));
        }
    }

    void missingFileNamesThePath()
    {
        QTemporaryDir dir;
        const QString missing = dir.filePath(QStringLiteral("absent.safetensors"));
        QS_EXPECT_ERROR(Safetensors::open(str(missing)), "absent.safetensors");
    }
};

QTEST_GUILESS_MAIN(TestSafetensors)
#include "tst_safetensors.moc"
