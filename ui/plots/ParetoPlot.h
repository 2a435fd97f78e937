#pragma once
// Bits per weight against a loss (perplexity or KL divergence) for every evaluated run, with the Pareto
// front drawn as a step line and the runs labelled.

#include <QWidget>

#include <vector>

class QCustomPlot;

namespace qs::ui {

class ParetoPlot : public QWidget
{
    Q_OBJECT
public:
    explicit ParetoPlot(QWidget *parent = nullptr);

    struct Point
    {
        QString label;
        double bitsPerWeight = 0.0;
        double loss = 0.0;
    };
    void setPoints(const std::vector<Point> &points, const QString &lossLabel, double baseline);
    const std::vector<int> &front() const { return m_front; }
    QCustomPlot *plot() const { return m_plot; }

private:
    QCustomPlot *m_plot;
    std::vector<int> m_front;
};

} // namespace qs::ui
