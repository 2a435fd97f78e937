#include "LayerView.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSplitter>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>

#include "ModelSession.h"
#include "model/Model.h"
#include "plots/ChannelPlot.h"
#include "plots/HistogramPlot.h"
#include "stats/WeightStats.h"

namespace qs::ui {

namespace {
constexpr double kChannelOutlierFactor = 4.0;
}

LayerView::LayerView(ModelSession *session, QWidget *parent)
    : QWidget(parent), m_session(session), m_title(new QLabel(this)), m_sigma(new QDoubleSpinBox(this)),
      m_histMode(new QComboBox(this)), m_channelMode(new QComboBox(this)), m_histogram(new HistogramPlot(this)),
      m_channels(new ChannelPlot(this)), m_table(new QTableWidget(this)), m_commit(new QTimer(this))
{
    setObjectName(QStringLiteral("LayerView"));
    auto *layout = new QVBoxLayout(this);
    m_title->setTextFormat(Qt::RichText);
    m_title->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_title);

    auto *controls = new QHBoxLayout;
    auto *sigmaLabel = new QLabel(tr("Outlier threshold k (|x \u2212 mean| > k\u03c3):"), this);
    m_sigma->setObjectName(QStringLiteral("sigmaSpin"));
    m_sigma->setRange(0.5, 100.0);
    m_sigma->setSingleStep(0.5);
    m_sigma->setDecimals(2);
    m_sigma->setValue(session->outlierSigma());
    m_sigma->setToolTip(tr("Drag the dashed lines in the histogram, or type a value"));
    sigmaLabel->setBuddy(m_sigma);
    m_histMode->addItems({tr("Linear bins"), tr("Symmetric-log bins")});
    m_histMode->setObjectName(QStringLiteral("histogramMode"));
    m_channelMode->addItems({tr("Input channels (columns)"), tr("Output channels (rows)")});
    m_channelMode->setObjectName(QStringLiteral("channelMode"));
    controls->addWidget(sigmaLabel);
    controls->addWidget(m_sigma);
    controls->addSpacing(16);
    controls->addWidget(m_histMode);
    controls->addWidget(m_channelMode);
    controls->addStretch();
    m_compare = new QPushButton(tr("Compare methods\u2026"), this);
    m_compare->setObjectName(QStringLiteral("compareMethodsButton"));
    m_compare->setToolTip(tr("Quantize this layer with several methods side by side (Run \u203a Compare methods)"));
    m_compare->setEnabled(false);
    controls->addWidget(m_compare);
    layout->addLayout(controls);

    auto *split = new QSplitter(Qt::Horizontal, this);
    auto *plots = new QSplitter(Qt::Vertical, split);
    plots->addWidget(m_histogram);
    plots->addWidget(m_channels);
    plots->setStretchFactor(0, 3);
    plots->setStretchFactor(1, 2);
    split->addWidget(plots);
    m_table->setObjectName(QStringLiteral("statsTable"));
    m_table->setColumnCount(2);
    m_table->setHorizontalHeaderLabels({tr("Statistic"), tr("Value")});
    m_table->verticalHeader()->hide();
    m_table->horizontalHeader()->setStretchLastSection(true);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setMinimumWidth(260);
    split->addWidget(m_table);
    split->setStretchFactor(0, 4);
    split->setStretchFactor(1, 1);
    layout->addWidget(split, 1);

    m_commit->setSingleShot(true);
    m_commit->setInterval(500);
    connect(m_commit, &QTimer::timeout, this, [this] { m_session->setOutlierSigma(m_sigma->value()); });
    connect(m_sigma, &QDoubleSpinBox::valueChanged, this, [this](double v) {
        m_histogram->setSigma(v);
        m_commit->start();
    });
    connect(m_histogram, &HistogramPlot::sigmaDragged, this, [this](double v) {
        const QSignalBlocker block(m_sigma);
        m_sigma->setValue(v);
    });
    connect(m_histogram, &HistogramPlot::sigmaEdited, this, [this](double v) {
        const QSignalBlocker block(m_sigma);
        m_sigma->setValue(v);
        m_session->setOutlierSigma(m_sigma->value());
    });
    connect(m_histMode, &QComboBox::currentIndexChanged, this, [this](int i) { m_histogram->setSymlog(i == 1); });
    connect(m_channelMode, &QComboBox::currentIndexChanged, this, [this] { refresh(); });
    connect(m_compare, &QPushButton::clicked, this, [this] { Q_EMIT compareMethodsRequested(m_tensor); });
    connect(session, &ModelSession::statsChanged, this, [this] { refresh(); });
    connect(session, &ModelSession::modelOpened, this, [this] { showTensor(-1); });
    connect(session, &ModelSession::outlierSigmaChanged, this, [this](double v) {
        const QSignalBlocker block(m_sigma);
        m_sigma->setValue(v);
    });
    refresh();
}

void LayerView::showTensor(int tensorIndex)
{
    m_tensor = tensorIndex;
    refresh();
}

void LayerView::refresh()
{
    const auto model = m_session->model();
    if (!model || m_tensor < 0 || size_t(m_tensor) >= model->tensors.size()) {
        m_title->setText(tr("<i>Select a layer in the model tree.</i>"));
        m_compare->setEnabled(false);
        m_histogram->clear();
        m_channels->clear();
        m_table->setRowCount(0);
        return;
    }
    const core::Tensor &t = model->tensors[size_t(m_tensor)];
    m_compare->setEnabled(core::isLinearRole(t.role) && t.role != core::TensorRole::LmHead);
    m_title->setText(tr("<b>%1</b> &nbsp; %2 \u00d7 %3 &nbsp; %4%5")
                         .arg(QString::fromStdString(t.name).toHtmlEscaped())
                         .arg(t.rows)
                         .arg(t.cols)
                         .arg(QString::fromLatin1(core::dtypeName(t.dtype)))
                         .arg(model->hparams.synthetic ? tr(" &nbsp; <span style='color:#b36b00'>[synthetic demo model]</span>")
                                                       : QString()));
    const core::WeightStats *s = m_session->statsFor(m_tensor);
    if (!s) {
        m_title->setText(m_title->text() + tr(" &nbsp; <i>computing statistics\u2026</i>"));
        m_histogram->clear();
        m_channels->clear();
        m_table->setRowCount(0);
        return;
    }
    m_histogram->setStats(*s, m_sigma->value());
    const bool inputs = m_channelMode->currentIndex() == 0;
    m_channels->setChannels(inputs ? tr("input channel (column)") : tr("output channel (row)"),
                            inputs ? s->colAbsMax : s->rowAbsMax, kChannelOutlierFactor);
    fillTable();
}

void LayerView::fillTable()
{
    const core::WeightStats *s = m_session->statsFor(m_tensor);
    if (!s)
        return;
    QList<QPair<QString, QString>> rows = {
        {tr("values"), QStringLiteral("%L1").arg(qulonglong(s->count))},
        {tr("min"), QString::number(s->min, 'g', 6)},
        {tr("max"), QString::number(s->max, 'g', 6)},
        {tr("mean"), QString::number(s->mean, 'g', 6)},
        {tr("std (\u03c3)"), QString::number(s->stddev, 'g', 6)},
        {tr("skewness"), QString::number(s->skewness, 'f', 3)},
        {tr("excess kurtosis"), QString::number(s->kurtosis, 'f', 3)},
        {tr("zeros"), QStringLiteral("%L1").arg(qulonglong(s->zeroCount))},
        {tr("NaN / Inf"), QStringLiteral("%1 / %2").arg(s->nanCount).arg(s->infCount)},
        {tr("outlier threshold"), tr("%1\u03c3 = %2").arg(s->outlierSigma).arg(s->outlierThreshold, 0, 'g', 4)},
        {tr("outliers"), tr("%L1 (%2 \u2030)").arg(qulonglong(s->outlierCount)).arg(s->outlierFraction * 1000, 0, 'f', 3)},
        {tr("outlier channels shown"), QString::number(m_channels->outlierChannels().size())},
    };
    const size_t top = std::min<size_t>(s->topOutliers.size(), 10);
    for (size_t i = 0; i < top; ++i) {
        const core::OutlierPosition &o = s->topOutliers[i];
        rows.append({tr("outlier #%1").arg(i + 1), tr("[%1, %2] = %3").arg(o.row).arg(o.col).arg(double(o.value), 0, 'g', 5)});
    }
    m_table->setRowCount(int(rows.size()));
    for (int r = 0; r < rows.size(); ++r) {
        m_table->setItem(r, 0, new QTableWidgetItem(rows[r].first));
        m_table->setItem(r, 1, new QTableWidgetItem(rows[r].second));
    }
    m_table->resizeColumnToContents(0);
}

} // namespace qs::ui
