#pragma once
// Live loss curves of a training method (EfficientQAT): Block-AP's per-block reconstruction MSE (one
// curve per block, on a log axis, x = optimiser step within the block) and E2E-QP's language-model
// cross-entropy (one curve on the right-hand axis, x = its optimiser step). Only optimiser-step losses are
// drawn as curves; the before/after losses over all calibration samples are listed in the tooltip-free
// caption below the plot so a stall or a divergence is visible at a glance.

#include <QWidget>

#include <vector>

#include "train/EfficientQatOptions.h"

class QCustomPlot;
class QLabel;

namespace qs::ui {

class TrainingLossPlot : public QWidget
{
    Q_OBJECT
public:
    explicit TrainingLossPlot(QWidget *parent = nullptr);

    void setEvents(const std::vector<core::TrainingLossEvent> &events);
    void clear();
    int curveCount() const { return m_curves; }
    QString caption() const;
    QCustomPlot *plot() const { return m_plot; }

private:
    QCustomPlot *m_plot;
    QLabel *m_caption;
    int m_curves = 0;
};

} // namespace qs::ui
