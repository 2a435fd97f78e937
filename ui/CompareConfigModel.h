#pragma once
// The configurations the "Compare methods" view tries on one layer: one row per MethodConfig with its
// method, bits, group size and symmetry, edited with the choices the core method registry allows (methods
// that can run per layer, the method's supported bits, the group sizes its validation accepts). These are
// scratch settings of the view, not plan edits, so they are not undo steps; "Use for this layer in the
// plan" is (PlanModel).

#include <QAbstractTableModel>

#include <vector>

#include "quant/MethodRegistry.h"

namespace qs::ui {

class CompareConfigModel : public QAbstractTableModel
{
    Q_OBJECT
public:
    enum Column { MethodColumn, BitsColumn, GroupColumn, SymmetricColumn, DetailsColumn, ColumnCount };
    enum Role { ChoicesRole = Qt::UserRole + 1, ChoiceLabelsRole };

    explicit CompareConfigModel(QObject *parent = nullptr);

    // RTN 4-bit g128, GPTQ 4-bit g128, AWQ 4-bit g128, RTN 8-bit per channel.
    static std::vector<core::MethodConfig> defaultConfigs();

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role) const override;
    Qt::ItemFlags flags(const QModelIndex &index) const override;
    // Method changes keep bits, group size and symmetry where the new method accepts them. Returns false
    // (and changes nothing) for a value the method does not accept; the reason is in lastError().
    bool setData(const QModelIndex &index, const QVariant &value, int role = Qt::EditRole) override;
    bool removeRows(int row, int count, const QModelIndex &parent = {}) override;

    void addConfig(const core::MethodConfig &config);
    void setConfigs(const std::vector<core::MethodConfig> &configs);
    const std::vector<core::MethodConfig> &configs() const { return m_configs; }
    QString lastError() const { return m_lastError; }

Q_SIGNALS:
    void configsChanged();

private:
    std::vector<core::MethodConfig> m_configs;
    QString m_lastError;
};

} // namespace qs::ui
