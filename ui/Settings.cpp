#include "Settings.h"

#include <QDir>

namespace qs::ui {

namespace Key {
constexpr auto WindowGeometry = "window/geometry";
constexpr auto WindowState = "window/state";
constexpr auto RecentFiles = "files/recent";
constexpr auto LastOpenDir = "files/lastOpenDirectory";
constexpr auto OutlierSigma = "stats/outlierSigma";
constexpr auto HistogramBins = "stats/histogramBins";
constexpr auto CalibrationText = "calibration/text";
constexpr auto CalibrationSamples = "calibration/samples";
constexpr auto CalibrationSeqLen = "calibration/seqLen";
constexpr auto CalibrationSeed = "calibration/seed";
constexpr auto EvalText = "evaluation/text";
constexpr auto EvalContext = "evaluation/context";
constexpr auto EvalProtocol = "evaluation/protocol";
constexpr auto EvalMaxChunks = "evaluation/maxChunks";
constexpr auto ReportWidth = "report/width";
constexpr auto ReportHeight = "report/height";
constexpr auto ReportDpi = "report/dpi";
constexpr auto ReportFormats = "report/formats";
constexpr auto ReportHistograms = "report/histograms";
constexpr auto ReportFolder = "report/folder";
} // namespace Key

static QString k(const char *key) { return QString::fromLatin1(key); }

Settings::Settings() = default;

QByteArray Settings::windowGeometry() const { return m_settings.value(k(Key::WindowGeometry)).toByteArray(); }
void Settings::setWindowGeometry(const QByteArray &v) { m_settings.setValue(k(Key::WindowGeometry), v); }
QByteArray Settings::windowState() const { return m_settings.value(k(Key::WindowState)).toByteArray(); }
void Settings::setWindowState(const QByteArray &v) { m_settings.setValue(k(Key::WindowState), v); }

QStringList Settings::recentFiles() const { return m_settings.value(k(Key::RecentFiles)).toStringList(); }

void Settings::addRecentFile(const QString &path)
{
    const QString clean = QDir::cleanPath(path);
    QStringList list = recentFiles();
    list.removeAll(clean);
    list.prepend(clean);
    while (list.size() > kMaxRecentFiles)
        list.removeLast();
    m_settings.setValue(k(Key::RecentFiles), list);
}

void Settings::removeRecentFile(const QString &path)
{
    QStringList list = recentFiles();
    list.removeAll(QDir::cleanPath(path));
    m_settings.setValue(k(Key::RecentFiles), list);
}

void Settings::clearRecentFiles() { m_settings.remove(k(Key::RecentFiles)); }

QString Settings::lastOpenDirectory() const
{
    return m_settings.value(k(Key::LastOpenDir), QDir::homePath()).toString();
}
void Settings::setLastOpenDirectory(const QString &v) { m_settings.setValue(k(Key::LastOpenDir), v); }

double Settings::outlierSigma() const
{
    const double v = m_settings.value(k(Key::OutlierSigma), 6.0).toDouble();
    return (v > 0.5 && v < 100.0) ? v : 6.0;
}
void Settings::setOutlierSigma(double v) { m_settings.setValue(k(Key::OutlierSigma), v); }

int Settings::histogramBins() const
{
    const int v = m_settings.value(k(Key::HistogramBins), 256).toInt();
    return (v >= 8 && v <= 4096) ? v : 256;
}
void Settings::setHistogramBins(int v) { m_settings.setValue(k(Key::HistogramBins), v); }

int Settings::boundedInt(const char *key, int fallback, int min, int max) const
{
    bool ok = false;
    const int v = m_settings.value(k(key), fallback).toInt(&ok);
    return (ok && v >= min && v <= max) ? v : fallback;
}

QString Settings::calibrationText() const { return m_settings.value(k(Key::CalibrationText)).toString(); }
void Settings::setCalibrationText(const QString &v) { m_settings.setValue(k(Key::CalibrationText), v); }
int Settings::calibrationSamples() const { return boundedInt(Key::CalibrationSamples, 32, 1, 100000); }
void Settings::setCalibrationSamples(int v) { m_settings.setValue(k(Key::CalibrationSamples), v); }
int Settings::calibrationSeqLen() const { return boundedInt(Key::CalibrationSeqLen, 256, 2, 1 << 20); }
void Settings::setCalibrationSeqLen(int v) { m_settings.setValue(k(Key::CalibrationSeqLen), v); }
int Settings::calibrationSeed() const { return boundedInt(Key::CalibrationSeed, 0, 0, 2147483647); }
void Settings::setCalibrationSeed(int v) { m_settings.setValue(k(Key::CalibrationSeed), v); }

QString Settings::evalText() const { return m_settings.value(k(Key::EvalText)).toString(); }
void Settings::setEvalText(const QString &v) { m_settings.setValue(k(Key::EvalText), v); }
int Settings::evalContext() const { return boundedInt(Key::EvalContext, 512, 8, 1 << 20); }
void Settings::setEvalContext(int v) { m_settings.setValue(k(Key::EvalContext), v); }
QString Settings::evalProtocol() const
{
    const QString v = m_settings.value(k(Key::EvalProtocol), QStringLiteral("llamacpp")).toString();
    return v == QLatin1String("gptq") ? v : QStringLiteral("llamacpp");
}
void Settings::setEvalProtocol(const QString &v) { m_settings.setValue(k(Key::EvalProtocol), v); }
int Settings::evalMaxChunks() const { return boundedInt(Key::EvalMaxChunks, 0, 0, 1 << 30); }
void Settings::setEvalMaxChunks(int v) { m_settings.setValue(k(Key::EvalMaxChunks), v); }

int Settings::reportWidth() const { return boundedInt(Key::ReportWidth, 800, 100, 10000); }
void Settings::setReportWidth(int v) { m_settings.setValue(k(Key::ReportWidth), v); }
int Settings::reportHeight() const { return boundedInt(Key::ReportHeight, 500, 100, 10000); }
void Settings::setReportHeight(int v) { m_settings.setValue(k(Key::ReportHeight), v); }
int Settings::reportDpi() const { return boundedInt(Key::ReportDpi, 150, 24, 1200); }
void Settings::setReportDpi(int v) { m_settings.setValue(k(Key::ReportDpi), v); }
QStringList Settings::reportFormats() const
{
    const QStringList fallback = {QStringLiteral("png"), QStringLiteral("svg"), QStringLiteral("csv"), QStringLiteral("md")};
    return m_settings.value(k(Key::ReportFormats), fallback).toStringList();
}
void Settings::setReportFormats(const QStringList &v) { m_settings.setValue(k(Key::ReportFormats), v); }
int Settings::reportHistograms() const { return boundedInt(Key::ReportHistograms, 3, 0, 100); }
void Settings::setReportHistograms(int v) { m_settings.setValue(k(Key::ReportHistograms), v); }
QString Settings::reportFolder() const
{
    return m_settings.value(k(Key::ReportFolder), QDir::homePath() + QStringLiteral("/quantscope-report")).toString();
}
void Settings::setReportFolder(const QString &v) { m_settings.setValue(k(Key::ReportFolder), v); }

} // namespace qs::ui
