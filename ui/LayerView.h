#pragma once
// The centre view of one tensor: histogram with outlier bins and draggable ±kσ lines, per-channel absmax
// with outlier channels, and a statistics table. Reads results from the ModelSession; computes nothing.

#include <QWidget>

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QTableWidget;
class QTimer;

namespace qs::ui {

class ChannelPlot;
class HistogramPlot;
class ModelSession;

class LayerView : public QWidget
{
    Q_OBJECT
public:
    explicit LayerView(ModelSession *session, QWidget *parent = nullptr);

    void showTensor(int tensorIndex);
    int tensorIndex() const { return m_tensor; }
    HistogramPlot *histogram() const { return m_histogram; }
    ChannelPlot *channels() const { return m_channels; }
    QTableWidget *statsTable() const { return m_table; }

Q_SIGNALS:
    void compareMethodsRequested(int tensorIndex); // the "Compare methods…" button

private:
    void refresh();
    void fillTable();

    ModelSession *m_session;
    int m_tensor = -1;
    QLabel *m_title;
    QDoubleSpinBox *m_sigma;
    QComboBox *m_histMode;
    QComboBox *m_channelMode;
    HistogramPlot *m_histogram;
    ChannelPlot *m_channels;
    QTableWidget *m_table;
    QTimer *m_commit;
    QPushButton *m_compare = nullptr;
};

} // namespace qs::ui
