"""Rendering of `duel report`'s summary: Markdown, HTML, JSON, the PNG, the terminal tables.

Every number comes from the summary (`duel.report.summarize`); nothing here computes a
statistic. `tables` gives (title, header, rows) once, shared by Markdown, HTML and terminal.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

HTML_HEAD = (
    '<!doctype html><html><head><meta charset="utf-8"><title>duel report</title><style>'
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:"
    "collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}"
    "</style></head><body><h1>duel report</h1>"
)


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _f(x: float | None, digits: int = 3) -> str:
    if _nan(x):
        return "–"
    return "∞" if math.isinf(x) else f"{x:.{digits}f}"


def _ci(s: dict, digits: int = 3, signed: bool = False) -> str:
    """mean [lo, hi]; `signed` writes +/- (differences)."""
    if _nan(s["mean"]):
        return "–"
    fmt = (lambda x: f"{x + 0.0:+.{digits}f}".replace("-0.000", "+0.000")) if signed else (
        lambda x: _f(x, digits))
    if _nan(s["lo"]):
        return f"{fmt(s['mean'])} (n={s['n']})"
    return f"{fmt(s['mean'])} [{fmt(s['lo'])}, {fmt(s['hi'])}]"


def _yes(x: bool | None) -> str:
    return "–" if x is None else ("yes" if x else "no")


def _target_cell(e: dict) -> str:
    q = "not reached" if e["mean_curve"] is None else f"{e['mean_curve']:.0f}"
    if e["ratio"] == 0 and e["mean_curve"] is not None:
        q += " (passive: not reached)"
    elif not _nan(e["ratio"]) and e["mean_curve"] is not None:
        q += f" ×{e['ratio']:.2f}"
    if not _nan(e["ratio_lo"]):
        q += f" [{_f(e['ratio_lo'], 2)}, {_f(e['ratio_hi'], 2)}]"
    return q + f" ({e['reached']}/{e['seeds']} seeds)"


def _per_seed_cell(e: dict) -> str:
    return " / ".join("–" if q is None else f"{q:.0f}" for q in e["per_seed"])


def tables(task: str, s: dict, metric: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for one task; shared by the Markdown, HTML and terminal output."""
    strat = s["strategies"]
    dash = lambda v, k: _ci(v["vs_passive"][k], signed=True) if "vs_passive" in v else "–"
    main = [[name, f"{len(v['seeds'])} ({v['complete']} complete)", _ci(v["final"]),
             _ci(v["auc"]), dash(v, "final"), dash(v, "auc"),
             _f(v["oracle_queries"]["mean"], 0), _f(v["synthetic"]["mean"], 0)]
            for name, v in strat.items()]
    head = ["strategy", "seeds", f"final {metric} [95% t]", "AUC / budget [95% t]",
            "Δ final vs passive, same seeds [95% t]", "Δ AUC vs passive, same seeds [95% t]",
            "oracle queries (mean)", "synthetic labels (mean)"]
    labels = [t["label"] for t in s["targets"]]
    tgt = [[name] + [_target_cell(v["targets"][lab]) for lab in labels] for name, v in strat.items()]
    per_seed = [[name, ", ".join(map(str, v["eval_seeds"]))]
                + [_per_seed_cell(v["targets"][lab]) for lab in labels] for name, v in strat.items()]
    acc = []
    for name, v in strat.items():
        a, c = v.get("acceptance"), v["no_collapse"]
        n_drops = len(c["drops"])
        collapse = _yes(c["no_collapse"]) + (f" ({n_drops} drop{'s' * (n_drops > 1)})" if n_drops else "")
        if c["no_collapse"] is None:
            collapse += " (not checked: no interval logged)" if c["pairs"] else " (no evals after 1/5)"
        if a is None:
            acc.append([name, "–", "–", "–", _ci(v["final"]), "–", collapse])
            continue
        ratio = "–" if _nan(a["ratio"]) else f"×{_f(a['ratio'], 2)}"
        if not _nan(a["ratio_lo"]):
            ratio += f" [{_f(a['ratio_lo'], 2)}, {_f(a['ratio_hi'], 2)}]"
        acc.append([name, "not reached" if a["queries"] is None else
                    f"{a['queries']:.0f} (passive {_f(a['passive_queries'], 0)})",
                    ratio, _yes(a["one_third"]), _ci(v["final"]), _yes(a["final_above_passive"]),
                    collapse])
    p = s["passive"]
    pf = _f(strat[p]["final"]["mean"]) if p else "–"
    runs = [[Path(r["path"]).name, name, str(r["seed"]), "complete" if r["complete"] else "incomplete",
             str(r["oracle_queries"]), str(r["synthetic"]),
             _f(r["values"][-1]) if r["values"] else "–", "; ".join(r["notes"])]
            for name, v in strat.items() for r in v["runs"]]
    return [
        (f"Task `{task}`: {metric}, budget {s['budget']:g} oracle queries", head, main),
        (f"Oracle queries to reach a target {metric} on the seed-mean curve (×ratio to passive's "
         "queries for the same target [95% bootstrap interval over seeds]; seeds that reach it "
         "on their own)", ["strategy"] + [f"≥ {lab}" for lab in labels], tgt),
        ("Queries to target per seed (– = not reached)", ["strategy", "seeds"]
         + [f"≥ {lab}" for lab in labels], per_seed),
        (f"Acceptance checks vs passive (passive final seed-mean {pf})",
         ["strategy", "(a) queries to passive final, seed-mean curves",
          "×passive [95% bootstrap]", "(a) ≤ 1/3", f"final {metric} [95% t]",
          "(b) interval above passive mean", "(c) no collapse after 1/5 budget"], acc),
        ("Runs", ["run", "strategy", "seed", "status", "oracle queries", "synthetic labels",
                  f"final {metric}", "notes"], runs),
    ]


def short_labels(names) -> dict[str, str]:
    """{group label: the label for a plot}: the strategy alone where it names one group, else the
    strategy and the settings that tell its groups apart ('ee_ts mixed.gamma=0.5'). The settings
    every group of a report lists (a sweep's differing keys, often a dozen) fill a legend beyond its
    figure; the tables keep the full labels."""
    by = {}
    for n in names:
        by.setdefault(n.split()[0] if n.split() else n, []).append(n)
    out = {}
    for strategy, group in by.items():
        shared = set.intersection(*(set(n.split()[1:]) for n in group))
        for n in group:
            out[n] = " ".join([strategy, *(t for t in n.split()[1:] if t not in shared)])
    return out


def plot_task(task: str, s: dict, metric: str, path: Path) -> str:
    """Top: each strategy's seed mean with its 95% t-band; below: one panel per strategy with
    its seeds (thin), their mean (bold) and passive's mean (dashed). Returns the top title
    (it names the band only when one is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.asarray(s["grid"])
    strat = s["strategies"]
    ncols = min(3, len(strat))
    nrows = math.ceil(len(strat) / ncols)
    fig = plt.figure(figsize=(3.4 * ncols + 1, 4.2 + 2.6 * nrows), dpi=110)
    spec = fig.add_gridspec(1 + nrows, ncols, height_ratios=[4.2] + [2.6] * nrows)
    ax = fig.add_subplot(spec[0, :])
    colors, banded, short = {}, False, short_labels(strat)
    for name, v in strat.items():
        c = {k: np.asarray(x, dtype=float) for k, x in v["curve"].items()}
        line, = ax.plot(grid, c["mean"], label=f"{short[name]} (n={len(v['eval_seeds'])})")
        colors[name] = line.get_color()
        if np.any(~np.isnan(c["lo"])):
            banded = True
            ax.fill_between(grid, c["lo"], c["hi"], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("oracle queries")
    ax.set_ylabel(metric)
    title = (f"{task}: seed mean and 95% t-band over seeds" if banded else
             f"{task}: seed mean (one seed: no interval)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    passive = strat.get(s["passive"]) if s["passive"] else None
    first = None
    for k, (name, v) in enumerate(strat.items()):
        a = fig.add_subplot(spec[1 + k // ncols, k % ncols], sharey=ax, sharex=first)
        first = first or a
        for r in v["runs"]:
            a.plot(r["eval_queries"], r["values"], color=colors[name], lw=0.7, alpha=0.6)
        a.plot(v["mean_curve"]["queries"], v["mean_curve"]["mean"], color=colors[name], lw=2.2)
        if passive is not None and name != s["passive"]:
            a.plot(passive["mean_curve"]["queries"], passive["mean_curve"]["mean"], "--",
                   color="0.3", lw=1.2, label="passive mean")
            a.legend(fontsize=6, loc="lower right")
        a.set_title(f"{short[name]}: {len(v['eval_seeds'])} seeds", fontsize=8)
        a.tick_params(labelsize=7)
        a.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return title


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                  for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _jsonable(x: Any) -> Any:
    """NaN -> null, ±infinity -> "inf"/"-inf" (JSON has neither), numpy scalars -> Python."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float):
        if math.isnan(x):
            return None
        return ("inf" if x > 0 else "-inf") if math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _notes(s: dict) -> list[str]:
    """The collapse check's drops and unchecked pairs, one line each."""
    out = []
    for name, v in s["strategies"].items():
        c = v["no_collapse"]
        out += [f"{name} seed {d['seed']}: drop {d['drop']:.3f} > half-width {d['half_width']:.3f} "
                f"between {d['from_queries']:.0f} and {d['to_queries']:.0f} queries"
                for d in c["drops"]]
        if c["note"]:
            out.append(f"{name}: {c['note']}")
    return out


def show(summary: dict, console: Any = None) -> None:
    """The tables on the terminal (rich), without the per-run table."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(f"metric: {summary['metric']} ({summary['metric_reason']})")
    for task, s in summary["tasks"].items():
        for title, head, rows in tables(task, s, summary["metric"])[:4]:
            table = Table(title=title)
            for h in head:
                table.add_column(h)
            for r in rows:
                table.add_row(*r)
            console.print(table)


def write(summary: dict, out: Path) -> None:
    """report.md, report.html (plots embedded), report.json and one PNG per task into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    metric = summary["metric"]
    intro = f"Metric: `{metric}` ({summary['metric_reason']})."
    md = ["# duel report", "", intro, ""]
    body = [HTML_HEAD, f"<p>{html.escape(intro)}</p>"]
    for task, s in summary["tasks"].items():
        png = out / (re.sub(r"[^\w.-]", "_", f"{metric}_{task}") + ".png")
        s["plot_title"] = plot_task(task, s, metric, png)
        s["plot"] = png.name
        img = base64.b64encode(png.read_bytes()).decode()
        for i, (title, head, rows) in enumerate(tables(task, s, metric)):
            md += [f"## {title}" if i == 0 else f"### {title}", ""]
            h = 2 if i == 0 else 3
            body.append(f"<h{h}>{html.escape(title.replace('`', ''))}</h{h}>")
            if i == 0:
                md += [f"![{metric} vs oracle queries, {task}]({png.name})", ""]
                body.append(f'<img alt="{metric} vs queries" src="data:image/png;base64,{img}">')
            md += [_md_table(head, rows), ""]
            body.append(_html_table(head, rows))
            for note in _notes(s) if i == 3 else []:
                md += [f"- {note}"]
                body.append(f"<p>{html.escape(note)}</p>")
            if i == 3:
                md.append("")
    md += ["## Method", "", summary["method"], ""]
    body.append(f"<h2>Method</h2><p>{html.escape(summary['method'])}</p></body></html>")
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text("\n".join(body))
    (out / "report.json").write_text(json.dumps(_jsonable(summary), indent=1))
