// Calibration samples: our PRNG against published / independently computed values, GPTQ-style windows
// (deterministic, in bounds, seed-dependent, clear errors), document splitting and selection, provenance.
#include <QFile>
#include <QTest>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "TestData.h"
#include "common/Error.h"
#include "common/Sha256.h"
#include "eval/Calibration.h"

using namespace qs::core;

namespace {

std::vector<int32_t> rampTokens(int n)
{
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
        t[size_t(i)] = 1000 + i; // token value tells its position
    return t;
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

} // namespace

class TestCalibration : public QObject
{
    Q_OBJECT
private slots:
    void splitMix64MatchesPublishedValues()
    {
        // Rosetta Code "Pseudo-random numbers/Splitmix64", seed 1234567.
        SplitMix64 sm(1234567);
        const uint64_t expected[] = { 6457827717110365317ull, 3203168211198807973ull, 9817491932198370423ull,
            4593380528125082431ull, 16408922859458223821ull };
        for (uint64_t e : expected)
            QCOMPARE(sm.next(), e);
    }

    void xoshiroMatchesIndependentImplementation()
    {
        // From a separate Python implementation of xoshiro256** 1.0 seeded by splitmix64: the values this
        // build must keep, so a recorded seed means the same samples forever.
        Xoshiro256 r0(0);
        const uint64_t e0[]
            = { 11091344671253066420ull, 13793997310169335082ull, 1900383378846508768ull, 7684712102626143532ull };
        for (uint64_t e : e0)
            QCOMPARE(r0.next(), e);
        Xoshiro256 r42(42);
        QCOMPARE(r42.next(), 1546998764402558742ull);
        QCOMPARE(r42.next(), 6990951692964543102ull);
        Xoshiro256 b(0);
        const uint64_t starts[] = { 311, 892, 359, 628, 455, 391 };
        for (uint64_t e : starts)
            QCOMPARE(b.below(901), e);
    }

    void belowCoversTheRangeAndStaysInside()
    {
        Xoshiro256 r(7);
        std::set<uint64_t> seen;
        for (int i = 0; i < 2000; ++i) {
            const uint64_t v = r.below(10);
            QVERIFY(v < 10);
            seen.insert(v);
        }
        QCOMPARE(seen.size(), size_t(10));
        QCOMPARE(r.below(1), uint64_t(0));
        const uint64_t big = (uint64_t(1) << 63) + 12345; // rejection path matters most here
        for (int i = 0; i < 100; ++i)
            QVERIFY(r.below(big) < big);
        QVERIFY_THROWS_EXCEPTION(Error, r.below(0));
    }

    void windowsAreDeterministicAndInBounds()
    {
        const std::vector<int32_t> tokens = rampTokens(1000);
        const CalibrationSet a = makeCalibrationWindows(tokens, 64, 100, 0);
        const CalibrationSet b = makeCalibrationWindows(tokens, 64, 100, 0);
        QCOMPARE(a.samples.size(), size_t(64));
        QCOMPARE(a.totalTokens(), int64_t(6400));
        for (size_t i = 0; i < a.samples.size(); ++i) {
            const CalibrationSample &s = a.samples[i];
            QCOMPARE(s.tokens, b.samples[i].tokens);
            QCOMPARE(s.origin, b.samples[i].origin);
            QVERIFY(s.origin >= 0 && s.origin + 100 <= 1000);
            QCOMPARE(s.tokens.size(), size_t(100));
            for (size_t k = 0; k < s.tokens.size(); ++k)
                QCOMPARE(s.tokens[k], int32_t(1000 + s.origin + int64_t(k)));
        }
        // The first starts for seed 0 are fixed forever (same values as Xoshiro256(0).below(901)).
        QCOMPARE(a.samples[0].origin, int64_t(311));
        QCOMPARE(a.samples[1].origin, int64_t(892));
        QCOMPARE(a.samples[2].origin, int64_t(359));
        QCOMPARE(a.mode, CalibrationMode::Windows);
        QCOMPARE(a.seqLen, 100);
        QCOMPARE(a.requestedSamples, 64);
        QCOMPARE(a.sourceTokens, int64_t(1000));
    }

    void differentSeedsDiffer()
    {
        const std::vector<int32_t> tokens = rampTokens(5000);
        const CalibrationSet a = makeCalibrationWindows(tokens, 16, 128, 1);
        const CalibrationSet b = makeCalibrationWindows(tokens, 16, 128, 2);
        int same = 0;
        for (size_t i = 0; i < a.samples.size(); ++i)
            same += a.samples[i].origin == b.samples[i].origin ? 1 : 0;
        QVERIFY2(same < 2, "two seeds picked nearly the same windows");
    }

    void textExactlyOneWindowLong()
    {
        const CalibrationSet s = makeCalibrationWindows(rampTokens(50), 3, 50, 9);
        for (const CalibrationSample &w : s.samples)
            QCOMPARE(w.origin, int64_t(0));
    }

    void tooShortTextGivesAClearError()
    {
        const std::string msg = errorText([] { makeCalibrationWindows(rampTokens(812), 4, 2048, 0, "wiki.test.raw"); });
        QVERIFY2(msg.find("wiki.test.raw") != std::string::npos, msg.c_str());
        QVERIFY2(msg.find("812 tokens") != std::string::npos, msg.c_str());
        QVERIFY2(msg.find("2048") != std::string::npos, msg.c_str());
        QVERIFY(!errorText([] { makeCalibrationWindows({}, 1, 1, 0); }).empty());
        QVERIFY(
            errorText([] { makeCalibrationWindows(rampTokens(10), 0, 5, 0); }).find("samples") != std::string::npos);
        QVERIFY(errorText([] { makeCalibrationWindows(rampTokens(10), 2, 0, 0); }).find("length") != std::string::npos);
    }

    void splitDocumentsOnSeparator()
    {
        const auto docs = splitDocuments(
            "One.<|endoftext|>\n Two \n<|endoftext|><|endoftext|>Three<|endoftext|>\n", "<|endoftext|>");
        QCOMPARE(docs.size(), size_t(4)); // the empty third is kept for indexing; the trailing tail is dropped
        QCOMPARE(docs[0], std::string("One."));
        QCOMPARE(docs[1], std::string("Two"));
        QCOMPARE(docs[2], std::string());
        QCOMPARE(docs[3], std::string("Three"));
    }

    void splitDocumentsOnBlankLines()
    {
        const auto docs = splitDocuments("\n\n = Title = \n\nFirst line\nsecond line\n  \t\nLast\n", "");
        QCOMPARE(docs.size(), size_t(3));
        QCOMPARE(docs[0], std::string("= Title ="));
        QCOMPARE(docs[1], std::string("First line\nsecond line"));
        QCOMPARE(docs[2], std::string("Last"));
        QVERIFY(splitDocuments("", "").empty());
    }

    void splitTinyStories()
    {
        QS_REQUIRE_TESTDATA(path, "text/tinystories_sample.txt");
        QFile f(path);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const std::string text = f.readAll().toStdString();
        const auto docs = splitDocuments(text, "<|endoftext|>");
        QVERIFY(docs.size() >= 5);
        for (const std::string &d : docs) {
            QVERIFY(d.find("<|endoftext|>") == std::string::npos);
            QVERIFY(d.empty() || (d.front() != '\n' && d.back() != '\n'));
        }
        QVERIFY(docs.front().rfind("Once upon a time", 0) == 0);
    }

    void documentsTruncateAndSelect()
    {
        std::vector<std::vector<int32_t>> docs;
        for (int d = 0; d < 20; ++d)
            docs.push_back(std::vector<int32_t>(size_t(d * 7 % 30), d)); // document 0 is empty
        const CalibrationSet all = makeCalibrationDocuments(docs, 100, 16, 5);
        QCOMPARE(all.samples.size(), size_t(19)); // every non-empty document, fewer than asked
        QCOMPARE(all.sourceDocuments, int64_t(19));
        QCOMPARE(all.requestedSamples, 100);
        for (const CalibrationSample &s : all.samples) {
            const auto &doc = docs[size_t(s.origin)];
            QCOMPARE(s.tokens.size(), std::min(doc.size(), size_t(16)));
            QVERIFY(std::equal(s.tokens.begin(), s.tokens.end(), doc.begin()));
        }

        const CalibrationSet a = makeCalibrationDocuments(docs, 5, 16, 5);
        const CalibrationSet b = makeCalibrationDocuments(docs, 5, 16, 5);
        const CalibrationSet c = makeCalibrationDocuments(docs, 5, 16, 6);
        QCOMPARE(a.samples.size(), size_t(5));
        std::vector<int64_t> oa, ob, oc;
        for (size_t i = 0; i < 5; ++i) {
            oa.push_back(a.samples[i].origin);
            ob.push_back(b.samples[i].origin);
            oc.push_back(c.samples[i].origin);
        }
        QCOMPARE(oa, ob);
        QVERIFY(oa != oc);
        QVERIFY(std::is_sorted(oa.begin(), oa.end()));
        QCOMPARE(std::set<int64_t>(oa.begin(), oa.end()).size(), size_t(5)); // without replacement
        QVERIFY(std::find(oa.begin(), oa.end(), 0) == oa.end()); // never the empty one

        const std::string msg = errorText([] { makeCalibrationDocuments({ {}, {} }, 2, 8, 0, "empty.txt"); });
        QVERIFY2(
            msg.find("empty.txt") != std::string::npos && msg.find("no non-empty") != std::string::npos, msg.c_str());
    }

    void provenanceJson()
    {
        QS_REQUIRE_TESTDATA(path, "text/tinystories_sample.txt");
        CalibrationSet set = makeCalibrationWindows(rampTokens(300), 3, 64, 77);
        describeCalibrationText(set, path.toStdString(), "stories260K tok512");
        QCOMPARE(set.textSha256, std::string("defaedb58bf28079f3e29c6142cb7f3568d331a577e0911c5d7925c465c50c43"));
        const nlohmann::json j = set.toJson();
        QCOMPARE(j.at("text_path").get<std::string>(), path.toStdString());
        QCOMPARE(j.at("text_sha256").get<std::string>(), set.textSha256);
        QCOMPARE(j.at("tokenizer").get<std::string>(), std::string("stories260K tok512"));
        QCOMPARE(j.at("mode").get<std::string>(), std::string("windows"));
        QCOMPARE(j.at("samples").get<int>(), 3);
        QCOMPARE(j.at("seq_len").get<int>(), 64);
        QCOMPARE(j.at("seed").get<uint64_t>(), uint64_t(77));
        QCOMPARE(j.at("total_tokens").get<int64_t>(), int64_t(192));
        QCOMPARE(j.at("origins").size(), size_t(3));
        QVERIFY(!j.contains("separator"));

        const std::string msg = errorText([&] { describeCalibrationText(set, "/nonexistent/calib.txt", "x"); });
        QVERIFY2(msg.find("/nonexistent/calib.txt") != std::string::npos, msg.c_str());
    }
};

QTEST_GUILESS_MAIN(TestCalibration)
#include "tst_calibration.moc"
