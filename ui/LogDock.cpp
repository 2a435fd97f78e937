#include "LogDock.h"

#include <QPlainTextEdit>
#include <QTime>

namespace qs::ui {

LogDock::LogDock(QWidget *parent) : QDockWidget(tr("Log"), parent), m_view(new QPlainTextEdit(this))
{
    setObjectName(QStringLiteral("LogDock"));
    m_view->setObjectName(QStringLiteral("logView"));
    m_view->setReadOnly(true);
    m_view->setMaximumBlockCount(5000);
    setWidget(m_view);
}

void LogDock::append(LogLevel level, const QString &text)
{
    QString prefix;
    QString colour;
    switch (level) {
    case LogLevel::Info: prefix = QString(); colour = QString(); break;
    case LogLevel::Warning: prefix = tr("warning: "); colour = QStringLiteral("#b36b00"); break;
    case LogLevel::Error: prefix = tr("error: "); colour = QStringLiteral("#c00000"); break;
    }
    const QString line = QTime::currentTime().toString(QStringLiteral("HH:mm:ss ")) + prefix + text;
    if (colour.isEmpty())
        m_view->appendPlainText(line);
    else
        m_view->appendHtml(QStringLiteral("<span style=\"color:%1\">%2</span>").arg(colour, line.toHtmlEscaped()));
}

QString LogDock::text() const { return m_view->toPlainText(); }

} // namespace qs::ui
