"""Periodic evaluation of the learner's policy (runs where the policy lives).

Two win rates on the first `eval.num_prompts` eval prompts, greedy (or sampled) responses,
judged by the run's oracle kind (evaluation calls are not queries):

  win_rate            against the reference responses: the `data:` eval rows' references
                      column, else the task's (`duel.evaluate`, learner.setup.eval_prompts)
  win_rate_vs_start   against the starting policy's responses to the same prompts

plus `start_win_rate`, the starting policy's own win rate against the references, so a row
says how far the run has moved from where it began.

With `eval.samples` = n > 0, n responses per prompt are also sampled at `sampling.temperature`
and the row carries `expected_win_rate` (the mean of the oracle's P(policy > reference): no label
is sampled and no threshold applied, so it moves smoothly as the policy improves) with its 95%
interval over prompts, `sampled_win_rate` (the same comparisons thresholded at 1/2) and
`start_expected_win_rate`. The sampling key is the same at every eval of a run and for every run
with the same seed (common random numbers): two evals, or two strategies, differ by their
policies, not by their draws.
"""

from __future__ import annotations

import numpy as np

from duel.keys import KEY_EVAL, step_key


class Evaluator:
    def __init__(self, cfg, model_dir: str):
        from actors.oracle import OracleSpec
        from duel.oracles import make_oracle
        from duel.tasks.tokenizer import load_tokenizer
        from learner.setup import eval_prompts, resolve_task

        self.cfg = cfg
        self.model_dir = model_dir
        self.task = resolve_task(cfg)  # None: a run of data alone (no well_formed in its rows)
        self.rows = eval_prompts(cfg, self.task)[: cfg.eval.num_prompts]
        self.refs = {r["id"]: r["reference"] for r in self.rows}
        self.tokenizer = load_tokenizer(model_dir)
        self.oracle = make_oracle(OracleSpec.from_config(cfg).oracle_config(), task=self.task)
        self._start = None  # (texts, WinRate, ExpectedWinRate | None) of the starting policy

    def _texts(self, model, key) -> list[str]:
        from duel.evaluate import generate_texts

        temp = 0.0 if self.cfg.eval.greedy else self.cfg.sampling.temperature
        texts, _ = generate_texts(model, self.tokenizer, [r["prompt"] for r in self.rows], key,
                                  n=1, temperature=temp, max_new_tokens=self.cfg.sampling.max_new_tokens,
                                  **self._prompt_opts())
        return [t[0] for t in texts]

    def _prompt_opts(self) -> dict:
        """Chat messages and the prompt length limit, as the training prompts are encoded."""
        return {"messages": [r.get("messages") for r in self.rows],
                "max_prompt_len": self.cfg.data.max_prompt_len}

    def _sampled(self, model):
        """-> (P(response > reference) [P, n], texts [P][n]) for eval.samples responses per prompt."""
        from duel.evaluate import generate_texts

        n = self.cfg.eval.samples
        prompts = [r["prompt"] for r in self.rows]
        texts, _ = generate_texts(model, self.tokenizer, prompts, step_key(self.cfg.seed, 0, KEY_EVAL, 1),
                                  n=n, temperature=self.cfg.sampling.temperature,
                                  top_p=self.cfg.sampling.top_p, max_new_tokens=self.cfg.sampling.max_new_tokens,
                                  **self._prompt_opts())
        refs = [self.refs[r["id"]] for r in self.rows]
        res = self.oracle.label([p for p in prompts for _ in range(n)], [y for ys in texts for y in ys],
                                [r for r in refs for _ in range(n)])
        return np.asarray(res.prob_a, np.float64).reshape(len(prompts), n), texts

    def _vs_refs(self, texts):
        from duel.evaluate import win_rate

        return win_rate(self.oracle, [r["prompt"] for r in self.rows], texts,
                        [self.refs[r["id"]] for r in self.rows])

    def start(self):
        if self._start is None:
            from duel.models import load_pretrained

            model, _ = load_pretrained(self.model_dir)
            texts = self._texts(model, step_key(self.cfg.seed, 0, KEY_EVAL))
            expected = None
            if self.cfg.eval.samples:
                from duel.evaluate import expected_win_rate

                expected = expected_win_rate(self._sampled(model)[0])
            self._start = (texts, self._vs_refs(texts), expected)
        return self._start

    def evaluate(self, model, step: int) -> dict:
        from duel.evaluate import win_rate

        start_texts, start_wr, start_expected = self.start()
        key = step_key(self.cfg.seed, 0 if self.cfg.eval.greedy else step, KEY_EVAL)
        texts = self._texts(model, key)
        wr = self._vs_refs(texts)
        vs = win_rate(self.oracle, [r["prompt"] for r in self.rows], texts, start_texts)
        formed = {}
        if self.task is not None:  # the task's rule; data alone has none
            ok = [bool(self.task.well_formed(r["prompt"], t)) for r, t in zip(self.rows, texts)]
            formed = {"well_formed": sum(ok) / max(len(ok), 1)}
        return {"win_rate": wr.win_rate, "win_rate_lo": wr.lo, "win_rate_hi": wr.hi, "n": wr.n,
                "win_rate_vs_start": vs.win_rate, "win_rate_vs_start_lo": vs.lo,
                "win_rate_vs_start_hi": vs.hi, "start_win_rate": start_wr.win_rate,
                **formed, "example": texts[0] if texts else "",
                **self._expected(model, start_expected)}

    def _expected(self, model, start) -> dict:
        """The sampled-eval fields of an eval row ({} with eval.samples = 0)."""
        from duel.evaluate import expected_win_rate, win_rate_from_probs

        if not self.cfg.eval.samples:
            return {}
        prob, _ = self._sampled(model)
        return {**expected_win_rate(prob).as_dict(), "sampled_win_rate": win_rate_from_probs(prob).win_rate,
                "start_expected_win_rate": start.mean}

