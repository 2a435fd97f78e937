#include "ModelSession.h"

#include <QFileInfo>

#include "io/FormatRegistry.h"

namespace qs::ui {

ModelSession::ModelSession(JobRunner *runner, QObject *parent) : QObject(parent), m_runner(runner) {}

void ModelSession::openModel(const QString &path)
{
    const std::string p = path.toStdString();
    m_runner->run<std::shared_ptr<const core::Model>>(
        tr("Open %1").arg(QFileInfo(path).fileName()), QStringLiteral("open-model"),
        [p](core::Progress &progress) -> std::shared_ptr<const core::Model> {
            progress.message("reading headers");
            std::shared_ptr<const core::Model> model = core::openModel(p);
            return model;
        },
        [this, path](std::shared_ptr<const std::shared_ptr<const core::Model>> result) {
            m_model = *result;
            m_path = path;
            for (const std::string &w : m_model->warnings)
                Q_EMIT warning(QString::fromStdString(w));
            Q_EMIT message(tr("Opened %1 (%2, %3 tensors)")
                               .arg(path, QString::fromStdString(m_model->format))
                               .arg(m_model->tensors.size()));
            Q_EMIT modelOpened(path);
        },
        [this, path](const QString &error) { Q_EMIT openFailed(path, error); });
}

} // namespace qs::ui
