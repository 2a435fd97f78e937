#pragma once
// Every persistent setting, with its type and default, in one place (house style, practice 9).
// Nothing else in the application touches QSettings keys.

#include <QByteArray>
#include <QSettings>
#include <QString>
#include <QStringList>

namespace qs::ui {

class Settings
{
public:
    Settings();

    static constexpr int kMaxRecentFiles = 10;

    QByteArray windowGeometry() const;
    void setWindowGeometry(const QByteArray &v);
    QByteArray windowState() const;
    void setWindowState(const QByteArray &v);

    QStringList recentFiles() const;
    void addRecentFile(const QString &path); // most recent first, de-duplicated, capped
    void removeRecentFile(const QString &path);
    void clearRecentFiles();

    QString lastOpenDirectory() const;
    void setLastOpenDirectory(const QString &v);

    double outlierSigma() const; // default 6.0
    void setOutlierSigma(double v);

    int histogramBins() const; // default 256
    void setHistogramBins(int v);

    QString calibrationText() const;
    void setCalibrationText(const QString &v);
    int calibrationSamples() const; // default 32
    void setCalibrationSamples(int v);
    int calibrationSeqLen() const; // default 256
    void setCalibrationSeqLen(int v);
    int calibrationSeed() const; // default 0
    void setCalibrationSeed(int v);

    QString evalText() const;
    void setEvalText(const QString &v);
    int evalContext() const; // default 512
    void setEvalContext(int v);
    QString evalProtocol() const; // "llamacpp" (default) | "gptq"
    void setEvalProtocol(const QString &v);
    int evalMaxChunks() const; // default 0 = all
    void setEvalMaxChunks(int v);

    // File > Export report: chart size in CSS pixels, PNG resolution, formats ("png", "svg", "pdf", "csv",
    // "md"), histogram count and the last output folder (docs/reports.md).
    int reportWidth() const; // default 800
    void setReportWidth(int v);
    int reportHeight() const; // default 500
    void setReportHeight(int v);
    int reportDpi() const; // default 150
    void setReportDpi(int v);
    QStringList reportFormats() const; // default png, svg, csv, md
    void setReportFormats(const QStringList &v);
    int reportHistograms() const; // default 3
    void setReportHistograms(int v);
    QString reportFolder() const; // default <home>/quantscope-report
    void setReportFolder(const QString &v);

private:
    int boundedInt(const char *key, int fallback, int min, int max) const;
    mutable QSettings m_settings;
};

} // namespace qs::ui
