#include "ModelDock.h"

#include <QFileInfo>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMenu>
#include <QSortFilterProxyModel>
#include <QTreeView>
#include <QVBoxLayout>

#include "ModelSession.h"
#include "ModelTreeModel.h"
#include "model/Model.h"

namespace qs::ui {

ModelDock::ModelDock(ModelSession *session, QWidget *parent)
    : QDockWidget(tr("Model"), parent), m_session(session), m_model(new ModelTreeModel(session, this)),
      m_proxy(new QSortFilterProxyModel(this)), m_view(new QTreeView(this)), m_header(new QLabel(this)),
      m_filter(new QLineEdit(this))
{
    setObjectName(QStringLiteral("ModelDock"));
    auto *content = new QWidget(this);
    auto *layout = new QVBoxLayout(content);
    layout->setContentsMargins(2, 2, 2, 2);
    m_header->setWordWrap(true);
    m_header->setTextFormat(Qt::RichText);
    layout->addWidget(m_header);
    m_filter->setPlaceholderText(tr("Filter layers (e.g. down_proj)"));
    m_filter->setClearButtonEnabled(true);
    m_filter->setObjectName(QStringLiteral("layerFilter"));
    layout->addWidget(m_filter);

    m_proxy->setSourceModel(m_model);
    m_proxy->setSortRole(ModelTreeModel::SortRole);
    m_proxy->setRecursiveFilteringEnabled(true);
    m_proxy->setFilterCaseSensitivity(Qt::CaseInsensitive);
    m_view->setObjectName(QStringLiteral("modelTree"));
    m_view->setModel(m_proxy);
    m_view->setSortingEnabled(true);
    m_view->sortByColumn(ModelTreeModel::NameColumn, Qt::AscendingOrder);
    m_view->setUniformRowHeights(true);
    m_view->setAlternatingRowColors(true);
    // Columns fit their contents once the model and again when statistics arrive, and stay resizable by
    // hand. (ResizeToContents re-measured every row of every column on each change: ~0.5 s of frozen
    // window on a 200-layer model; the precision caps the rows measured.)
    m_view->header()->setSectionResizeMode(QHeaderView::Interactive);
    m_view->header()->setResizeContentsPrecision(64);
    layout->addWidget(m_view, 1);
    setWidget(content);

    connect(m_filter, &QLineEdit::textChanged, m_proxy, &QSortFilterProxyModel::setFilterFixedString);
    m_view->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(m_view, &QWidget::customContextMenuRequested, this, [this](const QPoint &pos) {
        const QModelIndex index = m_view->indexAt(pos);
        const int tensor = index.isValid() ? index.data(ModelTreeModel::TensorIndexRole).toInt() : -1;
        const auto model = m_session->model();
        if (!model || tensor < 0 || size_t(tensor) >= model->tensors.size())
            return;
        const core::TensorRole role = model->tensors[size_t(tensor)].role;
        QMenu menu(this);
        QAction *compare = menu.addAction(tr("Compare methods\u2026"));
        compare->setEnabled(core::isLinearRole(role) && role != core::TensorRole::LmHead);
        compare->setToolTip(tr("Quantize this layer with several methods side by side"));
        if (menu.exec(m_view->viewport()->mapToGlobal(pos)) == compare)
            Q_EMIT compareMethodsRequested(tensor);
    });
    connect(m_view->selectionModel(), &QItemSelectionModel::currentChanged, this, [this](const QModelIndex &current) {
        const int tensor = current.data(ModelTreeModel::TensorIndexRole).toInt();
        if (current.isValid() && tensor >= 0)
            Q_EMIT tensorSelected(tensor);
    });
    // Fit once per model: on open, and when its first statistics fill the numeric columns; widths the
    // user sets afterwards are kept when statistics are recomputed (another outlier k).
    connect(session, &ModelSession::modelOpened, this, [this] {
        updateHeader();
        m_view->expandToDepth(0);
        fitColumns();
        m_fittedWithStats = false;
    });
    connect(session, &ModelSession::statsChanged, this, [this] {
        if (m_fittedWithStats || !m_session->stats())
            return;
        fitColumns();
        m_fittedWithStats = true;
    });
    updateHeader();
}

void ModelDock::selectTensor(int tensorIndex)
{
    const QModelIndex source = m_model->indexOfTensor(tensorIndex);
    const QModelIndex index = m_proxy->mapFromSource(source);
    if (index.isValid()) {
        m_view->scrollTo(index);
        m_view->setCurrentIndex(index);
    }
}

void ModelDock::fitColumns()
{
    for (int c = 0; c < m_model->columnCount(); ++c)
        m_view->resizeColumnToContents(c);
}

void ModelDock::updateHeader()
{
    const auto model = m_session->model();
    if (!model) {
        m_header->setText(tr("<i>No model open. File \u203a Open model\u2026 (Ctrl+O), or drop a folder or file on the window.</i>"));
        return;
    }
    const core::HyperParams &h = model->hparams;
    QString text = tr("<b>%1</b> (%2)<br>%3: hidden %4, %5 layers, %6 heads (%7 kv), vocab %8<br>%L9 parameters")
                       .arg(QFileInfo(m_session->modelPath()).fileName().toHtmlEscaped(),
                            QString::fromStdString(model->format), QString::fromStdString(h.architecture))
                       .arg(h.hiddenSize)
                       .arg(h.numLayers)
                       .arg(h.numHeads)
                       .arg(h.numKvHeads)
                       .arg(h.vocabSize)
                       .arg(qlonglong(model->parameterCount()));
    if (h.synthetic)
        text += tr("<br><span style='background:#fff0c0;color:#8a5a00'>&nbsp;SYNTHETIC demo model: random weights with planted outliers&nbsp;</span>");
    m_header->setText(text);
}

} // namespace qs::ui
