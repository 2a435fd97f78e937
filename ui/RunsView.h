#pragma once
// The Runs tab: the list of quantization runs; the live per-layer error plot of the selected run (and the
// live loss curves when it trains, EfficientQAT); a
// comparison of two runs' per-layer errors; and bits per weight against perplexity or KLD for all runs
// with the Pareto front.

#include <QWidget>

class QComboBox;
class QTableView;

namespace qs::ui {

class LayerErrorPlot;
class ModelSession;
class ParetoPlot;
class RunsModel;
class TrainingLossPlot;

class RunsView : public QWidget
{
    Q_OBJECT
public:
    RunsView(ModelSession *session, RunsModel *runs, QWidget *parent = nullptr);

    LayerErrorPlot *livePlot() const { return m_live; }
    LayerErrorPlot *comparePlot() const { return m_compare; }
    ParetoPlot *paretoPlot() const { return m_pareto; }
    TrainingLossPlot *lossPlot() const { return m_loss; }
    QTableView *table() const { return m_table; }
    void selectRun(int id);
    int selectedRun() const { return m_selected; } // 0: none
    void setCompare(int idA, int idB);

private:
    void refreshLive();
    void refreshLoss();
    void refreshCompare();
    void refreshPareto();
    void refreshCombos();
    std::vector<std::string> layerOrder() const;

    ModelSession *m_session;
    RunsModel *m_runs;
    QTableView *m_table;
    LayerErrorPlot *m_live;
    TrainingLossPlot *m_loss;
    QComboBox *m_runA;
    QComboBox *m_runB;
    LayerErrorPlot *m_compare;
    QComboBox *m_lossKind;
    ParetoPlot *m_pareto;
    int m_selected = 0;
    bool m_lossRefreshPending = false;
};

} // namespace qs::ui
