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

} // namespace qs::ui
