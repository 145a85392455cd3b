"""Tasks: prompts, reference responses, a gold reward and a starting policy (duel.tasks.base).

    task = get_task("arithmetic")          # or "style", "sort", or "my_pkg.my_module:MyTask"
    task.train_prompts, task.eval_prompts  # [{"id", "prompt"}]
    task.references[row_id], task.gold_reward(prompt, response), task.well_formed(prompt, response)
    path = task.starting_policy()          # HF dir, trained by SFT once and cached
"""

from duel.tasks.base import Task, default_cache_dir, get_task, register_task
from duel.tasks.tokenizer import Tokenizer, build_tokenizer, load_tokenizer, save_tokenizer

__all__ = [
    "Task",
    "Tokenizer",
    "build_tokenizer",
    "default_cache_dir",
    "get_task",
    "load_tokenizer",
    "register_task",
    "save_tokenizer",
]
