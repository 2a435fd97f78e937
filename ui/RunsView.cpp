#include "RunsView.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSplitter>
#include <QTableView>
#include <QVBoxLayout>

#include <cmath>

#include "ModelSession.h"
#include "RunsModel.h"
#include "model/Model.h"
#include "plots/LayerErrorPlot.h"
#include "plots/ParetoPlot.h"
#include "plots/TrainingLossPlot.h"

namespace qs::ui {

RunsView::RunsView(ModelSession *session, RunsModel *runs, QWidget *parent)
    : QWidget(parent), m_session(session), m_runs(runs), m_table(new QTableView(this)), m_live(new LayerErrorPlot(this)),
      m_loss(new TrainingLossPlot(this)),
      m_runA(new QComboBox(this)), m_runB(new QComboBox(this)), m_compare(new LayerErrorPlot(this)),
      m_lossKind(new QComboBox(this)), m_pareto(new ParetoPlot(this))
{
    setObjectName(QStringLiteral("RunsView"));
    auto *layout = new QVBoxLayout(this);
    auto *split = new QSplitter(Qt::Vertical, this);

    auto *top = new QWidget(split);
    auto *topLayout = new QVBoxLayout(top);
    topLayout->setContentsMargins(0, 0, 0, 0);
    m_table->setObjectName(QStringLiteral("runsTable"));
    m_table->setModel(runs);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->verticalHeader()->hide();
    m_table->horizontalHeader()->setStretchLastSection(true);
    topLayout->addWidget(m_table, 1);
    auto *buttons = new QHBoxLayout;
    auto *cancel = new QPushButton(tr("Cancel run"), top);
    buttons->addWidget(cancel);
    buttons->addStretch();
    topLayout->addLayout(buttons);
    split->addWidget(top);
    split->addWidget(m_live);
    split->addWidget(m_loss);
    m_loss->hide(); // shown for runs that train

    auto *compare = new QWidget(split);
    auto *compareLayout = new QVBoxLayout(compare);
    compareLayout->setContentsMargins(0, 0, 0, 0);
    auto *pick = new QHBoxLayout;
    pick->addWidget(new QLabel(tr("Compare"), compare));
    pick->addWidget(m_runA, 1);
    pick->addWidget(new QLabel(tr("with"), compare));
    pick->addWidget(m_runB, 1);
    pick->addSpacing(16);
    pick->addWidget(new QLabel(tr("Trade-off:"), compare));
    m_lossKind->addItem(tr("perplexity"));
    m_lossKind->addItem(tr("KL divergence"));
    pick->addWidget(m_lossKind);
    compareLayout->addLayout(pick);
    auto *plots = new QHBoxLayout;
    plots->addWidget(m_compare, 3);
    plots->addWidget(m_pareto, 2);
    compareLayout->addLayout(plots, 1);
    split->addWidget(compare);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 2);
    split->setStretchFactor(2, 1);
    split->setStretchFactor(3, 2);
    layout->addWidget(split);

    connect(cancel, &QPushButton::clicked, this, [this] {
        if (m_selected)
            m_runs->cancelRun(m_selected);
    });
    connect(m_table->selectionModel(), &QItemSelectionModel::currentRowChanged, this, [this](const QModelIndex &current) {
        if (current.isValid() && current.row() < m_runs->runs().size()) {
            m_selected = m_runs->runs().at(current.row())->id;
            refreshLive();
        }
    });
    connect(runs, &RunsModel::runStarted, this, [this](int id) {
        refreshCombos();
        selectRun(id);
    });
    connect(runs, &RunsModel::layerDone, this, [this](int id) {
        if (id == m_selected)
            refreshLive();
        m_runs->dataChanged(m_runs->index(0, RunsModel::StateColumn), m_runs->index(m_runs->rowCount() - 1, RunsModel::StateColumn));
    });
    connect(runs, &RunsModel::trainingLoss, this, [this](int id) {
        // Losses arrive per optimiser step; redraw at most once per event-loop turn.
        if (id == m_selected && !m_lossRefreshPending) {
            m_lossRefreshPending = true;
            QMetaObject::invokeMethod(this, [this] {
                m_lossRefreshPending = false;
                refreshLoss();
            }, Qt::QueuedConnection);
        }
    });
    connect(runs, &RunsModel::runFinished, this, [this](int id) {
        if (id == m_selected)
            refreshLive();
        refreshCombos();
        refreshCompare();
        refreshPareto();
    });
    connect(runs, &QAbstractItemModel::modelReset, this, [this] {
        m_selected = 0;
        refreshCombos();
        m_live->clear();
        m_loss->clear();
        m_loss->hide();
        m_compare->clear();
        refreshPareto();
    });
    connect(m_runA, &QComboBox::currentIndexChanged, this, [this] { refreshCompare(); });
    connect(m_runB, &QComboBox::currentIndexChanged, this, [this] { refreshCompare(); });
    connect(m_lossKind, &QComboBox::currentIndexChanged, this, [this] { refreshPareto(); });
}

std::vector<std::string> RunsView::layerOrder() const
{
    std::vector<std::string> order;
    if (const auto model = m_session->model())
        for (const core::Tensor &t : model->tensors)
            if (core::isLinearRole(t.role) && t.role != core::TensorRole::LmHead)
                order.push_back(t.name);
    return order;
}

void RunsView::selectRun(int id)
{
    for (int r = 0; r < m_runs->runs().size(); ++r)
        if (m_runs->runs().at(r)->id == id)
            m_table->setCurrentIndex(m_runs->index(r, 0));
    m_selected = id;
    refreshLive();
}

void RunsView::setCompare(int idA, int idB)
{
    m_runA->setCurrentIndex(m_runA->findData(idA));
    m_runB->setCurrentIndex(m_runB->findData(idB));
    refreshCompare();
}

void RunsView::refreshLive()
{
    const auto run = m_runs->run(m_selected);
    if (!run) {
        m_live->clear();
        refreshLoss();
        return;
    }
    m_live->setSeries(layerOrder(), {{run->name, run->layers, run->blocks}});
    refreshLoss();
}

void RunsView::refreshLoss()
{
    const auto run = m_runs->run(m_selected);
    if (!run || run->losses.empty()) {
        m_loss->clear();
        m_loss->hide();
        return;
    }
    m_loss->show();
    m_loss->setEvents(run->losses);
}

void RunsView::refreshCombos()
{
    const int a = m_runA->currentData().toInt(), b = m_runB->currentData().toInt();
    const QSignalBlocker ba(m_runA), bb(m_runB);
    m_runA->clear();
    m_runB->clear();
    for (const auto &run : m_runs->runs()) {
        if (run->state != RunsModel::State::Done)
            continue;
        m_runA->addItem(run->name, run->id);
        m_runB->addItem(run->name, run->id);
    }
    m_runA->setCurrentIndex(std::max(0, m_runA->findData(a)));
    const int bi = m_runB->findData(b);
    m_runB->setCurrentIndex(bi >= 0 ? bi : m_runB->count() - 1);
}

void RunsView::refreshCompare()
{
    const auto a = m_runs->run(m_runA->currentData().toInt());
    const auto b = m_runs->run(m_runB->currentData().toInt());
    std::vector<LayerErrorPlot::Series> series;
    for (const auto &run : {a, b})
        if (run)
            series.push_back({run->name, run->layers, run->blocks});
    if (a && b && a == b)
        series.pop_back();
    if (series.empty())
        m_compare->clear();
    else
        m_compare->setSeries(layerOrder(), series);
}

void RunsView::refreshPareto()
{
    const bool kld = m_lossKind->currentIndex() == 1;
    std::vector<ParetoPlot::Point> points;
    double baseline = NAN;
    for (const auto &run : m_runs->runs()) {
        if (!run->result || !run->result->evaluation)
            continue;
        const core::RunEvaluation &e = *run->result->evaluation;
        if (kld && !e.hasKld)
            continue;
        points.push_back({run->name, run->result->bitsPerWeight, kld ? e.kldMean : e.perplexity});
        baseline = kld ? 0.0 : e.originalPerplexity;
    }
    m_pareto->setPoints(points, kld ? tr("mean KL divergence vs original") : tr("perplexity (dashed: original)"), baseline);
}

} // namespace qs::ui
