// The exit-code and help contract of quantscope-cli (specs/cli.md).
#include <QTest>

#include "CliRunner.h"
#include "TestData.h"

using qs::test::runCli;

class TestCliBasics : public QObject
{
    Q_OBJECT
private slots:
    void version()
    {
        const auto r = runCli({QStringLiteral("--version")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY2(r.out.startsWith(QStringLiteral("quantscope-cli 0.")), qPrintable(r.out));
        QVERIFY(r.out.contains(QStringLiteral("Eigen 3.4")));
    }
    void help()
    {
        const auto r = runCli({QStringLiteral("--help")});
        QCOMPARE(r.exitCode, 0);
        QVERIFY(r.out.contains(QStringLiteral("Usage: quantscope-cli COMMAND")));
    }
    void noArgumentsIsAUserError()
    {
        const auto r = runCli({});
        QCOMPARE(r.exitCode, 1);
    }
    void unknownCommandNamesIt()
    {
        const auto r = runCli({QStringLiteral("frobnicate")});
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(QStringLiteral("'frobnicate'")), qPrintable(r.err));
        QCOMPARE(r.err.count(QLatin1Char('\n')), 1); // one line
    }
};

QTEST_GUILESS_MAIN(TestCliBasics)
#include "tst_cli_basics.moc"
