"""Predicted H100 time of every hot program, from XLA's own compile for an H100 (no GPU needed).

Each program is lowered from abstract shapes (nothing allocated) and compiled by XLA:GPU for an
H100 SXM 80GB described in a target config (deviceless AOT, `bench.memory.target_sharding`; needs
the JAX CUDA plugin installed, not a GPU). From the compiled program:

- `memory_analysis()`: XLA's buffer assignment (arguments, outputs, aliased, temporaries);
- FLOPs and bytes moved. A deviceless compile answers `cost_analysis()` with UNIMPLEMENTED, so
  two counts of the compiled H100 HLO are kept: `xla` = XLA's HloCostAnalysis run on the
  compiled module (`hlo_module_cost_analysis` through the CPU client; it counts a while-loop body
  ONCE, so it undercounts the layer scans), and `walk` = this file's count of the same module,
  loop-aware (body x known trip count) -- the one the predictions use. The walk counts, per
  kernel (fusion, cuBLAS call, copy...) of the scheduled program: FLOPs of every dot (2 x output
  elements x contracted size; elementwise work is not counted) and bytes = operands read + outputs
  written, where a fused operand used only through slices counts the slices and an in-place
  dynamic-update-slice counts the update (HloCostAnalysis's own rules for both), plus the reads of
  the updated array when the same fusion reads it again. A conditional
  counts its cheaper branch: in the decode step that is sampling without top-k/top-p (the
  presets' and the peers' setting; the truncating branch sorts the vocabulary, its bytes are
  kept in the JSON under "conditionals").

Predicted time = max(FLOPs / 989e12, bytes / 3.35e12) (bf16 dense peak and HBM3 bandwidth of an
H100 SXM): a roofline, i.e. a lower bound that assumes every kernel at its limit; launch
latency, autotuning (off in a deviceless compile) and the Python/Ray loop are not in it. Every
such number is labelled "predicted (XLA cost model, no GPU)". Efficiency = ideal / compiled,
with the ideal written out per program below (`ideal_*` functions). `bash bench/gpu.sh` stays the
measuring path.

    JAX_PLATFORMS=cpu /tmp/aot/bin/python bench/cost_model.py            # H100 (needs the plugin)
    JAX_PLATFORMS=cpu /tmp/aot/bin/python bench/cost_model.py --programs decode,dpo
    .venv/bin/python bench/cost_model.py --check   # tiny shapes; CPU backend when no plugin (tests)

A venv with the plugin (docs/scale.md): python3 -m venv /tmp/aot && /tmp/aot/bin/pip install
jax==0.10.2 jaxlib==0.10.2 jax-cuda12-plugin==0.10.2 jax-cuda12-pjrt==0.10.2 flax==0.12.8 optax
pyyaml safetensors rich tokenizers pydantic==2.14.4, plus "nvidia-cudnn-cu12>=9.7,<10" for
`--attention cudnn` (or only the plugin wheels, with a .pth file naming this project's .venv
site-packages). All rows: ~4 min on the 2-core VM, quiet (2026-12-05).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/cost_model.py` from anywhere
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp

PEAK_FLOPS = 989e12  # H100 SXM, bf16 dense
PEAK_BYTES = 3.35e12  # H100 SXM, HBM3 bytes/s
LABEL = "predicted (XLA cost model, no GPU)"

# measured on a real H100 (issue 17): generated tok/s for 128+128 tokens, bf16
PEERS = {
    "pythia-1b": {"transformers": {16: 217, 64: 912, 256: 3265}, "jax_plain": {64: 10_400, 256: 16_900}},
    "qwen2.5-0.5b": {"transformers": {16: 195, 64: 776, 256: 3061}, "jax_plain": {64: 30_400, 256: 62_500}},
}

# ================================================================ HLO text: parse and count

_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2, "s32": 4, "u32": 4,
                "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16, "s4": 0.5, "u4": 0.5}
_SHAPE = re.compile(r"\b([a-z][a-z0-9]*)\[([0-9,]*)\]")
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "partition-id",
         "replica-id", "opt-barrier", "add-dependency", "copy-done", "async-done", "iota"}
_SLICES = {"dynamic-slice", "slice", "gather"}
_ONE_TO_ONE = {"bitcast", "reshape", "copy", "transpose"}  # every element of the operand once in the output
_ELEMENTWISE = {"add", "subtract", "multiply", "divide", "maximum", "minimum", "negate", "abs", "exponential",
                "exponential-minus-one", "log", "log-plus-one", "sqrt", "rsqrt", "cbrt", "tanh", "logistic", "sine",
                "cosine", "power", "remainder", "convert", "bitcast-convert", "compare", "select", "clamp", "and",
                "or", "xor", "not", "shift-left", "shift-right-logical", "shift-right-arithmetic", "floor", "ceil",
                "round-nearest-even", "round-nearest-afz", "sign", "is-finite", "atan2", "erf", "real", "imag"}


def shapes_of(type_str: str) -> list[tuple[str, tuple[int, ...]]]:
    """[(dtype, dims)] of every array in an HLO type (a tuple gives several)."""
    return [(d, tuple(int(x) for x in dims.split(",") if x)) for d, dims in _SHAPE.findall(type_str)
            if d in _DTYPE_BYTES]


def _elements(type_str: str) -> int:
    return sum(math.prod(s) for _, s in shapes_of(type_str))


def nbytes(type_str: str) -> float:
    return float(sum(_DTYPE_BYTES[d] * math.prod(s) for d, s in shapes_of(type_str)))


@dataclasses.dataclass
class Inst:
    name: str
    type: str
    opcode: str
    operands: list[str]
    attrs: str
    root: bool


@dataclasses.dataclass
class Comp:
    name: str
    insts: list[Inst]

    def __post_init__(self):
        self.by_name = {i.name: i for i in self.insts}
        self.root = next((i for i in self.insts if i.root), self.insts[-1] if self.insts else None)
        self.users: dict[str, list[Inst]] = {}
        for i in self.insts:
            for o in i.operands:
                self.users.setdefault(o, []).append(i)
        self.params = {int(re.match(r"\s*(\d+)", i.attrs_ops).group(1)): i for i in self.insts
                       if i.opcode == "parameter" and re.match(r"\s*(\d+)", i.attrs_ops or "")}


def _close(s: str, i: int) -> int:
    """Index of the parenthesis closing the one at s[i]."""
    depth = 0
    for j in range(i, len(s)):
        depth += s[j] == "("
        depth -= s[j] == ")"
        if depth == 0:
            return j
    return len(s) - 1


def _parse_inst(line: str) -> Inst | None:
    m = re.match(r"\s*(ROOT\s+)?%?([^\s=]+)\s*=\s*", line)
    if not m:
        return None
    rest = line[m.end():]
    if rest.startswith("("):
        j = _close(rest, 0)
        type_str, rest = rest[: j + 1], rest[j + 1:].lstrip()
    else:
        sp = rest.find(" ")
        type_str, rest = rest[:sp], rest[sp + 1:]
    k = rest.find("(")
    if k < 0:
        return None
    j = _close(rest, k)
    ops = rest[k + 1: j]
    inst = Inst(m.group(2), type_str, rest[:k].strip(), re.findall(r"%([^\s,()]+)", ops), rest[j + 1:], bool(m.group(1)))
    inst.attrs_ops = ops  # parameter(N): the number
    return inst


def parse_hlo(text: str) -> tuple[dict[str, Comp], str]:
    """{computation name: Comp}, entry name, from an HloModule's text (`compiled.as_text()`)."""
    comps, entry, cur, insts = {}, None, None, []
    for line in text.splitlines():
        if cur is None:
            m = re.match(r"(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$", line)
            if m and not line.startswith(" "):
                cur, insts = m.group(2), []
                if m.group(1):
                    entry = cur
            continue
        if line.startswith("}"):
            comps[cur] = Comp(cur, insts)
            cur = None
            continue
        inst = _parse_inst(line)
        if inst is not None:
            insts.append(inst)
    if entry is None:
        raise ValueError("no ENTRY computation in the HLO text")
    return comps, entry


def _called(inst: Inst, key: str) -> list[str]:
    m = re.search(key + r"=\{?([^}\n]*?)(?:\}|,\s*[a-z_]+=|$)", inst.attrs)
    if not m:
        return []
    return re.findall(r"%?([\w.\-]+)", m.group(1))


def _dot_flops(inst: Inst, comp: Comp) -> float:
    out = shapes_of(inst.type)
    lhs = comp.by_name.get(inst.operands[0]) if inst.operands else None
    m = re.search(r"lhs_contracting_dims=\{([0-9,]*)\}", inst.attrs)
    if not out or lhs is None or not m:
        return 0.0
    lhs_dims = shapes_of(lhs.type)[0][1]
    contract = math.prod(lhs_dims[int(d)] for d in m.group(1).split(",") if d)
    return 2.0 * math.prod(out[0][1]) * contract


def _gemm_flops(inst: Inst, comp: Comp) -> float:
    """FLOPs of a cuBLAS/cuBLASLt custom call (its dot dimensions are in backend_config)."""
    m = re.search(r'"lhs_contracting_dimensions":\[([^\]]*)\]', inst.attrs)
    lhs = comp.by_name.get(inst.operands[0]) if inst.operands else None
    out = shapes_of(inst.type)
    if not m or lhs is None or not out:
        return 0.0
    lhs_dims = shapes_of(lhs.type)[0][1]
    contract = math.prod(lhs_dims[int(d)] for d in re.findall(r"\d+", m.group(1)))
    return 2.0 * math.prod(out[0][1]) * contract


class HloCost:
    """Loop-aware FLOPs and bytes of a compiled HLO module (see the module docstring)."""

    def __init__(self, text: str):
        self.comps, self.entry = parse_hlo(text)
        self._flops: dict[str, float] = {}
        self.loops: list[dict] = []  # every while at the entry level: per-iteration cost
        self.conditionals: list[dict] = []  # every conditional met: each branch's bytes

    # ---- FLOPs inside a computation (dots, recursively through fusions)
    def comp_flops(self, name: str) -> float:
        if name not in self._flops:
            comp, total = self.comps[name], 0.0
            for i in comp.insts:
                if i.opcode == "dot":
                    total += _dot_flops(i, comp)
                elif i.opcode in ("fusion", "call", "async-start") or "calls=" in i.attrs:
                    total += sum(self.comp_flops(c) for c in _called(i, "calls") + _called(i, "to_apply")
                                 if c in self.comps)
                elif i.opcode == "custom-call" and re.search(r"gemm|matmul", i.attrs):
                    total += _gemm_flops(i, comp)
            self._flops[name] = total
        return self._flops[name]

    # ---- bytes of one fusion kernel
    def fusion_bytes(self, inst: Inst, comp: Comp) -> float:
        called = [c for c in _called(inst, "calls") if c in self.comps]
        if not called:
            return sum(nbytes(comp.by_name[o].type) for o in inst.operands if o in comp.by_name) + nbytes(inst.type)
        fc = self.comps[called[0]]
        read = 0.0
        for idx, op in enumerate(inst.operands):
            full = nbytes(comp.by_name[op].type) if op in comp.by_name else 0.0
            p = fc.params.get(idx)
            read += full if p is None else min(full, self._param_read(fc, p.name, full))
        root = fc.root
        elems = [fc.by_name[o] for o in root.operands] if root.opcode == "tuple" else [root]
        write = 0.0
        for e in elems:
            while e.opcode == "bitcast" and e.operands and e.operands[0] in fc.by_name:
                e = fc.by_name[e.operands[0]]
            if e.opcode == "dynamic-update-slice" and self._is_param(fc, e.operands[0]):
                write += nbytes(fc.by_name[e.operands[1]].type)  # in place: only the update
            else:
                write += nbytes(e.type)
        return read + write

    def _is_param(self, fc: Comp, name: str) -> bool:
        i = fc.by_name.get(name)
        while i is not None and i.opcode == "bitcast":
            i = fc.by_name.get(i.operands[0])
        return i is not None and i.opcode == "parameter"

    def _param_read(self, fc: Comp, name: str, full: float, updated: bool = False) -> float:
        """Bytes of a fusion operand read (`full` at most): `full` x the fraction of its elements
        the fusion's outputs need (`_needed`)."""
        return full * self._needed(fc, name, updated, {})

    def _needed(self, fc: Comp, name: str, updated: bool, memo: dict) -> float:
        """Fraction of the elements of `name` (inside fusion `fc`) that the fusion reads, as a
        loop-fusion emitter computes only the output elements it writes, each from the input
        elements it needs. Propagated backwards from the outputs (fraction 1) through ops that map
        elements one to one (bitcast, reshape, copy, transpose, elementwise: the user's fraction),
        slices (the user's fraction x the slice's share), reductions (the fraction of their output
        needed: each needed output reads its whole row); any other user needs every element. The
        target of an in-place dynamic-update-slice is not read, nor is the updated array where it
        only reaches the output (updated), but reads of it inside the fusion count. Several
        users: their fractions summed, at most 1."""
        key = (name, updated)
        if key in memo:
            return memo[key]
        inst, users = fc.by_name.get(name), fc.users.get(name, [])
        if not users:
            memo[key] = 0.0 if updated else 1.0  # the fusion's output (its root)
            return memo[key]
        n = _elements(inst.type) if inst is not None else 0
        total = 0.0
        for u in users:
            if u.opcode == "dynamic-update-slice" and u.operands[0] == name:
                total += self._needed(fc, u.name, True, memo)  # the in-place target is not read
            elif u.opcode == "tuple":
                total += 0.0 if updated else 1.0
            elif u.opcode in _SLICES and u.operands[0] == name:
                total += self._needed(fc, u.name, False, memo) * _elements(u.type) / max(n, 1)
            elif u.opcode in _ONE_TO_ONE or (u.opcode in _ELEMENTWISE and _elements(u.type) == n):
                total += self._needed(fc, u.name, updated and u.opcode == "bitcast", memo)
            elif u.opcode == "reduce" and not u.type.startswith("(") and u.operands[0] == name:
                total += self._needed(fc, u.name, False, memo)
            else:
                total += 1.0
            if total >= 1.0:
                break
        memo[key] = min(1.0, total)
        return memo[key]

    # ---- one kernel / control op
    def inst_cost(self, inst: Inst, comp: Comp, depth: int) -> tuple[float, float, float]:
        """(FLOPs, bytes, kernels launched) of one instruction: every fusion, library call, copy or
        other non-free instruction is one kernel; a while counts its body x its known trip count
        (1 if unknown), a conditional 1 (its predicate, read by the host) + its cheaper branch."""
        op = inst.opcode
        if op in _FREE:
            return 0.0, 0.0, 0.0
        if op == "while":
            body, cond = _called(inst, "body")[0], _called(inst, "condition")[0]
            m = re.search(r'"known_trip_count":\{"n":"(\d+)"\}', inst.attrs)
            trip = int(m.group(1)) if m else None
            per_iter = [x + y for x, y in zip(self.comp_cost(body, depth + 1), self.comp_cost(cond, depth + 1))]
            if depth == 0:
                self.loops.append({"while": inst.name, "body": body, "trip_count": trip, "flops_per_iter": per_iter[0],
                                   "bytes_per_iter": per_iter[1], "type": inst.type, "kernels_per_iter": per_iter[2]})
            n = trip if trip is not None else 1
            return n * per_iter[0], n * per_iter[1], n * per_iter[2]
        if op == "conditional":
            branches = _called(inst, "branch_computations") or (_called(inst, "true_computation")
                                                                + _called(inst, "false_computation"))
            costs = [self.comp_cost(b, depth + 1) for b in branches if b in self.comps]
            if not costs:
                return 0.0, 0.0, 0.0
            self.conditionals.append({"name": inst.name, "branch_bytes": [c[1] for c in costs]})
            f, b, k = min(costs, key=lambda c: c[1])  # the cheaper branch (see the module docstring)
            return f, b, k + 1
        if op in ("call", "async-start"):
            return self.comp_cost((_called(inst, "to_apply") or _called(inst, "calls"))[0], depth)
        if op == "fusion":
            return self.comp_flops(_called(inst, "calls")[0]), self.fusion_bytes(inst, comp), 1.0
        operands = sum(nbytes(comp.by_name[o].type) for o in inst.operands if o in comp.by_name)
        if op == "custom-call":
            out = shapes_of(inst.type)
            if inst.type.startswith("(") and out and out[-1][0] == "s8":  # cuBLAS workspace
                out = out[:-1]
            written = float(sum(_DTYPE_BYTES[d] * math.prod(s) for d, s in out))
            flops = _gemm_flops(inst, comp) if re.search(r"gemm|matmul", inst.attrs) else 0.0
            return flops, operands + written, 1.0
        if op == "dot":
            return _dot_flops(inst, comp), operands + nbytes(inst.type), 1.0
        if op == "dynamic-update-slice":
            return 0.0, 2 * nbytes(comp.by_name[inst.operands[1]].type), 1.0
        if op in ("copy", "copy-start", "dynamic-slice", "slice"):
            return 0.0, 2 * nbytes(inst.type), 1.0
        return 0.0, operands + nbytes(inst.type), 1.0

    def comp_cost(self, name: str, depth: int = 0) -> tuple[float, float, float]:
        """(FLOPs, bytes, kernels) of one run of computation `name`."""
        comp, total = self.comps[name], (0.0, 0.0, 0.0)
        for i in comp.insts:
            total = tuple(t + c for t, c in zip(total, self.inst_cost(i, comp, depth)))
        return total

    def total(self) -> dict:
        self.loops, self.conditionals = [], []
        f, b, k = self.comp_cost(self.entry)
        return {"flops": f, "bytes": b, "kernels": k, "loops": self.loops, "conditionals": self.conditionals}


def hlo_cost(text: str) -> dict:
    """{"flops", "bytes", "kernels", "loops": [entry-level while loops, per-iteration cost]} of an HLO module."""
    return HloCost(text).total()


def is_kv_cache(dims, layers: int, batch: int, kv_heads: int, head_dim: int) -> bool:
    """A KV cache: the stacked [layers, batch, S, kv_heads, head_dim] or one layer's [batch, S,
    kv_heads, head_dim] (the decode step on an accelerator, `duel.sampling.unroll_decode_layers`)."""
    return tuple(dims[-2:]) == (kv_heads, head_dim) and (
        (len(dims) == 5 and dims[0] == layers and dims[1] == batch) or (len(dims) == 4 and dims[0] == batch))


def cache_slots(type_str: str, layers: int, batch: int, kv_heads: int, head_dim: int) -> int:
    """The slots S of the first KV cache in an HLO type (a decode loop's carry)."""
    return next(s[-3] for _, s in shapes_of(type_str) if is_kv_cache(s, layers, batch, kv_heads, head_dim) and s[-3] > 1)


def cache_copies(text: str, layers: int, batch: int, kv_heads: int, head_dim: int) -> list[str]:
    """Kernels inside the decode loops that write a whole KV cache [layers, batch, S, kv_heads,
    head_dim] or a whole layer's [batch, S, kv_heads, head_dim] (any S, any layout): a copy, or a
    fusion whose output is not an in-place dynamic-update-slice of its cache operand (for one
    layer's shape: a fusion whose output the loop carries, not a temporary that merely has the
    cache's shape, e.g. probabilities x V before the sum on small shapes). Empty = the cache is
    updated in place."""
    hc = HloCost(text)
    comps = hc.comps
    # decode loops: entry-level whiles whose trip count is not known (they exit when all rows stop)
    # and that carry a cache; a cache has the slot count of one the loops carry (so the step's new
    # K [B, 1, K, D] is not taken for one layer's cache)
    loops = [i for i in comps[hc.entry].insts if i.opcode == "while" and '"known_trip_count"' not in i.attrs]
    slots = {s[-3] for i in loops for _, s in shapes_of(i.type)
             if is_kv_cache(s, layers, batch, kv_heads, head_dim) and s[-3] > 1}

    def is_cache(dims):
        return is_kv_cache(dims, layers, batch, kv_heads, head_dim) and dims[-3] in slots

    todo = [_called(i, "body")[0] for i in loops if any(is_cache(s) for _, s in shapes_of(i.type))]
    seen, bad = set(), []
    while todo:
        name = todo.pop()
        if name in seen or name not in comps:
            continue
        seen.add(name)
        comp = comps[name]
        carried, stack = set(), [comp.root.name] if comp.root is not None else []
        while stack:  # what the computation returns: a per-layer cache counts only there (not a temporary of its shape)
            n = stack.pop()
            if n in carried or n not in comp.by_name:
                continue
            carried.add(n)
            if comp.by_name[n].opcode in ("tuple", "bitcast", "copy", "get-tuple-element"):
                stack += comp.by_name[n].operands
        for i in comp.insts:
            if i.opcode == "while":
                todo += _called(i, "body") + _called(i, "condition")
                continue
            if i.opcode in ("call", "conditional"):
                todo += _called(i, "to_apply") + _called(i, "branch_computations") + _called(
                    i, "true_computation") + _called(i, "false_computation")
                continue
            if i.opcode in _FREE or i.opcode == "dynamic-update-slice":
                continue
            cache_out = [k for k, (_, s) in enumerate(shapes_of(i.type))
                         if is_cache(s) and (len(s) == 5 or i.name in carried or i.opcode == "copy")]
            if not cache_out:
                continue
            if i.opcode == "fusion":
                fc = comps[_called(i, "calls")[0]]
                elems = [fc.by_name[o] for o in fc.root.operands] if fc.root.opcode == "tuple" else [fc.root]
                for k in cache_out:
                    e = elems[k] if k < len(elems) else fc.root
                    while e.opcode == "bitcast":
                        e = fc.by_name[e.operands[0]]
                    if not (e.opcode == "dynamic-update-slice" and hc._is_param(fc, e.operands[0])):
                        bad.append(f"{name}: {i.name} = fusion -> {e.opcode} {i.type[:80]}")
            else:
                bad.append(f"{name}: {i.name} = {i.opcode} {i.type[:80]}")
    return bad


# ================================================================ compiling the programs


def _target(check: bool, target: str | None):
    """(label, sharding): the H100 deviceless target when the plugin is there, else (check only) local."""
    from bench.memory import target_sharding

    if target == "local":
        return target_sharding("local")
    try:
        return target_sharding("h100")
    except RuntimeError:
        if check and target is None:
            return target_sharding("local")
        raise


def _abstract(tree, sharding):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def analyse(compiled) -> dict:
    """The counts of one compiled program: XLA's, ours, and the buffer assignment."""
    text = compiled.as_text()
    walk = hlo_cost(text)
    out = {"walk": {"flops": walk["flops"], "bytes": walk["bytes"], "kernels": walk["kernels"]},
           "loops": walk["loops"],
           "conditionals": walk["conditionals"]}
    try:  # XLA's own analysis of this compiled module (a deviceless executable has none)
        ca = compiled.cost_analysis()
    except Exception:  # noqa: BLE001
        ca = None
    if not ca:
        try:
            from jax._src import xla_bridge as xb
            from jax._src.lib import _jax

            mod = compiled.runtime_executable().hlo_modules()[0]
            ca = _jax.hlo_module_cost_analysis(xb.get_backend("cpu"), mod)
        except Exception as e:  # noqa: BLE001
            ca = {"error": str(e)[:200]}
    if isinstance(ca, list):
        ca = ca[0]
    out["xla"] = {"flops": ca.get("flops"), "bytes": ca.get("bytes accessed"),
                  "note": "XLA HloCostAnalysis of the compiled module; while bodies counted once"} if "error" not in ca else ca
    ma = compiled.memory_analysis()
    if ma is not None:
        out["memory"] = {k: int(getattr(ma, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp")}
        m = out["memory"]
        m["peak"] = m["argument"] + m["output"] - m["alias"] + m["temp"]
    out["hlo_text"] = text
    return out


# ---- shapes

def _models(check: bool):
    from bench.train_step import FULL, check_shape

    return {k: (check_shape(v) if check else v) for k, v in FULL.items()}


def weight_count(c, *, decode: bool) -> int:
    """Parameters read per token: every matmul weight (LM head included), norms and biases; an
    untied input embedding is only gathered (one row per token), so decode does not count it."""
    from duel.models import param_shapes

    n = sum(math.prod(s) for s in param_shapes(c).values())
    if decode and not c.tie_word_embeddings:
        n -= c.vocab_size * c.hidden_size
    return n


def matmul_params(c) -> int:
    from bench.train_step import matmul_params as mp

    return mp(c)


def kv_bytes_per_slot(c, dtype_bytes: int = 2) -> int:
    return 2 * c.num_layers * c.num_kv_heads * c.head_dim * dtype_bytes  # k and v, every layer


# ---- ideals (written out: the efficiency is ideal / compiled)

def logits_bytes(c, batch: int, dtype_bytes: int = 2) -> float:
    """The next-token logits [B, V] in bf16 written once by the LM head and read once by the
    sampler. Not in the issue's ideal (weights + live KV) but inherent: the head's output has to
    reach the sampling reductions (softmax normaliser, argmax of logits + Gumbel noise) through
    memory. 0.16 GB for Qwen2.5-0.5B's 151,936-token vocabulary at batch 256."""
    return 2.0 * batch * c.vocab_size * dtype_bytes


def ideal_decode_step(c, batch: int, live_slots: float) -> dict:
    """One decode step: the bf16 weights read once + the live KV read once (batch x live slots)
    + the logits written and read once (`logits_bytes`; "bytes_weights_kv" is the issue's ideal
    without them); FLOPs 2 x matmul params per token + attention 4 x L x N x D per live slot."""
    weights_kv = 2.0 * weight_count(c, decode=True) + batch * live_slots * kv_bytes_per_slot(c)
    return {"bytes": weights_kv + logits_bytes(c, batch), "bytes_weights_kv": weights_kv,
            "flops": batch * (2.0 * matmul_params(c) + 4.0 * c.num_layers * c.num_heads * c.head_dim * live_slots)}


def ideal_prefill(c, batch: int, prompt: int) -> dict:
    """Prefill: the weights once + the prompt's KV written once; FLOPs 2 x matmul params per
    prompt token (the head only on the last position) + causal attention 2 x L x N x D x T^2."""
    trunk = matmul_params(c) - c.hidden_size * c.vocab_size
    flops = batch * (2.0 * trunk * prompt + 2.0 * c.hidden_size * c.vocab_size
                     + 2.0 * c.num_layers * c.num_heads * c.head_dim * prompt * prompt)
    return {"bytes": 2.0 * weight_count(c, decode=True) + batch * prompt * kv_bytes_per_slot(c), "flops": flops}


def ideal_dpo(c, sequences: int, seq_len: int) -> dict:
    """Policy forward + backward: 6 x matmul params x tokens (attention not in it). Bytes: the
    float32 masters, AdamW moments and gradients read and written once (AdamW: 4 reads + 3
    writes of 4 bytes per parameter) + the bf16 copy read three times (forward, two backward)."""
    n = weight_count(c, decode=False)
    return {"flops": 6.0 * matmul_params(c) * sequences * seq_len, "bytes": 28.0 * n + 3 * 2.0 * n}


def ideal_reference(c, sequences: int, seq_len: int) -> dict:
    """Reference forward (frozen bf16 weights): 2 x matmul params x tokens; the weights read once."""
    return {"flops": 2.0 * matmul_params(c) * sequences * seq_len, "bytes": 2.0 * weight_count(c, decode=False)}


def ideal_erm(feature: int, hidden: tuple[int, ...], members: int, batch: int, steps: int) -> dict:
    """`steps` Adam steps of K MLP members on `batch` pairs (2 x batch feature rows): FLOPs per
    step 6 x weights x rows x K, except the first layer's 4 (no gradient w.r.t. the features);
    bytes: per step the params/Adam state (4 reads + 3 writes of 4 bytes per weight) + the
    step's features, read once."""
    sizes = (feature, *hidden, 1)
    mats = [members * a * b for a, b in zip(sizes[:-1], sizes[1:])]
    w = sum(mats) + members * sum(sizes[1:])
    rows = 2 * batch
    return {"flops": steps * (4.0 * mats[0] + 6.0 * sum(mats[1:])) * rows,
            "bytes": steps * (28.0 * w + 4.0 * rows * feature)}


def ideal_select(members: int, prompts: int, cands: int) -> dict:
    """Pair selection: the rewards [K, P, M] float32 read once, pairs written; no matmul."""
    return {"flops": 0.0, "bytes": 4.0 * members * prompts * cands + 8.0 * prompts}


def ideal_pack(c) -> dict:
    """Publish pack: float32 masters read once, bf16 buckets written once."""
    n = weight_count(c, decode=False)
    return {"flops": 0.0, "bytes": 6.0 * n}


def ideal_unpack(c) -> dict:
    """Publish unpack (generator side): bf16 buckets read once, bf16 leaves written once."""
    n = weight_count(c, decode=False)
    return {"flops": 0.0, "bytes": 4.0 * n}


# ---- programs

def decode_programs(c, name, batch, prompt, new_tokens, sharding, check, unroll_layers=False):
    """`duel.sampling._generate` (prefill + the segmented decode loop) and the prefill alone."""
    from flax import nnx

    from duel import sampling
    from duel.models import build_model

    model = jax.eval_shape(lambda: build_model(c, 0, jnp.bfloat16))
    graphdef, state = nnx.split(model)
    state = _abstract(state, sharding)

    def A(shape, dt):
        return jax.ShapeDtypeStruct(shape, dt, sharding=sharding)

    buckets = min(4, max(1, new_tokens // 16))  # generate's default
    bounds = sampling._segments(new_tokens, buckets)
    args = (graphdef, state, A((batch, prompt), jnp.int32), A((batch, prompt), jnp.int32),
            A((), jax.random.key(0).dtype), A((batch,), jnp.bool_), A((), jnp.float32), A((), jnp.int32),
            A((), jnp.float32), A((8,), jnp.int32), A((), jnp.int32))
    t0 = time.perf_counter()
    gen = sampling._generate.lower(*args, n=1, new_tokens=new_tokens, bounds=bounds if len(bounds) > 1 else (),
                                   unroll_layers=unroll_layers).compile()
    gen_s = time.perf_counter() - t0
    g = analyse(gen)
    g["compile_s"] = gen_s
    slots0 = prompt + (bounds[1] - 1 if len(bounds) > 1 else 0)

    @jax.jit
    def prefill(state, ids, mask):
        return sampling._prefill(nnx.merge(graphdef, state), ids, mask, 1, slots0)

    t0 = time.perf_counter()
    pre = prefill.lower(state, A((batch, prompt), jnp.int32), A((batch, prompt), jnp.int32)).compile()
    p = analyse(pre)
    p["compile_s"] = time.perf_counter() - t0
    return g, p, bounds


def _rows_decode(c, name, batch, prompt, new_tokens, g, p, bounds):
    """Rows: prefill, each decode segment's step (per step), and the whole generate call."""
    rows = []
    pi = ideal_prefill(c, batch, prompt)
    rows.append(_row(f"prefill {name}", f"B={batch} T={prompt}", p, pi))
    dec = [lp for lp in g["loops"] if lp["trip_count"] is None]
    steps = [b - a for a, b in zip(bounds[:-1], bounds[1:])] if len(bounds) > 1 else [new_tokens - 1]
    starts = list(bounds[:-1]) if len(bounds) > 1 else [1]
    outside = {k: g["walk"][k] - sum(lp[f"{k}_per_iter"] for lp in dec) for k in ("flops", "bytes")}  # prefill, growth
    total_t, total = _predict(outside["flops"], outside["bytes"]), dict(outside)
    ideal_t = _predict(pi["flops"], pi["bytes"])
    ideal_sum = dict(pi)
    for j, lp in enumerate(dec):
        slots = cache_slots(lp["type"], c.num_layers, batch, c.num_kv_heads, c.head_dim)
        live = prompt + starts[j] + (steps[j] - 1) / 2.0  # mean attended slots over the segment
        ideal = ideal_decode_step(c, batch, live)
        r = _row(f"decode step {name}", f"B={batch} KV={slots}", {"walk": {"flops": lp["flops_per_iter"],
                 "bytes": lp["bytes_per_iter"]}}, ideal)
        r["steps"] = steps[j]
        r["kernels"] = lp["kernels_per_iter"]
        r["ideal_bytes_weights_kv"] = ideal["bytes_weights_kv"]  # the ideal, without the logits
        r["bytes_ratio_weights_kv"] = r["bytes"] / ideal["bytes_weights_kv"]
        if j in (0, len(dec) - 1):
            rows.append(r)
        total_t += steps[j] * r["predicted_s"]
        total = {k: total[k] + steps[j] * lp[f"{k}_per_iter"] for k in total}
        ideal_t += steps[j] * _predict(ideal["flops"], ideal["bytes"])
        ideal_sum = {k: ideal_sum[k] + steps[j] * ideal[k] for k in ideal_sum}
    tok_s = batch * new_tokens / total_t
    peers = PEERS.get(name, {})
    rows.append({"program": f"generate {name}", "note": "the whole call: prefill + growth + each segment's step x its steps "
                 "(every row runs max_new_tokens; kernels back to back)", "shape": f"B={batch} {prompt}+{new_tokens}",
                 "flops": total["flops"], "bytes": total["bytes"], "ideal_flops": ideal_sum["flops"],
                 "ideal_bytes": ideal_sum["bytes"], "predicted_s": total_t,
                 "ideal_s": ideal_t, "efficiency": ideal_t / total_t, "predicted_tok_s": tok_s,
                 "kernels": g["walk"]["kernels"] + sum((n - 1) * lp["kernels_per_iter"] for lp, n in zip(dec, steps)),
                 "peer_transformers_tok_s": peers.get("transformers", {}).get(batch),
                 "peer_jax_plain_tok_s": peers.get("jax_plain", {}).get(batch),
                 "segments": [{"kv_slots": s, "steps": n} for s, n in zip(
                     [cache_slots(lp["type"], c.num_layers, batch, c.num_kv_heads, c.head_dim) for lp in dec],
                     steps)]})
    return rows


def row_order(r: dict) -> tuple:
    """The table's order whatever the run that wrote a row: per model and batch prefill, decode
    steps, generate; then DPO, reference, ERM, select, pack, unpack (sorted() keeps the rest)."""
    kinds = ("prefill", "decode step", "generate", "DPO step", "reference forward", "ERM update", "select_pairs",
             "publish pack", "publish unpack")
    kind = next((i for i, k in enumerate(kinds) if r["program"].startswith(k)), len(kinds))
    if kind > 2:
        return (1, kind)
    m = re.match(r"B=(\d+)", r["shape"])
    return (0, r["program"].split()[-1], int(m.group(1)) if m else 0, kind)


def _predict(flops: float, nbytes_: float) -> float:
    return max(flops / PEAK_FLOPS, nbytes_ / PEAK_BYTES)


def _row(program: str, shape: str, a: dict, ideal: dict) -> dict:
    f, b = a["walk"]["flops"], a["walk"]["bytes"]
    t = _predict(f, b)
    ti = _predict(ideal["flops"], ideal["bytes"])
    r = {"program": program, "shape": shape, "flops": f, "bytes": b, "ideal_flops": ideal["flops"],
         "ideal_bytes": ideal["bytes"], "flops_ratio": f / ideal["flops"] if ideal["flops"] else None,
         "bytes_ratio": b / ideal["bytes"], "bound": "compute" if f / PEAK_FLOPS >= b / PEAK_BYTES else "memory",
         "predicted_s": t, "ideal_s": ti, "efficiency": ti / t}
    if "kernels" in a["walk"]:
        r["kernels"] = a["walk"]["kernels"]
    if "xla" in a:
        r["xla_hlo_cost_analysis"] = a["xla"]
    if "memory" in a:
        r["memory"] = a["memory"]
    if "compile_s" in a:
        r["compile_s"] = a["compile_s"]
    return r


def dpo_programs(c, sharding, check, pairs, prompt, response, variants):
    from bench.memory import abstract_state, pair_batch, variant_config
    from launch.presets import load_config
    from duel.train import sequence_logprob_sums, train_step
    from learner.configs import train_config

    base = train_config(load_config("pythia-1b"))
    out = {}
    for v in variants:
        tcfg, layer_remat = variant_config(base, v, check)
        state, batch = abstract_state(c, tcfg, layer_remat), pair_batch(pairs, prompt, response)
        state, batch = _abstract((state, batch), sharding)
        t0 = time.perf_counter()
        comp = train_step.lower(state, batch, tcfg).compile()
        a = analyse(comp)
        a["compile_s"] = time.perf_counter() - t0
        out[v] = (tcfg, a)
    # the reference forward: frozen bf16 weights, chosen + rejected in one pass
    tcfg, _ = variant_config(base, "mb1", check)
    state = abstract_state(c, tcfg, False)
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, jnp.bfloat16), state.params)
    seqs = 2 * pairs

    def A(shape):
        return jax.ShapeDtypeStruct(shape, jnp.int32, sharding=sharding)

    t0 = time.perf_counter()
    comp = sequence_logprob_sums.lower(state.graphdef, _abstract(params, sharding), _abstract(state.rest, sharding),
                                       A((seqs, prompt)), A((seqs, prompt)), A((seqs, response)), A((seqs, response)),
                                       compute_dtype="bfloat16", vocab_chunk=None).compile()
    ref = analyse(comp)
    ref["compile_s"] = time.perf_counter() - t0
    return out, ref


def erm_program(feature, members, hidden, batch, steps, sharding):
    from duel.ensemble import ERM, ERMConfig, _adam_steps

    cfg = ERMConfig(num_members=members, hidden=hidden, steps_per_update=steps)
    state = jax.eval_shape(lambda: ERM.create(feature, cfg, jax.random.key(0)))
    state = _abstract(state, sharding)

    def A(shape, dt=jnp.float32):
        return jax.ShapeDtypeStruct(shape, dt, sharding=sharding)

    t0 = time.perf_counter()
    comp = _adam_steps.lower(state, A((steps, batch, feature)), A((steps, batch, feature)), A((steps, batch)),
                             A(()), A((), jax.random.key(0).dtype), steps=steps).compile()
    a = analyse(comp)
    a["compile_s"] = time.perf_counter() - t0
    return a


def select_program(members, prompts, cands, sharding):
    from duel.explore import _select

    def A(shape, dt=jnp.float32):
        return jax.ShapeDtypeStruct(shape, dt, sharding=sharding)

    t0 = time.perf_counter()
    comp = _select.lower("ee_ts", A((members, prompts, cands)), A((), jax.random.key(0).dtype),
                         A((prompts, cands), jnp.int32), None, None, None, 8).compile()
    a = analyse(comp)
    a["compile_s"] = time.perf_counter() - t0
    return a


def publish_program(c, sharding, tag: str, previous: bool = False):
    """The learner's jitted pack of the float32 masters into bf16 buckets (tag "pack"), or the
    generator's unpack of those buckets into bf16 leaves, its compute dtype on a GPU ("unpack");
    previous: the program before 2026-12-05 (`_previous_pack_fn` / `_previous_unpack_fn`),
    compiled in the same run for the A/B."""
    from duel import transport
    from duel.models import build_model

    params = jax.eval_shape(lambda: build_model(c, 0, jnp.float32).params())
    spec = transport.layout(params, jnp.bfloat16, transport.DEFAULT_BUCKET_BYTES)
    if tag == "pack":
        fn = _previous_pack_fn(spec) if previous else transport._pack_fn(spec, None)
        args = _abstract(jax.tree.leaves(params), sharding)
    else:
        fn = _previous_unpack_fn(spec) if previous else transport._unpack_fn(spec, None, None)
        args = _abstract([jax.ShapeDtypeStruct((n // 4,), jnp.uint32) for n in spec.bucket_sizes], sharding)
    t0 = time.perf_counter()
    a = analyse(fn.lower(args).compile())
    a["compile_s"] = time.perf_counter() - t0
    return a


def _previous_pack_fn(spec):
    """The pack program before 2026-12-05: every leaf cast and laid into one stream, then cut
    into buckets (the stream written and read a second time)."""
    from duel.transport import _to_words

    def run(leaves):
        ends = (*spec.offsets[1:], spec.total_bytes)
        parts = [jnp.pad(w, (0, (end - off) // 4 - w.shape[0])) for w, off, end in
                 zip((_to_words(x.astype(d)) for x, d in zip(leaves, spec.packed_dtypes)), spec.offsets, ends)]
        stream = jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.uint32)
        return [stream[lo // 4:(lo + n) // 4] for lo, n in zip(spec.starts, spec.bucket_sizes)]

    return jax.jit(run)


def _previous_unpack_fn(spec):
    """The unpack program before 2026-12-05: every bucket concatenated into one stream, then each
    leaf sliced out of it."""
    from duel.transport import _from_words

    def run(buckets):
        stream = jnp.concatenate(buckets) if len(buckets) > 1 else buckets[0]
        return [_from_words(stream[off // 4:off // 4 + -(-spec.nbytes(i) // 4)], jnp.dtype(d), shape)
                for i, (shape, d, off) in enumerate(zip(spec.shapes, spec.packed_dtypes, spec.offsets))]

    return jax.jit(run)


def layer_breakdown(text: str, layers: int, loop: int = 1) -> dict:
    """Bytes per kernel position of a decode step (the README's per-kernel table): the kernels of
    entry-level while loop `loop` (1: the first decode segment) in launch order, the layers' run
    found by its period (the kernel count per layer), each position's bytes summed over the layers;
    the kernels outside that run (or differing from their position's kernel) listed on their own."""
    hc = HloCost(text)
    lp = hc.total()["loops"][loop]
    comp = hc.comps[lp["body"]]
    ks = [(i, hc.inst_cost(i, comp, 1)) for i in comp.insts if i.opcode not in _FREE]
    names = [re.sub(r"[.\d]+$", "", i.name) + " " + i.type.split("{")[0] for i, _ in ks]
    where: dict[str, list[int]] = {}
    for n, name in enumerate(names):
        where.setdefault(name, []).append(n)
    # kernels launched once per layer at a constant spacing: the spacing is the layer's kernel count
    periodic = [p for p in where.values() if len(p) == layers and len({b - a for a, b in zip(p, p[1:])}) == 1]
    if not periodic:
        raise ValueError(f"no kernel repeats {layers} times at a constant spacing: is --layers right?")
    per, start = periodic[0][1] - periodic[0][0], min(p[0] for p in periodic)
    # each position sums its kernel over the layers where that kernel is the same one (first and
    # last layers may differ at their edges: those kernels are listed outside, e.g. the LM head)
    inside = {start + L * per + j for L in range(layers) for j in range(per)
              if start + L * per + j < len(ks) and names[start + L * per + j] == names[start + j]}
    rows = [{"position": j, "kernel": names[start + j], "count": sum(start + L * per + j in inside for L in range(layers)),
             "GB": sum(ks[start + L * per + j][1][1] for L in range(layers) if start + L * per + j in inside) / 1e9}
            for j in range(per)]
    outside = [{"kernel": names[n], "GB": c[1] / 1e9} for n, (_, c) in enumerate(ks) if n not in inside]
    (loop_inst,) = [i for i in hc.comps[hc.entry].insts if i.name == lp["while"]]
    cond = hc.comps[_called(loop_inst, "condition")[0]]
    outside += [{"kernel": "loop condition: " + i.name, "GB": c[1] / 1e9} for i in cond.insts
                if i.opcode not in _FREE for c in [hc.inst_cost(i, cond, 1)]]
    return {"kernels_per_step": lp["kernels_per_iter"], "GB_per_step": lp["bytes_per_iter"] / 1e9,
            "per_layer": per, "layers": rows, "outside": outside}


# ================================================================ main

PROGRAMS = ("decode", "dpo", "erm", "select", "pack", "unpack")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", default=",".join(PROGRAMS))
    ap.add_argument("--models", default="pythia-1b,qwen2.5-0.5b", help="decode/prefill shapes")
    ap.add_argument("--batches", default=None, help="decode batches (default 64,256; check: 2)")
    ap.add_argument("--variants", default="mb1,mb1+remat,preset,preset+remat", help="DPO step variants (bench/memory.py)")
    ap.add_argument("--target", default=None, choices=("h100", "local"),
                    help="default h100 (check: h100 when the plugin is installed, else this backend)")
    ap.add_argument("--decode-layers", default="auto", choices=("auto", "scan", "unroll"),
                    help="the decode step's layer loop; auto: as generate runs it on the target (unrolled on a GPU)")
    ap.add_argument("--attention", default="xla", choices=("xla", "cudnn"),
                    help="cudnn: a what-if, not the product: every attention replaced by cuDNN's fused flash "
                         "attention (jax.nn.dot_product_attention, implementation='cudnn'; needs the nvidia-cudnn "
                         "wheel in this venv); write it under another --name")
    ap.add_argument("--check", action="store_true", help="tiny shapes, every program: the table's completeness")
    ap.add_argument("--name", default="cost_model")
    ap.add_argument("--append", action="store_true", help="keep the rows of an earlier run's JSON (same target) "
                    "that this run does not recompute")
    ap.add_argument("--keep-hlo", default=None, help="directory to write each program's compiled HLO text into")
    ap.add_argument("--markdown", default=None, metavar="JSON", help="print the README table of a result JSON; compile nothing")
    ap.add_argument("--breakdown", default=None, metavar="HLO", help="a kept generate program (--keep-hlo): bytes "
                    "per kernel position of its first decode segment's step, summed over --layers; compile nothing")
    ap.add_argument("--layers", type=int, default=24, help="with --breakdown: the model's layers")
    args = ap.parse_args(argv)
    from bench.common import print_table, use_cudnn_attention, write_result

    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return None
    if args.breakdown:
        b = layer_breakdown(Path(args.breakdown).read_text(), args.layers)
        print(f"{b['kernels_per_step']:.0f} kernels, {b['GB_per_step']:.3f} GB per step; {b['per_layer']} kernels per layer")
        print_table([{**r, "GB": round(r["GB"], 3)} for r in b["layers"]], title=f"summed over {args.layers} layers")
        print_table([{**r, "GB": round(r["GB"], 3)} for r in b["outside"] if r["GB"] > 1e-3], title="outside the layers (> 1 MB)")
        return b

    label, sharding = _target(args.check, args.target)
    if args.attention == "cudnn" and not use_cudnn_attention():
        raise SystemExit("--attention cudnn needs the JAX CUDA plugin (a deviceless compile) or a GPU")
    models = _models(args.check)
    progs = args.programs.split(",")
    batches = [int(b) for b in (args.batches or ("2" if args.check else "64,256")).split(",")]
    prompt, new_tokens = (8, 32) if args.check else (128, 128)
    pairs, p_len, r_len = (4, 8, 8) if args.check else (8, 256, 256)
    rows: list[dict] = []
    payload = {"label": LABEL, "target": label, "attention": args.attention, "peaks": {"bf16_flops_per_s": PEAK_FLOPS, "hbm_bytes_per_s": PEAK_BYTES},
               "formula": "predicted_s = max(flops / 989e12, bytes / 3.35e12); efficiency = ideal_s / predicted_s",
               "counts": "walk: loop-aware count of the compiled module's kernels (dots only for FLOPs); "
                         "xla_hlo_cost_analysis: XLA's HloCostAnalysis of the same module, while bodies counted once",
               "load_average": os.getloadavg(), "rows": rows}
    if label == "h100-aot":
        from bench.memory import H100_TARGET, _plugin_version

        payload.update({"h100_target_config": H100_TARGET.strip(), "jax_cuda_plugin": _plugin_version()})
    hlo_dir = Path(args.keep_hlo) if args.keep_hlo else None
    if hlo_dir:
        hlo_dir.mkdir(parents=True, exist_ok=True)

    def keep(tag, a):
        text = a.pop("hlo_text", None)
        if hlo_dir and text:
            (hlo_dir / f"{tag}.hlo").write_text(text)

    old_rows = []
    if args.append:
        from bench.common import results_dir

        path = results_dir(args.check) / f"{args.name}.json"
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("target") == label:
                old_rows = old.get("rows", [])
                for k, v in old.items():  # keep the earlier run's records ("before", provenance...)
                    payload.setdefault(k, v)

    def flush():
        mine = {(r["program"], r["shape"]) for r in rows}
        payload["rows"] = sorted([r for r in old_rows if (r["program"], r["shape"]) not in mine] + rows, key=row_order)
        write_result(args.name, payload, check=args.check)

    if "decode" in progs:
        for name in args.models.split(","):
            c = models[name]
            for batch in batches:
                unroll = args.decode_layers == "unroll" or (args.decode_layers == "auto" and label != "cpu")
                g, p, bounds = decode_programs(c, name, batch, prompt, new_tokens, sharding, args.check, unroll)
                copies = cache_copies(g["hlo_text"], c.num_layers, batch, c.num_kv_heads, c.head_dim)
                keep(f"generate-{name}-b{batch}", g)
                keep(f"prefill-{name}-b{batch}", p)
                new = _rows_decode(c, name, batch, prompt, new_tokens, g, p, bounds)
                new[-1]["full_cache_copies_in_loop"] = copies
                new[-1]["decode_layers"] = "unrolled" if unroll else "scan"
                new[-1]["conditionals"] = g["conditionals"]
                new[-1]["compile_s"] = g["compile_s"]
                new[-1]["memory"] = g.get("memory")
                rows += new
                for r in new:
                    print(_short(r), flush=True)
                flush()
    if "dpo" in progs:
        c = models["pythia-1b"]
        steps, ref = dpo_programs(c, sharding, args.check, pairs, p_len, r_len, args.variants.split(","))
        seqs, seq_len = 2 * pairs, p_len + r_len
        ri = ideal_reference(c, seqs, seq_len)
        keep("reference-pythia-1b", ref)
        ref_row = _row("reference forward pythia-1b", f"{seqs} seq x {seq_len}", ref, ri)
        for v, (tcfg, a) in steps.items():
            keep(f"dpo-{v}", a)
            r = _row(f"DPO step pythia-1b [{v}]", f"{pairs} pairs x {seq_len}, mb={tcfg.micro_batches}, "
                     f"remat={tcfg.remat}", a, ideal_dpo(c, seqs, seq_len))
            r["with_reference_forward"] = {
                "flops_ratio": (r["flops"] + ref_row["flops"]) / (r["ideal_flops"] + ri["flops"]),
                "predicted_s": r["predicted_s"] + ref_row["predicted_s"]}
            rows.append(r)
            print(_short(r), flush=True)
        rows.append(ref_row)
        print(_short(ref_row), flush=True)
        flush()
    if "erm" in progs:
        feature = models["pythia-1b"].hidden_size
        members, hidden, batch, steps_ = (4, (16, 16), 8, 2) if args.check else (20, (128, 128), 64, 5)
        a = erm_program(feature, members, hidden, batch, steps_, sharding)
        keep("erm", a)
        rows.append(_row("ERM update", f"K={members} F={feature} hidden={hidden} B={batch} x {steps_} steps", a,
                         ideal_erm(feature, hidden, members, batch, steps_)))
        print(_short(rows[-1]), flush=True)
        flush()
    if "select" in progs:
        members, P, M = (4, 8, 4) if args.check else (20, 128, 16)
        a = select_program(members, P, M, sharding)
        keep("select", a)
        rows.append(_row("select_pairs ee_ts", f"K={members} P={P} M={M}", a, ideal_select(members, P, M)))
        print(_short(rows[-1]), flush=True)
        flush()
    for tag, shape, ideal in (("pack", "f32 -> bf16 buckets", ideal_pack),
                              ("unpack", "bf16 buckets -> bf16 leaves", ideal_unpack)):
        if tag not in progs:
            continue
        c = models["pythia-1b"]
        a, prev = publish_program(c, sharding, tag), publish_program(c, sharding, tag, previous=True)
        keep(tag, a)
        keep(f"{tag}-previous-stream", prev)
        rows.append(_row(f"publish {tag} pythia-1b", shape, a, ideal(c)))
        old = _short(_row(f"publish {tag} pythia-1b", "previous: one stream, then cut", prev, ideal(c)))
        rows[-1]["previous_one_stream"] = {**old, "memory": prev.get("memory")}
        print(_short(rows[-1]), "\nprevious:", rows[-1]["previous_one_stream"], flush=True)
        flush()
    flush()
    print_table([_short(r) for r in rows], title=f"{LABEL}: H100 SXM roofline, compiled for {label}"
                + (" (check: tiny shapes, numbers meaningless)" if args.check else ""))
    return payload


def markdown(payload: dict) -> str:
    """The README table of a result JSON: per program compiled and ideal FLOPs/bytes, efficiency,
    predicted time (and tok/s beside the peers measured on a real H100)."""
    lines = ["| program | shape | GFLOP (compiled / ideal) | GB moved (compiled / ideal) | efficiency | "
             "predicted time | kernels | predicted tok/s | measured H100 peers tok/s (transformers / plain JAX) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in payload["rows"]:
        t = r["predicted_s"]
        tok = f"{r['predicted_tok_s']:,.0f}" if "predicted_tok_s" in r else ""
        peers = ""
        if "predicted_tok_s" in r:
            tf, jp = r.get("peer_transformers_tok_s"), r.get("peer_jax_plain_tok_s")
            peers = f"{tf:,} / {jp:,}" if tf and jp else ""
        lines.append(f"| {r['program']} | {r['shape']} | {r['flops'] / 1e9:,.1f} / {(r.get('ideal_flops') or 0) / 1e9:,.1f} | "
                     f"{r['bytes'] / 1e9:,.2f} / {(r.get('ideal_bytes') or 0) / 1e9:,.2f} | {r['efficiency']:.2f} | "
                     f"{t * 1e3:,.3g} ms | {r['kernels']:,.0f} | {tok} | {peers} |" if r.get("kernels") else
                     f"{t * 1e3:,.3g} ms |  | {tok} | {peers} |")
    return "\n".join(lines)


def _short(r: dict) -> dict:
    """The table's columns."""
    out = {"program": r["program"], "shape": r["shape"], "GFLOP": r["flops"] / 1e9, "GB": r["bytes"] / 1e9,
           "ideal GFLOP": (r.get("ideal_flops") or 0) / 1e9, "ideal GB": (r.get("ideal_bytes") or 0) / 1e9,
           "efficiency": r["efficiency"], "predicted ms": r["predicted_s"] * 1e3}
    if "predicted_tok_s" in r:
        out["predicted tok/s"] = r["predicted_tok_s"]
    return out


if __name__ == "__main__":
    main()
