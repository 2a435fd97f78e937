// The streaming GGUF writer (export/GgufWriter.h) against our reader (io/GgufFile.h) and the ggml rules
// (formats.md §2.1–2.3): every metadata value type round-trips, general.alignment is a u32 and offsets are
// tightly packed and aligned, tensor bytes land where the infos say; misuse, cancellation and an
// unwritable folder leave nothing behind and name the file.
#include <QTest>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <csignal>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "TestData.h"
#include "common/Error.h"
#include "export/GgufWriter.h"
#include "io/GgufFile.h"

using namespace qs::core;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> leftovers(const fs::path &dir)
{
    std::vector<std::string> out;
    for (const fs::directory_entry &e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp-") != std::string::npos)
            out.push_back(e.path().string());
    return out;
}

std::string errorText(const std::function<void()> &f)
{
    try {
        f();
    } catch (const Error &e) {
        return e.what();
    }
    return {};
}

const GgmlTypeInfo &type(const char *name)
{
    return *findGgmlType(std::string_view(name));
}

} // namespace

class TestGgufWriter : public QObject
{
    Q_OBJECT

    fs::path m_dir;

private slots:
    void initTestCase()
    {
        m_dir = fs::path(qs::test::outputDir().toStdString()) / "tst_gguf_writer";
        fs::remove_all(m_dir);
        fs::create_directories(m_dir);
    }

    void everyValueTypeRoundTrips()
    {
        const std::string path = (m_dir / "values.gguf").string();
        GgufWriter w(path);
        w.addMetadata("t.u8", GgufWriteValue::u8(200));
        w.addMetadata("t.i8", GgufWriteValue::i8(-100));
        w.addMetadata("t.u16", GgufWriteValue::u16(60000));
        w.addMetadata("t.i16", GgufWriteValue::i16(-30000));
        w.addMetadata("t.u32", GgufWriteValue::u32(4000000000u));
        w.addMetadata("t.i32", GgufWriteValue::i32(-2000000000));
        w.addMetadata("t.u64", GgufWriteValue::u64(uint64_t(1) << 63));
        w.addMetadata("t.i64", GgufWriteValue::i64(-(int64_t(1) << 62)));
        w.addMetadata("t.f32", GgufWriteValue::f32(1.5e-5f));
        w.addMetadata("t.f64", GgufWriteValue::f64(0.1));
        w.addMetadata("t.bool", GgufWriteValue::boolean(true));
        w.addMetadata("t.str", GgufWriteValue::string("héllo ▁world"));
        w.addMetadata("t.empty", GgufWriteValue::string(""));
        w.addMetadata("t.strs", GgufWriteValue::stringArray({ "a", "", "<0x0A>", "▁the" }));
        w.addMetadata("t.f32s", GgufWriteValue::f32Array({ -1000.0f, 0.0f, 3.25f }));
        w.addMetadata("t.i32s", GgufWriteValue::i32Array({ 1, 2, 3, 6, -7 }));
        w.addMetadata("t.u32s", GgufWriteValue::u32Array({ 7, 4000000000u }));
        const int16_t i16s[] = { -1, 2 };
        w.addMetadata("t.i16s", GgufWriteValue::numericArray(GgufType::Int16, i16s, 2));
        const uint8_t bools[] = { 1, 0, 1 };
        w.addMetadata("t.bools", GgufWriteValue::numericArray(GgufType::Bool, bools, 3));
        w.addMetadata("t.emptyarr", GgufWriteValue::i32Array({}));
        w.finish();

        const GgufFile f = GgufFile::open(path);
        QCOMPARE(f.version(), 3u);
        QCOMPARE(f.tensors().size(), size_t(0));
        QCOMPARE(*f.getU32("general.alignment"), 32u);
        QCOMPARE(*f.getU8("t.u8"), uint8_t(200));
        QCOMPARE(*f.getI8("t.i8"), int8_t(-100));
        QCOMPARE(*f.getU16("t.u16"), uint16_t(60000));
        QCOMPARE(*f.getI16("t.i16"), int16_t(-30000));
        QCOMPARE(*f.getU32("t.u32"), 4000000000u);
        QCOMPARE(*f.getI32("t.i32"), -2000000000);
        QCOMPARE(*f.getU64("t.u64"), uint64_t(1) << 63);
        QCOMPARE(*f.getI64("t.i64"), -(int64_t(1) << 62));
        QCOMPARE(*f.getF32("t.f32"), 1.5e-5f);
        QCOMPARE(*f.getF64("t.f64"), 0.1);
        QCOMPARE(*f.getBool("t.bool"), true);
        QCOMPARE(*f.getString("t.str"), std::string("héllo ▁world"));
        QCOMPARE(*f.getString("t.empty"), std::string());
        QCOMPARE(*f.getStringArray("t.strs"), (std::vector<std::string> { "a", "", "<0x0A>", "▁the" }));
        QCOMPARE(*f.getF32Array("t.f32s"), (std::vector<float> { -1000.0f, 0.0f, 3.25f }));
        QCOMPARE(*f.getI32Array("t.i32s"), (std::vector<int32_t> { 1, 2, 3, 6, -7 }));
        QCOMPARE(*f.getU32Array("t.u32s"), (std::vector<uint32_t> { 7, 4000000000u }));
        QCOMPARE(*f.getIntegerArray("t.i16s"), (std::vector<int64_t> { -1, 2 }));
        QCOMPARE(f.find("t.bools")->elementType(), GgufType::Bool);
        QCOMPARE(*f.getArraySize("t.bools"), uint64_t(3));
        QCOMPARE(*f.getArraySize("t.emptyarr"), uint64_t(0));
        // Types are exact, as llama.cpp checks them.
        QVERIFY_THROWS_EXCEPTION(Error, f.getU64("t.u32"));

        // copyOf carries every value over unchanged (as the exporter copies tokenizer.ggml.*).
        const std::string copyPath = (m_dir / "copy.gguf").string();
        GgufWriter c(copyPath);
        for (const GgufKeyValue &kv : f.metadata())
            if (kv.key != "general.alignment")
                c.addMetadata(kv.key, GgufWriteValue::copyOf(kv.value));
        c.finish();
        std::ifstream a(path, std::ios::binary), b(copyPath, std::ios::binary);
        const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
        QCOMPARE(sa.size(), sb.size());
        QVERIFY(sa == sb);
    }

    void tensorsAlignedAndPacked_data()
    {
        QTest::addColumn<int>("alignment");
        QTest::newRow("32") << 32;
        QTest::newRow("64") << 64;
        QTest::newRow("8") << 8;
    }

    void tensorsAlignedAndPacked()
    {
        QFETCH(int, alignment);
        const std::string path = (m_dir / ("tensors" + std::to_string(alignment) + ".gguf")).string();
        GgufWriter w(path, uint32_t(alignment));
        w.addMetadata("general.architecture", GgufWriteValue::string("llama"));
        // 3 floats (12 bytes, needs padding), 64 halves, a Q8_0 row of 2 blocks (68 bytes), 5 floats.
        w.addTensor("a", { 3 }, type("F32"));
        w.addTensor("b", { 32, 2 }, type("F16"));
        w.addTensor("c", { 64, 1 }, type("Q8_0"));
        w.addTensor("d", { 5 }, type("F32"));
        w.beginData();
        const float a[3] = { 1.0f, -2.0f, 3.5f };
        w.writeTensorData(a, 12);
        std::vector<uint8_t> b(128);
        for (size_t i = 0; i < b.size(); ++i)
            b[i] = uint8_t(i * 7);
        w.writeTensorData(b.data(), 50); // in pieces
        w.writeTensorData(b.data() + 50, 78);
        std::vector<uint8_t> c(68, 0x11);
        c[0] = 0x00;
        c[1] = 0x3C; // d = 1.0
        w.writeTensorData(c.data(), c.size());
        const float d[5] = { 9, 8, 7, 6, 5 };
        w.writeTensorData(d, sizeof d);
        QCOMPARE(w.currentTensorBytes(), uint64_t(0));
        w.finish();

        const GgufFile f = GgufFile::open(path);
        QCOMPARE(f.alignment(), uint32_t(alignment));
        QCOMPARE(f.dataStart() % uint64_t(alignment), uint64_t(0));
        QCOMPARE(f.tensors().size(), size_t(4));
        uint64_t expect = 0;
        for (const GgufTensorInfo &t : f.tensors()) {
            QCOMPARE(t.offset, expect); // ggml: offset_i = Σ PAD(nbytes_j)
            expect += (t.nbytes + uint64_t(alignment) - 1) / uint64_t(alignment) * uint64_t(alignment);
        }
        QCOMPARE(f.fileSize(), f.dataStart() + expect); // padded after the last tensor too
        QCOMPARE(std::memcmp(f.tensorData(f.tensors()[0]), a, 12), 0);
        QCOMPARE(std::memcmp(f.tensorData(f.tensors()[1]), b.data(), 128), 0);
        QCOMPARE(f.tensors()[2].type->id, 8u);
        QCOMPARE(std::memcmp(f.tensorData(f.tensors()[2]), c.data(), 68), 0);
        QCOMPARE(std::memcmp(f.tensorData(f.tensors()[3]), d, 20), 0);
        QCOMPARE(f.tensors()[1].ne, (std::vector<uint64_t> { 32, 2 }));
        QCOMPARE(w.bytesWritten(), f.fileSize());
    }

    void misuseIsAnError()
    {
        const std::string path = (m_dir / "bad.gguf").string();
        QVERIFY_THROWS_EXCEPTION(Error, GgufWriter(path, 24));
        QVERIFY_THROWS_EXCEPTION(Error, GgufWriter(path, 4));
        GgufWriter w(path);
        w.addMetadata("k", GgufWriteValue::u32(1));
        QVERIFY(errorText([&] { w.addMetadata("k", GgufWriteValue::u32(2)); }).find("twice") != std::string::npos);
        QVERIFY(errorText([&] { w.addMetadata("general.alignment", GgufWriteValue::u32(64)); }).find("bad.gguf")
            != std::string::npos);
        QVERIFY_THROWS_EXCEPTION(Error, w.addMetadata("", GgufWriteValue::u32(2)));
        QVERIFY(errorText([&] { w.addTensor("q", { 40, 2 }, type("Q4_0")); }).find("multiple of") != std::string::npos);
        QVERIFY_THROWS_EXCEPTION(Error, w.addTensor(std::string(64, 'x'), { 4 }, type("F32")));
        QVERIFY_THROWS_EXCEPTION(Error, w.addTensor("five", { 1, 1, 1, 1, 1 }, type("F32")));
        w.addTensor("t", { 4 }, type("F32"));
        QVERIFY_THROWS_EXCEPTION(Error, w.addTensor("t", { 4 }, type("F32")));
        w.beginData();
        const float x[8] = {};
        // Too much data, then an incomplete tensor: errors, and nothing is left behind.
        QVERIFY(errorText([&] { w.writeTensorData(x, sizeof x); }).find("more tensor data") != std::string::npos);
        QVERIFY(!fs::exists(path));
        QVERIFY(leftovers(m_dir).empty());

        GgufWriter shortWrite(path);
        shortWrite.addTensor("t", { 4 }, type("F32"));
        shortWrite.beginData();
        shortWrite.writeTensorData(x, 8);
        const std::string e = errorText([&] { shortWrite.finish(); });
        QVERIFY2(e.find("'t' has 8 of its 16 bytes") != std::string::npos, e.c_str());
        QVERIFY(!fs::exists(path));
        QVERIFY(leftovers(m_dir).empty());
    }

    // An exception between beginData() and finish() (Cancelled from the exporter's progress) removes the
    // temporary; an existing file at the target stays as it was.
    void cancelLeavesNothing()
    {
        const std::string path = (m_dir / "cancel.gguf").string();
        {
            std::ofstream old(path);
            old << "previous";
        }
        try {
            GgufWriter w(path);
            w.addTensor("t", { 1024 }, type("F32"));
            w.beginData();
            std::vector<float> x(512, 1.0f);
            w.writeTensorData(x.data(), x.size() * 4);
            QVERIFY(!leftovers(m_dir).empty()); // the temporary exists while writing
            throw Cancelled();
        } catch (const Cancelled &) {
        }
        QVERIFY(leftovers(m_dir).empty());
        std::ifstream in(path);
        std::string s;
        in >> s;
        QCOMPARE(s, std::string("previous"));
    }

    void unwritableFolderNamesThePath()
    {
        if (::geteuid() == 0)
            QSKIP("running as root: permissions are not enforced");
        const fs::path ro = m_dir / "readonly";
        fs::create_directories(ro);
        ::chmod(ro.c_str(), 0555);
        const std::string path = (ro / "x.gguf").string();
        GgufWriter w(path);
        w.addMetadata("general.architecture", GgufWriteValue::string("llama"));
        const std::string e = errorText([&] { w.beginData(); });
        ::chmod(ro.c_str(), 0755);
        QVERIFY2(e.find(path) != std::string::npos, e.c_str());
        QVERIFY2(e.find("ermission") != std::string::npos, e.c_str());
        QVERIFY(fs::is_empty(ro));
        // A missing folder too.
        GgufWriter m((m_dir / "missing" / "x.gguf").string());
        QVERIFY(errorText([&] { m.finish(); }).find("missing") != std::string::npos);
    }

    // A write that fails half-way (here: the file size limit, which even root cannot exceed, standing in for
    // a full disk) is an Error naming the file and the reason, and leaves no temporary and no target.
    void failedWriteLeavesNothing()
    {
        const std::string path = (m_dir / "limited.gguf").string();
        struct rlimit old {};
        QCOMPARE(::getrlimit(RLIMIT_FSIZE, &old), 0);
        const auto previousHandler = std::signal(SIGXFSZ, SIG_IGN); // write() then fails with EFBIG
        struct rlimit small = old;
        small.rlim_cur = 64 * 1024;
        QCOMPARE(::setrlimit(RLIMIT_FSIZE, &small), 0);
        std::string e;
        {
            GgufWriter w(path);
            w.addMetadata("general.architecture", GgufWriteValue::string("llama"));
            w.addTensor("big", { 1024, 1024 }, type("F32")); // 4 MiB
            std::vector<float> row(1024 * 256, 0.5f);
            e = errorText([&] {
                w.beginData();
                for (int i = 0; i < 4; ++i)
                    w.writeTensorData(row.data(), row.size() * 4);
                w.finish();
            });
        }
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, previousHandler);
        QVERIFY2(e.find(path) != std::string::npos && e.find("cannot write") != std::string::npos, e.c_str());
        QVERIFY(!fs::exists(path));
        QVERIFY(leftovers(m_dir).empty());
    }

    // A target below a regular file (ENOTDIR) fails at once, naming the path, with nothing created.
    void targetBelowAFile()
    {
        const fs::path file = m_dir / "plain-file";
        {
            std::ofstream f(file);
            f << "x";
        }
        const std::string path = (file / "x.gguf").string();
        GgufWriter w(path);
        const std::string e = errorText([&] { w.finish(); });
        QVERIFY2(e.find(path) != std::string::npos, e.c_str());
        QCOMPARE(fs::file_size(file), uintmax_t(1));
    }
};

QTEST_APPLESS_MAIN(TestGgufWriter)
#include "tst_gguf_writer.moc"
