// The GPTQ/RTN benchmark on tiny shapes: it returns sane figures (and prints nothing itself); GPTQ's output
// error is below RTN's on the benchmark data; cancellation and bad options are reported.
#include <QTest>

#include "common/Error.h"
#include "common/Progress.h"
#include "quant/QuantBench.h"

using namespace qs::core;

class TestQuantBench : public QObject
{
    Q_OBJECT
private slots:
    void tinyBench()
    {
        QuantBenchOptions o;
        o.shapes = { { 48, 128 }, { 80, 128 }, { 32, 64 } };
        o.tokens = 256;
        o.errorRows = 16;
        o.rtnRepeats = 2;
        NullProgress progress;
        const QuantBenchResult r = benchGptq(o, progress);
        QCOMPARE(r.layers.size(), size_t(3));
        QVERIFY(r.threads >= 1);
        QCOMPARE(r.grid, std::string("minmax"));
        QVERIFY(r.layers[0].hessianSeconds > 0.0);
        QCOMPARE(r.layers[1].hessianSeconds, 0.0); // same column count: H reused
        for (const GptqBenchLayer &l : r.layers) {
            QVERIFY(l.seconds > 0.0 && l.seconds >= l.quantizeSeconds);
            QVERIFY(l.loss > 0.0);
            QCOMPARE(l.deadColumns, 1);
            QVERIFY(l.relErrorGptq > 0.0 && l.relErrorGptq < l.relErrorRtn);
        }
        QCOMPARE(r.rtnRows, int64_t(80));
        QCOMPARE(r.rtnBytes, uint64_t(80 * 128 * 4));
        QVERIFY(r.rtnGBps > 0.0);
        QVERIFY(r.rtnFakeGBps > 0.0);
    }

    void cancelAndBadOptions()
    {
        QuantBenchOptions o;
        o.shapes = { { 16, 32 } };
        o.tokens = 64;
        NullProgress cancelled;
        cancelled.cancel();
        QVERIFY_THROWS_EXCEPTION(Cancelled, benchGptq(o, cancelled));
        NullProgress progress;
        o.shapes.clear();
        QVERIFY_THROWS_EXCEPTION(Error, benchGptq(o, progress));
    }
};

QTEST_GUILESS_MAIN(TestQuantBench)
#include "tst_quant_bench.moc"
