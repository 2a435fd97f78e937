#pragma once
// The results of a layer comparison as a table: one row per configuration with its relative output
// error, weight MSE, SQNR, GPTQ loss, bits per weight and time; the row with the smallest relative output
// error is marked best (bold, tinted). Raw numbers through SortRole; a colour swatch per row matches the
// plots (compareSeriesColor).

#include <QAbstractTableModel>
#include <QColor>

#include <memory>

#include "quant/LayerCompare.h"

namespace qs::ui {

// Distinct colours for the configurations of one comparison (table swatches, histogram lines, bars).
QColor compareSeriesColor(int index);

class CompareResultsModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column {
        ConfigColumn,
        RelErrorColumn,
        WeightMseColumn,
        SqnrColumn,
        GptqLossColumn,
        BpwColumn,
        SecondsColumn,
        NoteColumn,
        ColumnCount
    };
    enum Role { SortRole = Qt::UserRole + 1, BestRole };

    explicit CompareResultsModel(QObject *parent = nullptr);

    void setComparison(std::shared_ptr<const core::LayerComparison> comparison);
    std::shared_ptr<const core::LayerComparison> comparison() const { return m_comparison; }
    int bestRow() const;

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;

private:
    std::shared_ptr<const core::LayerComparison> m_comparison;
    int m_best = -1;
};

} // namespace qs::ui
