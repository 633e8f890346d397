"""The encoder backbone every Transformer model in gicho shares: stem → encoder → pool.

:class:`EncoderBackbone` takes a stem (:mod:`gicho.nn.stems`: token ids, image patches or
continuous features, with their [CLS], positions, norm and dropout) and a
:class:`~gicho.nn.TransformerEncoder`, and nothing else. As timm's models, the forward pass is
split into :meth:`~EncoderBackbone.forward_features` (stem and encoder) and
:meth:`~EncoderBackbone.pool` (one vector per sequence, :func:`gicho.nn.pooling.pool` with the
stem's ``num_prefix_tokens``); heads live in the model families (:mod:`gicho.models`).

:meth:`~EncoderBackbone.forward_pooled` is what every pooling head calls: with ``mode="cls"``
it asks the encoder for row 0 only, so the last layer skips the other rows (the same numbers,
tested), whichever family the head belongs to.

Inputs are checked where batches are built (:func:`gicho.nn.pooling.check_nonempty`), not on
every call. The one host synchronisation of the forward pass is the encoder reading the lengths
of a padded batch to unpad it (:mod:`gicho.nn.ragged`).
"""

from __future__ import annotations

from torch import Tensor, nn

from gicho.nn.pooling import POOL_MODES, PoolMode, pool
from gicho.nn.stems import Stem
from gicho.nn.transformer import EncoderOutput, TransformerEncoder

__all__ = ["EncoderBackbone"]


class EncoderBackbone(nn.Module):
    """A stem and a Transformer encoder.

    Parameters
    ----------
    stem : Stem
        Inputs → token vectors and padding mask (see :mod:`gicho.nn.stems`).
    encoder : TransformerEncoder
    """

    def __init__(self, stem: Stem, encoder: TransformerEncoder) -> None:
        super().__init__()
        self.stem = stem
        self.encoder = encoder

    def forward_features(self, attention_mask: Tensor | None = None, *, output_attentions: bool = False,
                         rows: int | None = None, positions: Tensor | None = None,
                         **inputs: Tensor) -> EncoderOutput:
        """Embed and encode; ``inputs`` are the stem's (``stem.input_names``).

        Parameters
        ----------
        attention_mask : Tensor, bool or int, shape (B, T), optional
            1/True for real tokens. Default: the stem's padding mask (or no padding).
        output_attentions : bool
            Return per-layer attention weights (explicit attention path).
        rows : int, optional
            Only the first ``rows`` positions of ``last_hidden_state`` are wanted (1: the
            [CLS] state); the last layer then skips the other rows
            (:meth:`TransformerEncoder.forward`).
        positions : Tensor, int64, shape (K,), optional
            Only these positions' states are wanted, indices into the flattened (B·T')
            positions; ``last_hidden_state`` is then (K, D) and ``mask`` None.

        Returns
        -------
        EncoderOutput
            ``last_hidden_state`` (B, T', D) with T' = T + ``stem.num_prefix_tokens`` (T' =
            ``rows`` when given), ``mask`` (B, T') or None, ``attentions`` when requested.
        """
        x, mask = self.stem(attention_mask, **inputs)  # (B, T', D), (B, T') | None
        out = self.encoder(x, mask, output_attentions=output_attentions, rows=rows, positions=positions)
        out.mask = None if positions is not None or mask is None else mask[:, :rows]
        return out

    def pool(self, features: EncoderOutput, mode: PoolMode) -> Tensor:
        """(B, T', D) → (B, D): [CLS], or the mean or max of the real tokens (padding and the
        stem's prefix tokens excluded)."""
        if mode == "cls" and not self.stem.has_cls:
            raise ValueError(f"mode='cls' needs a [CLS] token, and this backbone's stem has cls="
                             f"{self.stem.cls!r}; build it with cls='learned' or cls='input'")
        return pool(features.last_hidden_state, features.mask, mode, self.stem.num_prefix_tokens,
                    check_empty=False)

    def forward_pooled(self, mode: PoolMode, attention_mask: Tensor | None = None, *,
                       output_attentions: bool = False, **inputs: Tensor) -> tuple[Tensor, EncoderOutput]:
        """The pooled vector (B, D) and the encoder's output, for a head that pools by ``mode``.

        ``mode="cls"`` computes the last layer's prefix rows only ([CLS], and a distillation
        token after it) unless attention maps are asked for (those cover every row); the
        returned ``EncoderOutput`` then holds those rows.
        """
        if mode not in POOL_MODES:
            raise ValueError(f"argument `mode` must be one of {POOL_MODES}; got {mode!r}")
        rows = max(1, self.stem.num_prefix_tokens) if mode == "cls" and not output_attentions else None
        features = self.forward_features(attention_mask, output_attentions=output_attentions, rows=rows,
                                         **inputs)
        return self.pool(features, mode), features
