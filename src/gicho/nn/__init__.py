"""PyTorch building blocks: attention, Transformer encoder (and how it runs), embeddings, pooling.

Boolean masks are ``True`` where a position may be attended to / is a real token, and
``False`` where it is masked out or padding (see :mod:`gicho.nn.attention`).
"""

from gicho.nn.attention import (
    MultiHeadSelfAttention,
    dot_product_attention,
    masked_softmax,
    ragged_attention,
    scaled_dot_product_attention,
)
from gicho.nn.backbone import (
    CLS_SOURCES,
    ClsSource,
    EncoderBackbone,
    FeatureStem,
    PatchStem,
    TokenStem,
)
from gicho.nn.embeddings import (
    FeatureTokenizer,
    LearnedPositionEmbedding,
    PatchEmbedding,
    SegmentEmbedding,
    SinusoidalPositionEmbedding,
    TokenEmbeddings,
    sinusoidal_table,
)
from gicho.nn.execution import EncoderOutput
from gicho.nn.pooling import POOL_MODES, PoolMode, check_nonempty, pool_tokens
from gicho.nn.ragged import RaggedBatch
from gicho.nn.score_attention import AdditiveAttention, DotAttention, GeneralAttention
from gicho.nn.transformer import MLP, TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "CLS_SOURCES",
    "MLP",
    "POOL_MODES",
    "AdditiveAttention",
    "ClsSource",
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
    "SegmentEmbedding",
    "SinusoidalPositionEmbedding",
    "TokenEmbeddings",
    "TokenStem",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "check_nonempty",
    "dot_product_attention",
    "masked_softmax",
    "pool_tokens",
    "ragged_attention",
    "scaled_dot_product_attention",
    "sinusoidal_table",
]
