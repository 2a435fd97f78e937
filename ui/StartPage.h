#pragma once
// What the centre shows before a model is open: what to do next, with buttons.

#include <QWidget>

namespace qs::ui {

class StartPage : public QWidget
{
    Q_OBJECT
public:
    explicit StartPage(QWidget *parent = nullptr);

Q_SIGNALS:
    void openRequested();
    void demoRequested();
};

} // namespace qs::ui
