"""The text tower on tokens cut after their pooled position (exact under a causal mask)."""

from __future__ import annotations

import torch
from open_clip.transformer import text_global_pool


def pool_index(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor | None:
    """Per row, the position the text tower pools at, or None where the model is not an
    open_clip CLIP text transformer with a causal mask and token pooling (then no trimming).

    Under the causal mask a position sees only itself and earlier ones, so the pooled feature
    of a row does not depend on anything after its pooled position: cutting the padded tail
    leaves it bit-identical (tests/test_clip.py asserts so in fp32 and bf16; see CUT_MULTIPLE).
    """
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final")
    if getattr(model, "attn_mask", None) is None or not all(hasattr(model, a) for a in needed):
        return None
    pool = getattr(model, "text_pool_type", None)
    if pool == "argmax":  # the OpenAI tokenizer's EOT is its largest id
        return tokens.argmax(dim=-1)
    if pool == "eos" and getattr(model, "text_eos_id", None) is not None:
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    if pool == "first":
        return torch.zeros(len(tokens), dtype=torch.long)
    return None


# Texts are cut to a multiple of this many tokens. Bit-identity needs it: the attention's
# sums over keys run in 16-lane vectors (fp32 and bf16 alike), and a key length that ends in
# a partial vector adds the same nonzero terms in another order (measured: a cut to 21 or 29
# tokens differs from the full 77 in the last bits, 32 or 48 do not).
CUT_MULTIPLE = 16


def cut_length(longest: int, context: int) -> int:
    """Tokens to keep for a batch whose longest row pools at position ``longest - 1``."""
    return min(context, -(-longest // CUT_MULTIPLE) * CUT_MULTIPLE)


def encode_cut_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``CLIP.encode_text`` on tokens cut to length L = tokens.shape[1]: the
    positional embedding and the causal mask are sliced to L as well."""
    n = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast)
    x = x + model.positional_embedding[:n].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    x = model.ln_final(x)
    eos = getattr(model, "text_eos_id", None)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=eos)
    proj = model.text_projection
    if proj is None:
        return x
    return proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
