"""An attention-based RNN encoder-decoder (seq2seq) for character sequences.

The encoder embeds the source characters and reads them with a (bi)directional GRU or LSTM;
its top-layer hidden states are the attention keys and values. The decoder is an LSTM whose
hidden state ``h_t`` is the attention query; the context ``c_t`` and ``h_t`` are combined
into Luong's attentional hidden state ``h~_t = tanh(W_c [c_t; h_t])`` (Luong et al. 2015,
eq. 5), which predicts the next token, ``p(y_t) = softmax(W_s h~_t)`` (eq. 6). With
``input_feeding`` (§3.3), ``h~_{t-1}`` is concatenated to the next input embedding.

The score function is a config choice: ``dot`` (``h_tᵀ h̄_s``), ``general``
(``h_tᵀ W_a h̄_s``) or ``additive`` (Bahdanau et al. 2015, ``vᵀ tanh(W [h_t; h̄_s])``), from
:mod:`gicho.nn.score_attention`. The decoder width is the encoder's output width
(``hidden_dim × 2`` when bidirectional), so every score function applies; its initial
state is ``tanh(W_b [h→_S; h←_1])`` from the encoder's last layer, the cell state zero.

Tensors are batch-first and padded; ``src_mask`` is True at real characters (the
:mod:`gicho.nn.attention` polarity). Training uses teacher forcing with a ratio; decoding is
greedy or beam search with length normalisation (:mod:`gicho.models._seq2seq_decoding`), and
returns the attention weights of every output step. The model contains no training loop.

References
----------
Luong, Pham, Manning (2015), "Effective approaches to attention-based neural machine
translation". Bahdanau, Cho, Bengio (2015), "Neural machine translation by jointly learning
to align and translate". Wu et al. (2016), "Google's neural machine translation system"
(length normalisation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from gicho._validation import check_choice, check_dropout, check_positive, describe
from gicho.models._pretrained import PretrainedModel
from gicho.models._seq2seq_decoding import beam_search, greedy
from gicho.nn.losses import IGNORE_INDEX
from gicho.nn.score_attention import AdditiveAttention, DotAttention, GeneralAttention

__all__ = ["Decoder", "Encoder", "Seq2Seq", "Seq2SeqConfig"]

RNN_TYPES = ("gru", "lstm")
SCORES = ("dot", "general", "additive")


@dataclass
class Seq2SeqConfig:
    """Hyper-parameters of :class:`Seq2Seq`.

    Parameters
    ----------
    src_vocab_size : int
        Size of the source vocabulary (special tokens included).
    tgt_vocab_size : int
        Size of the target vocabulary (special tokens included).
    pad_id : int
        Padding token id (shared by both vocabularies).
    bos_id : int
        Start-of-sequence token id of the target vocabulary.
    eos_id : int
        End-of-sequence token id of the target vocabulary.
    embed_dim : int
        Character embedding width E (encoder and decoder).
    hidden_dim : int
        Encoder hidden width H per direction; the decoder width is
        ``D = H × (2 if bidirectional else 1)``.
    rnn : {"gru", "lstm"}
        Encoder cell (the decoder is always an LSTM).
    bidirectional : bool
        Bidirectional encoder.
    encoder_layers : int
        Stacked RNN layers of the encoder.
    decoder_layers : int
        Stacked LSTM layers of the decoder.
    attention : {"dot", "general", "additive"}
        Score function.
    attention_dim : int
        Hidden width of the additive score's tanh network.
    input_feeding : bool
        Feed ``h~_{t-1}`` to the decoder input (Luong §3.3). Without it, teacher-forced
        steps run as one batched call (faster).
    dropout : float
        Dropout on embeddings and on ``h~_t``, and between stacked RNN layers, in [0, 1).
    teacher_forcing_ratio : float
        In training, probability that step ``t`` reads the gold previous token rather than
        the model's own argmax (drawn per example and step). Evaluation always reads gold.
    max_target_len : int
        Longest decoded output (end token included).
    """

    src_vocab_size: int = 100
    tgt_vocab_size: int = 15
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    embed_dim: int = 64
    hidden_dim: int = 128
    rnn: Literal["gru", "lstm"] = "gru"
    bidirectional: bool = True
    encoder_layers: int = 1
    decoder_layers: int = 1
    attention: Literal["dot", "general", "additive"] = "general"
    attention_dim: int = 128
    input_feeding: bool = False
    dropout: float = 0.0
    teacher_forcing_ratio: float = 1.0
    max_target_len: int = 16

    def __post_init__(self) -> None:
        for name in ("src_vocab_size", "tgt_vocab_size", "embed_dim", "hidden_dim",
                     "encoder_layers", "decoder_layers", "attention_dim", "max_target_len"):
            check_positive(getattr(self, name), name, integer=True)
        check_choice(self.rnn, "rnn", RNN_TYPES)
        check_choice(self.attention, "attention", SCORES)
        specials = {"pad_id": self.pad_id, "bos_id": self.bos_id, "eos_id": self.eos_id}
        for name, value in specials.items():
            check_positive(value, name, strict=False, integer=True)
            if value >= self.tgt_vocab_size:
                raise ValueError(f"{name}={value} must be < tgt_vocab_size={self.tgt_vocab_size}")
        if len(set(specials.values())) != 3:
            raise ValueError(f"pad_id, bos_id and eos_id must differ; got {specials}")
        if self.pad_id >= self.src_vocab_size:
            raise ValueError(f"pad_id={self.pad_id} must be < src_vocab_size={self.src_vocab_size}")
        check_dropout(self.dropout, "dropout")
        value = self.teacher_forcing_ratio
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"argument `teacher_forcing_ratio` must be a number; got {describe(value)}")
        if not 0 <= self.teacher_forcing_ratio <= 1:
            raise ValueError(
                f"argument `teacher_forcing_ratio` must lie in [0, 1]; got {self.teacher_forcing_ratio!r}"
            )

    @property
    def decoder_dim(self) -> int:
        """Decoder width D = encoder output width."""
        return self.hidden_dim * (2 if self.bidirectional else 1)


class Encoder(nn.Module):
    """Embedding + (bi)GRU/LSTM over padded character sequences."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.src_vocab_size, config.embed_dim, padding_idx=config.pad_id)
        rnn_cls = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn = rnn_cls(
            config.embed_dim, config.hidden_dim, num_layers=config.encoder_layers,
            batch_first=True, bidirectional=config.bidirectional,
            dropout=config.dropout if config.encoder_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Read ``src``.

        Parameters
        ----------
        src : Tensor, int64, shape (B, S)
        src_mask : Tensor, bool, shape (B, S)
            True at real characters, which come first in each row (right padding).

        Returns
        -------
        outputs : Tensor, shape (B, S, D)
            Top-layer states (zeros at padding).
        final : Tensor, shape (B, D)
            Top layer's last states of both directions, ``[h→_S; h←_1]``.
        """
        B, S = src.shape
        x = self.dropout(self.embed(src))  # (B, S, E)
        lengths = src_mask.sum(dim=1).cpu()  # (B,)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, D)
        h_n = state[0] if isinstance(state, tuple) else state  # (L * dirs, B, H)
        dirs = 2 if self.config.bidirectional else 1
        top = h_n.view(self.config.encoder_layers, dirs, B, self.config.hidden_dim)[-1]  # (dirs, B, H)
        final = top.transpose(0, 1).reshape(B, dirs * self.config.hidden_dim)  # (B, D)
        return outputs, final


class Decoder(nn.Module):
    """LSTM decoder with attention over the encoder outputs (Luong's attentional state)."""

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = config
        D = config.decoder_dim
        self.embed = nn.Embedding(config.tgt_vocab_size, config.embed_dim, padding_idx=config.pad_id)
        in_dim = config.embed_dim + (D if config.input_feeding else 0)
        self.rnn = nn.LSTM(in_dim, D, num_layers=config.decoder_layers, batch_first=True,
                           dropout=config.dropout if config.decoder_layers > 1 else 0.0)
        if config.attention == "dot":
            self.attention = DotAttention()
        elif config.attention == "general":
            self.attention = GeneralAttention(D, D)
        else:
            self.attention = AdditiveAttention(D, D, config.attention_dim)
        self.bridge = nn.Linear(D, D)  # W_b: encoder summary -> initial decoder state
        self.combine = nn.Linear(2 * D, D)  # W_c of eq. 5
        self.out = nn.Linear(D, config.tgt_vocab_size)  # W_s of eq. 6
        self.dropout = nn.Dropout(config.dropout)

    def init_state(self, final: Tensor) -> tuple[Tensor, Tensor]:
        """Initial ``(h_0, c_0)``, each (decoder_layers, B, D), from the encoder summary (B, D)."""
        h0 = torch.tanh(self.bridge(final))  # (B, D)
        h0 = h0[None].expand(self.config.decoder_layers, -1, -1).contiguous()  # (L, B, D)
        return h0, torch.zeros_like(h0)

    def forward(
        self,
        y_prev: Tensor,
        state: tuple[Tensor, Tensor],
        feed: Tensor | None,
        memory: Tensor,
        memory_mask: Tensor,
    ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor]:
        """Decode ``T`` steps given their previous tokens (``T = 1`` with input feeding).

        Parameters
        ----------
        y_prev : Tensor, int64, shape (B, T)
            Previous tokens (the start token first).
        state : (h, c), each (decoder_layers, B, D)
        feed : Tensor, shape (B, 1, D), or None
            ``h~_{t-1}`` when input feeding (zeros at the first step).
        memory : Tensor, shape (B, S, D)
            Encoder outputs (keys and values).
        memory_mask : Tensor, bool, shape (B, S)

        Returns
        -------
        logits : Tensor, shape (B, T, V)
        state : (h, c)
        weights : Tensor, shape (B, T, S)
            Attention weights.
        attentional : Tensor, shape (B, T, D)
            ``h~_t``.
        """
        x = self.dropout(self.embed(y_prev))  # (B, T, E)
        if feed is not None:
            x = torch.cat([x, feed], dim=-1)  # (B, 1, E + D)
        h, state = self.rnn(x, state)  # (B, T, D)
        context, weights = self.attention(h, memory, memory, memory_mask)  # (B, T, D), (B, T, S)
        attentional = torch.tanh(self.combine(torch.cat([context, h], dim=-1)))  # (B, T, D)
        logits = self.out(self.dropout(attentional))  # (B, T, V)
        return logits, state, weights, attentional


class Seq2Seq(PretrainedModel):
    """Encoder-decoder with attention; ``forward`` follows Hugging Face's labels → loss rule.

    Parameters
    ----------
    config : Seq2SeqConfig
    """

    config_class = Seq2SeqConfig
    model_type = "seq2seq"
    # the RNNs' stacked layers in the weights file (torch names them weight_ih_l{i}[_reverse]),
    # compared with the config before anything is built
    layer_patterns: ClassVar[dict[str, str]] = {"encoder_layers": r"^encoder\.rnn\.\w+_l(\d+)(?:_reverse)?$",
                                                "decoder_layers": r"^decoder\.rnn\.\w+_l(\d+)$"}

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config must be a Seq2SeqConfig; got {describe(config)}")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def _check_source(self, src: Tensor, src_mask: Tensor) -> None:
        if not isinstance(src, Tensor) or src.ndim != 2 or src.dtype != torch.long:
            raise ValueError(f"src must be an int64 tensor of shape (B, S); got {describe(src)}")
        if not isinstance(src_mask, Tensor) or src_mask.dtype != torch.bool or src_mask.shape != src.shape:
            raise ValueError(
                f"src_mask must be a bool tensor of shape {tuple(src.shape)} (True = real character); "
                f"got {describe(src_mask)}"
            )
        if src.numel() and not bool(src_mask[:, 0].all()):
            raise ValueError("every source row needs at least one real character, padded on the right")

    def encode(self, src: Tensor, src_mask: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Encoder outputs (B, S, D) and the decoder's initial state."""
        self._check_source(src, src_mask)
        memory, final = self.encoder(src, src_mask)
        return memory, self.decoder.init_state(final)

    def forward(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, labels: Tensor | None = None
    ) -> dict[str, Tensor]:
        """Teacher-forced decoding of ``tgt_in`` (scheduled by ``teacher_forcing_ratio`` in training).

        Parameters
        ----------
        src : Tensor, int64, shape (B, S)
        src_mask : Tensor, bool, shape (B, S)
        tgt_in : Tensor, int64, shape (B, T)
            Start token, then the target shifted right.
        labels : Tensor, int64, shape (B, T), optional
            Next tokens; -100 marks positions left out of the loss.

        Returns
        -------
        dict
            ``"logits"`` (B, T, V), ``"attentions"`` (B, T, S) and, with ``labels``, ``"loss"``
            (mean cross-entropy over non-ignored positions) and ``"n_items"`` (their number).
        """
        if not isinstance(tgt_in, Tensor) or tgt_in.ndim != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ValueError(f"tgt_in must have shape (B={src.shape[0]}, T); got {describe(tgt_in)}")
        if labels is not None and (not isinstance(labels, Tensor) or labels.shape != tgt_in.shape):
            raise ValueError(f"labels must have the shape of tgt_in {tuple(tgt_in.shape)}; got {describe(labels)}")
        memory, state = self.encode(src, src_mask)
        B, T = tgt_in.shape
        sampling = self.training and self.config.teacher_forcing_ratio < 1
        if not self.config.input_feeding and not sampling:
            logits, _, weights, _ = self.decoder(tgt_in, state, None, memory, src_mask)
        else:
            feed = memory.new_zeros(B, 1, self.config.decoder_dim) if self.config.input_feeding else None
            y_prev = tgt_in[:, :1]  # (B, 1)
            step_logits, step_weights = [], []
            for t in range(T):
                if t > 0 and sampling:
                    gold = torch.rand(B, 1, device=src.device) < self.config.teacher_forcing_ratio
                    y_prev = torch.where(gold, tgt_in[:, t : t + 1], step_logits[-1].argmax(-1))
                elif t > 0:
                    y_prev = tgt_in[:, t : t + 1]
                logit, state, weight, attentional = self.decoder(y_prev, state, feed, memory, src_mask)
                feed = attentional if self.config.input_feeding else None
                step_logits.append(logit)
                step_weights.append(weight)
            logits = torch.cat(step_logits, dim=1)  # (B, T, V)
            weights = torch.cat(step_weights, dim=1)  # (B, T, S)
        result = {"logits": logits, "attentions": weights}
        if labels is not None:
            result["loss"] = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX
            )
            result["n_items"] = (labels != IGNORE_INDEX).sum()
        return result

    @torch.no_grad()
    def generate(
        self,
        src: Tensor,
        src_mask: Tensor,
        beam_width: int = 1,
        length_penalty: float = 1.0,
        max_len: int | None = None,
        constraint: Any = None,
    ) -> dict[str, Tensor]:
        """Decode ``src``: greedy when ``beam_width == 1``, else beam search.

        Parameters
        ----------
        src : Tensor, int64, shape (B, S)
        src_mask : Tensor, bool, shape (B, S)
        beam_width : int
            Beams kept per example.
        length_penalty : float
            Beam search ranks finished hypotheses by ``log p(y) / len(y) ** length_penalty``
            (``len`` counts the end token); 0 ranks by log-probability alone. Unused by greedy.
        max_len : int, optional
            Longest output (default ``config.max_target_len``).
        constraint : callable, optional
            ``constraint(prefix) -> allowed``: the tokens that may follow ``prefix`` (the tokens
            decoded so far, (N, t) int64, no start token), as a (N, V) bool mask; forbidden
            tokens are never produced (e.g. :class:`gicho.data.date_grammar.IsoDateConstraint`).
            Allowed tokens keep the model's own log-probabilities (no renormalisation), so beam
            search returns the model's most probable allowed output.

        Returns
        -------
        dict
            ``"tokens"`` (B, T) int64: the output, end token included, then padding;
            ``"attentions"`` (B, T, S): the weights of each output step (zeros after the end);
            ``"scores"`` (B,): the log-probability of each output (length-normalised for
            beam search); ``"log_probs"`` (B,): the model's log-probability of each output;
            ``"constrained_log_probs"`` (B,): the same with each step's probability divided by the
            probability mass the constraint allowed (equal to ``"log_probs"`` without a constraint).
        """
        check_positive(beam_width, "beam_width", integer=True)
        max_len = self.config.max_target_len if max_len is None else max_len
        check_positive(max_len, "max_len", integer=True)
        if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
            raise TypeError(f"argument `length_penalty` must be a number; got {describe(length_penalty)}")
        memory, state = self.encode(src, src_mask)
        if constraint is not None and not callable(constraint):
            raise TypeError(f"argument `constraint` must be callable (prefix -> allowed mask); got {describe(constraint)}")
        if beam_width == 1:
            return greedy(self.decoder, self.config, memory, src_mask, state, max_len, constraint)
        return beam_search(self.decoder, self.config, memory, src_mask, state, max_len, beam_width,
                           float(length_penalty), constraint)
