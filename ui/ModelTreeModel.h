#pragma once
// The model tree: top-level tensors (embedding, final norm, lm_head) and one node per transformer block
// holding its layers. Columns show shape, dtype, parameters and the weight statistics once computed.
// Raw numbers are available through SortRole for sorting; DisplayRole is formatted text.

#include <QAbstractItemModel>

#include <memory>
#include <vector>

namespace qs::ui {

class ModelSession;

class ModelTreeModel : public QAbstractItemModel
{
    Q_OBJECT
public:
    enum Column { NameColumn, ShapeColumn, DTypeColumn, ParamsColumn, StdColumn, KurtosisColumn, OutliersColumn, ColumnCount };
    enum Role { SortRole = Qt::UserRole + 1, TensorIndexRole, BlockRole };

    explicit ModelTreeModel(ModelSession *session, QObject *parent = nullptr);

    QModelIndex index(int row, int column, const QModelIndex &parent = {}) const override;
    QModelIndex parent(const QModelIndex &child) const override;
    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

    QModelIndex indexOfTensor(int tensorIndex) const;

private:
    struct Node
    {
        int parent = -1;      // node id of the block, -1 at top level
        int tensorIndex = -1; // -1 for a block node
        int block = -1;
        int row = 0;
        std::vector<int> children;
    };
    void rebuild();
    QVariant tensorData(const Node &node, int column, int role) const;
    QVariant blockData(const Node &node, int column, int role) const;

    ModelSession *m_session;
    std::vector<Node> m_nodes;
    std::vector<int> m_top;
};

} // namespace qs::ui
