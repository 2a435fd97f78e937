#include "LayerCompareView.h"

#include <QComboBox>
#include <QFileInfo>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPointer>
#include <QProgressBar>
#include <QPushButton>
#include <QSplitter>
#include <QStyledItemDelegate>
#include <QTableView>
#include <QVBoxLayout>

#include <nlohmann/json.hpp>

#include "CompareConfigModel.h"
#include "CompareResultsModel.h"
#include "ModelSession.h"
#include "PlanModel.h"
#include "Settings.h"
#include "model/ActivationObserver.h"
#include "model/Model.h"
#include "plots/MethodBarPlot.h"
#include "plots/OverlayHistogramPlot.h"
#include "quant/LayerCompare.h"

namespace qs::ui {

namespace {

bool isBlockLinear(core::TensorRole r)
{
    return core::isLinearRole(r) && r != core::TensorRole::LmHead;
}

// Combo-box editors from the model's ChoicesRole (values) and ChoiceLabelsRole (what the user reads).
class ChoiceDelegate : public QStyledItemDelegate
{
public:
    ChoiceDelegate(LayerCompareView *view) : QStyledItemDelegate(view), m_view(view) {}

    QWidget *createEditor(QWidget *parent, const QStyleOptionViewItem &option, const QModelIndex &index) const override
    {
        const QStringList values = index.data(CompareConfigModel::ChoicesRole).toStringList();
        if (values.isEmpty())
            return QStyledItemDelegate::createEditor(parent, option, index);
        const QStringList labels = index.data(CompareConfigModel::ChoiceLabelsRole).toStringList();
        auto *combo = new QComboBox(parent);
        for (int i = 0; i < values.size(); ++i)
            combo->addItem(i < labels.size() ? labels.at(i) : values.at(i), values.at(i));
        return combo;
    }
    void setEditorData(QWidget *editor, const QModelIndex &index) const override
    {
        if (auto *combo = qobject_cast<QComboBox *>(editor)) {
            combo->setCurrentIndex(std::max(0, combo->findData(index.data(Qt::EditRole).toString())));
            return;
        }
        QStyledItemDelegate::setEditorData(editor, index);
    }
    void setModelData(QWidget *editor, QAbstractItemModel *model, const QModelIndex &index) const override
    {
        auto *combo = qobject_cast<QComboBox *>(editor);
        if (!combo) {
            QStyledItemDelegate::setModelData(editor, model, index);
            return;
        }
        auto *configs = static_cast<CompareConfigModel *>(model);
        if (!configs->setData(index, combo->currentData(), Qt::EditRole))
            Q_EMIT m_view->message(configs->lastError());
    }

private:
    LayerCompareView *m_view;
};

QTableView *makeTable(QWidget *parent, const QString &name)
{
    auto *t = new QTableView(parent);
    t->setObjectName(name);
    t->setSelectionBehavior(QAbstractItemView::SelectRows);
    t->verticalHeader()->hide();
    t->horizontalHeader()->setStretchLastSection(true);
    t->setAlternatingRowColors(true);
    return t;
}

} // namespace

LayerCompareView::LayerCompareView(ModelSession *session, Settings *settings, PlanModel *plan, QWidget *parent)
    : QWidget(parent), m_session(session), m_settings(settings), m_plan(plan), m_configs(new CompareConfigModel(this)),
      m_results(new CompareResultsModel(this)), m_title(new QLabel(this)),
      m_configTable(makeTable(this, QStringLiteral("compareConfigTable"))),
      m_resultsTable(makeTable(this, QStringLiteral("compareResultsTable"))),
      m_add(new QPushButton(tr("Add"), this)), m_remove(new QPushButton(tr("Remove"), this)),
      m_defaults(new QPushButton(tr("Defaults"), this)), m_run(new QPushButton(tr("Run"), this)),
      m_cancel(new QPushButton(tr("Cancel"), this)), m_use(new QPushButton(tr("Use for this layer in the plan"), this)),
      m_progress(new QProgressBar(this)), m_status(new QLabel(this)), m_histMode(new QComboBox(this)),
      m_histogram(new OverlayHistogramPlot(this)), m_bars(new MethodBarPlot(this))
{
    setObjectName(QStringLiteral("LayerCompareView"));
    auto *layout = new QVBoxLayout(this);
    m_title->setTextFormat(Qt::RichText);
    m_title->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_title->setWordWrap(true);
    layout->addWidget(m_title);

    // Stacked rather than side by side: both tables need the width of the centre area (the docks take
    // the sides), and the plots below get the most height.
    auto *split = new QSplitter(Qt::Vertical, this);
    split->setChildrenCollapsible(false);
    auto *configBox = new QGroupBox(tr("Configurations to try"), split);
    auto *configLayout = new QVBoxLayout(configBox);
    m_configTable->setModel(m_configs);
    m_configTable->setItemDelegate(new ChoiceDelegate(this));
    m_configTable->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_configTable->setEditTriggers(QAbstractItemView::DoubleClicked | QAbstractItemView::EditKeyPressed
                                   | QAbstractItemView::SelectedClicked);
    m_configTable->setToolTip(tr("Double-click a cell to change the method, bits or group size; tick Sym. for a symmetric grid"));
    configLayout->addWidget(m_configTable, 1);
    auto *configButtons = new QHBoxLayout;
    m_add->setObjectName(QStringLiteral("compareAddButton"));
    m_add->setToolTip(tr("Add a configuration (a copy of the selected one)"));
    m_remove->setObjectName(QStringLiteral("compareRemoveButton"));
    m_defaults->setToolTip(tr("RTN 4-bit g128, GPTQ 4-bit g128, AWQ 4-bit g128, RTN 8-bit per channel"));
    m_run->setObjectName(QStringLiteral("compareRunButton"));
    m_run->setToolTip(tr("Quantize this layer with every configuration on the calibration settings of the "
                         "Calibration & evaluation dock"));
    m_run->setDefault(true);
    m_cancel->setObjectName(QStringLiteral("compareCancelButton"));
    configButtons->addWidget(m_add);
    configButtons->addWidget(m_remove);
    configButtons->addWidget(m_defaults);
    configButtons->addSpacing(12);
    m_progress->setRange(0, 1000);
    m_progress->setTextVisible(false);
    m_progress->setMaximumWidth(120);
    m_progress->setMaximumHeight(12);
    m_status->setObjectName(QStringLiteral("compareStatus"));
    m_status->setWordWrap(true);
    configButtons->addWidget(m_progress);
    configButtons->addWidget(m_status, 1);
    configButtons->addWidget(m_run);
    configButtons->addWidget(m_cancel);
    configLayout->addLayout(configButtons);
    split->addWidget(configBox);

    auto *resultBox = new QGroupBox(tr("Results"), split);
    auto *resultLayout = new QVBoxLayout(resultBox);
    m_resultsTable->setModel(m_results);
    m_resultsTable->setSelectionMode(QAbstractItemView::SingleSelection);
    m_resultsTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_resultsTable->setWordWrap(false);
    resultLayout->addWidget(m_resultsTable, 1);
    auto *useRow = new QHBoxLayout;
    auto *hint = new QLabel(tr("Inputs from the float model; lower relative output error is better."), resultBox);
    hint->setWordWrap(true);
    hint->setStyleSheet(QStringLiteral("color: palette(mid)"));
    m_use->setObjectName(QStringLiteral("compareUseButton"));
    m_use->setToolTip(tr("Set this layer's row of the plan to the selected configuration (or the best one); undoable"));
    useRow->addWidget(hint, 1);
    useRow->addWidget(m_use);
    resultLayout->addLayout(useRow);
    split->addWidget(resultBox);

    auto *bottom = new QWidget(split);
    auto *plots = new QHBoxLayout(bottom);
    plots->setContentsMargins(0, 0, 0, 0);
    auto *histColumn = new QVBoxLayout;
    auto *histBar = new QHBoxLayout;
    m_histMode->setObjectName(QStringLiteral("compareHistogramMode"));
    m_histMode->addItem(tr("Weight error (\u0174 \u2212 W)"));
    m_histMode->addItem(tr("Quantized weights (dashed: original)"));
    histBar->addWidget(new QLabel(tr("Histogram:"), bottom));
    histBar->addWidget(m_histMode);
    histBar->addStretch();
    histColumn->addLayout(histBar);
    histColumn->addWidget(m_histogram, 1);
    plots->addLayout(histColumn, 3);
    plots->addWidget(m_bars, 2);
    split->addWidget(bottom);
    // Room for the four default configurations and their results without scrolling.
    for (QTableView *t : {m_configTable, m_resultsTable})
        t->setMinimumHeight(t->horizontalHeader()->sizeHint().height() + 5 * t->verticalHeader()->defaultSectionSize() + 4);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 1);
    split->setStretchFactor(2, 3);
    layout->addWidget(split, 1);

    connect(m_add, &QPushButton::clicked, this, [this] {
        const QModelIndex current = m_configTable->currentIndex();
        m_configs->addConfig(current.isValid() ? m_configs->configs().at(size_t(current.row()))
                                               : core::MethodConfig::defaults("rtn"));
        m_configTable->setCurrentIndex(m_configs->index(m_configs->rowCount() - 1, CompareConfigModel::MethodColumn));
    });
    connect(m_remove, &QPushButton::clicked, this, [this] {
        QList<int> rows;
        for (const QModelIndex &i : m_configTable->selectionModel()->selectedRows())
            rows << i.row();
        if (rows.isEmpty() && m_configTable->currentIndex().isValid())
            rows << m_configTable->currentIndex().row();
        std::sort(rows.begin(), rows.end(), std::greater<int>());
        for (int r : rows)
            m_configs->removeRows(r, 1);
    });
    connect(m_defaults, &QPushButton::clicked, this, [this] { m_configs->setConfigs(CompareConfigModel::defaultConfigs()); });
    connect(m_run, &QPushButton::clicked, this, [this] { run(); });
    connect(m_cancel, &QPushButton::clicked, this, &LayerCompareView::cancel);
    connect(m_use, &QPushButton::clicked, this, [this] { useInPlan(); });
    connect(m_configs, &CompareConfigModel::configsChanged, this, &LayerCompareView::updateButtons);
    connect(m_histMode, &QComboBox::currentIndexChanged, this, &LayerCompareView::refreshPlots);
    connect(m_resultsTable->selectionModel(), &QItemSelectionModel::currentRowChanged, this, &LayerCompareView::updateButtons);

    JobRunner *runner = session->runner();
    connect(runner, &JobRunner::progress, this, [this](JobId id, double fraction, const QString &text, double) {
        if (id != m_job)
            return;
        m_progress->setValue(int(fraction * 1000));
        setStatus(text);
    });
    auto ended = [this](JobId id) {
        if (id != m_job)
            return;
        m_job = 0;
        m_progress->setValue(0);
        updateButtons();
    };
    connect(runner, &JobRunner::finished, this, ended);
    connect(runner, &JobRunner::failed, this, ended);
    connect(runner, &JobRunner::cancelled, this, [this, ended](JobId id) {
        if (id == m_job) {
            setStatus(tr("Cancelled."));
            Q_EMIT comparisonCancelled(m_jobLayer);
        }
        ended(id);
    });
    connect(session, &ModelSession::modelOpened, this, [this] {
        if (m_job)
            m_session->runner()->cancel(m_job);
        m_done.clear();
        showTensor(-1);
    });

    m_configTable->resizeColumnsToContents();
    refresh();
}

LayerCompareView::~LayerCompareView() = default;

QString LayerCompareView::layerName() const
{
    const auto model = m_session->model();
    if (!model || m_tensor < 0 || size_t(m_tensor) >= model->tensors.size())
        return {};
    return QString::fromStdString(model->tensors[size_t(m_tensor)].name);
}

bool LayerCompareView::canCompare() const
{
    const auto model = m_session->model();
    return model && m_tensor >= 0 && size_t(m_tensor) < model->tensors.size()
           && isBlockLinear(model->tensors[size_t(m_tensor)].role);
}

bool LayerCompareView::isRunning() const { return m_job != 0; }

bool LayerCompareView::hasResult() const { return m_results->comparison() != nullptr; }

QString LayerCompareView::statusText() const { return m_status->text(); }

void LayerCompareView::setStatus(const QString &text) { m_status->setText(text); }

void LayerCompareView::showTensor(int tensorIndex)
{
    m_tensor = tensorIndex;
    refresh();
}

bool LayerCompareView::run()
{
    const std::shared_ptr<const core::Model> model = m_session->model();
    if (!canCompare()) {
        setStatus(tr("Select a q/k/v/o or gate/up/down layer in the model tree first."));
        return false;
    }
    if (m_configs->configs().empty()) {
        setStatus(tr("Add at least one configuration."));
        return false;
    }
    if (m_settings->calibrationText().isEmpty()) {
        setStatus(tr("Choose a calibration text in the Calibration & evaluation dock first."));
        Q_EMIT calibrationTextNeeded();
        return false;
    }
    core::LayerCompareOptions options;
    options.calibrationText = m_settings->calibrationText().toStdString();
    options.samples = m_settings->calibrationSamples();
    options.seqLen = m_settings->calibrationSeqLen();
    options.seed = uint64_t(m_settings->calibrationSeed());
    const QString layer = layerName();
    const std::string name = layer.toStdString();
    const std::vector<core::MethodConfig> configs = m_configs->configs();
    // The view shows one layer: a comparison still running for another layer is no longer wanted.
    if (m_job && m_jobLayer != layer)
        m_session->runner()->cancel(m_job);
    QPointer<LayerCompareView> self(this);
    m_jobLayer = layer;
    setStatus(tr("Starting\u2026"));
    m_job = m_session->runner()->run<core::LayerComparison>(
        tr("Compare %1 methods on %2").arg(configs.size()).arg(layer), QStringLiteral("layer-compare:") + layer,
        [model, name, configs, options](core::Progress &p) { return core::compareLayerMethods(model, name, configs, options, p); },
        [self, model, layer](std::shared_ptr<const core::LayerComparison> result) {
            if (!self || model != self->m_session->model())
                return;
            self->m_done.insert(layer, result);
            if (layer == self->layerName())
                self->refresh();
            const int best = result->bestIndex();
            self->setStatus(best >= 0 ? tr("Done in %1 s: best is %2.")
                                            .arg(result->seconds, 0, 'f', 2)
                                            .arg(QString::fromStdString(result->entries[size_t(best)].label))
                                      : tr("Done: every configuration failed on this layer."));
            Q_EMIT self->comparisonFinished(layer);
        },
        [self, layer](const QString &error) {
            if (!self)
                return;
            self->setStatus(tr("Failed: %1").arg(error));
            Q_EMIT self->comparisonFailed(layer, error);
        });
    updateButtons();
    return true;
}

void LayerCompareView::cancel()
{
    if (m_job)
        m_session->runner()->cancel(m_job);
}

bool LayerCompareView::useInPlan(int row)
{
    const std::shared_ptr<const core::LayerComparison> comparison = m_results->comparison();
    if (!comparison || !m_plan)
        return false;
    if (row < 0) {
        const QModelIndexList selected = m_resultsTable->selectionModel()->selectedRows();
        const QModelIndex current = m_resultsTable->selectionModel()->currentIndex();
        row = !selected.isEmpty() ? selected.first().row() : current.isValid() ? current.row() : m_results->bestRow();
    }
    if (row < 0 || size_t(row) >= comparison->entries.size())
        return false;
    const core::LayerCompareEntry &e = comparison->entries[size_t(row)];
    if (!e.error.empty()) {
        setStatus(tr("%1 failed on this layer; pick another configuration.").arg(QString::fromStdString(e.label)));
        return false;
    }
    std::vector<PlanModel::Row> rows = m_plan->rows();
    auto it = std::find_if(rows.begin(), rows.end(), [&](const PlanModel::Row &r) { return r.name == comparison->layer; });
    if (it == rows.end()) {
        setStatus(tr("%1 is not in the plan.").arg(QString::fromStdString(comparison->layer)));
        return false;
    }
    if (it->quantize && it->config == e.config) {
        setStatus(tr("The plan already uses %1 for this layer.").arg(QString::fromStdString(e.label)));
        return false;
    }
    it->quantize = true;
    it->config = e.config;
    // Methods that fold scales into a shared input must agree with the siblings reading it (the pipeline
    // refuses the plan otherwise): say so now rather than when the run starts.
    QString warning;
    const auto model = m_session->model();
    const core::Tensor *self = model ? model->find(comparison->layer) : nullptr;
    if (self)
        for (const PlanModel::Row &r : rows) {
            if (r.name == comparison->layer || !r.quantize || r.tensorIndex < 0 || size_t(r.tensorIndex) >= model->tensors.size())
                continue;
            const core::Tensor &t = model->tensors[size_t(r.tensorIndex)];
            if (t.block != self->block || core::linearInputOf(t.role) != core::linearInputOf(self->role))
                continue;
            const std::string &a = e.config.method(), &b = r.config.method();
            const bool folds = core::linearInputOf(self->role) == core::LinearInput::AttnIn
                               || core::linearInputOf(self->role) == core::LinearInput::MlpIn;
            if (folds && ((a == "awq" && b == "smoothquant") || (a == "smoothquant" && b == "awq")))
                warning = tr("%1 uses %2 on the same input: the pipeline cannot fold both into one norm.")
                              .arg(QString::fromStdString(r.name), QString::fromStdString(b));
            else if (a == b && a == "awq" && r.config != e.config)
                warning = tr("%1 also uses AWQ with other parameters: layers sharing an input share one AWQ search and must match.")
                              .arg(QString::fromStdString(r.name));
            else if (a == b && a == "smoothquant" && r.config.getDouble("alpha") != e.config.getDouble("alpha"))
                warning = tr("%1 uses SmoothQuant with another alpha: layers sharing a norm must use the same alpha.")
                              .arg(QString::fromStdString(r.name));
        }
    m_plan->setRows(rows, tr("Use %1 for %2").arg(QString::fromStdString(e.label), QString::fromStdString(comparison->layer)));
    const QString done = tr("Plan: %1 now uses %2.").arg(QString::fromStdString(comparison->layer), QString::fromStdString(e.label));
    setStatus(warning.isEmpty() ? done : done + QLatin1Char(' ') + warning);
    Q_EMIT message(warning.isEmpty() ? done : done + QLatin1Char(' ') + warning);
    return true;
}

void LayerCompareView::updateButtons()
{
    const bool running = m_job != 0;
    m_run->setEnabled(canCompare() && !m_configs->configs().empty());
    m_run->setText(running && m_jobLayer == layerName() ? tr("Run again") : tr("Run"));
    m_cancel->setEnabled(running);
    m_remove->setEnabled(!m_configs->configs().empty());
    m_progress->setVisible(running);
    const auto comparison = m_results->comparison();
    m_use->setEnabled(comparison && m_plan && m_results->bestRow() >= 0);
}

void LayerCompareView::refresh()
{
    const auto model = m_session->model();
    if (!model || m_tensor < 0 || size_t(m_tensor) >= model->tensors.size()) {
        m_title->setText(tr("<i>Select a layer in the model tree, then Run (or right-click a layer \u203a Compare methods\u2026).</i>"));
        m_results->setComparison(nullptr);
    } else {
        const core::Tensor &t = model->tensors[size_t(m_tensor)];
        QString title = tr("<b>%1</b> &nbsp; %2 \u00d7 %3").arg(QString::fromStdString(t.name).toHtmlEscaped()).arg(t.rows).arg(t.cols);
        const auto result = m_done.value(layerName());
        if (!isBlockLinear(t.role)) {
            title += tr(" &nbsp; <i>methods can be compared on q/k/v/o and gate/up/down layers only</i>");
        } else if (result) {
            const nlohmann::json &c = result->calibration;
            title += tr(" &nbsp; calibration: %1 samples \u00d7 %2 tokens of %3 (seed %4), %L5 tokens through %6 float block(s)")
                         .arg(c.value("samples", 0))
                         .arg(c.value("seq_len", 0))
                         .arg(QFileInfo(QString::fromStdString(c.value("text_path", std::string()))).fileName().toHtmlEscaped())
                         .arg(qulonglong(c.value("seed", uint64_t(0))))
                         .arg(qlonglong(result->calibrationTokens))
                         .arg(result->block + 1);
        } else {
            title += tr(" &nbsp; <i>not compared yet: press Run</i>");
        }
        m_title->setText(title);
        m_results->setComparison(result);
    }
    m_resultsTable->resizeColumnsToContents();
    if (m_results->bestRow() >= 0)
        m_resultsTable->selectRow(m_results->bestRow());
    refreshPlots();
    updateButtons();
}

void LayerCompareView::refreshPlots()
{
    const auto comparison = m_results->comparison();
    if (!comparison) {
        m_histogram->clear();
        m_bars->clear();
        return;
    }
    std::vector<OverlayHistogramPlot::Series> series;
    const bool weights = m_histMode->currentIndex() == 1;
    if (weights)
        series.push_back({tr("original"), QColor(0x60, 0x60, 0x60), comparison->originalHistogram, true});
    std::vector<MethodBarPlot::Bar> bars;
    for (size_t i = 0; i < comparison->entries.size(); ++i) {
        const core::LayerCompareEntry &e = comparison->entries[i];
        const QString label = QString::fromStdString(e.label);
        const QColor color = compareSeriesColor(int(i));
        bars.push_back({label, color, e.metrics.relOutputError, e.error.empty()});
        if (e.error.empty())
            series.push_back({label, color, weights ? e.weightHistogram : e.errorHistogram, false});
    }
    m_histogram->setSeries(series, weights ? tr("weight value (quantized, effective)") : tr("weight error \u0174 \u2212 W"));
    m_bars->setBars(bars, tr("relative output error"), comparison->bestIndex());
}

} // namespace qs::ui
