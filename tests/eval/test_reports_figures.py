"""The pictures a person reads: every text inside the canvas and no two overlapping, for 1 to
40 models (measured by matplotlib's own renderer); missing values drawn as missing and named
in a legend; articles labelled by a short title with their key; the confusion matrix's
panels named."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.text import Text

from eval.heatmaps import build_heatmap, metric_jobs, summary_job
from eval.labelled import confusion_figure
from eval.metrics import article_metrics, model_details
from eval.sentiment_files import load_sentiments, short_title
from tests.reports_data import labelled_metrics, write_model

LONG_NAMES = ["mistral-7b-03-sentiment-may-23-2024-2epoch-unsloth.Q4_K_M", "phi3_3.8b-mini-instruct-4k-fp16",
              "llama3_8b-instruct-sentiment_analysis-q5_k_m", "m"]


def sentiments_folder(folder: Path, models: int, articles: int):
    """`models` models × 2 iterations × `articles` articles; the last model never answers
    article 0, and with several models the first never answers at all."""
    rng = np.random.default_rng(models)
    names = [f"{LONG_NAMES[i % len(LONG_NAMES)]}-{i}" for i in range(models)]
    for i, name in enumerate(names):
        table = np.round(rng.uniform(-1, 1, (2, articles)), 2).tolist()
        if i == models - 1:
            for row in table:
                row[0] = None
        if i == 0 and models > 1:
            table = [[None] * articles] * 2
        write_model(folder, name, table)
    return load_sentiments(folder)


def text_boxes(figure):
    """(text, window extent) of every visible, non-empty text the figure draws."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in figure.findobj(Text)
            if t.get_visible() and t.get_text().strip()]


def assert_texts_inside_and_apart(figure, name: str, at_least: int = 1) -> None:
    canvas = figure.bbox
    boxes = text_boxes(figure)
    assert len(boxes) >= at_least
    for text, box in boxes:
        assert (box.x0 >= canvas.x0 - 0.5 and box.y0 >= canvas.y0 - 0.5 and box.x1 <= canvas.x1 + 0.5
                and box.y1 <= canvas.y1 + 0.5), f"{name}: {text!r} outside {canvas}: {box}"
    for i, (text, box) in enumerate(boxes):
        for other, other_box in boxes[i + 1:]:
            assert not box.overlaps(other_box), f"{name}: {text!r} overlaps {other!r}"


@pytest.mark.parametrize("models,articles", [(1, 1), (2, 19), (40, 6)])
def test_texts_inside_the_canvas_and_apart(tmp_path, models, articles):
    data = sentiments_folder(tmp_path, models, articles)
    jobs = metric_jobs(article_metrics(data), data.models, tmp_path, data.article_titles())
    variance = next(job for job in jobs if job.spec.column == "Sentiment Variance")  # the longest title
    for job in (jobs[0], variance, summary_job(model_details(data), tmp_path)):
        # model labels, column labels, title, colour bar
        assert_texts_inside_and_apart(build_heatmap(job), job.spec.file_name, at_least=models + 3)


def test_missing_values_drawn_as_missing_with_a_legend(tmp_path):
    data = sentiments_folder(tmp_path, 3, 4)  # one model without a valid answer, one without on article 0
    (silent,) = data.models_without_valid
    summary = summary_job(model_details(data), tmp_path)
    assert summary.grid.loc[silent].isna().sum() == 4  # every column but its valid-JSON rate of 0
    assert summary.colour.isna().equals(summary.grid.isna())  # no made-up mid-scale colour
    for job in (summary, metric_jobs(article_metrics(data), data.models, tmp_path)[0]):
        figure = build_heatmap(job)
        ax = figure.axes[0]
        undrawn = np.ma.getmaskarray(ax.collections[0].get_array()).reshape(job.grid.shape)
        assert (undrawn == job.grid.isna().to_numpy()).all() and undrawn.any()  # cells left out...
        assert ax.patch.get_hatch() == "///"                    # ...over a hatched background
        (legend,) = figure.legends
        assert [t.get_text() for t in legend.get_texts()] == ["no value (no valid answer)"]
        assert legend.get_patches()[0].get_hatch() == "///"


def test_articles_are_labelled_by_a_short_title_and_their_key(tmp_path):
    assert short_title("https://finance.yahoo.com/news/nvidia-ceo-says-tesla-far-ahead-in-self-driving"
                       "-tech-181126677.html?.tsrc=rss") == "Nvidia ceo says tesla far…"
    assert short_title("https://www.fool.com/investing/2024/05/23/is-uipath-stock-a-buy-now/") == \
        "Is uipath stock a buy now"
    assert short_title("https://example.com/news/MSFT/3") == ""  # no words: the key alone
    write_model(tmp_path, "a", [[0.1, 0.2]])
    data = load_sentiments(tmp_path)
    url = data.answers["url"].iloc[0]
    data.answers["url"] = data.answers["url"].str.replace(url, "https://news.example/markets/rally-lifts-tech-stocks-1234567.html")
    job = metric_jobs(article_metrics(data), data.models, tmp_path, data.article_titles())[0]
    labels = [t.get_text() for t in build_heatmap(job).axes[0].get_xticklabels()]
    key = data.answers["article_key"].iloc[0]
    assert labels[0] == f"Rally lifts tech stocks\n{key}"
    assert labels[1] == data.answers["article_key"].iloc[1] and labels[-1] == "Mean"


def test_a_variance_of_zero_everywhere_is_the_floor_colour_on_a_scale_from_zero(tmp_path):
    write_model(tmp_path, "steady", [[0.5, -0.2, 0.0]] * 2)  # the same answers in both iterations
    data = load_sentiments(tmp_path)
    (job,) = [j for j in metric_jobs(article_metrics(data), data.models, tmp_path)
              if j.spec.column == "Sentiment Variance"]
    assert (job.grid.to_numpy() == 0).all()
    mesh = build_heatmap(job).axes[0].collections[0]
    low, high = mesh.get_clim()
    assert low == 0 < high  # no negative variance on the bar, 0 not mid-scale
    assert np.allclose(mesh.to_rgba(np.ravel(mesh.get_array())), mesh.cmap(0.0))


def test_confusion_matrix_one_panel_at_015_else_the_chosen_one_named():
    _, one = labelled_metrics(0.1)
    assert one["threshold_chosen"] == pytest.approx(0.15)
    figure = confusion_figure(one)
    assert len(figure.axes) == 1
    assert figure.axes[0].get_title().startswith("chosen on validation: t = 0.15")
    _, two = labelled_metrics(0.5)
    assert two["threshold_chosen"] > 0.15
    figure = confusion_figure(two)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles[0].startswith(f"chosen on validation: t = {two['threshold_chosen']:.2f}")
    assert titles[1].startswith("fixed reference: t = 0.15")
    assert_texts_inside_and_apart(figure, "confusion_matrix.png", at_least=2 * (12 + 9) + 1)
