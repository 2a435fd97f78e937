// AtomicFolder (core/common): a folder is built beside its destination and renamed into place; success
// leaves only the destination, a failure in the writer leaves no temporary and an existing destination
// untouched, and an existing destination is replaced. The finished folder has mkdir's permissions
// (0777 & ~umask) unless the caller asks for a private one.
#include <QTest>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>

#include "TestData.h"
#include "common/AtomicFolder.h"
#include "common/Error.h"

using namespace qs::core;
namespace fs = std::filesystem;

namespace {

// A fresh, empty folder of its own for each test, so that listing it shows every leftover.
fs::path freshDir(const std::string &name)
{
    const fs::path dir = fs::path(qs::test::outputDir().toStdString()) / ("atomicfolder-" + name);
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

std::vector<std::string> entries(const fs::path &dir)
{
    std::vector<std::string> names;
    for (const fs::directory_entry &e : fs::directory_iterator(dir))
        names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

void writeText(const fs::path &path, const std::string &text)
{
    std::ofstream out(path, std::ios::binary);
    out << text;
}

std::string readText(const fs::path &path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The permission bits of path (what ls -l shows).
unsigned modeOf(const fs::path &path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        return ~0u;
    return unsigned(st.st_mode & 07777);
}

// Sets the process umask for one scope and puts the previous one back.
class ScopedUmask
{
public:
    explicit ScopedUmask(mode_t mask)
        : m_previous(::umask(mask))
    { }
    ~ScopedUmask() { ::umask(m_previous); }
    ScopedUmask(const ScopedUmask &) = delete;
    ScopedUmask &operator=(const ScopedUmask &) = delete;

private:
    mode_t m_previous;
};

mode_t readUmask()
{
    const mode_t mask = ::umask(0077);
    ::umask(mask);
    return mask;
}

} // namespace

class TestAtomicFolder : public QObject
{
    Q_OBJECT
private slots:
    void successLeavesOnlyTheFinalFolder()
    {
        const fs::path dir = freshDir("success");
        const fs::path target = dir / "out";
        {
            AtomicFolder folder(target.string(), "out", "result");
            QCOMPARE(fs::path(folder.tempPath()).parent_path(), dir);
            QVERIFY(fs::path(folder.tempPath()).filename().string().rfind("out.tmp-", 0) == 0);
            QVERIFY(fs::is_directory(folder.tempPath()));
            QVERIFY(!fs::exists(target));
            writeText(fs::path(folder.tempPath()) / "a.txt", "new");
            folder.commit();
        }
        QCOMPARE(entries(dir), std::vector<std::string> { "out" });
        QCOMPARE(entries(target), std::vector<std::string> { "a.txt" });
        QCOMPARE(readText(target / "a.txt"), std::string("new"));
    }

    void writerExceptionLeavesNoTemporaryAndKeepsTheDestination()
    {
        const fs::path dir = freshDir("throw");
        const fs::path target = dir / "out";
        fs::create_directories(target);
        writeText(target / "old.txt", "old");
        bool thrown = false;
        try {
            AtomicFolder folder(target.string(), "out", "result");
            writeText(fs::path(folder.tempPath()) / "a.txt", "new");
            fs::create_directories(fs::path(folder.tempPath()) / "sub");
            writeText(fs::path(folder.tempPath()) / "sub" / "b.txt", "new");
            throw std::runtime_error("writer failed");
        } catch (const std::runtime_error &e) {
            thrown = true;
            QCOMPARE(std::string(e.what()), std::string("writer failed"));
        }
        QVERIFY(thrown);
        QCOMPARE(entries(dir), std::vector<std::string> { "out" });
        QCOMPARE(entries(target), std::vector<std::string> { "old.txt" });
        QCOMPARE(readText(target / "old.txt"), std::string("old"));
    }

    void cancelledLeavesNoTemporary()
    {
        const fs::path dir = freshDir("cancel");
        try {
            AtomicFolder folder((dir / "out").string(), "out", "result");
            writeText(fs::path(folder.tempPath()) / "a.txt", "new");
            throw Cancelled();
        } catch (const Cancelled &) {
        }
        QVERIFY(entries(dir).empty());
    }

    void replacesAnExistingDestination()
    {
        const fs::path dir = freshDir("replace");
        const fs::path target = dir / "out";
        fs::create_directories(target / "sub");
        writeText(target / "old.txt", "old");
        writeText(target / "sub" / "old.txt", "old");
        {
            AtomicFolder folder(target.string(), "out", "result");
            writeText(fs::path(folder.tempPath()) / "a.txt", "new");
            folder.commit();
        }
        QCOMPARE(entries(dir), std::vector<std::string> { "out" }); // no temporary, no moved-aside ".old"
        QCOMPARE(entries(target), std::vector<std::string> { "a.txt" });
        QCOMPARE(readText(target / "a.txt"), std::string("new"));
    }

    void folderHasMkdirPermissions_data()
    {
        QTest::addColumn<unsigned>("mask");
        QTest::newRow("022") << 0022u;
        QTest::newRow("027") << 0027u;
        QTest::newRow("002") << 0002u;
        QTest::newRow("077") << 0077u;
        QTest::newRow("000") << 0000u;
    }

    void folderHasMkdirPermissions()
    {
        QFETCH(unsigned, mask);
        const fs::path dir = freshDir("mode");
        const ScopedUmask umaskForTest(mode_t(mask & 0777));
        // What a plain mkdir gives under this umask, for comparison.
        fs::create_directory(dir / "plain");
        const unsigned expected = 0777u & ~mask;
        QCOMPARE(modeOf(dir / "plain"), expected);
        {
            AtomicFolder folder((dir / "out").string(), "out", "result");
            QCOMPARE(readUmask(), mode_t(mask)); // reading the umask put it back
            QCOMPARE(modeOf(folder.tempPath()), expected); // already while it is being written
            writeText(fs::path(folder.tempPath()) / "a.txt", "new");
            folder.commit();
        }
        QCOMPARE(modeOf(dir / "out"), expected);
        // Replacing a folder gives the new one the same permissions, whatever the old one had.
        fs::permissions(dir / "out", fs::perms::owner_all);
        {
            AtomicFolder folder((dir / "out").string(), "out", "result");
            folder.commit();
        }
        QCOMPARE(modeOf(dir / "out"), expected);
        QCOMPARE(entries(dir), (std::vector<std::string> { "out", "plain" }));
    }

    void privateFolderStaysPrivate()
    {
        const fs::path dir = freshDir("private");
        const ScopedUmask umaskForTest(0022);
        {
            AtomicFolder folder((dir / "out").string(), "out", "result", {}, AtomicFolder::Access::Private);
            QCOMPARE(modeOf(folder.tempPath()), 0700u);
            folder.commit();
        }
        QCOMPARE(modeOf(dir / "out"), 0700u);
        QCOMPARE(readUmask(), mode_t(0022));
    }

    void commitTwiceFails()
    {
        const fs::path dir = freshDir("twice");
        AtomicFolder folder((dir / "out").string(), "out", "result");
        folder.commit();
        QVERIFY_THROWS_EXCEPTION(Error, folder.commit());
        QCOMPARE(entries(dir), std::vector<std::string> { "out" });
    }

    void missingParentNamesTheDestination()
    {
        const fs::path dir = freshDir("missing");
        const fs::path target = dir / "no-such-folder" / "out";
        try {
            AtomicFolder folder(target.string(), "shown/out", "result");
            QFAIL("no exception");
        } catch (const Error &e) {
            const std::string what = e.what();
            QVERIFY2(what.rfind("shown/out: cannot create a temporary folder beside it: ", 0) == 0, e.what());
        }
        QVERIFY(entries(dir).empty());
    }
};

QTEST_GUILESS_MAIN(TestAtomicFolder)
#include "tst_atomicfolder.moc"
