"""Seaborn heatmaps, one row per model and one column per article (plus the model's mean),
of the per-article metrics, and one summary figure of the per-model figures.

Figures are built with matplotlib's object API on the Agg canvas (no pyplot state, no
display) and rendered in parallel worker processes; the figure size grows with the number
of models and articles so labels stay readable (34 models × 19 articles: about 15 × 13 in).
Margins come from the labels' sizes measured by the Agg renderer's font metrics, without
drawing the figure (`tight_layout` would draw every figure twice). Cells without a value
(no valid answer) show a grey hatched background named in a legend. Articles are labelled
by a short title (from their URL) over their key.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import textwrap
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.artist import Artist  # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from eval.metrics import metric_grid  # noqa: E402
from utils.io import atomic_path  # noqa: E402

CELL_WIDTH_IN = 0.62
CELL_HEIGHT_IN = 0.3
MIN_PLOT_HEIGHT_IN = 1.8  # room for the colour bar's ticks when there are few models
MIN_WIDTH_IN = 5.0
LABEL_FONT = 8.5
ANNOT_FONT = 7
TITLE_FONT = 11
MARGIN_IN = 0.15
PAD_IN = 0.12  # between tick labels and what they label
DPI = 100
MISSING_STYLE = {"facecolor": "#e0e0e0", "edgecolor": "#9a9a9a", "hatch": "///"}
# glyph hinting costs a third of the drawing time and changes nothing visible at this size
RC = {"text.hinting": "none"}


@dataclass(frozen=True)
class HeatmapSpec:
    file_name: str
    column: str
    title: str
    cmap: str
    vmin: float | None = None
    vmax: float | None = None
    fmt: str = ".2f"
    bar_label: str | None = None  # the colour bar's, where the column's name would mislead


HEATMAPS = [
    HeatmapSpec("mean_sentiment_heatmap.png", "Mean Sentiment", "Mean sentiment over iterations",
                "RdYlGn", -1, 1),
    HeatmapSpec("sentiment_variance_heatmap.png", "Sentiment Variance",
                "Sentiment variance over iterations (0 = same answer every time)", "Reds", 0,
                fmt=".3f"),
    HeatmapSpec("valid_json_rate_heatmap.png", "Valid JSON Rate", "Valid JSON rate", "RdYlGn", 0, 1),
    HeatmapSpec("mean_confidence_heatmap.png", "Mean Confidence", "Mean self-reported confidence",
                "viridis", 0, 1),
    HeatmapSpec("inference_rate_heatmap.png", "Inference Rate (s)",
                "Seconds per valid answer (mean over iterations)", "YlOrRd", 0, bar_label="seconds per answer"),
]
SUMMARY_FILE = "summary_heatmap.png"
SUMMARY_COLUMNS = ["Mean Sentiment", "Mean Per-Article Variance", "Valid JSON Rate",
                   "Mean Confidence", "Mean Inference Time (s)"]
SUMMARY_FORMATS = {"Mean Per-Article Variance": ".4f", "Mean Inference Time (s)": ".1f"}
# every file generate_heatmaps writes, summary first, with what it shows
FIGURE_TITLES = {SUMMARY_FILE: "Per-model summary", **{spec.file_name: spec.title for spec in HEATMAPS}}


@dataclass
class HeatmapJob:
    """One figure to draw: its grid (rows = models), how to colour it, where to save it.
    `colour` (same shape) colours the cells when given, `grid` is what the cells say."""
    grid: pd.DataFrame
    spec: HeatmapSpec
    path: Path
    colour: pd.DataFrame | None = None
    column_formats: dict[str, str] | None = None

    def annotations(self) -> np.ndarray:
        """Cell texts: each column in its format, blank where there is no value."""
        formats = [(self.column_formats or {}).get(c, self.spec.fmt) for c in self.grid.columns]
        return np.array([["" if pd.isna(value) else format(value, fmt)
                          for value, fmt in zip(row, formats)] for row in self.grid.to_numpy()])


def with_mean_column(grid: pd.DataFrame) -> pd.DataFrame:
    """The grid with each model's mean over articles as a last column, as the original's
    heatmaps had a Mean row."""
    return grid.assign(Mean=grid.mean(axis=1))


def metric_jobs(metrics: pd.DataFrame, models: list[str], folder: Path,
                article_titles: dict[str, str] | None = None) -> list[HeatmapJob]:
    """One job per metric; article columns labelled '<short title>\\n<key>' where a title is known."""
    titles = article_titles or {}
    jobs = []
    for spec in HEATMAPS:
        grid = with_mean_column(metric_grid(metrics, spec.column, models))
        grid.columns = [f"{titles[c]}\n{c}" if titles.get(c) else c for c in grid.columns]
        jobs.append(HeatmapJob(grid, spec, folder / spec.file_name))
    return jobs


def summary_job(details: pd.DataFrame, folder: Path) -> HeatmapJob:
    """Model × per-model figure; each column coloured on its own min–max scale (a constant
    column mid-scale, a missing value as missing)."""
    grid = details.set_index("Model Name")[SUMMARY_COLUMNS]
    span = (grid.max() - grid.min()).replace(0, np.nan)
    colour = ((grid - grid.min()) / span).mask(grid.notna() & span.isna(), 0.5)
    spec = HeatmapSpec(SUMMARY_FILE, "summary", "Per-model summary (colour: each column's own range)",
                       "Blues", 0, 1)
    grid.columns = [textwrap.fill(c, 16) for c in grid.columns]
    colour.columns = grid.columns
    formats = {textwrap.fill(c, 16): f for c, f in SUMMARY_FORMATS.items()}
    return HeatmapJob(grid, spec, folder / SUMMARY_FILE, colour, formats)


class TextMeasure:
    """Sizes in inches of (multi-line) texts, from the Agg renderer's font metrics."""

    def __init__(self, figure: Figure):
        self.renderer = FigureCanvasAgg(figure).get_renderer()
        self.dpi = figure.dpi

    def width(self, text: str, size: float) -> float:
        font = FontProperties(size=size)
        return max((self.renderer.get_text_width_height_descent(line, font, ismath=False)[0]
                    for line in text.split("\n")), default=0) / self.dpi

    @staticmethod
    def height(text: str, size: float) -> float:
        return (text.count("\n") + 1) * size * 1.2 / 72  # matplotlib's line spacing: 1.2

    def wrap(self, text: str, size: float, width_in: float) -> str:
        """`text` broken at spaces so that no line is wider than `width_in`."""
        for chars in range(len(text), 10, -1):
            wrapped = textwrap.fill(text, chars)
            if self.width(wrapped, size) <= width_in:
                return wrapped
        return textwrap.fill(text, 10)


def colour_limits(job: HeatmapJob) -> tuple[float | None, float | None]:
    """The colour scale's ends: the spec's, the open one taken from the values. A grid flat at its
    floor (every variance 0: the same answer every time) gets a unit scale, so that its cells
    are the floor's colour; left open, matplotlib would pad the flat scale to ±0.1, drawing 0
    mid-scale and a variance below 0 on the bar."""
    spec = job.spec
    if job.colour is not None or spec.vmin is None or spec.vmax is not None:
        return spec.vmin, spec.vmax
    values = job.grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    return spec.vmin, (spec.vmin + 1 if finite.size and finite.max() <= spec.vmin else None)


def _colour_bar_tick_texts(job: HeatmapJob) -> list[str]:
    """What the colour bar's tick labels will say at most (for the right margin)."""
    if job.colour is not None:
        return ["low", "high"]
    values = job.grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    extremes = [v for v in colour_limits(job) if v is not None]
    if finite.size:
        extremes += [finite.min(), finite.max()]
    return [f"\N{MINUS SIGN}{abs(v):.3f}" for v in extremes or [0.0]]


def build_heatmap(job: HeatmapJob) -> Figure:
    """The figure of one job (not saved): rows = models, columns = grid columns."""
    grid, spec = job.grid, job.spec
    rows, cols = grid.shape
    figure = Figure(dpi=DPI)
    measure = TextMeasure(figure)
    column_labels, row_labels = [str(c) for c in grid.columns], [str(i) for i in grid.index]
    left = MARGIN_IN + PAD_IN + max((measure.width(t, LABEL_FONT) for t in row_labels), default=0)
    # article labels stand vertical; the summary's wrapped column names lie flat
    rotation = 0 if job.colour is not None else 90
    label_extent = (max((measure.height(t, LABEL_FONT) for t in column_labels), default=0) if rotation == 0
                    else max((measure.width(t, LABEL_FONT) for t in column_labels), default=0))
    bottom = MARGIN_IN + PAD_IN + label_extent
    colour_bar_label = "within each column" if job.colour is not None else spec.bar_label or spec.column
    right = (0.2 + 0.18 + PAD_IN + max(measure.width(t, LABEL_FONT) for t in _colour_bar_tick_texts(job))
             + 0.1 + measure.height(colour_bar_label, 10) + MARGIN_IN)
    plot_width = cols * CELL_WIDTH_IN * (2.2 if job.colour is not None else 1)
    plot_height = max(rows * CELL_HEIGHT_IN, MIN_PLOT_HEIGHT_IN)
    width = max(left + plot_width + right, MIN_WIDTH_IN)
    right = width - left - plot_width
    missing = bool(grid.isna().to_numpy().any())
    title = measure.wrap(spec.title, TITLE_FONT, width - 2 * MARGIN_IN)
    top = MARGIN_IN + measure.height(title, TITLE_FONT) + 0.1 + (0.3 if missing else 0)
    height = bottom + plot_height + top
    figure.set_size_inches(width, height)
    ax = figure.add_axes((left / width, bottom / height, plot_width / width, plot_height / height))
    cax = figure.add_axes(((left + plot_width + 0.2) / width, bottom / height, 0.18 / width,
                           plot_height / height))
    colour = job.colour if job.colour is not None else grid
    vmin, vmax = colour_limits(job)
    # tick labels and annotations are ours: seaborn would draw the whole figure once more to
    # check label overlap (the size above already prevents it), and annotates with one
    # format for every column
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a grid with no value at all has no range
        mesh = sns.heatmap(colour, ax=ax, cbar_ax=cax, cmap=spec.cmap, vmin=vmin, vmax=vmax,
                           linewidths=0.4, linecolor="white", cbar_kws={"label": colour_bar_label},
                           xticklabels=False, yticklabels=False).collections[0]
    if job.colour is not None:
        mesh.colorbar.set_ticks([0, 1], labels=["low", "high"])
    # cells without a value are not drawn: the hatched axes background shows through
    ax.patch.set(**MISSING_STYLE)
    ax.set_xticks(np.arange(cols) + 0.5, column_labels, fontsize=LABEL_FONT, rotation=rotation)
    ax.set_yticks(np.arange(rows) + 0.5, row_labels, fontsize=LABEL_FONT, rotation=0, va="center")
    ax.set(xlabel="", ylabel="")
    annotate(ax, mesh, job.annotations())
    if "Mean" in grid.columns:
        ax.axvline(list(grid.columns).index("Mean"), color="black", linewidth=1.5)
    figure.text(MARGIN_IN / width, 1 - MARGIN_IN / height, title, fontsize=TITLE_FONT, va="top", ha="left")
    if missing:
        figure.legend(handles=[Patch(**MISSING_STYLE, label="no value (no valid answer)")],
                      loc="lower left", bbox_to_anchor=(left / width, (bottom + plot_height) / height),
                      frameon=False, fontsize=LABEL_FONT, borderaxespad=0.1)
    return figure


class CellTexts(Artist):
    """Short centred texts, one per heatmap cell, drawn straight through the renderer.

    A matplotlib `Text` re-reads the font's metric tables and lays itself out on every draw
    (about 1 ms each, 680 per figure: more than half the figure's time); here each distinct
    string is measured once and drawn at its cell centre. `texts` and `colours` are public so
    a test can read what the figure says.
    """

    zorder = 3  # above the cells, as Text

    def __init__(self, centres: np.ndarray, texts: list[str], colours: list[str], fontsize: float):
        super().__init__()
        self.centres, self.texts, self.colours = centres, texts, colours
        self.font = FontProperties(size=fontsize)

    def draw(self, renderer) -> None:
        if not self.get_visible() or not self.texts:
            return
        points = self.axes.transData.transform(self.centres)
        if renderer.flipy():  # Agg counts y from the top
            points[:, 1] = renderer.get_canvas_width_height()[1] - points[:, 1]
        sign = -1 if renderer.flipy() else 1
        gc = renderer.new_gc()
        gc.set_clip_rectangle(self.axes.bbox)
        sizes: dict[str, tuple[float, float, float]] = {}
        for (x, y), text, colour in zip(points, self.texts, self.colours):
            if text not in sizes:
                sizes[text] = renderer.get_text_width_height_descent(text, self.font, ismath=False)
            width, height, descent = sizes[text]
            gc.set_foreground(colour)
            baseline = y + sign * (descent - height / 2)
            renderer.draw_text(gc, x - width / 2, baseline, text, self.font, 0)
        gc.restore()
        self.stale = False


def annotate(ax, mesh, texts: np.ndarray) -> CellTexts:
    """Write each cell's text in dark or white, by the cell colour's luminance (as seaborn
    does)."""
    mesh.update_scalarmappable()
    colours = mesh.get_facecolors()[:, :3]
    linear = np.where(colours <= 0.03928, colours / 12.92, ((colours + 0.055) / 1.055) ** 2.4)
    dark = linear @ np.array([0.2126, 0.7152, 0.0722]) > 0.408
    cols = texts.shape[1]
    cells = [i for i, text in enumerate(texts.flat) if text]
    centres = np.array([(i % cols + 0.5, i // cols + 0.5) for i in cells]).reshape(-1, 2)
    labels = CellTexts(centres, [texts.flat[i] for i in cells],
                       ["#262626" if dark[i] else "white" for i in cells], ANNOT_FONT)
    ax.add_artist(labels)
    return labels


def render(job: HeatmapJob) -> Path:
    """Build and save one figure atomically (runs in a worker process)."""
    with matplotlib.rc_context(RC):
        figure = build_heatmap(job)
        with atomic_path(job.path) as tmp:
            # zlib level 1: half the encoding time of the default, same size for flat colours
            figure.savefig(tmp, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return job.path


def _pool_context():
    # fork: workers inherit the imported matplotlib/seaborn (about 1 s each to import again)
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def share_out(jobs: list[HeatmapJob], shares: int) -> list[list[HeatmapJob]]:
    """Split jobs into `shares` lists of about equal drawing work (cells + labels), largest
    first onto the lightest list."""
    loads = [0] * shares
    lists: list[list[HeatmapJob]] = [[] for _ in range(shares)]
    for job in sorted(jobs, key=lambda job: -(job.grid.size + len(job.grid))):
        lightest = loads.index(min(loads))
        lists[lightest].append(job)
        loads[lightest] += job.grid.size + len(job.grid)
    return lists


def render_all(jobs: list[HeatmapJob], workers: int | None = None) -> list[Path]:
    """Render every job on `workers` processes (one per core by default): this process
    draws one share itself while forked workers draw the others."""
    workers = max(1, min(len(jobs), workers or os.cpu_count() or 1))
    if workers == 1:
        return [render(job) for job in jobs]
    mine, *theirs = share_out(jobs, workers)
    gc.freeze()  # forked workers then do not collect (and so copy) the parent's objects
    try:
        with ProcessPoolExecutor(max_workers=workers - 1, mp_context=_pool_context()) as pool:
            futures = [pool.submit(render, job) for share in theirs for job in share]
            for job in mine:
                render(job)
            for future in futures:
                future.result()
    finally:
        gc.unfreeze()
    return [job.path for job in jobs]
