"""PyTorch building blocks: stems, attention, Transformer encoder (and how it runs), pooling, losses.

Boolean masks are ``True`` where a position may be attended to / is a real token, and
``False`` where it is masked out or padding (see :mod:`gicho.nn.attention`).
"""

from gicho.nn.attention import (
    ATTENTION_KINDS,
    MultiHeadSelfAttention,
    dot_product_attention,
    masked_softmax,
    ragged_attention,
    scaled_dot_product_attention,
)
from gicho.nn.backbone import EncoderBackbone
from gicho.nn.embeddings import (
    PATCH_EMBEDDINGS,
    ConvPatchEmbedding,
    FeatureTokenizer,
    LearnedPositionEmbedding,
    PatchEmbedding,
    ShiftedPatchEmbedding,
    SinusoidalPositionEmbedding,
    sinusoidal_table,
)
from gicho.nn.execution import EncoderOutput
from gicho.nn.losses import IGNORE_INDEX, classification_loss, regression_loss
from gicho.nn.pooling import POOL_MODES, PoolMode, check_nonempty, pool
from gicho.nn.ragged import RaggedBatch
from gicho.nn.score_attention import AdditiveAttention, DotAttention, GeneralAttention
from gicho.nn.stems import CLS_SOURCES, ClsSource, FeatureStem, PatchStem, Stem, TokenStem
from gicho.nn.transformer import MLP, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "ATTENTION_KINDS",
    "CLS_SOURCES",
    "IGNORE_INDEX",
    "MLP",
    "PATCH_EMBEDDINGS",
    "POOL_MODES",
    "AdditiveAttention",
    "ClsSource",
    "ConvPatchEmbedding",
    "DotAttention",
    "EncoderBackbone",
    "EncoderOutput",
    "FeatureStem",
    "FeatureTokenizer",
    "GeneralAttention",
    "LearnedPositionEmbedding",
    "MultiHeadSelfAttention",
    "PatchEmbedding",
    "PatchStem",
    "PoolMode",
    "RaggedBatch",
    "ShiftedPatchEmbedding",
    "SinusoidalPositionEmbedding",
    "Stem",
    "TokenStem",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "check_nonempty",
    "classification_loss",
    "dot_product_attention",
    "masked_softmax",
    "pool",
    "ragged_attention",
    "regression_loss",
    "scaled_dot_product_attention",
    "sinusoidal_table",
]
