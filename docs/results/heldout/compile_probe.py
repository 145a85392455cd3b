import sys, time
sys.path.insert(0, 'docs/results/heldout')
import jax, numpy as np
from duel.models import load_pretrained
from duel.tasks import get_task, load_tokenizer
from duel.evaluate import generate_texts
name = sys.argv[1]
t = get_task(name); path = t.starting_policy()
model, _ = load_pretrained(path); tok = load_tokenizer(path)
print(name, "vocab", model.config.vocab_size if hasattr(model, "config") else "?", flush=True)
prompts = [r['prompt'] for r in t.eval_prompts][:8]
t0 = time.time()
texts, _ = generate_texts(model, tok, prompts, jax.random.PRNGKey(0), n=1, temperature=1.0, max_new_tokens=6, batch_size=8)
print(name, "first generate (compile + run)", round(time.time() - t0, 1), "s", texts[:3], flush=True)
