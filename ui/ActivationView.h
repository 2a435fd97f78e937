#pragma once
// Activations of the selected layer's input, from calibration: the histogram of input values with bins
// beyond the outlier-channel threshold highlighted, and the per-channel absmax of the activations above
// the per-channel (column) absmax of the weights — the picture that explains SmoothQuant: activation
// outliers sit in a few channels that the weights do not share.

#include <QWidget>

class QLabel;

namespace qs::ui {

class ChannelPlot;
class HistogramPlot;
class ModelSession;

class ActivationView : public QWidget
{
    Q_OBJECT
public:
    explicit ActivationView(ModelSession *session, QWidget *parent = nullptr);

    void showTensor(int tensorIndex);
    int tensorIndex() const { return m_tensor; }
    HistogramPlot *histogram() const { return m_histogram; }
    ChannelPlot *activationChannels() const { return m_activationChannels; }
    ChannelPlot *weightChannels() const { return m_weightChannels; }

private:
    void refresh();

    ModelSession *m_session;
    int m_tensor = -1;
    QLabel *m_title;
    HistogramPlot *m_histogram;
    ChannelPlot *m_activationChannels;
    ChannelPlot *m_weightChannels;
    QLabel *m_outlierList;
};

} // namespace qs::ui
