#pragma once
// File › Export report…: which runs (the runs list, plus RUN_DIR folders), which formats, chart size and
// DPI, how many weight histograms, the output folder. Remembers its choices in Settings. exportReport()
// runs the whole flow: the dialog, a ReportExporter job with a progress dialog that can cancel, and on
// success an offer to open the folder.

#include <QDialog>

#include "report/ReportWriter.h"

class QCheckBox;
class QDialogButtonBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QSpinBox;

namespace qs::ui {

class ModelSession;
class RunsModel;
class Settings;

class ReportDialog : public QDialog
{
    Q_OBJECT
public:
    ReportDialog(RunsModel *runs, Settings *settings, QWidget *parent = nullptr);

    // The export the dialog describes (runs copied from the runs list; histograms from model when given).
    ReportExporter::Request request(std::shared_ptr<const core::Model> model) const;
    void addRunFolder(const QString &path);
    void setOutputFolder(const QString &path);
    void saveSettings() const;

    QListWidget *runList() const { return m_runs; }
    QDialogButtonBox *buttons() const { return m_buttons; }

private:
    void updateState();

    RunsModel *m_runsModel;
    Settings *m_settings;
    QListWidget *m_runs;
    QCheckBox *m_png, *m_svg, *m_pdf, *m_csv, *m_markdown;
    QSpinBox *m_width, *m_height, *m_dpi, *m_histograms;
    QLabel *m_pixels;
    QLineEdit *m_folder;
    QDialogButtonBox *m_buttons;
};

// The whole File › Export report flow on parent (see above). Does nothing while another export runs.
void exportReport(QWidget *parent, JobRunner *runner, ModelSession *session, RunsModel *runs, Settings *settings);

} // namespace qs::ui
