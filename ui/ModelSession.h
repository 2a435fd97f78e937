#pragma once
// The open model and what was computed from it. Opening runs as a job; results arrive as
// std::shared_ptr<const ...> values and are announced by signals. Widgets read from here; they never
// touch files or tensors themselves.

#include <QObject>
#include <QString>

#include <memory>

#include "JobRunner.h"

namespace qs::core {
class Model;
}

namespace qs::ui {

class ModelSession : public QObject
{
    Q_OBJECT
public:
    explicit ModelSession(JobRunner *runner, QObject *parent = nullptr);

    // Opens a model folder or file in the background; replaces the current model when it succeeds.
    void openModel(const QString &path);

    std::shared_ptr<const core::Model> model() const { return m_model; }
    QString modelPath() const { return m_path; }
    JobRunner *runner() const { return m_runner; }

Q_SIGNALS:
    void modelOpened(const QString &path);
    void openFailed(const QString &path, const QString &error);
    void message(const QString &text);
    void warning(const QString &text);

private:
    JobRunner *m_runner;
    std::shared_ptr<const core::Model> m_model;
    QString m_path;
};

} // namespace qs::ui
