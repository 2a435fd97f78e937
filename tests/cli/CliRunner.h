#pragma once
// Runs quantscope-cli as a user would and captures its exit code and output.

#include <QProcess>
#include <QStringList>
#include <QTest>

namespace qs::test {

struct CliResult
{
    int exitCode = -1;
    QString out;
    QString err;
};

inline CliResult runCli(const QStringList &args, int timeoutMs = 120000)
{
    QProcess p;
    p.start(QStringLiteral(QS_CLI_EXECUTABLE), args);
    CliResult r;
    if (!p.waitForStarted(10000))
        return r;
    p.waitForFinished(timeoutMs);
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

} // namespace qs::test
