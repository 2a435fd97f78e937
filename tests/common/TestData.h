#pragma once
// Where the shared test data lives, and what happens when it is missing: under CI=true a missing file
// fails the test with a clear message; elsewhere the test is skipped with that message.

#include <QFileInfo>
#include <QString>
#include <QTest>

namespace qs::test {

inline QString testDataDir() { return QStringLiteral(QS_TESTDATA_DIR); }
inline QString testDataPath(const QString &relative) { return testDataDir() + QLatin1Char('/') + relative; }
inline QString outputDir() { return QStringLiteral(QS_TEST_OUTPUT_DIR); }
inline bool inCi() { return qEnvironmentVariable("CI") == QLatin1String("true"); }

} // namespace qs::test

// Use inside a test function: resolves a path under the test data and fails (CI) or skips when missing.
#define QS_REQUIRE_TESTDATA(var, relative)                                                                  \
    const QString var = qs::test::testDataPath(QStringLiteral(relative));                                   \
    do {                                                                                                    \
        if (!QFileInfo::exists(var)) {                                                                      \
            const QByteArray msg = "test data missing: " + var.toUtf8() +                                   \
                                   " (set QS_TESTDATA_DIR or place ../shared/testdata beside the checkout)"; \
            if (qs::test::inCi())                                                                           \
                QFAIL(msg.constData());                                                                     \
            QSKIP(msg.constData());                                                                         \
        }                                                                                                   \
    } while (false)
