// The job runner: exactly one of finished/failed/cancelled per job, cancel stops a long job, exceptions
// become readable failures, superseded jobs drop their results, shutdown cancels and waits.
#include <QAbstractItemModelTester>
#include <QSignalSpy>
#include <QTest>

#include <atomic>
#include <chrono>
#include <thread>

#include "JobListModel.h"
#include "JobRunner.h"
#include "common/Error.h"

using namespace qs;
using namespace qs::ui;

namespace {

struct Spies
{
    explicit Spies(JobRunner &r)
        : finished(&r, &JobRunner::finished), failed(&r, &JobRunner::failed), cancelled(&r, &JobRunner::cancelled),
          progress(&r, &JobRunner::progress)
    {
    }
    int ended() const { return int(finished.size() + failed.size() + cancelled.size()); }
    QSignalSpy finished, failed, cancelled, progress;
};

// Runs until cancelled, advancing progress; returns how many steps it made.
int longJob(core::Progress &p, std::atomic<bool> *started = nullptr)
{
    p.setTotal(1e9);
    if (started)
        started->store(true);
    int steps = 0;
    for (;;) {
        p.throwIfCancelled();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        p.advance(1);
        ++steps;
        if (steps > 60000)
            return steps; // a minute: the test has failed by then
    }
}

} // namespace

class TestJobRunner : public QObject
{
    Q_OBJECT
private slots:
    void finishesWithResult()
    {
        JobRunner runner;
        Spies s(runner);
        int got = 0;
        runner.run<int>(QStringLiteral("sum"), {},
                        [](core::Progress &p) {
                            p.setTotal(10);
                            int sum = 0;
                            for (int i = 1; i <= 10; ++i) {
                                sum += i;
                                p.advance();
                            }
                            return sum;
                        },
                        [&](std::shared_ptr<const int> v) { got = *v; });
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 1, 5000);
        QCOMPARE(s.finished.size(), 1);
        QCOMPARE(got, 55);
        QTest::qWait(50);
        QCOMPARE(s.ended(), 1); // exactly one
        QCOMPARE(runner.runningCount(), 0);
    }

    void coreErrorBecomesFailure()
    {
        JobRunner runner;
        Spies s(runner);
        QString reported;
        runner.run<int>(QStringLiteral("broken"), {},
                        [](core::Progress &) -> int { core::fail("model.gguf", "truncated at byte 12"); },
                        [](std::shared_ptr<const int>) { QFAIL("result delivered for a failed job"); },
                        [&](const QString &e) { reported = e; });
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 1, 5000);
        QCOMPARE(s.failed.size(), 1);
        QCOMPARE(s.failed.first().at(1).toString(), QStringLiteral("model.gguf: truncated at byte 12"));
        QCOMPARE(reported, QStringLiteral("model.gguf: truncated at byte 12"));
    }

    void otherExceptionsBecomeFailures()
    {
        JobRunner runner;
        Spies s(runner);
        runner.run<int>(QStringLiteral("std"), {}, [](core::Progress &) -> int { throw std::logic_error("boom"); });
        runner.run<int>(QStringLiteral("unknown"), {}, [](core::Progress &) -> int { throw 42; });
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 2, 5000);
        QCOMPARE(s.failed.size(), 2);
        QStringList errors;
        for (const auto &args : s.failed)
            errors << args.at(1).toString();
        QVERIFY(errors.contains(QStringLiteral("internal error: boom")));
        QVERIFY(errors.contains(QStringLiteral("internal error: unknown exception")));
    }

    void cancelStopsALongJob()
    {
        JobRunner runner;
        Spies s(runner);
        std::atomic<bool> started{false};
        const JobId id = runner.run<int>(QStringLiteral("long"), {}, [&](core::Progress &p) { return longJob(p, &started); },
                                         [](std::shared_ptr<const int>) { QFAIL("cancelled job delivered a result"); });
        QTRY_VERIFY_WITH_TIMEOUT(started.load(), 5000);
        QTRY_VERIFY_WITH_TIMEOUT(s.progress.size() > 0, 5000);
        QVERIFY(runner.isRunning(id));
        runner.cancel(id);
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 1, 5000); // would take a minute if cancel did not stop it
        QCOMPARE(s.cancelled.size(), 1);
        QCOMPARE(s.cancelled.first().at(0).value<JobId>(), id);
        QVERIFY(!runner.isRunning(id));
    }

    void progressCarriesFractionMessageAndEta()
    {
        JobRunner runner;
        Spies s(runner);
        runner.run<int>(QStringLiteral("steps"), {}, [](core::Progress &p) {
            p.message("phase one");
            p.setTotal(20);
            for (int i = 0; i < 20; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                p.advance();
            }
            return 0;
        });
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 1, 10000);
        QVERIFY(s.progress.size() >= 3);
        double lastFraction = -1;
        bool sawMessage = false, sawEta = false;
        for (const auto &args : s.progress) {
            const double f = args.at(1).toDouble();
            QVERIFY(f >= 0.0 && f <= 1.0);
            QVERIFY(f >= lastFraction - 1e-9 || f == 0.0);
            lastFraction = f;
            sawMessage |= args.at(2).toString() == QLatin1String("phase one");
            sawEta |= args.at(3).toDouble() > 0;
        }
        QVERIFY(sawMessage);
        QVERIFY(sawEta);
        QVERIFY(lastFraction > 0.5);
    }

    void supersededJobDropsItsResult()
    {
        JobRunner runner(nullptr, 2);
        Spies s(runner);
        std::atomic<bool> started{false};
        QList<int> delivered;
        const JobId first = runner.run<int>(QStringLiteral("stats v1"), QStringLiteral("stats"),
                                            [&](core::Progress &p) {
                                                started = true;
                                                // Ignores cancellation for a while, then returns a result anyway.
                                                std::this_thread::sleep_for(std::chrono::milliseconds(200));
                                                (void)p;
                                                return 1;
                                            },
                                            [&](std::shared_ptr<const int> v) { delivered << *v; });
        QTRY_VERIFY_WITH_TIMEOUT(started.load(), 5000);
        const JobId second = runner.run<int>(QStringLiteral("stats v2"), QStringLiteral("stats"),
                                             [](core::Progress &) { return 2; },
                                             [&](std::shared_ptr<const int> v) { delivered << *v; });
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 2, 5000);
        QCOMPARE(delivered, QList<int>{2});
        QCOMPARE(s.cancelled.size(), 1);
        QCOMPARE(s.cancelled.first().at(0).value<JobId>(), first);
        QCOMPARE(s.finished.size(), 1);
        QCOMPARE(s.finished.first().at(0).value<JobId>(), second);
    }

    void everyJobEndsExactlyOnce()
    {
        JobRunner runner(nullptr, 2);
        Spies s(runner);
        QList<JobId> ids;
        for (int i = 0; i < 12; ++i) {
            ids << runner.run<int>(QStringLiteral("job %1").arg(i), {}, [i](core::Progress &p) {
                if (i % 3 == 1)
                    throw core::Error("failing job");
                if (i % 3 == 2)
                    return longJob(p);
                return i;
            });
        }
        for (int i = 2; i < 12; i += 3)
            runner.cancel(ids.at(i));
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 12, 10000);
        QTest::qWait(50);
        QCOMPARE(s.ended(), 12);
        QSet<JobId> seen;
        for (const QSignalSpy *spy : {&s.finished, &s.failed, &s.cancelled})
            for (const auto &args : *spy) {
                const JobId id = args.at(0).value<JobId>();
                QVERIFY2(!seen.contains(id), "a job ended twice");
                seen.insert(id);
            }
        QCOMPARE(seen.size(), 12);
        QCOMPARE(s.finished.size(), 4);
        QCOMPARE(s.failed.size(), 4);
        QCOMPARE(s.cancelled.size(), 4);
    }

    void shutdownCancelsAndWaits()
    {
        std::atomic<bool> started{false};
        std::atomic<bool> returned{false};
        {
            JobRunner runner;
            runner.run<int>(QStringLiteral("long"), {}, [&](core::Progress &p) {
                struct Mark { std::atomic<bool> &r; ~Mark() { r = true; } } mark{returned};
                return longJob(p, &started);
            });
            QTRY_VERIFY_WITH_TIMEOUT(started.load(), 5000);
        } // destructor: cancel and wait
        QVERIFY(returned.load());
    }

    void listModelFollowsJobs()
    {
        JobRunner runner;
        JobListModel model(&runner);
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        Spies s(runner);
        runner.run<int>(QStringLiteral("ok"), {}, [](core::Progress &) { return 1; });
        runner.run<int>(QStringLiteral("bad"), {}, [](core::Progress &) -> int { throw core::Error("x.gguf: bad magic"); });
        QTRY_COMPARE_WITH_TIMEOUT(s.ended(), 2, 5000);
        QCOMPARE(model.rowCount(), 2);
        QStringList states, messages;
        for (int r = 0; r < 2; ++r) {
            states << model.index(r, JobListModel::StateColumn).data().toString();
            messages << model.index(r, JobListModel::MessageColumn).data().toString();
        }
        QVERIFY(states.contains(QStringLiteral("done")));
        QVERIFY(states.contains(QStringLiteral("failed")));
        QVERIFY(messages.contains(QStringLiteral("x.gguf: bad magic")));
        // A finished job says how long it took instead of its last progress message.
        const int done = states.indexOf(QStringLiteral("done"));
        QVERIFY2(messages[done].startsWith(QStringLiteral("finished in ")), qPrintable(messages[done]));
        model.clearEnded();
        QCOMPARE(model.rowCount(), 0);
    }

    void formatDurationReadable()
    {
        QCOMPARE(formatDuration(-1), QString());
        QCOMPARE(formatDuration(4.4), QStringLiteral("4 s"));
        QCOMPARE(formatDuration(125), QStringLiteral("2 min 5 s"));
        QCOMPARE(formatDuration(7300), QStringLiteral("2 h 1 min"));
    }
};

QTEST_MAIN(TestJobRunner)
#include "tst_jobrunner.moc"
