#include "ModelTreeModel.h"

#include <QBrush>
#include <QFont>

#include <cmath>

#include "ModelSession.h"
#include "model/Model.h"
#include "stats/WeightStats.h"

namespace qs::ui {

ModelTreeModel::ModelTreeModel(ModelSession *session, QObject *parent) : QAbstractItemModel(parent), m_session(session)
{
    connect(session, &ModelSession::modelOpened, this, [this] { rebuild(); });
    connect(session, &ModelSession::statsChanged, this, [this] {
        if (m_nodes.empty())
            return;
        // Statistics columns of every row change; block rows aggregate their children.
        for (int top = 0; top < int(m_top.size()); ++top) {
            const Node &n = m_nodes[size_t(m_top[size_t(top)])];
            if (!n.children.empty())
                Q_EMIT dataChanged(index(0, StdColumn, index(top, 0)),
                                   index(int(n.children.size()) - 1, OutliersColumn, index(top, 0)));
        }
        Q_EMIT dataChanged(index(0, StdColumn), index(int(m_top.size()) - 1, OutliersColumn));
    });
    rebuild();
}

void ModelTreeModel::rebuild()
{
    beginResetModel();
    m_nodes.clear();
    m_top.clear();
    if (const auto model = m_session->model()) {
        std::vector<int> blockNode;
        for (size_t i = 0; i < model->tensors.size(); ++i) {
            const core::Tensor &t = model->tensors[i];
            Node leaf;
            leaf.tensorIndex = int(i);
            leaf.block = t.block;
            if (t.block >= 0) {
                if (size_t(t.block) >= blockNode.size())
                    blockNode.resize(size_t(t.block) + 1, -1);
                if (blockNode[size_t(t.block)] < 0) {
                    Node b;
                    b.block = t.block;
                    b.row = int(m_top.size());
                    blockNode[size_t(t.block)] = int(m_nodes.size());
                    m_top.push_back(int(m_nodes.size()));
                    m_nodes.push_back(b);
                }
                const int parentId = blockNode[size_t(t.block)];
                leaf.parent = parentId;
                leaf.row = int(m_nodes[size_t(parentId)].children.size());
                m_nodes[size_t(parentId)].children.push_back(int(m_nodes.size()));
                m_nodes.push_back(leaf);
            } else {
                leaf.row = int(m_top.size());
                m_top.push_back(int(m_nodes.size()));
                m_nodes.push_back(leaf);
            }
        }
    }
    endResetModel();
}

QModelIndex ModelTreeModel::index(int row, int column, const QModelIndex &parent) const
{
    if (row < 0 || column < 0 || column >= ColumnCount)
        return {};
    if (!parent.isValid()) {
        if (row >= int(m_top.size()))
            return {};
        return createIndex(row, column, quintptr(m_top[size_t(row)]));
    }
    if (parent.column() != 0)
        return {};
    const Node &p = m_nodes[size_t(parent.internalId())];
    if (row >= int(p.children.size()))
        return {};
    return createIndex(row, column, quintptr(p.children[size_t(row)]));
}

QModelIndex ModelTreeModel::parent(const QModelIndex &child) const
{
    if (!child.isValid())
        return {};
    const Node &n = m_nodes[size_t(child.internalId())];
    if (n.parent < 0)
        return {};
    return createIndex(m_nodes[size_t(n.parent)].row, 0, quintptr(n.parent));
}

int ModelTreeModel::rowCount(const QModelIndex &parent) const
{
    if (!parent.isValid())
        return int(m_top.size());
    if (parent.column() != 0)
        return 0;
    return int(m_nodes[size_t(parent.internalId())].children.size());
}

int ModelTreeModel::columnCount(const QModelIndex &) const { return ColumnCount; }

QModelIndex ModelTreeModel::indexOfTensor(int tensorIndex) const
{
    for (size_t id = 0; id < m_nodes.size(); ++id) {
        const Node &n = m_nodes[id];
        if (n.tensorIndex == tensorIndex)
            return createIndex(n.row, 0, quintptr(id));
    }
    return {};
}

QVariant ModelTreeModel::data(const QModelIndex &index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid))
        return {};
    const Node &n = m_nodes[size_t(index.internalId())];
    if (role == TensorIndexRole)
        return n.tensorIndex;
    if (role == BlockRole)
        return n.block;
    return n.tensorIndex >= 0 ? tensorData(n, index.column(), role) : blockData(n, index.column(), role);
}

static QString shortName(const std::string &name)
{
    // "model.layers.3.self_attn.q_proj" -> "self_attn.q_proj"
    const QString s = QString::fromStdString(name);
    if (s.startsWith(QLatin1String("model.layers."))) {
        const int dot = s.indexOf(QLatin1Char('.'), 13);
        if (dot > 0)
            return s.mid(dot + 1);
    }
    return s;
}

QVariant ModelTreeModel::tensorData(const Node &n, int column, int role) const
{
    const auto model = m_session->model();
    if (!model)
        return {};
    const core::Tensor &t = model->tensors[size_t(n.tensorIndex)];
    const core::WeightStats *s = m_session->statsFor(n.tensorIndex);
    if (role == Qt::ToolTipRole && column == NameColumn)
        return QStringLiteral("%1\nstored as %2%3")
            .arg(QString::fromStdString(t.name), QString::fromStdString(t.sourceName),
                 t.tied ? tr("\ntied to the embedding") : QString());
    if (role == Qt::TextAlignmentRole && column >= ParamsColumn)
        return QVariant(Qt::AlignRight | Qt::AlignVCenter);
    if (role == Qt::ForegroundRole && column == OutliersColumn && s && s->outlierFraction > 1e-3)
        return QBrush(QColor(0xc0, 0x30, 0x30));
    if (role == SortRole) {
        switch (column) {
        case NameColumn: return n.tensorIndex;
        case ShapeColumn: return qlonglong(t.rows);
        case DTypeColumn: return QString::fromLatin1(core::dtypeName(t.dtype));
        case ParamsColumn: return qlonglong(t.numel());
        case StdColumn: return s ? s->stddev : -1.0;
        case KurtosisColumn: return s ? s->kurtosis : -1e300;
        case OutliersColumn: return s ? s->outlierFraction : -1.0;
        default: return {};
        }
    }
    if (role != Qt::DisplayRole)
        return {};
    switch (column) {
    case NameColumn: return shortName(t.name) + (t.tied ? tr(" (tied)") : QString());
    case ShapeColumn: return QStringLiteral("%1 \u00d7 %2").arg(t.rows).arg(t.cols);
    case DTypeColumn: return QString::fromLatin1(core::dtypeName(t.dtype));
    case ParamsColumn: return QStringLiteral("%L1").arg(qlonglong(t.numel()));
    case StdColumn: return s ? QString::number(s->stddev, 'g', 4) : QString();
    case KurtosisColumn: return s ? QString::number(s->kurtosis, 'f', 2) : QString();
    case OutliersColumn: return s ? QString::number(s->outlierFraction * 1000.0, 'f', 3) : QString();
    default: return {};
    }
}

QVariant ModelTreeModel::blockData(const Node &n, int column, int role) const
{
    const auto model = m_session->model();
    if (!model)
        return {};
    qlonglong params = 0;
    double maxKurtosis = -1e300;
    double outliers = 0, count = 0;
    bool haveStats = true;
    for (int child : n.children) {
        const int ti = m_nodes[size_t(child)].tensorIndex;
        params += model->tensors[size_t(ti)].numel();
        if (const core::WeightStats *s = m_session->statsFor(ti)) {
            maxKurtosis = std::max(maxKurtosis, s->kurtosis);
            outliers += double(s->outlierCount);
            count += double(s->count);
        } else {
            haveStats = false;
        }
    }
    if (role == Qt::FontRole && column == NameColumn) {
        QFont f;
        f.setBold(true);
        return f;
    }
    if (role == Qt::TextAlignmentRole && column >= ParamsColumn)
        return QVariant(Qt::AlignRight | Qt::AlignVCenter);
    if (role == SortRole) {
        switch (column) {
        case NameColumn: return -1000000 + n.block; // blocks keep their order, before or after tensors
        case ParamsColumn: return params;
        case KurtosisColumn: return haveStats ? maxKurtosis : -1e300;
        case OutliersColumn: return haveStats && count > 0 ? outliers / count : -1.0;
        default: return -1.0;
        }
    }
    if (role == Qt::ToolTipRole && column == KurtosisColumn)
        return tr("largest kurtosis among the block's layers");
    if (role != Qt::DisplayRole)
        return {};
    switch (column) {
    case NameColumn: return tr("Block %1").arg(n.block);
    case ParamsColumn: return QStringLiteral("%L1").arg(params);
    case KurtosisColumn: return haveStats ? QStringLiteral("max %1").arg(maxKurtosis, 0, 'f', 2) : QString();
    case OutliersColumn:
        return haveStats && count > 0 ? QString::number(outliers / count * 1000.0, 'f', 3) : QString();
    default: return {};
    }
}

QVariant ModelTreeModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal)
        return {};
    if (role == Qt::ToolTipRole && section == OutliersColumn)
        return tr("Share of weights with |x \u2212 mean| > k\u03c3, per mille");
    if (role != Qt::DisplayRole)
        return {};
    switch (section) {
    case NameColumn: return tr("Layer");
    case ShapeColumn: return tr("Shape");
    case DTypeColumn: return tr("Type");
    case ParamsColumn: return tr("Parameters");
    case StdColumn: return tr("Std");
    case KurtosisColumn: return tr("Kurtosis");
    case OutliersColumn: return tr("Outliers \u2030");
    default: return {};
    }
}

} // namespace qs::ui
