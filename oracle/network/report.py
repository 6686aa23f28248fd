"""What ``bpcheck verify-network`` prints and writes: the per-layer table, the parameters' table, the explanation of
the first broken layer, the heat map of its gradient's error (matplotlib, the optional ``bpcheck[plots]``), JSON."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from oracle.network.end_to_end import ParamResult
from oracle.network.isolate import Isolation
from oracle.network.layers import LayerVerdict, downstream
from oracle.network.records import short_source
from oracle.verdict import FAIL, IMPRECISE, PASS

STYLE = {PASS: "green", FAIL: "bold red", IMPRECISE: "yellow"}


def _status(text: str | None) -> str:
    if text is None:
        return "-"
    return f"[{STYLE[text]}]{text}[/]" if text in STYLE else text


def layer_table(verdicts: list[LayerVerdict], first: LayerVerdict | None) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="layers, in forward order (each judged on what reached it)",
                  title_justify="left")
    for column in ("#", "function", "params", "op", "backward #", "forward", "backward", "wrong", "worst element"):
        table.add_column(column, overflow="fold")
    for v in verdicts:
        call = v.call
        worst = ""
        if v.backward is not None and v.backward.mismatch is not None and v.backward.failed:
            m = v.backward.mismatch
            worst = f"{m.array}{list(m.index) if isinstance(m.index, tuple) else m.index}: {m.got:.4g} vs {m.expected:.4g}"
        elif v.backward is not None and v.backward.failed:
            worst = v.backward.message.splitlines()[0][:80]
        elif call.not_checked:
            worst = f"not checked: {call.not_checked}"
        mark = " <- first broken" if v is first else ""
        table.add_row(str(call.position), call.function + mark, ", ".join(call.params.values()), call.op or "-",
                      "-" if call.backward_order is None else str(call.backward_order + 1),
                      _status(v.forward.status if v.forward else None), _status(v.backward.status if v.backward else None),
                      ", ".join(v.wrong()), worst)
    return table


def param_table(results: list[ParamResult]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="parameters: the model's gradients vs central differences of its own loss",
                  title_justify="left")
    for column in ("param", "shape", "checked on", "bpcheck", "rel_error (notebook)", "worst / note"):
        table.add_column(column, overflow="fold")
    for r in results:
        worst = r.note
        if r.mismatch is not None and not r.mismatch.imprecise:
            worst = (f"{r.mismatch.count}/{r.mismatch.size} out; at {r.mismatch.index}: got {r.mismatch.got:.4g}, "
                     f"differences {r.mismatch.expected:.4g}" + (f"; {r.note}" if r.note else ""))
        table.add_row(r.name, str(tuple(r.shape)), r.how, _status(r.status),
                      "-" if r.rel_error is None else f"{r.rel_error:.2e}", worst)
    return table


def explanation(verdicts: list[LayerVerdict], first: LayerVerdict | None, params: list[ParamResult]) -> list[str]:
    """The lines that say which layer to fix and why the end-to-end check points elsewhere."""
    wrong_params = [p.name for p in params if p.status == FAIL]
    if first is None:
        forward = next((v for v in verdicts if v.forward_broken), None)
        if forward is not None:
            return [f"every layer's backward is right on what reached it, but layer {forward.call.position} "
                    f"({forward.call.function})'s forward is wrong: the loss itself is not the network's."]
        if wrong_params:
            return [f"every layer's backward is right on what reached it, yet {', '.join(wrong_params)} disagree with "
                    "central differences of the model's own loss: the error is in the model's code between the layers "
                    "(the regularization term and its gradient, a dout handed to the wrong layer, a gradient "
                    "stored under the wrong name)."]
        return []
    call = first.call
    wrong = first.wrong() or ["a gradient"]
    lines = [f"first broken layer, in backward order: layer {call.position}, {call.backward_function} "
             f"({short_source(call.source)}; op {call.op}{', params ' + ', '.join(call.params.values()) if call.params else ''}): "
             f"{', '.join(wrong)} wrong."]
    after = downstream(verdicts, first)
    own = [p for name, p in call.params.items() if f"grad_{name}" in wrong]
    if "grad_x" in wrong or "grad_input" in wrong:
        if after:
            hit = [p for v in after for p in v.call.params.values()]
            lines.append(
                f"its dx is the dout of every layer before it ({', '.join(str(v.call.position) for v in after)}): "
                f"their parameter gradients ({', '.join(hit) or 'none'}) come out wrong end to end"
                + (" although their own backward is right" if not any(v.broken for v in after) else "")
                + ". Fix this layer first, then run again.")
        else:
            lines.append("its dx is the gradient of the input X, which no layer uses: the end-to-end check cannot see "
                         "it, but the rule is wrong and will break any layer placed before it.")
    if own:
        lines.append(f"its own parameter gradients ({', '.join(own)}) are wrong too.")
    others = [v for v in after if v.broken]
    if others:
        lines.append("also broken (judged on what reached them): "
                     + ", ".join(f"layer {v.call.position} {v.call.backward_function}" for v in others) + ".")
    return lines


def isolation_lines(iso: Isolation | None) -> list[str]:
    if iso is None:
        return []
    if iso.case is None or iso.verdict is None:
        return [f"in isolation: {iso.note}", f"check the function alone: {iso.command}"]
    return [f"in isolation, the smallest configuration that still fails ({iso.tried} checks run):",
            *("  " + line for line in iso.verdict.render().splitlines()),
            f"check the function alone: {iso.command}"]


def heat_map(v: LayerVerdict, path: str | Path) -> str:
    """Write a PNG of |got - expected| of the first wrong gradient of ``v``; what was done, as one line."""
    try:
        import matplotlib  # noqa: PLC0415 - the optional bpcheck[plots]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        return "heat map skipped: matplotlib is not installed (pip install 'bpcheck[plots]')"
    from oracle.ops import SPECS  # noqa: PLC0415

    spec = SPECS[v.call.op]
    name = (v.wrong() or [f"grad_{spec.differentiable[0]}"])[0]
    index = spec.differentiable.index(name[len("grad_"):])
    got = v.call.grads if len(spec.differentiable) == 1 else v.call.grads[index]
    expected = v.expected[name[len("grad_"):]]
    error = np.abs(np.asarray(got, np.float64) - np.asarray(expected, np.float64))
    if error.ndim <= 2:
        panels = [(name, error.reshape(1, -1) if error.ndim < 2 else error)]
    else:
        lead = error.reshape(-1, *error.shape[-2:])
        labels = [f"{name}[{', '.join(map(str, i))}]" for i in np.ndindex(error.shape[:-2])]
        panels = list(zip(labels, lead))[:16]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.8 * rows + 0.6), squeeze=False)
    vmax = float(error.max()) or 1.0
    for ax, (label, panel) in zip(axes.flat, panels):
        image = ax.imshow(panel, cmap="magma", vmin=0.0, vmax=vmax)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="|got - expected|")
    fig.suptitle(f"layer {v.call.position} {v.call.backward_function}: |error| of {name}", fontsize=10)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return f"heat map of the error of layer {v.call.position}'s {name}: {path}"


def as_json(header: dict, verdicts: list[LayerVerdict], first: LayerVerdict | None, params: list[ParamResult],
            iso: Isolation | None, lines: list[str]) -> dict:
    return {
        **header,
        "layers": [{
            "position": v.call.position, "function": v.call.function, "backward_function": v.call.backward_function,
            "source": v.call.source, "op": v.call.op, "params": v.call.params, "config": v.call.config,
            "backward_order": v.call.backward_order, "not_checked": v.call.not_checked,
            "forward": v.forward.as_dict() if v.forward else None, "backward": v.backward.as_dict() if v.backward else None,
            "gradients": v.grad_status,
        } for v in verdicts],
        "first_broken": None if first is None else first.call.position,
        "parameters": [{"name": p.name, "shape": list(p.shape), "status": p.status, "rel_error": p.rel_error,
                        "how": p.how, "note": p.note, "kinks": p.kinks,
                        "mismatch": p.mismatch.as_dict() if p.mismatch else None} for p in params],
        "isolation": None if iso is None else {
            "case": repr(iso.case) if iso.case else None, "note": iso.note, "command": iso.command,
            "verdict": iso.verdict.as_dict() if iso.verdict and iso.case else None},
        "explanation": lines,
    }
