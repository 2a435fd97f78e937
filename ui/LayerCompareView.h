#pragma once
// The "Compare" tab: one layer quantized with several configurations side by side (issue #5). A table of
// configurations to try (registry-driven editors), a Run button that starts core::compareLayerMethods as
// a job (progress, cancel; keyed per layer, so a new request for the layer supersedes the old one), the
// results table with the best configuration marked, overlaid histograms of the weight error (or of the
// quantized weights) and a bar chart of the relative output error. "Use for this layer in the plan"
// writes the chosen configuration into the plan as one undo step (PlanModel). Calibration comes from the
// same settings the quantize job uses (Settings: text, samples, tokens, seed). Computes nothing itself.

#include <QHash>
#include <QWidget>

#include <memory>

#include "JobRunner.h"

class QComboBox;
class QLabel;
class QProgressBar;
class QPushButton;
class QTableView;

namespace qs::core {
struct LayerComparison;
}

namespace qs::ui {

class CompareConfigModel;
class CompareResultsModel;
class MethodBarPlot;
class ModelSession;
class OverlayHistogramPlot;
class PlanModel;
class Settings;

class LayerCompareView : public QWidget
{
    Q_OBJECT
public:
    LayerCompareView(ModelSession *session, Settings *settings, PlanModel *plan, QWidget *parent = nullptr);
    ~LayerCompareView() override;

    // Shows a layer (model tensor index): its last comparison when there is one, otherwise an empty view
    // ready to run. Layers that cannot be compared (norms, embeddings, lm_head) show why.
    void showTensor(int tensorIndex);
    int tensorIndex() const { return m_tensor; }
    QString layerName() const;
    bool canCompare() const;

    // Starts the comparison of the shown layer with the configurations in the table. Returns false (with
    // the reason in the status line) when there is no layer, no configuration or no calibration text.
    bool run();
    void cancel();
    bool isRunning() const;
    QString runningLayer() const { return m_job ? m_jobLayer : QString(); }
    bool hasResult() const; // the shown layer has a comparison

    // Writes the configuration of result row `row` (−1: the selected row, or the best one when none is
    // selected) into the plan for this layer, as one undo step. Returns whether the plan changed.
    bool useInPlan(int row = -1);

    CompareConfigModel *configModel() const { return m_configs; }
    CompareResultsModel *resultsModel() const { return m_results; }
    QTableView *configTable() const { return m_configTable; }
    QTableView *resultsTable() const { return m_resultsTable; }
    OverlayHistogramPlot *histogramPlot() const { return m_histogram; }
    MethodBarPlot *barPlot() const { return m_bars; }
    QComboBox *histogramMode() const { return m_histMode; }
    QString statusText() const;

Q_SIGNALS:
    void comparisonFinished(const QString &layer);
    void comparisonFailed(const QString &layer, const QString &error);
    void comparisonCancelled(const QString &layer);
    void calibrationTextNeeded();
    void message(const QString &text);

private:
    void refresh();
    void refreshPlots();
    void updateButtons();
    void setStatus(const QString &text);

    ModelSession *m_session;
    Settings *m_settings;
    PlanModel *m_plan;
    int m_tensor = -1;
    CompareConfigModel *m_configs;
    CompareResultsModel *m_results;
    QLabel *m_title;
    QTableView *m_configTable;
    QTableView *m_resultsTable;
    QPushButton *m_add;
    QPushButton *m_remove;
    QPushButton *m_defaults;
    QPushButton *m_run;
    QPushButton *m_cancel;
    QPushButton *m_use;
    QProgressBar *m_progress;
    QLabel *m_status;
    QComboBox *m_histMode;
    OverlayHistogramPlot *m_histogram;
    MethodBarPlot *m_bars;
    QHash<QString, std::shared_ptr<const core::LayerComparison>> m_done; // per layer, this model only
    JobId m_job = 0;
    QString m_jobLayer;
};

} // namespace qs::ui
