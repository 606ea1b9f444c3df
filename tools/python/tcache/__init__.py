"""tcache: Python over a tcachefs mount (pure Python).

- ``TensorCache(path)``: a dict of tensor dicts, one entry per key, written
  atomically and read back mapped, without copies (tcache.tensorcache).
- ``page_hashes(token_ids, page_size, prior=None, namespace=None)``: the
  keys SGLang and pymllm give KV pages (tcache.pages).
- ``PageStore(path, page_size, suffix="", namespace=None)``: a KV-cache
  page tier (HiCache/LMCache style) over a mount: longest-prefix match,
  put with parent links, get into caller buffers, locks (tcache.pagestore).
- ``load(path)``: one tensor as a read-only numpy array, mapped straight
  from the store's pool where this process may read it (``.direct``),
  else through the mount (tcache.direct).

Needs numpy for TensorCache (torch for bfloat16 and float8 tensors);
tcache.pages and tcache.pagestore are the standard library alone.
"""
from .direct import load
from .pages import page_hashes
from .pagestore import PageStore
from .tensorcache import TensorCache, human_size, key_to_basename

__all__ = ["TensorCache", "PageStore", "page_hashes", "key_to_basename",
           "human_size", "load"]
