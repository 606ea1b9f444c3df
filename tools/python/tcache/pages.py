"""Page hashes of token sequences, the keys SGLang and pymllm give KV pages.

The chain (SGLang's ``get_hash_str``, pymllm's the same): a page's key is
the hex SHA-256 digest of

    the raw 32 bytes of the previous page's digest (nothing for the first
    page), then each token id of the page as 4 bytes, little-endian,
    unsigned.

So a page's key names the whole prefix up to and including it: two
sequences share a page's key exactly when they share every token up to the
end of that page.  Only full pages get a key; a last partial page has none.

This module is the standard library alone (hashlib, struct); token ids may
be any iterable of ints, a numpy array or a torch tensor (``.tolist()`` is
used when there is one).
"""
import hashlib
import struct

__all__ = ["page_hashes", "NAMESPACE_PREFIX"]

#: What a namespace is prefixed with before it is hashed into the seed.
NAMESPACE_PREFIX = b"tcache-namespace:"


def _namespace_seed(namespace):
    if isinstance(namespace, str):
        namespace = namespace.encode("utf-8")
    if not isinstance(namespace, (bytes, bytearray, memoryview)):
        raise TypeError("namespace must be bytes or str, not %s"
                        % type(namespace).__name__)
    return hashlib.sha256(NAMESPACE_PREFIX + bytes(namespace)).digest()


def _prior_digest(prior):
    if isinstance(prior, (bytes, bytearray)):
        raw = bytes(prior)
    elif isinstance(prior, str):
        try:
            raw = bytes.fromhex(prior)
        except ValueError:
            raise ValueError("prior must be a hex key of 64 digits, got %r"
                             % prior) from None
    else:
        raise TypeError("prior must be a hex str (or 32 raw bytes), not %s"
                        % type(prior).__name__)
    if len(raw) != 32:
        raise ValueError("prior must be a SHA-256 key (32 bytes, 64 hex "
                         "digits), got %d bytes" % len(raw))
    return raw


def page_hashes(token_ids, page_size, prior=None, namespace=None):
    """Return the hex keys of each full page of ``token_ids``, in order.

    token_ids  ints in [0, 2**32) (an iterable, numpy array or torch tensor)
    page_size  tokens per page, > 0; a last partial page gets no key
    prior      the hex key of the page just before ``token_ids[0]``
               (a chain continued), or None when ``token_ids`` starts the
               sequence
    namespace  None, or bytes or str (UTF-8 encoded): keeps the keys of
               one model (or tokenizer, or tenant) apart from another's

    With ``namespace=None`` the keys are byte-identical to SGLang's and
    pymllm's: page i's digest is SHA-256 over the raw 32-byte digest of
    page i-1 (of ``prior`` for the first page; nothing when ``prior`` is
    None), then each token id as 4 bytes little-endian unsigned.

    With a namespace, each page's digest is first fed the 32 raw bytes of
    ``sha256(b"tcache-namespace:" + namespace)``, then the previous
    digest and the tokens exactly as above.  The namespace therefore
    enters every page, so every key differs from the unnamespaced one and
    from any other namespace's, ``prior`` given or not; a chain continued
    with ``prior`` must pass the same namespace as the pages before it.

    Raises ValueError for a page_size < 1, a token id out of range or a
    malformed ``prior``; TypeError for a non-integer token id.
    """
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise TypeError("page_size must be an int")
    if page_size < 1:
        raise ValueError("page_size must be at least 1, got %d" % page_size)
    if hasattr(token_ids, "tolist"):
        token_ids = token_ids.tolist()
    tokens = list(token_ids)
    if tokens and not isinstance(tokens[0], int) and hasattr(tokens[0], "__index__"):
        tokens = [t.__index__() for t in tokens]
    seed = None if namespace is None else _namespace_seed(namespace)
    prev = None if prior is None else _prior_digest(prior)
    pack = struct.Struct("<%dI" % page_size).pack
    keys = []
    for start in range(0, len(tokens) - page_size + 1, page_size):
        page = tokens[start:start + page_size]
        try:
            raw = pack(*page)
        except struct.error:
            for t in page:
                if isinstance(t, bool) or not isinstance(t, int):
                    raise TypeError("token ids must be ints, got %r" % (t,)) from None
                if not 0 <= t < 2 ** 32:
                    raise ValueError("token id %d is not in [0, 2**32)" % t) from None
            raise
        h = hashlib.sha256()
        if seed is not None:
            h.update(seed)
        if prev is not None:
            h.update(prev)
        h.update(raw)
        prev = h.digest()
        keys.append(h.hexdigest())
    return keys
