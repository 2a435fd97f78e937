// The safetensors writer against the header rules (formats.md 1.3/1.4/1.5), parsed back here with
// nlohmann-json; streaming misuse; failed writes leave no temporary file; AtomicFile basics.
#include <QTemporaryDir>
#include <QTest>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "common/AtomicFile.h"
#include "common/Error.h"
#include "common/Progress.h"
#include "io/SafetensorsWriter.h"

using namespace qs::core;
namespace fs = std::filesystem;

namespace {

std::string readAll(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return { std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>() };
}

// Files in dir whose name contains ".tmp-": what a failed write must not leave behind.
int tempFilesIn(const std::string &dir)
{
    int n = 0;
    for (const auto &e : fs::directory_iterator(dir))
        n += e.path().filename().string().find(".tmp-") != std::string::npos;
    return n;
}

struct Parsed
{
    uint64_t headerLength = 0;
    std::string headerText; // padded
    nlohmann::ordered_json header;
    std::string data;
};

Parsed parse(const std::string &bytes)
{
    Parsed p;
    if (bytes.size() < 8)
        return p;
    for (int i = 0; i < 8; ++i)
        p.headerLength |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
    p.headerText = bytes.substr(8, size_t(p.headerLength));
    p.header = nlohmann::ordered_json::parse(p.headerText);
    p.data = bytes.substr(size_t(8 + p.headerLength));
    return p;
}

} // namespace

class TestSafetensorsWriter : public QObject
{
    Q_OBJECT
private slots:
    void goldenSingleTensor()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("a.safetensors")).toStdString();
        const float values[2] = { 1.0f, -2.0f };
        writeSafetensors(path, { { { "a", SafetensorsDType::F32, { 2 } }, values } });
        const std::string bytes = readAll(path);
        // The reference writer's bytes: compact JSON, metadata first, padded with spaces to 8.
        const std::string json
            = R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
        std::string padded = json;
        padded.append((8 - json.size() % 8) % 8, ' ');
        std::string expected(8, '\0');
        expected[0] = char(padded.size());
        expected += padded;
        expected.append(reinterpret_cast<const char *>(values), 8);
        QCOMPARE(bytes.size(), expected.size());
        QVERIFY(bytes == expected);
        QCOMPARE(tempFilesIn(dir.path().toStdString()), 0);
    }

    void headerRules()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("m.safetensors")).toStdString();
        // All dtypes, given in a scrambled order, including a scalar and a zero-size tensor.
        std::vector<uint8_t> u8(5, 7);
        std::vector<int8_t> i8(3, -1);
        std::vector<uint16_t> f16(6, 0x3C00), bf16(4, 0x3F80), f16b(2, 0x4000);
        std::vector<int32_t> i32(8, 42);
        std::vector<float> f32(6, 0.5f), scalar(1, 3.0f);
        const std::vector<SafetensorsTensorView> tensors = {
            { { "z.u8", SafetensorsDType::U8, { 5 } }, u8.data() },
            { { "b.f16", SafetensorsDType::F16, { 2, 3 } }, f16.data() },
            { { "a.f16", SafetensorsDType::F16, { 1, 2 } }, f16b.data() },
            { { "q.i8", SafetensorsDType::I8, { 3 } }, i8.data() },
            { { "w.bf16", SafetensorsDType::BF16, { 4 } }, bf16.data() },
            { { "p.qweight", SafetensorsDType::I32, { 2, 4 } }, i32.data() },
            { { "model.x.weight", SafetensorsDType::F32, { 3, 2 } }, f32.data() },
            { { "scalar", SafetensorsDType::F32, {} }, scalar.data() },
            { { "empty", SafetensorsDType::F32, { 0, 4 } }, nullptr },
            { { "named \"quote\"", SafetensorsDType::U8, { 0 } }, nullptr },
        };
        RecordingProgressStub progress;
        writeSafetensors(path, tensors, { { "quantscope", "test" }, { "bits", "4" } }, &progress);
        const std::string bytes = readAll(path);
        const Parsed p = parse(bytes);

        QCOMPARE(p.headerLength % 8, uint64_t(0));
        QCOMPARE(p.headerText.front(), '{');
        const size_t close = p.headerText.find_last_of('}');
        QVERIFY(p.headerText.find_first_not_of(' ', close + 1) == std::string::npos); // only spaces after
        QVERIFY(p.headerLength - (close + 1) < 8);
        // Compact: re-serialising the parsed header gives the same text.
        QCOMPARE(p.header.dump(), p.headerText.substr(0, close + 1));
        QVERIFY(p.headerText.rfind(R"({"__metadata__":{)", 0) == 0);
        QCOMPARE(p.header.begin().key(), std::string("__metadata__"));
        QCOMPARE(p.header["__metadata__"]["format"].get<std::string>(), std::string("pt"));
        QCOMPARE(p.header["__metadata__"]["quantscope"].get<std::string>(), std::string("test"));
        QCOMPARE(p.header["__metadata__"]["bits"].get<std::string>(), std::string("4"));

        // Tensors in offset order: dtype alignment first (F32, I32, BF16, F16, I8, U8), then name.
        const std::vector<std::string> expectedOrder = { "empty", "model.x.weight", "scalar", "p.qweight", "w.bf16",
            "a.f16", "b.f16", "q.i8", "named \"quote\"", "z.u8" };
        std::vector<std::string> order;
        uint64_t expectedBegin = 0;
        for (auto it = std::next(p.header.begin()); it != p.header.end(); ++it) {
            order.push_back(it.key());
            const auto &t = it.value();
            QCOMPARE(t.size(), size_t(3));
            auto keys = t.begin();
            QCOMPARE(keys.key(), std::string("dtype"));
            QCOMPARE((++keys).key(), std::string("shape"));
            QCOMPARE((++keys).key(), std::string("data_offsets"));
            const uint64_t begin = t["data_offsets"][0].get<uint64_t>();
            const uint64_t end = t["data_offsets"][1].get<uint64_t>();
            QCOMPARE(begin, expectedBegin); // contiguous from 0
            QVERIFY(end >= begin);
            uint64_t numel = 1;
            for (const auto &d : t["shape"])
                numel *= d.get<uint64_t>();
            const std::string dt = t["dtype"].get<std::string>();
            const uint64_t esize = dt == "F32" || dt == "I32" ? 4 : (dt == "F16" || dt == "BF16") ? 2 : 1;
            QCOMPARE(end - begin, numel * esize);
            QCOMPARE(begin % esize, uint64_t(0)); // aligned thanks to the sort
            expectedBegin = end;
        }
        QVERIFY(order == expectedOrder);
        QCOMPARE(uint64_t(bytes.size()), 8 + p.headerLength + expectedBegin); // exact file size
        QCOMPARE(p.header["scalar"]["shape"].size(), size_t(0));

        // The bytes landed at their offsets.
        const auto &x = p.header["p.qweight"]["data_offsets"];
        QVERIFY(std::memcmp(p.data.data() + x[0].get<uint64_t>(), i32.data(), 32) == 0);
        const auto &w = p.header["w.bf16"]["data_offsets"];
        QVERIFY(std::memcmp(p.data.data() + w[0].get<uint64_t>(), bf16.data(), 8) == 0);
        QCOMPARE(progress.total, double(expectedBegin));
        QCOMPARE(progress.done, progress.total);
        QCOMPARE(tempFilesIn(dir.path().toStdString()), 0);
    }

    void headerPaddingForEveryLength()
    {
        // Names of growing length walk the JSON length through every residue mod 8.
        QTemporaryDir dir;
        for (int len = 1; len <= 9; ++len) {
            const std::string path = dir.filePath(QStringLiteral("p%1.safetensors").arg(len)).toStdString();
            const uint8_t v = 1;
            writeSafetensors(path, { { { std::string(size_t(len), 'n'), SafetensorsDType::U8, { 1 } }, &v } });
            const std::string bytes = readAll(path);
            const Parsed p = parse(bytes);
            QCOMPARE(p.headerLength % 8, uint64_t(0));
            QCOMPARE(uint64_t(bytes.size()), 8 + p.headerLength + 1);
            QCOMPARE(uint8_t(bytes.back()), v);
        }
    }

    void streamingInPieces()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("s.safetensors")).toStdString();
        std::vector<float> big(1000);
        for (size_t i = 0; i < big.size(); ++i)
            big[i] = float(i);
        const std::vector<uint16_t> small = { 1, 2, 3 };
        SafetensorsStreamWriter w(
            path, { { "small", SafetensorsDType::F16, { 3 } }, { "big", SafetensorsDType::F32, { 10, 100 } } });
        QCOMPARE(w.writeOrder().front().name, std::string("big"));
        QVERIFY(!fs::exists(path)); // nothing at the final name until finish()
        for (int part = 0; part < 10; ++part)
            w.append("big", big.data() + part * 100, 400);
        w.append("small", small.data(), 6);
        w.finish();
        const Parsed p = parse(readAll(path));
        QCOMPARE(p.data.size(), size_t(4006));
        QVERIFY(std::memcmp(p.data.data(), big.data(), 4000) == 0);
        QCOMPARE(uint64_t(fs::file_size(path)), w.fileBytes());
        QCOMPARE(tempFilesIn(dir.path().toStdString()), 0);
    }

    void streamingMisuseFailsCleanly()
    {
        QTemporaryDir dir;
        const std::string d = dir.path().toStdString();
        const std::string path = d + "/bad.safetensors";
        const std::vector<float> v(8, 1.0f);
        {
            SafetensorsStreamWriter w(
                path, { { "a", SafetensorsDType::F32, { 4 } }, { "b", SafetensorsDType::F32, { 4 } } });
            QVERIFY_THROWS_EXCEPTION(Error, w.append("b", v.data(), 16)); // "a" comes first
        }
        QCOMPARE(tempFilesIn(d), 0);
        {
            SafetensorsStreamWriter w(path, { { "a", SafetensorsDType::F32, { 4 } } });
            QVERIFY_THROWS_EXCEPTION(Error, w.append("a", v.data(), 20)); // too many bytes
        }
        QCOMPARE(tempFilesIn(d), 0);
        {
            SafetensorsStreamWriter w(path, { { "a", SafetensorsDType::F32, { 4 } } });
            w.append("a", v.data(), 8);
            try {
                w.finish();
                QFAIL("finish accepted an incomplete tensor");
            } catch (const Error &e) {
                QVERIFY(std::string(e.what()).find("'a' is incomplete") != std::string::npos);
            }
        }
        {
            SafetensorsStreamWriter w(path, { { "a", SafetensorsDType::F32, { 4 } } });
            // Abandoned (e.g. cancelled): the destructor removes the temporary.
        }
        QCOMPARE(tempFilesIn(d), 0);
        QVERIFY(!fs::exists(path));
        QVERIFY_THROWS_EXCEPTION(Error,
            SafetensorsStreamWriter(
                path, { { "a", SafetensorsDType::F32, { 1 } }, { "a", SafetensorsDType::F16, { 1 } } }));
        QVERIFY_THROWS_EXCEPTION(
            Error, SafetensorsStreamWriter(path, { { "__metadata__", SafetensorsDType::U8, { 1 } } }));
        QCOMPARE(tempFilesIn(d), 0);
    }

    void unwritablePathNamesIt()
    {
        // Tests run as root, where a read-only folder does not stop writes: put the file "under" a regular
        // file instead, which fails with ENOTDIR for anyone.
        QTemporaryDir dir;
        const std::string d = dir.path().toStdString();
        const std::string blocker = d + "/plainfile";
        std::ofstream(blocker) << "x";
        const std::string path = blocker + "/x.safetensors";
        const float v = 1.0f;
        try {
            writeSafetensors(path, { { { "a", SafetensorsDType::F32, { 1 } }, &v } });
            QFAIL("write under a regular file succeeded");
        } catch (const Error &e) {
            const std::string msg = e.what();
            QVERIFY2(msg.rfind(path + ": ", 0) == 0, msg.c_str());
            QVERIFY2(msg.find("Not a directory") != std::string::npos, msg.c_str());
        }
        QCOMPARE(tempFilesIn(d), 0);
    }

    void writeFailureMidwayRemovesTemporary()
    {
        // Simulates a full disk: a file-size limit makes write() fail with EFBIG after 64 KiB.
        QTemporaryDir dir;
        const std::string d = dir.path().toStdString();
        const std::string path = d + "/full.safetensors";
        std::vector<float> big(1 << 18, 0.25f); // 1 MiB
        rlimit saved {};
        QCOMPARE(getrlimit(RLIMIT_FSIZE, &saved), 0);
        auto *oldHandler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit limited = saved;
        limited.rlim_cur = 64 * 1024;
        QCOMPARE(setrlimit(RLIMIT_FSIZE, &limited), 0);
        std::string message;
        try {
            writeSafetensors(path, { { { "big", SafetensorsDType::F32, { uint64_t(big.size()) } }, big.data() } });
        } catch (const Error &e) {
            message = e.what();
        }
        setrlimit(RLIMIT_FSIZE, &saved);
        std::signal(SIGXFSZ, oldHandler);
        QVERIFY2(message.rfind(path + ": cannot write", 0) == 0, message.c_str());
        QCOMPARE(tempFilesIn(d), 0);
        QVERIFY(!fs::exists(path));
    }

    void atomicFileReplacesOnlyOnCommit()
    {
        QTemporaryDir dir;
        const std::string path = dir.filePath(QStringLiteral("f.txt")).toStdString();
        writeFileAtomically(path, "old");
        {
            AtomicFile f(path);
            f.write("new contents");
            QVERIFY(fs::exists(f.tempPath()));
            QCOMPARE(f.tempPath().rfind(path + ".tmp-", 0), size_t(0));
            QCOMPARE(readAll(path), std::string("old")); // untouched until commit
        }
        QCOMPARE(readAll(path), std::string("old")); // discarded by the destructor
        QCOMPARE(tempFilesIn(dir.path().toStdString()), 0);
        AtomicFile f(path);
        f.write("new");
        f.commit();
        QCOMPARE(readAll(path), std::string("new"));
        QVERIFY_THROWS_EXCEPTION(Error, f.write("more"));
        // Ordinary permissions (0666 minus umask), not mkstemp's private 0600.
        const fs::perms perms = fs::status(path).permissions();
        QVERIFY((perms & fs::perms::owner_read) != fs::perms::none);
        const mode_t mask = ::umask(0);
        ::umask(mask);
        QCOMPARE((perms & fs::perms::others_read) != fs::perms::none, (mask & S_IROTH) == 0);
    }

    void atomicFileOntoFolderFails()
    {
        QTemporaryDir dir;
        const std::string target = dir.filePath(QStringLiteral("sub")).toStdString();
        fs::create_directory(target);
        fs::create_directory(target + "/keep"); // non-empty folder: rename cannot replace it
        AtomicFile f(target);
        f.write("x");
        QVERIFY_THROWS_EXCEPTION(Error, f.commit());
        QCOMPARE(tempFilesIn(dir.path().toStdString()), 0);
        QVERIFY(fs::is_directory(target + "/keep"));
    }

private:
    struct RecordingProgressStub final : Progress
    {
        double total = 0, done = 0;
        void setTotal(double t) override
        {
            total = t;
            done = 0;
        }
        void advance(double a) override { done += a; }
        void message(std::string_view) override { }
        bool isCancelled() const override { return false; }
    };
};

QTEST_GUILESS_MAIN(TestSafetensorsWriter)
#include "tst_safetensorswriter.moc"
