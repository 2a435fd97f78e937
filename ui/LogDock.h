#pragma once
// The log: timestamped messages, warnings and errors from jobs and the model session.

#include <QDockWidget>

class QPlainTextEdit;

namespace qs::ui {

enum class LogLevel { Info, Warning, Error };

class LogDock : public QDockWidget
{
    Q_OBJECT
public:
    explicit LogDock(QWidget *parent = nullptr);
    void append(LogLevel level, const QString &text);
    QString text() const;

private:
    QPlainTextEdit *m_view;
};

} // namespace qs::ui
