"""rosberta-onnx: ai-forever/ru-en-RoSBERTa sentence embeddings with ONNX Runtime, tokenizers and numpy.

    from rosberta_onnx import Encoder
    enc = Encoder.load("models/ru-en-rosberta")
    vecs = enc.encode(["Сколько программистов нужно?"], task="search_query")

The runtime never imports torch or transformers; the export side lives in the ``rosberta_export`` package
(``pip install 'rosberta-onnx[export]'``). What is built on the runtime (the server, Ray batch embedding) uses
only the names below.
"""

from .atomic import atomic_file, atomic_path, write_json_atomic
from .chunking import ChunkPlan, Chunks, mean_of_chunks
from .encoder import Encoded, Encoder, prepare_texts
from .errors import (
    ArtifactError,
    ArtifactNotFoundError,
    InputFormatError,
    InputTooLongError,
    InputTypeError,
    MissingDependencyError,
    RosbertaError,
    TaskError,
    VariantError,
    require,
)
from .manifest import VARIANTS, Manifest, ModelFacts
from .pooling import l2_normalize
from .prompts import PromptWarning
from .variants import HardwareWarning, Selection, select_variant
from .verify import VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    # embedding
    "Encoder",
    "Encoded",
    "Chunks",
    "ChunkPlan",
    "mean_of_chunks",
    "Selection",
    "select_variant",
    "prepare_texts",
    "l2_normalize",
    # does the artifact hold on this CPU
    "verify",
    "VerifyReport",
    # the artifact's contract
    "Manifest",
    "ModelFacts",
    "VARIANTS",
    # errors and warnings
    "RosbertaError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "VariantError",
    "TaskError",
    "InputTypeError",
    "InputTooLongError",
    "InputFormatError",
    "MissingDependencyError",
    "PromptWarning",
    "HardwareWarning",
    "require",
    # files written so that no reader sees half of one
    "atomic_file",
    "atomic_path",
    "write_json_atomic",
    "__version__",
]
