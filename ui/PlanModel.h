#pragma once
// The per-layer quantization plan as a table: one row per linear layer with whether it is quantized, its
// method and the method's parameters. Every edit goes through the window's QUndoStack as one command,
// including edits of many selected rows at once and bulk rules ("all down_proj -> 4-bit GPTQ g32").
// The parameter vocabulary and ranges come from the core method registry.

#include <QAbstractTableModel>
#include <QList>

#include <memory>
#include <vector>

#include "quant/MethodRegistry.h"

class QUndoStack;

namespace qs::core {
class Model;
}

namespace qs::ui {

class PlanModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column { LayerColumn, QuantizeColumn, MethodColumn, BitsColumn, GroupColumn, SymmetricColumn, DetailsColumn, ColumnCount };
    enum Role { SortRole = Qt::UserRole + 1, TensorIndexRole, ChoicesRole };

    struct Row
    {
        int tensorIndex = -1;
        std::string name;
        bool quantize = true;
        core::MethodConfig config;
        bool operator==(const Row &) const = default;
    };

    PlanModel(QUndoStack *undoStack, QObject *parent = nullptr);

    // Rebuilds the rows for a model: every q/k/v/o/gate/up/down layer with the default config
    // (not an undo step: a new model starts a new plan, and clears the undo stack).
    void setModel(const std::shared_ptr<const core::Model> &model, const core::MethodConfig &defaultConfig);

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
    Qt::ItemFlags flags(const QModelIndex &index) const override;
    bool setData(const QModelIndex &index, const QVariant &value, int role = Qt::EditRole) override;

    // Sets one column's value on several rows as one undo step. Returns false (and changes nothing) when the
    // value is not valid for some row's method; the reason is in lastError().
    bool setDataForRows(const QList<int> &rows, int column, const QVariant &value);
    // Applies a method config to every layer whose canonical name matches the glob (or "re:" regex) as
    // one undo step; returns how many rows changed.
    int applyRule(const QString &pattern, const core::MethodConfig &config, bool quantize = true);
    // Replaces all rows at once (undoable), e.g. from a loaded plan file.
    void setRows(const std::vector<Row> &rows, const QString &undoText);

    const std::vector<Row> &rows() const { return m_rows; }
    QString lastError() const { return m_lastError; }

    // The plan as cli.md's JSON: the most common config as "default", one exact-name rule per layer that
    // differs, and the skipped layers.
    nlohmann::json toPlanJson() const;

    // Applies rows without touching the undo stack (used by the undo commands).
    void applyRows(const std::vector<int> &indices, const std::vector<Row> &rows);

Q_SIGNALS:
    void planChanged();

private:
    bool changedRow(const Row &before, int column, const QVariant &value, Row &after);

    QUndoStack *m_undo;
    std::vector<Row> m_rows;
    QString m_lastError;
};

bool globMatch(const QString &pattern, const QString &name); // '*' any run (dots too), '?' one char; "re:" regex

} // namespace qs::ui
