#pragma once
// The bottom dock listing jobs with a progress bar, remaining time and message; Cancel stops the
// selected running job (Esc cancels all running jobs from the main window).

#include <QDockWidget>

namespace qs::ui {

class JobRunner;
class JobListModel;

class JobsDock : public QDockWidget
{
    Q_OBJECT
public:
    JobsDock(JobRunner *runner, QWidget *parent = nullptr);
    JobListModel *model() const { return m_model; }

private:
    JobRunner *m_runner;
    JobListModel *m_model;
};

} // namespace qs::ui
