"""Periodic evaluation of the learner's policy (runs where the policy lives).

Two win rates on the first `eval.num_prompts` eval prompts, greedy (or sampled) responses,
judged by the run's oracle kind (evaluation calls are not queries):

  win_rate            against the task's reference responses (`duel.evaluate`)
  win_rate_vs_start   against the starting policy's responses to the same prompts

plus `start_win_rate`, the starting policy's own win rate against the references, so a row
says how far the run has moved from where it began.
"""

from __future__ import annotations

from duel.loop_utils import KEY_EVAL, step_key


class Evaluator:
    def __init__(self, cfg, model_dir: str):
        from duel.oracles import make_oracle
        from duel.tasks import get_task
        from duel.tasks.tokenizer import load_tokenizer

        self.cfg = cfg
        self.model_dir = model_dir
        self.task = get_task(cfg.task)
        self.rows = list(self.task.eval_prompts)[: cfg.eval.num_prompts]
        self.refs = self.task.references
        self.tokenizer = load_tokenizer(model_dir)
        self.oracle = make_oracle({"kind": cfg.oracle.kind, **cfg.oracle.options}, task=self.task)
        self._start = None  # (texts, WinRate) of the starting policy

    def _texts(self, model, key) -> list[str]:
        from duel.evaluate import generate_texts

        temp = 0.0 if self.cfg.eval.greedy else self.cfg.sampling.temperature
        texts, _ = generate_texts(model, self.tokenizer, [r["prompt"] for r in self.rows], key,
                                  n=1, temperature=temp, max_new_tokens=self.cfg.sampling.max_new_tokens)
        return [t[0] for t in texts]

    def _vs_refs(self, texts):
        from duel.evaluate import win_rate

        return win_rate(self.oracle, [r["prompt"] for r in self.rows], texts,
                        [self.refs[r["id"]] for r in self.rows])

    def start(self):
        if self._start is None:
            from duel.models import load_pretrained

            model, _ = load_pretrained(self.model_dir)
            texts = self._texts(model, step_key(self.cfg.seed, 0, KEY_EVAL))
            self._start = (texts, self._vs_refs(texts))
        return self._start

    def evaluate(self, model, step: int) -> dict:
        from duel.evaluate import win_rate

        start_texts, start_wr = self.start()
        key = step_key(self.cfg.seed, 0 if self.cfg.eval.greedy else step, KEY_EVAL)
        texts = self._texts(model, key)
        wr = self._vs_refs(texts)
        vs = win_rate(self.oracle, [r["prompt"] for r in self.rows], texts, start_texts)
        ok = [bool(self.task.well_formed(r["prompt"], t)) for r, t in zip(self.rows, texts)]
        return {"win_rate": wr.win_rate, "win_rate_lo": wr.lo, "win_rate_hi": wr.hi, "n": wr.n,
                "win_rate_vs_start": vs.win_rate, "win_rate_vs_start_lo": vs.lo,
                "win_rate_vs_start_hi": vs.hi, "start_win_rate": start_wr.win_rate,
                "well_formed": sum(ok) / max(len(ok), 1), "example": texts[0] if texts else ""}

