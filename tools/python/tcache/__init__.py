"""tcache: Python over a tcachefs mount (pure Python).

- ``TensorCache(path)``: a dict of tensor dicts, one entry per key, written
  atomically and read back mapped, without copies (tcache.tensorcache).
- ``page_hashes(token_ids, page_size, prior=None, namespace=None)``: the
  keys SGLang and pymllm give KV pages (tcache.pages).

Needs numpy for TensorCache (torch for bfloat16 and float8 tensors);
tcache.pages is the standard library alone.
"""
from .pages import page_hashes
from .tensorcache import TensorCache, human_size, key_to_basename

__all__ = ["TensorCache", "page_hashes", "key_to_basename", "human_size"]
