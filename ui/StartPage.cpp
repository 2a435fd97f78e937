#include "StartPage.h"

#include <QLabel>
#include <QPushButton>
#include <QSvgWidget>
#include <QVBoxLayout>

namespace qs::ui {

StartPage::StartPage(QWidget *parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("StartPage"));
    auto *layout = new QVBoxLayout(this);
    layout->addStretch(2);

    auto *icon = new QSvgWidget(QStringLiteral(":/icons/quantscope.svg"), this);
    icon->setFixedSize(96, 96);
    layout->addWidget(icon, 0, Qt::AlignHCenter);

    auto *title = new QLabel(tr("<h2>QuantScope</h2>"), this);
    title->setAlignment(Qt::AlignCenter);
    layout->addWidget(title);

    auto *text = new QLabel(tr("Open a Hugging Face folder (config.json + safetensors), a GGUF file or a llama2.c "
                               "checkpoint to inspect its weights, plan a per-layer quantization, run it, "
                               "evaluate it and export it.<br><br>You can also drop a model folder or file onto "
                               "this window."),
                            this);
    text->setWordWrap(true);
    text->setAlignment(Qt::AlignCenter);
    text->setMinimumWidth(420);
    text->setMaximumWidth(560);
    layout->addWidget(text, 0, Qt::AlignHCenter);

    auto *buttons = new QHBoxLayout;
    buttons->addStretch();
    auto *open = new QPushButton(tr("Open model\u2026"), this);
    open->setObjectName(QStringLiteral("startOpenButton"));
    auto *demo = new QPushButton(tr("Open demo model"), this);
    demo->setObjectName(QStringLiteral("startDemoButton"));
    buttons->addWidget(open);
    buttons->addWidget(demo);
    buttons->addStretch();
    layout->addLayout(buttons);
    layout->addStretch(3);

    connect(open, &QPushButton::clicked, this, &StartPage::openRequested);
    connect(demo, &QPushButton::clicked, this, &StartPage::demoRequested);
}

} // namespace qs::ui
